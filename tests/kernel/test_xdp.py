"""AF_XDP ports (xdp:) on veth pairs this test creates: traffic, queues, zero_copy/XDP_STATISTICS
in stats, the attach/detach life cycle of the XDP program (also after SIGKILL), and bad input.

Both veth ends stay in this process's network namespace with IPv6 off and no addresses, so the
kernel sends nothing on them and no host traffic can reach them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest

import aioixy
from aioixy.devices.xdp import PROGRAM_NAME, XDP_PASS, VerdictProgram, attached_programs
from aioixy.testing import frame_seq, make_frame, transfer
from tests.kernel.links import require_root as _require_root
from tests.kernel.links import run as _run
from tests.kernel.links import veth_pair

pytestmark = pytest.mark.usefixtures("no_leaks")


def _frames(port, queue: int, count: int, tag: int):
    batch = port.alloc(count, size=60, queue=queue)
    for i, p in enumerate(batch):
        p.data[:] = make_frame(tag * 1000 + i, 60)
    return batch


async def _until(cond, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


LOSSLESS = {"overflow": "pause", "batch_size": 32}


async def test_transfer_both_ways_stats_and_detach_on_close():
    with veth_pair() as (a, b):
        async with aioixy.open(f"xdp:{a}", **LOSSLESS) as pa, \
                aioixy.open(f"xdp:{b}", **LOSSLESS) as pb:
            progs = attached_programs(a)
            assert [(p.mode, p.name) for p in progs] == [("native", PROGRAM_NAME)]
            r1, r2 = await asyncio.gather(transfer(pa, pb, 3000, timeout=120, window=192),
                                          transfer(pb, pa, 3000, timeout=120, window=192))
            assert r1.ok(3000), r1
            assert r2.ok(3000), r2
            da, db = pa.stats().device, pb.stats().device
            assert da.tx_packets == db.rx_packets == 3000
            assert db.tx_packets == da.rx_packets == 3000
            assert da.zero_copy is False and db.zero_copy is False  # veth has no zero-copy
            assert da.extra["xdp_native"] == 1 and da.extra["xdp_link"] == 1
            for key in ("xdp_rx_dropped", "xdp_rx_invalid_descs", "xdp_rx_ring_full",
                        "xdp_rx_fill_ring_empty_descs", "xdp_tx_invalid_descs",
                        "xdp_tx_ring_empty_descs"):
                assert key in da.extra
            assert da.extra["xdp_rx_invalid_descs"] == da.extra["xdp_tx_invalid_descs"] == 0
            # copy mode: transmission needs the sendto() the tx ring's need_wakeup flag asks for
            assert da.extra["tx_kicks"] > 0
        assert attached_programs(a) == () and attached_programs(b) == ()


async def test_multi_queue_veth_each_queue_gets_its_share():
    """veth delivers on the rx queue matching the sender's tx queue, and an AF_XDP socket
    transmits on the queue it is bound to: queue i of one end feeds exactly queue i of the other."""
    with veth_pair(queues=4) as (a, b):
        async with aioixy.open(f"xdp:{a}", rx_queues=4, tx_queues=4) as pa, \
                aioixy.open(f"xdp:{b}", rx_queues=4, tx_queues=4) as pb:
            for q in range(4):
                await pb.tx(_frames(pb, q, 20 + q, tag=q), queue=q)
            await _until(lambda: sum(pa.queue_stats(q).rx_packets for q in range(4)) == 86)
            got: dict[int, list[int]] = {q: [] for q in range(4)}

            async def drain(q: int) -> None:
                async for batch in pa.rx(q):
                    for p in batch:
                        got[q].append(frame_seq(p.data))
                    batch.release()
                    if len(got[q]) == 20 + q:
                        return
            await asyncio.wait_for(asyncio.gather(*(drain(q) for q in range(4))), 10)
            for q in range(4):
                assert got[q] == [q * 1000 + i for i in range(20 + q)]


async def test_named_queues_as_separate_ports_share_one_program():
    with veth_pair(queues=4) as (a, b):
        async with aioixy.open(f"xdp:{b}", tx_queues=4, rx_queues=4) as sender:
            p1 = await aioixy.open(f"xdp:{a}:1")
            p2 = await aioixy.open(f"xdp:{a}", options="queue=2")
            try:
                ids = {p.id for p in attached_programs(a)}
                assert len(ids) == 1
                await sender.tx(_frames(sender, 1, 5, tag=1), queue=1)
                await sender.tx(_frames(sender, 2, 7, tag=2), queue=2)
                await sender.tx(_frames(sender, 0, 3, tag=0), queue=0)  # no socket: passed on
                await _until(lambda: p1.stats().rx_packets == 5 and p2.stats().rx_packets == 7)
                p1.close()
                assert {p.id for p in attached_programs(a)} == ids  # p2 still needs it
                await sender.tx(_frames(sender, 2, 4, tag=2), queue=2)
                await _until(lambda: p2.stats().rx_packets == 11)
            finally:
                p1.close()
                await p2.aclose()
            assert attached_programs(a) == ()


def _holder(ifname: str, *options: str) -> subprocess.Popen:
    """A separate Python process holding xdp:ifname open until killed."""
    code = textwrap.dedent(f"""
        import asyncio, sys, aioixy
        async def main():
            port = await aioixy.open("xdp:{ifname}", options={",".join(options)!r})
            print("ready", flush=True)
            await asyncio.sleep(3600)
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise AssertionError(f"holder did not start: {line!r} {proc.stderr.read()}")
    return proc


async def test_stale_netlink_program_of_a_killed_process_is_replaced_not_stacked():
    with veth_pair() as (a, b):
        proc = _holder(a, "attach=netlink")
        try:
            stale = attached_programs(a)
            assert [p.name for p in stale] == [PROGRAM_NAME]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            proc.kill()
            proc.wait()
        # netlink attachments outlive their process: still there
        assert attached_programs(a) == stale
        async with aioixy.open(f"xdp:{a}") as pa, aioixy.open(f"xdp:{b}") as pb:
            now = attached_programs(a)
            assert len(now) == 1 and now[0].name == PROGRAM_NAME and now[0].id != stale[0].id
            await pb.tx(_frames(pb, 0, 10, tag=5))
            await _until(lambda: pa.stats().rx_packets == 10)
        assert attached_programs(a) == ()


async def test_link_attachment_dies_with_a_killed_process():
    with veth_pair() as (a, _b):
        proc = _holder(a)
        try:
            assert [p.name for p in attached_programs(a)] == [PROGRAM_NAME]
            # a live owner is refused, naming it
            with pytest.raises(aioixy.DeviceBusy, match=f"process {proc.pid}"):
                await aioixy.open(f"xdp:{a}")
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        finally:
            proc.kill()
            proc.wait()
        await _until(lambda: attached_programs(a) == ())  # link released with its fds
        async with aioixy.open(f"xdp:{a}"):
            pass


async def test_someone_elses_program_is_refused_and_not_touched():
    with veth_pair() as (a, _b):
        with VerdictProgram(a, XDP_PASS, name="not_ours"):
            before = attached_programs(a)
            with pytest.raises(aioixy.DeviceBusy, match=r"'not_ours'.*force=True"):
                await aioixy.open(f"xdp:{a}")
            # forced: still cannot take a program a live bpf_link holds, and says why
            with pytest.raises(aioixy.DeviceBusy, match="bpf_link"):
                await aioixy.open(f"xdp:{a}", force=True)
            assert attached_programs(a) == before
        async with aioixy.open(f"xdp:{a}"):
            assert [p.name for p in attached_programs(a)] == [PROGRAM_NAME]


async def test_peer_interface_is_never_touched():
    with veth_pair() as (a, b):
        async with aioixy.open(f"xdp:{a}"):
            assert attached_programs(b) == ()


async def test_foreign_buffers_and_bad_lengths_on_tx():
    """Packets from another port's pool are copied into the UMEM; frames the link cannot carry
    (empty, longer than the MTU allows) are refused in the caller's hands (PacketRejected, still
    in their batch) before the driver sees them; every buffer comes home."""
    with veth_pair() as (a, b):
        async with aioixy.open(f"xdp:{a}") as pa, aioixy.open(f"xdp:{b}") as pb, \
                aioixy.open("null") as other:
            batch = other.alloc(8, size=60)
            for i, p in enumerate(batch):
                p.data[:] = make_frame(i, 60)
            await pa.tx(batch)
            empty = pa.alloc(2, size=60)
            for p in empty:
                p.length = 0
            with pytest.raises(aioixy.PacketRejected, match="at least 14 bytes"):
                await pa.tx(empty)
            assert len(empty) == 2
            empty.release()
            # longer than MTU 1500 + 14 + a VLAN tag: the veth peer would drop it uncounted
            with pa.alloc(3, size=1519) as long, \
                    pytest.raises(aioixy.PacketRejected, match="at most 1518 bytes"):
                await pa.tx(long)
            await pa.tx(pa.alloc(1, size=1518))  # the longest frame the link carries
            await _until(lambda: pb.stats().rx_packets == 9)
            # the driver's own defence never had to act
            assert pa.stats().device.extra["tx_dropped_bad_length"] == 0
            assert pa.stats().device.tx_errors == 0


async def test_bad_input():
    _require_root()
    with pytest.raises(aioixy.DeviceNotFound, match="no network interface 'nosuch0'"):
        await aioixy.open("xdp:nosuch0")
    with pytest.raises(aioixy.DeviceNotFound, match="expected xdp:IFNAME"):
        await aioixy.open("xdp:")
    with veth_pair(queues=2) as (a, _b):
        with pytest.raises(aioixy.InvalidOption, match="has 2 queue"):
            await aioixy.open(f"xdp:{a}", rx_queues=3)
        with pytest.raises(aioixy.InvalidOption, match="bad queue"):
            await aioixy.open(f"xdp:{a}:x")
        with pytest.raises(aioixy.InvalidOption, match="xdp_mode=fast"):
            await aioixy.open(f"xdp:{a}", options="xdp_mode=fast")
        with pytest.raises(aioixy.InvalidOption, match="at least 2048"):
            await aioixy.open(f"xdp:{a}", buf_size=1024)
        with pytest.raises(aioixy.DeviceNotFound, match="zero-copy"):
            await aioixy.open(f"xdp:{a}", options="zero_copy=on")
        assert attached_programs(a) == ()  # the failed open detached what it had attached
        # an address means the host may use it: refused unless forced
        _run("ip", "addr", "add", "198.18.77.1/32", "dev", a)
        with pytest.raises(aioixy.DeviceBusy, match="this host's connection"):
            await aioixy.open(f"xdp:{a}")
        async with aioixy.open(f"xdp:{a}", force=True):
            pass
        assert attached_programs(a) == ()


async def test_interface_without_native_xdp():
    """A bridge has no driver XDP: native mode is refused clearly, generic works."""
    _require_root()
    name = f"ax{os.getpid()}x8br"  # the kernel tests' naming: swept if a run dies
    _run("ip", "link", "add", name, "type", "bridge")
    try:
        with open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "w") as f:
            f.write("1")
        _run("ip", "link", "set", name, "up")
        with pytest.raises(aioixy.DeviceNotFound, match="does not support XDP in native mode"):
            await aioixy.open(f"xdp:{name}", options="xdp_mode=native")
        async with aioixy.open(f"xdp:{name}") as p:
            assert [x.mode for x in attached_programs(name)] == ["generic"]
            assert p.stats().device.extra["xdp_native"] == 0
        assert attached_programs(name) == ()
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)


def test_not_root_is_refused_clearly():
    with veth_pair() as (a, _b):
        code = ("import asyncio, aioixy\n"
                "async def main():\n"
                f"    async with aioixy.open('xdp:{a}'):\n"
                "        pass\n"
                "try:\n"
                "    asyncio.run(main())\n"
                "except aioixy.NotPermitted as e:\n"
                "    print('NotPermitted', e)\n")
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "--inh-caps=-all", sys.executable, "-c", code],
                           capture_output=True, text=True, cwd=os.getcwd())
        assert r.stdout.startswith("NotPermitted"), (r.stdout, r.stderr)
        assert attached_programs(a) == ()


async def test_idle_queue_sleeps_in_poll_on_its_socket_and_wakes_for_rx_and_tx():
    """An idle xdp: queue sleeps in poll() on its AF_XDP socket (the 100 ms safety timeout
    bounds it to a handful of sleeps a second; the timed back-off would take thousands) and
    wakes for a frame the kernel puts on its rx ring and for a frame Python enqueues."""
    with veth_pair() as (a, b):
        async with aioixy.open(f"xdp:{a}") as pa, aioixy.open(f"xdp:{b}") as pb:
            await asyncio.sleep(0.3)
            before = pa.queue_stats(0).idle_sleeps
            await asyncio.sleep(1.0)
            slept = pa.queue_stats(0).idle_sleeps - before
            assert slept <= 30, f"{slept} sleeps in 1 s: the poller is not sleeping in poll()"
            for seq in range(3):  # tx into a sleeping poller (the kick), rx by a sleeping one
                batch = pa.alloc(1, size=60)
                batch[0].data[:] = make_frame(seq, 60)
                await pa.tx(batch)
                async with asyncio.timeout(10):
                    async for got in pb.rx():
                        with got:
                            assert [bytes(p.data) for p in got] == [make_frame(seq, 60)]
                        break
                await asyncio.sleep(0.3)  # both pollers back asleep
            # copy mode: each transmission needed the sendto() the tx ring's flag asked for
            assert pa.stats().device.extra["tx_kicks"] >= 3
