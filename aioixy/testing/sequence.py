"""Traffic with sequence numbers, and the checks every driver is held to.

Used by aioixy's own tests (null, pair, VirtIO in a VM, the 82599 model) and available to users
testing their own network functions. The frames are those of :mod:`aioixy.core.frames` (re-exported
here): a sequence number where the ``null`` device and the 82599 model put theirs, and a payload
pattern that shows any corrupted, truncated or swapped byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import attrs

from aioixy.core.frames import (
    BROADCAST,
    DEFAULT_SRC,
    MAX_FRAME,
    MIN_FRAME,
    SEQ_OFFSET,
    check_frame,
    frame_seq,
    make_frame,
)
from aioixy.core.packet import Packet, PacketBatch
from aioixy.jobs import send_frames

__all__ = [
    "MAX_FRAME", "MIN_FRAME", "SEQ_OFFSET", "SequenceReport", "check_frame", "fill",
    "frame_seq", "make_frame", "receive_sequence", "send_sequence", "sizes_for", "transfer",
]


def sizes_for(count: int, sizes: Sequence[int] = (60, 64, 128, 333, 512, 1000, 1514)) -> list[int]:
    """A deterministic mix of frame sizes, cycling through `sizes` in a scrambled order."""
    n = len(sizes)
    step = next(s for s in (3, 5, 7, 11, 13, 1) if n % s or n == 1)  # coprime: hits every size
    return [sizes[(i * step) % n] for i in range(count)]


def fill(batch: PacketBatch, first_seq: int, sizes: Sequence[int], src: bytes = DEFAULT_SRC,
         dst: bytes = BROADCAST) -> None:
    """Write frames first_seq, first_seq+1, ... of the given sizes into an allocated batch."""
    for k, pkt in enumerate(batch):
        size = sizes[k]
        pkt.length = size
        pkt.data[:] = make_frame(first_seq + k, size, src, dst)


@attrs.define
class SequenceReport:
    """What a receiver saw: counts and every kind of defect found."""

    received: int = 0
    bytes: int = 0
    out_of_order: int = 0
    duplicates: int = 0
    corrupted: int = 0
    last_seq: int = -1
    first_error: str | None = None
    advanced: asyncio.Event = attrs.field(factory=asyncio.Event, repr=False, eq=False)

    @property
    def accounted(self) -> int:
        """Frames seen so far, good or bad."""
        return self.received + self.corrupted + self.duplicates

    def ok(self, expected: int) -> bool:
        return (self.received == expected and not self.out_of_order and not self.duplicates
                and not self.corrupted)


async def send_sequence(port, count: int, sizes: Sequence[int] | None = None,
                        batch: int = 32, queue: int = 0, dst: bytes = BROADCAST,
                        window: int | None = None, progress: SequenceReport | None = None) -> int:
    """Send frames 0..count-1 (sizes from `sizes`, default :func:`sizes_for`), awaiting tx.

    With `window`, at most that many frames are in flight: the sender waits until `progress`
    (the receiver's report) has caught up. This is ack clocking for links whose own
    back-pressure is not order-preserving (QEMU's hub queues frames for a receiver that ran out
    of buffers and may deliver newer ones first).
    """
    sizes = list(sizes) if sizes is not None else sizes_for(count)
    src = bytes.fromhex(port.mac.replace(":", ""))
    sent = 0
    while sent < count:
        n = min(batch, count - sent)
        if window is not None and progress is not None:
            while sent + n - progress.accounted > window:
                progress.advanced.clear()
                await progress.advanced.wait()
        await send_frames(port, [make_frame(sent + k, size, src, dst)
                                 for k, size in enumerate(sizes[sent:sent + n])], queue)
        sent += n
    return sent


async def receive_sequence(port, count: int, timeout: float = 30.0,
                           sizes: Sequence[int] | None = None, verify_bytes: bool = True,
                           queue: int | None = None,
                           report: SequenceReport | None = None) -> SequenceReport:
    """Receive until `count` frames arrived (or `timeout` passed without completing)."""
    sizes = list(sizes) if sizes is not None else sizes_for(count)
    rep = report if report is not None else SequenceReport()
    seen: set[int] = set()
    deadline = time.monotonic() + timeout

    async def consume() -> None:
        async for b in port.rx(queue):
            with b:
                for pkt in b:
                    _account(rep, seen, pkt, sizes, verify_bytes)
            rep.advanced.set()
            if rep.received + rep.duplicates >= count:
                return

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(consume(), max(0.0, deadline - time.monotonic()))
    return rep


def _account(rep: SequenceReport, seen: set[int], pkt: Packet, sizes: Sequence[int],
             verify: bool) -> None:
    data = pkt.data
    try:
        if verify:
            seq = frame_seq(data)
            check_frame(data, sizes[seq] if 0 <= seq < len(sizes) else None)
        else:
            seq = frame_seq(data)
    except AssertionError as exc:
        rep.corrupted += 1
        rep.first_error = rep.first_error or str(exc)
        return
    if seq in seen:
        rep.duplicates += 1
        rep.first_error = rep.first_error or f"duplicate seq {seq}"
        return
    seen.add(seq)
    if seq != rep.last_seq + 1:
        rep.out_of_order += 1
        rep.first_error = rep.first_error or f"seq {seq} after {rep.last_seq}"
    rep.last_seq = seq
    rep.received += 1
    rep.bytes += len(data)


async def transfer(tx_port, rx_port, count: int, sizes: Sequence[int] | None = None,
                   timeout: float = 60.0, window: int | None = None) -> SequenceReport:
    """Send `count` sequenced frames from tx_port and check what rx_port receives."""
    sizes = list(sizes) if sizes is not None else sizes_for(count)
    rep = SequenceReport()
    receiver = asyncio.ensure_future(receive_sequence(rx_port, count, timeout, sizes, report=rep))
    await asyncio.sleep(0)
    sender = asyncio.ensure_future(send_sequence(tx_port, count, sizes, window=window,
                                                 progress=rep))
    try:
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_EXCEPTION)
        if sender.done() and not sender.cancelled() and sender.exception():
            raise sender.exception()
        return await receiver
    finally:
        sender.cancel()
