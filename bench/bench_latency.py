"""Latency at low load, what an idle port costs, and the rates beside them, for two builds.

    python bench/bench_latency.py [--reps 5] [--seconds 2] [--base PYTHON] [--out FILE]

Each measurement runs in a fresh child process (one per build, loop and rep, interleaved rep by
rep so that a change in the machine's load hits both builds alike):
  * latency: probes at 10 kpps offered (--rate; RateLimiter: when the loop's 1 ms timers fall
    behind it sends the probes due in one batch) on pair:a, bounced off a reflector on pair:b
    that swaps MACs per batch, RTT = now - stamp; p50/p99 over one run, median over the reps;
    on asyncio and on uvloop, default idle policy (no busy polling);
  * idle: a pair (both ends) and a tx-only null port open and idle; the CPU time of every
    aioixy poller thread (/proc/self/task/*/schedstat, ns on CPU) over --seconds, as % of one
    core per open port;
  * rates: batch-level (null -> coroutine releasing batches, native batch 64) and forwarding
    through Python (null -> rx -> tx -> pair:a ==> pair:b -> counted) from bench_core, and the
    MAC-swap and 100-rule firewall forwarders (batch operations) from bench_batchops, default
    loop.
--base names the Python of another build (e.g. a venv of the commit before) to compare with;
without it only this build runs. Writes bench/results/latency.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAMP = 50  # after the test frame's sequence number (bytes 42..49)


def _poller_cpu_ns() -> int:
    """Nanoseconds on CPU of this process's aioixy poller threads, so far."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if not f.read().startswith("aioixy-"):
                    continue
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue
    return total


async def latency(rate: float, seconds: float) -> dict:
    import aioixy
    from aioixy.jobs import RateLimiter
    from aioixy.testing import make_frame

    name = f"lat{os.getpid()}"
    async with aioixy.open(f"pair:{name}:a") as a, aioixy.open(f"pair:{name}:b") as b:
        rtts: list[float] = []

        async def reflect() -> None:
            async for batch in b.rx():
                batch.swap_macs()
                await b.tx(batch)

        async def collect() -> None:
            async for batch in a.rx():
                now = time.perf_counter_ns()
                rtts.extend((now - int(s)) / 1000 for s in batch.field_at(STAMP, 8))
                batch.release()

        tasks = [asyncio.create_task(reflect()), asyncio.create_task(collect())]
        limiter = RateLimiter(rate, 1)
        template = make_frame(0, 64)
        sent = 0
        cpu0 = _poller_cpu_ns()
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n = await limiter.allow(1)
            batch = a.alloc(n, size=0)
            for pkt in batch:
                pkt.write(template)
                pkt.write(time.perf_counter_ns().to_bytes(8, "big"), STAMP)
            await a.tx(batch)
            sent += n
        elapsed = time.perf_counter() - t0
        cpu = _poller_cpu_ns() - cpu0
        await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rtts.sort()
        return {"sent": sent, "received": len(rtts), "offered_pps": round(sent / elapsed),
                "p50_us": round(rtts[len(rtts) // 2], 1),
                "p99_us": round(rtts[int(len(rtts) * 0.99)], 1),
                "poller_cpu_pct": round(100 * cpu / 1e9 / elapsed, 1)}


async def idle(seconds: float) -> dict:
    import aioixy

    name = f"idle{os.getpid()}"
    async with aioixy.open(f"pair:{name}:a"), aioixy.open(f"pair:{name}:b"), \
            aioixy.open("null", rx=False):
        await asyncio.sleep(0.5)  # past the spin phase
        cpu0, t0 = _poller_cpu_ns(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, elapsed = _poller_cpu_ns() - cpu0, time.perf_counter() - t0
    return {"ports": 3, "pct_core_per_port": round(100 * cpu / 1e9 / elapsed / 3, 3)}


async def rates(seconds: float) -> dict:
    sys.path.insert(0, str(HERE))
    import bench_batchops
    import bench_core

    return {
        "batch_level_mpps": round(await bench_core.null_rate(64, False, seconds) / 1e6, 3),
        "forward_mpps": round(await bench_core.forward_rate(seconds) / 1e6, 3),
        "macswap_mpps": round(await bench_batchops.forward("macswap-batchops", seconds) / 1e6, 3),
        "firewall_mpps": round(await bench_batchops.forward("firewall-batchops", seconds) / 1e6,
                               3),
    }


def child(what: str, loop: str, seconds: float, rate: float) -> None:
    import aioixy  # noqa: F401  (the build under test: whatever this interpreter imports)

    coro = {"latency": lambda: latency(rate, seconds), "idle": lambda: idle(seconds),
            "rates": lambda: rates(min(seconds, 0.5))}[what]()
    if loop == "uvloop":
        import uvloop

        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    print(json.dumps(result))


def run_child(python: str, what: str, loop: str, seconds: float, rate: float) -> dict:
    out = subprocess.run([python, __file__, "--child", what, "--loop", loop,
                          "--seconds", str(seconds), "--rate", str(rate)],
                         capture_output=True, text=True, timeout=300, check=False)
    if out.returncode:
        return {"error": out.stderr.strip().splitlines()[-1:] or ["exit " + str(out.returncode)]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--base", help="the Python of the build to compare with")
    ap.add_argument("--rate", type=float, default=10_000, help="probes per second offered")
    ap.add_argument("--out", default=str(HERE / "results" / "latency.json"))
    ap.add_argument("--child", choices=("latency", "idle", "rates"), help=argparse.SUPPRESS)
    ap.add_argument("--loop", default="asyncio", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.loop, args.seconds, args.rate)
        return
    builds = {"this": sys.executable, **({"base": args.base} if args.base else {})}
    tests = [("latency", "asyncio"), ("latency", "uvloop"), ("idle", "asyncio"),
             ("rates", "asyncio")]
    load_before = [round(x, 2) for x in os.getloadavg()]
    raw: dict[str, list[dict]] = {}
    for rep in range(args.reps):
        for what, loop in tests:
            for build, python in builds.items():
                r = run_child(python, what, loop, args.seconds, args.rate)
                raw.setdefault(f"{build}/{what}/{loop}", []).append(r)
                print(f"rep {rep} {build:<5} {what:<8} {loop:<8} {r}", flush=True)
    summary = {}
    for key, runs in raw.items():
        ok = [r for r in runs if "error" not in r]
        fields = sorted({k for r in ok for k, v in r.items() if isinstance(v, int | float)})
        summary[key] = {k: statistics.median(r[k] for r in ok) for k in fields}
        summary[key]["runs_ok"] = len(ok)
    print()
    for key, row in summary.items():
        print(f"{key:<24} " + "  ".join(f"{k}={v}" for k, v in row.items()))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                               "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                               "python": platform.python_version()},
                   "reps": args.reps, "seconds": args.seconds, "rate_pps": args.rate,
                   "builds": builds,
                   "median": summary, "runs": raw,
                   "command": "python bench/bench_latency.py " + " ".join(sys.argv[1:])},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
