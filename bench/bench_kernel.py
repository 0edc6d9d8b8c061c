"""Kernel-backed ports (xdp:, packet:) against the kernel's own ceiling on the same veth pair.

    sudo .venv/bin/python bench/bench_kernel.py [--seconds 3] [--reps 3] [--batch 64]
                                               [--out bench/results/kernel.json]

Creates a network namespace with one veth pair (va <-> vb, IPv6 off, no addresses), runs every
measurement inside it and removes it afterwards. Per repetition, side by side:

  rx   a C AF_PACKET sendmmsg generator (bench/native/pktloop.c) floods vb with 60-byte frames;
       what reaches va is taken by
         xdp_py     aioixy xdp:va, counted by a Python `async for batch in port.rx()` loop
         xdp_generic_py  the same with options="xdp_mode=generic" (the skb-level XDP hook)
         packet_py  aioixy packet:va, the same loop
         xdp_drop   an XDP_DROP program on va (the kernel's XDP ceiling: va's rx_packets rate)
         c_recvmmsg a plain C AF_PACKET recvmmsg loop on va (the kernel's AF_PACKET ceiling)
       The generator's own rate during each run is recorded as `offered`.
  tx   the sender is on vb; va drops everything with an XDP_DROP program (one cheap sink for all)
         xdp_py     Python: port.alloc(batch) + await port.tx(batch) on xdp:vb
         packet_py  the same on packet:vb
         c_sendmmsg a plain C AF_PACKET sendmmsg loop on vb (the kernel's AF_PACKET ceiling)
Batch = 64 everywhere (port batch_size, recvmmsg/sendmmsg vector). Medians over the reps;
ratios are aioixy over the kernel ceiling of that path. The machine is shared (other jobs run),
so absolute figures move between runs; the ratios come from one run, side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "build" / "bench"
A, B = "va", "vb"


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def build_pktloop() -> Path:
    out = BUILD / "pktloop"
    BUILD.mkdir(parents=True, exist_ok=True)
    src = ROOT / "bench" / "native" / "pktloop.c"
    sh(os.environ.get("CC", "cc"), "-O2", "-Wall", "-Wextra", "-o", str(out), str(src))
    return out


def counter(ifname: str, what: str) -> int:
    return int(Path(f"/sys/class/net/{ifname}/statistics/{what}").read_text())


class Generator:
    """pktloop tx on vb for `seconds`; records the rate it offered while measured."""

    def __init__(self, pktloop: Path, seconds: float, batch: int):
        self.proc = subprocess.Popen([str(pktloop), "tx", B, str(seconds), str(batch)],
                                     stdout=subprocess.PIPE, text=True)

    def window_start(self) -> None:
        self.t0, self.n0 = time.monotonic(), counter(B, "tx_packets")

    def window_end(self) -> float:
        return (counter(B, "tx_packets") - self.n0) / (time.monotonic() - self.t0)

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        self.proc.wait()


# ---- inside the namespace ------------------------------------------------------------------

async def py_rx(device: str, pktloop: Path, seconds: float, batch: int,
                options: str = "") -> tuple[float, float, float]:
    import aioixy

    async with aioixy.open(device, batch_size=batch, options=options) as port:
        count = 0

        async def consume() -> None:
            nonlocal count
            async for b in port.rx():
                count += len(b)
                b.release()
        task = asyncio.create_task(consume())
        gen = Generator(pktloop, seconds + 2, batch)
        try:
            await asyncio.sleep(0.7)
            gen.window_start()
            n0, t0 = count, time.monotonic()
            await asyncio.sleep(seconds)
            n1, t1 = count, time.monotonic()
            offered = gen.window_end()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            gen.stop()
        q = port.queue_stats(0)
        per_batch = q.rx_packets / q.rx_batches if q.rx_batches else 0.0
    return (n1 - n0) / (t1 - t0), offered, per_batch


async def py_tx(device: str, seconds: float, batch: int) -> float:
    import aioixy
    from aioixy.errors import PoolExhausted

    async with aioixy.open(device, batch_size=batch) as port:
        loop = asyncio.get_running_loop()
        marks: dict[str, tuple[float, int]] = {}
        start = loop.time()
        while True:
            now = loop.time()
            if "a" not in marks and now - start > 0.7:
                marks["a"] = (time.monotonic(), port.stats().tx_packets)
            if now - start > 0.7 + seconds:
                marks["b"] = (time.monotonic(), port.stats().tx_packets)
                break
            try:
                pkts = port.alloc(batch, size=60)
            except PoolExhausted:
                await asyncio.sleep(0)
                continue
            await port.tx(pkts)
    (t0, n0), (t1, n1) = marks["a"], marks["b"]
    return (n1 - n0) / (t1 - t0)


def xdp_drop_rx(pktloop: Path, seconds: float, batch: int) -> tuple[float, float]:
    from aioixy.devices.xdp import XDP_DROP, VerdictProgram

    with VerdictProgram(A, XDP_DROP, name="bench_drop"):
        gen = Generator(pktloop, seconds + 2, batch)
        try:
            time.sleep(0.7)
            gen.window_start()
            n0, t0 = counter(A, "rx_packets"), time.monotonic()
            time.sleep(seconds)
            n1, t1 = counter(A, "rx_packets"), time.monotonic()
            offered = gen.window_end()
        finally:
            gen.stop()
    return (n1 - n0) / (t1 - t0), offered


def c_loop(pktloop: Path, mode: str, seconds: float, batch: int) -> tuple[float, float]:
    gen = Generator(pktloop, seconds + 2, batch) if mode == "rx" else None
    try:
        if gen:
            time.sleep(0.7)
            gen.window_start()
        r = subprocess.run([str(pktloop), mode, A if mode == "rx" else B, str(seconds), str(batch)],
                           check=True, capture_output=True, text=True)
        offered = gen.window_end() if gen else 0.0
    finally:
        if gen:
            gen.stop()
    return json.loads(r.stdout)["mpps"] * 1e6, offered


def available(device: str) -> str | None:
    """None if aioixy can open `device` here, else why not."""
    import aioixy

    async def probe() -> None:
        async with aioixy.open(device):
            pass
    try:
        asyncio.run(probe())
    except aioixy.AioixyError as exc:
        return str(exc)
    return None


def inside(args: argparse.Namespace) -> None:
    pktloop = Path(args.pktloop)
    from aioixy.devices.xdp import XDP_DROP, VerdictProgram

    missing = {d: available(f"{d}:{A}") for d in ("xdp", "packet")}
    samples: dict[str, list[float]] = {}
    offered: dict[str, list[float]] = {}
    per_batch: dict[str, list[float]] = {}  # frames per poller rx batch (device -> ring)

    def add(key: str, value: float, off: float | None = None) -> None:
        samples.setdefault(key, []).append(value)
        if off is not None:
            offered.setdefault(key, []).append(off)

    for rep in range(args.reps):
        # xdp_generic: the same AF_XDP socket behind the kernel's generic (skb) XDP hook
        for key, kind, opts in (("xdp", "xdp", ""), ("xdp_generic", "xdp", "xdp_mode=generic"),
                                ("packet", "packet", "")):
            if missing[kind] is None:
                r, off, per = asyncio.run(py_rx(f"{kind}:{A}", pktloop, args.seconds, args.batch,
                                                opts))
                add(f"rx.{key}_py", r, off)
                per_batch.setdefault(f"rx.{key}_py", []).append(per)
        r, off = xdp_drop_rx(pktloop, args.seconds, args.batch)
        add("rx.xdp_drop", r, off)
        r, off = c_loop(pktloop, "rx", args.seconds, args.batch)
        add("rx.c_recvmmsg", r, off)
        with VerdictProgram(A, XDP_DROP, name="bench_sink"):
            for kind in ("xdp", "packet"):
                if missing[kind] is None:
                    rate = asyncio.run(py_tx(f"{kind}:{B}", args.seconds, args.batch))
                    add(f"tx.{kind}_py", rate)
            add("tx.c_sendmmsg", c_loop(pktloop, "tx", args.seconds, args.batch)[0])
        print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
    print(json.dumps({"samples": samples, "offered": offered, "per_batch": per_batch,
                      "missing": {k: v for k, v in missing.items() if v}}))


# ---- outside: namespace, table, JSON -------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "kernel.json"))
    ap.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pktloop", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inside:
        inside(args)
        return
    if os.geteuid() != 0:
        sys.exit("bench_kernel.py needs root (network namespace, veth, BPF, AF_XDP)")
    pktloop = build_pktloop()
    ns = f"axbench{os.getpid()}"
    sh("ip", "netns", "add", ns)
    try:
        sh("ip", "-n", ns, "link", "add", A, "type", "veth", "peer", "name", B)
        for i in (A, B):
            sh("ip", "netns", "exec", ns, "sh", "-c",
               f"echo 1 > /proc/sys/net/ipv6/conf/{i}/disable_ipv6")
            sh("ip", "-n", ns, "link", "set", i, "up")
        load_before = os.getloadavg()
        r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
                            "--pktloop", str(pktloop), "--seconds", str(args.seconds),
                            "--reps", str(args.reps), "--batch", str(args.batch)],
                           stdout=subprocess.PIPE, text=True, check=True)
        load_after = os.getloadavg()
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    data = json.loads(r.stdout.strip().splitlines()[-1])
    med = {k: statistics.median(v) for k, v in data["samples"].items()}
    off = {k: statistics.median(v) for k, v in data["offered"].items()}

    def ratio(a: str, b: str) -> float | None:
        return round(med[a] / med[b], 3) if a in med and med.get(b) else None

    ratios = {
        "rx.xdp_py/xdp_drop": ratio("rx.xdp_py", "rx.xdp_drop"),
        "rx.xdp_py/c_recvmmsg": ratio("rx.xdp_py", "rx.c_recvmmsg"),
        "rx.xdp_generic_py/xdp_drop": ratio("rx.xdp_generic_py", "rx.xdp_drop"),
        "rx.packet_py/c_recvmmsg": ratio("rx.packet_py", "rx.c_recvmmsg"),
        "tx.xdp_py/c_sendmmsg": ratio("tx.xdp_py", "tx.c_sendmmsg"),
        "tx.packet_py/c_sendmmsg": ratio("tx.packet_py", "tx.c_sendmmsg"),
    }
    print(f"{'path':<16} {'Mpps (median)':>14} {'offered Mpps':>13}  samples")
    for k in sorted(med):
        o = f"{off[k] / 1e6:13.3f}" if k in off else " " * 13
        s = ", ".join(f"{v / 1e6:.3f}" for v in data["samples"][k])
        print(f"{k:<16} {med[k] / 1e6:14.3f} {o}  {s}")
    for k, v in ratios.items():
        print(f"{k:<26} {v}")
    for k, v in data["per_batch"].items():
        print(f"{k}: {statistics.median(v):.1f} frames per poller rx batch")
    for k, why in data["missing"].items():
        print(f"not measured: {k}: {why}")
    result = {
        "seconds": args.seconds, "reps": args.reps, "batch": args.batch,
        "kernel": platform.release(), "cpus": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "note": "shared 2-core machine with other jobs running; compare ratios, not absolutes",
        "mpps_median": {k: round(v / 1e6, 4) for k, v in med.items()},
        "offered_mpps_median": {k: round(v / 1e6, 4) for k, v in off.items()},
        "frames_per_rx_batch_median": {k: round(statistics.median(v), 1)
                                       for k, v in data["per_batch"].items()},
        "samples_pps": data["samples"], "ratios": ratios, "missing": data["missing"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
