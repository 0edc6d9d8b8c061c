"""Instructions per packet of the native fast paths, counted by callgrind (not timed).

    python bench/bench_instructions.py [--out bench/results/instructions.json]

Instruction counts are repeatable whatever else the machine is doing, so cost can be tracked
without hardware. Each path runs twice (N1 and N2 packets); (Ir2 - Ir1) / (N2 - N1) is the cost
per packet with set-up and tear-down cancelled out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NATIVE = ROOT / "aioixy" / "_native"
PATHS = {
    "null-rx": "null device: generate a frame into a pool buffer, then free it",
    "pair-txrx": "pair: tx_batch on a, rx_batch on b, free (the in-memory wire)",
    "ring": "SPSC ring: enqueue + dequeue (the poller -> Python hand-off)",
}


def build(out: Path) -> Path:
    exe = out / "ipp"
    srcs = [str(p) for p in NATIVE.glob("*.c") if p.name != "_aioixy.c"]
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-pthread", f"-I{NATIVE}",
                    "-o", str(exe), str(ROOT / "bench" / "native" / "ipp.c"), *srcs], check=True)
    return exe


def instructions(exe: Path, mode: str, packets: int, batch: int, tmp: Path) -> int:
    out = tmp / f"cg.{mode}.{packets}"
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        str(exe), mode, str(packets), str(batch)],
                       capture_output=True, text=True, check=True)
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if not m:
        raise RuntimeError(r.stderr)
    return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "instructions.json"))
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        exe = build(tmp)
        n1, n2 = 64 * 1000, 64 * 5000
        print(f"{'path':<10} {'instr/packet':>13}  what")
        for mode, what in PATHS.items():
            i1 = instructions(exe, mode, n1, args.batch, tmp)
            i2 = instructions(exe, mode, n2, args.batch, tmp)
            per = (i2 - i1) / (n2 - n1)
            rows.append({"path": mode, "batch": args.batch,
                         "instructions_per_packet": round(per, 1), "what": what})
            print(f"{mode:<10} {per:13.1f}  {what}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"tool": "valgrind --tool=callgrind", "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
