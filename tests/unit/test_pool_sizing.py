"""Pools are sized from the rings a port fills (issue 10 item 9): back-pressure, not
PoolExhausted, stops a sender whose buffers are all in flight."""

from __future__ import annotations

import asyncio
import os
import warnings

import pytest

import aioixy
from aioixy.core.config import DEFAULT_DESCS_MAX, MIN_POOL

pytestmark = pytest.mark.usefixtures("no_leaks")


def test_default_pool_covers_descriptors_rings_and_batches_in_flight():
    small = aioixy.PortConfig()
    assert small.capacity == 2 * DEFAULT_DESCS_MAX + 2 * 1024 + 4 * 64 + 64
    assert small.pool_buffers == max(MIN_POOL, small.capacity)
    big = aioixy.PortConfig(ring_size=8192, rx_descs=4096, batch_size=256)
    assert big.capacity == 4096 + DEFAULT_DESCS_MAX + 2 * 8192 + 512 + 256
    assert big.pool_buffers == big.capacity > MIN_POOL
    assert aioixy.PortConfig(pool_size=100_000).pool_buffers == 100_000
    assert aioixy.path_pool_size(small, big) == small.capacity + big.capacity


def test_a_pool_smaller_than_the_rings_gets_a_warning_that_says_why():
    with pytest.warns(aioixy.PoolSizeWarning, match=r"pool_size=512 is smaller than the \d+ "
                      r"buffers .*1024 rx \+ 1024 tx descriptors, 2 x 1024 ring slots"):
        aioixy.open("null", pool_size=512)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aioixy.open("null", pool_size=aioixy.PortConfig().capacity)


async def test_the_opened_pool_has_the_sized_number_of_buffers():
    async with aioixy.open("null", ring_size=4096) as p:
        assert p.config.pool_size is None
        assert p.stats().pool_size == p.config.pool_buffers == p.config.capacity > MIN_POOL


async def test_a_lossless_pair_nobody_reads_stops_the_sender_by_back_pressure():
    # the receiver never reads: its rx ring, the wire and the sender's tx ring fill with the
    # sender's buffers; the sender must then wait on tx, its pool not yet dry
    name = f"pool{os.getpid()}"
    async with aioixy.open(f"pair:{name}:a", flow_control=True) as a, \
            aioixy.open(f"pair:{name}:b", overflow="pause") as b:
        accepted = 0
        stalled = 0
        while stalled < 200:
            with a.alloc(32) as batch:  # PoolExhausted here is the bug
                k = a.tx_nowait(batch)
            accepted += k
            stalled = stalled + 1 if k == 0 else 0
            await asyncio.sleep(0.001 if k == 0 else 0)
        st = a.stats()
        assert st.pool_free > 0 and accepted > a.config.ring_size
        assert accepted + st.pool_free <= st.pool_size
        assert b.stats().rx_dropped == 0
