"""Back-to-back pair: content integrity, back-pressure, drop accounting, link state, queues."""

from __future__ import annotations

import asyncio
import itertools

import pytest

import aioixy
from aioixy.core.frames import set_seq
from aioixy.testing import frame_seq, receive_sequence, send_sequence, sizes_for, transfer

pytestmark = pytest.mark.usefixtures("no_leaks")
_ids = itertools.count()


def _name() -> str:
    return f"t{next(_ids)}"


LOSSLESS = {"flow_control": True, "overflow": "pause"}


async def test_100k_packets_in_order_intact_under_backpressure():
    n = _name()
    # small rings everywhere so back-pressure engages constantly
    opts = {**LOSSLESS, "ring_size": 64, "rx_descs": 128, "batch_size": 32}
    async with aioixy.open(f"pair:{n}:a", **opts) as a, aioixy.open(f"pair:{n}:b", **opts) as b:
        count = 100_000
        rep = await transfer(a, b, count, timeout=120)
        assert rep.ok(count), rep
        sa, sb = a.stats(), b.stats()
        sizes = sizes_for(count)
        assert sa.tx_packets == sb.rx_packets == count
        assert sa.tx_bytes == sb.rx_bytes == rep.bytes == sum(sizes)
        assert sa.device.tx_packets == sb.device.rx_packets == count
        assert sa.tx_dropped == sb.rx_dropped == 0
        assert sa.pool_free == sa.pool_size and sb.pool_free == sb.pool_size


async def test_slow_consumer_drops_are_counted_exactly():
    n = _name()
    async with aioixy.open(f"pair:{n}:a", rx_descs=256) as a, \
            aioixy.open(f"pair:{n}:b", ring_size=64, rx_descs=256, overflow="drop") as b:
        count = 5000
        # nobody reads b while a sends: b's rx ring (64) overflows, and so may the wire (256)
        await send_sequence(a, count, [60] * count)
        for _ in range(300):
            sa, sb = a.stats(), b.stats()
            if sa.tx_pending == 0 and sa.tx_ring_used == 0 and \
                    sb.rx_packets + sb.rx_dropped + sa.tx_dropped == count:
                break
            await asyncio.sleep(0.01)
        rep = await receive_sequence(b, count, timeout=0.5, sizes=[60] * count)
        sa, sb = a.stats(), b.stats()
        assert sb.rx_dropped > 0
        assert rep.received == sb.rx_packets
        assert rep.received + sb.rx_dropped + sa.tx_dropped == count
        assert rep.duplicates == 0 and rep.corrupted == 0
        # survivors keep their order (gaps are the drops)
        assert rep.last_seq < count


async def test_link_follows_the_peer_and_tx_to_nobody_is_dropped():
    n = _name()
    a = await aioixy.open(f"pair:{n}:a")
    try:
        assert not a.link().up
        async with aioixy.open(f"pair:{n}:b") as b:
            assert a.link().up and b.link().up
            assert a.link().speed_mbps > 0
        assert not a.link().up
        await a.tx(a.alloc(10))
        for _ in range(200):
            if a.stats().tx_dropped == 10:
                break
            await asyncio.sleep(0.01)
        assert a.stats().tx_dropped == 10
        assert a.stats().pool_free == a.stats().pool_size
    finally:
        await a.aclose()


async def test_same_end_twice_is_busy():
    n = _name()
    async with aioixy.open(f"pair:{n}:a"):
        with pytest.raises(aioixy.DeviceBusy, match="already open"):
            await aioixy.open(f"pair:{n}:a")


async def test_four_queues_map_tx_queue_to_rx_queue():
    n = _name()
    opts = {**LOSSLESS, "rx_queues": 4, "tx_queues": 4}
    async with aioixy.open(f"pair:{n}:a", **opts) as a, aioixy.open(f"pair:{n}:b", **opts) as b:
        for q in range(4):
            batch = a.alloc(10 + q, size=60, queue=q)
            for i, pkt in enumerate(batch):
                set_seq(pkt.data, 1000 * q + i)
            await a.tx(batch, queue=q)
        for q in range(4):
            got = []
            async for batch in b.rx(queue=q):
                got += [frame_seq(p.data) for p in batch]
                batch.release()
                if len(got) == 10 + q:
                    break
            assert got == [1000 * q + i for i in range(10 + q)]


async def test_reopen_three_times_with_traffic():
    n = _name()
    for round_ in range(3):
        async with aioixy.open(f"pair:{n}:a", **LOSSLESS) as a, \
                aioixy.open(f"pair:{n}:b", **LOSSLESS) as b:
            rep = await transfer(a, b, 2000)
            assert rep.ok(2000), (round_, rep)


async def test_pytest_plugin_helpers(aioixy_pair):
    from aioixy.testing.pytest_plugin import collect, inject

    a, b = aioixy_pair
    frames = [bytes([i]) * (60 + i) for i in range(5)]
    assert await inject(a, frames) == 5
    assert await collect(b, 5) == frames
    with pytest.raises(TimeoutError, match="got 0"):
        await collect(b, 1, timeout=0.1)


async def test_pytest_plugin_injects_scapy_and_dpkt_packets(aioixy_pair):
    # the plugin's promise: frames built with the usual Python packet libraries go in as-is
    from dpkt.ethernet import Ethernet
    from dpkt.ip import IP
    from dpkt.udp import UDP
    from scapy.layers.inet import IP as SIP
    from scapy.layers.inet import UDP as SUDP
    from scapy.layers.l2 import Ether

    from aioixy.testing.pytest_plugin import collect, inject

    a, b = aioixy_pair
    sp = Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:01") / \
        SIP(src="10.0.0.1", dst="10.0.0.2") / SUDP(sport=1, dport=2) / (b"s" * 30)
    udp = UDP(sport=3, dport=4, data=b"d" * 30)
    udp.ulen = len(udp)
    ip = IP(src=bytes((10, 0, 0, 3)), dst=bytes((10, 0, 0, 4)), p=17, data=udp)
    ip.len = len(ip)
    dp = Ethernet(dst=b"\x02" + bytes(5), src=b"\x02" + bytes(4) + b"\x01", type=0x0800, data=ip)
    assert await inject(a, [sp, dp]) == 2
    got = await collect(b, 2)
    assert got == [bytes(sp), bytes(dp)]
    assert Ether(got[0])[SUDP].dport == 2
    assert Ethernet(got[1]).data.data.dport == 4
