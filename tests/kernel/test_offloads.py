"""A host's own traffic at the kernel's DEFAULT offloads, through the kernel ports.

UDP and TCP sent by a namespace's stack into a veth carry partial checksums (CHECKSUM_PARTIAL)
and TCP (or UDP with UDP_SEGMENT) hands over GSO super-frames of up to 64 KB. A port that
forwards them as they came delivers frames the next kernel drops (UdpInCsumErrors,
TcpInCsumErrors) or cannot send at all. `packet:` completes checksums and cuts super-frames
from the kernel's per-frame metadata (PACKET_VNET_HDR); `xdp:` completes checksums with
``fix_checksums=True`` (the veth does not hand XDP super-frames). Each test also checks that the
offloads really were in effect (the ports' counters of completed checksums / cut frames), so a
kernel or a lab that finished the frames itself cannot make it pass vacuously.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest

import aioixy
from tests.kernel.netns import in_ns, ip
from tests.kernel.test_kernel_peer import ROOT, _mac, _py, _wait_line, parse_udp

pytestmark = pytest.mark.usefixtures("no_leaks")
BACKENDS = ["packet", "xdp"]


def csum_errors(ns: str) -> dict[str, int]:
    """The namespace's UDP/TCP InCsumErrors (what the receiving kernel dropped)."""
    snmp = subprocess.run(in_ns(ns, ["cat", "/proc/net/snmp"]), capture_output=True, text=True,
                          check=True).stdout.splitlines()
    out = {}
    for head, vals in zip(snmp[::2], snmp[1::2], strict=True):
        proto, names = head.split(":")[0], head.split()[1:]
        if proto in ("Udp", "Tcp"):
            row = dict(zip(names, map(int, vals.split()[1:]), strict=True))
            out[proto] = row.get("InCsumErrors", 0)
    return out


@pytest.mark.parametrize("backend", BACKENDS)
async def test_udp_gso_and_partial_checksums_arrive_as_wire_frames(netlab, backend):
    """UDP_SEGMENT super-datagrams and plain datagrams from a namespace: every frame the port
    delivers is at most an MTU frame with a correct UDP checksum, and the payload is whole."""
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("addr", "add", "198.18.5.1/24", "dev", v.a, ns=ns)
    ip("neigh", "replace", "198.18.5.2", "lladdr", _mac(None, v.b), "dev", v.a, ns=ns)
    seg, sends = 1000, 20
    expect = b"".join(bytes([i]) * (8 * seg) for i in range(sends)) + b"tail" * 100
    got: list[bytes] = []
    async with aioixy.open(f"{backend}:{v.b}", fix_checksums=True) as port:
        async def receive() -> None:
            async for batch in port.rx():
                with batch:
                    ok = batch.l4_checksum_ok()
                    for i, pkt in enumerate(batch):
                        p = parse_udp(bytes(pkt.data), 9999)
                        if p is None:
                            continue
                        assert ok[i], f"frame {len(got)}: bad UDP checksum"
                        assert pkt.length <= 1514
                        got.append(p)
                if sum(map(len, got)) >= len(expect):
                    return

        rx = asyncio.create_task(receive())
        sender = _py(f"""
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_UDP, 103, {seg})  # UDP_SEGMENT: one GSO super-frame
            for i in range({sends}):
                s.sendto(bytes([i]) * {8 * seg}, ("198.18.5.2", 9999))
                time.sleep(0.01)
            s.setsockopt(socket.SOL_UDP, 103, 0)
            s.sendto(b"tail" * 100, ("198.18.5.2", 9999))  # a plain datagram (partial csum)
            """)
        proc = await asyncio.create_subprocess_exec(*in_ns(ns, sender))
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        try:
            await asyncio.wait_for(rx, 30)
        except TimeoutError:
            pytest.fail(f"{sum(map(len, got))} of {len(expect)} bytes arrived; {port.stats()}")
        extra = port.stats().device.extra
    assert b"".join(got) == expect
    assert [len(p) for p in got[:8]] == [seg] * 8  # segments, not one 8000-byte frame
    # the offloads were really on: the port completed checksums (and, packet:, cut frames)
    assert extra["rx_csum_completed"] > 0, extra
    if backend == "packet":
        assert extra["rx_gso_frames"] >= sends and extra["rx_gso_refused"] == 0, extra


def _fwd_cmd(tool: str, a: str, b: str) -> list[str]:
    if tool == "cli":
        return [sys.executable, "-m", "aioixy", "fwd", a, b, "--duration", "300", "--json"]
    return [sys.executable, str(ROOT / "examples" / "forwarder.py"), a, b, "--duration", "300",
            "--json"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tool", ["cli", "example"])
def test_forwarders_carry_udp_and_tcp_between_namespaces(netlab, backend, tool):
    """ns1 == veth == [aioixy fwd | examples/forwarder.py] == veth == ns2, default offloads:
    UDP datagrams (kernel sockets both ends) and a TCP stream (4 MB, SHA-256) arrive intact and
    neither kernel counts a checksum error."""
    ns1, nsf, ns2 = netlab.netns(), netlab.netns(), netlab.netns()
    v1 = netlab.veth(ns_a=ns1, ns_b=nsf)
    v2 = netlab.veth(ns_a=ns2, ns_b=nsf)
    ip("addr", "add", "198.18.6.1/24", "dev", v1.a, ns=ns1)
    ip("addr", "add", "198.18.6.2/24", "dev", v2.a, ns=ns2)
    fwd = netlab.popen(nsf, _fwd_cmd(tool, f"{backend}:{v1.b}", f"{backend}:{v2.b}"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    server = netlab.popen(ns2, _py("""
        import hashlib, socket
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("198.18.6.2", 9999))
        u.settimeout(60)
        srv = socket.create_server(("198.18.6.2", 5001))
        print("listening", flush=True)
        # UDP: echo every datagram back until the "end" datagram
        while (m := u.recvfrom(65536))[0] != b"end":
            u.sendto(m[0], m[1])
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
    size = 4 * 1024 * 1024
    client = subprocess.run(in_ns(ns1, _py(f"""
        import hashlib, random, socket, time
        rnd = random.Random(5)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        echoed = 0
        for i in range(200):  # the forwarder may still be opening its ports: retry each
            msg = rnd.randbytes(rnd.choice((1, 100, 1000, 1472, 3000)))
            for attempt in range(30):
                u.sendto(msg, ("198.18.6.2", 9999))
                try:
                    if u.recv(65536) == msg:
                        echoed += 1
                        break
                except TimeoutError:
                    pass
        u.sendto(b"end", ("198.18.6.2", 9999))
        print("udp", echoed, flush=True)
        data = rnd.randbytes({size})
        c = socket.create_connection(("198.18.6.2", 5001), timeout=10)
        c.settimeout(120)
        c.sendall(data)
        c.close()
        print("tcp", hashlib.sha256(data).hexdigest(), flush=True)
        """)), capture_output=True, text=True, timeout=300)
    assert client.returncode == 0, client.stdout + client.stderr
    lines = dict(line.split(" ", 1) for line in client.stdout.splitlines())
    assert lines["udp"] == "200", client.stdout
    out, _ = server.communicate(timeout=180)
    n, digest = out.split()[-2:]
    assert int(n) == size and digest == lines["tcp"]
    assert csum_errors(ns1) == {"Udp": 0, "Tcp": 0}
    assert csum_errors(ns2) == {"Udp": 0, "Tcp": 0}
    fwd.terminate()
    fout, ferr = fwd.communicate(timeout=60)
    assert fwd.returncode == 0, fout + ferr
    summary = json.loads(fout.strip().splitlines()[-1])
    assert summary["pools_whole"] is True


@pytest.mark.parametrize("backend", BACKENDS)
def test_echo_responder_echoes_udp_from_a_kernel_socket(netlab, backend):
    """UDP echo (port 7) answered by examples/echo_responder.py: the request came from a
    namespace's stack with a partial checksum, the echo keeps the checksum, so it must have been
    completed on rx, or the asking kernel drops every echo."""
    ns_peer, ns_aioixy = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns_peer, ns_b=ns_aioixy)
    ip("addr", "add", "198.18.0.1/24", "dev", v.a, ns=ns_peer)
    responder = netlab.popen(ns_aioixy, [
        sys.executable, str(ROOT / "examples" / "echo_responder.py"), "--device",
        f"{backend}:{v.b}", "--ip", "198.18.0.2", "--duration", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(responder, "answering for")
    r = subprocess.run(in_ns(ns_peer, _py("""
        import random, socket
        rnd = random.Random(3)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.settimeout(2)
        ok = 0
        for i in range(100):
            msg = rnd.randbytes(rnd.choice((1, 64, 512, 1472)))
            u.sendto(msg, ("198.18.0.2", 7))
            try:
                ok += u.recv(2048) == msg
            except TimeoutError:
                pass
        print(ok)
        """)), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["100"], r.stdout
    assert csum_errors(ns_peer)["Udp"] == 0
