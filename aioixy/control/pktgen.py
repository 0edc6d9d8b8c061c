"""A running pktgen job as the control plane sees it: its rate can be retuned, paused, resumed,
and its frames (a :class:`~aioixy.FrameSpec`: addresses, ports, sizes, flows) changed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

import aioixy
from aioixy.core.frames import MIN_FRAME
from aioixy.jobs import Job, RateLimiter, check_rate

PKTGEN_FIELDS = ("rate", "running", "frame")
#: the FrameSpec fields a request may change (seed and the like stay the job's)
FRAME_FIELDS = ("dst_mac", "src_mac", "src_ip", "dst_ip", "sport", "dport", "size", "flows",
                "vary", "timestamp", "udp_checksum")


class PktgenError(ValueError):
    """A bad request to change the pktgen job; the message says which field and why."""


@attrs.define
class PktgenControl:
    """The handles the HTTP API needs: the job's limiter (the rate), its counters and its
    generator (the frames; None for a job without one)."""

    limiter: RateLimiter
    job: Job
    port: str
    gen: aioixy.Generator | None = None

    @property
    def size(self) -> int:
        return self.gen.spec.sizes[0] if self.gen is not None else MIN_FRAME

    def to_json(self) -> dict[str, Any]:
        out = {"port": self.port, "running": not self.limiter.paused,
               "rate": self.limiter.rate, "size": self.size, "packets": self.job.packets,
               "bytes": self.job.bytes, "finished": self.job.stop.is_set()}
        if self.gen is not None:
            out["frame"] = self.gen.spec.to_json()
        return out

    def apply(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``{"rate": pps | null, "running": bool, "frame": {FrameSpec fields}}`` (any of
        them); everything is validated before anything changes."""
        unknown = sorted(set(body) - set(PKTGEN_FIELDS))
        if unknown:
            raise PktgenError(f"unknown field {unknown[0]!r} (expected 'rate', 'running' "
                              "and/or 'frame')")
        if not body:
            raise PktgenError("missing field: give 'rate' (packets/s or null), 'running' "
                              "and/or 'frame'")
        running = body.get("running")
        if "running" in body and not isinstance(running, bool):
            raise PktgenError(f"running: {running!r} is not true or false")
        rate = None
        if "rate" in body:
            try:
                rate = check_rate(body["rate"])
            except ValueError as exc:
                raise PktgenError(str(exc)) from None
        spec = self._frame(body["frame"]) if "frame" in body else None
        if spec is not None:
            assert self.gen is not None
            try:
                self.gen.configure(spec)
            except aioixy.InvalidOption as exc:
                raise PktgenError(f"frame: {exc}") from None
        if "rate" in body:
            self.limiter.retune(rate)
        if running is True:
            self.limiter.resume()
        elif running is False:
            self.limiter.pause()
        return self.to_json()

    def _frame(self, frame: Any) -> aioixy.FrameSpec:
        if self.gen is None:
            raise PktgenError("frame: this pktgen job has no generator to change")
        if not isinstance(frame, Mapping) or not frame:
            raise PktgenError(f"frame: {frame!r} is not an object of frame fields "
                              f"({', '.join(FRAME_FIELDS)})")
        unknown = sorted(set(frame) - set(FRAME_FIELDS))
        if unknown:
            raise PktgenError(f"frame: unknown field {unknown[0]!r} (one of "
                              f"{', '.join(FRAME_FIELDS)})")
        fields = dict(frame)
        if isinstance(fields.get("size"), list):
            fields["size"] = tuple(fields["size"])
        spec = attrs.evolve(self.gen.spec, **fields)
        try:  # checked in full before the running generator takes it
            spec.native(self.gen.port.mac, self.gen.port.info.data_room)
        except aioixy.InvalidOption as exc:
            raise PktgenError(f"frame: {exc}") from None
        return spec
