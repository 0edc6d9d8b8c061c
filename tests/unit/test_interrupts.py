"""Probes: a Python exception between a native call and the bookkeeping after it (issue 16).

A signal handler that raises (Ctrl-C, SIGTERM turned into SystemExit, an alarm) runs right
after a native call returns, before the next line: after the tx ring took buffers and before the
batch recorded it, after the rx ring handed buffers over and before a PacketBatch owned them,
after a close started and before the port recorded it. None of these may free a buffer twice,
send one twice, leak one, or leave a device open. docs/probes.md lists the probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import os
import signal
import warnings
from pathlib import Path

import pytest

import aioixy
from aioixy.core import wakeup
from aioixy.testing import SEQ_OFFSET, make_frame

pytestmark = [pytest.mark.usefixtures("no_leaks"),
              pytest.mark.filterwarnings("ignore::aioixy.PoolSizeWarning")]
_ids = itertools.count()
_CORE = Path(aioixy.__file__).parent / "core"
#: where ownership moves: the storm raises only in these files
_OWNERSHIP = frozenset(str(_CORE / f) for f in ("port.py", "packet.py"))


def _name(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_ids)}"


class Storm(Exception):
    """What the alarm handler raises."""


def _poller_threads() -> int:
    """Native poller threads of this process (named aioixy-qN)."""
    n = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            n += (task / "comm").read_text().startswith("aioixy-q")
    return n


# --- a real signal storm --------------------------------------------------------------------

@contextlib.contextmanager
def _alarm_storm(interval: float = 100e-6):
    """SIGALRM every `interval` s; its handler raises Storm whenever it interrupts the port or
    packet module, where ownership moves. Not elsewhere: an exception inside a callback of the
    event loop (asyncio's, or the eventfd reader in wakeup.py) loses that wake-up, which is not
    what this probes and would only hang the test."""
    raised = [0]

    def handler(signum, frame):
        if frame is not None and frame.f_code.co_filename in _OWNERSHIP:
            raised[0] += 1
            raise Storm

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, interval, interval)
    try:
        yield raised
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


async def _storm_traffic(a: aioixy.Port, b: aioixy.Port, seconds: float, numbered: bool):
    """Send from a and receive on b for `seconds` under the storm, retrying what each
    interrupted call left: (received sequence numbers, duplicates, interruptions)."""
    seen: set[int] = set()
    dups = [0]
    stop = asyncio.Event()

    async def sender() -> None:
        seq = 0
        mode = itertools.cycle(("batch", "list", "nowait"))
        while not stop.is_set():
            with contextlib.suppress(Storm):
                try:
                    batch = a.alloc(32, size=60)
                except aioixy.PoolExhausted:  # null: its rx ring holds most of the pool
                    await asyncio.sleep(0.001)
                    continue
                if numbered:
                    for i, pkt in enumerate(batch):
                        pkt.write(make_frame(seq + i))
                seq += 32
                how = next(mode)
                # what an interrupted tx left is the batch's: send the rest until none is left
                while len(batch) and not stop.is_set():
                    with contextlib.suppress(Storm):
                        if how == "batch":
                            await a.tx(batch)
                        elif how == "list":
                            await a.tx(list(batch))
                        else:
                            a.tx_nowait(batch)
                            await asyncio.sleep(0)
                batch.release()
            await asyncio.sleep(0)

    async def receiver() -> None:
        stream = None
        while stream is None:
            with contextlib.suppress(Storm):
                stream = b.rx()
        while True:
            try:
                batch = await stream.__anext__()
                if numbered:
                    for s in batch.field_at(SEQ_OFFSET + 4, 4).tolist():
                        if s in seen:
                            dups[0] += 1
                        seen.add(s)
                batch.release()
            except Storm:
                continue
            except StopAsyncIteration:
                return

    recv = asyncio.create_task(receiver())
    send = asyncio.create_task(sender())
    with _alarm_storm() as raised:
        await asyncio.sleep(seconds)
        stop.set()
        with contextlib.suppress(Storm):
            await send
        while not send.done():
            with contextlib.suppress(Storm):
                await send
    # drain what is still on its way, then stop the receiver
    await asyncio.sleep(0.2)
    recv.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await recv
    return seen, dups[0], raised[0]


@pytest.mark.parametrize("kind", ["null", "pair"])
async def test_signal_storm_during_tx_and_rx_frees_and_sends_every_buffer_once(kind):
    bad = aioixy.native_bad_frees()
    if kind == "null":
        a = await aioixy.open("null", pool_size=4096)
        b = a
    else:
        n = _name("storm")
        a = await aioixy.open(f"pair:{n}:a", pool_size=4096)
        b = await aioixy.open(f"pair:{n}:b", pool_size=4096)
    try:
        seen, dups, raised = await _storm_traffic(a, b, 2.0, numbered=kind == "pair")
        assert raised > 100, "the storm hardly interrupted anything: nothing was probed"
        assert dups == 0, f"{dups} frames arrived twice (a buffer was sent while in flight)"
        assert aioixy.native_bad_frees() == bad, "the native free path refused double frees"
        if kind == "pair":
            assert len(seen) > 1000
        gc.collect()
        # quiet now: every buffer is back (nothing held, rings drained on the pair)
        for port in {a, b}:
            if port.driver == "pair":
                st = port.stats()
                assert st.pool_free == st.pool_size, st
    finally:
        for port in {a, b}:
            await port.aclose()
    assert aioixy.native_bad_frees() == bad


# --- close interrupted (a second Ctrl-C), and ports nobody closed ------------------------------

@pytest.mark.parametrize("how", ["close", "aclose"])
async def test_an_interrupted_close_is_finished_by_the_next_close(how, monkeypatch):
    """The second Ctrl-C lands inside close(): the port must still count as open natively, so
    the next close() (or the finaliser) really closes it; before, `closed` was set first and
    every later close() returned at once, leaving the device open (DeviceBusy)."""
    n = _name("intclose")
    threads = _poller_threads()
    port = await aioixy.open(f"pair:{n}:a", poller="own")  # its own thread, to see it end
    real_close = wakeup.QueueWaiter.close
    calls = []

    def interrupted_close(self):
        calls.append(self)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real_close(self)

    monkeypatch.setattr(wakeup.QueueWaiter, "close", interrupted_close)
    with pytest.raises(KeyboardInterrupt):
        if how == "close":
            port.close()
        else:
            await port.aclose()
    assert port.closed  # unusable at once ...
    with pytest.raises(aioixy.DeviceBusy):  # ... but the device is still open: not forgotten
        await aioixy.open(f"pair:{n}:a")
    assert _poller_threads() > threads  # the interrupted close stopped nothing yet
    port.close()
    assert _poller_threads() == threads
    again = await aioixy.open(f"pair:{n}:a")  # the retry finished the close
    again.close()
    port.close()  # and a third call is a no-op


async def test_a_port_dropped_without_close_is_closed_with_a_resource_warning():
    n = _name("dropped")
    threads = _poller_threads()
    port = await aioixy.open(f"pair:{n}:a", pool_size=512, poller="own")
    held = port.alloc(8)  # a batch outlives its port: it stays valid and keeps its pool
    assert _poller_threads() > threads
    fds = len(os.listdir("/proc/self/fd"))
    with pytest.warns(ResourceWarning, match=rf"unclosed port pair:{n}:a"):
        del port
        gc.collect()
    assert _poller_threads() == threads, "the poller thread outlived its dropped port"
    assert len(os.listdir("/proc/self/fd")) < fds, "the port's eventfds were not closed"
    again = await aioixy.open(f"pair:{n}:a")  # the device was released (no DeviceBusy)
    held[0].write(b"still valid")
    held.release()
    again.close()


async def test_a_port_closed_properly_gives_no_resource_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        port = await aioixy.open("null")
        port.close()
        del port
        gc.collect()
        async with aioixy.open("null") as port:
            pass
        del port
        gc.collect()
