"""Fuzz the public API: random sequences of alloc / tx / tx_nowait / tx in a task / cancel /
release / drain / close over null, pair and sim-82599 (hypothesis draws the sequences).

After every step: nothing crashed, only the documented exceptions were raised, no pool claims
more free buffers than it has minus what Python holds, and no native free was refused (the
Python layer never let a buffer be in flight twice). After each sequence: every task is done,
every batch released, every port closed, and every mempool freed (native_pools_alive() back to
where it was). Bounded (max_examples, small rings) to stay well under a minute.
"""

from __future__ import annotations

import asyncio
import gc
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aioixy
from aioixy._ffi import lib

# what a step may legitimately raise: misuse gets one of these, never a crash
ALLOWED = (aioixy.InvalidOption, aioixy.BatchBusy, aioixy.PoolExhausted, aioixy.PacketReleased,
           aioixy.PortClosed)

_n = 0

_alloc = st.tuples(st.just("alloc"), st.integers(0, 40),
                  st.sampled_from([0, 10, 16, 17, 60, 60, 60, 300]))
_tx = st.tuples(st.just("tx"), st.integers(0, 7), st.sampled_from(["batch", "list", "dup", "one"]))
# alloc and tx twice as likely as the rest: most misuse needs packets in hand
step = st.one_of(
    _alloc, _alloc, _tx, _tx,
    st.tuples(st.just("tx_nowait"), st.integers(0, 7), st.sampled_from(["batch", "list", "dup"])),
    st.tuples(st.just("tx_task"), st.integers(0, 7), st.just("batch")),
    st.tuples(st.just("cancel"), st.integers(0, 7), st.just("")),
    st.tuples(st.just("release"), st.integers(0, 7), st.just("")),
    st.tuples(st.just("length"), st.integers(0, 7), st.sampled_from([0, 13, 60, 4000])),
    st.tuples(st.just("drain"), st.just(0), st.just("")),
    st.tuples(st.just("foreign"), st.integers(0, 7), st.just("")),
    st.tuples(st.just("close"), st.just(0), st.just("")),
)


async def _open(kind: str):
    global _n
    _n += 1
    tag = f"fz{os.getpid()}x{_n}"
    small = {"ring_size": 8, "batch_size": 8, "pool_size": 64}
    if kind == "null":
        tx = await aioixy.open("null", rx=False, **small)
        return tx, None
    if kind == "pair":
        tx = await aioixy.open(f"pair:{tag}:a", rx_descs=16, **small)
        rx = await aioixy.open(f"pair:{tag}:b", rx_descs=16, ring_size=8, batch_size=8)
        return tx, rx
    tx = await aioixy.open(f"sim-82599:{tag}:0", ring_size=8, batch_size=8)
    rx = await aioixy.open(f"sim-82599:{tag}:1", ring_size=8, batch_size=8)
    return tx, rx


def _check_pool(port: aioixy.Port, held: list[tuple[aioixy.PacketBatch, aioixy.Port]]) -> None:
    """Free buffers plus those Python holds never exceed the pool (65 of 64 was the bug)."""
    if port.closed or port.driver not in ("null", "pair"):
        return
    qs = port.queue_stats(0)
    mine = sum(len(b) for b, owner in held if owner is port)
    assert qs.pool_free + mine <= qs.pool_size, (qs, mine)


async def _run(kind: str, steps: list[tuple]) -> None:
    tx, rx = await _open(kind)
    foreign = await aioixy.open("null", rx=False, pool_size=64)
    held: list[tuple[aioixy.PacketBatch, aioixy.Port]] = []
    tasks: list[asyncio.Task] = []
    bad_frees = lib.aioixy_mempool_bad_frees()

    def pick(i: int):
        return held[i % len(held)][0] if held else None

    try:
        for op, i, arg in steps:
            try:
                if op == "alloc":
                    held.append((tx.alloc(i, size=arg), tx))
                elif op == "foreign":
                    b = foreign.alloc(1 + i % 4, size=60)
                    held.append((b, foreign))
                    await asyncio.wait_for(tx.tx(b), 0.2)
                elif op in ("tx", "tx_nowait") and (b := pick(i)) is not None:
                    pk = list(b)
                    what = {"batch": b, "list": pk[::2], "one": pk[:1],
                            "dup": pk[:1] * 2 + pk[1:]}[arg]
                    if op == "tx":
                        await asyncio.wait_for(tx.tx(what), 0.2)
                    else:
                        tx.tx_nowait(what)
                elif op == "tx_task" and (b := pick(i)) is not None:
                    tasks.append(asyncio.create_task(tx.tx(b)))
                    await asyncio.sleep(0)
                elif op == "cancel" and tasks:
                    tasks[i % len(tasks)].cancel()
                    await asyncio.sleep(0)
                elif op == "release" and (b := pick(i)) is not None:
                    b.release()
                elif op == "length" and (b := pick(i)) is not None and len(b):
                    next(iter(b)).length = arg
                elif op == "drain" and rx is not None and not rx.closed:
                    for _ in range(8):
                        k = 0
                        try:
                            batch = await asyncio.wait_for(rx.rx().__anext__(), 0.02)
                        except (TimeoutError, StopAsyncIteration):
                            break
                        with batch:
                            k = len(batch)
                        if not k:
                            break
                elif op == "close":
                    await tx.aclose()
            except ALLOWED:
                pass
            except TimeoutError:
                pass  # a tx that waited too long was cancelled: its packets stay held
            _check_pool(tx, held)
            assert lib.aioixy_mempool_bad_frees() == bad_frees
        # the end: every task finishes (cancelled if still waiting), everything is given back
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, *ALLOWED):
                pass
        for b, _ in held:
            b.release()
        held.clear()
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for b, _ in held:
            b.release()
        for p in (tx, rx, foreign):
            if p is not None:
                await p.aclose()
    assert lib.aioixy_mempool_bad_frees() == bad_frees


@pytest.mark.filterwarnings("ignore::aioixy.PoolSizeWarning")  # small pools on purpose
@pytest.mark.parametrize("kind", ["null", "pair", "sim-82599"])
@settings(max_examples=20, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=25))
def test_random_api_sequences_keep_every_pool_whole(kind, steps):
    gc.collect()
    before = aioixy.native_pools_alive()
    asyncio.run(_run(kind, steps))
    gc.collect()
    assert aioixy.native_pools_alive() == before, "a mempool was not freed: buffers leaked"
