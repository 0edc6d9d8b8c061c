"""Classic libpcap files (what tcpdump -w writes and Wireshark, tshark and scapy read).

Hand-written because the format is 24 + 16 bytes of header and a dependency would cost more
than it saves. Writes microsecond timestamps, LINKTYPE_ETHERNET; reads both byte orders and
both microsecond and nanosecond variants.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterator
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D


class PcapError(ValueError):
    """The file is not a pcap file aioixy can read."""


class PcapWriter:
    def __init__(self, f: BinaryIO, snaplen: int = 65535) -> None:
        self._f = f
        self.snaplen = snaplen
        self.count = 0
        f.write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def write(self, frame: bytes | memoryview, ts: float | None = None) -> None:
        ts = time.time() if ts is None else ts
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        if usec == 1_000_000:
            sec, usec = sec + 1, 0
        cap = frame[: self.snaplen]
        self._f.write(struct.pack("<IIII", sec, usec, len(cap), len(frame)))
        self._f.write(cap)
        self.count += 1


def read_pcap(f: BinaryIO) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp, frame) from a pcap file; raises PcapError on anything else."""
    head = f.read(24)
    if len(head) < 24:
        raise PcapError("file too short for a pcap header")
    for endian in "<>":
        magic = struct.unpack(endian + "I", head[:4])[0]
        if magic in (_MAGIC_US, _MAGIC_NS):
            break
    else:
        raise PcapError(f"not a pcap file (magic {head[:4].hex()}; pcapng is not supported)")
    scale = 1e-9 if magic == _MAGIC_NS else 1e-6
    linktype = struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise PcapError(f"link type {linktype} is not Ethernet")
    rec = struct.Struct(endian + "IIII")
    n = 0
    while True:
        hdr = f.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            raise PcapError(f"truncated record header after {n} packets")
        sec, frac, caplen, _ = rec.unpack(hdr)
        data = f.read(caplen)
        if len(data) < caplen:
            raise PcapError(f"truncated packet {n + 1}")
        n += 1
        yield sec + frac * scale, data
