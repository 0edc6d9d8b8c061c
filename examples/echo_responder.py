"""ARP + ICMP echo + UDP echo responder: answers ping and UDP port 7 for one IPv4 address.

    python examples/echo_responder.py [--device DEV] [--ip 198.18.0.2] [--duration S]

Every reply is the request itself, rewritten in place (zero-copy) and sent back out of the port.
With --device it answers until --duration passes, or until Ctrl-C or SIGTERM, then says how
many requests it answered. Without it runs on the built-in pair (pair:echo:b) and, to have
someone to talk to, pings itself from the other end (pair:echo:a) for 2 s (--duration) and
checks the answers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import struct
import sys

import aioixy
from aioixy.jobs import until_stopped

ETH_ARP, ETH_IP = 0x0806, 0x0800


def checksum(data: bytes | memoryview) -> int:
    if len(data) % 2:
        data = bytes(data) + b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def answer(frame: memoryview, mac: bytes, ip: bytes) -> int:
    """Turn a request addressed to us into its reply, in place. Returns the reply length or 0."""
    if len(frame) < 42:
        return 0
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == ETH_ARP:
        # request (op 1) for our address: become the reply (op 2), sender = us
        if frame[20:22] != b"\x00\x01" or frame[38:42] != ip:
            return 0
        asker_mac, asker_ip = bytes(frame[22:28]), bytes(frame[28:32])
        frame[0:6], frame[6:12] = asker_mac, mac
        frame[20:22] = b"\x00\x02"
        frame[22:28], frame[28:32] = mac, ip
        frame[32:38], frame[38:42] = asker_mac, asker_ip
        return 42
    if ethertype != ETH_IP or frame[30:34] != ip:
        return 0
    ihl = (frame[14] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, 16)[0]
    if ihl < 20 or 14 + total > len(frame):
        return 0  # malformed: dropped, never answered
    proto = frame[23]
    l4 = 14 + ihl
    if proto == 1 and frame[l4] == 8:  # ICMP echo request -> echo reply
        frame[l4] = 0
        frame[l4 + 2:l4 + 4] = b"\0\0"
        frame[l4 + 2:l4 + 4] = struct.pack("!H", checksum(frame[l4:14 + total]))
    elif proto == 17 and struct.unpack_from("!H", frame, l4 + 2)[0] == 7:  # UDP echo
        # swapping the ports (and below, the addresses) leaves the UDP checksum valid
        sport, dport = bytes(frame[l4:l4 + 2]), bytes(frame[l4 + 2:l4 + 4])
        frame[l4:l4 + 2], frame[l4 + 2:l4 + 4] = dport, sport
    else:
        return 0
    frame[26:30], frame[30:34] = bytes(frame[30:34]), bytes(frame[26:30])
    frame[22] = 64  # TTL
    frame[24:26] = b"\0\0"
    frame[24:26] = struct.pack("!H", checksum(frame[14:l4]))
    frame[0:6], frame[6:12] = bytes(frame[6:12]), mac
    return 14 + total


async def respond(port: aioixy.Port, ip: str, counts: dict[str, int] | None = None) -> None:
    """Answer forever (until cancelled or the port closes)."""
    mac = bytes.fromhex(port.mac.replace(":", ""))
    addr = bytes(int(x) for x in ip.split("."))
    counts = counts if counts is not None else {}
    async for batch in port.rx():
        with batch:  # what is not sent back goes back to the pool, also when cancelled
            replies = []
            for pkt in batch:
                n = answer(pkt.data, mac, addr)
                if n:
                    pkt.length = max(n, 60)
                    replies.append(pkt)
            counts["answered"] = counts.get("answered", 0) + len(replies)
            counts["ignored"] = counts.get("ignored", 0) + len(batch) - len(replies)
            if replies:
                await port.tx(replies)


def ping_frame(src_mac: bytes, src_ip: bytes, dst_mac: bytes, dst_ip: bytes, seq: int) -> bytes:
    icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 0x1234, seq) + b"aioixy-ping-payload")
    icmp[2:4] = struct.pack("!H", checksum(bytes(icmp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), seq, 0, 64, 1, 0,
                               src_ip, dst_ip))
    ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
    frame = dst_mac + src_mac + b"\x08\x00" + bytes(ip) + bytes(icmp)
    return frame + b"\0" * (60 - len(frame))


async def self_test(duration: float) -> int:
    """Default-device mode: ping the responder over the built-in pair and count the replies."""
    async with aioixy.open("pair:echo:b") as b, aioixy.open("pair:echo:a") as a:
        server = asyncio.create_task(respond(b, "198.18.0.2"))
        count = max(1, int(duration * 10))
        replies = [0]
        stop = asyncio.Event()  # Ctrl-C, SIGTERM
        b_mac = bytes.fromhex(b.mac.replace(":", ""))
        await until_stopped(ping(a, b_mac, count, replies), stop)
        server.cancel()
        await asyncio.gather(server, return_exceptions=True)
        cut = " (interrupted)" if stop.is_set() else ""
        print(f"{replies[0]}/{count} echo replies over pair:echo{cut}")
        # stopped by hand, it says so above: like any job stopped by Ctrl-C, that is exit 0
        return 0 if replies[0] == count or stop.is_set() else 1


async def ping(a: aioixy.Port, b_mac: bytes, count: int, replies: list[int]) -> None:
    """Ping the responder at b_mac `count` times from `a`; replies[0] counts good replies."""
    a_mac = bytes.fromhex(a.mac.replace(":", ""))

    async def receive() -> None:  # beside the sender: replies must not pile up unread
        async for batch in a.rx():
            with batch:
                for pkt in batch:
                    d = pkt.data
                    total = struct.unpack_from("!H", d, 16)[0]
                    # an echo reply (type 0) whose checksum verifies (sums to zero)
                    if d[12:14] == b"\x08\x00" and d[23] == 1 and d[34] == 0 \
                            and checksum(d[34:14 + total]) == 0:
                        replies[0] += 1
            if replies[0] >= count:
                return

    rx = asyncio.create_task(receive())
    try:
        for seq in range(count):
            batch = a.alloc(1)
            batch[0].write(ping_frame(a_mac, bytes((198, 18, 0, 1)), b_mac,
                                      bytes((198, 18, 0, 2)), seq))
            await a.tx(batch)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(rx, 5)
    finally:
        rx.cancel()
        await asyncio.gather(rx, return_exceptions=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", help="NIC to answer on (default: self-test on the built-in pair)")
    ap.add_argument("--ip", default="198.18.0.2")
    ap.add_argument("--duration", type=float,
                    help="stop after this many seconds (default: the self-test pings for 2 s; "
                         "with --device, until Ctrl-C or SIGTERM)")
    ap.add_argument("--force", action="store_true",
                    help="take a NIC even if it is up with addresses")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    if args.device is None:
        return aioixy.run(self_test(2.0 if args.duration is None else args.duration),
                          uvloop=args.uvloop)

    async def serve() -> bool:
        counts: dict[str, int] = {}
        # a UDP request from a host's own stack (veth, tap) may carry a partial checksum; the
        # echo keeps it, so it must be completed on rx (xdp: when asked, packet: always)
        async with aioixy.open(args.device, force=args.force, fix_checksums=True) as port:
            print(f"answering for {args.ip} on {args.device} ({port.mac})", flush=True)
            await until_stopped(respond(port, args.ip, counts), timeout=args.duration)
        whole = aioixy.native_pools_alive() == 0
        print(f"answered {counts.get('answered', 0)}, ignored {counts.get('ignored', 0)}; "
              f"mempools {'whole' if whole else 'NOT whole'}", flush=True)
        return whole

    return 0 if aioixy.run(serve(), uvloop=args.uvloop) else 1


if __name__ == "__main__":
    sys.exit(main())
