"""Ports: ``aioixy.open()``, rx streams, tx with back-pressure, stats."""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from aioixy import errors
from aioixy._ffi import ffi, lib
from aioixy.core import packet
from aioixy.core.config import PortConfig
from aioixy.core.frames import MIN_FRAME
from aioixy.core.info import PortInfo, port_info
from aioixy.core.memlimit import check_request
from aioixy.core.packet import Handover, Packet, PacketBatch, handover
from aioixy.core.pollgroup import PollGroup, resolve
from aioixy.core.stats import DeviceStats, LinkStatus, PortStats, QueueStats
from aioixy.core.wakeup import QueueWaiter, wait_any
from aioixy.errors import (
    AioixyError,
    InvalidOption,
    PacketRejected,
    PoolExhausted,
    PortClosed,
    PortForked,
    QueuesLeftWarning,
    WrongThread,
)

_rx_dequeue = lib.aioixy_rx_dequeue
_tx_check = lib.aioixy_tx_check
_get_ident = threading.get_ident

#: An rx stream that always finds data would never give the event loop back; after this many
#: consecutive batches it yields once (``asyncio.sleep(0)``), so timers, other streams and an
#: HTTP control plane in the same loop keep running. 16 batches of 64 is ~1k packets: ~100 us
#: of work at the rates this reaches, a negligible cost per yield.
YIELD_EVERY = 16

#: The same for senders: a ``tx`` that always finds ring space never suspends, so a sender
#: coroutine would starve every receiver on its loop (their rings overflow while it runs). Every
#: this many tx calls without a wait, tx yields once before it takes the packets.
TX_YIELD_EVERY = YIELD_EVERY

# every open Port of this process, so a fork can disarm them in the child
_open_ports: weakref.WeakSet[Port] = weakref.WeakSet()


def native_pools_alive() -> int:
    """Mempools still alive in this process (0 once every port is closed and every batch freed)."""
    return lib.aioixy_mempool_live_count()


def native_bad_frees() -> int:
    """Buffers the native free path refused to free because they were free already (a double
    free it caught), since the process started: a correct program never raises it."""
    return lib.aioixy_mempool_bad_frees()


class Port:
    """An open device: one native poller thread per queue, rx streams, tx, stats.

    A port dropped without :meth:`close` is closed when it is garbage collected, with a
    :class:`ResourceWarning` (as asyncio transports and files do)."""

    #: the native port while it is open: ``_h[0]``, set to NULL by the native close itself
    _h: Any = None

    def __init__(self, native, config: PortConfig, loop: asyncio.AbstractEventLoop,
                 group: PollGroup | None = None, handle=None) -> None:
        self._p = native
        self.config = config
        #: the poll group whose thread serves this port's queues, or None (a thread per queue)
        self.poll_group: PollGroup | None = group
        self._loop = loop
        info = port_info(native)
        #: what the driver set up (see :class:`aioixy.core.info.PortInfo`); ``promisc`` as at open
        self.info: PortInfo = info
        self.name: str = info.name
        self.driver: str = info.driver
        self.rx_queues: int = info.rx_queues
        self.tx_queues: int = info.tx_queues
        self.mac: str = info.mac
        self._nq = info.num_queues
        self._pid_opened = os.getpid()
        self._waiters = [QueueWaiter(loop, native, q) for q in range(self._nq)]
        self._closed = False
        self._forked = False
        # the loop's thread: the only one that may use the port (SPSC rings, waiters)
        self._thread = _get_ident()
        self._tx_turns = 0
        #: the frame lengths tx accepts (shorter or longer: PacketRejected)
        self.min_tx_len: int = info.min_tx_len
        _open_ports.add(self)
        if info.rx_queues_left and config.rx:
            total = info.rx_queues + info.rx_queues_left
            warnings.warn(QueuesLeftWarning(
                f"{info.name}: this port receives on {info.rx_queues} of the interface's {total} "
                f"rx queues; frames on the other {info.rx_queues_left} go to the kernel, not to "
                f"this port (open with rx_queues={total}, or the CLI's --queues all)"),
                stacklevel=3)
        if handle is None:
            handle = ffi.new("struct aioixy_port *[1]", [native])
        self._h = handle  # last: a Port that failed half-way is closed by its opener

    @property
    def max_tx_len(self) -> int:
        """The longest frame tx accepts now: a kernel port follows the interface's MTU."""
        self._check()
        return port_info(self._p).max_tx_len

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the pollers and close the device. Batches still held stay valid until freed.

        In a forked child this returns at once: the child has no poller threads to stop, and
        the device (and its pools) stay the parent's. Interrupted (a second Ctrl-C), it may be
        called again and finishes the job: the port counts as open until the native close ran.
        """
        h = self._h
        if h is None or not h[0]:
            return
        self._check_thread()
        self._closed = True
        for w in self._waiters:
            w.close()
        lib.aioixy_port_close_at(h)  # NULLs h[0] in the same call: never closed twice
        self._p = None
        _open_ports.discard(self)

    async def aclose(self) -> None:
        """Like :meth:`close`, but a slow device shutdown runs off the event loop."""
        h = self._h
        if h is None or not h[0]:
            return
        self._check_thread()
        self._closed = True
        for w in self._waiters:
            w.close()
        # the executor finishes the close even if this task is cancelled or interrupted
        await self._loop.run_in_executor(None, lib.aioixy_port_close_at, h)
        self._p = None
        _open_ports.discard(self)

    def __del__(self) -> None:
        h = self._h
        if h is None or not h[0] or self._forked:
            return
        warnings.warn(f"unclosed port {self.name} ({self.driver}): closing it now (close it with "
                      "port.close(), await port.aclose() or async with)", ResourceWarning,
                      stacklevel=2, source=self)
        self._closed = True
        loop = self._loop
        if loop.is_closed() or _get_ident() == self._thread:
            for w in self._waiters:
                w.close()
            lib.aioixy_port_close_at(h)
        else:
            # garbage collected on another thread: the loop must drop the eventfds itself, and
            # before the native close frees their numbers for reuse
            try:
                loop.call_soon_threadsafe(_close_later, self._waiters, h)
            except RuntimeError:  # the loop closed meanwhile: nothing to remove from it
                lib.aioixy_port_close_at(h)

    async def __aenter__(self) -> Port:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check(self) -> None:
        if self._closed or _get_ident() != self._thread:
            self._raise_unusable()

    def _check_thread(self) -> None:
        if _get_ident() != self._thread:
            self._raise_unusable()

    def _raise_unusable(self) -> None:
        if self._forked:
            raise PortForked(
                f"port {self.name} was opened by process {self._pid_opened}, the parent of this "
                "forked process: the child has none of its poller threads, so the port cannot be "
                "used here (close() is a no-op; open a new port in the child)"
            )
        if _get_ident() != self._thread:
            raise WrongThread(
                f"port {self.name} belongs to the thread running its event loop (ident "
                f"{self._thread}); it was called from thread {_get_ident()}: hand the work to "
                "that loop with loop.call_soon_threadsafe or asyncio.run_coroutine_threadsafe"
            )
        raise PortClosed(f"port {self.name} is closed")

    def _after_fork_in_child(self) -> None:
        # no loop call: the eventfds and the epoll set are shared with the parent, whose port is
        # still running. One native call: the child closes its copies of the device's kernel
        # sockets (packet:, xdp:), or they would outlive the parent's close (reopen: DeviceBusy
        # until the child exits); it frees nothing and takes no lock.
        if self._p is not None:
            lib.aioixy_port_forget_after_fork(self._p)
        self._forked = True
        self._closed = True
        self._p = None
        if self._h is not None:
            self._h[0] = ffi.NULL  # the child's copy of the handle
        for w in self._waiters:
            w._closed = True

    def _check_queue(self, queue: int, what: str, limit: int) -> None:
        if not isinstance(queue, int) or not 0 <= queue < limit:
            raise InvalidOption(f"{what} queue {queue!r} does not exist (port has {limit})")

    # --- receive -------------------------------------------------------------------------

    def rx(self, queue: int | None = None, max_batch: int | None = None) -> RxStream:
        """An async iterator of :class:`PacketBatch` from one rx queue, or all of them.

        Each batch holds what the queue has ready, up to ``max_batch`` packets (default: the
        port's ``rx_burst_max``); it never waits for more to arrive.
        """
        self._check()
        if max_batch is None:
            max_batch = self.config.rx_hand_over
        elif isinstance(max_batch, bool) or not isinstance(max_batch, int) \
                or not 1 <= max_batch <= lib.AIOIXY_MAX_BATCH:
            raise InvalidOption(
                f"max_batch={max_batch!r}: must be an integer in 1..{lib.AIOIXY_MAX_BATCH}")
        if queue is None:
            queues = list(range(self.rx_queues))
        else:
            self._check_queue(queue, "rx", self.rx_queues)
            queues = [queue]
        if not self.config.rx:
            raise InvalidOption("this port was opened with rx=False")
        return RxStream(self, queues, max_batch)

    # --- transmit ------------------------------------------------------------------------

    def _gather(self, packets: PacketBatch | Packet | Iterable[Packet]) -> Handover:
        """What is to be sent, as a :class:`~aioixy.core.packet.Handover`."""
        if isinstance(packets, PacketBatch):
            if packets._busy:
                packets._check_idle()
            return packets._handover()
        pk = [packets] if isinstance(packets, Packet) else list(packets)
        h = handover(pk)
        for b in h.batches:
            if b._busy:
                b._check_idle()
        return h

    def can_send_buffers_of(self, other: Port) -> bool:
        """Whether this port can transmit buffers of `other` (e.g. forward its rx batches)
        as they are. False when this is a hardware device and `other`'s pools are memory it
        cannot DMA from (a software port's): copy the bytes into this port's own ``alloc()``."""
        self._check()
        other._check()
        return all(lib.aioixy_port_reaches_pool_of(self._p, other._p, q) for q in range(other._nq))

    def _rejected(self, queue: int, buf, sent: int) -> AioixyError | None:
        """Why the enqueue stopped before `buf`: None if only the ring was full."""
        rc = _tx_check(self._p, queue, buf)
        if not rc:
            return None
        if rc == -lib.AIOIXY_EGONE:
            return errors.from_native(rc)  # DeviceGone: the packets stay with their batch
        msg = ffi.string(lib.aioixy_last_error()).decode(errors="replace")
        return PacketRejected(f"{msg} ({sent} packets before it were queued; it and the rest "
                              "stay with their batch)", sent)

    async def tx(self, packets: PacketBatch | Packet | Iterable[Packet], queue: int = 0) -> int:
        """Send packets; they belong to the port once this returns.

        Waits (without blocking the loop) while the tx ring is full, and yields to the loop
        every few calls even when it has room. If cancelled, the packets not yet queued remain
        owned by their batch (and go back to the pool with it). A packet the device cannot send
        (see :attr:`min_tx_len`, :attr:`max_tx_len`; a buffer it cannot DMA from) raises
        :class:`PacketRejected`: it and the packets after it stay with their batch. A device that
        disappeared (a kernel interface deleted) raises :class:`DeviceGone`, also in a tx that
        was waiting for room; the packets not yet queued stay with their batch.
        """
        self._check()
        self._check_queue(queue, "tx", self.tx_queues)
        if self._tx_turns >= TX_YIELD_EVERY:
            # before anything is taken: a cancellation here leaves every packet with its batch
            self._tx_turns = 0
            await asyncio.sleep(0)
            self._check()
        self._tx_turns += 1
        h = self._gather(packets)
        p = self._p
        sent = h.take(p, queue)
        n = h.n
        if sent == n:
            return n
        # slow path: the batches stay busy until this call returns, so nobody frees or resends
        # a buffer the ring may already hold (a set per batch: an interruption between adding
        # and discarding this hand-over cannot leave a batch busy for ever)
        batches = h.batches
        try:
            for b in batches:
                if b._busy is None:
                    b._busy = set()
                b._busy.add(h)
            while True:
                exc = self._rejected(queue, h.next_buf(), h.sent)
                if exc is not None:
                    raise exc
                self._tx_turns = 0
                await self._waiters[queue].wait(False, True)
                self._check()
                h.take(p, queue)
                if h.sent == n:
                    return n
        finally:
            for b in batches:
                if b._busy:
                    b._busy.discard(h)

    def tx_nowait(self, packets: PacketBatch | Packet | Iterable[Packet], queue: int = 0) -> int:
        """Queue as many packets as fit right now; returns how many (the rest stay yours).

        A packet the device cannot send raises :class:`PacketRejected` (see :meth:`tx`)."""
        self._check()
        self._check_queue(queue, "tx", self.tx_queues)
        h = self._gather(packets)
        k = h.take(self._p, queue)
        if k < h.n:
            exc = self._rejected(queue, h.next_buf(), k)
            if exc is not None:
                raise exc
        return k

    def alloc(self, count: int, size: int = MIN_FRAME, queue: int = 0) -> PacketBatch:
        """`count` fresh zeroed packets of `size` bytes from queue `queue`'s mempool."""
        self._check()
        self._check_queue(queue, "pool", self._nq)
        if not isinstance(count, int) or count < 0:
            raise InvalidOption(f"count={count!r}: must be a non-negative integer")
        room = self.info.data_room
        if not isinstance(size, int) or not 0 <= size <= room:
            raise InvalidOption(f"size={size!r}: must be 0..{room} bytes for this port's buffers")
        batch = PacketBatch(count)  # first: an interruption after the alloc leaks nothing
        if count and not lib.aioixy_port_alloc(self._p, queue, batch._bufs, count, size):
            st = self.queue_stats(queue)
            raise PoolExhausted(
                f"cannot allocate {count} packets: queue {queue}'s mempool has {st.pool_free} of "
                f"{st.pool_size} buffers free (release batches, or open with a larger pool_size)"
            )
        batch._filled(count)
        return batch

    # --- state ---------------------------------------------------------------------------

    def queue_stats(self, queue: int) -> QueueStats:
        self._check()
        s = ffi.new("struct aioixy_queue_stats *")
        lib.aioixy_queue_stats(self._p, queue, s)
        return QueueStats(
            queue=queue, rx_packets=s.rx_packets, rx_bytes=s.rx_bytes, rx_dropped=s.rx_dropped,
            tx_packets=s.tx_packets, tx_bytes=s.tx_bytes, wakeups=s.wakeups,
            rx_batches=s.rx_batches, tx_batches=s.tx_batches, idle_sleeps=s.idle_sleeps,
            rx_ring_used=s.rx_ring_used, tx_ring_used=s.tx_ring_used, tx_pending=s.tx_pending,
            pool_free=s.pool_free, pool_size=s.pool_size,
        )

    def device_stats(self) -> DeviceStats:
        self._check()
        d = ffi.new("struct aioixy_dev_stats *")
        lib.aioixy_port_dev_stats(self._p, d)
        return DeviceStats(
            rx_packets=d.rx_packets, rx_bytes=d.rx_bytes, tx_packets=d.tx_packets,
            tx_bytes=d.tx_bytes, rx_missed=d.rx_missed, rx_errors=d.rx_errors,
            tx_errors=d.tx_errors, rx_csum_errors=d.rx_csum_errors,
            zero_copy=bool(d.zero_copy),
            extra={ffi.string(e.name).decode(): e.value for e in d.extra[0:d.num_extra]},
        )

    def stats(self) -> PortStats:
        queues = tuple(self.queue_stats(q) for q in range(self._nq))
        return PortStats.combine(queues, self.device_stats())

    def link(self) -> LinkStatus:
        self._check()
        out = ffi.new("struct aioixy_link *")
        lib.aioixy_port_link(self._p, out)
        return LinkStatus(up=bool(out.up), speed_mbps=out.speed_mbps)

    @property
    def promiscuous(self) -> bool:
        self._check()
        return port_info(self._p).promisc

    def set_promisc(self, on: bool) -> None:
        self._check()
        rc = lib.aioixy_port_set_promisc(self._p, bool(on))
        if rc:
            raise errors.from_native(rc)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.rx_queues}rx/{self.tx_queues}tx"
        return f"<Port {self.name} driver={self.driver} {state}>"


class RxStream:
    """``async for batch in port.rx()``: batches as they arrive; ends when the port closes."""

    __slots__ = ("_batch", "_loop", "_port", "_queues", "_since_yield", "_turn", "_waiters")

    def __init__(self, port: Port, queues: list[int], max_batch: int) -> None:
        self._port = port
        self._queues = queues
        self._waiters = [port._waiters[q] for q in queues]
        self._batch = max_batch  # one dequeue takes every burst the ring holds, up to this
        self._loop = port._loop
        self._turn = 0
        self._since_yield = 0

    def __aiter__(self) -> RxStream:
        return self

    async def __anext__(self) -> PacketBatch:
        port = self._port
        queues = self._queues
        nq = len(queues)
        size = self._batch
        # the batch exists before the dequeue fills its array: interrupted between the two, it
        # is dropped and its array frees what it got
        batch = PacketBatch(size)
        arr = batch._bufs
        if _get_ident() != port._thread:
            port._raise_unusable()
        while True:
            if port._closed:
                if port._forked:
                    port._raise_unusable()
                raise StopAsyncIteration
            self._since_yield += 1
            if self._since_yield >= YIELD_EVERY:
                self._since_yield = 0
                await asyncio.sleep(0)
                if port._closed:
                    raise StopAsyncIteration
            p = port._p
            for i in range(nq):
                q = queues[(self._turn + i) % nq]
                n = _rx_dequeue(p, q, arr, size)
                if n:
                    batch._filled(n)
                    self._turn = (self._turn + i + 1) % nq
                    return batch
            self._since_yield = 0
            rc = lib.aioixy_port_fault(p)
            if rc:
                raise errors.from_native(rc)  # DeviceGone: nothing will ever arrive
            try:
                if nq == 1:
                    await self._waiters[0].wait(True, False)
                else:
                    await wait_any(self._waiters, self._loop)
            except PortClosed:
                raise StopAsyncIteration from None

    def packets(self) -> PacketStream:
        """The same stream, one :class:`Packet` at a time."""
        return PacketStream(self)


class PacketStream:
    """``async for pkt in port.rx().packets()``.

    Each packet keeps its batch alive; the batch's buffers go back to the pool once neither the
    stream nor any packet of it is referenced (or when they are sent).
    """

    __slots__ = ("_packets", "_rx")

    def __init__(self, rx: RxStream) -> None:
        self._rx = rx
        self._packets: Iterator[Packet] = iter(())  # the current batch's (it keeps it alive)

    def __aiter__(self) -> PacketStream:
        return self

    async def __anext__(self) -> Packet:
        while (pkt := next(self._packets, None)) is None:
            self._packets = iter(())  # drop the spent batch before waiting for the next
            self._packets = iter(await self._rx.__anext__())
        return pkt


async def _finish(fut: asyncio.Future):
    """The result of `fut` (None if it failed), waited for through any cancellation: what it
    does must not be abandoned half-way."""
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            continue
        except Exception:  # reported below as None
            break
    return None if fut.cancelled() or fut.exception() is not None else fut.result()


async def _undo_open(loop: asyncio.AbstractEventLoop, fut: asyncio.Future) -> None:
    """Wait for an abandoned open to finish and close what it opened."""
    native = await _finish(fut)
    if native is not None:
        await _finish(loop.run_in_executor(None, lib.aioixy_port_close, native))


class _Opener:
    """What :func:`open` returns: ``await`` it, or use it with ``async with``."""

    def __init__(self, config: PortConfig) -> None:
        self._config = config
        self._port: Port | None = None

    async def _open(self) -> Port:
        cfg = self._config
        loop = asyncio.get_running_loop()
        group = resolve(cfg)
        native_cfg, keep = cfg.to_native(ffi, lib, group)
        # before any page is touched: a pool the process may not have is an OutOfMemory here,
        # not an OOM kill inside the native open (which writes every buffer's header)
        pool_bytes = cfg.pool_buffers * cfg.buf_size * cfg.num_queues
        check_request(pool_bytes, f"{cfg.device}: {cfg.num_queues} pool(s) of {cfg.pool_buffers} "
                                  f"buffers of {cfg.buf_size} bytes")

        def do_open():
            out = ffi.new("struct aioixy_port **")
            rc = lib.aioixy_port_open(cfg.device.encode(), native_cfg, out)
            if rc:
                raise errors.from_native(rc)
            return out[0]

        # hardware open waits for reset and link (seconds): never on the event loop thread
        fut = loop.run_in_executor(None, do_open)
        try:
            native = await asyncio.shield(fut)
        except asyncio.CancelledError:
            # The open runs on regardless in its thread. Cancellation takes effect once it has
            # finished and its port is closed again: otherwise the device would stay open with
            # its pollers running and nobody holding it (every retry: DeviceBusy).
            await _undo_open(loop, fut)
            raise
        finally:
            del keep
        handle = ffi.new("struct aioixy_port *[1]", [native])
        try:
            return Port(native, cfg, loop, group, handle)
        except BaseException:
            lib.aioixy_port_close_at(handle)
            raise

    def __await__(self):
        return self._open().__await__()

    async def __aenter__(self) -> Port:
        self._port = await self._open()
        return self._port

    async def __aexit__(self, *exc: object) -> None:
        if self._port is not None:
            await self._port.aclose()


def open(device: str = "null", **options: Any) -> _Opener:
    """Open a device as a :class:`Port`.

    ``device``: ``"null"``, ``"pair:NAME:a"`` / ``"pair:NAME:b"``, a PCI address such as
    ``"0000:01:00.0"``, or ``"sim-82599:..."``. Options: see :class:`aioixy.PortConfig`.
    Use as ``async with aioixy.open(...) as port:`` or ``port = await aioixy.open(...)``.
    """
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise InvalidOption(f"unknown option {unknown[0]!r} (aioixy.open takes: "
                            f"{', '.join(sorted(_OPTION_NAMES))}; driver options go in "
                            "options='key=value,...')")
    return _Opener(PortConfig(device=device, **options))


_OPTION_NAMES = frozenset(a.name for a in attrs.fields(PortConfig)) - {"device"}


def _close_later(waiters: list[QueueWaiter], handle) -> None:
    """A collected port's close, on its loop's thread (see Port.__del__)."""
    for w in waiters:
        w.close()
    lib.aioixy_port_close_at(handle)


def _disarm_ports_in_child() -> None:
    packet._forget_buffers_after_fork()
    for port in list(_open_ports):
        port._after_fork_in_child()


os.register_at_fork(after_in_child=_disarm_ports_in_child)
