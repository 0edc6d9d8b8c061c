"""Sleeping on a queue's eventfd without paying a syscall per batch.

Each queue has one eventfd, registered with the event loop once (``add_reader``) for the port's
lifetime. A coroutine that finds nothing to do announces it is about to wait
(``aioixy_queue_prepare_wait``, which re-checks the rings after a full fence); only then does the
poller write the eventfd. While Python keeps up with the traffic it never waits, so the poller
never writes and the loop never wakes for nothing.
"""

from __future__ import annotations

import asyncio
import os

from aioixy._ffi import lib
from aioixy.errors import PortClosed


class QueueWaiter:
    """The futures waiting on one queue, and what they wait for."""

    __slots__ = ("_closed", "_efd", "_loop", "_port", "_q", "_rx", "_tx", "_waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop, port, q: int) -> None:
        self._loop = loop
        self._port = port
        self._q = q
        self._efd = lib.aioixy_queue_eventfd(port, q)
        self._waiters: dict[asyncio.Future, tuple[bool, bool]] = {}
        self._rx = 0
        self._tx = 0
        self._closed = False
        loop.add_reader(self._efd, self._on_eventfd)

    def _on_eventfd(self) -> None:
        # runs once per wake-up on the loop's hot path: a plain try costs nothing when the read
        # succeeds, where contextlib.suppress builds a context manager every time
        try:  # noqa: SIM105
            os.read(self._efd, 8)
        except BlockingIOError:  # another wake-up already reset it
            pass
        self._wake_all()

    def _wake_all(self) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)

    def arm(self, fut: asyncio.Future, want_rx: bool, want_tx: bool) -> None:
        """Register `fut`; it completes when the queue may have what any waiter wants (at
        once if it may already: the caller then must yield before re-checking)."""
        if self._closed:
            raise PortClosed("the port is closed")
        self._waiters[fut] = (want_rx, want_tx)
        self._rx += want_rx
        self._tx += want_tx
        # announce everything anyone here waits for: the poller clears the whole announcement
        # when it wakes us, and every waiter re-checks its own condition
        if lib.aioixy_queue_prepare_wait(self._port, self._q, self._rx > 0, self._tx > 0):
            # Ready, but perhaps only for another waiter (tx space while this one waits for
            # rx). Returning "ready" to this caller made it re-check and re-arm in a loop that
            # never yields, starving the waiter that could proceed (`aioixy fwd null pair:x:a`
            # hung so). Instead everyone, this one included, wakes on the next loop turn.
            self._wake_all()

    def disarm(self, fut: asyncio.Future) -> None:
        want = self._waiters.pop(fut, None)
        if want is None:
            return
        self._rx -= want[0]
        self._tx -= want[1]
        if not self._waiters and not self._closed:
            lib.aioixy_queue_cancel_wait(self._port, self._q)

    async def wait(self, want_rx: bool, want_tx: bool) -> None:
        fut = self._loop.create_future()
        self.arm(fut, want_rx, want_tx)
        try:
            if fut.done():
                # awaiting a done future does not yield: give the loop one turn explicitly
                await asyncio.sleep(0)
            else:
                await fut
        finally:
            self.disarm(fut)

    def close(self) -> None:
        if self._closed:
            return
        # the reader goes first: an interruption after it leaves _closed False, and a second
        # close() finishes (removing a reader twice is harmless; never removing it is not)
        if not self._loop.is_closed():
            self._loop.remove_reader(self._efd)
        self._closed = True
        for fut in list(self._waiters):
            if not fut.done():
                fut.set_exception(PortClosed("the port was closed while waiting"))
        self._waiters.clear()


async def wait_any(waiters: list[QueueWaiter], loop: asyncio.AbstractEventLoop) -> None:
    """Wait until any of several queues has rx data (for streams merging queues)."""
    fut = loop.create_future()
    armed = []
    try:
        for w in waiters:
            w.arm(fut, True, False)
            armed.append(w)
            if fut.done():
                break
        if fut.done():
            await asyncio.sleep(0)  # see QueueWaiter.wait
        else:
            await fut
    finally:
        for w in armed:
            w.disarm(fut)
