"""Packet generator: numbered UDP frames spread over several flows, at a fixed rate.

    python examples/pktgen.py [--device DEV] [--rate PPS] [--count N] [--size B] [--flows F]
                              [--json]

With --device it sends there. Without, it sends on pair:gen:a and a receiver on pair:gen:b
verifies every frame byte for byte (sequence number, size, pattern) and counts each flow (the
UDP source port is 1024 + flow, so a NIC's RSS would spread the flows over queues).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time

import aioixy
from aioixy.core.frames import check_frame, make_frame
from aioixy.jobs import RateLimiter


async def generate(port: aioixy.Port, count: int, size: int, flows: int,
                   limiter: RateLimiter) -> int:
    src = bytes.fromhex(port.mac.replace(":", ""))
    seq = 0
    while seq < count:
        n = await limiter.allow(min(32, count - seq))  # awaits until the rate allows n more
        batch = port.alloc(n, size=size)
        for pkt in batch:
            pkt.data[:] = make_frame(seq, size, src, flow=seq % flows)
            seq += 1
        await port.tx(batch)
    return seq


async def receive(port: aioixy.Port, count: int, per_flow: dict[int, int],
                  errors: list[str]) -> None:
    expected = 0
    async for batch in port.rx():
        with batch:
            for pkt in batch:
                try:
                    seq = check_frame(pkt.data)
                except AssertionError as exc:
                    errors.append(str(exc))
                    continue
                if seq != expected:
                    errors.append(f"seq {seq}, expected {expected}")
                expected = seq + 1
                flow = struct.unpack_from("!H", pkt.data, 34)[0] - 1024
                per_flow[flow] = per_flow.get(flow, 0) + 1
        if sum(per_flow.values()) + len(errors) >= count:
            return


async def run(args: argparse.Namespace) -> dict:
    limiter = RateLimiter(args.rate, 32)
    lossless = {"flow_control": True, "overflow": "pause"}
    if args.device:
        async with aioixy.open(args.device, rx=False) as port:
            t0 = time.perf_counter()
            sent = await generate(port, args.count, args.size, args.flows, limiter)
            return {"sent": sent, "seconds": round(time.perf_counter() - t0, 3)}
    per_flow: dict[int, int] = {}
    errors: list[str] = []
    async with aioixy.open("pair:gen:a", **lossless) as a, \
            aioixy.open("pair:gen:b", **lossless) as b:
        t0 = time.perf_counter()
        rx = asyncio.create_task(receive(b, args.count, per_flow, errors))
        sent = await generate(a, args.count, args.size, args.flows, limiter)
        try:
            await asyncio.wait_for(rx, 10)
        except TimeoutError:
            errors.append(f"timed out with {sum(per_flow.values())} of {sent} received")
        elapsed = time.perf_counter() - t0
    return {"sent": sent, "received": sum(per_flow.values()), "per_flow": per_flow,
            "errors": errors[:5], "seconds": round(elapsed, 3),
            "pps": round(sent / elapsed), "pools_whole": aioixy.native_pools_alive() == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", help="send here (default: self-test on the built-in pair)")
    ap.add_argument("--rate", type=float, default=None, help="packets/s (default: unlimited)")
    ap.add_argument("--count", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=60)
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    summary = asyncio.run(run(args))
    print(json.dumps(summary) if args.json else
          "\n".join(f"{k}: {v}" for k, v in summary.items()))
    return 0 if not summary.get("errors") and summary.get("pools_whole", True) else 1


if __name__ == "__main__":
    sys.exit(main())
