"""Network namespaces and veth pairs for the kernel-port tests, always removed afterwards.

Every name carries this process's pid (``ax<pid>x<n>...``), so parallel test runs never collide,
and :func:`sweep_stale` removes what a killed run left behind (its pid is gone). Nothing here
touches an interface it did not create.

Veth ends keep the kernel's DEFAULT offloads: a namespace's UDP and TCP hand the veth frames
with partial checksums and TCP hands it 64 KB GSO super-frames, as on any container's veth, and
the kernel ports must cope with that (docs/kernel-ports.md). The ends left in this (the root)
namespace get IPv6 disabled, so that no router solicitation or DAD probe ever appears in a
test's traffic.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Sequence

import attrs

_PID = os.getpid()
_counter = itertools.count()
_STALE = re.compile(r"^ax(\d+)x\d+")


def missing_prerequisites() -> str | None:
    """Why the kernel tier cannot run here, or None."""
    if os.geteuid() != 0:
        return "the kernel-port tests need root (network namespaces, veth pairs, AF_PACKET)"
    for tool in ("ip", "ping"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install iproute2 iputils-ping)"
    name = f"ax{_PID}xprobe"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def ip(*args: str, ns: str | None = None, check: bool = True, timeout: float = 60) -> str:
    cmd = ["ip", *(["-n", ns] if ns else []), *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def in_ns(ns: str | None, argv: Sequence[str]) -> list[str]:
    """argv run inside namespace ns (None: here)."""
    return ["ip", "netns", "exec", ns, *argv] if ns else list(argv)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Remove namespaces and links of earlier test runs whose process no longer exists."""
    removed = []
    for ns in ip("netns", "list", check=False).split("\n"):
        name = ns.split(" ")[0]
        m = _STALE.match(name)
        if m and not _alive(int(m.group(1))):
            ip("netns", "del", name, check=False)
            removed.append(name)
    for line in ip("-o", "link", "show", check=False).split("\n"):
        parts = line.split(": ")
        if len(parts) < 2:
            continue
        name = parts[1].split("@")[0]
        m = _STALE.match(name)
        if m and not _alive(int(m.group(1))):
            ip("link", "del", name, check=False)
            removed.append(name)
    return removed


@attrs.frozen
class Veth:
    """A veth pair: end ``a`` in namespace ``ns_a``, end ``b`` in ``ns_b`` (None: here)."""

    a: str
    b: str
    ns_a: str | None
    ns_b: str | None


class NetLab:
    """What one test creates; :meth:`cleanup` removes all of it (also after a failure)."""

    def __init__(self) -> None:
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.procs: list[subprocess.Popen] = []
        self._n = next(_counter)
        self._k = itertools.count()

    def _name(self, tag: str) -> str:
        name = f"ax{_PID}x{self._n}{tag}{next(self._k)}"
        assert len(name) < 16, name
        return name

    def netns(self) -> str:
        name = self._name("n")
        ip("netns", "add", name)
        self.namespaces.append(name)
        ip("link", "set", "lo", "up", ns=name)
        return name

    def veth(self, ns_a: str | None = None, ns_b: str | None = None, up: bool = True,
             rx_queues: int = 1) -> Veth:
        """A veth pair at the kernel's default offloads (partial checksums, GSO), as on a
        user's machine."""
        a, b = self._name("a"), self._name("b")
        q = [] if rx_queues == 1 else ["numrxqueues", str(rx_queues), "numtxqueues",
                                       str(rx_queues)]
        ip("link", "add", a, *q, "type", "veth", "peer", "name", b, *q)
        self.links.append(a)
        for end, ns in ((a, ns_a), (b, ns_b)):
            if ns is None:
                with open(f"/proc/sys/net/ipv6/conf/{end}/disable_ipv6", "w") as f:
                    f.write("1")
            else:
                ip("link", "set", end, "netns", ns)
            if up:
                ip("link", "set", end, "up", ns=ns)
        return Veth(a, b, ns_a, ns_b)

    def popen(self, ns: str | None, argv: Sequence[str], **kw) -> subprocess.Popen:
        """A process in namespace ns, killed at cleanup if still running."""
        p = subprocess.Popen(in_ns(ns, argv), **kw)
        self.procs.append(p)
        return p

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=10)
        # each removal on its own: one that fails (or times out on a loaded machine) must not
        # keep the others; whatever still remains is swept at the next session (sweep_stale)
        for args in [("link", "del", name) for name in self.links] + \
                [("netns", "del", ns) for ns in self.namespaces]:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                ip(*args, check=False, timeout=120)
