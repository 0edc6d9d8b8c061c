"""Frames at native speed: a :class:`FrameSpec` says what to send, a :class:`Generator` fills
whole batches of it in one native call each (``ops/gen.c``).

    gen = aioixy.Generator(port, aioixy.FrameSpec(dst_ip="10.0.0.2", dport=9000, flows=16))
    await port.tx(gen.batch(256))        # or: await gen.send(1_000_000)

The frame is the numbered test frame (:mod:`aioixy.core.frames`: Ethernet/IPv4/UDP, a u64
sequence number right after the UDP header) with correct IPv4 and UDP checksums. The template is
built once; per packet only what varies is patched: the sequence number, the flow (source or
destination port or address, round robin over ``flows``), the size (uniform over a range) and
an optional timestamp (u64 nanoseconds since the epoch right after the sequence number, one per
batch). Python's cost is per batch, not per packet.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

import attrs

from aioixy._ffi import ffi, lib
from aioixy.core import frames
from aioixy.errors import InvalidOption, from_native

if TYPE_CHECKING:
    from aioixy.core.packet import PacketBatch
    from aioixy.core.port import Port

#: what ``FrameSpec.vary`` may name: the header field that differs between flows
VARY = {"sport": lib.AIOIXY_GEN_VARY_SPORT, "dport": lib.AIOIXY_GEN_VARY_DPORT,
        "src-ip": lib.AIOIXY_GEN_VARY_SRC_IP, "dst-ip": lib.AIOIXY_GEN_VARY_DST_IP}
MAX_LEN: int = lib.AIOIXY_GEN_MAX_LEN
#: where the timestamp goes (u64 ns, big-endian): right after the sequence number
TS_OFFSET: int = lib.AIOIXY_GEN_TS_OFFSET
_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-][0-9a-fA-F]{2}){5}$")


def parse_mac(text: str, what: str = "MAC") -> bytes:
    """``aa:bb:cc:dd:ee:ff`` (or with dashes) as 6 bytes; InvalidOption says what is wrong."""
    if not isinstance(text, str) or not _MAC.match(text):
        raise InvalidOption(f"{what} {text!r}: expected six hex bytes like 02:00:00:00:00:01")
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


def parse_ipv4(text: str, what: str = "IPv4 address") -> bytes:
    try:
        return ipaddress.IPv4Address(text).packed
    except (ValueError, TypeError):
        raise InvalidOption(f"{what} {text!r}: not an IPv4 address like 198.18.0.2") from None


def parse_size(text: str) -> tuple[int, int]:
    """``60`` or ``60-1514`` (a range: each frame's size drawn uniformly from it)."""
    lo, sep, hi = str(text).partition("-")
    try:
        a, b = int(lo), int(hi) if sep else int(lo)
    except ValueError:
        raise InvalidOption(f"size {text!r}: expected a byte count like 60 or a range like "
                            "60-1514") from None
    return a, b


def _check_port(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise InvalidOption(f"{what} {value!r}: must be a UDP port number 0..65535")
    return value


@attrs.frozen
class FrameSpec:
    """What a :class:`Generator` sends. Addresses are text (``"02:00:..."``, ``"10.0.0.2"``);
    ``src_mac=None`` takes the port's own MAC. ``size`` is a byte count (without FCS) or a
    ``(min, max)`` range. ``flows`` > 1 cycles the field named by ``vary`` (``sport``, ``dport``,
    ``src-ip``, ``dst-ip``) over ``flows`` consecutive values from its base. Checked when a
    generator is made (:class:`InvalidOption` names the field)."""

    dst_mac: str = "ff:ff:ff:ff:ff:ff"
    src_mac: str | None = None
    src_ip: str = "198.18.0.1"
    dst_ip: str = "198.18.0.2"
    sport: int = frames.FLOW_PORT_BASE
    dport: int = frames.DST_PORT
    size: int | tuple[int, int] = frames.MIN_FRAME
    flows: int = 1
    vary: str = "sport"
    seq: bool = True
    timestamp: bool = False
    udp_checksum: bool = True
    seed: int = 1

    @property
    def sizes(self) -> tuple[int, int]:
        s = self.size
        if isinstance(s, tuple | list) and len(s) == 2:
            return int(s[0]), int(s[1])
        if isinstance(s, bool) or not isinstance(s, int):
            raise InvalidOption(f"size {s!r}: a byte count or a (min, max) pair")
        return s, s

    def to_json(self) -> dict:
        d = attrs.asdict(self)
        lo, hi = self.sizes
        d["size"] = lo if lo == hi else [lo, hi]
        return d

    def native(self, port_mac: str, room: int):
        """The C spec (``struct aioixy_gen_spec``), every field checked; `room` is the most a
        buffer holds."""
        lo, hi = self.sizes
        top = min(room, MAX_LEN)
        if not frames.MIN_FRAME <= lo <= hi <= top:
            raise InvalidOption(f"size {lo if lo == hi else f'{lo}-{hi}'}: frames must be "
                                f"{frames.MIN_FRAME}..{top} bytes (min <= max) for this port")
        if self.vary not in VARY:
            raise InvalidOption(f"vary {self.vary!r}: one of {', '.join(VARY)}")
        f = self.flows
        if isinstance(f, bool) or not isinstance(f, int) or not 1 <= f <= 1 << 24:
            raise InvalidOption(f"flows {f!r}: must be 1..{1 << 24}")
        for name in ("seq", "timestamp", "udp_checksum"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOption(f"{name} {getattr(self, name)!r}: must be true or false")
        s = ffi.new("struct aioixy_gen_spec *")
        a = s.addrs
        ffi.memmove(a.dst_mac, parse_mac(self.dst_mac, "dst_mac"), 6)
        ffi.memmove(a.src_mac, parse_mac(self.src_mac or port_mac, "src_mac"), 6)
        ffi.memmove(a.src_ip, parse_ipv4(self.src_ip, "src_ip"), 4)
        ffi.memmove(a.dst_ip, parse_ipv4(self.dst_ip, "dst_ip"), 4)
        a.src_port = _check_port(self.sport, "sport")
        a.dst_port = _check_port(self.dport, "dport")
        s.min_len, s.max_len = lo, hi
        s.flows = f
        s.vary = VARY[self.vary] if f > 1 else 0
        s.flags = ((lib.AIOIXY_GEN_SEQ if self.seq else 0)
                   | (lib.AIOIXY_GEN_TIMESTAMP if self.timestamp else 0)
                   | (lib.AIOIXY_GEN_UDP_CSUM if self.udp_checksum else 0))
        s.seed = self.seed & (2**64 - 1)
        return s


class Generator:
    """Fills batches of `port`'s buffers with the frames of `spec` (see the module docstring).

    ``Generator(port, spec)`` or ``Generator(port, dst_ip=..., flows=...)`` (FrameSpec fields).
    """

    def __init__(self, port: Port, spec: FrameSpec | None = None, *, queue: int = 0,
                 **fields) -> None:
        if spec is not None and fields:
            raise InvalidOption("give a FrameSpec or its fields, not both")
        try:
            spec = spec if spec is not None else FrameSpec(**fields)
        except TypeError as exc:
            raise InvalidOption(f"Generator: {exc}") from None
        self.port = port
        self.queue = queue
        # one native struct per generator (the template and its sums, ~200 KiB), reused
        self._g = ffi.new("struct aioixy_gen *")
        self.spec = spec
        self.configure(spec)
        #: frames and bytes filled so far
        self.frames = 0
        self.bytes = 0

    def configure(self, spec: FrameSpec) -> None:
        """Switch to another spec (between batches); the sequence numbers go on."""
        native = spec.native(self.port.mac, self.port.info.data_room)
        seq = self._g.seq if hasattr(self, "spec") else 0
        rc = lib.aioixy_gen_init(self._g, native)
        if rc:
            raise from_native(rc)
        self._g.seq = seq
        self.spec = spec

    @property
    def seq(self) -> int:
        """The sequence number the next frame gets."""
        return self._g.seq

    @seq.setter
    def seq(self, value: int) -> None:
        self._g.seq = value

    def fill(self, batch: PacketBatch) -> int:
        """Overwrite every packet `batch` owns with the next frames; returns the bytes written."""
        batch._check_idle()  # a tx waiting with it: the port may hold some of its buffers
        arr, n = batch._slots()
        before = self._g.bytes
        rc = lib.aioixy_gen_fill(self._g, arr, n)
        if rc < 0:
            raise from_native(rc)
        nbytes = self._g.bytes - before  # counted natively: sizes may vary per frame
        self.frames += rc
        self.bytes += nbytes
        return nbytes

    def batch(self, n: int) -> PacketBatch:
        """`n` fresh packets of the port's pool, filled (send them with ``port.tx``)."""
        b = self.port.alloc(n, size=0, queue=self.queue)
        try:
            self.fill(b)
        except BaseException:
            b.release()
            raise
        return b

    async def send(self, count: int, batch: int = 256) -> int:
        """Send `count` frames in batches of up to `batch`; returns how many went (fewer only
        if cancelled: the packets not queued go back to the pool)."""
        sent = 0
        port, q = self.port, self.queue
        while sent < count:
            b = self.batch(min(batch, count - sent))
            n = len(b)
            try:
                await port.tx(b, queue=q)
            finally:
                sent += n - len(b)
                b.release()
        return sent
