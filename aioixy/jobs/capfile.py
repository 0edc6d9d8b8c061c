"""Capture files written a batch per native call (``ops/capture.c``): pcap or pcapng, a snap
length, and a ring of files like tcpdump's ``-C``/``-W``.

The native writer builds every record header of a batch in its own scratch and hands headers and
payloads to the kernel in one ``writev``: no Python per packet, no copy of the payload. Each
write ends on a record boundary; a failed write is cut back to the last whole record, so a file
stays readable however the capture ends. Writing to a pipe (``path="-"``: stdout) does not
block the event loop: when the reader is not keeping up, the rest of the batch is dropped and
counted in :attr:`CaptureWriter.dropped`, apart from the port's own rx drops.
"""

from __future__ import annotations

import os
import stat
import time
from typing import TYPE_CHECKING

from aioixy._ffi import ffi, lib
from aioixy.errors import InvalidOption

if TYPE_CHECKING:
    from aioixy.core.packet import PacketBatch

FORMATS = {"pcap": lib.AIOIXY_CAP_PCAP, "pcapng": lib.AIOIXY_CAP_PCAPNG}
#: tcpdump's default snap length (and the most a record may keep)
MAX_SNAPLEN: int = lib.AIOIXY_CAP_MAX_SNAPLEN


class CaptureWriter:
    """Writes received batches to `path` (``"-"``: standard output).

    ``file_size`` (bytes) starts a new file once the current one has reached it (checked per
    batch, so a file may pass it by one batch): ``path``, ``path1``, ``path2``, ... ; with
    ``files`` = N as well, a ring of N files ``path0`` .. ``path{N-1}`` (zero-padded), the
    oldest overwritten, as tcpdump's ``-C``/``-W`` do.
    """

    def __init__(self, path: str, format: str = "pcap", snaplen: int = MAX_SNAPLEN,
                 file_size: int | None = None, files: int | None = None) -> None:
        if format not in FORMATS:
            raise InvalidOption(f"format {format!r}: one of {', '.join(FORMATS)}")
        if isinstance(snaplen, bool) or not isinstance(snaplen, int) \
                or not 1 <= snaplen <= MAX_SNAPLEN:
            raise InvalidOption(f"snaplen {snaplen!r}: must be 1..{MAX_SNAPLEN} bytes")
        if file_size is not None and (not isinstance(file_size, int) or file_size < 1):
            raise InvalidOption(f"file_size {file_size!r}: must be a positive number of bytes")
        if files is not None:
            if file_size is None:
                raise InvalidOption("files (a ring of files) needs file_size")
            if not isinstance(files, int) or files < 1:
                raise InvalidOption(f"files {files!r}: must be at least 1")
        if path == "-" and file_size is not None:
            raise InvalidOption("standard output cannot be split into files")
        self.path = path
        self.format = format
        self.file_size = file_size
        self.files = files
        self._c = ffi.new("struct aioixy_capture *")
        self._c.format = FORMATS[format]
        self._c.snaplen = snaplen
        self._c.fd = -1
        self._index = 0
        self._restore_flags: int | None = None
        #: the files written so far, in order (a ring's names repeat)
        self.paths: list[str] = []
        self._open(self._name(0))

    @property
    def snaplen(self) -> int:
        return self._c.snaplen

    @property
    def packets(self) -> int:
        """Records written (every file)."""
        return self._c.packets

    @property
    def bytes(self) -> int:
        """The original lengths of the packets written."""
        return self._c.bytes

    @property
    def dropped(self) -> int:
        """Packets the writer dropped itself: its output (a pipe) was not keeping up."""
        return self._c.dropped

    def _name(self, index: int) -> str:
        if self.file_size is None:
            return self.path
        if self.files is not None:
            return f"{self.path}{index % self.files:0{len(str(self.files - 1))}d}"
        return self.path if index == 0 else f"{self.path}{index}"

    def _open(self, name: str) -> None:
        if name == "-":
            fd = os.dup(1)
            mode = os.fstat(fd).st_mode
            if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
                self._restore_flags = os.get_blocking(fd)
                os.set_blocking(fd, False)
        else:
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                self._restore_flags = True
                os.set_blocking(fd, False)
        self._c.fd = fd
        self._c.nonblocking = self._restore_flags is not None
        self.paths.append(name)
        if lib.aioixy_capture_begin(self._c) < 0:
            self._raise()

    def _close_fd(self) -> None:
        fd, self._c.fd = self._c.fd, -1
        if fd < 0:
            return
        if self._restore_flags is not None:
            os.set_blocking(fd, True)  # the pipe's other users expect what they had
            self._restore_flags = None
        os.close(fd)

    def _raise(self) -> None:
        err = self._c.err
        name = self.paths[-1] if self.paths else self.path
        raise OSError(err, f"{os.strerror(err)} (writing {name})", name)

    def write(self, batch: PacketBatch, limit: int | None = None,
              ts_ns: int | None = None) -> int:
        """Write the packets `batch` owns (at most `limit`), stamped `ts_ns` (default: now);
        returns how many were written (fewer: the rest were dropped, see :attr:`dropped`).
        Raises OSError when the output fails (the file then ends on a whole record)."""
        c = self._c
        if c.fd < 0:
            raise ValueError("this capture writer is closed")
        if self.file_size is not None and c.file_bytes >= self.file_size:
            self._close_fd()
            self._index += 1
            self._open(self._name(self._index))
        arr, n = batch._slots()
        if limit is not None and limit < n:
            n = max(0, limit)
        rc = lib.aioixy_capture_write(c, arr, n, time.time_ns() if ts_ns is None else ts_ns)
        if rc < 0:
            self._raise()
        return rc

    def close(self) -> None:
        self._close_fd()

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
