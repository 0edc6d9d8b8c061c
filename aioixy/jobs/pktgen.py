"""The load generator job: frames of a :class:`~aioixy.FrameSpec` at a rate, until a count or a
stop. Each batch is filled by one native call (:class:`~aioixy.Generator`): no Python per
packet."""

from __future__ import annotations

import aioixy
from aioixy.jobs.job import Job
from aioixy.jobs.rate import RateLimiter

#: packets per Generator fill and tx call when the port's batch size is smaller: Python's cost
#: is per call, so a larger hand-over is what lets it keep up with a 10 GbE line (14.88 Mpps)
BURST = 256


def burst_for(port: aioixy.Port) -> int:
    """The packets per call for `port`: at least BURST, at most half its tx ring."""
    return max(1, min(max(port.config.batch_size, BURST), port.config.ring_size // 2))


async def pktgen(port: aioixy.Port, job: Job, spec: aioixy.FrameSpec | None = None,
                 count: int | None = None, limiter: RateLimiter | None = None,
                 gen: aioixy.Generator | None = None) -> None:
    """Send the frames of `spec` (or of `gen`, whose spec a control plane may change while this
    runs) until `count`, or job.stop."""
    gen = gen if gen is not None else aioixy.Generator(port, spec)
    burst = burst_for(port)
    limiter = limiter or RateLimiter(None, burst)
    sent = 0
    tx = port.tx
    while not job.stop.is_set() and (count is None or sent < count):
        want = burst if count is None else min(burst, count - sent)
        n = await limiter.allow(want)
        before = gen.bytes
        b = gen.batch(n)
        nbytes = gen.bytes - before
        try:
            await tx(b)
        finally:
            left = len(b)
            if left:  # cancelled while it waited for ring space: count what went
                nbytes -= b.nbytes
                b.release()
            sent += n - left
            job.packets += n - left
            job.bytes += nbytes
