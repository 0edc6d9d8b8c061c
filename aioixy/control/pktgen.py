"""A running pktgen job as the control plane sees it: its rate can be retuned, paused, resumed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from aioixy.core.frames import MIN_FRAME
from aioixy.jobs import Job, RateLimiter, check_rate

PKTGEN_FIELDS = ("rate", "running")


class PktgenError(ValueError):
    """A bad request to change the pktgen job; the message says which field and why."""


@attrs.define
class PktgenControl:
    """The handles the HTTP API needs: the job's limiter (the rate) and its counters."""

    limiter: RateLimiter
    job: Job
    port: str
    size: int = MIN_FRAME

    def to_json(self) -> dict[str, Any]:
        return {"port": self.port, "running": not self.limiter.paused,
                "rate": self.limiter.rate, "size": self.size, "packets": self.job.packets,
                "bytes": self.job.bytes, "finished": self.job.stop.is_set()}

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"rate": pps | null, "running": bool}`` (either or both); validated before use."""
        unknown = sorted(set(body) - set(PKTGEN_FIELDS))
        if unknown:
            raise PktgenError(f"unknown field {unknown[0]!r} (expected 'rate' and/or 'running')")
        if not body:
            raise PktgenError("missing field: give 'rate' (packets/s or null) and/or 'running'")
        running = body.get("running")
        if "running" in body and not isinstance(running, bool):
            raise PktgenError(f"running: {running!r} is not true or false")
        if "rate" in body:
            try:
                rate = check_rate(body["rate"])
            except ValueError as exc:
                raise PktgenError(str(exc)) from None
            self.limiter.retune(rate)
        if running is True:
            self.limiter.resume()
        elif running is False:
            self.limiter.pause()
        return self.to_json()
