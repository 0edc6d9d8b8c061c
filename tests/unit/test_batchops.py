"""Batch operations (aioixy/ops, _native/ops): each checked against a pure-Python
reference on random packets (short, malformed, VLAN-tagged, non-IPv4 included), the filter
against RuleSet.allows, split/merge ownership against the pool's own count."""

from __future__ import annotations

import asyncio
import itertools
import random
import struct

import pytest

import aioixy
from aioixy._ffi import ffi, lib
from aioixy.core.packet import PacketBatch
from aioixy.ops import batch as batchops
from aioixy.ops import filter as filter_mod
from aioixy.ops.rules import RuleSet

SEEDS = range(6)
ROOM = 2048 - 64


# --- a pool and batches built from bytes --------------------------------------------------------

@pytest.fixture
def pool():
    ctx = ffi.new("struct aioixy_dma_ctx *", {"kind": lib.DMA_ANON, "vfio_container_fd": -1})
    p = lib.aioixy_mempool_create(ctx, 1024, 2048)
    assert p != ffi.NULL
    yield p
    import gc

    gc.collect()
    free = lib.aioixy_mempool_free_count(p)
    lib.aioixy_mempool_release(p)
    assert free == 1024, f"{1024 - free} buffers were not returned to the pool"


def make_batch(pool, frames: list[bytes]) -> PacketBatch:
    n = len(frames)
    batch = PacketBatch(n)
    assert lib.aioixy_mempool_alloc_bulk(pool, batch._bufs, n) == n
    batch._filled(n)
    for pkt, f in zip(batch, frames, strict=True):
        pkt.write(f)
    return batch


def frames_of(batch: PacketBatch) -> list[bytes]:
    return [p.tobytes() for p in batch]


# --- reference: checksums and header parsing --------------------------------------------------

def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def parse(f: bytes):
    """(l3, l4, proto, has_ports) as ops.h defines them, or None for not-IPv4."""
    if len(f) < 14:
        return None
    et, l3 = int.from_bytes(f[12:14], "big"), 14
    if et == 0x8100 and len(f) >= 18:
        et, l3 = int.from_bytes(f[16:18], "big"), 18
    if et != 0x0800 or len(f) < l3 + 20:
        return None
    ihl = (f[l3] & 15) * 4
    if f[l3] >> 4 != 4 or ihl < 20 or len(f) < l3 + ihl:
        return None
    proto = f[l3 + 9]
    frag = int.from_bytes(f[l3 + 6:l3 + 8], "big") & 0x1FFF
    ports = proto in (6, 17) and frag == 0 and len(f) >= l3 + ihl + 4
    return l3, l3 + ihl, proto, ports


def ip_ok(f: bytes) -> bool:
    h = parse(f)
    return h is not None and csum(f[h[0]:h[1]]) == 0


def l4_info(f: bytes):
    """(l4 offset, l4 length, checksum offset) when the L4 checksum applies, else None."""
    h = parse(f)
    if h is None or not h[3]:
        return None
    l3, l4, proto, _ = h
    tot = int.from_bytes(f[l3 + 2:l3 + 4], "big")
    if tot < (l4 - l3) + (20 if proto == 6 else 8) or l3 + tot > len(f) \
            or int.from_bytes(f[l3 + 6:l3 + 8], "big") & 0x3FFF:
        return None
    return l4, tot - (l4 - l3), l4 + (16 if proto == 6 else 6)


def l4_sum(f: bytes) -> int:
    l3 = parse(f)[0]
    l4, ln, _ = l4_info(f)
    pseudo = f[l3 + 12:l3 + 20] + bytes((0, f[l3 + 9])) + ln.to_bytes(2, "big")
    return csum(pseudo + f[l4:l4 + ln])


# --- random packets -------------------------------------------------------------------------

def ipv4_frame(rng: random.Random, *, vlan: bool = False, proto: int | None = None,
               ihl: int = 5, frag: int = 0, good: bool = True, pad: int = 0,
               src: int | None = None, dst: int | None = None,
               dport: int | None = None) -> bytes:
    proto = rng.choice((1, 6, 17, 17, 6, 47)) if proto is None else proto
    if proto == 6:
        l4 = struct.pack("!HHIIBBHHH", rng.randrange(65536), rng.randrange(65536)
                         if dport is None else dport, 1, 2, 0x50, 0x10, 1000, 0, 0)
        l4 += rng.randbytes(rng.randrange(0, 30))
    elif proto == 17:
        body = rng.randbytes(rng.randrange(0, 30))
        l4 = struct.pack("!HHHH", rng.randrange(65536), rng.randrange(65536)
                         if dport is None else dport, 8 + len(body), 0) + body
    else:
        l4 = rng.randbytes(rng.randrange(0, 30))
    opts = rng.randbytes((ihl - 5) * 4) if ihl > 5 else b""
    tot = 20 + len(opts) + len(l4)
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, rng.randrange(256), tot, rng.randrange(65536),
                      frag, rng.choice((0, 1, 2, 64, 255, rng.randrange(256))), proto, 0,
                      (rng.getrandbits(32) if src is None else src).to_bytes(4, "big"),
                      (rng.getrandbits(32) if dst is None else dst).to_bytes(4, "big")) + opts
    hdr = hdr[:10] + csum(hdr).to_bytes(2, "big") + hdr[12:]
    if not good:
        hdr = hdr[:10] + bytes((hdr[10] ^ 0x5A, hdr[11])) + hdr[12:]
    eth = rng.randbytes(12) + (b"\x81\x00" + rng.randbytes(2) if vlan else b"") + b"\x08\x00"
    frame = bytearray(eth + hdr + l4 + bytes(pad))
    if proto in (6, 17) and rng.random() < 0.8:  # mostly a correct L4 checksum, else random
        info = l4_info(bytes(frame))
        if info:
            frame[info[2]:info[2] + 2] = b"\0\0"
            c = l4_sum(bytes(frame))
            if proto == 17 and c == 0:
                c = 0xFFFF
            frame[info[2]:info[2] + 2] = c.to_bytes(2, "big")
    return bytes(frame)


def random_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 40))  # short / garbage
    if kind == 1:
        return rng.randbytes(12) + b"\x08\x06" + rng.randbytes(28)  # ARP
    if kind == 2:
        f = ipv4_frame(rng)
        return f[:rng.randrange(0, len(f))]  # truncated anywhere
    if kind == 3:
        return ipv4_frame(rng, vlan=True)
    if kind == 4:
        return ipv4_frame(rng, ihl=rng.choice((0, 3, 4, 6, 15)))  # bad or long IHL
    if kind == 5:
        return ipv4_frame(rng, frag=rng.choice((0x2000, 0x0010, 0x4000)))
    if kind == 6:
        return ipv4_frame(rng, good=False)
    if kind == 7:
        f = bytearray(ipv4_frame(rng))
        f[14] = 0x65  # version 6 claimed with an IPv4 EtherType
        return bytes(f)
    return ipv4_frame(rng, pad=rng.choice((0, 0, 6)))


def random_batch(pool, rng: random.Random, n: int | None = None) -> tuple[PacketBatch, list]:
    frames = [random_frame(rng) for _ in range(rng.randrange(1, 200) if n is None else n)]
    return make_batch(pool, frames), frames


# --- reading ------------------------------------------------------------------------------------

FIELD_REF = {
    "dst_mac": ("l2", 0, 6), "src_mac": ("l2", 6, 6), "ethertype": ("l2", 12, 2),
    "vlan_tci": ("tag", 14, 2), "ip_tos": ("l3", 1, 1), "ip_len": ("l3", 2, 2),
    "ip_id": ("l3", 4, 2), "ip_ttl": ("l3", 8, 1), "ip_proto": ("l3", 9, 1),
    "ip_csum": ("l3", 10, 2), "ip_src": ("l3", 12, 4), "ip_dst": ("l3", 16, 4),
    "sport": ("l4", 0, 2), "dport": ("l4", 2, 2),
}


def ref_offset(f: bytes, name: str) -> int | None:
    layer, off, w = FIELD_REF[name]
    if layer == "tag":
        if len(f) < 18 or f[12:14] != b"\x81\x00":
            return None
    elif layer in ("l3", "l4"):
        h = parse(f)
        if h is None or (layer == "l4" and not h[3]):
            return None
        off += h[0] if layer == "l3" else h[1]
    return off if off + w <= len(f) else None


def ref_field(f: bytes, name: str) -> int | None:
    off = ref_offset(f, name)
    w = FIELD_REF[name][2]
    return None if off is None else int.from_bytes(f[off:off + w], "big")


@pytest.mark.parametrize("seed", SEEDS)
def test_lengths_and_every_field_match_the_reference(pool, seed):
    rng = random.Random(seed)
    batch, frames = random_batch(pool, rng)
    assert list(batch.lengths()) == [len(f) for f in frames]
    assert set(FIELD_REF) == set(batchops.FIELDS)
    for name in FIELD_REF:
        values, present = batch.field(name, with_present=True)
        want = [ref_field(f, name) for f in frames]
        assert [bool(p) for p in present] == [w is not None for w in want], name
        assert [int(v) for v in values] == [w or 0 for w in want], name
    for off, w in ((0, 1), (12, 2), (26, 4), (30, 8), (59, 2)):
        values, present = batch.field_at(off, w, with_present=True)
        want = [int.from_bytes(f[off:off + w], "big") if len(f) >= off + w else None
                for f in frames]
        assert [int(v) for v in values] == [x or 0 for x in want]
        assert [bool(p) for p in present] == [x is not None for x in want]
    batch.release()


def test_without_numpy_results_are_arrays(pool, monkeypatch):
    from array import array

    rng = random.Random(7)
    batch, frames = random_batch(pool, rng, 50)
    monkeypatch.setattr(batchops, "_np", None)
    lens = batch.lengths()
    assert isinstance(lens, array) and lens.typecode == "I" and list(lens) == [len(f)
                                                                                for f in frames]
    ttl = batch.field("ip_ttl")
    assert isinstance(ttl, array) and list(ttl) == [ref_field(f, "ip_ttl") or 0 for f in frames]
    ok = batch.ipv4_checksum_ok()
    assert [bool(x) for x in ok] == [ip_ok(f) for f in frames]
    a, b = batch.split(ok)
    assert len(a) + len(b) == 50 and frames_of(a) == [f for f in frames if ip_ok(f)]
    a.release()
    b.release()


# --- checksums and hashing ----------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_checksum_checks_and_fixes_match_full_computation(pool, seed):
    rng = random.Random(100 + seed)
    batch, frames = random_batch(pool, rng)
    assert [bool(x) for x in batch.ipv4_checksum_ok()] == [ip_ok(f) for f in frames]

    def l4_ok(f: bytes) -> bool:
        info = l4_info(f)
        if info is None:
            return False
        if parse(f)[2] == 17 and f[info[2]:info[2] + 2] == b"\0\0":
            return True
        return l4_sum(f) == 0
    assert [bool(x) for x in batch.l4_checksum_ok()] == [l4_ok(f) for f in frames]

    assert batch.fix_ipv4_checksum() == sum(parse(f) is not None for f in frames)
    batch.fix_l4_checksum()
    after = frames_of(batch)
    for before, f in zip(frames, after, strict=True):
        if parse(f) is not None:
            assert ip_ok(f)
        if l4_info(f) is not None:
            assert l4_sum(f) == 0 or (parse(f)[2] == 17 and l4_sum(f) == 0xFFFF)
        assert len(f) == len(before)
    assert all(batch.ipv4_checksum_ok()[i] == (parse(f) is not None)
               for i, f in enumerate(after))
    batch.release()


def ref_hash(f: bytes, seed: int, symmetric: bool) -> int:
    m32 = 0xFFFFFFFF

    def rotl(x: int, r: int) -> int:
        return ((x << r) | (x >> (32 - r))) & m32

    def mix(h: int, k: int) -> int:
        k = rotl(k * 0xCC9E2D51 & m32, 15) * 0x1B873593 & m32
        return (rotl(h ^ k, 13) * 5 + 0xE6546B64) & m32

    def fmix(h: int) -> int:
        h ^= h >> 16
        h = h * 0x85EBCA6B & m32
        h ^= h >> 13
        h = h * 0xC2B2AE35 & m32
        return h ^ (h >> 16)

    h = parse(f)
    if h is not None:
        l3, l4, proto, ports = h
        a, c = (int.from_bytes(f[l3 + o:l3 + o + 4], "big") for o in (12, 16))
        sp, dp = (int.from_bytes(f[l4 + o:l4 + o + 2], "big") if ports else 0 for o in (0, 2))
        if symmetric and (a > c or (a == c and sp > dp)):
            a, c, sp, dp = c, a, dp, sp
        return fmix(mix(mix(mix(mix(seed, a), c), sp << 16 | dp), proto) ^ 13)
    if len(f) >= 14:
        m1, m2 = int.from_bytes(f[0:6], "big"), int.from_bytes(f[6:12], "big")
        if symmetric and m1 > m2:
            m1, m2 = m2, m1
        x = mix(mix(seed, m1 & m32), m1 >> 32)
        x = mix(mix(x, m2 & m32), m2 >> 32)
        return fmix(mix(x, int.from_bytes(f[12:14], "big")) ^ 14)
    return fmix(seed ^ len(f))


def reverse(f: bytes) -> bytes:
    """The same flow in the other direction (addresses, ports and MACs swapped)."""
    h = parse(f)
    b = bytearray(f)
    if len(f) < 12:
        return f
    b[0:6], b[6:12] = f[6:12], f[0:6]
    if h is not None:
        l3, l4, _, ports = h
        b[l3 + 12:l3 + 16], b[l3 + 16:l3 + 20] = f[l3 + 16:l3 + 20], f[l3 + 12:l3 + 16]
        if ports:
            b[l4:l4 + 2], b[l4 + 2:l4 + 4] = f[l4 + 2:l4 + 4], f[l4:l4 + 2]
    return bytes(b)


@pytest.mark.parametrize("seed", SEEDS)
def test_flow_hash_matches_reference_and_symmetric_mode_ignores_direction(pool, seed):
    rng = random.Random(200 + seed)
    frames = [random_frame(rng) for _ in range(120)]
    batch = make_batch(pool, frames)
    rev = make_batch(pool, [reverse(f) for f in frames])
    for sym in (False, True):
        got = [int(x) for x in batch.flow_hash(seed=seed * 77, symmetric=sym)]
        assert got == [ref_hash(f, seed * 77, sym) for f in frames]
    fwd = [int(x) for x in batch.flow_hash(symmetric=True)]
    assert fwd == [int(x) for x in rev.flow_hash(symmetric=True)]
    batch.release()
    rev.release()


def test_flow_hash_spreads_flows_over_shards(pool):
    rng = random.Random(5)
    frames = [ipv4_frame(rng, proto=17) for _ in range(800)]
    batch = make_batch(pool, frames)
    shards = [0] * 8
    for h in batch.flow_hash():
        shards[int(h) % 8] += 1
    assert min(shards) > 50, shards  # 100 expected each; a broken hash piles them up
    batch.release()


# --- rewrites -----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
def test_mac_rewrites(pool, seed):
    rng = random.Random(300 + seed)
    batch, frames = random_batch(pool, rng)
    long_enough = sum(len(f) >= 12 for f in frames)
    assert batch.swap_macs() == long_enough
    assert frames_of(batch) == [f[6:12] + f[0:6] + f[12:] if len(f) >= 12 else f
                                for f in frames]
    mac = bytes(rng.randbytes(6))
    assert batch.set_src_mac(mac.hex(":")) == long_enough
    assert batch.set_dst_mac(b"\x02" * 6) == long_enough
    assert frames_of(batch) == [b"\x02" * 6 + mac + f[12:] if len(f) >= 12 else f
                                for f in frames]
    with pytest.raises(aioixy.InvalidOption, match="6 bytes"):
        batch.set_src_mac("aa:bb")
    batch.release()


@pytest.mark.parametrize("seed", SEEDS)
def test_dec_ttl_is_incremental_yet_equals_full_recomputation(pool, seed):
    rng = random.Random(400 + seed)
    batch, frames = random_batch(pool, rng)
    status = list(batch.dec_ttl())
    after = frames_of(batch)
    for st, f, g in zip(status, frames, after, strict=True):
        h = parse(f)
        if h is None:
            assert st == batchops.SKIPPED and g == f
            continue
        l3 = h[0]
        if f[l3 + 8] <= 1:
            assert st == batchops.EXPIRED and g == f
            continue
        assert st == batchops.DONE and g[l3 + 8] == f[l3 + 8] - 1
        assert g[:l3 + 8] == f[:l3 + 8] and g[l3 + 12:] == f[l3 + 12:]
        if ip_ok(f):  # RFC 1624: the incremental update equals a full recomputation
            full = g[l3:l3 + 10] + b"\0\0" + g[l3 + 12:h[1]]
            assert g[l3 + 10:l3 + 12] == csum(full).to_bytes(2, "big")
        else:  # a wrong checksum stays wrong: the update does not launder it
            assert not ip_ok(g)
    batch.release()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ["ip_ttl", "ip_tos", "ip_id", "ip_src", "ip_dst", "sport",
                                  "dport", "src_mac", "ethertype", "vlan_tci"])
def test_set_field_writes_and_keeps_checksums_right(pool, seed, name):
    rng = random.Random(500 + seed)
    batch, frames = random_batch(pool, rng)
    w = FIELD_REF[name][2]
    values = [rng.getrandbits(8 * w) for _ in frames]
    if seed % 2:
        import numpy as np

        values_arg = np.array(values, dtype=batchops._TYPES[w][2])
    else:
        values_arg = values
    written = batch.set_field(name, values_arg)
    after = frames_of(batch)
    assert written == sum(ref_offset(f, name) is not None for f in frames)
    for v, f, g in zip(values, frames, after, strict=True):
        off = ref_offset(f, name)
        if off is None:
            assert g == f
            continue
        assert int.from_bytes(g[off:off + w], "big") == v
        if parse(f) is not None and name.startswith("ip_"):
            assert ip_ok(g) == ip_ok(f)
        if l4_info(f) is not None and name in ("ip_src", "ip_dst", "sport", "dport"):
            info = l4_info(f)
            if parse(f)[2] == 17 and f[info[2]:info[2] + 2] == b"\0\0":
                assert g[info[2]:info[2] + 2] == b"\0\0"  # "no checksum" stays so
            else:
                assert (l4_sum(g) == 0) == (l4_sum(f) == 0)
    batch.set_field(name, 0)
    assert all((ref_field(g, name) or 0) == 0 for g in frames_of(batch))
    with pytest.raises(aioixy.InvalidOption, match=r"(does|do) not fit"):
        batch.set_field(name, 1 << (8 * w))
    with pytest.raises(aioixy.InvalidOption, match="values for a batch"):
        batch.set_field(name, [1])
    with pytest.raises(aioixy.InvalidOption, match="unknown field"):
        batch.field("ttl")
    batch.release()


@pytest.mark.parametrize("seed", SEEDS)
def test_set_and_strip_vlan(pool, seed):
    rng = random.Random(600 + seed)
    frames = [random_frame(rng) for _ in range(100)] + [bytes(ROOM - 2), bytes(ROOM - 4)]
    batch = make_batch(pool, frames)
    status = list(batch.set_vlan(100, pcp=5))
    tci = (5 << 13 | 100).to_bytes(2, "big")
    after = frames_of(batch)
    for st, f, g in zip(status, frames, after, strict=True):
        if len(f) < 14:
            assert st == batchops.SKIPPED and g == f
        elif len(f) >= 18 and f[12:14] == b"\x81\x00":
            assert st == batchops.DONE and g == f[:14] + tci + f[16:]
        elif len(f) + 4 > ROOM:
            assert st == batchops.NO_ROOM and g == f
        else:
            assert st == batchops.DONE and g == f[:12] + b"\x81\x00" + tci + f[12:]
    assert batch.strip_vlan() == sum(s == batchops.DONE for s in status)
    for st, f, g in zip(status, frames, frames_of(batch), strict=True):
        if st == batchops.DONE:
            assert g == (f[:12] + f[16:] if f[12:14] == b"\x81\x00" and len(f) >= 18 else f)
    with pytest.raises(aioixy.InvalidOption, match="vid"):
        batch.set_vlan(4096)
    batch.release()


# --- classification -----------------------------------------------------------------------------

def random_rule(rng: random.Random, nets: list[str]) -> dict:
    spec: dict = {"action": rng.choice(("allow", "deny"))}
    if rng.random() < 0.5:
        spec["src"] = rng.choice(nets)
    if rng.random() < 0.4:
        spec["dst"] = rng.choice(nets)
    if rng.random() < 0.6:
        spec["proto"] = rng.choice(("udp", "tcp", "icmp", 47))
        if spec["proto"] in ("udp", "tcp") and rng.random() < 0.6:
            spec["dport"] = rng.choice((53, 80, 443, 5678, 9, 10, rng.randrange(65536)))
    return spec


def classifier_frames(rng: random.Random, n: int) -> list[bytes]:
    addrs = [0x0A000007, 0x0A010009, 0x0A090001, 0xC0A80101, 0x08080808, 0]
    out = []
    for _ in range(n):
        if rng.random() < 0.25:
            out.append(random_frame(rng))
            continue
        ihl = rng.choice((5, 5, 5, 6, 0, 4))
        f = ipv4_frame(rng, src=rng.choice(addrs) ^ rng.choice((0, 1, 0x100, 0xFFFF)),
                       dst=rng.choice(addrs), proto=rng.choice((1, 6, 17, 47)), ihl=ihl,
                       dport=rng.choice((53, 80, 443, 5678, 9)))
        out.append(f[:rng.randrange(20, len(f) + 1)] if rng.random() < 0.1 else f)
    return out


@pytest.mark.parametrize("jump_min", [16, 0])  # 0: every field searches through jump tables
@pytest.mark.parametrize("seed", range(10))
def test_filter_decides_exactly_as_ruleset(pool, seed, jump_min, monkeypatch):
    monkeypatch.setattr(filter_mod, "_JUMP_MIN_BOUNDS", jump_min)
    rng = random.Random(700 + seed)
    nets = ["10.0.0.0/8", "10.0.0.0/24", "10.0.0.7/32", "10.1.0.0/16", "192.168.0.0/16",
            "0.0.0.0/0", "8.8.8.0/24", "10.9.0.1/32"]
    if seed % 2:  # many distinct prefixes around the addresses the packets use
        for base in (0x0A000007, 0x0A010009, 0x0A090001, 0xC0A80101, 0x08080808):
            for _ in range(10):
                plen = rng.randrange(8, 33)
                addr = (base ^ rng.getrandbits(40 - plen)) & 0xFFFFFFFF
                nets.append(f"{addr >> 24}.{addr >> 16 & 255}.{addr >> 8 & 255}."
                            f"{addr & 255}/{plen}")
    rules = RuleSet(default=rng.choice(("allow", "deny")))
    for _ in range(rng.choice((0, 1, 5, 30, 100, 150))):
        rules.add(random_rule(rng, nets))
    frames = classifier_frames(rng, 300)
    want = [rules.allows(f) for f in frames]
    want_hits, want_default = dict(rules.hits), rules.default_hits
    for r in rules.hits:
        rules.hits[r] = 0
    rules.default_hits = 0
    flt = aioixy.Filter.compile(rules)
    batch = make_batch(pool, frames)
    assert [bool(x) for x in flt.mask(batch)] == want
    assert rules.hits == want_hits and rules.default_hits == want_default
    idx = list(flt.rules(batch))
    ids = [r.id for r in rules]
    for i, f in zip(idx, frames, strict=True):
        one = RuleSet(default=rules.default)
        decided = rules.get(ids[i]) if i < len(ids) else None
        if decided is not None:  # the deciding rule matches, and no earlier rule does
            spec = {k: v for k, v in decided.to_json().items() if k != "id" and v is not None}
            one.add(spec)
            one.allows(f)
            assert one.hits[1] == 1
    allowed, denied = flt.split(batch)
    assert len(batch) == 0
    assert frames_of(allowed) == [f for f, w in zip(frames, want, strict=True) if w]
    assert frames_of(denied) == [f for f, w in zip(frames, want, strict=True) if not w]
    allowed.release()
    denied.release()


def test_filter_extra_fields_and_errors(pool):
    flt = aioixy.Filter.compile([
        {"action": "deny", "ethertype": 0x0806},
        {"action": "deny", "proto": "udp", "sport": 40000, "dport": 53},
        {"action": "allow", "proto": "udp"},
    ], default="deny")
    rng = random.Random(1)
    arp = bytes(12) + b"\x08\x06" + bytes(28)
    dns = ipv4_frame(rng, proto=17, dport=53)
    dns = dns[:34] + (40000).to_bytes(2, "big") + dns[36:]
    other = ipv4_frame(rng, proto=17, dport=53)
    if other[34:36] == (40000).to_bytes(2, "big"):
        other = other[:34] + b"\0\1" + other[36:]
    tcp = ipv4_frame(rng, proto=6)
    batch = make_batch(pool, [arp, dns, other, tcp, bytes(10)])
    assert list(flt.rules(batch)) == [0, 1, 2, 3, 3]
    assert [bool(x) for x in flt.mask(batch)] == [False, False, True, False, False]
    assert flt.hits == {1: 2, 2: 2, 3: 2, "default": 4}
    batch.release()
    with pytest.raises(aioixy.InvalidOption, match="non-IPv4 rule"):
        aioixy.Filter.compile([{"action": "deny", "ethertype": 0x86DD, "proto": "udp"}])
    with pytest.raises(aioixy.InvalidOption, match="sport: needs"):
        aioixy.Filter.compile([{"action": "deny", "sport": 5}])
    with pytest.raises(ValueError, match="unknown field"):
        aioixy.Filter.compile([{"action": "deny", "port": 5}])


def test_filter_of_a_ruleset_follows_its_changes_and_counts_hits_into_it(pool):
    rules = RuleSet()
    rng = random.Random(3)
    frame = ipv4_frame(rng, proto=17, src=0x0A000007, dport=53, ihl=5)
    batch = make_batch(pool, [frame] * 4)
    f1 = aioixy.Filter.of(rules)
    assert aioixy.Filter.of(rules) is f1
    assert all(f1.mask(batch))
    rid = rules.add({"action": "deny", "src": "10.0.0.0/8"}).id
    f2 = aioixy.Filter.of(rules)
    assert f2 is not f1 and not any(f2.mask(batch))
    assert rules.hits[rid] == 4 and rules.default_hits == 4
    rules.remove(rid)
    assert all(aioixy.Filter.of(rules).mask(batch))
    batch.release()


# --- ownership: split, merge, release, tx ---------------------------------------------------

def test_split_moves_ownership(pool):
    frames = [bytes([i]) * 60 for i in range(10)]
    batch = make_batch(pool, frames)
    pkt = batch[3]
    yes, no = batch.split([i % 3 == 0 for i in range(10)])
    assert len(batch) == 0 and list(batch) == []
    with pytest.raises(aioixy.PacketReleased):
        len(pkt)
    assert frames_of(yes) == [frames[i] for i in (0, 3, 6, 9)]
    assert frames_of(no) == [frames[i] for i in (1, 2, 4, 5, 7, 8)]
    with pytest.raises(aioixy.InvalidOption, match="mask has 3 entries"):
        yes.split([True] * 3)
    both = aioixy.merge(no, yes)
    assert len(no) == len(yes) == 0 and len(both) == 10
    assert sorted(frames_of(both)) == sorted(frames)
    empty_a, empty_b = batch.split([])
    assert len(empty_a) == len(empty_b) == 0
    both.release()


@pytest.mark.parametrize("seed", range(8))
def test_random_split_merge_release_sequences_keep_the_pool_whole(pool, seed):
    """Whatever the order of split, merge, per-packet take, release and GC, every buffer is
    owned exactly once: the pool's free count is exact at each step and whole at the end."""
    rng = random.Random(900 + seed)
    batches: list[PacketBatch] = []
    owned = 0
    for _ in range(120):
        op = rng.randrange(6)
        if op == 0 or not batches:
            n = rng.randrange(0, 40)
            batches.append(make_batch(pool, [bytes([rng.randrange(256)]) * 20] * n))
            owned += n
        elif op == 1:
            b = batches.pop(rng.randrange(len(batches)))
            slots = b._n - b._start
            mask = [rng.random() < 0.5 for _ in range(slots)]
            if rng.random() < 0.5:
                import numpy as np

                mask = np.array(mask)
            batches += b.split(mask)
        elif op == 2 and len(batches) >= 2:
            k = rng.randrange(2, min(5, len(batches)) + 1)
            picked = [batches.pop(rng.randrange(len(batches))) for _ in range(k)]
            batches.append(aioixy.merge(*picked))
        elif op == 3:
            b = batches.pop(rng.randrange(len(batches)))
            owned -= len(b)
            b.release() if rng.random() < 0.5 else None  # else: dropped, GC frees it
            del b
        elif op == 4:
            # a packet taken out of a batch one by one (as tx([pkt]) does) leaves a hole
            b = rng.choice(batches)
            live = [p for p in b]
            if live:
                p = rng.choice(live)
                buf = p._buf()
                b._take_slot(p._i)
                lib.aioixy_mempool_free_bulk(ffi.new("struct aioixy_pkt_buf *[]", [buf]), 1)
                owned -= 1
            live = p = None  # packets keep their batch alive; the test must not
        else:
            b = rng.choice(batches)  # ops on holes and empty batches touch only owned slots
            b.swap_macs()
            assert len(b.lengths()) == b._n - b._start
        b = None  # a dropped batch is freed by reference counting, right here
        assert sum(len(b) for b in batches) == owned
        assert lib.aioixy_mempool_free_count(pool) == 1024 - owned
    for b in batches:
        b.release()


async def test_split_then_tx_each_half_keeps_the_port_pools_whole(no_leaks):
    n = next(_ids)
    async with aioixy.open(f"pair:bo{n}:a") as a, aioixy.open(f"pair:bo{n}:b") as b:
        batch = a.alloc(64, size=60)
        batch.set_field("ethertype", 0x0800)
        yes, no = batch.split([i % 2 for i in range(64)])
        await a.tx(yes)
        no.release()
        got = 0
        async for rb in b.rx():
            got += len(rb)
            rb.release()
            if got == 32:
                break
        for _ in range(300):
            st = a.stats()
            if st.pool_free == st.pool_size:
                break
            await asyncio.sleep(0.01)
        assert st.pool_free == st.pool_size


# --- adaptive batching: how many packets one rx step hands over -------------------------------

async def _ring_holds(port: aioixy.Port, at_least: int) -> None:
    for _ in range(1000):
        if port.queue_stats(0).rx_ring_used >= at_least:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the ring never held {at_least} packets")


async def test_under_load_one_step_hands_over_several_native_bursts(no_leaks):
    async with aioixy.open("null", batch_size=32, overflow="pause", ring_size=1024,
                           rx_burst_max=256) as port:
        await _ring_holds(port, 256)
        stream = port.rx()
        batch = await stream.__anext__()
        assert len(batch) == 256  # eight native bursts of 32, one wake-up
        batch.release()
        await _ring_holds(port, 100)
        small = await port.rx(max_batch=100).__anext__()
        assert len(small) == 100
        small.release()
        with pytest.raises(aioixy.InvalidOption, match="max_batch=0"):
            port.rx(max_batch=0)
        assert aioixy.PortConfig(batch_size=64).rx_hand_over == 256
        assert aioixy.PortConfig(batch_size=256).rx_hand_over == aioixy.core.config.MAX_BATCH
        with pytest.raises(aioixy.InvalidOption, match="rx_burst_max"):
            aioixy.PortConfig(rx_burst_max=aioixy.core.config.MAX_BATCH + 1)


async def test_when_light_a_step_returns_what_is_there_without_waiting_to_fill(no_leaks):
    n = next(_ids)
    async with aioixy.open(f"pair:lt{n}:a") as a, \
            aioixy.open(f"pair:lt{n}:b", rx_burst_max=512) as b:
        stream = b.rx()
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing sent yet
        await a.tx(a.alloc(1))
        batch = await asyncio.wait_for(waiting, 30)
        assert len(batch) == 1  # handed over alone: the stream does not wait to fill up
        batch.release()
        await a.tx(a.alloc(3))
        await _ring_holds(b, 3)
        batch = await stream.__anext__()
        assert len(batch) == 3
        batch.release()


_ids = itertools.count()
