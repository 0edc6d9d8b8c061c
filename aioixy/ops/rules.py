"""L3/L4 firewall rules: an ordered list, first match wins, per-rule hit counters.

The rule set is shared between the packet path (``RuleSet.allows(frame)`` per packet, or a whole
batch at once through :class:`aioixy.ops.filter.Filter`) and the HTTP control plane (add / list /
delete while traffic flows). Both run on the same event loop, so a change is atomic with respect
to packets: a batch is judged entirely before or entirely after it. Rules are matched on integers
(address & mask), not on ``ipaddress`` objects, because this runs for every packet in Python.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs

Action = Literal["allow", "deny"]
ACTIONS: tuple[Action, ...] = ("allow", "deny")
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17}
_PROTO_NAMES = {v: k for k, v in PROTOCOLS.items()}
RULE_FIELDS = ("action", "src", "dst", "proto", "dport")


#: rules a RuleSet holds by default: every packet is matched against them in Python, and the
#: HTTP API must not let a client grow the list (and the per-packet cost) without bound
MAX_RULES = 1024


class RuleError(ValueError):
    """A rule specification is invalid; the message names the field and what is wrong."""


class RuleLimit(RuleError):
    """The rule set is full."""


@attrs.frozen
class Rule:
    """Match IPv4 packets by source/destination prefix, protocol and destination port.

    A field left as None matches anything. ``dport`` needs ``proto`` tcp or udp.
    """

    id: int
    action: Action
    src: ipaddress.IPv4Network | None = None
    dst: ipaddress.IPv4Network | None = None
    proto: int | None = None
    dport: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "src": str(self.src) if self.src else None,
            "dst": str(self.dst) if self.dst else None,
            "proto": _PROTO_NAMES.get(self.proto, self.proto) if self.proto is not None else None,
            "dport": self.dport,
        }


def _prefix(name: str, value: object) -> ipaddress.IPv4Network | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RuleError(f"{name}: expected an IPv4 prefix string such as '10.0.0.0/8'")
    try:
        return ipaddress.IPv4Network(value, strict=False)
    except ValueError as exc:
        raise RuleError(f"{name}: {value!r} is not an IPv4 prefix ({exc})") from None


def _proto(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in PROTOCOLS:
        return PROTOCOLS[value.lower()]
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise RuleError(f"proto: {value!r} is not one of {sorted(PROTOCOLS)} or a number 0..255")


def parse_rule(rule_id: int, spec: Mapping[str, Any]) -> Rule:
    """Validate a JSON rule specification (``action`` required, the rest optional)."""
    unknown = sorted(set(spec) - set(RULE_FIELDS))
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r} (a rule has {', '.join(RULE_FIELDS)})")
    if "action" not in spec:
        raise RuleError("missing field 'action' (one of 'allow', 'deny')")
    action = spec["action"]
    if action not in ACTIONS:
        raise RuleError(f"action: {action!r} is not 'allow' or 'deny'")
    proto = _proto(spec.get("proto"))
    dport = spec.get("dport")
    if dport is not None:
        if isinstance(dport, bool) or not isinstance(dport, int) or not 0 <= dport <= 65535:
            raise RuleError(f"dport: {dport!r} is not a port number 0..65535")
        if proto not in (PROTOCOLS["tcp"], PROTOCOLS["udp"]):
            raise RuleError("dport: needs proto 'tcp' or 'udp'")
    return Rule(id=rule_id, action=action, src=_prefix("src", spec.get("src")),
                dst=_prefix("dst", spec.get("dst")), proto=proto, dport=dport)


def _net(net: ipaddress.IPv4Network | None) -> tuple[int, int]:
    # (value, mask) with mask 0 for "any": one `addr & mask == value` test covers both cases
    if net is None:
        return 0, 0
    return int(net.network_address), int(net.netmask)


class RuleSet:
    """Ordered rules plus a default action for packets no rule matches (and non-IPv4 frames)."""

    def __init__(self, default: Action = "allow", max_rules: int = MAX_RULES) -> None:
        if default not in ACTIONS:
            raise RuleError(f"default action {default!r} is not 'allow' or 'deny'")
        if isinstance(max_rules, bool) or not isinstance(max_rules, int) or max_rules < 1:
            raise RuleError(f"max_rules={max_rules!r}: must be a positive integer")
        self.default: Action = default
        self.max_rules = max_rules
        self.default_hits = 0
        self.hits: dict[int, int] = {}
        self._rules: list[Rule] = []
        self._compiled: list[tuple[int, int, int, int, int, int | None, int | None, bool]] = []
        self._next_id = 1
        #: counts changes to the rule list: a compiled batch filter of generation g describes
        #: the rules only while this is still g
        self.generation = 0

    def __iter__(self) -> Iterator[Rule]:
        return iter(list(self._rules))

    def __len__(self) -> int:
        return len(self._rules)

    def get(self, rule_id: int) -> Rule:
        for r in self._rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def add(self, spec: Mapping[str, Any]) -> Rule:
        if len(self._rules) >= self.max_rules:
            raise RuleLimit(f"the rule set is full ({self.max_rules} rules): delete rules "
                            "before adding more")
        rule = parse_rule(self._next_id, spec)
        self._next_id += 1
        self._rules.append(rule)
        self.hits[rule.id] = 0
        self._compile()
        return rule

    def remove(self, rule_id: int) -> Rule:
        rule = self.get(rule_id)
        self._rules.remove(rule)
        del self.hits[rule_id]
        self._compile()
        return rule

    def to_json(self) -> dict[str, Any]:
        return {"default": self.default, "default_hits": self.default_hits,
                "rules": [{**r.to_json(), "hits": self.hits[r.id]} for r in self._rules]}

    def _compile(self) -> None:
        self.generation += 1
        self._compiled = [(r.id, *_net(r.src), *_net(r.dst), r.proto, r.dport,
                           r.action == "allow") for r in self._rules]

    def allows(self, frame: memoryview | bytes) -> bool:
        """Judge one Ethernet frame, counting the hit on the rule that decided."""
        if len(frame) >= 34 and frame[12] == 0x08 and frame[13] == 0x00:
            src = int.from_bytes(frame[26:30], "big")
            dst = int.from_bytes(frame[30:34], "big")
            proto = frame[23]
            l4 = 14 + (frame[14] & 0x0F) * 4
            dport = (frame[l4 + 2] << 8 | frame[l4 + 3]) \
                if proto in (6, 17) and len(frame) >= l4 + 4 else None
            for rid, s_net, s_mask, d_net, d_mask, r_proto, r_dport, allow in self._compiled:
                if src & s_mask == s_net and dst & d_mask == d_net \
                        and (r_proto is None or r_proto == proto) \
                        and (r_dport is None or r_dport == dport):
                    self.hits[rid] += 1
                    return allow
        self.default_hits += 1
        return self.default == "allow"
