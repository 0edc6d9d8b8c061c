"""JSON views of ports, and the per-port rates the live stream pushes."""

from __future__ import annotations

import time
from typing import Any

import attrs

from aioixy.core.port import Port


def port_info(name: str, port: Port) -> dict[str, Any]:
    """Everything /api/ports shows about one port (a closed port: identity only)."""
    info: dict[str, Any] = {"name": name, "device": port.config.device, "driver": port.driver,
                            "mac": port.mac, "closed": port.closed,
                            "rx_queues": port.rx_queues, "tx_queues": port.tx_queues,
                            "config": attrs.asdict(port.config)}
    if port.closed:
        return info
    stats = attrs.asdict(port.stats())
    info["link"] = attrs.asdict(port.link())
    info["queues"] = stats.pop("queues")
    info["stats"] = stats
    return info


@attrs.define
class _Last:
    t: float
    rx_packets: int
    tx_packets: int
    rx_bytes: int
    tx_bytes: int


@attrs.define
class RateSampler:
    """Turns successive counter readings into packets/s and bits/s per port."""

    _last: dict[str, _Last] = attrs.field(factory=dict)

    def sample(self, ports: dict[str, Port]) -> dict[str, Any]:
        now = time.monotonic()
        out: dict[str, Any] = {}
        for name, port in list(ports.items()):
            if port.closed:
                self._last.pop(name, None)
                continue
            st = port.stats()
            cur = _Last(now, st.rx_packets, st.tx_packets, st.rx_bytes, st.tx_bytes)
            prev = self._last.get(name)
            self._last[name] = cur
            dt = cur.t - prev.t if prev else 0.0

            def rate(field: str, scale: int = 1, _prev=prev, _cur=cur, _dt=dt) -> float:
                if _prev is None or _dt <= 0:
                    return 0.0
                return round((getattr(_cur, field) - getattr(_prev, field)) * scale / _dt, 1)

            out[name] = {"rx_packets": st.rx_packets, "tx_packets": st.tx_packets,
                         "rx_bytes": st.rx_bytes, "tx_bytes": st.tx_bytes,
                         "rx_dropped": st.rx_dropped, "rx_missed": st.rx_missed,
                         "tx_dropped": st.tx_dropped,
                         # the device's own error counters (bad frames, tx failures)
                         "rx_errors": st.device.rx_errors, "tx_errors": st.device.tx_errors,
                         "rx_pps": rate("rx_packets"), "tx_pps": rate("tx_packets"),
                         "rx_bps": rate("rx_bytes", 8), "tx_bps": rate("tx_bytes", 8)}
        for gone in set(self._last) - set(out):
            del self._last[gone]
        return {"time": time.time(), "ports": out}
