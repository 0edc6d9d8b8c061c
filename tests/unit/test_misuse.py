"""Probes: what an adversarial user does to the public API, and what must happen instead of a
crash, a corrupted pool or a silently stopped queue (issue 10). docs/probes.md lists them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import threading
import time

import pytest

import aioixy
from aioixy._ffi import lib
from aioixy.testing import check_frame, fill, make_frame

# small pools on purpose (a whole pool is allocated, rings fill): no sizing advice wanted
pytestmark = [pytest.mark.usefixtures("no_leaks"),
              pytest.mark.filterwarnings("ignore::aioixy.PoolSizeWarning")]
_ids = itertools.count()


def _name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_ids)}"


def _whole(*ports: aioixy.Port) -> bool:
    """Every buffer of a software port's pool is back. (A NIC's rx ring holds pool buffers for
    good; for those the no_leaks fixture checks after close that every pool was freed.)"""
    soft = [p for p in ports if p.driver in ("null", "pair")]
    return all(p.stats().pool_free == p.stats().pool_size for p in soft)


async def _settle(*ports: aioixy.Port) -> None:
    for _ in range(500):
        if _whole(*ports):
            return
        await asyncio.sleep(0.01)


async def _until(cond, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def _drain(port: aioixy.Port, count: int) -> list[bytes]:
    got: list[bytes] = []
    async for batch in port.rx():
        with batch:
            got.extend(p.tobytes() for p in batch)
        if len(got) >= count:
            return got
    return got


# --- 1. a buffer is in flight at most once ------------------------------------------------


async def test_same_packet_twice_in_one_tx_is_refused_and_the_pool_stays_whole():
    async with aioixy.open("null", rx=False, pool_size=64) as port:
        bad_before = lib.aioixy_mempool_bad_frees()
        batch = port.alloc(4)
        pkt = batch[0]
        for attempt in ([pkt, pkt], [pkt] * 1000, [batch[1], batch[2], batch[1]]):
            with pytest.raises(aioixy.InvalidOption, match="same packet"):
                await port.tx(attempt)
            with pytest.raises(aioixy.InvalidOption, match="same packet"):
                port.tx_nowait(attempt)
            assert len(batch) == 4  # nothing was taken
        # two Packet objects for one slot are the same buffer too
        with pytest.raises(aioixy.InvalidOption, match="same packet"):
            await port.tx([batch[3], batch[3]])
        assert port.stats().pool_free == 60
        await port.tx([pkt])
        await port.tx(batch)
        await _settle(port)
        # no buffer was freed twice, so the whole pool can be taken, each buffer once
        assert port.stats().pool_free == 64
        with port.alloc(64) as everything:
            assert len({p.iova for p in everything}) == 64
            with pytest.raises(aioixy.PoolExhausted):
                port.alloc(1)
        assert lib.aioixy_mempool_bad_frees() == bad_before


# --- 2. a batch whose tx waits for ring space is busy --------------------------------------


async def _blocked_pair(n: str):
    """a -> b where b does not read: a's tx ring fills after a few dozen packets."""
    a = await aioixy.open(f"pair:{n}:a", ring_size=4, batch_size=4, rx_descs=16, pool_size=64)
    b = await aioixy.open(f"pair:{n}:b", ring_size=4, batch_size=4, rx_descs=16)
    return a, b


async def test_release_or_resend_of_a_batch_while_its_tx_waits_raises_batch_busy():
    a, b = await _blocked_pair(_name("busy"))
    try:
        batch = a.alloc(64, size=60)
        fill(batch, 0, [60] * 64)
        sender = asyncio.create_task(a.tx(batch))
        await _until(lambda: 0 < len(batch) < 64 and not sender.done())
        with pytest.raises(aioixy.BatchBusy):
            batch.release()
        with pytest.raises(aioixy.BatchBusy):
            await a.tx(batch)
        with pytest.raises(aioixy.BatchBusy):
            a.tx_nowait(batch)
        with pytest.raises(aioixy.BatchBusy):
            await a.tx([batch[63]])
        with pytest.raises(aioixy.BatchBusy), batch:
            pass
        # the receiver starts: the first tx completes with every packet, each exactly once
        got = await asyncio.wait_for(_drain(b, 64), 30)
        assert await sender == 64
        assert sorted(check_frame(f) for f in got) == list(range(64))
        batch.release()  # idle again: a no-op now
        await _settle(a, b)
        assert _whole(a, b)
    finally:
        a.close()
        b.close()


async def test_the_same_batch_sent_by_two_tasks_at_once_goes_out_once():
    a, b = await _blocked_pair(_name("twice"))
    try:
        batch = a.alloc(64, size=60)
        fill(batch, 0, [60] * 64)
        results = asyncio.gather(a.tx(batch), a.tx(batch), return_exceptions=True)
        await asyncio.sleep(0.05)
        got = await asyncio.wait_for(_drain(b, 64), 30)
        first, second = await results
        assert first == 64
        assert isinstance(second, aioixy.BatchBusy)
        assert sorted(check_frame(f) for f in got) == list(range(64))
        await _settle(a, b)
        assert _whole(a, b)
    finally:
        a.close()
        b.close()


async def test_cancelling_a_waiting_tx_frees_the_batch_for_release():
    a, b = await _blocked_pair(_name("cxl"))
    try:
        batch = a.alloc(64, size=60)
        fill(batch, 0, [60] * 64)
        sender = asyncio.create_task(a.tx(batch))
        await _until(lambda: 0 < len(batch) < 64 and not sender.done())
        sender.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sender
        left = len(batch)
        batch.release()
        got = await asyncio.wait_for(_drain(b, 64 - left), 30)
        assert sorted(check_frame(f) for f in got) == list(range(64 - left))
        await _settle(a, b)
        assert _whole(a, b)
    finally:
        a.close()
        b.close()


# --- 3. lengths are checked before any descriptor is written -------------------------------


async def test_null_refuses_empty_and_runt_packets_and_returns_them():
    async with aioixy.open("null", rx=False) as port:
        assert port.min_tx_len == 14
        assert port.max_tx_len == port.config.buf_size - 64
        batch = port.alloc(1, size=0)
        with pytest.raises(aioixy.PacketRejected, match="at least 14 bytes") as info:
            await port.tx(batch)
        assert info.value.sent == 0 and len(batch) == 1
        batch[0].length = 13
        with pytest.raises(aioixy.PacketRejected):
            port.tx_nowait(batch)
        assert len(batch) == 1
        batch[0].length = 14
        assert await port.tx(batch) == 1
        await _settle(port)
        assert _whole(port)


async def test_a_bad_packet_in_the_middle_sends_the_prefix_and_keeps_the_rest():
    n = _name("mid")
    async with aioixy.open(f"pair:{n}:a") as a, aioixy.open(f"pair:{n}:b") as b:
        batch = a.alloc(5, size=60)
        fill(batch, 0, [60] * 5)
        batch[2].length = 0
        with pytest.raises(aioixy.PacketRejected) as info:
            await a.tx(batch)
        assert info.value.sent == 2
        assert len(batch) == 3
        assert [len(p) for p in batch] == [0, 60, 60]
        got = await asyncio.wait_for(_drain(b, 2), 10)
        assert [check_frame(f) for f in got] == [0, 1]
        batch.release()
        await _settle(a, b)
        assert _whole(a, b)


async def test_sim82599_refuses_short_packets_and_its_queue_keeps_sending():
    card = _name("len")
    async with aioixy.open(f"sim-82599:{card}:0") as a, aioixy.open(f"sim-82599:{card}:1") as b:
        assert a.min_tx_len == 17
        for size in (0, 1, 16):
            batch = a.alloc(1, size=size)
            with pytest.raises(aioixy.PacketRejected, match="at least 17 bytes"):
                await a.tx(batch)
            assert len(batch) == 1
            batch.release()
        batch = a.alloc(1, size=60)
        batch[0].write(make_frame(7, 60))
        await a.tx(batch)
        # the queue did not stop (the model faults on a zero-length descriptor: the autouse
        # fixture fails the test if it caught one)
        got = await asyncio.wait_for(_drain(b, 1), 20)
        assert [check_frame(f) for f in got] == [7]
        await _settle(a, b)
        assert _whole(a, b)


async def test_replay_of_a_pcap_with_an_empty_record_is_refused_before_sending(tmp_path):
    from aioixy.jobs import Job, replay
    from aioixy.jobs.pcap import PcapWriter

    path = tmp_path / "empty-record.pcap"
    with open(path, "wb") as f:
        w = PcapWriter(f)
        w.write(make_frame(0, 60))
        w.write(b"")
        w.write(make_frame(1, 60))
    card = _name("replay")
    async with aioixy.open(f"sim-82599:{card}:0") as a:
        with pytest.raises(aioixy.InvalidOption, match="packet 2 has 0 bytes"):
            await replay(a, Job("replay"), str(path))
        assert a.stats().tx_packets == 0


# --- 12. a hardware device never DMAs from memory it cannot reach --------------------------


async def test_sim82599_refuses_buffers_from_a_software_pool():
    card = _name("dma")
    n = _name("dmap")
    async with aioixy.open("null", rx=False) as soft, aioixy.open(f"pair:{n}:a") as pa, \
            aioixy.open(f"sim-82599:{card}:0") as a, aioixy.open(f"sim-82599:{card}:1") as b:
        for src in (soft, pa):
            batch = src.alloc(2, size=60)
            fill(batch, 0, [60, 60])
            with pytest.raises(aioixy.PacketRejected, match="cannot DMA from") as info:
                await a.tx(batch)
            assert info.value.sent == 0 and len(batch) == 2
            with pytest.raises(aioixy.PacketRejected):
                a.tx_nowait([batch[1]])
            batch.release()
        # model to model (both DMA-able device memory) and the port's own pool work
        batch = b.alloc(1, size=60)
        batch[0].write(make_frame(1, 60))
        await a.tx(batch)
        own = a.alloc(1, size=60)
        own[0].write(make_frame(2, 60))
        await a.tx(own)
        got = await asyncio.wait_for(_drain(b, 2), 20)
        assert sorted(check_frame(f) for f in got) == [1, 2]
        # and the other way: device memory may be sent by a software device (the CPU copies)
        batch = a.alloc(1, size=60)
        batch[0].write(make_frame(3, 60))
        await soft.tx(batch)
        await _settle(soft, a, b)
        assert _whole(soft, a, b)


async def test_forwarding_from_a_software_port_to_a_model_port_copies_the_frames():
    from aioixy.jobs import Job, forward

    n = _name("fwdcopy")
    card = _name("fwdsim")
    async with aioixy.open(f"pair:{n}:a") as pa, aioixy.open(f"pair:{n}:b") as pb, \
            aioixy.open(f"sim-82599:{card}:0") as a, aioixy.open(f"sim-82599:{card}:1") as b:
        assert not a.can_send_buffers_of(pb) and pb.can_send_buffers_of(a)
        assert b.can_send_buffers_of(a)
        job = Job("fwd")
        fwd = asyncio.create_task(forward(pb, a, job))
        batch = pa.alloc(32, size=60)
        fill(batch, 0, [60] * 32)
        await pa.tx(batch)
        got = await asyncio.wait_for(_drain(b, 32), 20)
        assert sorted(check_frame(f) for f in got) == list(range(32))
        job.stop.set()
        fwd.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await fwd
        await _settle(pa, pb, a, b)
        assert _whole(pa, pb)


# --- 4. a cancelled open leaves nothing open -----------------------------------------------


async def test_timed_out_open_closes_the_device_and_a_retry_succeeds():
    card = _name("open")
    dev = f"sim-82599:{card}:0"
    # the model's reset and link take milliseconds: the timeout hits the open in progress
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(aioixy.open(dev), 0.001)
    async with aioixy.open(dev) as port:
        assert port.link().up
    n = _name("openp")
    task = asyncio.create_task(aioixy.open(f"pair:{n}:a")._open())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with aioixy.open(f"pair:{n}:a") as port:
        assert port.link() is not None


# --- 5. a port belongs to its loop's thread ------------------------------------------------


async def test_another_thread_gets_wrong_thread_and_nothing_breaks():
    n = _name("thr")
    async with aioixy.open(f"pair:{n}:a") as a, aioixy.open(f"pair:{n}:b") as b:
        batch = a.alloc(8, size=60)
        fill(batch, 0, [60] * 8)
        stream = b.rx()
        errors: list[BaseException] = []

        def other_thread() -> None:
            calls = [
                lambda: a.alloc(1),
                lambda: a.tx_nowait(batch),
                lambda: asyncio.run(a.tx(batch)),
                lambda: a.rx(),
                lambda: asyncio.run(stream.__anext__()),
                lambda: a.stats(),
                lambda: a.close(),
            ]
            for call in calls:
                try:
                    call()
                except BaseException as exc:  # collected and checked below
                    errors.append(exc)

        t = threading.Thread(target=other_thread)
        t.start()
        await asyncio.to_thread(t.join)
        assert len(errors) == 7
        assert all(isinstance(e, aioixy.WrongThread) for e in errors), errors
        assert not a.closed and len(batch) == 8
        await a.tx(batch)
        got = await asyncio.wait_for(_drain(b, 8), 10)
        assert sorted(check_frame(f) for f in got) == list(range(8))
        await _settle(a, b)
        assert _whole(a, b)


# --- 6. fork: the child refuses, the parent carries on -------------------------------------


def _wait_child(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish in {timeout} s (close() hung?)")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
async def test_forked_child_refuses_the_parents_port_and_close_returns():
    n = _name("fork")
    async with aioixy.open(f"pair:{n}:a") as a, aioixy.open(f"pair:{n}:b") as b:
        held = a.alloc(3, size=60)
        fill(held, 0, [60] * 3)
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only, never return to pytest
            code = 0
            try:
                for call in (lambda: a.alloc(1), lambda: a.tx_nowait(held), lambda: a.stats(),
                             lambda: a.rx()):
                    try:
                        call()
                        code |= 1
                    except aioixy.PortForked:
                        pass
                if not a.closed:
                    code |= 2
                a.close()
                b.close()
                held.release()  # the child only forgets its copy
            except BaseException:  # any surprise is a failure code
                code |= 4
            os._exit(code)
        assert await asyncio.to_thread(_wait_child, pid, 30) == 0
        # the parent's port is untouched: it still sends what it held
        assert not a.closed and len(held) == 3
        await a.tx(held)
        got = await asyncio.wait_for(_drain(b, 3), 10)
        assert sorted(check_frame(f) for f in got) == [0, 1, 2]
        await _settle(a, b)
        assert _whole(a, b)


# --- 8. a sender yields, so a receiver on the same loop keeps up ---------------------------


async def _sender_beside_receiver(tx_port, rx_port, count: int) -> tuple[int, set[int]]:
    seen: set[int] = set()

    async def receive() -> None:
        async for batch in rx_port.rx():
            with batch:
                seen.update(check_frame(p.data) for p in batch)
            if len(seen) >= count:
                return

    receiver = asyncio.create_task(receive())
    sent = 0
    while sent < count:
        k = min(64, count - sent)
        batch = tx_port.alloc(k, size=60)
        fill(batch, sent, [60] * k)
        await tx_port.tx(batch)
        sent += k
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(receiver, 60)
    return sent, seen


async def test_sender_task_beside_async_for_receiver_on_default_pair_loses_nothing():
    n = _name("starve")
    async with aioixy.open(f"pair:{n}:a") as a, aioixy.open(f"pair:{n}:b") as b:
        count = 30_000
        sent, seen = await _sender_beside_receiver(a, b, count)
        assert sent == count
        assert seen == set(range(count))
        sa, sb = a.stats(), b.stats()
        assert sb.rx_dropped == 0 and sa.tx_dropped == 0 and sa.device.tx_errors == 0
        await _settle(a, b)


async def test_sender_task_beside_receiver_on_lossless_sim82599_loses_nothing():
    card = _name("starvesim")
    opts = {"flow_control": True, "overflow": "pause"}
    async with aioixy.open(f"sim-82599:{card}:0", **opts) as a, \
            aioixy.open(f"sim-82599:{card}:1", **opts) as b:
        count = 20_000
        sent, seen = await _sender_beside_receiver(a, b, count)
        assert seen == set(range(sent))
        assert b.device_stats().rx_missed == 0 and b.stats().rx_dropped == 0
        await _settle(a, b)


async def test_tx_yields_to_the_loop_while_its_ring_has_room():
    async with aioixy.open("null", rx=False) as port:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        for _ in range(64):
            batch = port.alloc(1, size=60)
            await port.tx(batch)
        t.cancel()
        # 64 tx calls, each finding room: the other task ran at least every TX_YIELD_EVERY
        assert ticks - before >= (64 - 1) // aioixy.core.port.TX_YIELD_EVERY > 0
        await _settle(port)


def test_pair_is_lossless_by_default_and_a_nic_is_not():
    pair = aioixy.PortConfig(device="pair:x:a")
    assert pair.flow_control is True and pair.overflow == "pause"
    explicit = aioixy.PortConfig(device="pair:x:a", flow_control=False, overflow="drop")
    assert explicit.flow_control is False and explicit.overflow == "drop"
    for dev in ("null", "sim-82599:c:0", "0000:01:00.0"):
        cfg = aioixy.PortConfig(device=dev)
        assert cfg.flow_control is False and cfg.overflow == "drop"
