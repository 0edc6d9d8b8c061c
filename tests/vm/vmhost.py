"""Host side of the VM test tier: boots a throw-away QEMU guest with virtio-net NICs.

Guest PCI layout (fixed, so tests can name the NICs):
  0000:00:10.0  NIC "a", MAC 52:54:00:12:34:0a  \\ legacy only, joined by a QEMU hub: what a
  0000:00:11.0  NIC "b", MAC 52:54:00:12:34:0b  /  sends, b gets
  0000:00:12.0  NIC "t0", MAC 52:54:00:12:34:0c, legacy, tap vmtap0 (host side 198.18.0.1/24)
  0000:00:13.0  NIC "t1", MAC 52:54:00:12:34:0d, legacy, tap vmtap1 (host side 198.18.1.1/24)
With modern=True (the default) three more, one guest for every VirtIO flavour:
  0000:00:14.0  NIC "ma", MAC 52:54:00:12:34:0e, modern only (1af4:1041), packed=on \\ a second
  0000:00:15.0  NIC "mb", MAC 52:54:00:12:34:0f, transitional (1af4:1000), packed=on / hub
  0000:00:16.0  NIC "mq", MAC 52:54:00:12:34:10, modern only, mq=on, rss=on, packed=on, 4 queue
                pairs, on the multi-queue tap vmtapmq (host side 198.18.9.1/24)
QEMU, the taps and their addresses live in a private network namespace made for this VM, so the
guest can never reach this machine's own interfaces; everything is removed on stop, whatever
happened. Nested KVM is not available where this runs, so the guest is emulated (TCG).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import attrs

CACHE = Path(os.environ.get("AIOIXY_VM_CACHE", Path.home() / ".cache" / "aioixy-vm"))
HERE = Path(__file__).resolve().parent
QEMU = "qemu-system-x86_64"
PAIR = ("0000:00:10.0", "0000:00:11.0")
PAIR_MACS = ("52:54:00:12:34:0a", "52:54:00:12:34:0b")
MODERN_PAIR = ("0000:00:14.0", "0000:00:15.0")
MODERN_MACS = ("52:54:00:12:34:0e", "52:54:00:12:34:0f")
MQ_PCI, MQ_MAC, MQ_TAP, MQ_PAIRS = "0000:00:16.0", "52:54:00:12:34:10", "vmtapmq", 4
MQ_HOST_IP, MQ_GUEST_IP = "198.18.9.1", "198.18.9.2"
NS_PREFIX = "aioixyvm"
_serial = itertools.count()


def tap_pci(i: int) -> str:
    return f"0000:00:{0x12 + i:02x}.0"


def tap_mac(i: int) -> str:
    return f"52:54:00:12:34:{0x0c + i:02x}"


def tap_host_ip(i: int) -> str:
    return f"198.18.{i}.1"


def tap_guest_ip(i: int) -> str:
    return f"198.18.{i}.2"


def why_not_runnable() -> str | None:
    """None if a VM can be booted here, else the reason."""
    if os.geteuid() != 0:
        return "the VM tier needs root (network namespace, taps)"
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (run tests/vm/setup-vm.sh)"
    for f in ("vmlinux", "initramfs.gz"):
        if not (CACHE / f).exists():
            return f"{CACHE / f} is missing (run tests/vm/setup-vm.sh)"
    if shutil.which("ip") is None:
        return "iproute2 is not installed (run tests/vm/setup-vm.sh)"
    return None


@attrs.frozen
class Result:
    rc: int
    out: str
    err: str

    def check(self) -> Result:
        if self.rc != 0:
            raise AssertionError(f"guest command failed rc={self.rc}\n{self.out}\n{self.err}")
        return self


class TestVM:
    """One guest; use as a context manager (``with TestVM(repo) as vm:``)."""

    __test__ = False  # not a pytest test class

    def __init__(self, repo: Path, taps: int = 2, mem: str = "2G",
                 boot_timeout: float = 120, iommu: bool = False, modern: bool = True) -> None:
        self.repo = Path(repo).resolve()
        self.modern = modern
        self.iommu = iommu
        self.taps = taps
        self.mem = mem
        self.boot_timeout = boot_timeout
        self.ns = f"{NS_PREFIX}{os.getpid()}x{next(_serial)}"
        self.rundir = Path(tempfile.mkdtemp(prefix="aioixy-vm-"))
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self._buf = b""
        self._ids = itertools.count(1)
        self.python = str(self.repo / ".venv" / "bin" / "python")

    # --- lifecycle -----------------------------------------------------------------------

    def __enter__(self) -> TestVM:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ip(self, *args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, text=True)

    def start(self) -> None:
        self._ip("netns", "add", self.ns)
        self._ip("-n", self.ns, "link", "set", "lo", "up")
        for i in range(self.taps):
            tap = f"vmtap{i}"
            self._ip("-n", self.ns, "tuntap", "add", "dev", tap, "mode", "tap")
            self._ip("-n", self.ns, "addr", "add", f"{tap_host_ip(i)}/24", "dev", tap)
            self._ip("-n", self.ns, "link", "set", tap, "up")
        if self.modern:
            self._ip("-n", self.ns, "tuntap", "add", "dev", MQ_TAP, "mode", "tap", "multi_queue")
            self._ip("-n", self.ns, "addr", "add", f"{MQ_HOST_IP}/24", "dev", MQ_TAP)
            self._ip("-n", self.ns, "link", "set", MQ_TAP, "up")
        sock_path = self.rundir / "agent.sock"
        legacy = "disable-legacy=off,disable-modern=on"
        cmd = [
            "ip", "netns", "exec", self.ns, QEMU, "-name", "aioixy-test-vm", "-nodefaults",
            "-no-user-config", "-display", "none", "-no-reboot", "-machine", "q35", "-smp", "2",
            "-m", self.mem, "-accel", "tcg,thread=multi", "-cpu", "max",
            # an emulated Intel IOMMU (before any PCI device) for the VFIO tests; 48-bit
            # addresses so IOVA = virtual address fits
            *(["-device", "intel-iommu,intremap=on,caching-mode=on,aw-bits=48"]
              if self.iommu else []),
            "-kernel", str(CACHE / "vmlinux"), "-initrd", str(CACHE / "initramfs.gz"),
            "-serial", f"file:{self.rundir / 'console.log'}",
            "-fsdev", "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
            "-fsdev", f"local,id=repo,path={self.repo},security_model=none,multidevs=remap",
            "-device", "virtio-9p-pci,fsdev=repo,mount_tag=repo",
            "-device", "virtio-serial-pci,id=ser0",
            "-chardev", f"socket,id=agent,path={sock_path},server=on,wait=off",
            "-device", "virtserialport,bus=ser0.0,chardev=agent,name=aioixy",
            "-netdev", "hubport,id=na,hubid=0", "-netdev", "hubport,id=nb,hubid=0",
            "-device", f"virtio-net-pci,netdev=na,addr=10.0,mac={PAIR_MACS[0]},{legacy}",
            "-device", f"virtio-net-pci,netdev=nb,addr=11.0,mac={PAIR_MACS[1]},{legacy}",
        ]
        for i in range(self.taps):
            cmd += ["-netdev", f"tap,id=nt{i},ifname=vmtap{i},script=no,downscript=no",
                    "-device", f"virtio-net-pci,netdev=nt{i},addr={0x12 + i:x}.0,mac={tap_mac(i)},"
                               f"{legacy}"]
        if self.modern:
            # a transitional device offers both interfaces (the driver picks modern); packed=on
            # only offers VIRTIO_F_RING_PACKED, the driver still chooses the ring layout;
            # vectors: 2 per queue pair + control + config, though the driver polls
            modern = "disable-legacy=on,disable-modern=off"
            cmd += ["-netdev", "hubport,id=nma,hubid=1", "-netdev", "hubport,id=nmb,hubid=1",
                    "-device", f"virtio-net-pci,netdev=nma,addr=14.0,mac={MODERN_MACS[0]},"
                               f"packed=on,{modern}",
                    "-device", f"virtio-net-pci,netdev=nmb,addr=15.0,mac={MODERN_MACS[1]},"
                               "packed=on,disable-legacy=off,disable-modern=off",
                    "-netdev", f"tap,id=nmq,ifname={MQ_TAP},script=no,downscript=no,"
                               f"queues={MQ_PAIRS},vhost=off",
                    "-device", f"virtio-net-pci,netdev=nmq,addr=16.0,mac={MQ_MAC},mq=on,rss=on,"
                               f"packed=on,vectors={2 * MQ_PAIRS + 2},{modern}"]
        kver = (CACHE / "kver").read_text().strip()
        cmd += ["-append", " ".join([
            "console=ttyS0", "panic=-1", "rdinit=/init", "quiet", "loglevel=3",
            *(["intel_iommu=on"] if self.iommu else []),
            f"aioixy.python={self.python}", f"aioixy.agent={HERE / 'agent.py'}",
            f"aioixy.repo={self.repo}", f"aioixy.modules={CACHE / 'kernel' / 'lib' / 'modules'}",
            f"aioixy.kver={kver}",
        ])]
        log = open(self.rundir / "qemu.log", "wb")  # noqa: SIM115 - QEMU keeps it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.boot_timeout
        while not sock_path.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError("QEMU did not create its agent socket")
            time.sleep(0.05)
        # the path appears at QEMU's bind(), a moment before its listen(): refused until then
        while True:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self.sock.connect(str(sock_path))
                break
            except ConnectionRefusedError:
                self.sock.close()
                self._check_alive()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        # the guest drops what arrives before its agent opened the port: ask until it answers
        self.sock.settimeout(0.5)
        while True:
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the guest did not answer within {self.boot_timeout}s:\n"
                                   + self.console())
            try:
                # until the guest opens its port QEMU stops reading the socket: on a slow boot
                # the pings fill it, and a send that times out is "not yet", like no answer
                self.sock.sendall(b'{"kind": "ping"}\n')
                msg = self._recv()
            except TimeoutError:
                continue
            if msg.get("kind") == "pong":
                break
        self.sock.settimeout(None)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"QEMU exited with {self.proc.returncode}:\n"
                               + (self.rundir / "qemu.log").read_text(errors="replace"))

    def console(self) -> str:
        p = self.rundir / "console.log"
        return p.read_text(errors="replace") if p.exists() else ""

    def stop(self) -> None:
        """Power off and remove every trace: QEMU process, taps, namespace, run directory."""
        try:
            if self.sock is not None and self.proc is not None and self.proc.poll() is None:
                try:
                    self.sock.settimeout(5)
                    self._send({"kind": "halt"})
                    self._recv()
                except OSError:
                    pass
            if self.proc is not None:
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(10)
        finally:
            if self.sock is not None:
                self.sock.close()
                self.sock = None
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
            shutil.rmtree(self.rundir, ignore_errors=True)

    # --- talking to the guest ------------------------------------------------------------

    def _send(self, msg: dict) -> None:
        assert self.sock is not None
        self.sock.sendall((json.dumps(msg) + "\n").encode())

    def _recv(self) -> dict:
        assert self.sock is not None
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the guest agent went away:\n" + self.console())
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {}

    def _call(self, msg: dict, timeout: float | None) -> dict:
        msg["id"] = next(self._ids)
        self._send(msg)
        assert self.sock is not None
        self.sock.settimeout(None if timeout is None else timeout + 30)
        while True:
            reply = self._recv()
            if reply.get("id") == msg["id"]:
                return reply

    def run(self, argv: list[str] | str, timeout: float = 300, env: dict | None = None) -> Result:
        """Run a command in the guest (a string goes to /bin/sh -c), cwd = the repo."""
        if isinstance(argv, str):
            argv = ["/bin/sh", "-c", argv]
        r = self._call({"kind": "run", "argv": argv, "timeout": timeout, "env": env or {}}, timeout)
        return Result(r["rc"], base64.b64decode(r["out"]).decode(errors="replace"),
                      base64.b64decode(r["err"]).decode(errors="replace"))

    def py(self, *args: str, timeout: float = 300) -> Result:
        """Run the repo's venv Python in the guest."""
        return self.run([self.python, *args], timeout=timeout)

    def spawn(self, argv: list[str], log: str) -> int:
        return self._call({"kind": "spawn", "argv": argv, "log": log}, 30)["pid"]

    def signal(self, pid: int, sig: int) -> None:
        self._call({"kind": "signal", "pid": pid, "sig": sig}, 30)

    def reap(self, pid: int, timeout: float) -> int | None:
        return self._call({"kind": "reap", "pid": pid, "timeout": timeout}, timeout)["rc"]

    def host(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run a command on the host inside the VM's network namespace (where the taps are)."""
        return subprocess.run(["ip", "netns", "exec", self.ns, *argv], capture_output=True,
                              text=True, timeout=timeout)


def leftovers() -> dict[str, list[str]]:
    """QEMU processes and namespaces of this harness still present (for the cleanup test)."""
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    procs = subprocess.run(["pgrep", "-f", "aioixy-test-vm"], capture_output=True, text=True).stdout
    return {"netns": [n.split()[0] for n in ns.splitlines() if n.startswith(NS_PREFIX)],
            "qemu": procs.split()}
