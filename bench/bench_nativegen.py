"""pktgen and dump at native speed (issue 23): the per-packet Python paths they replaced against
the native batch paths, side by side in one run.

    .venv/bin/python bench/bench_nativegen.py [--seconds 2] [--reps 5] [--no-xdp]
                                              [--out bench/results/nativegen.json]

Per repetition, interleaved:
  pktgen on null (rx off):
    gen_python   the old job: per packet set_seq() + bytes() of a template, send_frames copies each
    gen_native   jobs.pktgen: aioixy.Generator fills 256 packets per native call, port.tx
    gen_cli      `aioixy pktgen null --duration S --json` (a process, as a user runs it)
  dump from null (the CLI's default overflow="drop") to a file on tmpfs (/dev/shm):
    dump_python  the old job: PcapWriter.write_many of each batch's memoryviews
    dump_pcap    jobs.dump with the native CaptureWriter, pcap
    dump_pcapng  the same, pcapng
    dump_cli     `aioixy dump null -w /dev/shm/... --duration S --json`
  xdp: tx on a veth pair in its own network namespace (root; --no-xdp skips it):
    xdp_bench_py bench_kernel.py's Python tx loop (port.alloc(64) + await port.tx), its figure
    xdp_cli      `aioixy pktgen xdp:vb --duration S --json`, the device's tx counter
  fill_ns_60/1514  CPU ns per packet of Generator.fill alone (16 flows, UDP checksum)
Rates in Mpps (median over reps); for the in-process ones also packets per CPU-second of the
whole process (poller threads included), which the machine's load disturbs less than wall time.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import aioixy  # noqa: E402
from aioixy import jobs  # noqa: E402
from aioixy.core.frames import make_frame, set_seq  # noqa: E402
from aioixy.jobs.capfile import CaptureWriter  # noqa: E402
from aioixy.jobs.pcap import PcapWriter  # noqa: E402
from aioixy.jobs.send import send_frames  # noqa: E402

SHM = Path("/dev/shm")


async def _timed(port, body, seconds: float) -> tuple[float, float]:
    """Run body(job) for `seconds` after a 0.3 s warm-up; (packets/s, packets per CPU-s)."""
    job = jobs.Job("bench")
    task = asyncio.create_task(body(job))
    await asyncio.sleep(0.3)
    n0, t0, c0 = job.packets, time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    n1, t1, c1 = job.packets, time.perf_counter(), time.process_time()
    job.stop.set()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return (n1 - n0) / (t1 - t0), (n1 - n0) / max(c1 - c0, 1e-9)


async def gen_python(seconds: float) -> tuple[float, float]:
    async with aioixy.open("null", rx=False) as port:
        async def body(job):
            template = bytearray(make_frame(0, 60))
            seq = 0
            while True:
                frames = []
                for s in range(seq, seq + 64):
                    set_seq(template, s)
                    frames.append(bytes(template))
                await send_frames(port, frames)
                seq += 64
                job.packets += 64
        return await _timed(port, body, seconds)


async def gen_native(seconds: float) -> tuple[float, float]:
    async with aioixy.open("null", rx=False) as port:
        return await _timed(port, lambda job: jobs.pktgen(port, job), seconds)


async def dump_python(seconds: float) -> tuple[float, float]:
    path = SHM / f"bench-ng-{os.getpid()}.pcap"
    try:
        with open(path, "wb", buffering=0) as f:
            w = PcapWriter(f)
            async with aioixy.open("null") as port:
                async def body(job):
                    async for batch in port.rx():
                        with batch:
                            pkts = list(batch)
                            w.write_many([p.data for p in pkts], time.time())
                            job.packets += len(pkts)
                            del pkts
                return await _timed(port, body, seconds)
    finally:
        path.unlink(missing_ok=True)


async def dump_native(seconds: float, fmt: str) -> tuple[float, float]:
    path = SHM / f"bench-ng-{os.getpid()}.{fmt}"
    try:
        with CaptureWriter(str(path), fmt) as w:
            async with aioixy.open("null") as port:
                return await _timed(port, lambda job: jobs.dump(port, job, w), seconds)
    finally:
        path.unlink(missing_ok=True)


async def fill_ns(size: int, rounds: int = 2000) -> float:
    """CPU ns per packet of Generator.fill alone (copy of the template + patches + checksums)."""
    async with aioixy.open("null", rx=False) as port:
        gen = aioixy.Generator(port, size=size, flows=16)
        with port.alloc(256, size=0) as b:
            c0 = time.thread_time()
            for _ in range(rounds):
                gen.fill(b)
            return (time.thread_time() - c0) / rounds / 256 * 1e9


def cli(args: list[str], ns: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "aioixy", *args, "--json"]
    if ns:
        cmd = ["ip", "netns", "exec", ns, *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    if r.returncode:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def xdp_pair() -> str:
    ns = f"axbng{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb"],
                   check=True)
    for i in ("va", "vb"):
        subprocess.run(["ip", "netns", "exec", ns, "sh", "-c",
                        f"echo 1 > /proc/sys/net/ipv6/conf/{i}/disable_ipv6"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", i, "up"], check=True)
    return ns


def xdp_bench_py(ns: str, seconds: float) -> float:
    code = ("import asyncio, sys; sys.path.insert(0, 'bench'); import bench_kernel; "
            f"print(asyncio.run(bench_kernel.py_tx('xdp:vb', {seconds}, 64)))")
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code],
                       capture_output=True, text=True, timeout=120, cwd=ROOT, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-xdp", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "nativegen.json"))
    args = ap.parse_args()
    s = args.seconds
    samples: dict[str, list[float]] = {}
    per_cpu: dict[str, list[float]] = {}
    fill: dict[str, list[float]] = {}

    def add(key: str, rate: float, cpu: float | None = None) -> None:
        samples.setdefault(key, []).append(rate)
        if cpu is not None:
            per_cpu.setdefault(key, []).append(cpu)
        print(f"  {key:<14} {rate / 1e6:8.3f} Mpps" +
              (f"   {cpu / 1e6:8.3f} M/CPU-s" if cpu is not None else ""), flush=True)

    ns = None if args.no_xdp or os.geteuid() != 0 else xdp_pair()
    load_before = os.getloadavg()
    try:
        for rep in range(args.reps):
            print(f"rep {rep + 1}/{args.reps}", flush=True)
            for size in (60, 1514):
                fill.setdefault(f"fill_ns_{size}", []).append(asyncio.run(fill_ns(size)))
                print(f"  fill {size:>4} B     {fill[f'fill_ns_{size}'][-1]:8.1f} ns/packet")
            add("gen_python", *asyncio.run(gen_python(s)))
            add("gen_native", *asyncio.run(gen_native(s)))
            r = cli(["pktgen", "null", "--duration", str(s)])
            add("gen_cli", r["ports"]["null"]["tx_packets"] / r["seconds"])
            add("dump_python", *asyncio.run(dump_python(s)))
            add("dump_pcap", *asyncio.run(dump_native(s, "pcap")))
            add("dump_pcapng", *asyncio.run(dump_native(s, "pcapng")))
            out = SHM / f"bench-ng-cli-{os.getpid()}.pcap"
            try:
                r = cli(["dump", "null", "-w", str(out), "--duration", str(s)])
            finally:
                out.unlink(missing_ok=True)
            add("dump_cli", r["packets"] / r["seconds"])
            if ns:
                add("xdp_bench_py", xdp_bench_py(ns, s))
                r = cli(["pktgen", "xdp:vb", "--duration", str(s)], ns)
                add("xdp_cli", r["ports"]["xdp:vb"]["tx_packets"] / r["seconds"])
    finally:
        if ns:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    med = {k: round(statistics.median(v) / 1e6, 4) for k, v in samples.items()}
    cpu = {k: round(statistics.median(v) / 1e6, 4) for k, v in per_cpu.items()}

    def ratio(a: str, b: str) -> float | None:
        return round(med[a] / med[b], 2) if a in med and med.get(b) else None

    result = {
        "seconds": s, "reps": args.reps, "kernel": platform.release(), "cpus": os.cpu_count(),
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "note": "shared 2-core machine with other jobs running: compare ratios in one run",
        "mpps_median": med, "mpps_per_cpu_second_median": cpu,
        "generator_fill_cpu_ns_per_packet_median": {k: round(statistics.median(v), 1)
                                                    for k, v in fill.items()},
        "ratios": {"gen_native/gen_python": ratio("gen_native", "gen_python"),
                   "dump_pcap/dump_python": ratio("dump_pcap", "dump_python"),
                   "xdp_cli/xdp_bench_py": ratio("xdp_cli", "xdp_bench_py")},
        "samples_pps": samples,
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"mpps_median": med, "per_cpu_second": cpu, "ratios": result["ratios"]}))


if __name__ == "__main__":
    main()
