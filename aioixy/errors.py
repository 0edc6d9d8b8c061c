"""Exceptions raised by aioixy, one class per kind of failure the native core reports."""

from __future__ import annotations

from aioixy._ffi import ffi, lib


class AioixyError(Exception):
    """Base class of every aioixy error."""


class InvalidOption(AioixyError, ValueError):
    """An option or argument is out of range or malformed."""


class DeviceNotFound(AioixyError, LookupError):
    """Unknown device name, no such PCI address, or no driver for the device."""


class DeviceBusy(AioixyError):
    """The device is in use, or carries the host's traffic and was not forced."""


class NoHugepages(AioixyError):
    """Hardware DMA needs reserved 2 MiB hugepages and there are not enough."""


class NotPermitted(AioixyError, PermissionError):
    """The process lacks the rights (root / CAP_SYS_ADMIN) the operation needs."""


class DeviceTimeout(AioixyError, TimeoutError):
    """The device did not answer in time (reset, link, queue enable)."""


class DeviceError(AioixyError):
    """The device is in an error state (e.g. the 82599 model caught a driver fault)."""


class DeviceIOError(AioixyError, OSError):
    """An I/O error talking to the device or sysfs."""


class DeviceGone(DeviceIOError):
    """The device disappeared under the open port (a kernel interface was deleted, moved to
    another network namespace, or deleted and re-created under the same name): nothing can be
    sent or received any more. Close the port and open the interface again."""


class OutOfMemory(AioixyError, MemoryError):
    """No heap or DMA memory left."""


class PoolExhausted(AioixyError):
    """The port's mempool has no free buffers for an allocation."""


class PoolSizeWarning(UserWarning):
    """An explicit pool_size is smaller than what the port's own rings can hold."""


class QueuesLeftWarning(UserWarning):
    """A port receives on fewer rx queues than its device has (``xdp:IF`` opened with
    ``rx_queues`` below the interface's queue count): frames the device puts on the other queues
    go to the kernel, not to the port. Open with ``rx_queues`` = the interface's queues (the CLI's
    ``--queues all``), or name one queue (``xdp:IF:Q``) to say it is meant."""


class PacketReleased(AioixyError):
    """The packet was sent or released: its buffer belongs to someone else now."""


class PortClosed(AioixyError):
    """The port is closed."""


class PacketRejected(InvalidOption):
    """The device cannot send this packet: its length is outside the device's limits, or its
    buffer is memory the device cannot DMA from. The packet (and every one after it in the same
    call) stays with its batch; ``sent`` packets before it were queued."""

    def __init__(self, message: str, sent: int = 0) -> None:
        super().__init__(message)
        self.sent = sent


class BatchBusy(AioixyError):
    """A ``tx`` of this batch is still waiting for ring space: the batch cannot be released or
    sent again until it returns (or is cancelled)."""


class WrongThread(AioixyError, RuntimeError):
    """A port belongs to the thread running the event loop that opened it; another thread
    called it (use ``loop.call_soon_threadsafe`` / ``asyncio.run_coroutine_threadsafe``)."""


class PortForked(PortClosed):
    """The port was opened by the parent of this forked process: the child has none of its
    poller threads and must not touch the device (open a new port in the child)."""


#: The class of each native error code (enum aioixy_err in core/common.h; numbers from there).
_BY_CODE: dict[int, type[AioixyError]] = {
    lib.AIOIXY_EINVAL: InvalidOption,
    lib.AIOIXY_ENODEV: DeviceNotFound,
    lib.AIOIXY_EBUSY: DeviceBusy,
    lib.AIOIXY_ENOHUGE: NoHugepages,
    lib.AIOIXY_EPERM: NotPermitted,
    lib.AIOIXY_ENOMEM: OutOfMemory,
    lib.AIOIXY_EIO: DeviceIOError,
    lib.AIOIXY_ETIMEDOUT: DeviceTimeout,
    lib.AIOIXY_EDEVICE: DeviceError,
    lib.AIOIXY_EGONE: DeviceGone,
}


def from_native(rc: int) -> AioixyError:
    """The exception for a negative AIOIXY_E* return code, with the native message."""
    message = ffi.string(lib.aioixy_last_error()).decode(errors="replace")
    cls = _BY_CODE.get(-rc, AioixyError)
    return cls(message or f"native error {rc}")
