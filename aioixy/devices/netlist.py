"""What ``aioixy list`` shows, read-only: this machine's network PCI devices (from sysfs) and its
kernel network interfaces with the kernel-backed drivers (packet:, xdp:) each one supports."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess

import attrs

from aioixy._ffi import ffi, lib

PCI = "/sys/bus/pci/devices"


def _registered_ids() -> dict[tuple[int, int], str]:
    """(vendor, device) -> driver, as the native registry has them: the one list that decides."""
    out: dict[tuple[int, int], str] = {}
    vendor, device, name = ffi.new("uint16_t *"), ffi.new("uint16_t *"), ffi.new("const char **")
    i = 0
    while lib.aioixy_driver_pci_id(i, vendor, device, name):
        out[(vendor[0], device[0])] = ffi.string(name[0]).decode()
        i += 1
    return out


DRIVERS = _registered_ids()
SOFTWARE = [
    {"device": "null", "what": "line-rate packet source and sink"},
    {"device": "pair:NAME:a / pair:NAME:b", "what": "two ports wired back to back in memory"},
    {"device": "sim-82599:CARD:0 / sim-82599:CARD:1",
     "what": "the ixgbe driver on the behavioural 82599 model (ports cabled together)"},
]


@attrs.frozen
class NicInfo:
    address: str
    vendor: str
    device: str
    aioixy_driver: str | None
    kernel_driver: str | None
    interface: str | None
    up: bool
    addresses: list[str]
    #: why opening it would be refused without force=True (None: it would not): up with
    #: addresses, or held by a network driver whose interface is in another network namespace
    refusal: str | None = None

    @property
    def safe(self) -> bool:
        """False when taking it could cut a machine off: the drivers' own verdict."""
        return self.refusal is None


def _pci_refusal(addr: str) -> str | None:
    """What the PCI drivers' check (aioixy_pci_check_safe) says about taking `addr`."""
    info = ffi.new("struct aioixy_pci_info *")
    if lib.aioixy_pci_info(addr.encode(), info) != 0:
        return ffi.string(lib.aioixy_last_error()).decode()  # gone since the listing
    if lib.aioixy_pci_check_safe(info, False) != 0:
        return ffi.string(lib.aioixy_last_error()).decode()
    return None


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _interface(dev: str) -> str | None:
    virtio = [d + "/net" for d in sorted(os.listdir(dev)) if d.startswith("virtio")]
    for sub in ("net", *virtio):
        path = os.path.join(dev, sub)
        if os.path.isdir(path):
            names = os.listdir(path)
            if names:
                return names[0]
    return None


def _addresses(ifname: str) -> list[str]:
    try:
        out = subprocess.run(["ip", "-j", "addr", "show", "dev", ifname], capture_output=True,
                             text=True, timeout=5).stdout
        info = json.loads(out or "[]")
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return []
    return [f"{a['local']}/{a['prefixlen']}" for i in info for a in i.get("addr_info", [])
            if a.get("scope") != "link"]


def network_devices(root: str = PCI) -> list[NicInfo]:
    out = []
    if not os.path.isdir(root):
        return out
    for addr in sorted(os.listdir(root)):
        dev = os.path.join(root, addr)
        klass = _read(os.path.join(dev, "class")) or ""
        if not klass.startswith("0x02"):
            continue
        vendor = _read(os.path.join(dev, "vendor")) or "0x0"
        device = _read(os.path.join(dev, "device")) or "0x0"
        drv = os.path.join(dev, "driver")
        kdrv = os.path.basename(os.readlink(drv)) if os.path.islink(drv) else None
        ifname = _interface(dev)
        flags = _read(f"/sys/class/net/{ifname}/flags") if ifname else None
        up = bool(flags and int(flags, 16) & 1)
        out.append(NicInfo(addr, vendor[2:], device[2:],
                           DRIVERS.get((int(vendor, 16), int(device, 16))), kdrv, ifname, up,
                           _addresses(ifname) if ifname else [], _pci_refusal(addr)))
    return out


AF_XDP = 44  # not in Python's socket module


@attrs.frozen
class InterfaceInfo:
    """A kernel network interface, as the packet: and xdp: drivers see it."""

    name: str
    mac: str
    mtu: int
    up: bool
    rx_queues: int
    tx_queues: int
    master: str | None
    addresses: list[str]
    default_route: bool
    backends: list[str]
    refusal: str | None  # why packet:/xdp: would refuse it without force=True (None: it would not)

    @property
    def safe(self) -> bool:
        return self.refusal is None


def kernel_backends() -> list[str]:
    """The kernel-backed drivers this process can use on this kernel: ``packet`` needs
    CAP_NET_RAW; ``xdp`` needs a kernel built with AF_XDP (and the rights to open its socket)."""
    out = []
    for name, family in (("packet", socket.AF_PACKET), ("xdp", AF_XDP)):
        try:
            socket.socket(family, socket.SOCK_RAW, 0).close()
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EACCES, errno.EAFNOSUPPORT, errno.EINVAL):
                raise
            continue
        out.append(name)
    return out


def interfaces() -> list[InterfaceInfo]:
    """Every interface of this network namespace except loopback, with the same safety verdict
    ``aioixy.open("packet:IF")`` would give (computed by the same native check)."""
    backends = kernel_backends()
    out = []
    for _, name in sorted(socket.if_nameindex(), key=lambda t: t[1]):
        nif = ffi.new("struct aioixy_netif *")
        if lib.aioixy_netif_lookup(name.encode(), nif) != 0:
            continue  # gone since the listing, or a name we cannot open
        flags = _read(f"/sys/class/net/{name}/flags")
        if name == "lo" or (flags and int(flags, 16) & 0x8):  # IFF_LOOPBACK
            continue
        traffic = ffi.new("struct aioixy_netif_traffic *")
        lib.aioixy_netif_traffic(name.encode(), traffic)
        rc = lib.aioixy_netif_check_safe(nif, False, b"packet")
        refusal = ffi.string(lib.aioixy_last_error()).decode() if rc else None
        master = ffi.string(nif.master).decode() or None
        out.append(InterfaceInfo(
            name=name, mac=":".join(f"{b:02x}" for b in nif.mac), mtu=nif.mtu, up=bool(nif.up),
            rx_queues=nif.rx_queues, tx_queues=nif.tx_queues, master=master,
            addresses=_addresses(name), default_route=bool(traffic.default_route),
            backends=list(backends), refusal=refusal))
    return out
