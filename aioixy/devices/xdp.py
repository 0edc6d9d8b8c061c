"""What XDP programs an interface runs, as the kernel reports them (rtnetlink + bpf()).

Used by the tests that prove aioixy leaves nothing behind and never stacks programs, and by
anyone who wants to see what an ``xdp:`` port attached.
"""

from __future__ import annotations

import os
import socket

import attrs

from aioixy._ffi import ffi, lib
from aioixy.errors import DeviceNotFound, from_native

#: the name of the program an ``xdp:`` port attaches
PROGRAM_NAME = "aioixy_xsk"


@attrs.frozen
class XdpProgram:
    mode: str  # "native", "generic" or "offload"
    id: int
    name: str


def _ifindex(ifname: str) -> int:
    try:
        return socket.if_nametoindex(ifname)
    except OSError as exc:
        raise DeviceNotFound(f"no network interface named {ifname!r}") from exc


#: XDP verdicts
XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3


class VerdictProgram:
    """A one-instruction XDP program (every frame gets ``action``) attached to ``ifname``
    through a bpf_link, until :meth:`close`. Stands for "someone else's program" in tests and
    gives the benchmark the kernel's own XDP_DROP ceiling."""

    def __init__(self, ifname: str, action: int, name: str = "verdict", native: bool = True):
        fd = lib.aioixy_xdp_attach_verdict(_ifindex(ifname), action, name.encode()[:15], native)
        if fd < 0:
            raise from_native(fd)
        self._fd = fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> VerdictProgram:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attached_programs(ifname: str) -> tuple[XdpProgram, ...]:
    """Every XDP program attached to ``ifname`` (in this network namespace), one per mode."""
    ifindex = _ifindex(ifname)
    q = ffi.new("struct aioixy_xdp_query *")
    rc = lib.aioixy_xdp_query(ifindex, q)
    if rc < 0:
        raise from_native(rc)
    out = []
    modes = (("native", q.drv_prog_id), ("generic", q.skb_prog_id), ("offload", q.hw_prog_id))
    for mode, pid in modes:
        if not pid:
            continue
        name = ffi.new("char[32]")
        rc = lib.aioixy_bpf_prog_name(pid, name, 32)
        if rc < 0:
            raise from_native(rc)
        out.append(XdpProgram(mode=mode, id=pid, name=ffi.string(name).decode()))
    return tuple(out)
