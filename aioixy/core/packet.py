"""Zero-copy packets and batches, and who owns their buffers.

A :class:`PacketBatch` owns DMA buffers from a port's mempool. Its packets are views into those
buffers: ``pkt.data`` is a writable memoryview of the packet bytes, with no copy. Ownership is
explicit and moves in one direction only:

* ``await port.tx(batch)`` (or a list of packets) hands the buffers to the port: the batch no
  longer owns them, and touching those packets afterwards raises :class:`PacketReleased`;
* ``batch.release()``, leaving a ``with batch:`` block, or the batch being garbage collected
  returns every buffer the batch still owns to its pool, in one native call.

A buffer is in flight at most once: a tx that names the same packet twice is refused, and while
a ``tx`` of a batch waits for ring space the batch is busy (:class:`BatchBusy` for a release or
another tx of it), so no buffer the native ring may already hold is ever freed or sent twice.

A memoryview obtained from ``pkt.data`` is NOT tracked: do not keep it past the packet's
release (the same rule as a buffer you got from ``mmap``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from itertools import repeat

from aioixy._ffi import ffi, lib
from aioixy.errors import BatchBusy, InvalidOption, PacketReleased
from aioixy.ops.batch import BatchOps, native_mask

_free_bulk = lib.aioixy_mempool_free_bulk
_unpack = ffi.unpack
_NULL = ffi.NULL

#: ``Packet.rx_flags`` bits (the native AIOIXY_RX_* values): checked without bad = good
RX_IP_CSUM_CHECKED = lib.AIOIXY_RX_IP_CSUM_CHECKED
RX_IP_CSUM_BAD = lib.AIOIXY_RX_IP_CSUM_BAD
RX_L4_CSUM_CHECKED = lib.AIOIXY_RX_L4_CSUM_CHECKED
RX_L4_CSUM_BAD = lib.AIOIXY_RX_L4_CSUM_BAD


class Packet:
    """One packet of a batch: ``len(pkt)``, ``pkt.data`` (writable memoryview), ``pkt.length``."""

    __slots__ = ("_b", "_batch", "_i")

    def __init__(self, batch: PacketBatch, index: int, buf) -> None:
        self._batch = batch
        self._i = index
        self._b = buf  # cached pointer; ownership is still checked against the batch

    def _buf(self):
        batch = self._batch
        i = self._i
        if i < batch._start or (batch._holes and not batch._bufs[i]):
            raise PacketReleased("this packet was sent or released")
        return self._b

    def __len__(self) -> int:
        batch = self._batch
        i = self._i
        if i < batch._start or (batch._holes and not batch._bufs[i]):
            raise PacketReleased("this packet was sent or released")
        return self._b.len

    @property
    def data(self) -> memoryview:
        """The packet bytes, zero-copy and writable (``len(pkt)`` bytes)."""
        b = self._buf()
        return memoryview(ffi.buffer(b.data, b.len))

    @property
    def length(self) -> int:
        return self._buf().len

    @length.setter
    def length(self, value: int) -> None:
        b = self._buf()
        room = lib.aioixy_mempool_data_room(b.pool)
        if not 0 <= value <= room:
            raise InvalidOption(f"packet length {value} does not fit a buffer of {room} bytes")
        b.len = value

    @property
    def rx_flags(self) -> int:
        """What the receiving device checked: ``RX_IP_CSUM_CHECKED``/``RX_IP_CSUM_BAD``,
        ``RX_L4_CSUM_CHECKED``/``RX_L4_CSUM_BAD`` (0 when the driver knows nothing)."""
        return self._buf().rx_flags

    @property
    def room(self) -> int:
        """The most bytes this packet's buffer can hold."""
        return lib.aioixy_mempool_data_room(self._buf().pool)

    @property
    def iova(self) -> int:
        """Bus address of the packet data (what the NIC DMAs to/from)."""
        return self._buf().iova + lib.AIOIXY_PKT_HEADER

    def tobytes(self) -> bytes:
        b = self._buf()
        return ffi.buffer(b.data, b.len)[:]

    def write(self, data: bytes | bytearray | memoryview, offset: int = 0) -> None:
        """Copy ``data`` into the packet at ``offset``, growing its length if needed."""
        b = self._buf()
        end = offset + len(data)
        room = lib.aioixy_mempool_data_room(b.pool)
        if offset < 0 or end > room:
            raise InvalidOption(
                f"{len(data)} bytes at offset {offset} exceed the {room}-byte buffer"
            )
        ffi.memmove(b.data + offset, data, len(data))
        if end > b.len:
            b.len = end

    def __repr__(self) -> str:
        try:
            return f"<Packet len={len(self)}>"
        except PacketReleased:
            return "<Packet released>"


class PacketBatch(BatchOps):
    """Packets received or allocated together; owns their buffers until sent or released.

    Whole-batch native operations (field gathers, rewrites, checksums, split/merge) come from
    :class:`aioixy.ops.batch.BatchOps`; split and merge, which move ownership, are here.
    """

    __slots__ = ("__weakref__", "_bufs", "_busy", "_holes", "_n", "_start")

    def __init__(self, bufs, n: int) -> None:
        self._bufs = bufs
        self._n = n
        self._start = 0  # slots before _start are no longer ours
        self._holes = 0  # slots after _start taken individually (set to NULL)
        self._busy = 0  # txs of (packets of) this batch waiting for ring space

    def __len__(self) -> int:
        return self._n - self._start - self._holes

    def __iter__(self) -> Iterator[Packet]:
        s, n = self._start, self._n
        if self._holes:
            bufs = self._bufs
            return (Packet(self, i, bufs[i]) for i in range(s, n) if bufs[i])
        # one native call unpacks every pointer; map() builds the packets without a frame each
        return map(Packet, repeat(self, n - s), range(s, n), _unpack(self._bufs + s, n - s))

    def __getitem__(self, index: int) -> Packet:
        n = self._n
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"packet index {index} out of range for a batch of {n}")
        pkt = Packet(self, index, self._bufs[index])
        pkt._buf()  # raises if it is no longer ours
        return pkt

    @property
    def nbytes(self) -> int:
        bufs = self._bufs
        return sum(bufs[i].len for i in range(self._start, self._n) if bufs[i])

    def release(self) -> None:
        """Give every buffer this batch still owns back to its pool (idempotent)."""
        s, n = self._start, self._n
        if s >= n:
            return
        if self._busy:
            raise BatchBusy(
                "this batch cannot be released while a tx of it waits for ring space: the port "
                "may already hold some of its buffers (await or cancel that tx first)"
            )
        self._start = n
        if self._holes:
            owned = [b for b in self._bufs[s:n] if b]
            self._holes = 0
            if owned:
                _free_bulk(ffi.new("struct aioixy_pkt_buf *[]", owned), len(owned))
        else:
            _free_bulk(self._bufs + s, n - s)

    def __enter__(self) -> PacketBatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _check_idle(self) -> None:
        if self._busy:
            raise BatchBusy(
                "this batch is already being sent by a tx that waits for ring space: await it "
                "(or cancel it) before sending the batch or its packets again"
            )

    def __del__(self) -> None:
        # at interpreter shutdown the native library may already be gone
        with contextlib.suppress(Exception):
            self.release()

    def __repr__(self) -> str:
        return f"<PacketBatch {len(self)} packets>"

    # --- ownership transfer, used by Port.tx ---------------------------------------------

    def _handover(self):
        """``(array, count, commit)``: the buffers this batch owns, for a new owner (see
        :meth:`_check_idle`: a batch a waiting tx holds is handed over only once).

        The new owner takes some prefix of ``array[0:count]`` and calls ``commit(k)`` for the
        first k it took, from then on this batch no longer owns (or frees) them. What it did
        not take stays this batch's.
        """
        s = self._start
        if not self._holes:
            return self._bufs + s, self._n - s, self._take_prefix
        return handover(list(self))

    def _take_prefix(self, count: int) -> None:
        """The first `count` owned buffers now belong to someone else (no holes case)."""
        self._start += count

    def _take_slot(self, index: int) -> None:
        self._bufs[index] = _NULL
        self._holes += 1
        if index == self._start:
            while self._start < self._n and not self._bufs[self._start]:
                self._start += 1
                self._holes -= 1


    # --- ownership: split and merge -----------------------------------------------------

    def split(self, mask) -> tuple[PacketBatch, PacketBatch]:
        """Two new batches: the packets whose mask entry is true, and the others (order kept).

        The buffers move: this batch owns nothing afterwards (packets taken from it before raise
        PacketReleased), each buffer is owned by exactly one of the two results.
        """
        return self._split_by(native_mask(mask, self._slots()[1]))

    def _split_by(self, mask_c) -> tuple[PacketBatch, PacketBatch]:
        """:meth:`split` by a native mask with an entry per slot still ours."""
        self._check_idle()  # a waiting tx of this batch must keep its buffers where they are
        p, n = self._slots()
        cls = type(self)
        yes = ffi.new("struct aioixy_pkt_buf *[]", n or 1)
        no = ffi.new("struct aioixy_pkt_buf *[]", n or 1)
        n_no = ffi.new("uint32_t *")
        n_yes = lib.aioixy_ops_split(p, n, mask_c, yes, no, n_no)
        self._start = self._n  # from here on the two halves own the buffers
        self._holes = 0
        return cls(yes, n_yes), cls(no, n_no[0])

    @classmethod
    def merge(cls, *batches: PacketBatch) -> PacketBatch:
        """One batch owning every packet the given batches still own; they end up empty."""
        for b in batches:
            b._check_idle()
        total = sum(len(b) for b in batches)
        arr = ffi.new("struct aioixy_pkt_buf *[]", total or 1)
        k = 0
        for b in batches:
            s, n = b._start, b._n
            if b._holes:
                for ptr in b._bufs[s:n]:
                    if ptr:
                        arr[k] = ptr
                        k += 1
            elif n > s:
                ffi.memmove(arr + k, b._bufs + s, (n - s) * ffi.sizeof("void *"))
                k += n - s
            b._start = n
            b._holes = 0
        return cls(arr, k)


def merge(*batches: PacketBatch) -> PacketBatch:
    """``aioixy.merge(a, b, ...)``: see :meth:`PacketBatch.merge`."""
    return PacketBatch.merge(*batches)


def handover(packets: list[Packet]):
    """``(array, count, commit)`` for single packets (of any batches), like
    :meth:`PacketBatch._handover`: ``commit(k)`` takes the first k from their batches."""
    bufs = [p._buf() for p in packets]
    # a buffer may be in flight once: a second copy would be freed twice by the driver
    if len(bufs) > 1 and len(set(bufs)) != len(bufs):
        seen: set = set()
        dup = next(i for i, b in enumerate(bufs) if b in seen or seen.add(b))
        raise InvalidOption(
            f"packet {dup} of this tx is the same packet as an earlier one: a buffer can be "
            "sent only once (copy it into a fresh packet from alloc() to send it twice)"
        )
    arr = ffi.new("struct aioixy_pkt_buf *[]", bufs)

    def commit(k: int) -> None:
        for p in packets[:k]:
            p._batch._take_slot(p._i)
        del packets[:k]

    return arr, len(bufs), commit


def _forget_buffers_after_fork() -> None:
    """In a forked child the pools are copies whose locks a parent thread may have held at the
    fork: freeing into them could hang. The child just forgets its buffers (its memory goes
    with it); the parent still accounts for every one of them."""
    global _free_bulk
    _free_bulk = _forget


def _forget(bufs, n: int) -> None:
    """What releasing does in a forked child: nothing (see above)."""
