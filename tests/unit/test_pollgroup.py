"""Poll groups: one poller thread serving the queues of several ports (issue 18, item 1)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import os

import pytest

import aioixy
from aioixy.core.pollgroup import default_group
from aioixy.testing import transfer

pytestmark = pytest.mark.usefixtures("no_leaks")
_ids = itertools.count()


def _name() -> str:
    return f"pg{next(_ids)}"


def _poller_threads() -> list[str]:
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except FileNotFoundError:
            continue
        if name.startswith("aioixy-"):
            names.append(name)
    return sorted(names)


async def test_in_memory_ports_share_the_default_group():
    n = _name()
    async with aioixy.open("null") as src, aioixy.open(f"pair:{n}:a") as a, \
            aioixy.open(f"pair:{n}:b") as b:
        g = default_group()
        assert src.poll_group is a.poll_group is b.poll_group is g
        assert g.queues >= 3
        # a forwarder between them runs one poller, not three: no thread per queue
        assert not [t for t in _poller_threads() if t.startswith("aioixy-q")]
        rep = await transfer(a, b, 5000, timeout=60)
        assert rep.ok(5000), rep


async def test_what_does_not_join_the_default_group():
    n = _name()
    busy = aioixy.IdlePolicy.busy()
    async with aioixy.open(f"pair:{n}:a", poller="own") as own, \
            aioixy.open(f"pair:{n}:b", rx_queues=2) as multi, \
            aioixy.open("null", idle=busy) as spinning, aioixy.open("null", cpu=0) as pinned:
        for p in (own, multi, spinning, pinned):
            assert p.poll_group is None, p
        assert "aioixy-q1" in _poller_threads()  # multi's second queue has its own thread
        rep = await transfer(own, multi, 2000, timeout=60)
        assert rep.ok(2000), rep


async def test_a_group_serves_ports_and_one_closes_while_the_others_run():
    n = _name()
    g = aioixy.PollGroup(idle=aioixy.IdlePolicy(spin=0, pause=0))
    try:
        async with aioixy.open(f"pair:{n}:a", poller=g) as a, \
                aioixy.open(f"pair:{n}:b", poller=g) as b:
            src = await aioixy.open("null", poller=g)
            assert g.queues == 3
            got = 0
            async for batch in src.rx():  # the group's thread also fills this one
                got += len(batch)
                batch.release()
                if got >= 10_000:
                    break
            send = asyncio.create_task(transfer(a, b, 20_000, timeout=60))
            await asyncio.sleep(0.01)
            await src.aclose()  # a member leaves while the group forwards for the others
            assert g.queues == 2
            rep = await send
            assert rep.ok(20_000), rep
            sa, sb = a.stats(), b.stats()
            assert sa.tx_packets == sb.rx_packets == 20_000
        assert g.queues == 0
    finally:
        g.close()


async def test_the_group_thread_ends_with_its_handle_and_last_port():
    n = _name()
    before = set(_poller_threads())
    g = aioixy.PollGroup()
    mine = set(_poller_threads()) - before
    assert len(mine) == 1 and next(iter(mine)).startswith("aioixy-g")
    port = await aioixy.open(f"pair:{n}:a", poller=g)
    g.close()  # the port keeps the thread alive
    assert mine <= set(_poller_threads())
    with pytest.raises(aioixy.InvalidOption, match="closed"):
        await aioixy.open(f"pair:{n}:b", poller=g)
    await port.aclose()
    for _ in range(100):
        if not mine & set(_poller_threads()):
            break
        await asyncio.sleep(0.01)
    assert not mine & set(_poller_threads())


async def test_group_misuse_is_refused_clearly():
    g = aioixy.PollGroup()
    try:
        with pytest.raises(aioixy.InvalidOption, match="group's thread"):
            await aioixy.open("null", poller=g, cpu=0)
        with pytest.raises(aioixy.InvalidOption, match="idles for all its ports"):
            await aioixy.open("null", poller=g, idle=aioixy.IdlePolicy.busy())
        with pytest.raises(aioixy.InvalidOption, match="poller="):
            await aioixy.open("null", poller="shared")
        with pytest.raises(aioixy.InvalidOption, match="may run on"):
            aioixy.PollGroup(cpu=100_000)
        with pytest.raises(aioixy.InvalidOption, match="IdlePolicy"):
            aioixy.PollGroup(idle="busy")
        assert g.queues == 0
    finally:
        g.close()
    gc.collect()
