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
    "ixgbe-txrx": "ixgbe driver on the 82599 model: tx_batch port 0, rx_batch port 1",
    "ring": "SPSC ring: enqueue + dequeue (the poller -> Python hand-off)",
}
# the driver's own rx and tx functions, counted alone (inclusive of what they call); for the
# model only the driver side is counted: the model thread is the "hardware"
DRIVER_FNS = {
    "null-rx": ("null_rx", None),
    "pair-txrx": ("pair_rx", "pair_tx"),
    "ixgbe-txrx": ("ixgbe_rx", "ixgbe_tx"),
}


def build(out: Path) -> Path:
    exe = out / "ipp"
    srcs = [str(p) for p in NATIVE.glob("*.c") if p.name != "_aioixy.c"]
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-pthread", f"-I{NATIVE}",
                    "-o", str(exe), str(ROOT / "bench" / "native" / "ipp.c"), *srcs], check=True)
    return exe


def instructions(exe: Path, mode: str, packets: int, batch: int, tmp: Path,
                 only: str | None = None) -> int:
    out = tmp / f"cg.{mode}.{packets}.{only}"
    extra = [f"--toggle-collect={only}"] if only else []
    r = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *extra,
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
        print(f"{'path':<11} {'instr/pkt':>10} {'driver rx':>10} {'driver tx':>10}  what")

        def per_packet(mode: str, only: str | None = None) -> float:
            i1 = instructions(exe, mode, n1, args.batch, tmp, only)
            i2 = instructions(exe, mode, n2, args.batch, tmp, only)
            return (i2 - i1) / (n2 - n1)

        for mode, what in PATHS.items():
            rx_fn, tx_fn = DRIVER_FNS.get(mode, (None, None))
            # with a model thread, the whole program includes the "hardware": driver only
            whole = None if mode == "ixgbe-txrx" else per_packet(mode)
            rx = per_packet(mode, rx_fn) if rx_fn else None
            tx = per_packet(mode, tx_fn) if tx_fn else None
            rows.append({"path": mode, "batch": args.batch,
                         "instructions_per_packet": None if whole is None else round(whole, 1),
                         "driver_rx": None if rx is None else round(rx, 1),
                         "driver_tx": None if tx is None else round(tx, 1), "what": what})

            def fmt(v: float | None) -> str:
                return "-" if v is None else f"{v:.1f}"
            print(f"{mode:<11} {fmt(whole):>10} {fmt(rx):>10} {fmt(tx):>10}  {what}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"tool": "valgrind --tool=callgrind", "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
