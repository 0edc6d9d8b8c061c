"""Round-trip latency: timestamped probes bounced off a reflector, histogram of RTTs.

    python examples/latency_probe.py [--count N] [--interval-ms MS] [--busy] [--json]

The probe sends UDP frames on pair:lat:a carrying a sequence number and time.perf_counter_ns()
in the payload; a reflector on pair:lat:b (the same event loop here, a far end in real life)
swaps the MAC addresses and sends each frame back. The probe computes RTT = now - stamp and
prints a log2 histogram. --busy uses busy-polling pollers (no idle sleeps: lower latency, one
core per port). The RTT covers both pollers, both rings, the wire, and two event-loop wake-ups.
Ctrl-C or SIGTERM stops the probing early and prints the histogram of the probes sent so far.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import struct
import sys
import time

import attrs

import aioixy
from aioixy.core.frames import SEQ_END, SEQ_OFFSET, make_frame
from aioixy.jobs import stop_on_signals

STAMP = SEQ_END  # the timestamp follows the frame's sequence number


async def reflect(port: aioixy.Port) -> None:
    """Send every frame straight back, MACs swapped in place (one native call per batch)."""
    async for batch in port.rx():
        batch.swap_macs()
        await port.tx(batch)


@attrs.define
class Probes:
    """What the probe has seen so far (kept when it is stopped early)."""

    sent: int = 0
    rtts: dict[int, float] = attrs.field(factory=dict)  # seq -> RTT in microseconds
    strays: int = 0  # answers to no probe, or a second answer


async def probe(port: aioixy.Port, count: int, interval: float, seen: Probes,
                stop: asyncio.Event) -> None:
    """Send `count` probes (fewer once `stop` is set), recording each answer's RTT in `seen`;
    then wait (up to 5 s) for the answers to those sent."""
    src = bytes.fromhex(port.mac.replace(":", ""))

    async def receive() -> None:
        async for batch in port.rx():
            now = time.perf_counter_ns()
            with batch:
                for pkt in batch:
                    seq, stamp = struct.unpack_from("!QQ", pkt.data, SEQ_OFFSET)
                    if seq in seen.rtts or seq >= seen.sent:
                        seen.strays += 1
                    else:
                        seen.rtts[seq] = (now - stamp) / 1000
            if len(seen.rtts) == count or (stop.is_set() and len(seen.rtts) >= seen.sent):
                return

    rx = asyncio.create_task(receive())
    try:
        for seq in range(count):
            if stop.is_set():
                break
            batch = port.alloc(1, size=0)
            frame = bytearray(make_frame(seq, 64, src))
            frame[STAMP:STAMP + 8] = time.perf_counter_ns().to_bytes(8, "big")
            batch[0].write(frame)
            await port.tx(batch)
            seen.sent += 1
            await asyncio.sleep(interval)
        stop.set()  # from here on, the receiver ends once every probe sent is answered
        if len(seen.rtts) < seen.sent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(rx, 5)
    finally:
        rx.cancel()
        await asyncio.gather(rx, return_exceptions=True)


def histogram(rtts: list[float]) -> dict[str, int]:
    """Counts per power-of-two bucket of microseconds: '8-16' holds 8 <= rtt < 16."""
    buckets: dict[int, int] = {}
    for r in rtts:
        b = max(0, int(r).bit_length() - 1)
        buckets[b] = buckets.get(b, 0) + 1
    return {f"{1 << b if b else 0}-{2 << b}": buckets[b] for b in sorted(buckets)}


async def run(count: int, interval: float, busy: bool) -> dict:
    opts = {"idle": aioixy.IdlePolicy.busy()} if busy else {}
    async with aioixy.open("pair:lat:a", **opts) as a, aioixy.open("pair:lat:b", **opts) as b:
        reflector = asyncio.create_task(reflect(b))
        seen = Probes()
        stop = asyncio.Event()
        stop_on_signals(stop)  # Ctrl-C, SIGTERM: stop probing, collect the answers, report
        await probe(a, count, interval, seen, stop)
        reflector.cancel()
        await asyncio.gather(reflector, return_exceptions=True)
    rtts, strays = [seen.rtts[s] for s in sorted(seen.rtts)], seen.strays
    q = statistics.quantiles(rtts, n=100) if len(rtts) > 1 else rtts * 99
    return {"sent": seen.sent, "received": len(rtts), "strays": strays,
            "interrupted": seen.sent < count, "pools_whole": aioixy.native_pools_alive() == 0,
            "min_us": round(min(rtts), 1) if rtts else None,
            "p50_us": round(q[49], 1) if rtts else None,
            "p99_us": round(q[98], 1) if rtts else None,
            "max_us": round(max(rtts), 1) if rtts else None, "histogram": histogram(rtts)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--interval-ms", type=float, default=1.0, help="time between probes")
    ap.add_argument("--busy", action="store_true", help="busy-polling pollers")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    result = aioixy.run(run(args.count, args.interval_ms / 1000, args.busy), uvloop=args.uvloop)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['received']}/{result['sent']} probes answered; RTT min "
              f"{result['min_us']} us, p50 {result['p50_us']} us, p99 {result['p99_us']} us, "
              f"max {result['max_us']} us")
        top = max(result["histogram"].values(), default=1)
        for bucket, n in result["histogram"].items():
            print(f"{bucket:>14} us {n:7d} {'#' * max(1, round(50 * n / top))}")
    return 0 if result["received"] == result["sent"] and not result["strays"] \
        and result["pools_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
