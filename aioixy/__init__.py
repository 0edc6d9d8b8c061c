"""aioixy: user-space network drivers (Intel 82599, VirtIO) for asyncio.

    async with aioixy.open("null", batch_size=64) as port:
        async for batch in port.rx():
            await port.tx(batch)
"""

from aioixy.core.config import IdlePolicy, PortConfig, path_pool_size
from aioixy.core.generator import FrameSpec, Generator
from aioixy.core.packet import Packet, PacketBatch, merge
from aioixy.core.pollgroup import PollGroup
from aioixy.core.port import Port, RxStream, native_bad_frees, native_pools_alive, open
from aioixy.core.runner import run
from aioixy.core.stats import DeviceStats, LinkStatus, PortStats, QueueStats
from aioixy.core.workers import ServeSummary, Worker, WorkerState, serve
from aioixy.errors import (
    AioixyError,
    BatchBusy,
    DeviceBusy,
    DeviceError,
    DeviceGone,
    DeviceIOError,
    DeviceNotFound,
    DeviceTimeout,
    InvalidOption,
    NoHugepages,
    NotPermitted,
    OutOfMemory,
    PacketRejected,
    PacketReleased,
    PoolExhausted,
    PoolSizeWarning,
    PortClosed,
    PortForked,
    QueuesLeftWarning,
    WrongThread,
)
from aioixy.ops.filter import Filter

__version__ = "0.1.0"

__all__ = [
    "AioixyError", "BatchBusy", "DeviceBusy", "DeviceError", "DeviceGone", "DeviceIOError",
    "DeviceNotFound", "DeviceStats", "DeviceTimeout", "Filter", "FrameSpec", "Generator",
    "IdlePolicy", "InvalidOption", "LinkStatus",
    "NoHugepages", "NotPermitted", "OutOfMemory", "Packet", "PacketBatch", "PacketRejected",
    "PacketReleased", "PollGroup", "PoolExhausted", "PoolSizeWarning", "Port", "PortClosed",
    "PortConfig", "PortForked", "PortStats", "QueueStats", "QueuesLeftWarning", "RxStream",
    "ServeSummary", "Worker", "WorkerState", "WrongThread", "merge", "native_bad_frees",
    "native_pools_alive", "open", "path_pool_size", "run", "serve",
]
