"""The numbered test frame: build it, read its sequence number, check it byte for byte.

Ethernet/IPv4/UDP, at least :data:`MIN_FRAME` bytes, with a big-endian u64 sequence number as
the first 8 bytes of the UDP payload (:data:`SEQ_OFFSET`). The layout is the native core's
(``core/frames.h``, also used by the ``null`` device and the 82599 model's generator): the
offsets below are read from the extension and the headers are written by the same C function,
so Python and the native frame sources cannot drift apart.

Frames made here fill the rest of the payload with a pattern derived from the sequence number,
so :func:`check_frame` finds a corrupted, truncated or swapped byte anywhere. Shipped tools
(``aioixy pktgen``, the demo) and the test helpers of :mod:`aioixy.testing` use this module.
"""

from __future__ import annotations

import functools
import struct

from aioixy._ffi import ffi, lib

SEQ_OFFSET: int = lib.AIOIXY_FRAME_SEQ_OFFSET
SEQ_END: int = SEQ_OFFSET + lib.AIOIXY_FRAME_SEQ_LEN
UDP_OFFSET: int = lib.AIOIXY_FRAME_UDP_OFFSET
MIN_FRAME: int = lib.AIOIXY_FRAME_MIN
#: the largest standard Ethernet frame without its CRC
MAX_FRAME = 1514
#: what :func:`make_frame` accepts (jumbo frames included)
MAX_JUMBO = 9000
BROADCAST = b"\xff" * 6
DEFAULT_SRC = b"\x02\x00\x00\x00\x00\x01"
SRC_IP = bytes((198, 18, 0, 1))
DST_IP = bytes((198, 18, 0, 2))
#: UDP source port of flow 0; flow f uses FLOW_PORT_BASE + f
FLOW_PORT_BASE = 1024
DST_PORT = 5678

_seq = struct.Struct("!Q")
_sport = struct.Struct("!H")


def headers(size: int, src: bytes = DEFAULT_SRC, dst: bytes = BROADCAST, ip_id: int = 0,
            src_port: int = FLOW_PORT_BASE, dst_port: int = DST_PORT,
            src_ip: bytes = SRC_IP, dst_ip: bytes = DST_IP) -> bytes:
    """The Ethernet, IPv4 and UDP headers of a `size`-byte frame (bytes 0..SEQ_OFFSET)."""
    if not MIN_FRAME <= size <= MAX_JUMBO:
        raise ValueError(f"frame size {size} out of range {MIN_FRAME}..{MAX_JUMBO}")
    a = ffi.new("struct aioixy_frame_addrs *")
    ffi.memmove(a.dst_mac, dst, 6)
    ffi.memmove(a.src_mac, src, 6)
    ffi.memmove(a.src_ip, src_ip, 4)
    ffi.memmove(a.dst_ip, dst_ip, 4)
    a.ip_id = ip_id & 0xFFFF
    a.src_port = src_port
    a.dst_port = dst_port
    out = bytearray(SEQ_OFFSET)
    lib.aioixy_frame_headers(ffi.from_buffer(out), size, a)
    return bytes(out)


def _pattern(seq: int, n: int) -> bytes:
    return _pattern_cached((seq * 31) & 0xFF, n)


@functools.lru_cache(maxsize=4096)
def _pattern_cached(start: int, n: int) -> bytes:
    base = bytes((start + i) & 0xFF for i in range(256))
    return (base * (n // 256 + 1))[:n]


def make_frame(seq: int, size: int = MIN_FRAME, src: bytes = DEFAULT_SRC,
               dst: bytes = BROADCAST, flow: int = 0) -> bytes:
    """A valid Ethernet/IPv4/UDP frame of `size` bytes carrying `seq` (and a per-flow port)."""
    hdr = headers(size, src, dst, ip_id=seq, src_port=FLOW_PORT_BASE + (flow & 0x7FFF))
    return hdr + _seq.pack(seq) + _pattern(seq, size - SEQ_END)


def frame_seq(data: bytes | bytearray | memoryview) -> int:
    """The sequence number of a numbered frame (from :func:`make_frame`, null, the model)."""
    return _seq.unpack_from(data, SEQ_OFFSET)[0]


def set_seq(frame: bytearray | memoryview, seq: int) -> None:
    """Renumber a frame in place (the headers do not depend on it: UDP checksum is 0)."""
    _seq.pack_into(frame, SEQ_OFFSET, seq)


def check_frame(data: bytes | bytearray | memoryview, expected_size: int | None = None) -> int:
    """Verify a :func:`make_frame` frame byte for byte; returns its sequence number."""
    seq = frame_seq(data)
    size = len(data)
    if expected_size is not None and size != expected_size:
        raise AssertionError(f"seq {seq}: length {size}, expected {expected_size}")
    flow = _sport.unpack_from(data, UDP_OFFSET)[0] - FLOW_PORT_BASE
    ref = make_frame(seq, size, bytes(data[6:12]), bytes(data[0:6]), flow)
    if bytes(data) != ref:
        diff = next(i for i in range(size) if data[i] != ref[i])
        raise AssertionError(f"seq {seq}: byte {diff} is {data[diff]:#x}, expected {ref[diff]:#x}")
    return seq
