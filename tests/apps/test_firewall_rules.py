"""RuleSet matching: prefixes, protocols, ports, order, default action, non-IPv4 frames."""

from __future__ import annotations

import struct

import pytest

from aioixy.ops.rules import RuleError, RuleSet


def ipv4(src: str, dst: str, proto: int, dport: int | None = None, ihl: int = 5) -> bytes:
    l4 = b""
    if proto in (6, 17):
        l4 = struct.pack("!HH", 40000, dport or 0) + bytes(16)
    elif proto == 1:
        l4 = b"\x08\x00" + bytes(6)
    opts = bytes((ihl - 5) * 4)
    ip = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(l4), 0, 0, 64, proto,
                     0, bytes(int(x) for x in src.split(".")),
                     bytes(int(x) for x in dst.split(".")))
    return b"\xff" * 6 + b"\x02" + bytes(5) + b"\x08\x00" + ip + opts + l4


def test_first_match_wins_and_every_field_narrows_the_match():
    rules = RuleSet()
    rules.add({"action": "allow", "src": "10.0.0.5/32", "proto": "udp", "dport": 53})
    rules.add({"action": "deny", "src": "10.0.0.0/24", "proto": "udp", "dport": 53})
    rules.add({"action": "deny", "dst": "192.168.0.0/16", "proto": "tcp"})
    rules.add({"action": "deny", "proto": "icmp"})
    cases = [
        (ipv4("10.0.0.5", "1.1.1.1", 17, 53), True),     # rule 1 (before the deny)
        (ipv4("10.0.0.6", "1.1.1.1", 17, 53), False),    # rule 2
        (ipv4("10.0.1.6", "1.1.1.1", 17, 53), True),     # outside the /24: default
        (ipv4("10.0.0.6", "1.1.1.1", 17, 54), True),     # other port: default
        (ipv4("10.0.0.6", "1.1.1.1", 6, 53), True),      # tcp, not udp: default
        (ipv4("8.8.8.8", "192.168.7.1", 6, 443), False),  # rule 3, any port
        (ipv4("8.8.8.8", "192.169.0.1", 6, 443), True),
        (ipv4("8.8.8.8", "192.168.7.1", 1), False),      # rule 4
        (ipv4("10.0.0.6", "1.1.1.1", 17, 53, ihl=6), False),  # IP options: port still found
    ]
    assert [rules.allows(f) for f, _ in cases] == [want for _, want in cases]
    assert rules.hits == {1: 1, 2: 2, 3: 1, 4: 1}
    assert rules.default_hits == 4


def test_default_action_applies_to_non_ipv4_and_short_frames():
    rules = RuleSet(default="deny")
    rules.add({"action": "allow", "proto": 17})
    arp = b"\xff" * 6 + bytes(6) + b"\x08\x06" + bytes(28)
    assert rules.allows(ipv4("1.2.3.4", "5.6.7.8", 17, 9))
    assert not rules.allows(arp)
    assert not rules.allows(b"\x00" * 20)
    assert rules.default_hits == 2


def test_remove_restores_traffic_and_ids_are_not_reused():
    rules = RuleSet()
    r1 = rules.add({"action": "deny"})
    frame = ipv4("1.2.3.4", "5.6.7.8", 17, 9)
    assert not rules.allows(frame)
    rules.remove(r1.id)
    assert rules.allows(frame)
    assert rules.add({"action": "deny"}).id == r1.id + 1
    with pytest.raises(KeyError):
        rules.remove(r1.id)


@pytest.mark.parametrize(("spec", "says"), [
    ({}, "missing field 'action'"),
    ({"action": "reject"}, "action"),
    ({"action": "deny", "src": "300.0.0.0/8"}, "src"),
    ({"action": "deny", "proto": 256}, "proto"),
    ({"action": "deny", "proto": True}, "proto"),
    ({"action": "deny", "proto": "udp", "dport": -1}, "dport"),
    ({"action": "deny", "proto": "icmp", "dport": 1}, "needs proto"),
    ({"action": "deny", "sport": 1}, "unknown field 'sport'"),
])
def test_invalid_rules_are_rejected_with_the_reason(spec, says):
    rules = RuleSet()
    with pytest.raises(RuleError, match=says):
        rules.add(spec)
    assert len(rules) == 0
