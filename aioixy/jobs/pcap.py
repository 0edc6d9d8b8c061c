"""Capture files in Python: classic libpcap (what tcpdump -w writes) and pcapng (what Wireshark
and dumpcap write by default), read by :func:`open_capture`.

Hand-written because each format is a handful of fixed headers and a dependency would cost more
than it saves (python-pcapng and dpkt read both, but a replay needs only Ethernet frames and
their timestamps, and an own reader gives the cut-file and corrupt-file errors below).
The pcap writer writes microsecond timestamps, LINKTYPE_ETHERNET; the readers take both byte
orders, microsecond and nanosecond pcap, and pcapng's Enhanced, Simple and obsolete Packet
Blocks with each interface's timestamp resolution. The fast capture writer is native
(:mod:`aioixy.jobs.capfile`).
"""

from __future__ import annotations

import struct
import time
import warnings
from collections.abc import Iterable, Iterator
from typing import BinaryIO

LINKTYPE_ETHERNET = 1
_MAGIC_US = 0xA1B2C3D4
_MAGIC_NS = 0xA1B23C4D


#: the largest record we accept: far beyond any Ethernet frame (jumbo frames are ~9 KiB), small
#: enough that a corrupt length field cannot make the reader allocate gigabytes
MAX_RECORD = 256 * 1024


class PcapError(ValueError):
    """The file is not a pcap file aioixy can read."""


class PcapTruncated(UserWarning):
    """The file ends inside a record (its writer was killed mid-write); the whole ones are read."""


class PcapWriter:
    """Appends records; each ``write`` / ``write_many`` hands the file whole records in one
    ``write`` call, so a file opened unbuffered (``open(path, "wb", buffering=0)``) never ends
    inside a record, whenever the process is stopped."""

    def __init__(self, f: BinaryIO, snaplen: int = 65535) -> None:
        self._f = f
        self.snaplen = snaplen
        self.count = 0
        self._write(struct.pack("<IHHiIII", _MAGIC_US, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))

    def _record(self, frame: bytes | memoryview, sec: int, usec: int) -> bytes:
        cap = frame[: self.snaplen]
        return _REC_US.pack(sec, usec, len(cap), len(frame)) + cap

    def write(self, frame: bytes | memoryview, ts: float | None = None) -> None:
        self.write_many((frame,), ts)

    def write_many(self, frames: Iterable[bytes | memoryview], ts: float | None = None) -> None:
        """Several frames with one timestamp, as one write (a received batch)."""
        ts = time.time() if ts is None else ts
        sec = int(ts)
        usec = round((ts - sec) * 1e6)
        if usec == 1_000_000:
            sec, usec = sec + 1, 0
        records = [self._record(f, sec, usec) for f in frames]
        self._write(b"".join(records))
        self.count += len(records)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a raw file may take less than it was given
            n = self._f.write(view)
            view = view[n if n is not None else len(view):]


_REC_US = struct.Struct("<IIII")


class PcapReader:
    """Iterates (timestamp, frame) over a pcap file; raises PcapError on anything else.

    A file that ends inside a record (a capture whose writer was killed mid-write) is not an
    error: the whole records are yielded, and afterwards ``truncated`` says what was cut
    (None for a complete file). ``count`` is the number of records read so far.
    """

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.count = 0
        self.truncated: str | None = None
        head = f.read(24)
        if len(head) < 24:
            raise PcapError(f"file too short for a pcap header ({len(head)} of 24 bytes)")
        for endian in "<>":
            magic = struct.unpack(endian + "I", head[:4])[0]
            if magic in (_MAGIC_US, _MAGIC_NS):
                break
        else:
            raise PcapError(f"not a pcap or pcapng file (magic {head[:4].hex()})")
        self._scale = 1e-9 if magic == _MAGIC_NS else 1e-6
        linktype = struct.unpack(endian + "I", head[20:24])[0] & 0xFFFF
        if linktype != LINKTYPE_ETHERNET:
            raise PcapError(f"link type {linktype} is not Ethernet")
        self._rec = struct.Struct(endian + "IIII")

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        f, rec = self._f, self._rec
        while True:
            hdr = f.read(16)
            if not hdr:
                return
            n = self.count + 1
            if len(hdr) < 16:
                self.truncated = (f"record {n} is cut short: {len(hdr)} of its 16 header bytes "
                                  f"are in the file; the {self.count} whole records before it "
                                  "were read")
                return
            sec, frac, caplen, _ = rec.unpack(hdr)
            if caplen > MAX_RECORD:
                raise PcapError(f"record {n} claims {caplen} bytes (more than {MAX_RECORD}): "
                                "the file is corrupt")
            data = f.read(caplen)
            if len(data) < caplen:
                self.truncated = (f"record {n} is cut short: {len(data)} of its {caplen} bytes "
                                  f"are in the file; the {self.count} whole records before it "
                                  "were read")
                return
            self.count = n
            yield sec + frac * self._scale, data


PCAPNG_SHB = 0x0A0D0D0A
_BOM = 0x1A2B3C4D


class PcapngReader:
    """Iterates (timestamp, frame) over a pcapng file, like :class:`PcapReader` (``count``,
    ``truncated``). Packets of an interface whose link type is not Ethernet raise PcapError;
    blocks other than section, interface and packet blocks are skipped."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.count = 0
        self.truncated: str | None = None
        head = f.read(12)
        if len(head) < 12 or struct.unpack("<I", head[:4])[0] != PCAPNG_SHB:
            raise PcapError(f"not a pcapng file (first bytes {head[:4].hex()})")
        self._pending = head

    def _section(self, head: bytes) -> None:
        for endian in "<>":
            if struct.unpack(endian + "I", head[8:12])[0] == _BOM:
                self._e = endian
                break
        else:
            raise PcapError(f"pcapng section header: bad byte-order magic {head[8:12].hex()}")
        self._ifaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)

    def _interface(self, body: bytes, n: int) -> None:
        e = self._e
        if len(body) < 8:
            raise PcapError(f"block {n}: interface description of {len(body)} bytes")
        linktype = struct.unpack(e + "H", body[:2])[0]
        unit = 1e-6
        pos = 8
        while pos + 4 <= len(body):  # options: code, length, value padded to 4
            code, olen = struct.unpack(e + "HH", body[pos:pos + 4])
            if code == 0:
                break
            if code == 9 and olen >= 1:  # if_tsresol
                r = body[pos + 4]
                unit = 2.0 ** -(r & 0x7F) if r & 0x80 else 10.0 ** -r
            pos += 4 + (olen + 3) // 4 * 4
        self._ifaces.append((linktype, unit))

    def _cut(self, n: int, got: int, want: int) -> None:
        self.truncated = (f"block {n} is cut short: {got} of its {want} bytes are in the file; "
                          f"the {self.count} whole records before it were read")

    def __iter__(self) -> Iterator[tuple[float, bytes]]:
        f = self._f
        n = 0
        while True:
            n += 1
            head = self._pending or f.read(8)
            self._pending = b""
            if not head:
                return
            if len(head) < 8:
                self._cut(n, len(head), 8)
                return
            btype = struct.unpack("<I", head[:4])[0]
            if btype == PCAPNG_SHB:
                if len(head) < 12:
                    head += f.read(12 - len(head))
                if len(head) < 12:
                    self._cut(n, len(head), 12)
                    return
                self._section(head)
                rest_read = len(head) - 8
            else:
                rest_read = 0
                btype = struct.unpack(self._e + "I", head[:4])[0]
            blen = struct.unpack(self._e + "I", head[4:8])[0]
            if blen < 12 or blen % 4 or blen > MAX_RECORD + 64:
                raise PcapError(f"block {n} claims {blen} bytes: the file is corrupt")
            body = head[8:] + f.read(blen - 8 - rest_read)
            if len(body) < blen - 8:
                self._cut(n, len(body) + 8, blen)
                return
            body = body[:-4]  # the trailing copy of the length
            if btype == 1:
                self._interface(body, n)
            elif btype in (6, 2, 3):
                yield self._packet(btype, body, n)
                self.count += 1

    def _packet(self, btype: int, body: bytes, n: int) -> tuple[float, bytes]:
        e = self._e
        if btype == 3:  # simple packet block: interface 0, no timestamp
            iface, ts, caplen = 0, 0, min(struct.unpack(e + "I", body[:4])[0], len(body) - 4)
            data = body[4:4 + caplen]
        else:
            if len(body) < 20:
                raise PcapError(f"block {n}: a packet block of {len(body)} bytes")
            if btype == 6:
                iface, hi, lo, caplen, _ = struct.unpack(e + "IIIII", body[:20])
            else:  # obsolete packet block: 16-bit interface id and drop count
                iface, _, hi, lo, caplen, _ = struct.unpack(e + "HHIIII", body[:20])
            ts = hi << 32 | lo
            data = body[20:20 + caplen]
            if len(data) < caplen:
                raise PcapError(f"block {n}: captured length {caplen} exceeds the block")
        if iface >= len(self._ifaces):
            raise PcapError(f"block {n}: packet of interface {iface}, which was not described")
        linktype, unit = self._ifaces[iface]
        if linktype != LINKTYPE_ETHERNET:
            raise PcapError(f"block {n}: interface {iface}'s link type {linktype} is not "
                            "Ethernet")
        return ts * unit, data


def open_capture(f: BinaryIO) -> PcapReader | PcapngReader:
    """A reader for `f`, pcap or pcapng by its first bytes; PcapError if it is neither."""
    head = f.read(4)
    f.seek(-len(head), 1)
    if len(head) == 4 and struct.unpack("<I", head)[0] == PCAPNG_SHB:
        return PcapngReader(f)
    return PcapReader(f)


def read_pcap(f: BinaryIO) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp, frame) from a pcap or pcapng file; PcapError on anything else.

    A truncated last record is left out with a PcapTruncated warning (see PcapReader).
    """
    reader = open_capture(f)
    yield from reader
    if reader.truncated:
        warnings.warn(reader.truncated, PcapTruncated, stacklevel=2)
