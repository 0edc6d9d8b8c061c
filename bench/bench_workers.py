"""Worker processes: a Python network function's receive rate with 1 and 2 workers
(aioixy.serve) on a 2-queue veth, side by side in one run.

    sudo .venv/bin/python bench/bench_workers.py [--seconds 3] [--reps 5]
                                                [--out bench/results/workers.json]

Creates a network namespace with a veth pair (va <-> vb, numrxqueues/numtxqueues 2), runs
everything inside it and removes it afterwards. `aioixy pktgen packet:vb --flows 256` floods va;
`aioixy.serve(nf, "packet:va", workers=N)` receives, N = 1 and 2 alternating, `--reps` times
each. The network function does per-packet Python work (reads each frame's UDP destination port),
so one process is bound by the interpreter; each worker counts the frames it handled over
`--seconds` after a warm-up, and the rate is the sum over the workers. The generator's own rate
is recorded (a loaded 2-core machine runs the generator, the kernel's AF_PACKET work and the
workers on the same cores, so the ratio here is a floor; see docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aioixy

ROOT = Path(__file__).resolve().parents[1]
NS = f"axwb{os.getpid()}"
A, B = "va", "vb"


def sh(*args: str, check: bool = True) -> None:
    subprocess.run(args, check=check, capture_output=True)


async def nf(w: aioixy.Worker, seconds: float, warmup: float) -> dict:
    n = 0
    t0 = None
    async for batch in w.port.rx():
        with batch:
            now = time.monotonic()
            if t0 is None:
                t0 = now + warmup
            if now >= t0:
                for p in batch:  # per-packet Python: what makes one process the bottleneck
                    d = p.data
                    n += d[36] >= 0
            if now >= t0 + seconds:
                return {"frames": n, "seconds": now - t0}
    return {"frames": n, "seconds": 0.0}


def counter(ifname: str, what: str) -> int:
    return int(Path(f"/sys/class/net/{ifname}/statistics/{what}").read_text())


def measure(workers: int, seconds: float) -> dict:
    import functools

    gen = subprocess.Popen([sys.executable, "-m", "aioixy", "pktgen", f"packet:{B}", "--flows",
                            "256", "--duration", str(seconds + 30), "--json", "--force"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        tx0, t0 = counter(B, "tx_packets"), time.monotonic()
        s = aioixy.serve(functools.partial(nf, seconds=seconds, warmup=1.0), f"packet:{A}",
                         workers=workers, force=True, restart=False)
        offered = (counter(B, "tx_packets") - tx0) / (time.monotonic() - t0)
    finally:
        gen.terminate()
        gen.wait()
    rates = [r["frames"] / r["seconds"] for r in s.results if r and r["seconds"]]
    return {"workers": workers, "pps": round(sum(rates)), "per_worker": [round(r) for r in rates],
            "offered_pps": round(offered)}


def inner(args: argparse.Namespace) -> dict:
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for rep in range(args.reps):
        for n in (1, 2):
            r = measure(n, args.seconds)
            runs[n].append(r)
            print(f"rep {rep}: {n} worker(s): {r['pps']:,} pps {r['per_worker']} "
                  f"(offered {r['offered_pps']:,})", flush=True)
    med = {str(n): statistics.median(r["pps"] for r in rs) for n, rs in runs.items()}
    ratios = [b["pps"] / a["pps"] for a, b in zip(runs[1], runs[2], strict=True) if a["pps"]]
    return {"runs": {str(n): rs for n, rs in runs.items()}, "median_pps": med,
            "ratio_2_over_1_median": round(med["2"] / med["1"], 3),
            "ratio_2_over_1_per_rep": [round(x, 3) for x in ratios]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "workers.json"))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        print(json.dumps(inner(args)))
        return
    sh("ip", "netns", "add", NS)
    try:
        sh("ip", "-n", NS, "link", "add", A, "numrxqueues", "2", "numtxqueues", "2", "type",
           "veth", "peer", "name", B, "numrxqueues", "2", "numtxqueues", "2")
        for i in (A, B):
            sh("ip", "netns", "exec", NS, "sysctl", "-q", f"net.ipv6.conf.{i}.disable_ipv6=1")
            sh("ip", "-n", NS, "link", "set", i, "up")
        proc = subprocess.run(["ip", "netns", "exec", NS, sys.executable, __file__, "--inner",
                               "--seconds", str(args.seconds), "--reps", str(args.reps)],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT, check=True)
    finally:
        sh("ip", "netns", "del", NS, check=False)
    lines = proc.stdout.strip().splitlines()
    print("\n".join(lines[:-1]))
    result = json.loads(lines[-1])
    result.update(machine=platform.node(), cpus=os.cpu_count(),
                  loadavg=os.getloadavg(), seconds=args.seconds, reps=args.reps,
                  note="loaded shared 2-core machine; generator, kernel and workers share cores")
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"median: 1 worker {result['median_pps']['1']:,.0f} pps, 2 workers "
          f"{result['median_pps']['2']:,.0f} pps, ratio {result['ratio_2_over_1_median']}")


if __name__ == "__main__":
    main()
