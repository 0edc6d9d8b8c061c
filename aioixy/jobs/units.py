"""Numbers for people: rates scaled to their unit (pps, kpps, Mpps; bit/s .. Gbit/s) and counts
with thousands separators. Status lines and summaries print these; JSON keeps the raw numbers.

A kernel port moves a few thousand packets a second and a NIC tens of millions: a fixed unit
reads ``0.000 Mpps`` for the first and an unreadable integer for the second.
"""

from __future__ import annotations

import math

_PREFIXES = ((1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""))


def scaled(value: float, unit: str) -> str:
    """``value`` with three significant digits and an SI prefix: 0 pps, 950 pps, 12.3 kpps,
    1.00 Mpps (never ``1000 kpps``)."""
    if not math.isfinite(value):
        return f"{value} {unit}"
    if value == 0:
        return f"0 {unit}"
    for i, (factor, prefix) in enumerate(_PREFIXES):
        if abs(value) >= factor or factor == 1.0:
            text = _three_digits(value / factor)
            # rounding can carry into the next prefix (999.96 k -> 1000 k): use it instead
            if i > 0 and abs(float(text)) >= 1000:
                bigger, big_prefix = _PREFIXES[i - 1]
                text, prefix = _three_digits(value / bigger), big_prefix
            return f"{text} {prefix}{unit}"
    raise AssertionError("unreachable: the last prefix takes every value")


def _three_digits(v: float) -> str:
    a = abs(v)
    decimals = 2 if a < 10 else 1 if a < 100 else 0
    return f"{v:.{decimals}f}"


def packet_rate(pps: float) -> str:
    return scaled(pps, "pps")


def bit_rate(bytes_per_second: float) -> str:
    """The frames' bits per second (as counted: without FCS, preamble and gap)."""
    return scaled(bytes_per_second * 8, "bit/s")


def count(n: int) -> str:
    """1234567 -> 1,234,567"""
    return f"{n:,}"


def rates(pps: float, bytes_per_second: float) -> str:
    """``1.23 Mpps, 632 Mbit/s``: what a status line shows for a job's throughput."""
    return f"{packet_rate(pps)}, {bit_rate(bytes_per_second)}"
