"""One end-to-end suite, every driver held to the same behaviour: the in-memory pair and the
ixgbe driver on the 82599 model run it on any machine; the VM tier runs this same file inside
the guest against two virtio-net NICs of QEMU (AIOIXY_E2E_VIRTIO="ADDR_A,ADDR_B"; legacy, modern
split and modern packed, with the driver options in AIOIXY_E2E_VIRTIO_OPTIONS); the
kernel-backed drivers (KERNEL below) run it on the two ends of a veth pair of their own."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os

import pytest

import aioixy
from aioixy.testing import receive_sequence, send_sequence, sizes_for, transfer

pytestmark = pytest.mark.usefixtures("no_leaks")
_ids = itertools.count()
LOSSLESS = {"flow_control": True, "overflow": "pause", "batch_size": 32}


# set by tests/vm inside the guest: the two virtio NICs QEMU's hub joins
VIRTIO = os.environ.get("AIOIXY_E2E_VIRTIO", "")
# ... and the driver options to open them with (e.g. "ring=packed")
VIRTIO_OPTIONS = os.environ.get("AIOIXY_E2E_VIRTIO_OPTIONS", "")
# set by tests/vm inside the guest: two virtio_net interfaces (the same hub) for xdp:
XDP_IFACES = os.environ.get("AIOIXY_E2E_XDP", "")
# the VM runs only what it was asked for; elsewhere xdp: runs on a veth pair of its own
ONLY = os.environ.get("AIOIXY_E2E_ONLY", "")


@pytest.fixture(autouse=True)
def _kernel_links():
    """veth pairs made by _names for this test, removed afterwards (also on failure)."""
    with contextlib.ExitStack() as stack:
        _links.append(stack)
        try:
            yield
        finally:
            _links.remove(stack)


_links: list[contextlib.ExitStack] = []


def _names(kind: str) -> tuple[str, str]:
    n = f"e2e{next(_ids)}"
    if kind == "virtio":
        a, b = VIRTIO.split(",")
        return a, b
    if kind in KERNEL:
        if kind == "xdp" and XDP_IFACES:
            a, b = XDP_IFACES.split(",")
        else:
            from tests.kernel.links import veth_pair
            a, b = _links[-1].enter_context(veth_pair())
        return f"{kind}:{a}", f"{kind}:{b}"
    return {"pair": (f"pair:{n}:a", f"pair:{n}:b"),
            "sim-82599": (f"sim-82599:{n}:0", f"sim-82599:{n}:1")}[kind]


# Kernel-backed drivers, "KIND:IFACE" on both ends of a veth pair: adding a backend to the suite
# is adding its prefix here.
KERNEL = ["xdp", "packet"]
DEVICES = ["pair", "sim-82599", *(["virtio"] if VIRTIO else []), *KERNEL]
if ONLY:
    DEVICES = ONLY.split(",")
# QEMU's hub may reorder frames for a receiver out of buffers, and a veth (or the hub) drops for
# a socket whose rx ring is full (a veth has no flow control): clock the sender by what arrived
WINDOW = {"virtio": 192, "xdp": 192, "packet": 256}


def _kw(kind: str) -> dict:
    """The open options of the lossless tests (the virtio flavour's driver options added)."""
    return {**LOSSLESS, "options": VIRTIO_OPTIONS} if kind == "virtio" else LOSSLESS

COUNT = {"virtio": 5000, "xdp": 5000}


@pytest.mark.parametrize("kind", DEVICES)
async def test_sequence_integrity_varied_sizes_and_stats_agree(kind):
    na, nb = _names(kind)
    async with aioixy.open(na, **_kw(kind)) as a, aioixy.open(nb, **_kw(kind)) as b:
        count = COUNT.get(kind, 20_000)
        rep = await transfer(a, b, count, timeout=300, window=WINDOW.get(kind))
        assert rep.ok(count), rep
        sa, sb = a.stats(), b.stats()
        assert sa.tx_packets == sb.rx_packets == count
        assert sa.tx_bytes == sb.rx_bytes == sum(sizes_for(count))
        assert sa.device.tx_packets == sb.device.rx_packets == count
        assert sb.rx_dropped == 0


@pytest.mark.parametrize("kind", DEVICES)
async def test_both_directions_at_once(kind):
    na, nb = _names(kind)
    async with aioixy.open(na, **_kw(kind)) as a, aioixy.open(nb, **_kw(kind)) as b:
        n, w = COUNT.get(kind, 10_000) // 2, WINDOW.get(kind)
        r1, r2 = await asyncio.gather(transfer(a, b, n, timeout=300, window=w),
                                      transfer(b, a, n, timeout=300, window=w))
        assert r1.ok(n), r1
        assert r2.ok(n), r2


@pytest.mark.parametrize("kind", DEVICES)
async def test_cancelled_consumer_mid_batch_leaves_pools_whole(kind):
    na, nb = _names(kind)
    async with aioixy.open(na, **_kw(kind)) as a, aioixy.open(nb, **_kw(kind)) as b:
        sender = asyncio.create_task(send_sequence(a, 3000, [60] * 3000))

        async def consume_some() -> None:
            async for batch in b.rx():
                for i, _pkt in enumerate(batch):
                    if i == 3:
                        await asyncio.sleep(10)  # cancelled here, holding a batch
        task = asyncio.create_task(consume_some())
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sender
    # no_leaks checks that every pool (and so every buffer) came back


@pytest.mark.parametrize("kind", DEVICES)
async def test_close_and_reopen_three_times(kind):
    na, nb = _names(kind)
    for _ in range(3):
        async with aioixy.open(na, **_kw(kind)) as a, aioixy.open(nb, **_kw(kind)) as b:
            rep = await transfer(a, b, 500, timeout=120, window=WINDOW.get(kind))
            assert rep.ok(500), rep
            assert a.link().up and b.link().up


# not virtio: QEMU's hub drops for a NIC out of rx buffers without telling the device, so no
# driver can count those losses
@pytest.mark.parametrize("kind", [k for k in DEVICES if k != "virtio"])
async def test_slow_consumer_loses_packets_only_where_counted(kind):
    na, nb = _names(kind)
    # no flow control: a receiver that does not read makes the device or the rx ring drop
    async with aioixy.open(na, rx_descs=64) as a, \
            aioixy.open(nb, rx_descs=64, ring_size=64, overflow="drop") as b:
        count = 4000
        await send_sequence(a, count, [60] * count)
        await asyncio.sleep(0.5)
        rep = await receive_sequence(b, count, timeout=1.0, sizes=[60] * count)
        s = b.stats()
        lost = s.rx_dropped + s.device.rx_missed + a.stats().tx_dropped
        assert lost > 0
        assert rep.received + lost == count, (rep, s)
        assert rep.duplicates == 0 and rep.corrupted == 0
