"""What XDP programs an interface runs, as the kernel reports them (rtnetlink + bpf()).

Used by the tests that prove aioixy leaves nothing behind and never stacks programs, and by
anyone who wants to see what an ``xdp:`` port attached.
"""

from __future__ import annotations

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


def attached_programs(ifname: str) -> tuple[XdpProgram, ...]:
    """Every XDP program attached to ``ifname`` (in this network namespace), one per mode."""
    try:
        ifindex = socket.if_nametoindex(ifname)
    except OSError as exc:
        raise DeviceNotFound(f"no network interface named {ifname!r}") from exc
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
