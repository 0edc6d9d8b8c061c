"""The load generator job: numbered test frames at a rate, until a count or a stop."""

from __future__ import annotations

import aioixy
from aioixy.core.frames import MIN_FRAME, make_frame, set_seq
from aioixy.jobs.job import Job
from aioixy.jobs.rate import RateLimiter
from aioixy.jobs.send import send_frames


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
