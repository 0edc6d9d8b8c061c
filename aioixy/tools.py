"""The long-running jobs behind the ``aioixy`` command: pktgen, fwd, dump, replay.

Each is a coroutine taking open ports and a ``Job`` (the shared stop flag and counters), so the
CLI, the examples and the tests run the very same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Sequence

import attrs

import aioixy
from aioixy.frames import MIN_FRAME, make_frame, set_seq
from aioixy.pcap import PcapReader, PcapWriter


@attrs.define
class Job:
    """Counters a status line and a JSON summary are made of."""

    name: str
    started: float = attrs.field(factory=time.monotonic)
    stopped: float | None = None
    packets: int = 0
    bytes: int = 0
    stop: asyncio.Event = attrs.field(factory=asyncio.Event, repr=False)

    def summary(self, ports: list[aioixy.Port]) -> dict:
        elapsed = (self.stopped or time.monotonic()) - self.started
        return {
            "job": self.name,
            "seconds": round(elapsed, 3),
            "packets": self.packets,
            "bytes": self.bytes,
            "pps": round(self.packets / elapsed) if elapsed else 0,
            "ports": {p.name: {"rx_packets": (s := p.stats()).rx_packets,
                               "tx_packets": s.tx_packets, "rx_dropped": s.rx_dropped,
                               "rx_missed": s.rx_missed, "tx_dropped": s.tx_dropped}
                      for p in ports if not p.closed},
        }


class RateLimiter:
    """Token bucket: how many packets may go now to stay at `rate` packets/s (None = no limit).

    ``retune`` and ``pause`` take effect at once, even for a sender asleep waiting for budget,
    so an HTTP request that changes the rate does not wait out the old rate's sleep.
    """

    def __init__(self, rate: float | None, burst: int) -> None:
        self.rate = check_rate(rate)
        self.burst = burst
        self.paused = False
        self._t0 = time.monotonic()
        self._sent = 0
        self._changed = asyncio.Event()

    def retune(self, rate: float | None) -> None:
        self.rate = check_rate(rate)
        self._restart()

    def pause(self) -> None:
        self.paused = True
        self._restart()

    def resume(self) -> None:
        self.paused = False
        self._restart()

    def _restart(self) -> None:
        # a fresh bucket: budget accrued under the old rate (or while paused) is not a burst
        self._t0 = time.monotonic()
        self._sent = 0
        self._changed.set()

    async def allow(self, want: int) -> int:
        while True:
            if self.paused:
                self._changed.clear()
                await self._changed.wait()
                continue
            if self.rate is None:
                return want
            budget = int((time.monotonic() - self._t0) * self.rate) - self._sent
            if budget > 0:
                n = min(want, budget, self.burst)
                self._sent += n
                return n
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(),
                                       max(0.0005, (1 - budget) / self.rate))


def check_rate(rate: float | None) -> float | None:
    """A valid rate (packets/s > 0, finite) or None for no limit; ValueError says why not."""
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate) \
            or rate <= 0:
        raise ValueError(f"rate {rate!r}: must be a positive number of packets per second "
                         "(or null / None for no limit)")
    return float(rate)


async def send_frames(port: aioixy.Port, frames: Sequence[bytes | bytearray | memoryview],
                      queue: int = 0) -> int:
    """Copy `frames` into fresh buffers of `port` and send them; returns how many.

    If cancelled before the port took them, the buffers go back to the pool (nothing leaks).
    """
    if not frames:
        return 0
    with port.alloc(len(frames), size=0, queue=queue) as b:
        for pkt, frame in zip(b, frames, strict=True):
            pkt.write(frame)
        return await port.tx(b, queue=queue)


async def pktgen(port: aioixy.Port, job: Job, size: int = MIN_FRAME, count: int | None = None,
                 limiter: RateLimiter | None = None, batch: int = 64) -> None:
    """Send numbered frames (:mod:`aioixy.frames`) until count, or job.stop."""
    limiter = limiter or RateLimiter(None, batch)
    src = bytes.fromhex(port.mac.replace(":", ""))
    template = bytearray(make_frame(0, size, src))
    seq = 0
    while not job.stop.is_set() and (count is None or seq < count):
        want = batch if count is None else min(batch, count - seq)
        n = await limiter.allow(want)
        frames = []
        for s in range(seq, seq + n):
            set_seq(template, s)
            frames.append(bytes(template))
        await send_frames(port, frames)
        seq += n
        job.packets += n
        job.bytes += n * size


async def forward(src: aioixy.Port, dst: aioixy.Port, job: Job) -> None:
    """Everything src receives goes out of dst, until job.stop."""
    # a hardware dst cannot DMA from a software src's buffers: then every frame is copied
    direct = dst.can_send_buffers_of(src)
    async for batch in src.rx():
        with batch:
            sending = batch if direct else dst.alloc(len(batch), size=0)
            if not direct:
                for o, pkt in zip(sending, batch, strict=True):
                    o.write(pkt.data)
            n, nbytes = len(sending), sending.nbytes
            try:
                await dst.tx(sending)
            finally:
                # a tx cancelled while it waits for ring space has sent a prefix: count it
                job.packets += n - len(sending)
                job.bytes += nbytes - sending.nbytes
                if sending is not batch:
                    sending.release()
        if job.stop.is_set():
            return


async def dump(port: aioixy.Port, job: Job, writer: PcapWriter, count: int | None = None) -> None:
    """Write what `port` receives (a batch per write: the file only ever holds whole records)."""
    async for batch in port.rx():
        with batch:
            pkts = list(batch)
            if count is not None:
                pkts = pkts[:count - job.packets]
            writer.write_many([pkt.data for pkt in pkts], time.time())
            job.packets += len(pkts)
            job.bytes += sum(len(pkt) for pkt in pkts)
            del pkts
        if job.stop.is_set() or (count is not None and job.packets >= count):
            return


def load_pcap(path: str) -> tuple[list[bytes], str | None]:
    """The frames of a pcap file and, if its last record was cut short, what was cut.

    Raises PcapError for a file that is not a readable pcap file, OSError if it cannot be read.
    """
    with open(path, "rb") as f:
        reader = PcapReader(f)
        frames = [data for _, data in reader]
    return frames, reader.truncated


async def replay(port: aioixy.Port, job: Job, path: str, limiter: RateLimiter | None = None,
                 batch: int = 32, frames: list[bytes] | None = None) -> None:
    """Send the frames of the pcap file `path` (or `frames`, already read from it)."""
    limiter = limiter or RateLimiter(None, batch)
    if frames is None:
        frames, _ = load_pcap(path)
    # checked before anything is sent: the port would refuse the frame half-way through
    lo, hi = port.info.min_tx_len, port.info.max_tx_len
    for i, frame in enumerate(frames):
        if not lo <= len(frame) <= hi:
            raise aioixy.InvalidOption(
                f"{path}: packet {i + 1} has {len(frame)} bytes; {port.name} ({port.driver}) "
                f"sends frames of {lo}..{hi} bytes (a buffer holds {port.info.data_room})")
    pos = 0
    while pos < len(frames) and not job.stop.is_set():
        n = await limiter.allow(min(batch, len(frames) - pos))
        chunk = frames[pos:pos + n]
        await send_frames(port, chunk)
        pos += n
        job.packets += n
        job.bytes += sum(map(len, chunk))
