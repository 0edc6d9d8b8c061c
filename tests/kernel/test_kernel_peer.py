"""The kernel's own network stack as aioixy's peer, over each kernel-backed driver (BACKENDS).

Every test builds its own namespaces and veth pairs (tests/kernel/netns.py) and sends traffic
only to addresses inside them (198.18.0.0/15, the benchmarking range):
  - ping (ARP, then ICMP echo) from a namespace, answered by examples/echo_responder.py running
    as its own process on the other veth end;
  - UDP from a kernel socket received intact by an aioixy port, and UDP built by aioixy received
    intact by a kernel socket (the kernel verifies the checksums);
  - a TCP connection between two namespaces whose only path is examples/forwarder.py bridging
    two veth pairs, carrying 10 MB checked by SHA-256.
"""

from __future__ import annotations

import asyncio
import json
import random
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import aioixy
from tests.kernel.netns import in_ns, ip

pytestmark = pytest.mark.usefixtures("no_leaks")

ROOT = Path(__file__).resolve().parents[2]
# kernel-backed drivers held to these tests: adding one is adding its prefix here
BACKENDS = ["packet", "xdp"]


def _py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def _wait_line(proc: subprocess.Popen, word: str, timeout: float = 60.0) -> str:
    """Read proc's stdout until a line containing `word` (the process is ready)."""
    lines = []

    def read() -> str:
        for line in proc.stdout:
            lines.append(line)
            if word in line:
                return line
        raise AssertionError(f"process ended before '{word}': {''.join(lines)}")

    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        try:
            return ex.submit(read).result(timeout)
        except concurrent.futures.TimeoutError:
            proc.kill()
            raise AssertionError(f"no '{word}' within {timeout} s: {''.join(lines)}") from None


def _mac(ns: str | None, ifname: str) -> str:
    return json.loads(ip("-j", "link", "show", ifname, ns=ns))[0]["address"]


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp_frame(src_mac: bytes, dst_mac: bytes, src_ip: bytes, dst_ip: bytes, sport: int,
              dport: int, payload: bytes) -> bytes:
    """Ethernet/IPv4/UDP with both checksums computed (the receiving kernel checks them)."""
    udp_len = 8 + len(payload)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 17, udp_len)
    csum = _checksum(pseudo + struct.pack("!HHHH", sport, dport, udp_len, 0) + payload) or 0xFFFF
    udp = struct.pack("!HHHH", sport, dport, udp_len, csum) + payload
    iph = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0,
                                src_ip, dst_ip))
    iph[10:12] = struct.pack("!H", _checksum(bytes(iph)))
    frame = dst_mac + src_mac + b"\x08\x00" + bytes(iph) + udp
    return frame + b"\0" * max(0, 60 - len(frame))


def parse_udp(frame: bytes, dport: int) -> bytes | None:
    """The payload of an IPv4/UDP frame to `dport`, else None."""
    if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    l4 = 14 + ihl
    if struct.unpack_from("!H", frame, l4 + 2)[0] != dport:
        return None
    return bytes(frame[l4 + 8:14 + total])


def _payloads(n: int, seed: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [rnd.randbytes(rnd.choice((1, 18, 100, 512, 1000, 1472))) for _ in range(n)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ping_arp_and_icmp_answered_by_echo_responder(netlab, backend):
    ns_peer, ns_aioixy = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns_peer, ns_b=ns_aioixy)
    ip("addr", "add", "198.18.0.1/24", "dev", v.a, ns=ns_peer)
    responder = netlab.popen(ns_aioixy, [
        sys.executable, str(ROOT / "examples" / "echo_responder.py"), "--device",
        f"{backend}:{v.b}", "--ip", "198.18.0.2", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(responder, "answering for")
    ip("neigh", "flush", "dev", v.a, ns=ns_peer)
    r = subprocess.run(in_ns(ns_peer, ["ping", "-c", "5", "-i", "0.2", "-W", "5", "198.18.0.2"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0% packet loss" in r.stdout, r.stdout
    # the kernel learnt the responder's MAC from its ARP reply: nothing else could have told it
    neigh = json.loads(ip("-j", "neigh", "show", "198.18.0.2", "dev", v.a, ns=ns_peer))
    assert neigh and neigh[0]["lladdr"] == _mac(ns_aioixy, v.b), neigh


@pytest.mark.parametrize("backend", BACKENDS)
async def test_udp_from_kernel_socket_arrives_intact(netlab, backend):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)  # end b stays here, for this process's aioixy port
    ip("addr", "add", "198.18.1.1/24", "dev", v.a, ns=ns)
    ip("neigh", "replace", "198.18.1.2", "lladdr", _mac(None, v.b), "dev", v.a, ns=ns)
    payloads = _payloads(300, seed=1)
    got: list[bytes] = []
    async with aioixy.open(f"{backend}:{v.b}") as port:
        async def receive() -> None:
            async for batch in port.rx():
                with batch:
                    for pkt in batch:
                        p = parse_udp(bytes(pkt.data), 9999)
                        if p is not None:
                            got.append(p)
                if len(got) >= len(payloads):
                    return

        rx = asyncio.create_task(receive())
        sender = _py(f"""
            import random, socket, time
            rnd = random.Random(1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for _ in range({len(payloads)}):
                s.sendto(rnd.randbytes(rnd.choice((1, 18, 100, 512, 1000, 1472))),
                         ("198.18.1.2", 9999))
                time.sleep(0.0005)
            """)
        proc = await asyncio.create_subprocess_exec(*in_ns(ns, sender))
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        try:
            await asyncio.wait_for(rx, 30)
        except TimeoutError:
            # where they went missing: the device (rx_missed), the hand-off ring (rx_dropped)
            pytest.fail(f"{len(got)} of {len(payloads)} datagrams arrived; {port.stats()}")
    assert got == payloads


@pytest.mark.parametrize("backend", BACKENDS)
async def test_udp_from_aioixy_received_by_kernel_socket(netlab, backend):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("addr", "add", "198.18.1.1/24", "dev", v.a, ns=ns)
    payloads = _payloads(300, seed=2)
    receiver = netlab.popen(ns, _py(f"""
        import json, socket
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        s.bind(("198.18.1.1", 9998))
        s.settimeout(30)
        print("ready", flush=True)
        got = []
        try:
            while len(got) < {len(payloads)}:
                got.append(s.recv(2048).hex())
        except TimeoutError:
            pass
        print(json.dumps(got), flush=True)
        """), stdout=subprocess.PIPE, text=True)
    _wait_line(receiver, "ready")
    dst_mac = bytes.fromhex(_mac(ns, v.a).replace(":", ""))
    async with aioixy.open(f"{backend}:{v.b}") as port:
        src_mac = bytes.fromhex(port.mac.replace(":", ""))
        for i in range(0, len(payloads), 32):
            chunk = payloads[i:i + 32]
            frames = [udp_frame(src_mac, dst_mac, bytes((198, 18, 1, 2)), bytes((198, 18, 1, 1)),
                                4000, 9998, p) for p in chunk]
            batch = port.alloc(len(frames))
            for pkt, f in zip(batch, frames, strict=True):
                pkt.write(f)
            await port.tx(batch)
            await asyncio.sleep(0.002)  # a kernel socket buffer, not a ring: do not flood it
        out, _ = await asyncio.get_running_loop().run_in_executor(
            None, lambda: receiver.communicate(timeout=60))
    got = [bytes.fromhex(h) for h in json.loads(out.strip().splitlines()[-1])]
    assert got == payloads


@pytest.mark.parametrize("backend", BACKENDS)
def test_tcp_10mb_between_namespaces_through_forwarder(netlab, backend):
    """ns1 == veth == [forwarder a | forwarder b] == veth == ns2: the only path between them."""
    ns1, nsf, ns2 = netlab.netns(), netlab.netns(), netlab.netns()
    v1 = netlab.veth(ns_a=ns1, ns_b=nsf)
    v2 = netlab.veth(ns_a=ns2, ns_b=nsf)
    ip("addr", "add", "198.18.2.1/24", "dev", v1.a, ns=ns1)
    ip("addr", "add", "198.18.2.2/24", "dev", v2.a, ns=ns2)
    fwd = netlab.popen(nsf, [sys.executable, str(ROOT / "examples" / "forwarder.py"),
                             f"{backend}:{v1.b}", f"{backend}:{v2.b}", "--promisc",
                             "--duration", "300", "--json"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    size = 10 * 1024 * 1024
    server = netlab.popen(ns2, _py("""
        import hashlib, socket
        srv = socket.create_server(("198.18.2.2", 5001))
        print("listening", flush=True)
        srv.settimeout(120)
        conn, _ = srv.accept()
        conn.settimeout(120)
        h, n = hashlib.sha256(), 0
        while chunk := conn.recv(1 << 16):
            h.update(chunk)
            n += len(chunk)
        print(n, h.hexdigest(), flush=True)
        """), stdout=subprocess.PIPE, text=True)
    _wait_line(server, "listening")
    client = subprocess.run(in_ns(ns1, _py(f"""
        import hashlib, random, socket, time
        data = random.Random(7).randbytes({size})
        for attempt in range(60):  # the forwarder may still be opening its ports
            try:
                c = socket.create_connection(("198.18.2.2", 5001), timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        c.settimeout(120)
        c.sendall(data)
        c.close()
        print(hashlib.sha256(data).hexdigest(), flush=True)
        """)), capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stderr
    out, _ = server.communicate(timeout=180)
    n, digest = out.split()[-2:]
    assert int(n) == size
    assert digest == client.stdout.split()[-1]
    fwd.terminate()  # the forwarder's own summary: it did the forwarding, its pools are whole
    fout, ferr = fwd.communicate(timeout=60)
    assert fwd.returncode == 0, fout + ferr
    summary = json.loads(fout.strip().splitlines()[-1])
    assert summary["pools_whole"] is True
    fwd_counts = summary["forwarded"]
    assert fwd_counts[f"{backend}:{v1.b}->{backend}:{v2.b}"] > size // 1514
    assert fwd_counts[f"{backend}:{v2.b}->{backend}:{v1.b}"] > 0  # the ACKs
