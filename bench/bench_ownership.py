"""What issue 16's exception-safe ownership costs on the Python paths, side by side in one run.

    python bench/bench_ownership.py --base /path/to/old/tree [--reps 5] [--seconds 0.5]
        [--out bench/results/ownership.json]

Two package trees are timed alternately in fresh processes (each run: the best of 20 short
windows, the one least disturbed by a loaded machine) (each with its own built extension):
--base (e.g. ``git archive`` of the commit before issue 16 item 2, its extension built in place)
and this tree. Rows, each the median of --reps runs of 64-packet batches on a null port:
  * alloc + tx(batch)   (rx off: the port swallows what it is sent);
  * alloc + tx(list of 64 packets);
  * rx: ``async for batch in port.rx()`` + release (the null device generates at line rate).
What changed per batch: a batch's array carries a native destructor (``ffi.gc``) and exists
before the native call fills it; tx/release/split/merge NULL the slots they take in one native
call; PacketBatch lost its Python ``__del__``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import asyncio, sys, time
import aioixy
BATCH = 64
WINDOWS = 20

async def run(mode, seconds):
    # the best of WINDOWS short windows: on a loaded machine the best window is the one least
    # disturbed by other processes, which is what compares two builds
    rx = mode == "rx"
    best = 0.0
    async with aioixy.open("null", rx=rx, batch_size=BATCH) as p:
        stream = p.rx(max_batch=BATCH) if rx else None
        for _ in range(WINDOWS):
            n = 0
            t0 = time.perf_counter()
            end = t0 + seconds / WINDOWS
            while time.perf_counter() < end:
                for _ in range(16):
                    if rx:
                        b = await stream.__anext__()
                        n += len(b)
                        b.release()
                    else:
                        b = p.alloc(BATCH, size=60)
                        await p.tx(b if mode == "batch" else list(b))
                        n += BATCH
            best = max(best, n / (time.perf_counter() - t0))
    return best

print(asyncio.run(run(sys.argv[1], float(sys.argv[2]))))
"""


def one(tree: Path, mode: str, seconds: float) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(seconds)], env=env,
                         capture_output=True, text=True, timeout=120, cwd="/")
    if out.returncode:
        raise SystemExit(f"{tree} {mode}: {out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ownership.json")
    a = ap.parse_args()
    trees = {"base": a.base.resolve(), "issue16": ROOT}
    modes = ("batch", "list", "rx")
    runs: dict[str, dict[str, list[float]]] = {t: {m: [] for m in modes} for t in trees}
    for _ in range(a.reps):
        for m in modes:
            for t, path in trees.items():  # interleaved: load changes hit both alike
                runs[t][m].append(one(path, m, a.seconds))
    rows = {}
    print(f"{'path':<22}{'base Mpps':>12}{'issue16 Mpps':>14}{'ratio':>8}")
    for m, label in zip(modes, ("alloc + tx(batch)", "alloc + tx(list)", "rx + release"),
                        strict=True):
        b = statistics.median(runs["base"][m])
        n = statistics.median(runs["issue16"][m])
        rows[label] = {"base_pps": b, "issue16_pps": n, "ratio": n / b}
        print(f"{label:<22}{b / 1e6:>12.2f}{n / 1e6:>14.2f}{n / b:>8.2f}")
    load = os.getloadavg()
    print(f"medians of {a.reps} runs (each the best 1/20 window of {a.seconds} s), 64-packet "
          "batches, asyncio; "
          f"load average {load[0]:.1f} on {os.cpu_count()} CPUs")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"rows": rows, "runs": runs, "reps": a.reps,
                                 "seconds": a.seconds, "loadavg": load,
                                 "cpus": os.cpu_count(), "python": platform.python_version()},
                                indent=2) + "\n")


if __name__ == "__main__":
    main()
