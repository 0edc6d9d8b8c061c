"""What a driver really set up for a port, as the native core reports it (``aioixy_port_info``).

It may differ from what :class:`aioixy.PortConfig` asked for: the ixgbe driver raises the buffer
size to the 4 KiB its receive descriptors need, so ``data_room`` (not ``buf_size`` of the config)
is what a packet can hold.
"""

from __future__ import annotations

import attrs

from aioixy._ffi import ffi, lib


@attrs.frozen
class PortInfo:
    name: str
    driver: str
    mac: str
    promisc: bool
    rx_queues: int
    tx_queues: int
    #: max(rx_queues, tx_queues): one poller thread and one mempool per queue index
    num_queues: int
    #: bytes per buffer, its 64-byte header included
    buf_size: int
    #: packet bytes a buffer holds: the largest ``alloc(size=...)`` and ``Packet.length``
    data_room: int
    #: buffers per queue mempool
    pool_size: int
    #: frame lengths the device transmits
    min_tx_len: int
    max_tx_len: int
    #: rx queues of the device this port leaves to others: an ``xdp:IF`` port on fewer queues
    #: than the interface has (frames on the others go to the kernel). 0 otherwise.
    rx_queues_left: int = 0


def port_info(native) -> PortInfo:
    """Ask the native port (one call, under its control lock)."""
    i = ffi.new("struct aioixy_port_info *")
    lib.aioixy_port_info(native, i)
    return PortInfo(
        name=ffi.string(i.name).decode(), driver=ffi.string(i.driver).decode(),
        mac=":".join(f"{b:02x}" for b in i.mac), promisc=bool(i.promisc),
        rx_queues=i.rx_queues, tx_queues=i.tx_queues, num_queues=i.num_queues,
        buf_size=i.buf_size, data_room=i.data_room, pool_size=i.pool_size,
        min_tx_len=i.min_tx_len, max_tx_len=i.max_tx_len, rx_queues_left=i.rx_queues_left,
    )
