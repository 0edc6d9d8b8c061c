"""Worker processes: one network function run by N processes, each with its share of an
interface's traffic (``aioixy.serve``).

Python passes one core by processes, not threads. Each worker opens its own ports, so nothing
native is shared or inherited: workers are started with multiprocessing's *spawn* (a fresh
interpreter), never by forking a process that holds ports. For ``packet:IF`` the supervisor names
one ``PACKET_FANOUT`` group (``fanout_group=``) that the sockets of every worker join, so the kernel
spreads flows over the workers (hash of the flow: every frame of a flow goes to one worker). A
worker that dies loses only the frames in its own rings; the kernel hashes new frames over the
sockets that remain, and the supervisor starts a replacement that joins the group again.

Workers report their ports' counters to the supervisor over a pipe every ``stats_interval``
seconds, and once more when they end; :class:`ServeSummary` sums them.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from aioixy.core.port import Port
from aioixy.core.port import open as open_port
from aioixy.errors import InvalidOption

#: the counters a worker reports per port (PortStats attributes), summed by the supervisor
COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "rx_dropped", "rx_missed",
            "tx_dropped", "wakeups")
#: a worker that dies this soon after its start counts as failing to start
_EARLY_DEATH_S = 1.0
#: consecutive early deaths after which the supervisor gives up instead of restarting forever
_MAX_EARLY_DEATHS = 3


@attrs.define
class Worker:
    """What the network function gets: its ports (one per device given to ``serve``, in that
    order), its index, and ``stop``, set when the supervisor stops the workers (the function
    should return soon after; it is cancelled after the grace period)."""

    index: int
    ports: list[Port]
    stop: asyncio.Event
    #: (device, driver options) as this worker must open them (``open_ports=False``: the
    #: function opens its ports itself and appends them to ``ports`` to have them reported)
    devices: list[tuple[str, str]] = attrs.field(factory=list)

    @property
    def port(self) -> Port:
        return self.ports[0]

    def options_for(self, device: str) -> str:
        """The driver options this worker opens ``device`` with (its fanout group)."""
        for dev, opts in self.devices:
            if dev == device:
                return opts
        raise InvalidOption(f"{device}: not one of this worker's devices")


@attrs.define
class WorkerState:
    """One worker slot as the supervisor sees it (all its incarnations)."""

    index: int
    pid: int = 0
    #: how many times this slot was restarted after its worker died
    restarts: int = 0
    #: counters per port: the finished incarnations' totals plus the running one's last report
    stats: dict[str, dict[str, int]] = attrs.field(factory=dict)
    #: counters of incarnations that ended (a restart starts the port's counters at zero)
    _done: dict[str, dict[str, int]] = attrs.field(factory=dict)
    #: what the network function returned (its last incarnation), None if it did not return
    result: Any = None
    #: the running incarnation has opened its ports
    ready: bool = False
    exitcode: int | None = None
    error: str | None = None

    def _report(self, stats: dict[str, dict[str, int]]) -> None:
        self.stats = {
            name: {k: self._done.get(name, {}).get(k, 0) + v for k, v in counters.items()}
            for name, counters in stats.items()
        }
        for name, counters in self._done.items():
            self.stats.setdefault(name, dict(counters))

    def _incarnation_ended(self) -> None:
        self._done = {n: dict(c) for n, c in self.stats.items()}

    def total(self, counter: str) -> int:
        return sum(c.get(counter, 0) for c in self.stats.values())


@attrs.define
class ServeSummary:
    workers: list[WorkerState]
    seconds: float

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self.workers)

    def total(self, counter: str) -> int:
        """A counter (``rx_packets``, ...) summed over every worker and port."""
        return sum(w.total(counter) for w in self.workers)

    @property
    def results(self) -> list[Any]:
        return [w.result for w in self.workers]


def _worker_devices(devices: tuple[str, ...], workers: int,
                    options: str) -> list[tuple[str, str]]:
    """(device, driver options) per device for every worker: a fanout group per packet:
    interface, named after the supervisor's pid so that two supervisors on one host differ."""
    out = []
    for k, dev in enumerate(devices):
        opts = options
        if dev.startswith("packet:") and workers > 1:
            if "fanout_group=" in options:
                raise InvalidOption(f"{dev}: fanout_group= is chosen by the supervisor with "
                                    "workers > 1")
            group = (os.getpid() * 8 + k) & 0xFFFF
            opts = f"{options},fanout_group={group}" if options else f"fanout_group={group}"
        elif dev.startswith("xdp:") and workers > 1:
            raise InvalidOption(f"{dev}: worker processes share packet: interfaces only so far "
                                "(one XDP program and XSKMAP for several processes is not "
                                "implemented yet); use packet:"
                                f"{dev[4:]} with workers > 1")
        out.append((dev, opts))
    return out


def _stats_of(ports: list[Port]) -> dict[str, dict[str, int]]:
    out = {}
    for p in ports:
        if not p.closed:
            st = p.stats()
            out[p.name] = {c: getattr(st, c) for c in COUNTERS}
    return out


async def _worker(nf: Callable[[Worker], Awaitable[Any]], index: int,
                  devices: list[tuple[str, str]], open_options: dict[str, Any],
                  conn: multiprocessing.connection.Connection, interval: float,
                  grace: float, open_ports: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    parent = multiprocessing.parent_process()
    if parent is not None:  # a supervisor killed outright (SIGKILL) leaves no orphans behind
        loop.add_reader(parent.sentinel, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(open_port(dev, options=opts, **open_options))
                 for dev, opts in devices] if open_ports else []
        conn.send(("started", os.getpid()))
        task = asyncio.create_task(nf(Worker(index, ports, stop, devices)))

        async def report() -> None:
            while True:
                conn.send(("stats", _stats_of(ports)))
                await asyncio.sleep(interval)

        reporter = asyncio.create_task(report())
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait([task, stopped], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait([task], timeout=grace)
            task.cancel()
        reporter.cancel()
        stopped.cancel()
        await asyncio.gather(reporter, stopped, return_exceptions=True)
        try:
            result = await task
        except asyncio.CancelledError:
            result = None
        except Exception as exc:  # the supervisor reports it; the worker exits non-zero
            conn.send(("stats", _stats_of(ports)))
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            raise
        await asyncio.sleep(0.05)  # let the pollers hand the last frames to the devices
        conn.send(("stats", _stats_of(ports)))
    conn.send(("done", result))


def _worker_main(nf: Callable[[Worker], Awaitable[Any]], index: int,
                 devices: list[tuple[str, str]], open_options: dict[str, Any],
                 conn: multiprocessing.connection.Connection, interval: float, grace: float,
                 uvloop: bool, open_ports: bool) -> None:
    """The spawned process: runs the network function on its own ports until stopped."""
    from aioixy.core.runner import run

    run(_worker(nf, index, devices, open_options, conn, interval, grace, open_ports),
        uvloop=uvloop)


@attrs.define
class _Slot:
    state: WorkerState
    proc: Any = None
    conn: Any = None
    started: float = 0.0
    early_deaths: int = 0
    finished: bool = False  # the network function returned: not restarted


class Supervisor:
    """Starts N workers, restarts one that dies, stops all on SIGINT/SIGTERM or ``stop()``.

    ``run()`` blocks until every worker has finished (returned from the network function) or the
    workers were stopped; ``on_stats(states)`` is called whenever a worker reported."""

    def __init__(self, nf: Callable[[Worker], Awaitable[Any]], devices: tuple[str, ...], *,
                 workers: int, restart: bool = True, stats_interval: float = 0.5,
                 grace: float = 2.0, uvloop: bool = False, duration: float | None = None,
                 on_stats: Callable[[list[WorkerState]], None] | None = None,
                 options: str = "", open_ports: bool = True, **open_options: Any) -> None:
        if not devices:
            raise InvalidOption("serve: name at least one device")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 256:
            raise InvalidOption(f"workers={workers!r}: must be an integer 1..256")
        if not callable(nf):
            raise InvalidOption(f"serve: {nf!r} is not a function")
        self._nf = nf
        self._devices = _worker_devices(tuple(devices), workers, options)
        self._open_options = open_options
        self._restart = restart
        self._interval = stats_interval
        self._grace = grace
        self._uvloop = uvloop
        self._duration = duration
        self._on_stats = on_stats
        self._open_ports = open_ports
        self._ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(WorkerState(i)) for i in range(workers)]
        self._stopping = False

    @property
    def states(self) -> list[WorkerState]:
        return [s.state for s in self._slots]

    def stop(self) -> None:
        """Stop every worker (safe from a signal handler or another thread)."""
        self._stopping = True

    def _start(self, slot: _Slot) -> None:
        rd, wr = self._ctx.Pipe(duplex=False)
        proc = self._ctx.Process(
            target=_worker_main, name=f"aioixy-worker-{slot.state.index}",
            args=(self._nf, slot.state.index, self._devices, self._open_options, wr,
                  self._interval, self._grace, self._uvloop, self._open_ports))
        proc.start()
        wr.close()  # the child holds the write end: EOF when it is gone
        slot.proc, slot.conn, slot.started = proc, rd, time.monotonic()
        slot.state.pid = proc.pid or 0
        slot.state.exitcode, slot.state.ready = None, False

    def _drain(self, slot: _Slot) -> bool:
        """Read what the worker sent; False once its pipe is closed."""
        reported = False
        try:
            while slot.conn.poll():
                kind, *payload = slot.conn.recv()
                if kind == "started":
                    slot.state.pid, slot.state.ready = payload[0], True
                elif kind == "stats":
                    slot.state._report(payload[0])
                    reported = True
                elif kind == "done":
                    slot.state.result = payload[0]
                    slot.finished = True
                elif kind == "error":
                    slot.state.error = payload[0]
        except (EOFError, OSError):
            return False
        if reported and self._on_stats:
            self._on_stats(self.states)
        return True

    def _ended(self, slot: _Slot) -> None:
        slot.proc.join()
        self._drain(slot)
        slot.conn.close()
        st = slot.state
        st.exitcode, st.ready = slot.proc.exitcode, False
        st._incarnation_ended()
        slot.proc = None
        if self._stopping or slot.finished or not self._restart:
            slot.finished = True
            return
        early = time.monotonic() - slot.started < _EARLY_DEATH_S
        slot.early_deaths = slot.early_deaths + 1 if early else 0
        if slot.early_deaths >= _MAX_EARLY_DEATHS:
            st.error = st.error or f"worker {st.index} died at start {slot.early_deaths} times"
            slot.finished = True
            return
        st.restarts += 1
        self._start(slot)

    def _signal_workers(self, sig: int) -> None:
        for s in self._slots:
            if s.proc is not None and s.proc.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(s.proc.pid, sig)

    def run(self) -> ServeSummary:
        handlers = {}
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda *_: self.stop())
        t0 = time.monotonic()
        deadline = t0 + self._duration if self._duration is not None else None
        try:
            for s in self._slots:
                self._start(s)
            stop_sent = 0.0
            while any(s.proc is not None for s in self._slots):
                if deadline is not None and time.monotonic() >= deadline:
                    self._stopping = True
                if self._stopping and not stop_sent:
                    stop_sent = time.monotonic()
                    self._signal_workers(signal.SIGTERM)
                elif stop_sent and time.monotonic() - stop_sent > self._grace + 20:
                    self._signal_workers(signal.SIGKILL)  # stuck past its grace: end it
                live = [s for s in self._slots if s.proc is not None]
                ready = multiprocessing.connection.wait(
                    [s.conn for s in live] + [s.proc.sentinel for s in live], timeout=0.2)
                for s in live:
                    if s.conn in ready:
                        self._drain(s)
                    if s.proc.sentinel in ready:
                        self._ended(s)
        finally:
            self._stopping = True
            self._signal_workers(signal.SIGKILL)
            for s in self._slots:
                if s.proc is not None:
                    s.proc.join()
            for sig, h in handlers.items():
                signal.signal(sig, h)
        return ServeSummary(self.states, round(time.monotonic() - t0, 3))


def serve(nf: Callable[[Worker], Awaitable[Any]], *devices: str, workers: int = 1,
          **options: Any) -> ServeSummary:
    """Run ``nf(worker)`` in ``workers`` processes, each on its own ports of ``devices``, until
    every call returned or SIGINT/SIGTERM (or ``duration=`` seconds) stopped them.

    ``nf`` must be importable by a fresh interpreter (a module-level ``async def``, or a
    ``functools.partial`` of one). A worker that dies is restarted (``restart=False``: not).
    Other keyword arguments: ``stats_interval``, ``grace``, ``uvloop``, ``duration``,
    ``on_stats``, ``open_ports`` (False: ``nf`` opens its ports itself, with
    ``worker.options_for(device)``), and ``aioixy.open``'s options (``batch_size``, ...).
    """
    return Supervisor(nf, devices, workers=workers, **options).run()
