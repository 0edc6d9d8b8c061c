"""Network functions and a sender for tests/kernel/test_workers.py, in a module of their own: a
worker process (spawned, a fresh interpreter) imports it to find its network function."""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time

import aioixy

#: marks the test's frames apart from anything else on the link (IPv6 router solicitations...)
MAGIC = b"AXWK"
ETH_IP_UDP = 14 + 20 + 8


def frame(dst: bytes, src: bytes, seq: int, flow: int) -> bytes:
    """Ethernet/IPv4/UDP to 10.99.0.2 from 10.99.0.1, source port 10000+flow (a flow per source
    port, so the kernel's flow hash spreads them), payload MAGIC + seq."""
    payload = MAGIC + struct.pack("!Q", seq) + bytes(18)
    udp = struct.pack("!HHHH", 10000 + flow, 9, 8 + len(payload), 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(payload), 0, 0, 64, 17, 0,
                     bytes([10, 99, 0, 1]), bytes([10, 99, 0, 2]))
    csum = sum(struct.unpack("!10H", ip))
    while csum >> 16:
        csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    return dst + src + b"\x08\x00" + ip + udp + payload


def send(ifname: str, dst_mac: str, first: int, count: int, flows: int, pps: float) -> None:
    """Run in the peer namespace (python -m tests.kernel.workers_nf): frames first..first+count-1
    over `flows` flows, paced at `pps` so a loaded machine's receivers keep up."""
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((ifname, 0))
    with open(f"/sys/class/net/{ifname}/address") as f:
        src = bytes.fromhex(f.read().strip().replace(":", ""))
    dst = bytes.fromhex(dst_mac.replace(":", ""))
    t0 = time.monotonic()
    for k in range(count):
        seq = first + k
        s.send(frame(dst, src, seq, seq % flows))
        if k % 50 == 49:
            ahead = (k + 1) / pps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)


def seq_of(data: memoryview) -> int | None:
    if len(data) < ETH_IP_UDP + 12 or bytes(data[ETH_IP_UDP:ETH_IP_UDP + 4]) != MAGIC:
        return None
    return struct.unpack_from("!Q", data, ETH_IP_UDP + 4)[0]


async def collect(w: aioixy.Worker) -> dict:
    """Receive until stopped; return the sequence numbers seen and this worker's pid."""
    import os

    seqs: list[int] = []
    rx = w.port.rx()
    while not w.stop.is_set():
        try:
            batch = await asyncio.wait_for(rx.__anext__(), 0.2)
        except TimeoutError:
            continue
        with batch:
            for p in batch:
                s = seq_of(p.data)
                if s is not None:
                    seqs.append(s)
    return {"pid": os.getpid(), "index": w.index, "seqs": seqs}


if __name__ == "__main__":
    send(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
         float(sys.argv[6]))


async def count_null(w: aioixy.Worker) -> dict:
    """On a null port: receive at least 10000 frames, then return how many this worker saw."""
    n = 0
    async for batch in w.port.rx():
        with batch:
            n += len(batch)
        if n >= 10000 or w.stop.is_set():
            break
    return {"index": w.index, "frames": n}
