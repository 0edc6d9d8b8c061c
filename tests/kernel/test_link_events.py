"""Link events under an open kernel port (``packet:`` and ``xdp:``): a link down/up costs no
spinning poller and traffic resumes; an interface deleted (or deleted and re-created under the
same name) fails pending and new tx and a waiting rx with DeviceGone, counts what never left in
tx_errors, and ``link()`` reports it down; the tx length limit follows the interface's MTU."""

from __future__ import annotations

import asyncio
import os

import pytest

import aioixy
from aioixy.testing import frame_seq, make_frame
from tests.kernel.netns import ip

pytestmark = pytest.mark.usefixtures("no_leaks")

DRIVERS = ["packet", "xdp"]


def poller_cpu_seconds() -> float:
    """CPU time (user + system) of this process's poller threads (aioixy-qN, -gN), from
    /proc/self/task/TID/stat."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith(("aioixy-q", "aioixy-g")):
                    continue
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that just ended
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


async def cpu_over(seconds: float) -> float:
    before = poller_cpu_seconds()
    await asyncio.sleep(seconds)
    return poller_cpu_seconds() - before


async def _until(cond, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.02)


async def _one_frame(src, dst, seq: int, size: int = 60) -> bytes:
    """Send numbered frame `seq` from src; the frame dst receives with that number (the kernel
    may send its own frames around an MTU change: IPv6 comes back with an MTU >= 1280)."""
    batch = src.alloc(1, size=size)
    batch[0].data[:] = make_frame(seq, size)
    await src.tx(batch)
    async with asyncio.timeout(10):
        async for got in dst.rx():
            with got:
                for p in got:
                    data = bytes(p.data)
                    if data == make_frame(seq, size):
                        return data
    raise AssertionError("rx ended")


@pytest.mark.parametrize("driver", DRIVERS)
async def test_link_down_up_no_spin_and_traffic_resumes(netlab, driver):
    v = netlab.veth()
    async with aioixy.open(f"{driver}:{v.a}") as a, aioixy.open(f"{driver}:{v.b}") as b:
        assert frame_seq(await _one_frame(a, b, 1)) == 1
        idle = await cpu_over(1.0)
        ip("link", "set", v.b, "down")
        ip("link", "set", v.b, "up")
        await _until(lambda: b.link().up and a.link().up)
        # the receiving socket keeps ENETDOWN from the down: before, poll() reported it at once,
        # forever, and the poller spun a full core until close
        after = await cpu_over(1.0)
        assert after < 0.1, f"pollers used {after:.2f} s of CPU in 1 s after a link down/up " \
                            f"(idle before: {idle:.2f} s)"
        assert frame_seq(await _one_frame(a, b, 2)) == 2
        assert frame_seq(await _one_frame(b, a, 3)) == 3


@pytest.mark.parametrize("driver", DRIVERS)
async def test_tx_while_down_waits_without_spinning_then_goes(netlab, driver):
    v = netlab.veth()
    async with aioixy.open(f"{driver}:{v.a}", ring_size=64, tx_descs=64) as a, \
            aioixy.open(f"{driver}:{v.b}") as b:
        ip("link", "set", v.a, "down")
        sender = asyncio.ensure_future(a.tx(_frames(a, 64, 60)))
        await asyncio.sleep(0.3)
        spent = await cpu_over(1.0)
        assert spent < 0.1, f"pollers used {spent:.2f} s of CPU in 1 s, tx waiting on a down link"
        ip("link", "set", v.a, "up")
        await _until(lambda: a.link().up and b.link().up)
        await asyncio.wait_for(sender, 10)
        await _until(lambda: b.stats().rx_packets >= 1)  # what waited was sent after all


def _frames(port, count: int, size: int):
    batch = port.alloc(count, size=size)
    for i, p in enumerate(batch):
        p.data[:] = make_frame(i, size)
    return batch


@pytest.mark.parametrize("recreate", [False, True], ids=["deleted", "recreated"])
@pytest.mark.parametrize("driver", DRIVERS)
async def test_deleted_interface_fails_tx_and_rx_with_device_gone(netlab, driver, recreate):
    v = netlab.veth()
    accepted = 0
    async with aioixy.open(f"{driver}:{v.a}", ring_size=64, tx_descs=64) as a:
        ip("link", "set", v.a, "down")  # tx piles up: queued frames that can never leave

        async def send_forever() -> None:
            nonlocal accepted
            while True:
                batch = _frames(a, 32, 60)
                with batch:
                    accepted += await a.tx(batch)

        async def receive() -> None:
            async for batch in a.rx():
                batch.release()

        sender = asyncio.ensure_future(send_forever())
        receiver = asyncio.ensure_future(receive())
        await asyncio.sleep(0.5)
        assert not sender.done() and accepted > 0  # waiting for room
        ip("link", "del", v.a)
        if recreate:  # same name, a new interface (a new ifindex), up
            ip("link", "add", v.a, "type", "veth", "peer", "name", v.b)
            ip("link", "set", v.a, "up")
            ip("link", "set", v.b, "up")
        # the waiting tx and the waiting rx stream both end with the reason, no hang
        for task in (sender, receiver):
            with pytest.raises(aioixy.DeviceGone, match="the interface is gone"):
                await asyncio.wait_for(task, 10)
        assert not a.link().up  # never the namesake's link
        with pytest.raises(aioixy.DeviceGone):
            await a.tx(_frames(a, 1, 60))
        with pytest.raises(aioixy.DeviceGone):
            a.tx_nowait(_frames(a, 1, 60))
        with pytest.raises(aioixy.DeviceGone):
            async for _ in a.rx():
                pass
        s = a.stats()
        # every frame tx() accepted is accounted for: handed to the device, or dropped as never
        # sent; and some never left (the link was down): they are errors, not "sent"
        assert s.tx_dropped > 0, s
        assert s.tx_packets + s.tx_dropped >= accepted, (accepted, s)
        assert s.device.tx_packets + s.device.tx_errors >= accepted, (accepted, s)
        assert (await cpu_over(0.5)) < 0.1  # a gone device costs no spinning either


@pytest.mark.parametrize("driver", DRIVERS)
async def test_tx_limit_follows_the_mtu(netlab, driver):
    v = netlab.veth()
    async with aioixy.open(f"{driver}:{v.a}") as a, aioixy.open(f"{driver}:{v.b}") as b:
        assert a.max_tx_len == 1518
        ip("link", "set", v.a, "mtu", "1000")
        a.link()  # a control call re-reads the interface at once (the poller does within 20 ms)
        assert a.max_tx_len == 1018
        big = _frames(a, 1, 1100)
        with pytest.raises(aioixy.PacketRejected, match="at most 1018 bytes"):
            await a.tx(big)
        big.release()
        got = await _one_frame(a, b, 7, size=1014)  # MTU + Ethernet header still goes
        assert len(got) == 1014 and frame_seq(got) == 7
        ip("link", "set", v.a, "mtu", "1500")
        await _until(lambda: a.max_tx_len == 1518)
        got = await _one_frame(a, b, 8, size=1400)
        assert len(got) == 1400
        assert a.stats().device.tx_errors == 0


async def test_packet_untagged_frame_over_the_mtu_is_an_error_not_sent(netlab):
    """The kernel sends an untagged frame of at most MTU + 14 bytes and skips a longer one
    silently; only a VLAN-tagged frame may carry 4 more. packet: counts the untagged ones in
    tx_errors instead of tx_packets."""
    v = netlab.veth()
    async with aioixy.open(f"packet:{v.a}") as a, aioixy.open(f"packet:{v.b}") as b:
        for extra in (1, 4):
            batch = _frames(a, 1, 1514 + extra)
            await a.tx(batch)
        await _until(lambda: a.stats().device.tx_errors == 2)
        assert a.stats().device.tx_packets == 0
        frame = make_frame(9, 1514)
        tagged = frame[:12] + b"\x81\x00\x00\x07" + frame[12:]  # 1518 bytes, VID 7
        batch = a.alloc(1, size=len(tagged))
        batch[0].write(tagged)
        await a.tx(batch)
        async with asyncio.timeout(10):
            async for got in b.rx():
                with got:
                    assert [bytes(p.data) for p in got] == [tagged]
                break
        assert a.stats().device.tx_packets == 1
