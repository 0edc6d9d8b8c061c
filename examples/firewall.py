"""L3/L4 firewall between two ports, its rules managed over HTTP while traffic flows.

    python examples/firewall.py [--inside DEV --outside DEV] [--http HOST:PORT]
                                [--duration S] [--rate PPS] [--json]

Rules (first match wins, default allow) match source/destination IPv4 prefix, protocol and
destination port; see aioixy.ops.rules. Manage them with the control plane, whose
token is printed at start (or chosen with $AIOIXY_HTTP_TOKEN):

    curl -X POST localhost:8080/api/firewall/rules -H "Authorization: Bearer $TOKEN" \\
         -H 'Content-Type: application/json' \\
         -d '{"action": "deny", "src": "10.0.0.0/24", "proto": "udp", "dport": 53}'
    curl localhost:8080/api/firewall/rules          # with hit counts
    curl -X DELETE localhost:8080/api/firewall/rules/1 -H "Authorization: Bearer $TOKEN"

Without devices it runs a lab on the built-in pairs: a generator sends two UDP flows (10.0.0.7
-> 10.9.0.1 port 53 and 10.1.0.9 -> 10.9.0.1 port 5678) into the firewall's inside port; a sink
behind the outside port counts what passes per destination port and prints it every 0.25 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import signal
import struct
import sys
import time

import aioixy
from aioixy.control import (
    TOKEN_ENV,
    ControlPlane,
    RuleSet,
    make_app,
    parse_hostport,
    serving,
    token_of,
    token_url,
)
from aioixy.jobs import RateLimiter

LOSSLESS = {"flow_control": True, "overflow": "pause", "batch_size": 32}
#: the lab's four pair ends, in the order the generator's buffers cross them (zero-copy: a
#: frame stays in the generator's pool until the sink or the firewall releases it)
LAB_PATH = ("pair:fw-in:a", "pair:fw-in:b", "pair:fw-out:a", "pair:fw-out:b")
FLOWS = [((10, 0, 0, 7), 53), ((10, 1, 0, 9), 5678)]  # (source address, UDP destination port)


async def filter_forward(src: aioixy.Port, dst: aioixy.Port, rules: RuleSet) -> None:
    """The network function: judge the whole batch in one native call (the rules compiled once,
    again only when the control plane changes them), send the allowed, release the rest."""
    async for batch in src.rx():
        allowed, denied = aioixy.Filter.of(rules).split(batch)  # hits count into `rules`
        denied.release()  # the denied ones go back to the pool
        with allowed:  # if cancelled mid-send, what was not sent goes back too
            if len(allowed):
                await dst.tx(allowed)


def udp_frame(src_ip: tuple[int, ...], dport: int, seq: int) -> bytes:
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, seq & 0xFFFF, 0, 64, 17, 0,
                     bytes(src_ip), bytes((10, 9, 0, 1)))
    udp = struct.pack("!HHHH", 40000, dport, 26, 0) + seq.to_bytes(8, "big") + bytes(10)
    return b"\xff" * 6 + b"\x02\0\0\0\0\x07" + b"\x08\x00" + ip + udp


async def generate(port: aioixy.Port, rate: float) -> None:
    limiter = RateLimiter(rate, 16)
    seq = 0
    while True:
        n = await limiter.allow(16)
        batch = port.alloc(n, size=0)
        for pkt in batch:
            src, dport = FLOWS[seq % len(FLOWS)]
            pkt.write(udp_frame(src, dport, seq))
            seq += 1
        await port.tx(batch)


async def sink(port: aioixy.Port, passed: dict[str, int]) -> None:
    async for batch in port.rx():
        with batch:
            for pkt in batch:
                dport = str(struct.unpack_from("!H", pkt.data, 36)[0])
                passed[dport] = passed.get(dport, 0) + 1


async def run(args: argparse.Namespace) -> dict:
    rules = RuleSet()
    control = ControlPlane(firewall=rules)
    passed: dict[str, int] = {}
    tasks: list[asyncio.Task] = []
    async with contextlib.AsyncExitStack() as stack:
        async def port(dev: str, **kw) -> aioixy.Port:
            p = await stack.enter_async_context(aioixy.open(dev, **kw))
            control.add_port(p)
            return p

        lab = not args.inside
        inside = await port(args.inside or "pair:fw-in:b", **(LOSSLESS if lab else {}))
        outside = await port(args.outside or "pair:fw-out:a", **(LOSSLESS if lab else {}))
        tasks += [asyncio.create_task(filter_forward(inside, outside, rules),
                                      name=f"filter {inside.name} -> {outside.name}"),
                  asyncio.create_task(filter_forward(outside, inside, rules),
                                      name=f"filter {outside.name} -> {inside.name}")]
        if lab:
            # the generator's pool must outlast every ring on the path full at once (a slow
            # firewall, hundreds of rules, fills them): then back-pressure stops it, never
            # PoolExhausted
            pool = args.pool_size or aioixy.path_pool_size(
                *(aioixy.PortConfig(d, **LOSSLESS) for d in LAB_PATH))
            gen = await port(LAB_PATH[0], pool_size=pool, **LOSSLESS)
            tasks.append(asyncio.create_task(generate(gen, args.rate), name="generator"))
            tasks.append(asyncio.create_task(sink(await port(LAB_PATH[3], **LOSSLESS), passed),
                                             name="sink"))
        app = make_app(control, token=os.environ.get(TOKEN_ENV) or None)
        url = await stack.enter_async_context(serving(app, *args.http))
        print(f"control plane: {token_url(url, token_of(app))}", flush=True)
        # Ctrl-C or SIGTERM ends the run cleanly (ports closed, summary printed)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.duration and not stop.is_set():
            await asyncio.sleep(0.25)
            if any(t.done() for t in tasks):  # a task ended (it can only fail): stop, report
                break
            elapsed = time.monotonic() - t0
            line = {"t": round(elapsed, 2), "passed": dict(passed), "rules": len(rules)}
            if args.json:
                print(json.dumps(line), flush=True)
            elif lab:
                print(f"[{elapsed:5.1f}s] passed {passed}, {len(rules)} rules", flush=True)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        # a task that died is reported, never a summary that says all is fine
        dead = [{"task": t.get_name(), "error": f"{type(r).__name__}: {r}"}
                for t, r in zip(tasks, results, strict=True)
                if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        del results
        tasks.clear()  # cancelled tasks' tracebacks hold their last batch
    gc.collect()
    return {"final": True, "passed": passed, "rules": rules.to_json(), "dead": dead,
            "pools_whole": aioixy.native_pools_alive() == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inside", help="inside device (default: the built-in lab)")
    ap.add_argument("--outside", help="outside device")
    ap.add_argument("--http", type=parse_hostport, default=("127.0.0.1", 8080),
                    metavar="HOST:PORT", help="control plane address (default 127.0.0.1:8080)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=4000, help="lab traffic, packets/s")
    ap.add_argument("--pool-size", type=int, metavar="N",
                    help="the lab generator's pool (default: sized from the rings on its path)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    if bool(args.inside) != bool(args.outside):
        ap.error("give both --inside and --outside, or neither for the lab")
    summary = aioixy.run(run(args), uvloop=args.uvloop)
    print(json.dumps(summary), flush=True)
    for d in summary["dead"]:
        print(f"firewall: {d['task']} died: {d['error']}", file=sys.stderr, flush=True)
    # as the aioixy command: 1 buffers leaked, 4 a task died
    return 1 if not summary["pools_whole"] else 4 if summary["dead"] else 0


if __name__ == "__main__":
    sys.exit(main())
