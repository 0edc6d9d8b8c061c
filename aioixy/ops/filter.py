"""Firewall rules compiled into a native classifier that judges a whole batch in one call.

:class:`Filter` is the batch-level twin of :meth:`RuleSet.allows`: the same first-match rules,
turned into per-field interval tables (docs/batch-ops.md), so a 100-rule set costs one native
call per batch instead of a Python loop per packet.
"""

from __future__ import annotations

import ipaddress
import weakref
from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from aioixy._ffi import ffi, lib
from aioixy.errors import InvalidOption
from aioixy.ops.batch import BatchOps, as_mask, out_array
from aioixy.ops.rules import Rule, RuleSet, parse_rule

_NULL = ffi.NULL

#: RuleSet -> ((generation, default), Filter): the filter Filter.of compiled for its rules
_compiled_for: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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
        key = (ruleset.generation, ruleset.default)
        cached = _compiled_for.get(ruleset)
        if cached is not None and cached[0] == key:
            return cached[1]
        if cached is not None:
            cached[1]._fold()
        flt = cls.compile(ruleset)
        _compiled_for[ruleset] = (key, flt)
        return flt

    def __len__(self) -> int:
        return len(self.ids)

    def _classify(self, batch: BatchOps, rule_c=_NULL):
        p, n = batch._slots()
        verdict, vc = out_array(1, n)
        lib.aioixy_ops_classify(self._f, p, n, vc, rule_c)
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

    def mask(self, batch: BatchOps):
        """Per slot: True if the packet is allowed."""
        return as_mask(self._classify(batch)[0])

    def rules(self, batch: BatchOps):
        """Per slot: index (into the rule list) of the deciding rule, len(filter) for the
        default, 0xFFFF for a slot the batch no longer owns."""
        arr, c = out_array(2, batch._slots()[1])
        self._classify(batch, c)
        return arr

    def split(self, batch: BatchOps) -> tuple[BatchOps, BatchOps]:
        """(allowed, denied) as two new batches; ``batch`` owns nothing afterwards."""
        _, vc = self._classify(batch)
        return batch._split_by(vc)

    @property
    def hits(self) -> dict[int | str, int]:
        """Packets decided per rule id (and ``"default"``) since compile."""
        return {**dict(zip(self.ids, self._totals, strict=False)),
                "default": self._totals[-1]}
