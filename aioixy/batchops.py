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

import ipaddress
from array import array
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from aioixy._ffi import ffi, lib
from aioixy.errors import InvalidOption

try:  # optional: results become numpy arrays (vectorised maths on them without a copy)
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by the fallback test via monkeypatch
    _np = None

if TYPE_CHECKING:
    from aioixy.control.firewall import Rule, RuleSet
    from aioixy.packet import PacketBatch

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


def _out(width: int, n: int):
    """A fresh result array of n elements and a native pointer into it."""
    ctype, code, dtype = _TYPES[width]
    if _np is not None:
        arr = _np.zeros(n, dtype=dtype)
    else:
        arr = array(code, bytes(n * array(code).itemsize))
    return arr, ffi.from_buffer(ctype + "[]", arr, require_writable=True)


def _as_mask(arr):
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
    _check_idle: Any

    def _slots(self):
        """(pointer to the first slot still ours, slot count)."""
        s = self._start
        return self._bufs + s, self._n - s

    # --- reading --------------------------------------------------------------------------

    def lengths(self):
        """Packet lengths, one per slot (``uint32``)."""
        p, n = self._slots()
        arr, c = _out(4, n)
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
        arr, c = _out(width, n)
        present, pc = _out(1, n) if with_present else (None, _NULL)
        lib.aioixy_ops_gather(p, n, fid, c, pc)
        return (arr, _as_mask(present)) if with_present else arr

    def field_at(self, offset: int, width: int, *, with_present: bool = False):
        """The big-endian ``width``-byte (1, 2, 4, 8) number at ``offset`` of every packet."""
        if width not in (1, 2, 4, 8):
            raise InvalidOption(f"width={width!r}: must be 1, 2, 4 or 8 bytes")
        if not isinstance(offset, int) or not 0 <= offset < 1 << 31:
            raise InvalidOption(f"offset={offset!r}: must be a non-negative integer")
        p, n = self._slots()
        arr, c = _out(8, n)
        present, pc = _out(1, n) if with_present else (None, _NULL)
        lib.aioixy_ops_gather_at(p, n, offset, width, c, pc)
        return (arr, _as_mask(present)) if with_present else arr

    def flow_hash(self, seed: int = 0, symmetric: bool = False):
        """A 32-bit hash of each packet's flow (IPv4 5-tuple, else MACs + EtherType), for
        sharding: ``hash % workers``. ``symmetric``: both directions of a flow hash alike."""
        p, n = self._slots()
        arr, c = _out(4, n)
        lib.aioixy_ops_flow_hash(p, n, seed & 0xFFFFFFFF, bool(symmetric), c)
        return arr

    def ipv4_checksum_ok(self):
        """Mask: the IPv4 header checksum is correct (False also for non-IPv4 packets)."""
        p, n = self._slots()
        st, c = _out(1, n)
        lib.aioixy_ops_ipv4_csum(p, n, False, c)
        return self._is(st, DONE)

    def l4_checksum_ok(self):
        """Mask: the TCP/UDP checksum is correct, or a UDP packet carries none (0)."""
        p, n = self._slots()
        st, c = _out(1, n)
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
        st, c = _out(1, n)
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
        st, c = _out(1, n)
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
        if len(values) != n:
            raise InvalidOption(f"{name}: {len(values)} values for a batch of {n} slots")
        ctype, code, dtype = _TYPES[width]
        if _np is not None and isinstance(values, _np.ndarray):
            if values.size and (values.min() < 0 or int(values.max()) >= limit):
                raise InvalidOption(f"{name}: values do not fit {width} bytes")
            buf = _np.ascontiguousarray(values, dtype=dtype)
        else:
            try:
                buf = array(code, values)
            except OverflowError:
                raise InvalidOption(f"{name}: values do not fit {width} bytes") from None
            if width == 6 and any(v >= limit for v in buf):
                raise InvalidOption(f"{name}: values do not fit 6 bytes")
        return lib.aioixy_ops_set_field(p, n, fid, ffi.from_buffer(ctype + "[]", buf), 0)

    # --- ownership: split and merge ------------------------------------------------------

    def split(self, mask) -> tuple[PacketBatch, PacketBatch]:
        """Two new batches: the packets whose mask entry is true, and the others (order kept).

        The buffers move: this batch owns nothing afterwards (packets taken from it before raise
        PacketReleased), each buffer is owned by exactly one of the two results.
        """
        p, n = self._slots()
        if len(mask) != n:
            raise InvalidOption(f"split: mask has {len(mask)} entries for {n} slots")
        if _np is not None and isinstance(mask, _np.ndarray):
            m = _np.ascontiguousarray(mask, dtype=_np.bool_)
        elif isinstance(mask, (bytes, bytearray)):
            m = mask
        else:
            m = bytes(bool(x) for x in mask)
        return self._split_native(p, n, ffi.from_buffer("uint8_t[]", m))

    def _split_native(self, p, n: int, mask_c) -> tuple[PacketBatch, PacketBatch]:
        self._check_idle()  # a waiting tx of this batch must keep its buffers where they are
        cls = type(self)
        yes = ffi.new(_BUF_ARRAY, n or 1)
        no = ffi.new(_BUF_ARRAY, n or 1)
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
        arr = ffi.new(_BUF_ARRAY, total or 1)
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
    from aioixy.packet import PacketBatch

    return PacketBatch.merge(*batches)


# --- classification ---------------------------------------------------------------------------

_ANY = {"eth": (0, 0x10000), "ip": (0, 1 << 32), "proto": (0, 0x100), "port": (0, 0x10000)}
_FIELD_KINDS = ("eth", "ip", "ip", "proto", "port", "port")


def _prefix_range(net: ipaddress.IPv4Network | None) -> tuple[int, int]:
    if net is None:
        return _ANY["ip"]
    return int(net.network_address), int(net.broadcast_address)


def _point(value: int | None, kind: str) -> tuple[int, int]:
    return _ANY[kind] if value is None else (value, value)


def _intervals(ranges: list[tuple[int, int]], words: int,
               top: int) -> tuple[list[int], list[int]]:
    """Elementary intervals of the ranges and, per interval, the bitmap of covering rules
    (bounds past `top`, the largest key the native side produces, are left out: a field no
    rule narrows is then one interval, found without a search)."""
    starts: dict[int, int] = {}
    ends: dict[int, int] = {}
    for i, (lo, hi) in enumerate(ranges):
        starts[lo] = starts.get(lo, 0) | 1 << i
        ends[hi + 1] = ends.get(hi + 1, 0) | 1 << i
    bounds = sorted(b for b in {0, *starts, *ends} if b <= top)
    cur = 0
    bitmaps: list[int] = []
    mask64 = (1 << 64) - 1
    for b in bounds:
        cur = (cur & ~ends.get(b, 0)) | starts.get(b, 0)
        bitmaps.extend((cur >> (64 * w)) & mask64 for w in range(words))
    return bounds, bitmaps


# jump tables: a field's value space (absent value included) in at most 65538 buckets
_JUMP_MIN_BOUNDS = 16
_SHIFT = {"eth": 1, "ip": 17, "proto": 0, "port": 1}


def _jump(bounds: list[int], shift: int, top: int) -> array:
    """jump[k] = index of the last bound <= k << shift, for every bucket k up to `top`'s."""
    nj = (top >> shift) + 2
    jump = array("I", bytes(4 * nj))
    for i, b in enumerate(bounds):
        first = -(-b >> shift)  # buckets whose start is in [bounds[i], bounds[i + 1])
        end = min(nj, -(-bounds[i + 1] >> shift)) if i + 1 < len(bounds) else nj
        if first < end:
            jump[first:end] = array("I", [i]) * (end - first)
    return jump


class Filter:
    """An ordered rule set (first match wins) compiled once, applied to whole batches.

    ``Filter.compile(rules)`` takes a :class:`aioixy.control.RuleSet` (its rules, default and
    hit counters) or an iterable of rule dicts / :class:`~aioixy.control.firewall.Rule`. Rule
    fields: ``action``, ``src``/``dst`` (IPv4 prefixes), ``proto``, ``dport`` as in RuleSet,
    plus ``sport`` and ``ethertype`` (default IPv4; another EtherType allows no IP fields).
    Matching is exactly RuleSet.allows(): IPv4 means EtherType 0x0800 at offset 12 (a VLAN
    tag is not looked through) and at least 34 bytes; anything else gets the default.
    Cost per packet does not grow with the number of rules' position (docs/batch-ops.md).
    """

    def __init__(self, rules: list[tuple[int, str, list[tuple[int, int]]]], default: str,
                 ruleset: RuleSet | None = None) -> None:
        if len(rules) > lib.AIOIXY_FILTER_MAX_WORDS * 64:
            raise InvalidOption(f"{len(rules)} rules: at most "
                                f"{lib.AIOIXY_FILTER_MAX_WORDS * 64} fit one filter")
        self.ids = [r[0] for r in rules]
        self.default = default
        self._ruleset = ruleset
        nr = len(rules)
        words = max(1, (nr + 63) // 64)
        f = ffi.new("struct aioixy_filter *")
        keep = []
        for k in range(lib.AIOIXY_FILTER_FIELDS):
            kind = _FIELD_KINDS[k]
            bounds, bitmaps = _intervals([r[2][k] for r in rules], words, _ANY[kind][1])
            b = ffi.new("uint64_t[]", bounds)
            m = ffi.new("uint64_t[]", bitmaps)
            keep += [b, m]
            fld = f.fields[k]
            fld.nbounds = len(bounds)
            fld.bounds = b
            fld.bitmaps = m
            if len(bounds) > _JUMP_MIN_BOUNDS:
                jump = _jump(bounds, _SHIFT[kind], _ANY[kind][1])
                keep.append(jump)
                fld.jump = ffi.from_buffer("uint32_t[]", jump)
                fld.njump = len(jump)
                fld.shift = _SHIFT[kind]
        allow = ffi.new("uint8_t[]", [r[1] == "allow" for r in rules] or [0])
        self._hits_c = ffi.new("uint64_t[]", nr + 1)
        self._touched_c = ffi.new("uint32_t[]", nr + 1)
        f.nrules = nr
        f.words = words
        f.allow = allow
        f.default_allow = default == "allow"
        f.hits = self._hits_c
        f.touched = self._touched_c
        f.ntouched = 0
        self._f = f
        self._keep = (keep, allow)
        self._totals = [0] * (nr + 1)

    @classmethod
    def compile(cls, rules: RuleSet | Iterable[Rule | Mapping[str, Any]],
                default: str | None = None) -> Filter:
        from aioixy.control.firewall import Rule, RuleSet, parse_rule

        ruleset = rules if isinstance(rules, RuleSet) else None
        if default is None:
            default = ruleset.default if ruleset is not None else "allow"
        if default not in ("allow", "deny"):
            raise InvalidOption(f"default={default!r}: must be 'allow' or 'deny'")
        compiled = []
        for i, spec in enumerate(rules, 1):
            extra: dict[str, Any] = {}
            if isinstance(spec, Rule):
                rule = spec
            else:
                spec = dict(spec)
                extra = {k: spec.pop(k) for k in ("sport", "ethertype") if k in spec}
                rule = parse_rule(i, spec)
            compiled.append((rule.id, rule.action, cls._ranges(rule, **extra)))
        return cls(compiled, default, ruleset)

    @staticmethod
    def _ranges(rule: Rule, sport: int | None = None,
                ethertype: int | None = None) -> list[tuple[int, int]]:
        for name, v, hi in (("sport", sport, 0xFFFF), ("ethertype", ethertype, 0xFFFF)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)
                                  or not 0 <= v <= hi):
                raise InvalidOption(f"{name}: {v!r} is not a number 0..{hi}")
        if sport is not None and rule.proto not in (6, 17):
            raise InvalidOption("sport: needs proto 'tcp' or 'udp'")
        eth = 0x0800 if ethertype is None else ethertype
        if eth != 0x0800 and (rule.src or rule.dst or rule.proto is not None
                              or rule.dport is not None or sport is not None):
            raise InvalidOption(f"ethertype 0x{eth:04x}: a non-IPv4 rule cannot match IP fields")
        return [(eth, eth), _prefix_range(rule.src), _prefix_range(rule.dst),
                _point(rule.proto, "proto"), _point(sport, "port"), _point(rule.dport, "port")]

    @classmethod
    def of(cls, ruleset: RuleSet) -> Filter:
        """The filter for a RuleSet's current rules, compiled again only after they change
        (add/remove through the control plane while traffic flows); hits count into it."""
        # RuleSet rebuilds its private match list on every change: its identity (and the
        # default action) says whether the cached filter still describes the rules
        key = (id(ruleset._compiled), ruleset.default)
        cached = getattr(ruleset, "_batch_filter", None)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            cached[1]._fold()
        flt = cls.compile(ruleset)
        # the list is kept with the key so its id cannot be reused by a later list
        ruleset._batch_filter = (key, flt, ruleset._compiled)
        return flt

    def __len__(self) -> int:
        return len(self.ids)

    def _classify(self, batch: PacketBatch, rule_c=_NULL):
        s = batch._start
        n = batch._n - s
        verdict, vc = _out(1, n)
        lib.aioixy_ops_classify(self._f, batch._bufs + s, n, vc, rule_c)
        self._fold()
        return verdict, vc

    def _fold(self) -> None:
        """Move the native counters into the totals (and the RuleSet's hit counters), visiting
        only the rules this batch hit: a batch usually touches a few of many rules."""
        f = self._f
        k = f.ntouched
        if not k:
            return
        f.ntouched = 0
        h = self._hits_c
        rs = self._ruleset
        nr = len(self.ids)
        for i in self._touched_c[0:k]:
            c = h[i]
            h[i] = 0
            self._totals[i] += c
            if rs is not None:
                if i == nr:
                    rs.default_hits += c
                elif self.ids[i] in rs.hits:
                    rs.hits[self.ids[i]] += c

    def mask(self, batch: PacketBatch):
        """Per slot: True if the packet is allowed."""
        return _as_mask(self._classify(batch)[0])

    def rules(self, batch: PacketBatch):
        """Per slot: index (into the rule list) of the deciding rule, len(filter) for the
        default, 0xFFFF for a slot the batch no longer owns."""
        n = batch._n - batch._start
        arr, c = _out(2, n)
        self._classify(batch, c)
        return arr

    def split(self, batch: PacketBatch) -> tuple[PacketBatch, PacketBatch]:
        """(allowed, denied) as two new batches; ``batch`` owns nothing afterwards."""
        _, vc = self._classify(batch)
        return batch._split_native(batch._bufs + batch._start, batch._n - batch._start, vc)

    @property
    def hits(self) -> dict[int | str, int]:
        """Packets decided per rule id (and ``"default"``) since compile."""
        return {**dict(zip(self.ids, self._totals, strict=False)),
                "default": self._totals[-1]}
