"""Batch operations and adaptive rx batching against the same network functions per packet.

    python bench/bench_batchops.py [--seconds 0.5] [--reps 5] [--no-instructions]
                                   [--out bench/results/batchops.json]

In one run, on asyncio and on uvloop (median of --reps runs of --seconds each):
  * batch-level: null -> coroutine releasing whole batches, native burst 64, one rx step handing
    over at most 64 (one burst, the behaviour before adaptive batching), 256 and 512 packets;
  * MAC-swap forwarder null -> Python -> pair:a ==wire==> pair:b -> counted: batch.swap_macs()
    vs swapping in a Python loop over the packets;
  * firewall with 100 rules (99 deny rules that do not match, then the allow rule that does:
    the worst place for a linear scan) forwarding the same way: Filter.split vs
    RuleSet.allows per packet;
  * round-trip latency at 10 kpps (probe -> pair -> reflector -> back), p50/p99, with rx
    hand-over 64 (before) and the default 256 (after);
  * instructions per packet of each native op, counted by callgrind (not timed) inside the op
    functions over batches of 64 test frames, as bench_instructions.py does for the drivers.
Machine-dependent: quote ratios measured in the same run, and the machine load alongside.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import uvloop

# the forwarding harness is bench_core's (python bench/X.py puts bench/ on sys.path)
from bench_core import forward_rate

import aioixy
from aioixy.ops.rules import RuleSet

ROOT = Path(__file__).resolve().parents[1]
_ids = iter(range(1 << 30))


def _name(tag: str) -> str:
    return f"{tag}{os.getpid()}x{next(_ids)}"


async def batch_level(max_batch: int, seconds: float) -> float:
    async with aioixy.open("null", batch_size=64, overflow="pause",
                           rx_burst_max=max_batch) as port:
        n = 0
        stream = port.rx()
        warm = time.perf_counter() + 0.05
        async for batch in stream:
            batch.release()
            if time.perf_counter() > warm:
                break
        t0 = time.perf_counter()
        end = t0 + seconds
        checks = 0
        async for batch in stream:
            n += len(batch)
            batch.release()
            checks += 1
            if checks & 15 == 0 and time.perf_counter() >= end:
                break
        return n / (time.perf_counter() - t0)


def firewall_rules() -> RuleSet:
    rules = RuleSet(default="deny")
    for i in range(99):  # deny lists for networks the traffic does not come from
        rules.add({"action": "deny", "src": f"10.{i}.0.0/16", "proto": "udp",
                   "dport": 1000 + i})
    rules.add({"action": "allow", "dst": "198.18.0.0/15", "proto": "udp", "dport": 5678})
    return rules


def _swap_python(batch) -> None:
    for pkt in batch:
        d = pkt.data
        d[0:6], d[6:12] = d[6:12].tobytes(), d[0:6].tobytes()


async def forward(kind: str, seconds: float) -> float:
    """null -> network function in Python -> pair:a ==wire==> pair:b -> counted."""
    rules = firewall_rules() if kind.startswith("firewall") else None
    flt = aioixy.Filter.compile(rules) if rules is not None else None

    async def step(batch, out) -> None:
        if kind == "macswap-batchops":
            batch.swap_macs()
            await out.tx(batch)
        elif kind == "macswap-python":
            _swap_python(batch)
            await out.tx(batch)
        elif kind == "firewall-batchops":
            allowed, denied = flt.split(batch)
            denied.release()
            await out.tx(allowed)
        else:
            allowed = [p for p in batch if rules.allows(p.data)]
            await out.tx(allowed)
            batch.release()

    return await forward_rate(seconds, step, _name("bo"))


STAMP = 50  # after the test frame's sequence number (bytes 42..49)


async def latency(max_batch: int, rate: float, seconds: float) -> dict:
    """RTTs (us) of probes at `rate`/s bounced off a reflector that swaps MACs per batch."""
    from aioixy.jobs import RateLimiter
    from aioixy.testing import make_frame

    name = _name("lat")
    async with aioixy.open(f"pair:{name}:a", rx_burst_max=max_batch) as a, \
            aioixy.open(f"pair:{name}:b", rx_burst_max=max_batch) as b:
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
        await asyncio.sleep(0.05)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        rtts.sort()
        return {"sent": sent, "received": len(rtts), "offered_pps": round(sent / elapsed),
                "p50_us": round(rtts[len(rtts) // 2], 1),
                "p99_us": round(rtts[int(len(rtts) * 0.99)], 1)}


# --- instructions per packet (callgrind) ------------------------------------------------------

# op shown -> (ops_ipp mode, the native functions counted, inclusive)
OPS = {
    "lengths()": ("lengths", ["aioixy_ops_lengths"]),
    "field('ip_dst')": ("gather_ip_dst", ["aioixy_ops_gather"]),
    "field('dport')": ("gather_dport", ["aioixy_ops_gather"]),
    "swap_macs()": ("swap_macs", ["aioixy_ops_swap_macs"]),
    "set_src_mac()": ("set_mac", ["aioixy_ops_set_mac"]),
    "dec_ttl()": ("dec_ttl", ["aioixy_ops_dec_ttl"]),
    "set_vlan() + strip_vlan()": ("vlan", ["aioixy_ops_set_vlan", "aioixy_ops_strip_vlan"]),
    "ipv4_checksum_ok()": ("ipv4_csum", ["aioixy_ops_ipv4_csum"]),
    "l4_checksum_ok()": ("l4_csum", ["aioixy_ops_l4_csum"]),
    "fix_l4_checksum()": ("l4_fix", ["aioixy_ops_l4_csum"]),
    "flow_hash()": ("flow_hash", ["aioixy_ops_flow_hash"]),
    "set_field('ip_src')": ("set_ip_src", ["aioixy_ops_set_field"]),
    "Filter (100 rules).mask()": ("classify", ["aioixy_ops_classify"]),
    "split()": ("split", ["aioixy_ops_split"]),
}


def build_ops_ipp(out: Path) -> Path:
    native = ROOT / "aioixy" / "_native"
    exe = out / "ops_ipp"
    incs = [f"-I{d}" for d in sorted({p.parent for p in native.glob("*/*.h")})]
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-pthread", *incs, "-o",
                    str(exe), str(ROOT / "bench" / "native" / "ops_ipp.c"),
                    *map(str, native.glob("*/*.c"))], check=True)
    return exe


def write_filter(path: Path) -> None:
    """The compiled tables of the benchmark's 100-rule filter, for ops_ipp."""
    f = aioixy.Filter.compile(firewall_rules())._f
    lines = [f"{f.nrules} {f.words} {f.default_allow}", " ".join(str(f.allow[i])
                                                                  for i in range(f.nrules))]
    for k in range(6):
        fld = f.fields[k]
        nj = fld.njump if fld.jump else 0
        lines += [f"{fld.nbounds} {nj} {fld.shift}",
                  " ".join(map(str, fld.bounds[0:fld.nbounds])),
                  " ".join(map(str, fld.bitmaps[0:fld.nbounds * f.words])),
                  " ".join(map(str, fld.jump[0:nj])) if nj else ""]
    path.write_text("\n".join(lines) + "\n")


def _callgrind(exe: Path, mode: str, fns: list[str], rounds: int, tmp: Path) -> int:
    out = tmp / f"cg.{mode}.{rounds}"
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        *[f"--toggle-collect={f}" for f in fns], str(exe), mode, str(rounds),
                        str(tmp / "filter.txt")], capture_output=True, text=True, check=True)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if not m:
        raise RuntimeError(r.stderr)
    return int(m.group(1))


def instructions() -> list[dict]:
    rows = []
    r1, r2 = 200, 1000
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        exe = build_ops_ipp(tmp)
        write_filter(tmp / "filter.txt")
        print(f"\n{'op (batch of 64 test frames)':<28} {'instr/pkt':>10}")
        for op, (mode, fns) in OPS.items():
            # only the op's own functions are collected, and the two runs' difference cancels
            # the set-up: what is left is the op's cost per packet
            per = (_callgrind(exe, mode, fns, r2, tmp)
                   - _callgrind(exe, mode, fns, r1, tmp)) / ((r2 - r1) * 64)
            rows.append({"op": op, "instructions_per_packet": round(per, 1)})
            print(f"{op:<28} {per:10.1f}", flush=True)
    return rows


# --- driver ---------------------------------------------------------------------------------

def median_of(run, make, reps: int) -> float:
    return statistics.median(run(make()) for _ in range(reps))


def machine_load() -> dict:
    la = os.getloadavg()
    return {"cpus": os.cpu_count(), "loadavg_1_5_15": [round(x, 2) for x in la],
            "python": platform.python_version(), "platform": platform.platform()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=0.5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-instructions", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "batchops.json"))
    args = ap.parse_args()
    load_before = machine_load()
    runners = {"asyncio": asyncio.run, "uvloop": uvloop.run}
    rows: list[dict] = []
    lat_rows: list[dict] = []

    def record(test: str, loop: str, mpps: float) -> None:
        rows.append({"test": test, "loop": loop, "mpps": round(mpps / 1e6, 3)})
        print(f"{test:<34} {loop:<8} {mpps / 1e6:8.3f} Mpps", flush=True)

    print(f"{'test':<34} {'loop':<8} {'rate':>13}")
    for loop, run in runners.items():
        for mb in (64, 256, 512):
            record(f"batch-level, hand-over {mb}", loop,
                   median_of(run, lambda mb=mb: batch_level(mb, args.seconds), args.reps))
        for kind in ("macswap-batchops", "macswap-python", "firewall-batchops",
                     "firewall-python"):
            secs = args.seconds * (3 if kind == "firewall-python" else 1)
            record(f"forward {kind}", loop,
                   median_of(run, lambda k=kind, s=secs: forward(k, s), args.reps))
        # before/after interleaved run by run, so a change in the machine's load hits both
        lat_runs: dict[int, list[dict]] = {64: [], 256: []}
        for _ in range(args.reps):
            for mb, runs in lat_runs.items():
                runs.append(run(latency(mb, 10_000, max(args.seconds, 1.0))))
        for mb, runs in lat_runs.items():
            row = {"loop": loop, "rx_burst_max": mb,
                   "p50_us": statistics.median(r["p50_us"] for r in runs),
                   "p99_us": statistics.median(r["p99_us"] for r in runs),
                   "offered_pps": statistics.median(r["offered_pps"] for r in runs),
                   "lost": sum(r["sent"] - r["received"] for r in runs)}
            lat_rows.append(row)
            print(f"latency 10 kpps, hand-over {mb:<4}   {loop:<8} p50 {row['p50_us']:7.1f} us"
                  f"  p99 {row['p99_us']:8.1f} us  ({row['offered_pps']} pps offered)",
                  flush=True)
    instr = [] if args.no_instructions else instructions()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"machine": load_before, "load_after": machine_load()["loadavg_1_5_15"],
                   "seconds": args.seconds, "reps": args.reps, "rows": rows,
                   "latency": lat_rows, "instructions": instr,
                   "command": "python bench/bench_batchops.py " + " ".join(sys.argv[1:])},
                  f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
