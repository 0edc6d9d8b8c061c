"""What one wake-up costs on asyncio and on uvloop: why the default loop is slower to wake.

    python bench/bench_loop_wake.py [--reps 5] [--out bench/results/loop_wake.json]

Measures, in this process, alternating the two loops rep by rep:
  * one loop iteration: ``await asyncio.sleep(0)`` in a loop with one fd registered (as a
    port's eventfd is): the task's step, one ``call_soon`` and one ``select(0)``;
  * an eventfd wake-up end to end: a pair round trip where each side sleeps on its queue's
    eventfd (probe -> pair -> reflector -> back, one probe at a time), RTT median;
  * on asyncio only: loop iterations per round trip (``_run_once`` counted), and the cost of
    the syscalls a wake-up makes here (``epoll.poll(0)``, ``os.read`` of an eventfd).
The RTT is (iterations per round trip) x (cost of an iteration) plus the pollers' part: the
loops differ in the second factor only, which is the loop's own code.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.base_events
import json
import os
import select
import statistics
import sys
import time
from pathlib import Path

import uvloop

import aioixy

HERE = Path(__file__).resolve().parent


async def iteration_us(n: int = 20_000) -> float:
    loop = asyncio.get_running_loop()
    r, w = os.pipe()
    loop.add_reader(r, lambda: None)
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(0)
    dt = (time.perf_counter() - t0) / n * 1e6
    loop.remove_reader(r)
    os.close(r)
    os.close(w)
    return dt


async def roundtrip_us(n: int = 2000) -> float:
    name = f"lw{os.getpid()}"
    async with aioixy.open(f"pair:{name}:a") as a, aioixy.open(f"pair:{name}:b") as b:
        async def reflect() -> None:
            async for batch in b.rx():
                await b.tx(batch)

        task = asyncio.create_task(reflect())
        stream = a.rx()
        rtts = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await a.tx(a.alloc(1, size=60))
            batch = await stream.__anext__()
            rtts.append((time.perf_counter_ns() - t0) / 1000)
            batch.release()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return statistics.median(rtts)


def iterations_per_roundtrip(n: int = 1000) -> float:
    counted = [0]
    orig = asyncio.base_events.BaseEventLoop._run_once

    def counting(self):
        counted[0] += 1
        return orig(self)

    asyncio.base_events.BaseEventLoop._run_once = counting
    try:
        asyncio.run(roundtrip_us(n))
    finally:
        asyncio.base_events.BaseEventLoop._run_once = orig
    return counted[0] / n


def syscall_us(n: int = 50_000) -> dict:
    ep = select.epoll()
    efd = os.eventfd(0, os.EFD_NONBLOCK)
    t0 = time.perf_counter()
    for _ in range(n):
        ep.poll(0)
    epoll = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for _ in range(n):
        os.eventfd_write(efd, 1)
        os.read(efd, 8)
    rw = (time.perf_counter() - t0) / n * 1e6
    os.close(efd)
    ep.close()
    return {"epoll_poll0_us": round(epoll, 2), "eventfd_write_read_us": round(rw, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(HERE / "results" / "loop_wake.json"))
    args = ap.parse_args()
    runners = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    raw: dict[str, dict[str, list[float]]] = {k: {"iteration_us": [], "roundtrip_us": []}
                                              for k in runners}
    load_before = [round(x, 2) for x in os.getloadavg()]
    for rep in range(args.reps):
        for name, run in runners.items():
            raw[name]["iteration_us"].append(round(run(iteration_us()), 2))
            raw[name]["roundtrip_us"].append(round(run(roundtrip_us()), 1))
            print(f"rep {rep} {name:<8} iteration {raw[name]['iteration_us'][-1]:6.2f} us  "
                  f"round trip {raw[name]['roundtrip_us'][-1]:7.1f} us", flush=True)
    per_rt = iterations_per_roundtrip()
    sc = syscall_us()
    med = {k: {m: statistics.median(v) for m, v in d.items()} for k, d in raw.items()}
    print(f"\nasyncio: {per_rt:.1f} loop iterations per round trip; syscalls here: {sc}")
    for k, d in med.items():
        print(f"{k:<8} iteration {d['iteration_us']:6.2f} us  round trip {d['roundtrip_us']:7.1f}"
              f" us (medians of {args.reps})")
    ratio = {m: round(med["asyncio"][m] / med["uvloop"][m], 2) for m in med["asyncio"]}
    print(f"asyncio / uvloop: {ratio}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                               "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
                   "reps": args.reps, "median": med, "asyncio_over_uvloop": ratio,
                   "asyncio_iterations_per_roundtrip": round(per_rt, 2), "syscalls": sc,
                   "runs": raw, "command": "python bench/bench_loop_wake.py "
                   + " ".join(sys.argv[1:])}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
