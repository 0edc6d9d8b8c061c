"""The ixgbe driver against the 82599 model, side by side with the software devices.

    python bench/bench_ixgbe.py [--seconds 2] [--reps 3] [--out bench/results/ixgbe.json]

Three paths, each through Python on the asyncio loop, batch 64:
  rx   a traffic source -> port -> coroutine (batches released at once)
  tx   coroutine -> port -> a sink (fresh 60-byte packets, sent in batches)
  fwd  source -> port A -> coroutine -> port B -> sink
for two kinds of device: `null` (source and sink in software, no driver) and `sim-82599` (the
ixgbe driver, with the model's generator as source and the generator's side of the cable as
sink). The pair is measured in bench_core.py. The model does the device's work on its own thread, so
on a 2-core machine the model, the pollers and Python share two cores: read the ixgbe figures
as "driver + a software NIC", not as what a real 82599 would reach. Medians of --reps runs,
taken in one process, interleaved. Instructions per packet: bench/bench_instructions.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import statistics
import time
from pathlib import Path

import aioixy

ROOT = Path(__file__).resolve().parents[1]
_ids = itertools.count()
BATCH = 64


def _source_sink(kind: str) -> tuple[str, dict, str, dict]:
    """(source device, options, sink device, options) for a kind."""
    if kind == "null":
        return "null", {}, "null", {"rx": False}
    n = f"b{next(_ids)}"
    gen = "wire=gen,flows=16"
    # two cards: one whose generator feeds us, one whose generator side swallows what we send
    return (f"sim-82599:{n}s:0", {"options": gen},
            f"sim-82599:{n}t:0", {"options": gen + ",count=1", "rx": False})


async def _measure(seconds: float, counter: list[int], tasks: list[asyncio.Task]) -> float:
    await asyncio.sleep(0.2)
    c0, t0 = counter[0], time.perf_counter()
    await asyncio.sleep(seconds)
    c1, t1 = counter[0], time.perf_counter()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return (c1 - c0) / (t1 - t0)


async def _rx_loop(port: aioixy.Port, counter: list[int]) -> None:
    async for batch in port.rx():
        counter[0] += len(batch)
        batch.release()


async def _tx_loop(port: aioixy.Port, counter: list[int]) -> None:
    while True:
        b = port.alloc(BATCH, size=60)
        await port.tx(b)
        counter[0] += BATCH


async def _fwd_loop(src: aioixy.Port, dst: aioixy.Port, counter: list[int]) -> None:
    async for batch in src.rx():
        n = len(batch)
        await dst.tx(batch)
        counter[0] += n


async def run_path(kind: str, path: str, seconds: float) -> float:
    src, so, sink, ko = _source_sink(kind)
    counter = [0]
    async with contextlib.AsyncExitStack() as st:
        if path == "rx":
            p = await st.enter_async_context(aioixy.open(src, batch_size=BATCH, **so))
            task = _rx_loop(p, counter)
        elif path == "tx":
            p = await st.enter_async_context(aioixy.open(sink, batch_size=BATCH, **ko))
            task = _tx_loop(p, counter)
        else:
            a = await st.enter_async_context(aioixy.open(src, batch_size=BATCH, overflow="pause",
                                                         **so))
            b = await st.enter_async_context(aioixy.open(sink, batch_size=BATCH, **ko))
            task = _fwd_loop(a, b, counter)
        return await _measure(seconds, counter, [asyncio.create_task(task)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "ixgbe.json"))
    args = ap.parse_args()
    kinds, paths = ["null", "sim-82599"], ["rx", "tx", "fwd"]
    samples: dict[tuple[str, str], list[float]] = {(k, p): [] for k in kinds for p in paths}
    for _ in range(args.reps):  # interleaved, so drift in machine load hits all alike
        for k in kinds:
            for p in paths:
                samples[(k, p)].append(asyncio.run(run_path(k, p, args.seconds)))
    rows = []
    print(f"{'device':<10} {'path':<4} {'Mpps (median)':>14} {'min':>7} {'max':>7}")
    for (k, p), v in samples.items():
        med = statistics.median(v)
        rows.append({"device": k, "path": p, "mpps_median": round(med / 1e6, 3),
                     "mpps_samples": [round(x / 1e6, 3) for x in v]})
        print(f"{k:<10} {p:<4} {med / 1e6:14.3f} {min(v) / 1e6:7.3f} {max(v) / 1e6:7.3f}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"batch": BATCH, "seconds": args.seconds, "reps": args.reps, "rows": rows,
                   "cpus": os.cpu_count()}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
