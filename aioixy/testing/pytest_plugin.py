"""pytest fixtures for testing network functions built on aioixy (loaded automatically).

    async def test_my_nf(aioixy_pair):
        a, b = aioixy_pair                      # two connected ports, wired in memory
        await inject(a, [frame1, frame2])       # bytes, bytearray, or objects with bytes()
        got = await collect(b, 2, timeout=5)    # list of bytes
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterable

import pytest_asyncio

import aioixy
from aioixy.jobs import send_frames

_names = itertools.count()


def _to_bytes(frame: object) -> bytes:
    # bytes-like, or scapy packets / dpkt objects, which both support bytes()
    return bytes(frame)  # type: ignore[call-overload]


async def inject(port: aioixy.Port, frames: Iterable[object], queue: int = 0) -> int:
    """Send frames (bytes, scapy or dpkt packets) out of `port`; returns how many."""
    return await send_frames(port, [_to_bytes(f) for f in frames], queue)


async def collect(port: aioixy.Port, count: int, timeout: float = 5.0,
                  queue: int | None = None) -> list[bytes]:
    """Receive `count` frames from `port` as bytes; raises TimeoutError with what arrived."""
    got: list[bytes] = []

    async def run() -> None:
        async for batch in port.rx(queue):
            with batch:
                got.extend(p.tobytes() for p in batch)
            if len(got) >= count:
                return

    try:
        await asyncio.wait_for(run(), timeout)
    except TimeoutError:
        raise TimeoutError(f"expected {count} frames within {timeout}s, got {len(got)}") from None
    return got


@pytest_asyncio.fixture
async def aioixy_pair() -> AsyncIterator[tuple[aioixy.Port, aioixy.Port]]:
    """Two ports joined back to back (lossless: flow control on, rx pauses when full)."""
    name = f"pytest{next(_names)}"
    opts = {"flow_control": True, "overflow": "pause", "batch_size": 32}
    async with aioixy.open(f"pair:{name}:a", **opts) as a, \
            aioixy.open(f"pair:{name}:b", **opts) as b:
        yield a, b
