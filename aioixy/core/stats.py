"""Counters and link state, as immutable attrs snapshots."""

from __future__ import annotations

import attrs


@attrs.frozen
class LinkStatus:
    up: bool
    speed_mbps: int


@attrs.frozen
class DeviceStats:
    """What the device itself counts (hardware counters where it has them)."""

    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int
    rx_missed: int
    rx_errors: int
    tx_errors: int
    #: delivered with a bad IPv4 header or TCP/UDP checksum (``Packet.rx_flags`` says which)
    rx_csum_errors: int = 0
    #: kernel-backed ports: the AF_XDP sockets run zero-copy (the NIC writes into our buffers)
    zero_copy: bool = False
    #: driver-specific counters by name (AF_XDP: its XDP_STATISTICS, wake-up syscalls)
    extra: dict[str, int] = attrs.field(factory=dict, hash=False)


@attrs.frozen
class QueueStats:
    """One queue's poller: what it moved between the device and Python."""

    queue: int
    rx_packets: int
    rx_bytes: int
    rx_dropped: int
    tx_packets: int
    tx_bytes: int
    wakeups: int
    rx_batches: int
    tx_batches: int
    idle_sleeps: int
    rx_ring_used: int
    tx_ring_used: int
    tx_pending: int
    pool_free: int
    pool_size: int


@attrs.frozen
class PortStats:
    """Totals over all queues, plus the per-queue and device views.

    ``rx_dropped``: packets the device delivered but Python's rx ring had no room for.
    ``rx_missed``: packets the device itself could not take (no descriptor / buffer).
    ``tx_dropped``: packets the device accepted but dropped for good (e.g. link down).
    """

    rx_packets: int
    rx_bytes: int
    tx_packets: int
    tx_bytes: int
    rx_dropped: int
    rx_missed: int
    tx_dropped: int
    wakeups: int
    rx_ring_used: int
    tx_ring_used: int
    tx_pending: int
    pool_free: int
    pool_size: int
    queues: tuple[QueueStats, ...]
    device: DeviceStats

    @classmethod
    def combine(cls, queues: tuple[QueueStats, ...], device: DeviceStats) -> PortStats:
        def total(name: str) -> int:
            return sum(getattr(q, name) for q in queues)

        return cls(
            rx_packets=total("rx_packets"),
            rx_bytes=total("rx_bytes"),
            tx_packets=total("tx_packets"),
            tx_bytes=total("tx_bytes"),
            rx_dropped=total("rx_dropped"),
            rx_missed=device.rx_missed,
            tx_dropped=device.tx_errors,
            wakeups=total("wakeups"),
            rx_ring_used=total("rx_ring_used"),
            tx_ring_used=total("tx_ring_used"),
            tx_pending=total("tx_pending"),
            pool_free=total("pool_free"),
            pool_size=total("pool_size"),
            queues=queues,
            device=device,
        )
