"""Rate control for the sending jobs: a token bucket that a control plane can retune live."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time


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
