"""What a kernel port takes from the kernel: nothing when it only transmits, and with
``divert=RULES`` only what the rules allow.

A tx-only port (``rx=False``, as ``aioixy pktgen`` and ``replay`` open theirs) attaches no XDP
program, so the interface's own traffic (ARP, ping, ...) keeps reaching the kernel while a
generator runs on it. Divert rules compile into the XDP program (xdp:) or a socket filter
(packet:), checked against RuleSet.allows frame by frame.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import subprocess
import sys
import time

import pytest

import aioixy
from aioixy import errors
from aioixy._ffi import ffi, lib
from aioixy.core.config import PortConfig
from aioixy.jobs import load_pcap
from aioixy.ops import RuleSet
from tests.kernel.links import require_root
from tests.kernel.netns import in_ns, ip
from tests.kernel.test_kernel_peer import _wait_line

pytestmark = pytest.mark.usefixtures("no_leaks")


def xdp_attached(ns: str, ifname: str) -> bool:
    return "xdp" in json.loads(ip("-d", "-j", "link", "show", ifname, ns=ns))[0]


def test_tx_only_port_takes_nothing_ping_keeps_working(netlab):
    ns1, ns2 = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns1, ns_b=ns2)
    ip("addr", "add", "198.18.7.1/24", "dev", v.a, ns=ns1)
    ip("addr", "add", "198.18.7.2/24", "dev", v.b, ns=ns2)
    # pktgen on the interface that answers the pings (it carries an address: --force)
    gen = netlab.popen(ns2, [sys.executable, "-u", "-m", "aioixy", "pktgen", f"xdp:{v.b}",
                             "--force", "--rate", "2000", "--duration", "60"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(gen, "pkt")  # its status line: the port is open and sending
    assert not xdp_attached(ns2, v.b), "a tx-only port attached an XDP program"
    ip("neigh", "flush", "dev", v.a, ns=ns1)  # ARP must get through as well
    r = subprocess.run(in_ns(ns1, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.7.2"]),
                       capture_output=True, text=True, timeout=60)
    assert gen.poll() is None, "the generator stopped before the pings were done"
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    # and the generator did send meanwhile: ns1's end received its frames
    before = _rx_packets(ns1, v.a)
    time.sleep(0.5)
    assert _rx_packets(ns1, v.a) > before + 100
    gen.terminate()
    gen.communicate(timeout=60)
    assert gen.returncode == 0


def _rx_packets(ns: str, ifname: str) -> int:
    return json.loads(ip("-s", "-j", "link", "show", ifname, ns=ns))[0]["stats64"]["rx"]["packets"]


# ---- divert=RULES: only what the rules allow goes to the port ------------------------------

def _ip(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ipv4(src: str, dst: str, proto: int, l4: bytes, ihl: int = 5, idx: int = 0,
         ethertype: bytes = b"\x08\x00") -> bytes:
    """An Ethernet/IPv4 frame; the source MAC's last byte numbers it (idx)."""
    opts = b"\x01" * (4 * max(ihl, 5) - 20)
    iph = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 20 + len(opts) + len(l4), idx, 0, 64, proto,
                      0, _ip(src), _ip(dst)) + opts
    return b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x01" + bytes([idx]) + ethertype + \
        iph + l4


def ports(sport: int, dport: int, rest: int = 16) -> bytes:
    return struct.pack("!HH", sport, dport) + b"\0" * rest


def frame_table() -> list[bytes]:
    """Frames that exercise every branch of the match (RuleSet.allows is the reference)."""
    t = []
    for src, dst in (("10.1.2.3", "198.18.0.9"), ("200.1.1.1", "198.19.255.1"),
                     ("192.0.2.1", "203.0.113.7")):
        for proto, dport in ((17, 9999), (17, 53), (6, 80), (6, 22), (6, 9999)):
            t.append(ipv4(src, dst, proto, ports(1234, dport)))
        t.append(ipv4(src, dst, 1, b"\x08\x00" + b"\0" * 30))  # ICMP
        t.append(ipv4(src, dst, 47, ports(1, 9999)))  # GRE: no ports even if bytes say 9999
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, ports(1, 9999), ihl=6))  # options: port after
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, ports(1, 9999), ihl=15))
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, struct.pack("!HH", 1, 9999)))  # L4 just fits
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, b"\x00\x01\x27"))  # port cut short: none
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, ports(1, 9999), ethertype=b"\x86\xdd"))
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, ports(1, 9999), ethertype=b"\x08\x06"))
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, b"")[:34])  # exactly 34 bytes: IPv4, no port
    t.append(ipv4("10.0.0.1", "198.18.0.1", 17, b"")[:33])  # too short to be IPv4
    return [f[:11] + bytes([i]) + f[12:] for i, f in enumerate(t)]


RULE_SHAPES = {
    "one port": ([{"action": "allow", "proto": "udp", "dport": 9999}], "deny"),
    "deny first": ([{"action": "deny", "src": "10.0.0.0/8"}, {"action": "allow", "proto": "udp"},
                    {"action": "allow", "proto": "tcp", "dport": 80}], "deny"),
    "prefixes": ([{"action": "allow", "dst": "198.18.0.0/15", "proto": "icmp"},
                  {"action": "allow", "src": "200.0.0.0/8", "dst": "198.19.0.0/16"}], "deny"),
    "default allow": ([{"action": "deny", "proto": "tcp", "dport": 22}], "allow"),
    "empty deny": ([], "deny"),
    "empty allow": ([], "allow"),
    "many": ([{"action": "allow", "proto": "udp", "dport": 1000 + i} for i in range(255)]
             + [{"action": "allow", "proto": "tcp", "dport": 22}], "deny"),
}


def ruleset(shape: str) -> RuleSet:
    specs, default = RULE_SHAPES[shape]
    rs = RuleSet(default=default)
    for s in specs:
        rs.add(s)
    return rs


@pytest.mark.parametrize("shape", list(RULE_SHAPES))
def test_divert_program_decides_like_ruleset(shape):
    """The XDP program the rules compile into, accepted by the verifier and run by the kernel
    (BPF_PROG_TEST_RUN) on a table of frames, decides every frame as RuleSet.allows does."""
    require_root()
    rs = ruleset(shape)
    c, _keep = PortConfig(device="xdp:lo", divert=rs).to_native(ffi, lib)  # _keep: the rule array
    for i, f in enumerate(frame_table()):
        got = lib.aioixy_divert_test(c.dev.divert_rules, c.dev.divert_count,
                                     c.dev.divert_default, f, len(f))
        if got < 0:
            raise errors.from_native(got)
        assert bool(got) == rs.allows(f), (shape, i, f.hex())


def test_divert_bad_rules_refused():
    with pytest.raises(aioixy.InvalidOption, match="not a kernel port"):
        PortConfig(device="null", divert=[{"action": "allow", "proto": "udp"}])
    with pytest.raises(aioixy.InvalidOption, match="dport"):
        PortConfig(device="xdp:x", divert=[{"action": "allow", "dport": 80}])
    with pytest.raises(aioixy.InvalidOption, match="rule"):
        PortConfig(device="xdp:x", divert=["udp"])
    with pytest.raises(aioixy.InvalidOption, match="256"):
        PortConfig(device="xdp:x",
                   divert=[{"action": "allow", "proto": "udp", "dport": i} for i in range(257)])


@pytest.mark.parametrize("backend", ["packet", "xdp"])
async def test_divert_over_a_veth_matches_ruleset(netlab, backend):
    """The same table sent over a veth: the port receives exactly the frames the rules allow
    (xdp: the XDP program; packet: the socket filter)."""
    v = netlab.veth()
    rs = ruleset("deny first")
    table = frame_table()
    want = sorted(i for i, f in enumerate(table) if rs.allows(f))
    got: list[int] = []
    async with aioixy.open(f"{backend}:{v.b}", divert=rs) as port:
        await asyncio.sleep(0.2)
        with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as s:
            s.bind((v.a, 0))
            for f in table:
                s.send(f)

        async def collect() -> None:
            async for batch in port.rx():
                with batch:
                    got.extend(bytes(p.data[6:11]) == b"\x02\x00\x00\x00\x01" and p.data[11]
                               for p in batch)

        task = asyncio.create_task(collect())
        await asyncio.sleep(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert sorted(x for x in got if x is not False) == want


def test_divert_ping_through_kernel_udp_to_port_without_force(netlab):
    """An interface with an address (the host's traffic): xdp: with narrow divert rules opens
    without force; ping to the address still works through the kernel while the diverted UDP
    reaches the port. Rules that would take all TCP still need force."""
    ns1, ns2 = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns1, ns_b=ns2)
    ip("addr", "add", "198.18.8.1/24", "dev", v.a, ns=ns1)
    ip("addr", "add", "198.18.8.2/24", "dev", v.b, ns=ns2)
    port = netlab.popen(ns2, [sys.executable, "-c", f"""
import asyncio, aioixy
async def main():
    try:
        async with aioixy.open("xdp:{v.b}", divert=[{{"action": "allow", "proto": "tcp"}}]):
            print("opened without force", flush=True)
    except aioixy.DeviceBusy as exc:
        print("busy:", exc, flush=True)
    rules = [{{"action": "allow", "proto": "udp", "dport": 9999}}]
    async with aioixy.open("xdp:{v.b}", divert=rules) as p:
        print("ready", flush=True)
        n = 0
        async for b in p.rx():
            with b:
                n += sum(bytes(x.data[-5:]) == b"aioxy" for x in b)
            if n >= 20:
                break
        print("udp", n, flush=True)
asyncio.run(main())
"""], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    busy = _wait_line(port, "busy")
    assert "198.18.8.2" in busy, busy
    _wait_line(port, "ready")
    r = subprocess.run(in_ns(ns1, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.8.2"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    subprocess.run(in_ns(ns1, [sys.executable, "-c", """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    s.sendto(b"x" * 50 + b"aioxy", ("198.18.8.2", 9999))
    time.sleep(0.01)
"""]), check=True, timeout=60)
    out, _ = port.communicate(timeout=60)
    assert "udp 20" in out, out
    assert port.returncode == 0, out


@pytest.mark.parametrize("backend", ["packet", "xdp"])
def test_cli_dump_divert_takes_only_udp_port(netlab, tmp_path, backend):
    """aioixy dump --divert udp:9999 on an interface with an address, without --force: the
    capture holds exactly the diverted datagrams, ping keeps working through the kernel."""
    ns1, ns2 = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns1, ns_b=ns2)
    ip("addr", "add", "198.18.9.1/24", "dev", v.a, ns=ns1)
    ip("addr", "add", "198.18.9.2/24", "dev", v.b, ns=ns2)
    pcap = tmp_path / "d.pcap"
    dump = netlab.popen(ns2, [sys.executable, "-u", "-m", "aioixy", "dump", f"{backend}:{v.b}",
                              "--divert", "udp:9999", "-w", str(pcap), "--count", "10",
                              "--duration", "60", "--json"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # the port opens (nothing to wait on: --json prints only the summary)
    r = subprocess.run(in_ns(ns1, ["ping", "-c", "3", "-i", "0.2", "-W", "2", "198.18.9.2"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    subprocess.run(in_ns(ns1, [sys.executable, "-c", """
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(10):
    s.sendto(b"dump%d" % i, ("198.18.9.2", 9999))
    s.sendto(b"other", ("198.18.9.2", 9998))
    time.sleep(0.01)
"""]), check=True, timeout=60)
    out, err = dump.communicate(timeout=60)
    assert dump.returncode == 0, out + err
    frames = load_pcap(str(pcap))[0]
    assert [f[-5:] for f in frames] == [b"dump%d" % i for i in range(10)]


def test_cli_divert_bad_rules_exit_2():
    for bad in ("udp:http", "[{\"action\": \"allow\", \"dport\": 1}]", "tcp:70000", ""):
        r = subprocess.run([sys.executable, "-m", "aioixy", "dump", "null", "-w", "/dev/null",
                            "--divert", bad], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert "divert" in r.stderr, r.stderr
