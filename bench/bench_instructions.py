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
    out.mkdir(parents=True, exist_ok=True)
    exe = out / "ipp"
    srcs = [str(p) for p in NATIVE.glob("*/*.c")]
    incs = [f"-I{d}" for d in sorted({p.parent for p in NATIVE.glob("*/*.h")})]
    subprocess.run(["gcc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-g", "-pthread", *incs,
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


# the VirtIO flavours, each on a pair of NICs QEMU's hub joins (tests/vm/vmhost.py)
VIRTIO_FLAVOURS = {
    "virtio-legacy": ("0000:00:10.0", "0000:00:11.0", ""),
    "virtio-split": ("0000:00:14.0", "0000:00:15.0", ""),
    "virtio-packed": ("0000:00:14.0", "0000:00:15.0", "ring=packed"),
}


def virtio_in_vm(exe: Path, batch: int) -> dict[str, tuple[float, float]] | str:
    """Driver-only rx and tx instructions per packet of the VirtIO driver, counted by callgrind
    inside the test VM (QEMU's virtio-net; valgrind comes from the host's root over 9p), for the
    legacy interface and the modern one with split and packed rings. Returns {flavour: (rx,
    tx)}, or why it could not run."""
    import sys

    sys.path.insert(0, str(ROOT / "tests" / "vm"))
    from vmhost import TestVM, why_not_runnable

    why = why_not_runnable()
    if why:
        return why
    n1, n2 = batch * 40, batch * 200
    res: dict[str, tuple[float, float]] = {}
    with TestVM(ROOT, taps=0) as vm:
        vm.run("echo 64 > /proc/sys/vm/nr_hugepages").check()
        for flavour, (a, b, options) in VIRTIO_FLAVOURS.items():
            per_fn = []
            for fn in ("virtio_rx", "virtio_tx"):
                counts = []
                for n in (n1, n2):
                    out = f"/tmp/cg.{flavour}.{fn}.{n}"
                    r = vm.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                                f"--toggle-collect={fn}", str(exe), "virtio-txrx", str(n),
                                str(batch), a, b, options], timeout=1800)
                    m = re.search(r"Collected\s*:\s*(\d+)", r.err)
                    if r.rc != 0 or not m:
                        return f"callgrind in the VM failed (rc {r.rc}): {r.err[-500:]}"
                    counts.append(int(m.group(1)))
                per_fn.append((counts[1] - counts[0]) / (n2 - n1))
            res[flavour] = (per_fn[0], per_fn[1])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "instructions.json"))
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--no-vm", action="store_true", help="skip the VirtIO driver (needs the VM)")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # built inside the repo: the VM sees the repo (and the host's root) over 9p
        exe = build(ROOT / "build" / "ipp") if not args.no_vm else build(tmp)
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
        if not args.no_vm:
            got = virtio_in_vm(exe, args.batch)
            what = "VirtIO driver in the test VM: tx_batch NIC A -> QEMU hub -> rx_batch NIC B"
            if isinstance(got, str):
                print(f"virtio: NOT MEASURED: {got}")
                rows.append({"path": "virtio", "batch": args.batch, "skipped": got,
                             "what": what})
            else:
                for flavour, (rx, tx) in got.items():
                    rows.append({"path": flavour, "batch": args.batch,
                                 "instructions_per_packet": None, "driver_rx": round(rx, 1),
                                 "driver_tx": round(tx, 1), "what": what})
                    print(f"{flavour:<13} {'-':>8} {rx:10.1f} {tx:10.1f}  {what}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"tool": "valgrind --tool=callgrind", "rows": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
