"""The VirtIO driver against the guest kernel's own virtio_net, side by side, in one VM.

    sudo python bench/bench_virtio.py [--seconds 3] [--reps 3] [--out bench/results/virtio.json]

Boots the test VM (tests/vm/vmhost.py: QEMU TCG, virtio-net NICs on taps) and measures, for
aioixy and for the kernel driver on the same NIC and path, on the legacy NICs:
  tx   guest -> tap0: aioixy forwards the null source into 00:12.0 / kernel pktgen on its
       interface. The rate is the guest's count over its send window; the host counts what
       actually arrived on vmtap0 (delivered ratio).
  rx   a host generator (AF_PACKET on vmtap0, in the VM's namespace) -> 00:12.0: packets the
       guest received in its window.
  fwd  host generator -> 00:12.0 -> guest -> 00:13.0 -> vmtap1: aioixy forwarding in Python /
       a Linux bridge in the guest kernel.
and on the modern NIC (00:16.0, 1af4:1041 on the multi-queue tap vmtapmq, one queue pair
used): tx and rx as above for aioixy with the split ring, aioixy with the packed ring, and the
kernel's virtio_net, in the same run.
Everything is emulated (TCG), so absolute numbers are far below native: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "vm"))
from vmhost import MQ_PCI, MQ_TAP, TestVM, tap_pci, why_not_runnable  # noqa: E402

GENERATOR = r"""
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frame = b"\xff" * 6 + bytes.fromhex("02aa00000001") + b"\x08\x00" + bytes(46)
end = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < end:
    for _ in range(256):
        try:
            s.send(frame)
            n += 1
        except BlockingIOError:
            pass
print(n)
"""


def host_counter(vm: TestVM, ifname: str, what: str) -> int:
    r = vm.host(["cat", f"/sys/class/net/{ifname}/statistics/{what}"])
    return int(r.stdout)


def guest(vm: TestVM, *args: str) -> dict:
    r = vm.py("bench/virtio_guest.py", *args, timeout=600)
    if r.rc != 0:
        raise RuntimeError(f"guest {args} failed:\n{r.out}\n{r.err}")
    return json.loads(r.out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "virtio.json"))
    args = ap.parse_args()
    reason = why_not_runnable()
    if reason:
        raise SystemExit(f"cannot run: {reason}")
    secs = str(args.seconds)
    t0, t1 = tap_pci(0), tap_pci(1)
    samples: dict[str, list[float]] = {}
    delivered: dict[str, list[float]] = {}

    def add(key: str, res: dict) -> None:
        samples.setdefault(key, []).append(res["packets"] / args.seconds)

    with TestVM(ROOT, taps=2) as vm:
        for rep in range(args.reps):
            for driver in ("aioixy", "kernel"):
                before = host_counter(vm, "vmtap0", "rx_packets")
                res = guest(vm, f"{driver}-tx", t0, secs)
                got = host_counter(vm, "vmtap0", "rx_packets") - before
                add(f"tx {driver}", res)
                delivered.setdefault(f"tx {driver}", []).append(got / max(res["packets"], 1))
            gen = subprocess.Popen(["ip", "netns", "exec", vm.ns, sys.executable, "-c", GENERATOR,
                                    "vmtap0", "600"], stdout=subprocess.PIPE, text=True)
            try:
                for driver in ("aioixy", "kernel"):
                    add(f"rx {driver}", guest(vm, f"{driver}-rx", t0, secs))
                for driver in ("aioixy", "kernel"):
                    add(f"fwd {driver}", guest(vm, f"{driver}-fwd", t0, t1, secs))
            finally:
                gen.kill()
                gen.wait()
            # the modern NIC: split and packed rings beside the kernel, tx then rx
            variants = (("split", ""), ("packed", "ring=packed"), ("kernel", None))
            for name, opts in variants:
                before = host_counter(vm, MQ_TAP, "rx_packets")
                if opts is None:
                    res = guest(vm, "kernel-tx", MQ_PCI, secs)
                else:
                    res = guest(vm, "aioixy-tx", MQ_PCI, opts, secs)
                got = host_counter(vm, MQ_TAP, "rx_packets") - before
                add(f"modern tx {name}", res)
                delivered.setdefault(f"modern tx {name}", []).append(
                    got / max(res["packets"], 1))
            gen = subprocess.Popen(["ip", "netns", "exec", vm.ns, sys.executable, "-c", GENERATOR,
                                    MQ_TAP, "600"], stdout=subprocess.PIPE, text=True)
            try:
                for name, opts in variants:
                    if opts is None:
                        add(f"modern rx {name}", guest(vm, "kernel-rx", MQ_PCI, secs))
                    else:
                        add(f"modern rx {name}", guest(vm, "aioixy-rx", MQ_PCI, opts, secs))
            finally:
                gen.kill()
                gen.wait()
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)

    rows = []
    print(f"{'path':<5} {'aioixy kpps':>12} {'kernel kpps':>12} {'aioixy/kernel':>14}")
    for path in ("tx", "rx", "fwd"):
        a = statistics.median(samples[f"{path} aioixy"])
        k = statistics.median(samples[f"{path} kernel"])
        row = {"path": path, "aioixy_pps": round(a), "kernel_pps": round(k),
               "ratio": round(a / k, 3) if k else None}
        if path == "tx":
            row["delivered_aioixy"] = round(statistics.median(delivered["tx aioixy"]), 3)
            row["delivered_kernel"] = round(statistics.median(delivered["tx kernel"]), 3)
        rows.append(row)
        print(f"{path:<5} {a / 1e3:12.1f} {k / 1e3:12.1f} {row['ratio']!s:>14}")
    print(f"\nmodern NIC {MQ_PCI}: {'path':<5} {'split kpps':>11} {'packed kpps':>12} "
          f"{'kernel kpps':>12} {'split/kernel':>13} {'packed/split':>13}")
    modern = []
    for path in ("tx", "rx"):
        med = {n: statistics.median(samples[f"modern {path} {n}"])
               for n in ("split", "packed", "kernel")}
        row = {"path": path, "nic": "modern", **{f"{n}_pps": round(v) for n, v in med.items()},
               "split_over_kernel": round(med["split"] / med["kernel"], 3) if med["kernel"]
               else None,
               "packed_over_split": round(med["packed"] / med["split"], 3) if med["split"]
               else None}
        if path == "tx":
            for n in ("split", "packed", "kernel"):
                row[f"delivered_{n}"] = round(statistics.median(delivered[f"modern tx {n}"]), 3)
        modern.append(row)
        print(f"{'':<22}{path:<5} {med['split'] / 1e3:11.1f} {med['packed'] / 1e3:12.1f} "
              f"{med['kernel'] / 1e3:12.1f} {row['split_over_kernel']!s:>13} "
              f"{row['packed_over_split']!s:>13}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"seconds": args.seconds, "reps": args.reps, "accel": "tcg", "rows": rows,
                   "modern_rows": modern, "samples": samples,
                   "load_before": os.getloadavg()[0]}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
