"""Buffer ownership: tx consumes, release/GC returns, cancellation never loses a buffer."""

from __future__ import annotations

import asyncio
import gc
import itertools

import pytest

import aioixy

pytestmark = pytest.mark.usefixtures("no_leaks")
_ids = itertools.count()


def _pool_whole(port: aioixy.Port) -> bool:
    st = port.stats()
    return st.pool_free == st.pool_size


async def _settle(*ports: aioixy.Port) -> None:
    for _ in range(300):
        if all(_pool_whole(p) for p in ports):
            return
        await asyncio.sleep(0.01)


async def test_tx_consumes_packets():
    async with aioixy.open("null") as port:
        batch = port.alloc(8)
        pkt = batch[3]
        await port.tx(batch)
        assert len(batch) == 0
        with pytest.raises(aioixy.PacketReleased):
            len(pkt)
        with pytest.raises(aioixy.PacketReleased):
            pkt.data  # noqa: B018


async def test_sending_single_packets_leaves_the_rest_owned():
    n = next(_ids)
    async with aioixy.open(f"pair:o{n}:a") as a, aioixy.open(f"pair:o{n}:b") as b:
        batch = a.alloc(5)
        await a.tx([batch[1], batch[3]])
        assert len(batch) == 3
        assert [p._i for p in batch] == [0, 2, 4]
        with pytest.raises(aioixy.PacketReleased):
            batch[1]
        await a.tx(batch[0])
        assert len(batch) == 2
        batch.release()
        got = 0
        async for rb in b.rx():
            got += len(rb)
            rb.release()
            if got == 3:
                break
        await _settle(a, b)
        assert _pool_whole(a) and _pool_whole(b)


async def test_dropped_batches_go_back_to_the_pool():
    async with aioixy.open("pair:gc:a") as a:
        size = a.stats().pool_size
        batch = a.alloc(100)
        assert a.stats().pool_free == size - 100
        del batch
        gc.collect()
        assert a.stats().pool_free == size
        with a.alloc(10) as b2:
            assert a.stats().pool_free == size - 10
            assert len(b2) == 10
        assert a.stats().pool_free == size
        with pytest.raises(aioixy.PoolExhausted, match="mempool has"):
            a.alloc(size + 1)


async def test_consumer_cancelled_mid_batch_loses_nothing():
    n = next(_ids)
    opts = {"flow_control": True, "overflow": "pause"}
    async with aioixy.open(f"pair:c{n}:a", **opts) as a, aioixy.open(f"pair:c{n}:b", **opts) as b:
        started = asyncio.Event()

        async def consumer():
            async for batch in b.rx():
                for i, pkt in enumerate(batch):
                    if i == len(batch) // 2:
                        started.set()
                        await asyncio.sleep(10)  # cancelled here, mid-batch
                    pkt.data[0] ^= 1

        task = asyncio.create_task(consumer())
        await a.tx(a.alloc(64))
        await asyncio.wait_for(started.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        del task
        gc.collect()
        await _settle(a, b)
        assert _pool_whole(a) and _pool_whole(b)


async def test_tx_cancelled_while_waiting_for_ring_space_keeps_unsent_packets():
    n = next(_ids)
    # a tiny tx ring, a tiny lossless wire, and nobody reading b: tx must block
    async with aioixy.open(f"pair:x{n}:a", ring_size=4, rx_descs=8, batch_size=4,
                           flow_control=True) as a, \
            aioixy.open(f"pair:x{n}:b", overflow="pause", ring_size=4, batch_size=4) as b:
        batch = a.alloc(200)
        task = asyncio.create_task(a.tx(batch))
        await asyncio.sleep(0.2)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        left = len(batch)
        assert 0 < left < 200
        in_flight = 200 - left
        st = a.stats()
        assert st.pool_free == st.pool_size - 200  # still all out: some queued, some ours
        batch.release()
        # what was queued arrives, in full, once b reads
        got = 0
        async for rb in b.rx():
            got += len(rb)
            rb.release()
            if got == in_flight:
                break
        await _settle(a, b)
        assert _pool_whole(a) and _pool_whole(b)


async def test_close_with_packets_everywhere_frees_everything():
    n = next(_ids)
    a = await aioixy.open(f"pair:z{n}:a", flow_control=True)
    b = await aioixy.open(f"pair:z{n}:b", overflow="pause", ring_size=16)
    await a.tx(a.alloc(500))      # in a's rings, on the wire, in b's ring
    held = b.alloc(7)             # held by Python across the close
    await asyncio.sleep(0.05)
    await a.aclose()
    await b.aclose()
    assert len(held) == 7
    held.release()
