"""``--workers N``: a job (pktgen, fwd, dump) run by N worker processes (aioixy.serve) and one
summary for all of them.

Each worker runs the command's ordinary job on its own ports: ``packet:`` interfaces are shared
through the supervisor's fanout group, ``--count`` is split between the workers, and ``dump``
writes a file per worker (``FILE`` with ``.wN`` before its extension). This module does not
import the command's module (that one imports this): the job runner comes in as an argument,
picked by reference so that a spawned worker finds it.
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aioixy
from aioixy.core.workers import ServeSummary, Supervisor

RunJob = Callable[[argparse.Namespace], Awaitable[dict]]


def worker_path(path: str, index: int) -> str:
    """``cap.pcap`` -> ``cap.w0.pcap``: each worker's own file."""
    root, ext = os.path.splitext(path)
    return f"{root}.w{index}{ext}"


def _share(total: int | None, n: int, index: int) -> int | None:
    if total is None:
        return None
    return total // n + (1 if index < total % n else 0)


async def _worker_job(run_job: RunJob, args: argparse.Namespace, worker: aioixy.Worker) -> dict:
    a = copy.copy(args)
    a.worker = worker
    a.json = True  # the supervisor prints; a worker has no status line
    a.http = None
    if getattr(a, "count", None) is not None:
        a.count = _share(a.count, a.workers, worker.index)
    if getattr(a, "rate", None):
        a.rate = a.rate / a.workers
    if getattr(a, "write", None):
        a.write = worker_path(a.write, worker.index)
    return await run_job(a)


def _sum_ports(results: list[dict]) -> dict[str, dict[str, int]]:
    ports: dict[str, dict[str, int]] = {}
    for r in results:
        for name, counters in r.get("ports", {}).items():
            mine = ports.setdefault(name, {})
            for k, v in counters.items():
                mine[k] = mine.get(k, 0) + v
    return ports


def combine(cmd: str, s: ServeSummary) -> dict:
    """One summary in the shape of a single job's, summed over the workers, plus ``workers``."""
    results = [w.result for w in s.workers if isinstance(w.result, dict)]
    dead = [{"task": f"worker {w.index}", "error": w.error or f"exit code {w.exitcode}"}
            for w in s.workers if not isinstance(w.result, dict)]
    for w in s.workers:
        if isinstance(w.result, dict):
            dead += [{**d, "task": f"worker {w.index}: {d['task']}"} for d in w.result["dead"]]
    out: dict[str, Any] = {
        "job": cmd,
        "seconds": max((r["seconds"] for r in results), default=s.seconds),
        "packets": sum(r["packets"] for r in results),
        "bytes": sum(r["bytes"] for r in results),
        "pps": sum(r["pps"] for r in results),
        "bps": sum(r["bps"] for r in results),
        "ports": _sum_ports(results),
        "dead": dead,
        "pools_whole": all(r["pools_whole"] for r in results),
        "restarts": s.restarts,
        "workers": [{"index": w.index, "pid": w.pid, "restarts": w.restarts,
                     "exitcode": w.exitcode,
                     **({k: w.result[k] for k in ("packets", "pps", "pools_whole")}
                        if isinstance(w.result, dict) else {})}
                    for w in s.workers],
    }
    if any("writer_dropped" in r for r in results):
        out["writer_dropped"] = sum(r.get("writer_dropped", 0) for r in results)
    if any("files" in r for r in results):
        out["files"] = [f for r in results for f in r.get("files", [])]
    return out


def devices_of(args: argparse.Namespace) -> tuple[str, ...]:
    return (args.device_a, args.device_b) if args.cmd == "fwd" else (args.device,)


def run(args: argparse.Namespace, run_job: RunJob) -> dict:
    """Runs the workers until they end or SIGINT/SIGTERM; ``--http``: their summed counters on
    a read-only ``GET /metrics`` (the supervisor's, with a ``worker`` label per worker)."""
    sup = Supervisor(functools.partial(_worker_job, run_job, args), devices_of(args),
                     workers=args.workers, open_ports=False, uvloop=args.uvloop,
                     options=args.options)
    shutdown = None
    if args.http:
        from aioixy.control.metrics import serve_worker_metrics

        shutdown = serve_worker_metrics(*args.http, lambda: sup.states)
    try:
        return combine(args.cmd, sup.run())
    finally:
        if shutdown:
            shutdown()
