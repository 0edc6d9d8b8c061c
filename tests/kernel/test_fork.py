"""``os.fork()`` with kernel ports open: the child closes its copies of the port's sockets, ring
mappings and BPF objects at once (it has no pollers and may not use the port), so the parent's
close really closes them and a reopen in the parent works while the child lives. Every fd a port
opens is close-on-exec."""

from __future__ import annotations

import os
import signal
import time

import pytest

import aioixy
from aioixy.devices.xdp import attached_programs

pytestmark = pytest.mark.usefixtures("no_leaks")

O_CLOEXEC = 0o2000000


def _fds() -> set[int]:
    names = os.listdir("/proc/self/fd")  # the listing's own fd is gone once this returns
    return {int(n) for n in names if os.path.exists(f"/proc/self/fd/{n}")}


def _packet_socket_inodes() -> set[int]:
    """Inodes of every AF_PACKET socket in this network namespace (/proc/net/packet)."""
    with open("/proc/net/packet") as f:
        return {int(line.split()[-1]) for line in list(f)[1:]}


def _socket_inodes(pid: int | str) -> set[int]:
    out = set()
    for n in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{n}")
        except FileNotFoundError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def _sleeping_child() -> int:
    pid = os.fork()
    if pid == 0:  # the child: holds whatever it inherited, does nothing
        try:
            time.sleep(60)
        finally:
            os._exit(0)
    return pid


def _reap(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_reopen_in_parent_while_a_forked_child_lives(netlab, driver):
    v = netlab.veth(rx_queues=2)
    before = _packet_socket_inodes()
    port = await aioixy.open(f"{driver}:{v.a}", promisc=True, rx_queues=2, tx_queues=2)
    ours = _packet_socket_inodes() - before  # packet: its queues; xdp: the promisc socket
    assert ours
    pid = _sleeping_child()
    try:
        # the child's at-fork handlers run as soon as it is scheduled (a loaded machine: later)
        deadline = time.monotonic() + 10
        while ours & _socket_inodes(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not ours & _socket_inodes(pid), "the child still holds the port's sockets"
        await port.aclose()
        assert not ours & _packet_socket_inodes(), "a socket outlived the parent's close"
        async with aioixy.open(f"{driver}:{v.a}", rx_queues=2) as again:  # xdp: busy before
            assert again.link().up
        assert attached_programs(v.a) == ()
    finally:
        await port.aclose()
        _reap(pid)


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_every_fd_of_a_port_is_close_on_exec(netlab, driver):
    v = netlab.veth(rx_queues=2)
    before = _fds()
    async with aioixy.open(f"{driver}:{v.a}", promisc=True, rx_queues=2, tx_queues=2) as p:
        new = _fds() - before
        assert len(new) >= 4, new  # sockets (and for xdp: map, program, link), eventfds
        for fd in new:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                flags = int(next(x for x in f if x.startswith("flags:")).split()[1], 8)
            assert flags & O_CLOEXEC, (fd, os.readlink(f"/proc/self/fd/{fd}"))
        assert p.driver == driver
