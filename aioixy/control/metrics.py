"""``GET /metrics``: Prometheus text exposition, read from the ports at scrape time.

A custom collector rather than Counter objects updated on the packet path: the native pollers
already count everything, so a scrape reads those counters and the fast path pays nothing.
Each application gets its own CollectorRegistry, so several control planes (tests) coexist.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from aioixy.control.state import ControlPlane
from aioixy.core.workers import COUNTERS as WORKER_COUNTERS
from aioixy.core.workers import WorkerState

# (PortStats attribute, metric name without the aioixy_port_ prefix / _total suffix, help)
_PORT_COUNTERS = (
    ("rx_packets", "rx_packets", "Packets received into the rx ring"),
    ("rx_bytes", "rx_bytes", "Bytes received into the rx ring"),
    ("tx_packets", "tx_packets", "Packets handed to the device"),
    ("tx_bytes", "tx_bytes", "Bytes handed to the device"),
    ("rx_dropped", "rx_dropped", "Packets dropped because the rx ring was full"),
    ("rx_missed", "rx_missed", "Packets the device had no buffer for"),
    ("tx_dropped", "tx_dropped", "Packets the device dropped for good"),
    ("wakeups", "wakeups", "Event loop wake-ups (eventfd writes) by the pollers"),
)
_PORT_GAUGES = (
    ("pool_free", "pool_free_buffers", "Free buffers in the port's mempools"),
    ("pool_size", "pool_size_buffers", "Buffers in the port's mempools"),
    ("rx_ring_used", "rx_ring_used", "Packets waiting in rx rings for Python"),
    ("tx_ring_used", "tx_ring_used", "Packets waiting in tx rings for the poller"),
)
_QUEUE_COUNTERS = ("rx_packets", "rx_bytes", "rx_dropped", "tx_packets", "tx_bytes")


class PortCollector(Collector):
    def __init__(self, control: ControlPlane) -> None:
        self._control = control

    def collect(self) -> Iterator[Metric]:
        ports = [(n, p) for n, p in self._control.ports.items() if not p.closed]
        stats = {n: p.stats() for n, p in ports}
        for attr, name, doc in _PORT_COUNTERS:
            m = CounterMetricFamily(f"aioixy_port_{name}", doc, labels=["port"])
            for n, st in stats.items():
                m.add_metric([n], getattr(st, attr))
            yield m
        for attr, name, doc in _PORT_GAUGES:
            g = GaugeMetricFamily(f"aioixy_port_{name}", doc, labels=["port"])
            for n, st in stats.items():
                g.add_metric([n], getattr(st, attr))
            yield g
        up = GaugeMetricFamily("aioixy_port_link_up", "1 if the link is up", labels=["port"])
        speed = GaugeMetricFamily("aioixy_port_link_speed_mbps", "Link speed",
                                  labels=["port"])
        for n, p in ports:
            link = p.link()
            up.add_metric([n], int(link.up))
            speed.add_metric([n], link.speed_mbps)
        yield up
        yield speed
        for attr in _QUEUE_COUNTERS:
            q = CounterMetricFamily(f"aioixy_queue_{attr}", f"Per-queue {attr}",
                                    labels=["port", "queue"])
            for n, st in stats.items():
                for qs in st.queues:
                    q.add_metric([n, str(qs.queue)], getattr(qs, attr))
            yield q
        yield from self._pktgen()
        yield from self._firewall()

    def _pktgen(self) -> Iterator[Metric]:
        pg = self._control.pktgen
        if pg is None:
            return
        rate = GaugeMetricFamily("aioixy_pktgen_rate_pps",
                                 "Configured pktgen rate (0 = paused, NaN = unlimited)")
        lim = pg.limiter
        rate.add_metric([], 0.0 if lim.paused else (lim.rate if lim.rate else float("nan")))
        yield rate
        sent = CounterMetricFamily("aioixy_pktgen_packets", "Packets generated")
        sent.add_metric([], pg.job.packets)
        yield sent

    def _firewall(self) -> Iterator[Metric]:
        fw = self._control.firewall
        if fw is None:
            return
        hits = CounterMetricFamily("aioixy_firewall_rule_hits", "Packets decided by a rule",
                                   labels=["rule", "action"])
        for rule in fw:
            hits.add_metric([str(rule.id), rule.action], fw.hits.get(rule.id, 0))
        hits.add_metric(["default", fw.default], fw.default_hits)
        yield hits


CONTENT_TYPE = CONTENT_TYPE_LATEST


def make_registry(control: ControlPlane) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortCollector(control))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


class WorkersCollector(Collector):
    """The counters of worker processes (``aioixy.serve`` / ``--workers``), read from what they
    last reported to their supervisor: ``aioixy_port_*`` summed over the workers (the names a
    single process exports), and ``aioixy_worker_*`` per worker, labelled ``worker`` and
    ``port``."""

    def __init__(self, states: Callable[[], list[WorkerState]]) -> None:
        self._states = states

    def collect(self) -> Iterator[Metric]:
        states = self._states()
        docs = {attr: doc for attr, _, doc in _PORT_COUNTERS}
        for counter in WORKER_COUNTERS:
            total = CounterMetricFamily(f"aioixy_port_{counter}", docs[counter],
                                        labels=["port"])
            per = CounterMetricFamily(f"aioixy_worker_{counter}",
                                      f"{docs[counter]}, by one worker", labels=["worker", "port"])
            sums: dict[str, int] = {}
            for w in states:
                for port, counters in sorted(w.stats.items()):
                    per.add_metric([str(w.index), port], counters.get(counter, 0))
                    sums[port] = sums.get(port, 0) + counters.get(counter, 0)
            for port, v in sorted(sums.items()):
                total.add_metric([port], v)
            yield total
            yield per
        restarts = CounterMetricFamily("aioixy_worker_restarts",
                                       "Times the supervisor restarted a dead worker",
                                       labels=["worker"])
        up = GaugeMetricFamily("aioixy_worker_up", "1 while the worker runs with its ports open",
                               labels=["worker"])
        for w in states:
            restarts.add_metric([str(w.index)], w.restarts)
            up.add_metric([str(w.index)], int(w.ready))
        yield restarts
        yield up


def serve_worker_metrics(host: str, port: int,
                         states: Callable[[], list[WorkerState]]) -> Callable[[], None]:
    """A read-only ``GET /metrics`` for a supervisor (a thread of prometheus_client's own: the
    supervisor runs no event loop); returns the function that shuts it down."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WorkersCollector(states))
    server, thread = start_http_server(port, addr=host, registry=registry)

    def shutdown() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return shutdown
