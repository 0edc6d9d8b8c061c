"""What issue 10's tx guards cost on the Python tx path, side by side in one run.

    python bench/bench_tx_guard.py [--reps 7] [--seconds 0.4] [--out bench/results/tx_guard.json]

A null port (rx off) swallows whatever is sent, so this times alloc + tx of 64-packet batches
and nothing else. Rows, each the median of --reps runs on asyncio and on uvloop:
  * tx(batch), with the sender yield every TX_YIELD_EVERY calls (the default) and with it
    disabled (TX_YIELD_EVERY set huge): the price of not starving receivers;
  * tx(list of 64 packets): the path that checks duplicates and busy batches in Python.
The native length / DMA-reach check runs in both batch rows (it cannot be switched off); its
cost is in bench_instructions.py's figures (per packet, repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time

import uvloop

import aioixy
from aioixy.core import port as port_mod

BATCH = 64


async def rate(mode: str, seconds: float) -> float:
    async with aioixy.open("null", rx=False, batch_size=BATCH) as p:
        n = 0
        end = time.perf_counter() + seconds
        t0 = time.perf_counter()
        while time.perf_counter() < end:
            for _ in range(32):
                b = p.alloc(BATCH, size=60)
                await p.tx(b if mode != "list" else list(b))
                n += BATCH
        return n / (time.perf_counter() - t0) / 1e6


def run(loop_name: str, mode: str, seconds: float) -> float:
    saved = port_mod.TX_YIELD_EVERY
    if mode == "no-yield":
        port_mod.TX_YIELD_EVERY = 1 << 60
    try:
        if loop_name == "uvloop":
            return uvloop.run(rate(mode, seconds))
        return asyncio.run(rate(mode, seconds))
    finally:
        port_mod.TX_YIELD_EVERY = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--seconds", type=float, default=0.4)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "tx_guard.json"))
    args = ap.parse_args()
    modes = ("yield", "no-yield", "list")
    rows = []
    for loop_name in ("asyncio", "uvloop"):
        samples: dict[str, list[float]] = {m: [] for m in modes}
        for _ in range(args.reps):  # interleaved, so drift of the machine hits every mode
            for m in modes:
                samples[m].append(run(loop_name, m, args.seconds))
        for m in modes:
            rows.append({"loop": loop_name, "mode": m,
                         "mpps": round(statistics.median(samples[m]), 3)})
    print(f"{'loop':8} {'tx of 64-packet batches':28} {'Mpps (median)':>14}")
    for r in rows:
        print(f"{r['loop']:8} {r['mode']:28} {r['mpps']:14.3f}")
    ratios = {}
    for loop_name in ("asyncio", "uvloop"):
        by = {r["mode"]: r["mpps"] for r in rows if r["loop"] == loop_name}
        ratios[loop_name] = {"yield/no-yield": round(by["yield"] / by["no-yield"], 3),
                             "list/batch": round(by["list"] / by["yield"], 3)}
        print(f"{loop_name}: with the yield {ratios[loop_name]['yield/no-yield']:.3f}x the rate "
              f"without; a list of packets {ratios[loop_name]['list/batch']:.3f}x a batch")
    with open(args.out, "w") as f:
        json.dump({"machine": platform.machine(), "cpus": os.cpu_count(), "reps": args.reps,
                   "seconds": args.seconds, "rows": rows, "ratios": ratios}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
