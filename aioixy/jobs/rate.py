"""Rate control for the sending jobs: a token bucket that a control plane can retune live."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

#: The highest rate a job accepts, packets/s: above any NIC's line rate (100 Gb/s of 64-byte
#: frames is ~149 Mpps), and low enough that the token bucket's arithmetic stays exact. A rate
#: like 1e308 would overflow it (``int(inf)``) and kill the job and its control plane.
MAX_RATE = 1e9


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
    """A valid rate (0 < packets/s <= :data:`MAX_RATE`) or None for no limit; ValueError says
    why not."""
    if rate is None:
        return None
    # compared as numbers, never converted first: float(10**400) itself raises OverflowError
    if isinstance(rate, bool) or not isinstance(rate, int | float) \
            or (isinstance(rate, float) and not math.isfinite(rate)) or rate <= 0:
        raise ValueError(f"rate {rate!r}: must be a positive number of packets per second "
                         "(or null / None for no limit)")
    if rate > MAX_RATE:
        shown = f"{rate:.3g}" if isinstance(rate, float) or rate < 10**30 else "a huge number"
        raise ValueError(f"rate {shown}: at most {MAX_RATE:.0e} packets per second (above any "
                         "line rate; null / None for no limit)")
    return float(rate)
