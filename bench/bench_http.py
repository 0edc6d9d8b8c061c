"""What the HTTP control plane costs the packet path it shares an event loop with.

    python bench/bench_http.py [--seconds 1.0] [--reps 5] [--out bench/results/http.json]

Forwarding through Python (null -> rx -> tx -> pair:a ==wire==> pair:b -> rx, counted) with the
control plane served from the same loop, measured with
  * none: no HTTP client;
  * light: what a person watching costs: one dashboard (the /api/events stream, 2 events/s)
    and a Prometheus scrape of /metrics every second;
  * hammer: a client in the same process requesting /api/ports and /metrics back to back as
    fast as it can (the client's own work runs on the same loop too: a worst case).
The modes alternate, rep by rep, so all see the same machine state; each figure is the median
of --reps runs. On asyncio and on uvloop.
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


MODES = ("none", "light", "hammer")


async def forward_rate(seconds: float, mode: str) -> tuple[float, float]:
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

        async def watcher(url: str) -> None:
            nonlocal requests
            async with aiohttp.ClientSession() as s:
                async def scrape() -> None:
                    nonlocal requests
                    while True:
                        async with s.get(url + "/metrics") as r:
                            await r.read()
                        requests += 1
                        await asyncio.sleep(1.0)

                scraper = asyncio.create_task(scrape())
                try:
                    async with s.get(url + "/api/events") as r:
                        async for _ in r.content:
                            pass
                finally:
                    scraper.cancel()

        async with serving(make_app(control)) as url:
            tasks = [asyncio.create_task(forward()), asyncio.create_task(sink())]
            if mode == "hammer":
                tasks.append(asyncio.create_task(client(url)))
            elif mode == "light":
                tasks.append(asyncio.create_task(watcher(url)))
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
        samples: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
        for _ in range(args.reps):
            for mode in MODES:  # side by side within each rep
                samples[mode].append(run(forward_rate(args.seconds, mode)))
        quiet = statistics.median(s[0] for s in samples["none"])
        for mode in MODES:
            pps = [s[0] for s in samples[mode]]
            rps = [s[1] for s in samples[mode]]
            rows.append({"loop": loop_name, "http_load": mode,
                         "vs_quiet": round(statistics.median(pps) / quiet, 3),
                         "mpps": round(statistics.median(pps) / 1e6, 3),
                         "requests_per_s": round(statistics.median(rps)),
                         "mpps_samples": [round(x / 1e6, 3) for x in pps]})
    print(f"{'loop':<8} {'HTTP load':<10} {'Mpps fwd':>9} {'req/s':>7} {'vs none':>8}")
    for r in rows:
        print(f"{r['loop']:<8} {r['http_load']:<10} {r['mpps']:>9.3f} "
              f"{r['requests_per_s']:>7} {r['vs_quiet']:>8.3f}")
    result = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "platform": platform.platform()},
              "what": "null -> Python -> pair:a ==> pair:b -> Python, control plane served "
                      "on the same loop; light: an /api/events stream + /metrics every 1 s; "
                      "hammer: /api/ports and /metrics back to back from the same loop",
              "seconds": args.seconds, "reps": args.reps, "rows": rows}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
