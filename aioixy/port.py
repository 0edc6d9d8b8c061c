"""Ports: ``aioixy.open()``, rx streams, tx with back-pressure, stats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import attrs

from aioixy import errors
from aioixy._ffi import ffi, lib
from aioixy.config import PortConfig
from aioixy.errors import InvalidOption, PoolExhausted, PortClosed
from aioixy.frames import MIN_FRAME
from aioixy.info import PortInfo, port_info
from aioixy.packet import Packet, PacketBatch, handover
from aioixy.stats import DeviceStats, LinkStatus, PortStats, QueueStats
from aioixy.wakeup import QueueWaiter, wait_any

_BUF_ARRAY = "struct aioixy_pkt_buf *[]"
_rx_dequeue = lib.aioixy_rx_dequeue
_tx_enqueue = lib.aioixy_tx_enqueue

#: An rx stream that always finds data would never give the event loop back; after this many
#: consecutive batches it yields once (``asyncio.sleep(0)``), so timers, other streams and an
#: HTTP control plane in the same loop keep running. 16 batches of 64 is ~1k packets: ~100 us
#: of work at the rates this reaches, a negligible cost per yield.
YIELD_EVERY = 16


def native_pools_alive() -> int:
    """Mempools still alive in this process (0 once every port is closed and every batch freed)."""
    return lib.aioixy_mempool_live_count()


class Port:
    """An open device: one native poller thread per queue, rx streams, tx, stats."""

    def __init__(self, native, config: PortConfig, loop: asyncio.AbstractEventLoop) -> None:
        self._p = native
        self.config = config
        self._loop = loop
        info = port_info(native)
        #: what the driver set up (see :class:`aioixy.info.PortInfo`); ``promisc`` as at open
        self.info: PortInfo = info
        self.name: str = info.name
        self.driver: str = info.driver
        self.rx_queues: int = info.rx_queues
        self.tx_queues: int = info.tx_queues
        self.mac: str = info.mac
        self._nq = info.num_queues
        self._waiters = [QueueWaiter(loop, native, q) for q in range(self._nq)]
        self._closed = False
        self._thread = threading.get_ident()

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the pollers and close the device. Batches still held stay valid until freed."""
        if self._closed:
            return
        self._closed = True
        for w in self._waiters:
            w.close()
        lib.aioixy_port_close(self._p)
        self._p = None

    async def aclose(self) -> None:
        """Like :meth:`close`, but a slow device shutdown runs off the event loop."""
        if self._closed:
            return
        self._closed = True
        for w in self._waiters:
            w.close()
        p, self._p = self._p, None
        await self._loop.run_in_executor(None, lib.aioixy_port_close, p)

    async def __aenter__(self) -> Port:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _check(self) -> None:
        if self._closed:
            raise PortClosed(f"port {self.name} is closed")

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

    def _gather(self, packets: PacketBatch | Packet | Iterable[Packet]):
        """(array, count, commit) for what is to be sent; commit(k) hands over the first k."""
        if isinstance(packets, PacketBatch):
            return packets._handover()
        return handover([packets] if isinstance(packets, Packet) else list(packets))

    async def tx(self, packets: PacketBatch | Packet | Iterable[Packet], queue: int = 0) -> int:
        """Send packets; they belong to the port once this returns.

        Waits (without blocking the loop) while the tx ring is full. If cancelled, the packets
        not yet queued remain owned by their batch (and go back to the pool with it).
        """
        self._check()
        self._check_queue(queue, "tx", self.tx_queues)
        arr, n, commit = self._gather(packets)
        sent = 0
        p = self._p
        while True:
            k = _tx_enqueue(p, queue, arr + sent, n - sent)
            if k:
                commit(k)
                sent += k
            if sent == n:
                return n
            await self._waiters[queue].wait(False, True)
            self._check()

    def tx_nowait(self, packets: PacketBatch | Packet | Iterable[Packet], queue: int = 0) -> int:
        """Queue as many packets as fit right now; returns how many (the rest stay yours)."""
        self._check()
        self._check_queue(queue, "tx", self.tx_queues)
        arr, n, commit = self._gather(packets)
        k = _tx_enqueue(self._p, queue, arr, n)
        if k:
            commit(k)
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
        arr = ffi.new(_BUF_ARRAY, max(count, 1))
        if count and not lib.aioixy_port_alloc(self._p, queue, arr, count, size):
            st = self.queue_stats(queue)
            raise PoolExhausted(
                f"cannot allocate {count} packets: queue {queue}'s mempool has {st.pool_free} of "
                f"{st.pool_size} buffers free (release batches, or open with a larger pool_size)"
            )
        return PacketBatch(arr, count)

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
        arr = ffi.new(_BUF_ARRAY, size)
        while True:
            if port._closed:
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
                    self._turn = (self._turn + i + 1) % nq
                    return PacketBatch(arr, n)
            self._since_yield = 0
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


class _Opener:
    """What :func:`open` returns: ``await`` it, or use it with ``async with``."""

    def __init__(self, config: PortConfig) -> None:
        self._config = config
        self._port: Port | None = None

    async def _open(self) -> Port:
        cfg = self._config
        loop = asyncio.get_running_loop()
        native_cfg, keep = cfg.to_native(ffi, lib)

        def do_open():
            out = ffi.new("struct aioixy_port **")
            rc = lib.aioixy_port_open(cfg.device.encode(), native_cfg, out)
            if rc:
                raise errors.from_native(rc)
            return out[0]

        # hardware open waits for reset and link (seconds): never on the event loop thread
        native = await loop.run_in_executor(None, do_open)
        del keep
        try:
            return Port(native, cfg, loop)
        except BaseException:
            lib.aioixy_port_close(native)
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
