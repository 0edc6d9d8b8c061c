"""The ixgbe driver on the sim-82599 model: init, link, integrity, RSS, stats, promiscuous
mode, re-open, bad input - and the model's own checks, each proven by a deliberately broken
"driver" (raw register access) that the model must catch."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import struct
import time

import pytest

import aioixy
from aioixy._ffi import ffi, lib
from aioixy.devices import sim
from aioixy.testing import frame_seq, make_frame, sizes_for, transfer
from aioixy.testing.pytest_plugin import inject

pytestmark = pytest.mark.usefixtures("no_leaks")
_ids = itertools.count()

# the same Toeplitz key the driver programs (RSS verification suite key)
MS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                       "6a42b73bbeac01fa")


async def _count_for(port: aioixy.Port, seconds: float) -> int:
    """Frames `port` receives within `seconds` (released as they come)."""
    got = 0

    async def rx() -> None:
        nonlocal got
        async for batch in port.rx():
            got += len(batch)
            batch.release()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(rx(), seconds)
    return got


def _card() -> str:
    return f"c{next(_ids)}"


def py_toeplitz(key: bytes, data: bytes) -> int:
    """Independent reference: the definition, bit by bit, over a big integer."""
    k = int.from_bytes(key, "big")
    klen = len(key) * 8
    h = 0
    for i in range(len(data) * 8):
        if data[i // 8] & (0x80 >> (i % 8)):
            h ^= (k >> (klen - 32 - i)) & 0xFFFFFFFF
    return h


# ------------------------------------------------------------------------- driver on the model

async def test_init_link_mac_and_no_faults():
    card = _card()
    async with aioixy.open(f"sim-82599:{card}:0") as a:
        assert a.driver == "ixgbe"
        assert a.link() == aioixy.LinkStatus(up=True, speed_mbps=10000)
        assert a.mac.startswith("02:82:59:")
        assert sim.faults(card) == []


async def test_100k_packets_cable_integrity_and_hardware_stats_agree():
    card = _card()
    opts = {"flow_control": True, "overflow": "pause", "batch_size": 32}
    async with aioixy.open(f"sim-82599:{card}:0", **opts) as a, \
            aioixy.open(f"sim-82599:{card}:1", **opts) as b:
        count = 100_000
        rep = await transfer(a, b, count, timeout=240)
        assert rep.ok(count), rep
        sizes = sizes_for(count)
        sa, sb = a.stats(), b.stats()
        assert sa.tx_packets == sb.rx_packets == count
        assert sa.tx_bytes == sb.rx_bytes == sum(sizes)
        # the device's own counters (GPTC/GPRC/GOTC/GORC) agree with what software counted
        da, db = a.device_stats(), b.device_stats()
        assert da.tx_packets == db.rx_packets == count
        assert da.tx_bytes == db.rx_bytes == sum(sizes)
        assert db.rx_missed == 0
    assert sim.faults(card) == []


async def test_loop_wire_returns_frames_to_sender():
    card = _card()
    async with aioixy.open(f"sim-82599:{card}:0", options="wire=loop", flow_control=True,
                           overflow="pause") as a:
        rep = await transfer(a, a, 2000, timeout=60)
        assert rep.ok(2000), rep


async def test_rss_spreads_flows_over_4_queues_and_keeps_each_flow_on_one():
    card, flows, count = _card(), 64, 12_000
    async with aioixy.open(f"sim-82599:{card}:0", rx_queues=4, tx_queues=4, flow_control=True,
                           overflow="pause", options=f"wire=gen,flows={flows},count={count}") as p:
        seen: dict[int, set[int]] = collections.defaultdict(set)
        per_queue = collections.Counter()
        last_seq: dict[int, int] = {}
        errors: list[str] = []

        async def drain(q: int) -> None:
            async for batch in p.rx(q):
                with batch:
                    for pkt in batch:
                        d = pkt.data
                        flow = d[28] << 8 | d[29]  # low half of the source address
                        seq = frame_seq(d)
                        seen[flow].add(q)
                        per_queue[q] += 1
                        if seq <= last_seq.get(flow, -1):
                            errors.append(f"flow {flow}: seq {seq} after {last_seq[flow]}")
                        last_seq[flow] = seq
                if sum(per_queue.values()) >= count:
                    return

        tasks = [asyncio.create_task(drain(q)) for q in range(4)]
        deadline = time.monotonic() + 120
        while sum(per_queue.values()) < count and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert sum(per_queue.values()) == count, per_queue
        assert not errors, errors[:5]
        assert len(seen) == flows
        assert all(per_queue[q] > 0 for q in range(4)), per_queue
        assert all(len(qs) == 1 for qs in seen.values()), "a flow was split over queues"
        # and each flow is on the queue RSS says: Toeplitz over (src ip, dst ip, sport, dport),
        # redirection table entry i -> queue i % 4
        for flow, qs in seen.items():
            tup = bytes((10, 0, flow >> 8, flow & 255, 10, 1, 0, 1)) + struct.pack("!HH",
                                                                                 1024 + flow, 9)
            assert qs == {(py_toeplitz(MS_KEY, tup) & 127) % 4}, flow
        assert p.device_stats().rx_packets == count


def test_toeplitz_matches_published_vectors_and_reference():
    # the RSS verification suite's IPv4 vectors: 66.9.149.187:2794 -> 161.142.100.80:1766
    ips = bytes((66, 9, 149, 187, 161, 142, 100, 80))
    assert sim.toeplitz(MS_KEY, ips) == 0x323E8FC2
    assert sim.toeplitz(MS_KEY, ips + struct.pack("!HH", 2794, 1766)) == 0x51CCC178
    for n in range(1, 37):
        data = bytes((i * 37 + n) & 255 for i in range(n))
        assert sim.toeplitz(MS_KEY, data) == py_toeplitz(MS_KEY, data)


async def test_promiscuous_mode_changes_what_arrives():
    card = _card()
    foreign = bytes.fromhex("020000abcdef")
    async with aioixy.open(f"sim-82599:{card}:0") as a, aioixy.open(f"sim-82599:{card}:1") as b:
        async def send(n: int, dst: bytes) -> None:
            await inject(a, [make_frame(i, 60, dst=dst) for i in range(n)])

        async def count_for(t: float) -> int:
            return await _count_for(b, t)

        assert not b.promiscuous
        await send(50, foreign)
        assert await count_for(0.5) == 0
        mine = bytes.fromhex(b.mac.replace(":", ""))
        await send(50, mine)
        assert await count_for(0.5) == 50
        b.set_promisc(True)
        await send(50, foreign)
        assert await count_for(0.5) == 50
        b.set_promisc(False)
        await send(50, foreign)
        assert await count_for(0.5) == 0


async def test_drops_without_flow_control_are_counted_as_missed():
    card = _card()
    async with aioixy.open(f"sim-82599:{card}:0", rx_descs=64, pool_size=1024,
                           options="wire=gen,count=20000") as p:
        await asyncio.sleep(0.5)  # nobody reads: the 64-descriptor ring fills, the rest is missed
        got = await _count_for(p, 3)
        s = p.stats()
        assert s.device.rx_missed > 0
        assert got + s.device.rx_missed + s.rx_dropped == 20000


async def test_close_reopen_three_times():
    card = _card()
    for _ in range(3):
        async with aioixy.open(f"sim-82599:{card}:0", flow_control=True, overflow="pause") as a, \
                aioixy.open(f"sim-82599:{card}:1", flow_control=True, overflow="pause") as b:
            rep = await transfer(a, b, 1000, timeout=60)
            assert rep.ok(1000), rep
            assert a.device_stats().tx_packets == 1000  # counters start from zero on each open
    assert sim.faults(card) == []


async def test_bad_names_and_options():
    with pytest.raises(aioixy.DeviceNotFound, match="sim-82599:CARD:PORT"):
        await aioixy.open("sim-82599:onlycard")
    with pytest.raises(aioixy.DeviceNotFound, match="ports 0 and 1"):
        await aioixy.open("sim-82599:x:2")
    with pytest.raises(aioixy.InvalidOption, match="wire=bogus"):
        await aioixy.open("sim-82599:x:0", options="wire=bogus")
    with pytest.raises(aioixy.InvalidOption, match="rx_descs"):
        await aioixy.open("sim-82599:x:0", rx_descs=100)
    card = _card()
    async with aioixy.open(f"sim-82599:{card}:0"):
        with pytest.raises(aioixy.DeviceBusy, match="already open"):
            await aioixy.open(f"sim-82599:{card}:0")
        with pytest.raises(aioixy.InvalidOption, match="options apply to the whole card"):
            await aioixy.open(f"sim-82599:{card}:1", options="wire=loop")


# ------------------------------------------------------------------------- the model's checks

CTRL, RST, GIO_DIS, DMATXCTL, RXCTRL = 0x0, 1 << 26, 1 << 2, 0x4A80, 0x3000
ENABLE = 1 << 25


def rdbal(q: int) -> int:
    return 0x1000 + 0x40 * q


def tdbal(q: int) -> int:
    return 0x6000 + 0x40 * q


class Dma:
    """An anonymous DMA region the model accepts (what a driver's rings and pools are in)."""

    def __init__(self, size: int) -> None:
        self.ctx = ffi.new("struct aioixy_dma_ctx *", {"kind": lib.DMA_ANON,
                                                       "vfio_container_fd": -1})
        self.mem = ffi.new("struct aioixy_dma_mem *")
        assert lib.aioixy_dma_alloc(self.ctx, size, True, self.mem) == 0
        self.iova = int(self.mem.iova)
        self.buf = ffi.buffer(self.mem.virt, size)

    def free(self) -> None:
        lib.aioixy_dma_free(self.mem)


def _reset(r: sim.RegisterAccess) -> None:
    r.write(CTRL, GIO_DIS)  # master disable first: the model faults a reset with DMA possible
    r.write(CTRL, GIO_DIS | RST)
    time.sleep(0.01)
    assert r.read(CTRL) & RST == 0


def _wait_fault(card: str, text: str, timeout: float = 2.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = sim.faults(card)
        if any(text in line for line in f):
            return f
        time.sleep(0.01)
    raise AssertionError(f"the model did not catch it: expected a fault with {text!r}, "
                         f"got {sim.faults(card)}")


@pytest.fixture
def rogue():
    """A raw register interface to a fresh card, for tests that make mistakes on purpose."""
    card = _card()
    before = sim.total_faults()
    with sim.RegisterAccess(card) as r:
        yield r
    assert sim.total_faults() > before


def test_model_catches_register_access_during_reset(rogue):
    # both accesses right after the reset: waiting for the first fault in between could take
    # longer than the 1 ms window on a loaded machine, and the read would then be legal
    rogue.write(CTRL, RST)
    rogue.write(RXCTRL, 0)
    rogue.read(0x8)
    _wait_fault(rogue.card, "written")
    _wait_fault(rogue.card, "read")


def test_model_catches_queue_enabled_before_its_ring(rogue):
    _reset(rogue)
    rogue.write(rdbal(0) + 0x28, ENABLE)  # RXDCTL(0).ENABLE with no base/length
    _wait_fault(rogue.card, "rx queue 0 enabled before its ring registers")
    assert rogue.read(rdbal(0) + 0x28) & ENABLE == 0, "the bad enable must not latch"


def test_model_catches_tx_queue_enabled_before_dma_tx_enable(rogue):
    _reset(rogue)
    ring = Dma(4096)
    try:
        rogue.write(tdbal(0), ring.iova & 0xFFFFFFFF)
        rogue.write(tdbal(0) + 4, ring.iova >> 32)
        rogue.write(tdbal(0) + 8, 4096)
        rogue.write(tdbal(0) + 0x28, ENABLE)
        _wait_fault(rogue.card, "DMATXCTL.TE")
    finally:
        ring.free()


def test_model_catches_ring_outside_dma_memory(rogue):
    _reset(rogue)
    not_dma = ffi.new("char[]", 8192)  # ordinary heap memory, never handed out for DMA
    addr = (int(ffi.cast("uintptr_t", not_dma)) + 127) & ~127
    rogue.write(rdbal(0), addr & 0xFFFFFFFF)
    rogue.write(rdbal(0) + 4, addr >> 32)
    rogue.write(rdbal(0) + 8, 4096)
    rogue.write(rdbal(0) + 0x14, (1 << 25) | 2)  # SRRCTL: advanced one-buffer, 2 KiB
    rogue.write(rdbal(0) + 0x28, ENABLE)
    _wait_fault(rogue.card, "outside DMA memory")


def _tx_queue(r: sim.RegisterAccess, ring: Dma) -> None:
    _reset(r)
    r.write(DMATXCTL, 1)
    r.write(tdbal(0), ring.iova & 0xFFFFFFFF)
    r.write(tdbal(0) + 4, ring.iova >> 32)
    r.write(tdbal(0) + 8, 4096)  # 256 descriptors
    r.write(tdbal(0) + 0xC, 0)  # DCA_TXCTRL: no relaxed ordering of write-backs
    r.write(tdbal(0) + 0x28, ENABLE)
    time.sleep(0.005)
    assert r.read(tdbal(0) + 0x28) & ENABLE


def test_model_catches_tail_beyond_ring(rogue):
    ring = Dma(4096)
    try:
        _tx_queue(rogue, ring)
        rogue.write(tdbal(0) + 0x18, 256)  # TDT: valid values are 0..255
        _wait_fault(rogue.card, "tail 256 written beyond the ring (256 descriptors)")
    finally:
        ring.free()


def test_model_catches_tx_descriptor_pointing_outside_dma_memory(rogue):
    ring = Dma(4096)
    not_dma = ffi.new("char[]", 2048)
    try:
        _tx_queue(rogue, ring)
        cmd = (1 << 24) | (1 << 25) | (1 << 27) | (1 << 29) | (3 << 20) | 60
        struct.pack_into("<QII", ring.buf, 0, int(ffi.cast("uintptr_t", not_dma)), cmd, 60 << 14)
        rogue.write(tdbal(0) + 0x18, 1)
        _wait_fault(rogue.card, "tx queue 0 descriptor 0: buffer address")
        assert struct.unpack_from("<I", ring.buf, 12)[0] & 1 == 0, "no DD for a refused frame"
    finally:
        ring.free()


def test_model_catches_legacy_tx_descriptor(rogue):
    ring, data = Dma(4096), Dma(4096)
    try:
        _tx_queue(rogue, ring)
        struct.pack_into("<QII", ring.buf, 0, data.iova, (1 << 24) | 60, 0)  # no DEXT/DTYP
        rogue.write(tdbal(0) + 0x18, 1)
        _wait_fault(rogue.card, "not an advanced data descriptor")
    finally:
        ring.free()
        data.free()


def test_model_catches_ring_registers_changed_while_enabled(rogue):
    ring = Dma(4096)
    try:
        _tx_queue(rogue, ring)
        rogue.write(tdbal(0) + 8, 8192)
        _wait_fault(rogue.card, "changed while the queue is enabled")
    finally:
        ring.free()


def test_model_catches_unaligned_and_out_of_range_access(rogue):
    _reset(rogue)
    rogue.write(0x4242, 1)
    _wait_fault(rogue.card, "not 4-byte aligned")
    rogue.read(0x30000)
    assert len(sim.faults(rogue.card)) == 2


@pytest.mark.model_faults
def test_model_catches_rx_descriptor_pointing_outside_dma_memory():
    card = _card()
    ring = Dma(4096)
    not_dma = ffi.new("char[]", 4096)
    try:
        # the far side is the model's traffic generator; we play the receiving driver
        with sim.RegisterAccess(card, options="wire=gen,count=10") as r:
            _reset(r)
            r.write(0x5080, 1 << 9)  # FCTRL.UPE: accept every frame
            r.write(rdbal(0), ring.iova & 0xFFFFFFFF)
            r.write(rdbal(0) + 4, ring.iova >> 32)
            r.write(rdbal(0) + 8, 4096)
            r.write(rdbal(0) + 0x14, (1 << 25) | 2)  # SRRCTL: advanced one-buffer, 2 KiB
            addr = int(ffi.cast("uintptr_t", not_dma))
            for i in range(256):
                struct.pack_into("<QQ", ring.buf, 16 * i, addr, 0)
            r.write(rdbal(0) + 0xC, 0)  # DCA_RXCTRL: bit 12 and relaxed ordering off
            r.write(rdbal(0) + 0x28, ENABLE)
            time.sleep(0.005)
            r.write(rdbal(0) + 0x18, 255)
            r.write(RXCTRL, 1)
            r.write(0x42A0, (3 << 13) | (1 << 12))  # AUTOC: restart auto-negotiation
            _wait_fault(card, "rx queue 0 descriptor 0: buffer address")
            assert bytes(ffi.buffer(not_dma, 60)) == bytes(60), "the model wrote the frame anyway"
            assert struct.unpack_from("<I", ring.buf, 8)[0] & 1 == 0, "DD set on a refused write"
    finally:
        ring.free()


async def test_model_port_cabled_to_a_pair_end_both_ways():
    # peer=DEVICE: port 0's cable goes to a software device; here one end of a pair, whose
    # other end the test holds: software <-> ixgbe driver on the model
    card = _card()
    opts = {"flow_control": True, "overflow": "pause", "batch_size": 32}
    async with aioixy.open(f"sim-82599:{card}:0", options=f"peer=pair:{card}w:b", **opts) as m, \
            aioixy.open(f"pair:{card}w:a", **opts) as s:
        rep = await transfer(s, m, 5000, timeout=120)
        assert rep.ok(5000), rep
        rep = await transfer(m, s, 5000, timeout=120)
        assert rep.ok(5000), rep
        assert m.device_stats().rx_packets == 5000 and m.device_stats().tx_packets == 5000


async def test_model_port_cabled_to_the_null_device():
    card = _card()
    async with aioixy.open(f"sim-82599:{card}:0", options="peer=null", promisc=True) as m:
        seqs: list[int] = []
        async for batch in m.rx():
            with batch:
                seqs.extend(frame_seq(p.data) for p in batch)
            if len(seqs) >= 2000:
                break
        # null numbers its frames; the model drops what finds no descriptor (counted as
        # missed), so what arrives is increasing, never repeated
        assert all(x < y for x, y in itertools.pairwise(seqs))
        assert m.device_stats().rx_packets >= 2000


async def test_peer_option_errors():
    with pytest.raises(aioixy.DeviceNotFound, match="peer=nosuchdev"):
        await aioixy.open(f"sim-82599:{_card()}:0", options="peer=nosuchdev")
    with pytest.raises(aioixy.InvalidOption, match="needs wire=cable"):
        await aioixy.open(f"sim-82599:{_card()}:0", options="wire=loop,peer=null")


def test_model_answers_the_82598_register_aliases():
    # Linux and ixy program SRRCTL, DCA_RXCTRL and RAL/RAH of the first 16 queues/addresses at
    # their 82598 addresses; the 82599 decodes both, and so must the model
    card = _card()
    ring = Dma(4096)
    try:
        with sim.RegisterAccess(card) as r:
            _reset(r)
            r.write(0x2100 + 4 * 3, (1 << 25) | 4)  # SRRCTL(3) at 0x02100 + 4n
            assert r.read(rdbal(3) + 0x14) == (1 << 25) | 4
            r.write(rdbal(3) + 0xC, 0)  # DCA_RXCTRL(3) at its 82599 address...
            assert r.read(0x2200 + 4 * 3) == 0  # ...reads back at 0x02200 + 4n
            assert r.read(0x5400) == r.read(0xA200) != 0  # RAL(0): the MAC address
            assert r.read(0x5404) == r.read(0xA204)
            r.write(rdbal(3), ring.iova & 0xFFFFFFFF)
            r.write(rdbal(3) + 4, ring.iova >> 32)
            r.write(rdbal(3) + 8, 4096)
            r.write(rdbal(3) + 0x28, ENABLE)  # valid: SRRCTL came through the alias
            time.sleep(0.005)
            assert r.read(rdbal(3) + 0x28) & ENABLE
        assert sim.faults(card) == []
    finally:
        ring.free()
