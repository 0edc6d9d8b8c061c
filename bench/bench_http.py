"""What the HTTP control plane costs the packet path it shares an event loop with.

    python bench/bench_http.py [--seconds 1.0] [--reps 5] [--out bench/results/http.json]

Forwarding through Python (null -> rx -> tx -> pair:a ==wire==> pair:b -> rx, counted) with the
control plane served from the same loop, measured (a) with no HTTP client and (b) with a client
in the same process requesting /api/ports and /metrics back to back as fast as it can. Quiet
and loaded runs alternate, rep by rep, so both see the same machine state; each figure is the
median of --reps runs. On asyncio and on uvloop.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import statistics
import time

import aiohttp
import uvloop

import aioixy
from aioixy.control import ControlPlane, make_app, serving

_ids = itertools.count()


async def forward_rate(seconds: float, hammer: bool) -> tuple[float, float]:
    """(packets/s received at the end of the forwarding path, HTTP requests/s served)."""
    n = f"bh{next(_ids)}"
    async with aioixy.open("null", overflow="pause") as src, \
            aioixy.open(f"pair:{n}:a", flow_control=True) as a, \
            aioixy.open(f"pair:{n}:b", overflow="pause") as b:
        control = ControlPlane()
        for p in (src, a, b):
            control.add_port(p)
        received = requests = 0

        async def forward() -> None:
            async for batch in src.rx():
                await a.tx(batch)

        async def sink() -> None:
            nonlocal received
            async for batch in b.rx():
                received += len(batch)
                batch.release()

        async def client(url: str) -> None:
            nonlocal requests
            async with aiohttp.ClientSession() as s:
                while True:
                    for path in ("/api/ports", "/metrics"):
                        async with s.get(url + path) as r:
                            await r.read()
                            assert r.status == 200
                        requests += 1

        async with serving(make_app(control)) as url:
            tasks = [asyncio.create_task(forward()), asyncio.create_task(sink())]
            if hammer:
                tasks.append(asyncio.create_task(client(url)))
            await asyncio.sleep(0.2)  # warm-up: rings filled, connection open
            r0, q0, t0 = received, requests, time.perf_counter()
            await asyncio.sleep(seconds)
            dt = time.perf_counter() - t0
            rate, rps = (received - r0) / dt, (requests - q0) / dt
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            tasks.clear()
    return rate, rps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default="bench/results/http.json")
    args = ap.parse_args()
    rows = []
    for loop_name, run in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
        samples: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.reps):
            for hammer in (False, True):  # side by side within each rep
                samples[hammer].append(run(forward_rate(args.seconds, hammer)))
        for hammer in (False, True):
            pps = [s[0] for s in samples[hammer]]
            rps = [s[1] for s in samples[hammer]]
            rows.append({"loop": loop_name, "http_load": hammer,
                         "mpps": round(statistics.median(pps) / 1e6, 3),
                         "requests_per_s": round(statistics.median(rps)),
                         "mpps_samples": [round(x / 1e6, 3) for x in pps]})
    print(f"{'loop':<8} {'HTTP client':<12} {'Mpps fwd':>9} {'req/s':>7} {'vs quiet':>9}")
    for quiet, loaded in zip(rows[::2], rows[1::2], strict=True):
        loaded["vs_quiet"] = round(loaded["mpps"] / quiet["mpps"], 3) if quiet["mpps"] else None
        for r in (quiet, loaded):
            ratio = f"{r['vs_quiet']:.3f}" if r.get("vs_quiet") else "1"
            print(f"{r['loop']:<8} {'hammering' if r['http_load'] else 'none':<12} "
                  f"{r['mpps']:>9.3f} {r['requests_per_s']:>7} {ratio:>9}")
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "what": "null -> Python -> pair:a ==> pair:b -> Python, control plane served "
                      "on the same loop; client requesting /api/ports and /metrics in turn",
              "seconds": args.seconds, "reps": args.reps, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
