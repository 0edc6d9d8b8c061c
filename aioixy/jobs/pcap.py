"""Classic libpcap files (what tcpdump -w writes and Wireshark, tshark and scapy read).

Hand-written because the format is 24 + 16 bytes of header and a dependency would cost more
than it saves. Writes microsecond timestamps, LINKTYPE_ETHERNET; reads both byte orders and
both microsecond and nanosecond variants.
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
            raise PcapError(f"not a pcap file (magic {head[:4].hex()}; pcapng is not supported)")
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


def read_pcap(f: BinaryIO) -> Iterator[tuple[float, bytes]]:
    """Yield (timestamp, frame) from a pcap file; raises PcapError on anything else.

    A truncated last record is left out with a PcapTruncated warning (see PcapReader).
    """
    reader = PcapReader(f)
    yield from reader
    if reader.truncated:
        warnings.warn(reader.truncated, PcapTruncated, stacklevel=2)
