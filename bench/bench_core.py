"""Packet rates into a coroutine, side by side with the naive thread -> asyncio hand-off.

    python bench/bench_core.py [--seconds 0.5] [--reps 5] [--out bench/results/core.json]

Measures, on asyncio and on uvloop, in one run:
  * null -> coroutine for batch sizes 1, 8, 32, 64, 256: (a) touching only batches,
    (b) iterating every packet in Python (len(pkt) of each);
  * forwarding through Python: null -> rx -> tx -> pair:a ==wire==> pair:b -> rx (counted);
  * the naive hand-off a Python user would write today: a thread producing packets and handing
    each to the loop with call_soon_threadsafe into an asyncio.Queue, and the same with one
    call per batch of 64.
Each figure is the median of --reps runs of --seconds each. Figures are machine-dependent: quote
ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Awaitable, Callable

import uvloop

import aioixy

BATCHES = (1, 8, 32, 64, 256)


async def null_rate(batch_size: int, per_packet: bool, seconds: float) -> float:
    async with aioixy.open("null", batch_size=batch_size, overflow="pause") as port:
        n = 0
        stream = port.rx()
        # warm-up: let the ring fill and caches settle
        warm = time.perf_counter() + 0.05
        async for batch in stream:
            batch.release()
            if time.perf_counter() > warm:
                break
        t0 = time.perf_counter()
        end = t0 + seconds
        checks = 0
        async for batch in stream:
            if per_packet:
                for pkt in batch:
                    n += len(pkt) and 1
            else:
                n += len(batch)
            batch.release()
            checks += 1
            if checks & 63 == 0 and time.perf_counter() >= end:
                break
        return n / (time.perf_counter() - t0)


async def _pass_on(batch, out) -> None:
    await out.tx(batch)


async def forward_rate(seconds: float, step=_pass_on, name: str = "bench") -> float:
    """null -> step(batch, pair:a) in Python -> pair:a ==wire==> pair:b -> counted, in pps.

    ``step`` is the network function under test; it owns the batch and sends what it keeps.
    bench_batchops.py measures its forwarders through this same harness."""
    async with aioixy.open("null", overflow="pause") as src, \
            aioixy.open(f"pair:{name}:a", flow_control=True) as a, \
            aioixy.open(f"pair:{name}:b", overflow="pause") as b:
        received = 0
        done = asyncio.Event()

        async def fwd() -> None:
            async for batch in src.rx():
                await step(batch, a)
                if done.is_set():
                    return

        async def sink() -> None:
            nonlocal received
            async for batch in b.rx():
                received += len(batch)
                batch.release()
                if done.is_set():
                    return

        tasks = [asyncio.create_task(fwd()), asyncio.create_task(sink())]
        await asyncio.sleep(0.05)
        r0, t0 = received, time.perf_counter()
        await asyncio.sleep(seconds)
        r1, t1 = received, time.perf_counter()
        done.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return (r1 - r0) / (t1 - t0)


async def naive_rate(seconds: float, per_call: int) -> float:
    """A producer thread hands packets to the loop (call_soon_threadsafe -> asyncio.Queue)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=4096)
    stop = threading.Event()
    frame = bytes(60)
    room = threading.Semaphore(64)  # bounded in flight, as a real hand-off must be

    def put(items: list[bytes]) -> None:
        for it in items:
            queue.put_nowait(it)

    def producer() -> None:
        while not stop.is_set():
            if not room.acquire(timeout=0.1):
                continue
            loop.call_soon_threadsafe(put, [frame] * per_call)

    th = threading.Thread(target=producer, daemon=True)
    th.start()
    n = 0
    got_in_call = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        await queue.get()
        n += 1
        got_in_call += 1
        if got_in_call == per_call:
            got_in_call = 0
            room.release()
        if n & 1023 == 0 and time.perf_counter() >= end:
            break
    elapsed = time.perf_counter() - t0
    stop.set()
    room.release()
    th.join()
    return n / elapsed


def median_of(run: Callable[[Callable[[], Awaitable[float]]], float],
              make: Callable[[], Awaitable[float]], reps: int) -> float:
    return statistics.median(run(make()) for _ in range(reps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=5)
    default_out = os.path.join(os.path.dirname(__file__), "results", "core.json")
    ap.add_argument("--out", default=default_out)
    args = ap.parse_args()

    runners = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    rows: list[dict] = []

    def record(test: str, loop: str, batch: int | None, mpps: float) -> None:
        rows.append({"test": test, "loop": loop, "batch": batch, "mpps": round(mpps / 1e6, 3)})
        b = "-" if batch is None else batch
        print(f"{test:<28} {loop:<8} {b!s:>5} {mpps / 1e6:8.3f} Mpps", flush=True)

    print(f"{'test':<28} {'loop':<8} {'batch':>5} {'rate':>13}")
    for loop, run in runners.items():
        for bs in BATCHES:
            for per_packet in (False, True):
                test = "null->coroutine per-packet" if per_packet else "null->coroutine batches"
                r = median_of(run, lambda bs=bs, pp=per_packet: null_rate(bs, pp, args.seconds),
                              args.reps)
                record(test, loop, bs, r)
        record("forward null->pair a->b", loop, 64,
               median_of(run, lambda: forward_rate(args.seconds), args.reps))
        record("naive thread->Queue", loop, 1,
               median_of(run, lambda: naive_rate(args.seconds, 1), args.reps))
        record("naive thread->Queue", loop, 64,
               median_of(run, lambda: naive_rate(args.seconds, 64), args.reps))

    def get(test: str, loop: str, batch: int | None) -> float:
        key = (test, loop, batch)
        return next(r["mpps"] for r in rows if (r["test"], r["loop"], r["batch"]) == key)

    ratios = {}
    for loop in runners:
        naive = get("naive thread->Queue", loop, 1)
        ratios[loop] = {
            "batches_b64_vs_naive": round(get("null->coroutine batches", loop, 64) / naive, 1),
            "per_packet_b64_vs_naive": round(
                get("null->coroutine per-packet", loop, 64) / naive, 1),
        }
        print(f"{loop}: batch-level @64 is {ratios[loop]['batches_b64_vs_naive']}x the naive "
              f"hand-off, per-packet @64 is {ratios[loop]['per_packet_b64_vs_naive']}x")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                               "platform": platform.platform()},
                   "seconds": args.seconds, "reps": args.reps, "rows": rows, "ratios": ratios},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
