"""A running job's shared stop flag and counters: what a status line and a JSON summary show."""

from __future__ import annotations

import asyncio
import time

import attrs

import aioixy


@attrs.define
class Job:
    """Counters a status line and a JSON summary are made of."""

    name: str
    started: float = attrs.field(factory=time.monotonic)
    stopped: float | None = None
    packets: int = 0
    bytes: int = 0
    stop: asyncio.Event = attrs.field(factory=asyncio.Event, repr=False)
    #: what one job adds to its summary (dump: the writer's own drops, the files written)
    extra: dict = attrs.field(factory=dict)

    def summary(self, ports: list[aioixy.Port]) -> dict:
        elapsed = (self.stopped or time.monotonic()) - self.started
        return {
            "job": self.name,
            "seconds": round(elapsed, 3),
            "packets": self.packets,
            "bytes": self.bytes,
            "pps": round(self.packets / elapsed) if elapsed else 0,
            "bps": round(self.bytes * 8 / elapsed) if elapsed else 0,  # the frames' bits
            "ports": {p.name: {"rx_packets": (s := p.stats()).rx_packets,
                               "tx_packets": s.tx_packets, "rx_dropped": s.rx_dropped,
                               "rx_missed": s.rx_missed, "tx_dropped": s.tx_dropped}
                      for p in ports if not p.closed},
            **self.extra,
        }
