"""Packet generator: numbered UDP frames spread over several flows, at a fixed rate.

    python examples/pktgen.py [--device DEV] [--rate PPS] [--count N] [--size B|LO-HI]
                              [--flows F] [--dst-ip A] [--dport P] [--json]

Frames are filled a batch at a time by aioixy.Generator (one native call per batch: no Python
per packet). With --device it sends there. Without, it sends on pair:gen:a and a receiver on
pair:gen:b checks, with batch operations, every frame's sequence number, IPv4 and UDP checksums
and destination, and counts each flow (flow f has UDP source port 1024 + f, so a NIC's RSS would
spread the flows over queues). Ctrl-C or SIGTERM stops it cleanly with the summary of what
was sent (and received) so far.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

import aioixy
from aioixy.core.frames import SEQ_OFFSET
from aioixy.core.generator import parse_size
from aioixy.jobs import RateLimiter, until_stopped

BURST = 256


async def generate(gen: aioixy.Generator, count: int, limiter: RateLimiter,
                   sent: list[int]) -> None:
    """Send `count` frames; sent[0] counts those that went, also when stopped by a signal
    (``gen.send`` would say so only by returning, which a cancelled call does not)."""
    while sent[0] < count:
        n = await limiter.allow(min(BURST, count - sent[0]))  # awaits until the rate allows n
        b = gen.batch(n)
        try:
            await gen.port.tx(b, queue=gen.queue)
        finally:  # a tx cancelled while it waits for ring space has sent a prefix
            sent[0] += n - len(b)
            b.release()


async def receive(port: aioixy.Port, spec: aioixy.FrameSpec, count: int,
                  per_flow: Counter, errors: list[str]) -> None:
    expected = 0
    dst_ip = int.from_bytes(aioixy.core.generator.parse_ipv4(spec.dst_ip), "big")
    async for batch in port.rx():
        with batch:
            seqs = batch.field_at(SEQ_OFFSET, 8)
            bad_ip = sum(not ok for ok in batch.ipv4_checksum_ok())
            bad_udp = sum(not ok for ok in batch.l4_checksum_ok())
            if bad_ip or bad_udp:
                errors.append(f"{bad_ip} bad IPv4 and {bad_udp} bad UDP checksums in a batch")
            if any(a != dst_ip for a in batch.field("ip_dst")):
                errors.append("a frame to another destination")
            for seq in seqs:
                if seq != expected:
                    errors.append(f"seq {seq}, expected {expected}")
                expected = int(seq) + 1
            per_flow.update(int(p) - spec.sport for p in batch.field("sport"))
        if sum(per_flow.values()) >= count:
            return


async def run(args: argparse.Namespace) -> dict:
    limiter = RateLimiter(args.rate, BURST)
    spec = aioixy.FrameSpec(size=parse_size(args.size), flows=args.flows, dst_ip=args.dst_ip,
                            dport=args.dport)
    lossless = {"flow_control": True, "overflow": "pause"}
    sent = [0]
    stop = asyncio.Event()  # Ctrl-C, SIGTERM
    if args.device:
        async with aioixy.open(args.device, rx=False) as port:
            t0 = time.perf_counter()
            await until_stopped(generate(aioixy.Generator(port, spec), args.count, limiter,
                                         sent), stop)
            elapsed = time.perf_counter() - t0
        return {"sent": sent[0], "seconds": round(elapsed, 3), "interrupted": stop.is_set(),
                "pools_whole": aioixy.native_pools_alive() == 0}
    per_flow: Counter = Counter()
    errors: list[str] = []

    async def self_test(a: aioixy.Port, b: aioixy.Port) -> None:
        rx = asyncio.create_task(receive(b, spec, args.count, per_flow, errors))
        try:
            await generate(aioixy.Generator(a, spec), args.count, limiter, sent)
            await asyncio.wait_for(rx, 10)
        except TimeoutError:
            errors.append(f"timed out with {sum(per_flow.values())} of {sent[0]} received")
        finally:
            rx.cancel()
            await asyncio.gather(rx, return_exceptions=True)

    async with aioixy.open("pair:gen:a", **lossless) as a, \
            aioixy.open("pair:gen:b", **lossless) as b:
        t0 = time.perf_counter()
        await until_stopped(self_test(a, b), stop)
        elapsed = time.perf_counter() - t0
    return {"sent": sent[0], "received": sum(per_flow.values()), "per_flow": dict(per_flow),
            "errors": errors[:5], "seconds": round(elapsed, 3),
            "pps": round(sent[0] / elapsed), "interrupted": stop.is_set(),
            "pools_whole": aioixy.native_pools_alive() == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", help="send here (default: self-test on the built-in pair)")
    ap.add_argument("--rate", type=float, default=None, help="packets/s (default: unlimited)")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--size", default="60", help="bytes, or a range LO-HI")
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--dst-ip", default="198.18.0.2")
    ap.add_argument("--dport", type=int, default=5678)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    try:
        summary = aioixy.run(run(args), uvloop=args.uvloop)
    except aioixy.InvalidOption as exc:
        print(f"pktgen: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(summary) if args.json else
          "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0 if not summary.get("errors") and summary["pools_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
