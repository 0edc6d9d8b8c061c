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

Ownership changes hands inside the native call that moves the buffers (a tx, a release, a
split or merge NULLs the slots it took in the batch's own array), so an exception raised between
a native call and the Python bookkeeping after it (a signal handler: Ctrl-C, SIGALRM, SIGTERM
turned into SystemExit) cannot leave a buffer owned twice or by nobody: a batch whose
bookkeeping was cut short is marked ``_dirty`` and recounts its array before its next use.

A memoryview obtained from ``pkt.data`` is NOT tracked: do not keep it past the packet's
release (the same rule as a buffer you got from ``mmap``).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

from aioixy._ffi import ffi, lib
from aioixy.errors import BatchBusy, InvalidOption, PacketReleased
from aioixy.ops.batch import BatchOps, native_mask

_free_slots = lib.aioixy_mempool_free_slots
_release_array = lib.aioixy_buf_array_release
_new, _gc, _cast = ffi.new, ffi.gc, ffi.cast
_tx_take = lib.aioixy_tx_take
_tx_take_slots = lib.aioixy_tx_take_slots
_split_take = lib.aioixy_ops_split_take
_take_all = lib.aioixy_ops_take_all
_unpack = ffi.unpack
_NULL = ffi.NULL
_BUF_ARRAY = "struct aioixy_pkt_buf *[]"
_SLOT = "struct aioixy_pkt_buf *"

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
        if batch._dirty:
            batch._sync()
        i = self._i
        if i < batch._start or (batch._holes and not batch._bufs[i]):
            raise PacketReleased("this packet was sent or released")
        return self._b

    def __len__(self) -> int:
        batch = self._batch
        if batch._dirty:
            batch._sync()
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

    __slots__ = ("__weakref__", "_arr", "_bufs", "_busy", "_dirty", "_holes", "_n", "_start")

    def __init__(self, capacity: int) -> None:
        """An empty batch with room for `capacity` buffers. A native call fills its array
        (``_bufs``), then :meth:`_filled` records how many it put there; until then (or if that
        bookkeeping never runs) the batch counts its non-NULL slots when it is used. The array
        frees whatever it still holds when it is garbage collected, in native code (nothing a
        signal handler could interrupt half-way)."""
        # slot 0: the slot count, for the native destructor (aioixy_buf_array_release)
        raw = _new(_BUF_ARRAY, capacity + 1)
        raw[0] = _cast(_SLOT, capacity)
        self._arr = _gc(raw, _release_array)
        self._bufs = raw + 1
        self._n = capacity
        self._start = 0  # slots before _start are no longer ours
        self._holes = 0  # slots after _start taken individually (set to NULL)
        # txs of (packets of) this batch waiting for ring space: a set of their hand-overs, so
        # an exception between adding and removing one cannot leave the count wrong
        self._busy: set | None = None
        # a native call may have filled or NULLed slots that _start/_holes do not account for
        # yet (its bookkeeping was interrupted): recount the array (_sync) before believing them
        self._dirty = True

    def _filled(self, n: int) -> None:
        """A native call put `n` buffers in the first `n` slots."""
        self._n = n
        self._dirty = False

    def _sync(self) -> None:
        """Recount what this batch owns from its array: the NULL slots are not ours."""
        bufs, s, n = self._bufs, self._start, self._n
        while s < n and not bufs[s]:
            s += 1
        holes = sum(1 for i in range(s, n) if not bufs[i])
        self._start = s
        self._holes = holes
        self._dirty = False  # last: an interruption before it only means another recount

    def __len__(self) -> int:
        if self._dirty:
            self._sync()
        return self._n - self._start - self._holes

    def __iter__(self) -> Iterator[Packet]:
        if self._dirty:
            self._sync()
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
        if self._dirty:
            self._sync()
        bufs = self._bufs
        return sum(bufs[i].len for i in range(self._start, self._n) if bufs[i])

    def release(self) -> None:
        """Give every buffer this batch still owns back to its pool (idempotent)."""
        if self._dirty:
            self._sync()
        s, n = self._start, self._n
        if s >= n:
            return
        if self._busy:
            raise BatchBusy(
                "this batch cannot be released while a tx of it waits for ring space: the port "
                "may already hold some of its buffers (await or cancel that tx first)"
            )
        self._dirty = True
        _free_slots(self._bufs + s, n - s)  # frees what is not NULL, and NULLs it
        self._start = n
        self._holes = 0
        self._dirty = False

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

    def __repr__(self) -> str:
        return f"<PacketBatch {len(self)} packets>"

    # --- ownership transfer, used by Port.tx ---------------------------------------------

    def _handover(self) -> Handover:
        """What a tx of this batch gives away (see :class:`Handover`)."""
        if self._dirty:
            self._sync()
        if not self._holes:
            return BatchHandover(self)
        return handover(list(self))

    def _take_slot(self, index: int) -> None:
        """Slot `index` (NULLed by the native call that took it) is no longer ours."""
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
        # the halves exist before anything moves into them: interrupted after the move, they
        # are dropped and their arrays free what they got
        yes = cls(n)
        no = cls(n)
        n_no = ffi.new("uint32_t *")
        self._dirty = True
        n_yes = _split_take(p, n, mask_c, yes._bufs, no._bufs, n_no)  # NULLs all of p[0:n]
        self._start = self._n
        self._holes = 0
        self._dirty = False
        yes._filled(n_yes)
        no._filled(n_no[0])
        return yes, no

    @classmethod
    def merge(cls, *batches: PacketBatch) -> PacketBatch:
        """One batch owning every packet the given batches still own; they end up empty."""
        for b in batches:
            b._check_idle()
        total = sum(len(b) for b in batches)
        out = cls(total)  # owns whatever has moved into its array so far
        arr = out._bufs
        k = 0
        for b in batches:
            s, n = b._start, b._n
            if n > s:
                b._dirty = True
                k += _take_all(arr + k, b._bufs + s, n - s)  # moves and NULLs the source
                b._start = n
                b._holes = 0
                b._dirty = False
        out._filled(k)
        return out


def merge(*batches: PacketBatch) -> PacketBatch:
    """``aioixy.merge(a, b, ...)``: see :meth:`PacketBatch.merge`."""
    return PacketBatch.merge(*batches)


class Handover:
    """What one tx gives away: ``take(port, queue)`` lets the port take what it can, in one
    native call that also NULLs the slots it took in their batches' arrays (so the hand-over
    and the batches' loss of ownership cannot be separated by a Python exception)."""

    __slots__ = ("batches", "n", "sent")

    batches: tuple[PacketBatch, ...] | set[PacketBatch]
    n: int  # packets to hand over
    sent: int  # taken so far

    def take(self, port, queue: int) -> int:
        raise NotImplementedError

    def next_buf(self):
        """The first buffer not taken yet."""
        raise NotImplementedError


class BatchHandover(Handover):
    """A batch without holes: its slots from ``_start`` on, in place."""

    __slots__ = ("_b",)

    def __init__(self, batch: PacketBatch) -> None:
        self._b = batch
        self.batches = (batch,)
        self.n = batch._n - batch._start
        self.sent = 0

    def take(self, port, queue: int) -> int:
        b = self._b
        if b._dirty:
            b._sync()
        b._dirty = True
        k = _tx_take(port, queue, b._bufs + b._start, b._n - b._start)
        b._start += k
        b._dirty = False
        self.sent += k
        return k

    def next_buf(self):
        return self._b._bufs[self._b._start]


class PacketsHandover(Handover):
    """Single packets of any batches: an array of pointers to their slots."""

    __slots__ = ("_packets", "_slots")

    def __init__(self, packets: list[Packet]) -> None:
        self._packets = packets
        self.batches = {p._batch for p in packets}
        self.n = len(packets)
        self.sent = 0
        self._slots = ffi.new("struct aioixy_pkt_buf **[]",
                              [p._batch._bufs + p._i for p in packets] or 1)

    def take(self, port, queue: int) -> int:
        batches = self.batches
        for b in batches:
            if b._dirty:
                b._sync()
        for b in batches:
            b._dirty = True
        s = self.sent
        k = _tx_take_slots(port, queue, self._slots + s, self.n - s)
        for p in self._packets[s:s + k]:
            p._batch._take_slot(p._i)
        self.sent = s + k
        for b in batches:
            b._dirty = False
        return k

    def next_buf(self):
        return self._slots[self.sent][0]


def handover(packets: list[Packet]) -> PacketsHandover:
    """The hand-over of single packets (of any batches), like :meth:`PacketBatch._handover`."""
    bufs = [p._buf() for p in packets]
    # a buffer may be in flight once: a second copy would be freed twice by the driver
    if len(bufs) > 1 and len(set(bufs)) != len(bufs):
        seen: set = set()
        dup = next(i for i, b in enumerate(bufs) if b in seen or seen.add(b))
        raise InvalidOption(
            f"packet {dup} of this tx is the same packet as an earlier one: a buffer can be "
            "sent only once (copy it into a fresh packet from alloc() to send it twice)"
        )
    return PacketsHandover(packets)


def _forget_buffers_after_fork() -> None:
    """In a forked child the pools are copies whose locks a parent thread may have held at the
    fork: freeing into them could hang. The child just forgets its buffers (its memory goes
    with it); the parent still accounts for every one of them."""
    lib.aioixy_mempool_forget_frees()
