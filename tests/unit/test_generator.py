"""aioixy.Generator: frames filled a batch per native call, checked by an independent reader
(scapy recomputes every checksum), and misuse refused before anything is written."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import aioixy
from aioixy.core.frames import frame_seq
from aioixy.core.generator import TS_OFFSET

pytestmark = pytest.mark.usefixtures("no_leaks")


def _scapy_checks(data: bytes) -> Ether:
    """The frame parsed by scapy, after asserting that scapy computes the same checksums."""
    e = Ether(data)
    ip_sum, udp_sum = e[IP].chksum, e[UDP].chksum
    del e[IP].chksum, e[UDP].chksum
    ref = Ether(bytes(e))
    assert (ip_sum, udp_sum) == (ref[IP].chksum, ref[UDP].chksum), len(data)
    assert e[IP].len == len(data) - 14 and e[UDP].len == len(data) - 34
    return Ether(data)


SPECS = [
    aioixy.FrameSpec(),
    aioixy.FrameSpec(size=(60, 1514), flows=7, vary="src-ip", timestamp=True),
    aioixy.FrameSpec(size=(61, 63), flows=3, vary="dport", dst_ip="10.255.255.255"),
    aioixy.FrameSpec(size=1000, flows=300, vary="dst-ip", sport=65535, dport=0),
    aioixy.FrameSpec(flows=70000, vary="sport", sport=65000, src_ip="255.255.255.250"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.vary}-{s.size}-{s.flows}")
async def test_frames_have_correct_checksums_and_vary_as_asked(spec):
    async with aioixy.open("null", rx=False) as port:
        gen = aioixy.Generator(port, spec)
        gen.seq = 2**40 - 3  # carries across 16-bit words of the checksum
        flows = []
        with gen.batch(200) as b:
            lo, hi = spec.sizes
            for i, pkt in enumerate(b):
                data = bytes(pkt.data)
                e = _scapy_checks(data)
                assert lo <= len(data) <= hi
                assert frame_seq(data) == 2**40 - 3 + i
                assert e.src == port.mac and e.dst == spec.dst_mac
                field = {"sport": e[UDP].sport, "dport": e[UDP].dport, "src-ip": e[IP].src,
                         "dst-ip": e[IP].dst}[spec.vary]
                flows.append(field)
            assert gen.bytes == b.nbytes and gen.frames == 200
        if spec.flows == 1:
            assert len(set(flows)) == 1
        else:  # round robin from the base value
            assert len(set(flows)) == min(spec.flows, 200)
            assert flows[0] == {"sport": spec.sport, "dport": spec.dport, "src-ip": spec.src_ip,
                                "dst-ip": spec.dst_ip}[spec.vary]
            if spec.flows <= 200:
                assert flows[spec.flows] == flows[0]


async def test_sizes_cover_the_range_and_timestamps_are_now():
    async with aioixy.open("null", rx=False) as port:
        gen = aioixy.Generator(port, size=(60, 64), timestamp=True)
        before = time.time_ns()
        with gen.batch(300) as b:
            sizes = {len(p) for p in b}
            stamps = {int.from_bytes(bytes(p.data[TS_OFFSET:TS_OFFSET + 8]), "big")
                      for p in b}
        assert sizes == {60, 61, 62, 63, 64}
        (stamp,) = stamps  # one per batch
        assert before <= stamp <= time.time_ns()


async def test_send_goes_through_the_pair_and_configure_keeps_numbering():
    lossless = {"flow_control": True, "overflow": "pause"}
    async with aioixy.open("pair:gen1:a", **lossless) as a, \
            aioixy.open("pair:gen1:b", **lossless) as b:
        gen = aioixy.Generator(a, dst_ip="198.18.7.7", dport=9)
        assert await gen.send(300, batch=128) == 300
        gen.configure(aioixy.FrameSpec(dst_ip="198.18.7.8", dport=10))
        assert await gen.send(100) == 100
        got = []
        async for batch in b.rx():
            with batch:
                got += [(frame_seq(p.data), Ether(bytes(p.data))[IP].dst) for p in batch]
            if len(got) >= 400:
                break
    assert [s for s, _ in got] == list(range(400))
    assert {d for _, d in got[:300]} == {"198.18.7.7"}
    assert {d for _, d in got[300:]} == {"198.18.7.8"}


@pytest.mark.parametrize("fields, words", [
    ({"dst_mac": "ff:ff"}, "dst_mac 'ff:ff'"),
    ({"src_ip": "1.2.3"}, "src_ip '1.2.3'"),
    ({"dport": 70000}, "dport 70000"),
    ({"sport": -1}, "sport -1"),
    ({"size": 59}, "size 59"),
    ({"size": (100, 90)}, "size 100-90"),
    ({"size": 5000}, "frames must be 60..1984"),
    ({"flows": 0}, "flows 0"),
    ({"vary": "ttl"}, "vary 'ttl'"),
    ({"timestamp": "yes"}, "timestamp 'yes'"),
    ({"colour": "red"}, "colour"),
])
async def test_bad_specs_are_refused_with_the_field_named(fields, words):
    async with aioixy.open("null", rx=False) as port:
        with pytest.raises(aioixy.InvalidOption, match=words.replace("(", r"\(")):
            aioixy.Generator(port, **fields)


async def test_reconfigure_refused_leaves_the_generator_working():
    async with aioixy.open("null", rx=False) as port:
        gen = aioixy.Generator(port, dport=7)
        with pytest.raises(aioixy.InvalidOption):
            gen.configure(aioixy.FrameSpec(size=10))
        with gen.batch(2) as b:
            assert Ether(bytes(b[0].data))[UDP].dport == 7


async def test_fill_refuses_buffers_too_small_and_writes_nothing():
    async with aioixy.open("null", rx=False, buf_size=4096) as big, \
            aioixy.open("pair:gen2:a", buf_size=512) as small:
        gen = aioixy.Generator(big, size=1000)
        with small.alloc(4, size=60) as b:
            before = [bytes(p.data) for p in b]
            with pytest.raises(aioixy.InvalidOption, match="holds 448 bytes, frames may be 1000"):
                gen.fill(b)
            assert [bytes(p.data) for p in b] == before
        assert gen.frames == 0 and gen.seq == 0


async def test_fill_skips_packets_the_batch_no_longer_owns():
    async with aioixy.open("null", rx=False) as port:
        gen = aioixy.Generator(port)
        with gen.batch(4) as b:
            await port.tx(b[1])  # a hole in the batch
            assert gen.fill(b) == 3 * 60
            assert [frame_seq(p.data) for p in b] == [4, 5, 6]
