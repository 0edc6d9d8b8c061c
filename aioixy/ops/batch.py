"""Operations on a whole batch in native code, one call per batch (docs/batch-ops.md).

Python pays per call, not per packet: touching every packet in a Python loop caps a network
function near 2 Mpps, while one native call over a batch of 256 costs about as much as touching
one packet. These are the :class:`~aioixy.PacketBatch` methods that do that, plus
:class:`Filter` (a firewall rule set compiled once, applied to a batch) and :func:`merge`.

Results are indexed by slot: entry ``i`` belongs to ``batch[i]``. A slot whose packet was sent
on its own (``port.tx([pkt])``) is skipped: it reads as 0 / "skipped" and is never written.
Arrays are numpy arrays when numpy is installed (the ``numpy`` extra), otherwise
``array.array`` of the same element type; either way the native code fills them in place (one
gather per field per batch, no per-packet Python objects).
"""

from __future__ import annotations

from array import array
from typing import Any

from aioixy._ffi import ffi, lib
from aioixy.errors import InvalidOption

try:  # optional: results become numpy arrays (vectorised maths on them without a copy)
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the fallback test via monkeypatch
    _np = None


_BUF_ARRAY = "struct aioixy_pkt_buf *[]"
_NULL = ffi.NULL

#: per-packet status codes returned by dec_ttl / set_vlan / the checksum checks
DONE = lib.AIOIXY_OP_DONE
EXPIRED = lib.AIOIXY_OP_EXPIRED
BAD = lib.AIOIXY_OP_BAD
SKIPPED = lib.AIOIXY_OP_SKIPPED
NO_ROOM = lib.AIOIXY_OP_NO_ROOM
NO_CHECKSUM = lib.AIOIXY_OP_NONE

# element width -> (C type, array typecode, numpy dtype name)
_TYPES = {1: ("uint8_t", "B", "uint8"), 2: ("uint16_t", "H", "uint16"),
          4: ("uint32_t", "I", "uint32"), 6: ("uint64_t", "Q", "uint64"),
          8: ("uint64_t", "Q", "uint64")}

#: header fields by name: (native id, width in bytes). See ops.h for what "present" means.
FIELDS: dict[str, tuple[int, int]] = {
    name: (getattr(lib, "AIOIXY_F_" + name.upper()),
           lib.aioixy_ops_field_width(getattr(lib, "AIOIXY_F_" + name.upper())))
    for name in ("dst_mac", "src_mac", "ethertype", "vlan_tci", "ip_tos", "ip_len", "ip_id",
                 "ip_ttl", "ip_proto", "ip_csum", "ip_src", "ip_dst", "sport", "dport")
}


def out_array(width: int, n: int):
    """A fresh result array of n elements and a native pointer into it."""
    ctype, code, dtype = _TYPES[width]
    if _np is not None:
        arr = _np.zeros(n, dtype=dtype)
    else:
        arr = array(code, bytes(n * array(code).itemsize))
    return arr, ffi.from_buffer(ctype + "[]", arr, require_writable=True)


def as_mask(arr):
    """A 0/1 uint8 result as the mask type users index and combine."""
    return arr.view(_np.bool_) if _np is not None else arr


def _mac(value: str | bytes) -> bytes:
    if isinstance(value, str):
        raw = bytes.fromhex(value.replace(":", "").replace("-", ""))
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise InvalidOption(f"MAC address {value!r}: expected 'aa:bb:cc:dd:ee:ff' or 6 bytes")
    if len(raw) != 6:
        raise InvalidOption(f"MAC address {value!r}: expected 6 bytes, got {len(raw)}")
    return raw


def _field(name: str) -> tuple[int, int]:
    try:
        return FIELDS[name]
    except KeyError:
        raise InvalidOption(f"unknown field {name!r} (one of {', '.join(FIELDS)})") from None


class BatchOps:
    """Mixed into :class:`~aioixy.PacketBatch`: the batch-wide native operations."""

    __slots__ = ()
    _bufs: Any
    _start: int
    _n: int
    _holes: int
    _dirty: bool
    _sync: Any
    _check_idle: Any
    _split_by: Any  # PacketBatch's: ownership moves there alone

    def _slots(self):
        """(pointer to the first slot still ours, slot count)."""
        if self._dirty:
            self._sync()
        s = self._start
        return self._bufs + s, self._n - s

    # --- reading --------------------------------------------------------------------------

    def lengths(self):
        """Packet lengths, one per slot (``uint32``)."""
        p, n = self._slots()
        arr, c = out_array(4, n)
        lib.aioixy_ops_lengths(p, n, c)
        return arr

    def field(self, name: str, *, with_present: bool = False):
        """One header field of every packet: ``batch.field("ip_ttl")``.

        Names: see :data:`FIELDS` (MACs are 48-bit numbers, addresses 32-bit numbers, all in
        host order). A packet without the field (too short, not IPv4, not TCP/UDP) reads 0;
        ``with_present=True`` also returns the mask of packets that have it.
        """
        fid, width = _field(name)
        p, n = self._slots()
        arr, c = out_array(width, n)
        present, pc = out_array(1, n) if with_present else (None, _NULL)
        lib.aioixy_ops_gather(p, n, fid, c, pc)
        return (arr, as_mask(present)) if with_present else arr

    def field_at(self, offset: int, width: int, *, with_present: bool = False):
        """The big-endian ``width``-byte (1, 2, 4, 8) number at ``offset`` of every packet."""
        if width not in (1, 2, 4, 8):
            raise InvalidOption(f"width={width!r}: must be 1, 2, 4 or 8 bytes")
        if not isinstance(offset, int) or not 0 <= offset < 1 << 31:
            raise InvalidOption(f"offset={offset!r}: must be a non-negative integer")
        p, n = self._slots()
        arr, c = out_array(8, n)
        present, pc = out_array(1, n) if with_present else (None, _NULL)
        lib.aioixy_ops_gather_at(p, n, offset, width, c, pc)
        return (arr, as_mask(present)) if with_present else arr

    def flow_hash(self, seed: int = 0, symmetric: bool = False):
        """A 32-bit hash of each packet's flow (IPv4 5-tuple, else MACs + EtherType), for
        sharding: ``hash % workers``. ``symmetric``: both directions of a flow hash alike."""
        p, n = self._slots()
        arr, c = out_array(4, n)
        lib.aioixy_ops_flow_hash(p, n, seed & 0xFFFFFFFF, bool(symmetric), c)
        return arr

    def ipv4_checksum_ok(self):
        """Mask: the IPv4 header checksum is correct (False also for non-IPv4 packets)."""
        p, n = self._slots()
        st, c = out_array(1, n)
        lib.aioixy_ops_ipv4_csum(p, n, False, c)
        return self._is(st, DONE)

    def l4_checksum_ok(self):
        """Mask: the TCP/UDP checksum is correct, or a UDP packet carries none (0)."""
        p, n = self._slots()
        st, c = out_array(1, n)
        lib.aioixy_ops_l4_csum(p, n, False, c)
        if _np is not None:
            return (st == DONE) | (st == NO_CHECKSUM)
        return array("B", (s in (DONE, NO_CHECKSUM) for s in st))

    @staticmethod
    def _is(st, code: int):
        if _np is not None:
            return st == code
        return array("B", (s == code for s in st))

    # --- rewriting in place --------------------------------------------------------------

    def swap_macs(self) -> int:
        """Exchange source and destination MAC of every packet; returns how many."""
        p, n = self._slots()
        return lib.aioixy_ops_swap_macs(p, n)

    def set_src_mac(self, mac: str | bytes) -> int:
        p, n = self._slots()
        return lib.aioixy_ops_set_mac(p, n, 1, _mac(mac))

    def set_dst_mac(self, mac: str | bytes) -> int:
        p, n = self._slots()
        return lib.aioixy_ops_set_mac(p, n, 0, _mac(mac))

    def dec_ttl(self):
        """Decrement the IPv4 TTL, fixing the header checksum incrementally (RFC 1624).

        Returns per-slot status: DONE, EXPIRED (TTL was 0 or 1, left alone: a router drops
        these, e.g. ``ok, dead = batch.split(status == DONE)``), SKIPPED (not IPv4).
        """
        p, n = self._slots()
        st, c = out_array(1, n)
        lib.aioixy_ops_dec_ttl(p, n, c)
        return st

    def set_vlan(self, vid: int, pcp: int = 0, dei: int = 0):
        """Tag every frame with 802.1Q VLAN ``vid`` (insert a tag, or rewrite the existing one).

        Inserting grows the frame by 4 bytes; a frame whose buffer has no room for that is left
        alone. Returns per-slot status: DONE, NO_ROOM, SKIPPED (shorter than 14 bytes).
        """
        if not isinstance(vid, int) or not 0 <= vid < 4096:
            raise InvalidOption(f"vid={vid!r}: must be 0..4095")
        if not isinstance(pcp, int) or not 0 <= pcp < 8 or dei not in (0, 1):
            raise InvalidOption(f"pcp={pcp!r}, dei={dei!r}: pcp must be 0..7, dei 0 or 1")
        p, n = self._slots()
        st, c = out_array(1, n)
        lib.aioixy_ops_set_vlan(p, n, pcp << 13 | dei << 12 | vid, c)
        return st

    def strip_vlan(self) -> int:
        """Remove the 802.1Q tag of tagged frames; returns how many had one."""
        p, n = self._slots()
        return lib.aioixy_ops_strip_vlan(p, n)

    def fix_ipv4_checksum(self) -> int:
        """Recompute the IPv4 header checksum of every IPv4 packet; returns how many."""
        p, n = self._slots()
        return lib.aioixy_ops_ipv4_csum(p, n, True, _NULL)

    def fix_l4_checksum(self) -> int:
        """Recompute the TCP/UDP checksum of every unfragmented TCP/UDP packet; returns how
        many (the segment length comes from the IPv4 total length, which must fit)."""
        p, n = self._slots()
        return lib.aioixy_ops_l4_csum(p, n, True, _NULL)

    def set_field(self, name: str, values) -> int:
        """Write a header field: ``values`` is one number for all packets or one per slot.

        IPv4 header fields keep the header checksum right (incrementally); addresses and ports
        also keep the TCP/UDP checksum right. Packets without the field are left alone.
        Returns how many packets were written.
        """
        fid, width = _field(name)
        p, n = self._slots()
        limit = 1 << (8 * width)
        if isinstance(values, int):
            if not 0 <= values < limit:
                raise InvalidOption(f"{name}={values!r}: does not fit {width} bytes")
            return lib.aioixy_ops_set_field(p, n, fid, _NULL, values)
        ctype = _TYPES[width][0]
        buf = _values(name, values, n, width)
        return lib.aioixy_ops_set_field(p, n, fid, ffi.from_buffer(ctype + "[]", buf), 0)


# struct formats of integer elements (a buffer of anything else is refused, not reinterpreted)
_INT_FORMATS = frozenset("bBhHiIlLqQnN")


def _shape_of(obj) -> str:
    shape = getattr(obj, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else f"{len(obj)} entries"


def _exactly(buf, n: int, itemsize: int, what: str):
    """`buf` if it exposes exactly n contiguous elements of `itemsize` bytes (what the native
    call will read), else InvalidOption. The last check before any native op reads a buffer
    a caller supplied: whatever path built it, a short or odd-shaped one never reaches C."""
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.itemsize != itemsize or mv.shape[0] != n or not mv.c_contiguous:
        raise InvalidOption(f"{what}: expected {n} contiguous {itemsize}-byte elements, got "
                            f"{mv.ndim}-D {mv.format!r} data of {mv.nbytes} bytes")
    return buf


def _values(name: str, values, n: int, width: int):
    """A contiguous buffer of exactly n field values (one per slot) of the field's C type."""
    ctype, code, dtype = _TYPES[width]
    limit = 1 << (8 * width)
    what = f"{name} values"
    if _np is not None and isinstance(values, _np.ndarray):
        if values.ndim != 1 or values.shape[0] != n:
            raise InvalidOption(f"{what}: an array of {_shape_of(values)} for a batch of {n} "
                                f"slots (one value per slot: a 1-D array of {n})")
        if values.dtype.kind not in "ui" and values.size:  # np.array([]) is float64
            raise InvalidOption(f"{what}: an array of dtype {values.dtype}: expected integers")
        if values.size and (values.min() < 0 or int(values.max()) >= limit):
            raise InvalidOption(f"{what}: do not fit {width} bytes")
        buf = _np.ascontiguousarray(values, dtype=dtype)
    else:
        try:
            mv = memoryview(values)
        except TypeError:
            mv = None
        if mv is not None:
            # a buffer (bytes, array.array, memoryview, ...): its elements, never its raw bytes
            # reinterpreted as the field's type
            if mv.ndim != 1 or mv.format.lstrip("@=<>!") not in _INT_FORMATS:
                raise InvalidOption(f"{what}: {mv.ndim}-D data of format {mv.format!r}: "
                                    "expected one integer per slot")
            if width > 1 and isinstance(values, (bytes, bytearray)):
                raise InvalidOption(f"{what}: bytes for a {width}-byte field are ambiguous "
                                    "(one value per byte, or packed values?): pass a list or "
                                    f"an array of {ctype}")
            values = mv.tolist()
        try:
            count = len(values)
        except TypeError:
            raise InvalidOption(f"{what}: {type(values).__name__} is not a sequence of "
                                "numbers") from None
        if count != n:
            raise InvalidOption(f"{name}: {count} values for a batch of {n} slots")
        try:
            buf = array(code, values)
        except OverflowError:
            raise InvalidOption(f"{what}: do not fit {width} bytes") from None
        except TypeError as exc:
            raise InvalidOption(f"{what}: {exc}") from None
        if width == 6 and any(v >= limit for v in buf):
            raise InvalidOption(f"{what}: do not fit 6 bytes")
    return _exactly(buf, n, array(code).itemsize, what)


def native_mask(mask, n: int):
    """A native ``uint8_t[]`` view of a split mask of `n` entries (true: first half)."""
    if _np is not None and isinstance(mask, _np.ndarray):
        if mask.ndim != 1 or mask.shape[0] != n:
            raise InvalidOption(f"split: mask of {_shape_of(mask)} for {n} slots (one entry "
                                f"per slot: a 1-D array of {n})")
        if mask.dtype.kind not in "bui" and mask.size:  # np.array([]) is float64
            raise InvalidOption(f"split: mask of dtype {mask.dtype}: expected bool or integers")
        m = _np.ascontiguousarray(mask != 0, dtype=_np.bool_)
    else:
        try:
            mv = memoryview(mask)
        except TypeError:
            mv = None
        if mv is not None:
            if mv.ndim != 1 or mv.format.lstrip("@=<>!") not in _INT_FORMATS | {"?"}:
                raise InvalidOption(f"split: mask of {mv.ndim}-D data of format "
                                    f"{mv.format!r}: expected one entry per slot")
            mask = mv.tolist()
        try:
            count = len(mask)
        except TypeError:
            raise InvalidOption(f"split: a mask of type {type(mask).__name__} has no "
                                "length") from None
        if count != n:
            raise InvalidOption(f"split: mask has {count} entries for {n} slots")
        m = bytes(bool(x) for x in mask)
    return ffi.from_buffer("uint8_t[]", _exactly(m, n, 1, "split mask"))
