"""The null device through the whole path: poller thread -> SPSC ring -> eventfd -> coroutine."""

from __future__ import annotations

import asyncio
import gc

import pytest

import aioixy
from aioixy.testing import frame_seq

pytestmark = pytest.mark.usefixtures("no_leaks")


async def test_batches_carry_consecutive_sequence_numbers():
    # overflow="pause": the poller generates only what fits, so nothing is dropped
    async with aioixy.open("null", batch_size=32, overflow="pause", pkt_size=128) as port:
        expected = 0
        batches = 0
        async for batch in port.rx():
            # several native bursts per hand-over under load, never more than rx_burst_max
            assert 1 <= len(batch) <= port.config.rx_hand_over == 128
            for pkt in batch:
                assert len(pkt) == 128
                assert frame_seq(pkt.data) == expected
                expected += 1
            batch.release()
            batches += 1
            if expected >= 20_000:
                break
        st = port.stats()
        assert st.rx_dropped == 0
        assert st.rx_packets >= expected
        assert port.link().up
        assert port.driver == "null"


async def test_per_packet_stream():
    async with aioixy.open("null", overflow="pause") as port:
        seqs = []
        async for pkt in port.rx().packets():
            seqs.append(frame_seq(pkt.data))
            if len(seqs) == 1000:
                break
        assert seqs == list(range(1000))


async def test_packets_are_writable_zero_copy_views():
    async with aioixy.open("null", overflow="pause") as port:
        async for batch in port.rx():
            pkt = batch[0]
            view = pkt.data
            view[0:6] = b"\x0a\x0b\x0c\x0d\x0e\x0f"
            # a second view sees the write: same memory, no copy
            assert pkt.data[0:6].tobytes() == b"\x0a\x0b\x0c\x0d\x0e\x0f"
            assert pkt.tobytes()[:6] == b"\x0a\x0b\x0c\x0d\x0e\x0f"
            pkt.length = 100
            assert len(pkt) == 100
            with pytest.raises(aioixy.InvalidOption):
                pkt.length = 100_000
            batch.release()
            break


async def test_forward_null_to_null_counts_everything():
    async with aioixy.open("null", overflow="pause") as src, aioixy.open("null") as dst:
        sent = 0
        async for batch in src.rx():
            n = len(batch)
            await dst.tx(batch)
            assert len(batch) == 0  # ownership moved to dst
            sent += n
            if sent >= 50_000:
                break
        for _ in range(200):
            if dst.stats().device.tx_packets == sent:
                break
            await asyncio.sleep(0.01)
        st = dst.stats()
        assert st.device.tx_packets == sent
        assert st.tx_packets == sent
        assert st.tx_bytes == sent * 60


async def test_multiple_rx_queues_each_numbered_and_merged():
    async with aioixy.open("null", rx_queues=3, tx_queues=1, overflow="pause") as port:
        assert port.rx_queues == 3
        nxt = {}
        async for batch in port.rx(queue=2):
            nxt[2] = frame_seq(batch[-1].data) + 1
            batch.release()
            break
        seen_queues = set()
        count = 0
        async for batch in port.rx():  # all three merged
            count += len(batch)
            batch.release()
            if count > 5000:
                break
        for q in range(3):
            if port.queue_stats(q).rx_packets:
                seen_queues.add(q)
        assert seen_queues == {0, 1, 2}
        assert nxt[2] >= 1


async def test_idle_consumer_is_woken_and_busy_consumer_costs_no_wakeups():
    async with aioixy.open("pair:wake:a") as a, aioixy.open("pair:wake:b", overflow="pause") as b:
        # idle: the consumer waits; each trickled packet must wake it through the eventfd
        async def trickle():
            for _ in range(5):
                await asyncio.sleep(0.02)
                await a.tx(a.alloc(1))

        t = asyncio.create_task(trickle())
        got = 0
        async for batch in b.rx():
            got += len(batch)
            batch.release()
            if got == 5:
                break
        await t
        assert b.stats().wakeups >= 1
    async with aioixy.open("null") as port:
        # busy: the source outruns the consumer (overflow="drop" keeps the ring topped up), so
        # data is always there and the consumer never announces a wait
        async for batch in port.rx():
            batch.release()
            if port.queue_stats(0).rx_batches > 20_000:
                break
        st = port.queue_stats(0)
        # a wake-up per batch would make this ~1:1; allow for a loaded machine descheduling the
        # poller now and then (the ring then runs dry and the consumer does wait)
        assert st.wakeups * 10 < st.rx_batches, (st.wakeups, st.rx_batches)


async def test_a_busy_stream_does_not_starve_other_coroutines():
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    t = asyncio.create_task(ticker())
    async with aioixy.open("null", overflow="pause") as port:
        n = 0
        async for batch in port.rx():
            n += 1
            batch.release()
            if n == 2000:
                break
    t.cancel()
    assert ticks >= 2000 // aioixy.core.port.YIELD_EVERY - 1


async def test_close_and_reopen():
    for _ in range(3):
        port = await aioixy.open("null")
        async for batch in port.rx():
            batch.release()
            break
        await port.aclose()
        assert port.closed
        with pytest.raises(aioixy.PortClosed):
            port.stats()


async def test_batches_outlive_their_port():
    port = await aioixy.open("null", overflow="pause")
    batch = await port.rx().__anext__()
    await port.aclose()
    # the pool must stay alive while Python holds its buffers...
    assert aioixy.native_pools_alive() >= 1
    assert frame_seq(batch[0].data) == 0
    # ...and go away once they are released
    batch.release()
    gc.collect()


def _poller_threads() -> dict[str, str]:
    """name -> Cpus_allowed_list of this process's aioixy poller threads."""
    import os

    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
            with open(f"/proc/self/task/{tid}/status") as f:
                allowed = next(line.split(":")[1].strip() for line in f
                               if line.startswith("Cpus_allowed_list"))
        except (FileNotFoundError, StopIteration):
            continue
        if name.startswith("aioixy-q"):
            out[name] = allowed
    return out


async def test_pollers_are_named_and_pinned():
    async with aioixy.open("null", rx_queues=2, cpu=[0, 0]):
        threads = _poller_threads()
        assert threads == {"aioixy-q0": "0", "aioixy-q1": "0"}, threads
    assert _poller_threads() == {}  # joined on close


async def test_an_idle_port_sleeps_on_its_doorbell_instead_of_spinning():
    idle = aioixy.IdlePolicy(spin=10, pause=10, sleep_min_us=50, sleep_max_us=2000)
    async with aioixy.open("pair:idle:a", idle=idle) as port:
        await asyncio.sleep(0.3)
        st = port.queue_stats(0)
        # nothing to do: the poller sleeps until something rings (only the 100 ms safety net
        # here). Spinning would be 0 sleeps; the timed back-off alone would be ~150 (one per
        # 2 ms at most)
        assert 1 <= st.idle_sleeps <= 20, st
    with pytest.raises(aioixy.InvalidOption, match="larger than sleep_max_us"):
        aioixy.IdlePolicy(sleep_min_us=100, sleep_max_us=10)


async def test_a_poller_blocked_on_a_full_rx_ring_sleeps_instead_of_spinning():
    # overflow="pause" and nobody reading: the ring fills and the source still has frames.
    # Python draining the ring sends no signal, so the poller takes short timed sleeps; it
    # must not spin on "the device has frames" (a CPU hog the scheduler then starves)
    async with aioixy.open("null", overflow="pause", ring_size=64) as port:
        await asyncio.sleep(0.3)
        st = port.queue_stats(0)
        assert st.rx_ring_used == 64, st
        assert st.idle_sleeps > 10, st
