"""pytest fixtures for testing network functions built on aioixy (loaded automatically).

    async def test_my_nf(aioixy_pair):
        a, b = aioixy_pair                      # two connected ports, wired in memory
        await inject(a, [frame1, frame2])       # bytes, bytearray, or objects with bytes()
        got = await collect(b, 2, timeout=5)    # list of bytes

    async def test_between(aioixy_pairs):     # a factory: one more pair per call
        outside, nf_in = await aioixy_pairs()   # the test sends into the network function
        nf_out, inside = await aioixy_pairs()   # and reads what it lets through

The fixtures are async: they need pytest-asyncio (and async tests marked ``asyncio``, or
``asyncio_mode = "auto"``). Without it installed, pytest still runs; only a test that asks for
one of them fails, saying what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import pytest

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


LOSSLESS = {"flow_control": True, "overflow": "pause", "batch_size": 32}
#: what the fixtures say when pytest-asyncio is missing (they are coroutines: nothing else
#: could run them)
NEEDS_ASYNCIO = ("the aioixy_pair and aioixy_pairs fixtures are async and need pytest-asyncio: "
                 "pip install pytest-asyncio (or aioixy[test]), and mark async tests "
                 "@pytest.mark.asyncio or set asyncio_mode = \"auto\"")

PairFactory = Callable[..., Awaitable[tuple[aioixy.Port, aioixy.Port]]]


async def _pair(stack: contextlib.AsyncExitStack, **opts: Any
                ) -> tuple[aioixy.Port, aioixy.Port]:
    name = f"pytest{next(_names)}"
    o = {**LOSSLESS, **opts}
    a = await stack.enter_async_context(aioixy.open(f"pair:{name}:a", **o))
    b = await stack.enter_async_context(aioixy.open(f"pair:{name}:b", **o))
    return a, b


try:
    import pytest_asyncio
except ImportError:  # a plugin that fails to import would stop every pytest run of the project
    pytest_asyncio = None

if pytest_asyncio is not None:
    @pytest_asyncio.fixture
    async def aioixy_pair() -> AsyncIterator[tuple[aioixy.Port, aioixy.Port]]:
        """Two ports joined back to back (lossless: flow control on, rx pauses when full)."""
        async with contextlib.AsyncExitStack() as stack:
            yield await _pair(stack)

    @pytest_asyncio.fixture
    async def aioixy_pairs() -> AsyncIterator[PairFactory]:
        """``await aioixy_pairs(**open_options)``: one more connected pair per call (lossless
        unless told otherwise), all closed after the test. A network function sits between
        two pairs: the test sends into one and reads the other."""
        async with contextlib.AsyncExitStack() as stack:
            yield lambda **opts: _pair(stack, **opts)
else:
    @pytest.fixture
    def aioixy_pair() -> None:
        pytest.fail(NEEDS_ASYNCIO, pytrace=False)

    @pytest.fixture
    def aioixy_pairs() -> None:
        pytest.fail(NEEDS_ASYNCIO, pytrace=False)
