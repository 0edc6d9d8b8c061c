"""Poll groups: one native poller thread serving the queues of several ports.

Without a group every queue of a port has a poller thread of its own. A forwarder between two
in-memory ports (``null`` → Python → ``pair``) then runs three pollers beside the event loop,
which on a small machine fight the loop for the cores. A :class:`PollGroup` is one thread that
serves every queue given to it, as a DPDK lcore serves several ports; each queue still has
exactly one poller, so every ring keeps its single producer and single consumer.

The default (``poller="default"``): single-queue ports of in-memory devices (``null``,
``pair:``) opened without ``cpu=`` or a non-default ``idle=`` share the process's default
group. Those devices do no I/O, so one thread keeps up with several of them and the event loop
gets the other core. Hardware, kernel-interface and multi-queue ports keep a thread per queue:
their queues exist to spread work over cores. docs/architecture.md#poll-groups says why.
"""

from __future__ import annotations

import os
import threading
import weakref

import attrs

from aioixy._ffi import ffi, lib
from aioixy.core.config import IdlePolicy, PortConfig
from aioixy.errors import InvalidOption, from_native

#: the most queues one group serves (over all its ports)
MAX_QUEUES: int = lib.AIOIXY_POLL_GROUP_MAX_QUEUES


def _release(ptr: object, pid: int) -> None:
    # a forked child has none of the parent's threads: joining one there would hang
    if os.getpid() == pid:
        lib.aioixy_poll_group_release(ptr)


@attrs.define(eq=False, slots=False)
class PollGroup:
    """One poller thread for several ports: ``aioixy.open(..., poller=group)``.

    ``cpu``: pin the thread to this CPU; ``idle``: its :class:`IdlePolicy` (the ports in the
    group have none of their own). The thread starts now and sleeps while it serves nothing;
    it ends once :meth:`close` was called (or the group was garbage collected) and its last
    port has closed.
    """

    cpu: int | None = attrs.field(default=None)
    idle: IdlePolicy = attrs.field(factory=IdlePolicy)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.idle, IdlePolicy):
            raise InvalidOption(f"idle={self.idle!r}: must be an aioixy.IdlePolicy")
        cpu = self.cpu
        if cpu is not None and (not isinstance(cpu, int) or isinstance(cpu, bool)):
            raise InvalidOption(f"cpu={cpu!r}: must be a CPU number or None")
        c = ffi.new("struct aioixy_poll_group_config *")
        c.cpu = -1 if cpu is None else cpu
        c.idle_spin = self.idle.spin
        c.idle_pause = self.idle.pause
        c.idle_sleep_min_us = self.idle.sleep_min_us
        c.idle_sleep_max_us = self.idle.sleep_max_us
        out = ffi.new("struct aioixy_poller **")
        rc = lib.aioixy_poll_group_create(c, out)
        if rc:
            raise from_native(rc)
        self._ptr = out[0]
        self._finalizer = weakref.finalize(self, _release, out[0], os.getpid())

    @property
    def queues(self) -> int:
        """How many queues (of all its ports) the group's thread serves now."""
        self._check_open()
        return lib.aioixy_poll_group_queues(self._ptr)

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    def close(self) -> None:
        """Give up this handle: no new port may join; the thread ends with its last port."""
        self._finalizer()

    def _check_open(self) -> None:
        if not self._finalizer.alive:
            raise InvalidOption("the poll group is closed: ports can no longer join it")

    def _native(self) -> object:
        self._check_open()
        return self._ptr


_default_lock = threading.Lock()
_default: PollGroup | None = None
_default_pid = 0


def default_group() -> PollGroup:
    """The process's default group (a new one in a forked child: the parent's thread is not
    there)."""
    global _default, _default_pid
    with _default_lock:
        if _default is None or _default_pid != os.getpid():
            _default = PollGroup()
            _default_pid = os.getpid()
        return _default


def resolve(cfg: PortConfig) -> PollGroup | None:
    """The group `cfg`'s port joins, or None for a poller thread per queue."""
    p = cfg.poller
    if isinstance(p, PollGroup):
        if cfg.cpu is not None:
            raise InvalidOption("cpu= does not apply to a port in a poll group: it runs on the "
                                "group's thread (PollGroup(cpu=...))")
        if cfg.idle != IdlePolicy():
            raise InvalidOption("idle= does not apply to a port in a poll group: the group's "
                                "thread idles for all its ports (PollGroup(idle=...))")
        if p.queues + cfg.num_queues > MAX_QUEUES:
            raise InvalidOption(f"the poll group serves {p.queues} queues: {cfg.num_queues} "
                                f"more would pass its limit of {MAX_QUEUES}")
        return p
    if p == "own":
        return None
    if (cfg.num_queues == 1 and cfg.cpu is None and cfg.idle == IdlePolicy()
            and lib.aioixy_port_in_memory(cfg.device.encode())):
        group = default_group()
        if group.queues < MAX_QUEUES:
            return group
    return None
