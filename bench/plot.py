"""Plots of bench/results/*.json as SVG under docs/img (matplotlib: pip install matplotlib).

    python bench/plot.py [--results bench/results] [--out docs/img]

One plotter per known result file; a file without a plotter is listed and skipped, so a new
benchmark never breaks this script. SVG because it diffs as text and scales in the docs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt

Plotter = Callable[[dict[str, Any], Path], list[Path]]
LOOPS = ("asyncio", "uvloop")


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    # a fixed hash salt and no date keep the SVG identical between runs on the same data
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path


def plot_core(data: dict[str, Any], out: Path) -> list[Path]:
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(7, 4))
    for loop in LOOPS:
        for test, style in (("null->coroutine batches", "-o"),
                            ("null->coroutine per-packet", "--s")):
            pts = sorted((r["batch"], r["mpps"]) for r in rows
                         if r["loop"] == loop and r["test"] == test)
            if pts:
                ax.plot(*zip(*pts, strict=True), style, label=f"{test} ({loop})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size (packets)")
    ax.set_ylabel("Mpps into a coroutine")
    ax.set_title("null device -> coroutine")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    paths = [_save(fig, out / "core-batch.svg")]

    others = [r for r in rows if not r["test"].startswith("null->coroutine")]
    if others:
        labels = [f"{r['test']}\nbatch {r['batch']}, {r['loop']}" for r in others]
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(others) + 1))
        ax.barh(labels, [r["mpps"] for r in others], color="#1f6fd1")
        ax.set_xlabel("Mpps")
        ax.set_title("forwarding through Python vs the naive thread hand-off")
        ax.tick_params(axis="y", labelsize=7)
        paths.append(_save(fig, out / "core-forward.svg"))
    return paths


def plot_instructions(data: dict[str, Any], out: Path) -> list[Path]:
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(6.5, 3))
    series = [("instructions_per_packet", "whole path", "#d1711f"),
              ("driver_rx", "driver rx only", "#1f77b4"),
              ("driver_tx", "driver tx only", "#2ca02c")]
    h = 0.27
    for i, (key, label, color) in enumerate(series):
        ys = [j + (i - 1) * h for j in range(len(rows))]
        xs = [r.get(key) or 0 for r in rows]  # missing figure (not measured): no bar
        ax.barh(ys, xs, height=h, color=color, label=label)
    ax.set_yticks(range(len(rows)), [r["path"] for r in rows])
    ax.set_xlabel("instructions per packet (callgrind)")
    ax.set_title("native fast path cost")
    ax.legend(fontsize=8)
    return [_save(fig, out / "instructions.svg")]


def plot_ixgbe(data: dict[str, Any], out: Path) -> list[Path]:
    rows = data["rows"]
    paths = sorted({r["path"] for r in rows}, key=["rx", "tx", "fwd"].index)
    devices = sorted({r["device"] for r in rows})
    fig, ax = plt.subplots(figsize=(6, 3))
    w = 0.8 / len(devices)
    for i, dev in enumerate(devices):
        vals = {r["path"]: r["mpps_median"] for r in rows if r["device"] == dev}
        ax.bar([j + i * w for j in range(len(paths))], [vals[p] for p in paths], width=w,
               label=dev)
    ax.set_xticks([j + w * (len(devices) - 1) / 2 for j in range(len(paths))], paths)
    ax.set_ylabel("Mpps through Python (median)")
    ax.set_title("ixgbe driver on the 82599 model vs null")
    ax.legend()
    return [_save(fig, out / "ixgbe.svg")]


def plot_virtio(data: dict[str, Any], out: Path) -> list[Path]:
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(6, 3))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["aioixy_pps"] / 1e3 for r in rows], width=0.4,
           label="aioixy")
    ax.bar([x + 0.2 for x in xs], [r["kernel_pps"] / 1e3 for r in rows], width=0.4,
           label="guest kernel")
    ax.set_xticks(list(xs), [r["path"] for r in rows])
    ax.set_ylabel("kpps (QEMU TCG: compare ratios)")
    ax.set_title("VirtIO: aioixy vs the kernel's virtio_net")
    ax.legend()
    return [_save(fig, out / "virtio.svg")]


def plot_http(data: dict[str, Any], out: Path) -> list[Path]:
    rows = data["rows"]
    modes = list(dict.fromkeys(r["http_load"] for r in rows))
    colors = {"none": "#1f6fd1", "light": "#4fa35a", "hammer": "#d1711f"}
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(modes)
    for i, loop in enumerate(LOOPS):
        for j, mode in enumerate(modes):
            r = next((r for r in rows if r["loop"] == loop and r["http_load"] == mode), None)
            if r is None:
                continue
            x = i + (j - (len(modes) - 1) / 2) * width
            ax.bar(x, r["mpps"], width, color=colors.get(mode, "#888"),
                   label=mode if i == 0 else None)
            ax.scatter([x] * len(r["mpps_samples"]), r["mpps_samples"], s=8, color="black",
                       zorder=3)
            if r["requests_per_s"]:
                ax.annotate(f"{r['requests_per_s']} req/s", (x, r["mpps"]), ha="center",
                            va="bottom", fontsize=7)
    ax.set_xticks(range(len(LOOPS)), LOOPS)
    ax.set_ylabel("Mpps forwarded (median; dots: reps)")
    ax.set_title("pair forwarding with the control plane on the same loop")
    ax.legend(title="HTTP load", fontsize=8)
    return [_save(fig, out / "http.svg")]


PLOTTERS: dict[str, Plotter] = {"core": plot_core, "instructions": plot_instructions,
                                 "ixgbe": plot_ixgbe, "virtio": plot_virtio,
                                "http": plot_http}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    plt.rcParams["svg.hashsalt"] = "aioixy"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(args.results).glob("*.json")):
        plotter = PLOTTERS.get(path.stem)
        if plotter is None:
            print(f"{path}: no plotter, skipped")
            continue
        for written in plotter(json.loads(path.read_text()), out):
            print(f"{path} -> {written}")


if __name__ == "__main__":
    main()
