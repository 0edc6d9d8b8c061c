"""Port configuration: validated attrs classes and their translation to the native struct.

Every limit and default is the native core's own (the AIOIXY_* macros of core/device.h,
mempool.h, port.h and frames.h, read through the extension), so Python and C cannot disagree.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import attrs

from aioixy._ffi import lib
from aioixy.errors import InvalidOption, PoolSizeWarning
from aioixy.ops.rules import RuleError, RuleSet

MAX_QUEUES: int = lib.AIOIXY_MAX_QUEUES
#: most packets in one native burst or one rx hand-over
MAX_BATCH: int = lib.AIOIXY_MAX_BATCH
#: the fewest buffers a queue's pool gets when pool_size is left to aioixy
MIN_POOL: int = lib.AIOIXY_DEFAULT_POOL_BUFS
#: device descriptors counted when rx_descs / tx_descs are left to the driver: the largest
#: default a driver picks
DEFAULT_DESCS_MAX: int = lib.AIOIXY_DEFAULT_DESCS_MAX


def _power_of_two(lo: int, hi: int):
    def check(inst: object, attr: attrs.Attribute, value: int) -> None:
        if not isinstance(value, int) or value < lo or value > hi or value & (value - 1):
            raise InvalidOption(f"{attr.name}={value!r}: must be a power of two in {lo}..{hi}")

    return check


def _int_range(lo: int, hi: int):
    def check(inst: object, attr: attrs.Attribute, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise InvalidOption(f"{attr.name}={value!r}: must be an integer in {lo}..{hi}")

    return check


def _flag(inst: object, attr: attrs.Attribute, value: object) -> None:
    if not isinstance(value, bool):
        raise InvalidOption(f"{attr.name}={value!r}: must be True or False")


def _text(what: str, empty: bool):
    """A str the native side can take whole: a NUL would cut it short there, silently."""
    def check(inst: object, attr: attrs.Attribute, value: object) -> None:
        if not isinstance(value, str) or (not empty and not value):
            raise InvalidOption(f"{attr.name}={value!r}: must be a {'' if empty else 'non-empty '}"
                                f"string ({what})")
        if "\0" in value:
            raise InvalidOption(f"{attr.name}={value!r}: contains a NUL character")

    return check


@attrs.frozen
class IdlePolicy:
    """How a poller thread behaves when its queue has no work.

    It busy-polls for ``spin`` empty rounds (lowest latency), then spins with a CPU pause hint
    for ``pause`` rounds, then sleeps, doubling from ``sleep_min_us`` up to ``sleep_max_us``, so
    an idle port does not burn a core. ``sleep_max_us=0`` means never sleep (pure busy polling,
    as ixy and DPDK do). Any packet resets it to busy polling.
    """

    spin: int = attrs.field(default=lib.AIOIXY_DEFAULT_IDLE_SPIN, validator=_int_range(0, 1 << 30))
    pause: int = attrs.field(default=lib.AIOIXY_DEFAULT_IDLE_PAUSE,
                             validator=_int_range(0, 1 << 30))
    sleep_min_us: int = attrs.field(default=lib.AIOIXY_DEFAULT_IDLE_SLEEP_MIN_US,
                                    validator=_int_range(1, 1_000_000))
    sleep_max_us: int = attrs.field(default=lib.AIOIXY_DEFAULT_IDLE_SLEEP_MAX_US,
                                    validator=_int_range(0, 1_000_000))

    @classmethod
    def busy(cls) -> IdlePolicy:
        """Never sleep: lowest latency, one core per queue at 100%."""
        return cls(sleep_max_us=0)

    def __attrs_post_init__(self) -> None:
        if self.sleep_max_us and self.sleep_min_us > self.sleep_max_us:
            raise InvalidOption(
                f"sleep_min_us={self.sleep_min_us} is larger than sleep_max_us={self.sleep_max_us}"
            )


def _cpus(value: int | Sequence[int] | None) -> object:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list | tuple | set | frozenset | range):
        return tuple(value)
    return value  # not a CPU list: the validator says so


def _divert(value: object) -> object:
    """divert=: None, an aioixy.ops.RuleSet (its default decides unmatched frames), or a list of
    rule dicts (unmatched frames stay with the kernel)."""
    if value is None or isinstance(value, RuleSet):
        return value
    if isinstance(value, list | tuple):
        rules = RuleSet(default="deny", max_rules=lib.AIOIXY_DIVERT_MAX_RULES)
        try:
            for spec in value:
                if not isinstance(spec, Mapping):
                    raise RuleError(f"{spec!r} is not a rule (a dict such as "
                                    "{'action': 'allow', 'proto': 'udp', 'dport': 9999})")
                rules.add(spec)
        except RuleError as exc:
            raise InvalidOption(f"divert: {exc}") from None
        return rules
    raise InvalidOption(f"divert={value!r}: must be a list of rule dicts or an "
                        "aioixy.ops.RuleSet")


@attrs.frozen
class PortConfig:
    """Everything ``aioixy.open`` accepts; see docs/api.md for each option."""

    device: str = attrs.field(default="null")
    batch_size: int = attrs.field(default=lib.AIOIXY_DEFAULT_BATCH,
                                  validator=_int_range(1, MAX_BATCH))
    #: the most packets one ``async for batch in port.rx()`` step hands over: under load the
    #: stream takes several native bursts at once (whatever the ring holds, up to this), so the
    #: event loop's per-wake-up cost is paid per hundreds of packets; when light it returns at
    #: once with what is there. 0: 4 x batch_size (at most MAX_BATCH).
    rx_burst_max: int = attrs.field(default=0, validator=_int_range(0, MAX_BATCH))
    rx_queues: int = attrs.field(default=1, validator=_int_range(1, MAX_QUEUES))
    tx_queues: int = attrs.field(default=1, validator=_int_range(1, MAX_QUEUES))
    ring_size: int = attrs.field(default=lib.AIOIXY_DEFAULT_RING_SIZE,
                                 validator=_power_of_two(lib.AIOIXY_MIN_RING_SIZE,
                                                         lib.AIOIXY_MAX_RING_SIZE))
    #: buffers per queue mempool; None: enough for everything this port's own rings can hold
    #: (``capacity``), at least MIN_POOL
    pool_size: int | None = attrs.field(
        default=None, validator=attrs.validators.optional(
            _int_range(lib.AIOIXY_MIN_POOL_BUFS, lib.AIOIXY_MAX_POOL_BUFS)))
    #: what is asked for: a driver may raise it (``Port.info`` says what it set up)
    buf_size: int = attrs.field(default=lib.AIOIXY_DEFAULT_BUF_SIZE,
                                validator=_power_of_two(lib.AIOIXY_MIN_BUF_SIZE,
                                                        lib.AIOIXY_MAX_BUF_SIZE))
    rx_descs: int = attrs.field(default=0, validator=_int_range(0, lib.AIOIXY_MAX_DESCS))
    tx_descs: int = attrs.field(default=0, validator=_int_range(0, lib.AIOIXY_MAX_DESCS))
    # None: the device's default (see __attrs_post_init__); always a concrete value afterwards
    overflow: Literal["drop", "pause"] | None = attrs.field(default=None)
    idle: IdlePolicy = attrs.field(factory=IdlePolicy)
    cpu: tuple[int, ...] | None = attrs.field(default=None, converter=_cpus)
    promisc: bool = attrs.field(default=False, validator=_flag)
    force: bool = attrs.field(default=False, validator=_flag)
    vfio: bool = attrs.field(default=True, validator=_flag)
    pkt_size: int = attrs.field(default=lib.AIOIXY_FRAME_MIN, validator=_int_range(
        lib.AIOIXY_FRAME_MIN, lib.AIOIXY_MAX_BUF_SIZE - lib.AIOIXY_PKT_HEADER))
    flow_control: bool | None = attrs.field(default=None,
                                            validator=attrs.validators.optional(_flag))
    link_timeout: float = attrs.field(default=lib.AIOIXY_DEFAULT_LINK_TIMEOUT_MS / 1000)
    rx: bool = attrs.field(default=True, validator=_flag)
    #: the poller thread(s): "default" (in-memory single-queue ports share the process's
    #: default poll group, others get a thread per queue), "own" (a thread per queue), or an
    #: aioixy.PollGroup (its thread serves every queue of the port)
    poller: object = attrs.field(default="default")
    #: ``xdp:``: complete partial TCP/UDP checksums of received frames (traffic the host
    #: itself generated on a veth, tap or virtio_net carries them; AF_XDP does not say which
    #: frames do). ``packet:`` always completes them, from the kernel's per-frame status;
    #: other devices deliver what the wire carried. See docs/kernel-ports.md.
    fix_checksums: bool = attrs.field(default=False, validator=_flag)
    #: ``xdp:`` / ``packet:``: take only the frames these firewall rules allow (compiled into the
    #: XDP program / a socket filter at open; later changes to a RuleSet do not reach it); every
    #: other frame stays with the kernel. See docs/kernel-ports.md.
    divert: RuleSet | None = attrs.field(default=None, converter=_divert, eq=False)
    options: str = attrs.field(default="", validator=_text("driver options, 'key=value,...'",
                                                           empty=True))

    @device.validator
    def _check_device(self, attr: attrs.Attribute, value: str) -> None:
        _text("a device name", empty=False)(self, attr, value)

    @idle.validator
    def _check_idle(self, attr: attrs.Attribute, value: IdlePolicy) -> None:
        if not isinstance(value, IdlePolicy):
            raise InvalidOption(f"idle={value!r}: must be an aioixy.IdlePolicy")

    @overflow.validator
    def _check_overflow(self, attr: attrs.Attribute, value: str | None) -> None:
        if value is not None and value not in ("drop", "pause"):
            raise InvalidOption(f"overflow={value!r}: must be 'drop' or 'pause'")

    @cpu.validator
    def _check_cpu(self, attr: attrs.Attribute, value: tuple[int, ...] | None) -> None:
        if value is None:
            return
        allowed = os.sched_getaffinity(0)
        if not isinstance(value, tuple) or not value:
            raise InvalidOption(f"cpu={value!r}: must be a CPU number or a non-empty list of "
                                f"them (allowed: {sorted(allowed)})")
        for c in value:
            if not isinstance(c, int) or isinstance(c, bool) or c not in allowed:
                raise InvalidOption(
                    f"cpu={c!r} is not a CPU this process may run on (allowed: {sorted(allowed)})"
                )

    @poller.validator
    def _check_poller(self, attr: attrs.Attribute, value: object) -> None:
        # a PollGroup (core/pollgroup.py, which builds on this module) or one of the two words
        if value not in ("default", "own") and not hasattr(value, "_native"):
            raise InvalidOption(f"poller={value!r}: must be 'default', 'own' or an "
                                "aioixy.PollGroup")

    @link_timeout.validator
    def _check_timeout(self, attr: attrs.Attribute, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not 0 <= value <= 600:
            raise InvalidOption(f"link_timeout={value!r}: must be 0..600 seconds")

    def __attrs_post_init__(self) -> None:
        if self.divert is not None and not self.device.startswith(("xdp:", "packet:")):
            raise InvalidOption(f"divert: {self.device!r} is not a kernel port (xdp:IFACE or "
                                "packet:IFACE); other devices take every frame of their wire")
        # `pair` is the testing device: lossless unless asked otherwise (a full wire pushes
        # back on the sender, a full rx ring leaves packets on the wire), so a test sees every
        # packet it sent. Devices that model a NIC drop on overflow, as a NIC does.
        lossless = self.device.startswith("pair:")
        if self.overflow is None:
            object.__setattr__(self, "overflow", "pause" if lossless else "drop")
        if self.flow_control is None:
            object.__setattr__(self, "flow_control", lossless)
        if self.pool_size is not None and self.pool_size < self.capacity:
            warnings.warn(
                f"pool_size={self.pool_size} is smaller than the {self.capacity} buffers this "
                f"port's rings and descriptors hold when full ({self._capacity_terms()}): a "
                "lossless path through it can run the pool dry (PoolExhausted); leave pool_size "
                "out to size it from the rings", PoolSizeWarning, stacklevel=4)

    def _capacity_terms(self) -> str:
        rxd = self.rx_descs or DEFAULT_DESCS_MAX
        txd = self.tx_descs or DEFAULT_DESCS_MAX
        return (f"{rxd} rx + {txd} tx descriptors, 2 x {self.ring_size} ring slots, "
                f"{self.rx_hand_over} + {self.batch_size} in flight")

    @property
    def capacity(self) -> int:
        """Buffers of one queue's pool this port can hold at once, all of its rings full: the
        device's rx and tx descriptors, the rx and tx rings between poller and Python, an rx
        hand-over and a tx batch in Python's hands. A pool this large cannot run dry while
        back-pressure works; a path that forwards buffers without copying through several
        ports needs the sum of theirs (``path_pool_size``)."""
        return ((self.rx_descs or DEFAULT_DESCS_MAX) + (self.tx_descs or DEFAULT_DESCS_MAX)
                + 2 * self.ring_size + self.rx_hand_over + self.batch_size)

    @property
    def pool_buffers(self) -> int:
        """The pool size in effect: pool_size, or sized from the rings."""
        return self.pool_size if self.pool_size is not None else max(MIN_POOL, self.capacity)

    @property
    def rx_hand_over(self) -> int:
        """The effective rx_burst_max."""
        return self.rx_burst_max or min(MAX_BATCH, 4 * self.batch_size)

    @property
    def num_queues(self) -> int:
        return max(self.rx_queues, self.tx_queues)

    def to_native(self, ffi, lib, group: object = None):
        """The ``struct aioixy_port_config`` for this config; keeps ``options`` alive with it.
        `group`: the PollGroup the port joins (pollgroup.resolve), or None."""
        c = ffi.new("struct aioixy_port_config *")
        lib.aioixy_port_config_defaults(c)
        d = c.dev
        d.rx_queues = self.rx_queues
        d.tx_queues = self.tx_queues
        d.rx_descs = self.rx_descs
        d.tx_descs = self.tx_descs
        d.pool_bufs = self.pool_buffers
        d.buf_size = self.buf_size
        d.link_timeout_ms = int(self.link_timeout * 1000)
        d.force = self.force
        d.promisc = self.promisc
        d.vfio = self.vfio
        d.pkt_size = self.pkt_size
        d.flow_control = self.flow_control
        d.tx_only = not self.rx
        d.fix_checksums = self.fix_checksums
        opts = ffi.new("char[]", self.options.encode())
        keep: list[object] = [opts]
        if self.divert is not None:
            rules = list(self.divert)
            if len(rules) > lib.AIOIXY_DIVERT_MAX_RULES:
                raise InvalidOption(f"divert: {len(rules)} rules; at most "
                                    f"{lib.AIOIXY_DIVERT_MAX_RULES} compile into the kernel's "
                                    "filter")
            arr = ffi.new("struct aioixy_divert_rule[]", max(1, len(rules)))
            for slot, r in zip(arr, rules, strict=False):
                slot.src, slot.src_mask = _prefix_pair(r.src)
                slot.dst, slot.dst_mask = _prefix_pair(r.dst)
                slot.proto = -1 if r.proto is None else r.proto
                slot.dport = -1 if r.dport is None else r.dport
                slot.allow = r.action == "allow"
            d.divert = True
            d.divert_rules = arr
            d.divert_count = len(rules)
            d.divert_default = self.divert.default == "allow"
            keep.append(arr)
        d.options = opts
        c.batch_size = self.batch_size
        c.rx_ring_size = self.ring_size
        c.tx_ring_size = self.ring_size
        c.overflow = (lib.AIOIXY_OVERFLOW_DROP if self.overflow == "drop"
                      else lib.AIOIXY_OVERFLOW_PAUSE)
        c.idle_spin = self.idle.spin
        c.idle_pause = self.idle.pause
        c.idle_sleep_min_us = self.idle.sleep_min_us
        c.idle_sleep_max_us = self.idle.sleep_max_us
        if self.cpu is not None:
            for q in range(self.num_queues):
                c.cpus[q] = self.cpu[q % len(self.cpu)]
        c.rx_enabled = self.rx
        if group is not None:
            c.poller = group._native()
        return c, keep


def path_pool_size(*configs: PortConfig) -> int:
    """A pool size for buffers that cross all of these ports without being copied (a generator
    whose frames are forwarded zero-copy through a lossless chain): the sum of their capacities,
    so the chain's back-pressure stops the sender before its pool can run dry."""
    return max(MIN_POOL, sum(c.capacity for c in configs))


def _prefix_pair(net) -> tuple[int, int]:
    """(address, mask) of an IPv4 prefix, (0, 0) for "any"."""
    if net is None:
        return 0, 0
    return int(net.network_address), int(net.netmask)
