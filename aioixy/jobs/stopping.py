"""Stopping a job cleanly on Ctrl-C and SIGTERM (what `timeout`, systemd and docker send).

Without a handler, SIGINT raises KeyboardInterrupt wherever the loop happens to be and SIGTERM
kills the process: no summary, ports closed by the interpreter's teardown if at all. With one,
the signal only sets an event; the job ends its tasks, closes its ports and says what it did.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: SIGINT first: a test (or a supervisor) that sees SIGTERM caught knows both are
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM set `stop` instead of interrupting whatever runs (on this loop)."""
    loop = asyncio.get_running_loop()
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError):  # not on Windows' loops
            loop.add_signal_handler(sig, stop.set)


async def until_stopped(aw: Awaitable[T], stop: asyncio.Event | None = None,
                        timeout: float | None = None) -> T | None:
    """Await `aw` until it finishes (its result), or until `timeout` passes, Ctrl-C, SIGTERM
    or `stop` is set (None: it was cancelled, and has finished by the time this returns, so
    its ports can be closed). Its exception, if it fails, propagates."""
    if stop is None:
        stop = asyncio.Event()
    stop_on_signals(stop)
    task = asyncio.ensure_future(aw)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait([task, stopper], timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if task.cancelled():
        return None
    return task.result()
