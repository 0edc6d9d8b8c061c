"""Guest half of bench/bench_virtio.py: one measurement per invocation, prints a JSON line.

    aioixy-tx DEV [OPTIONS] SECONDS  null source -> DEV (the driver's tx path); OPTIONS are the
                                     driver options ("ring=packed")
    aioixy-rx DEV [OPTIONS] SECONDS  count what DEV receives
    aioixy-fwd IN OUT SECONDS    forward IN -> OUT through Python
    kernel-tx DEV SECONDS        the guest kernel's virtio_net driven by pktgen
    kernel-rx DEV SECONDS        the guest kernel's virtio_net rx counter
    kernel-fwd IN OUT SECONDS    a Linux bridge between the two kernel interfaces
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time

import aioixy


def hugepages() -> None:
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write("128")


async def aioixy_tx(dev: str, seconds: float, options: str = "") -> int:
    async with aioixy.open("null", overflow="pause") as src, \
            aioixy.open(dev, options=options) as out:
        sent = 0
        end = time.monotonic() + seconds
        async for batch in src.rx():
            n = len(batch)
            await out.tx(batch)
            sent += n
            if time.monotonic() >= end:
                break
        return sent


async def aioixy_rx(dev: str, seconds: float, options: str = "") -> int:
    async with aioixy.open(dev, options=options) as port:
        got = 0
        try:
            async with asyncio.timeout(seconds):
                async for batch in port.rx():
                    got += len(batch)
                    batch.release()
        except TimeoutError:
            pass
        return got


async def aioixy_fwd(dev_in: str, dev_out: str, seconds: float) -> int:
    async with aioixy.open(dev_in) as a, aioixy.open(dev_out) as b:
        n = 0
        try:
            async with asyncio.timeout(seconds):
                async for batch in a.rx():
                    k = len(batch)
                    await b.tx(batch)
                    n += k
        except TimeoutError:
            pass
        return n


def kernel_if(dev: str) -> str:
    subprocess.run(["modprobe", "virtio_net"], check=True)
    if not os.path.exists(f"/sys/bus/pci/devices/{dev}/driver"):
        with open("/sys/bus/pci/drivers/virtio-pci/bind", "w") as f:
            f.write(dev)
    for _ in range(100):
        base = f"/sys/bus/pci/devices/{dev}"
        for d in os.listdir(base):
            if d.startswith("virtio") and os.path.isdir(f"{base}/{d}/net"):
                ifname = os.listdir(f"{base}/{d}/net")[0]
                subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
                return ifname
        time.sleep(0.1)
    raise RuntimeError(f"no kernel interface for {dev}")


def counter(ifname: str, what: str) -> int:
    with open(f"/sys/class/net/{ifname}/statistics/{what}") as f:
        return int(f.read())


def pg(path: str, cmd: str) -> None:
    with open(path, "w") as f:
        f.write(cmd + "\n")


def kernel_tx(dev: str, seconds: float) -> int:
    ifname = kernel_if(dev)
    subprocess.run(["modprobe", "pktgen"], check=True)
    thread = "/proc/net/pktgen/kpktgend_0"
    pg(thread, "rem_device_all")
    pg(thread, f"add_device {ifname}")
    devf = f"/proc/net/pktgen/{ifname}"
    for cmd in ("count 0", "pkt_size 60", "delay 0", "dst 198.18.0.1",
                "dst_mac ff:ff:ff:ff:ff:ff", "clone_skb 0"):
        pg(devf, cmd)
    before = counter(ifname, "tx_packets")
    run = subprocess.Popen(["sh", "-c", "echo start > /proc/net/pktgen/pgctrl"])
    time.sleep(seconds)
    sent = counter(ifname, "tx_packets") - before
    pg("/proc/net/pktgen/pgctrl", "stop")
    run.wait()
    return sent


def kernel_rx(dev: str, seconds: float) -> int:
    ifname = kernel_if(dev)
    before = counter(ifname, "rx_packets")
    time.sleep(seconds)
    return counter(ifname, "rx_packets") - before


def kernel_fwd(dev_in: str, dev_out: str, seconds: float) -> int:
    a, b = kernel_if(dev_in), kernel_if(dev_out)
    # no udev in the guest to autoload it
    subprocess.run(["modprobe", "bridge"], check=True)
    subprocess.run(["ip", "link", "add", "br0", "type", "bridge"], check=True)
    for i in (a, b):
        subprocess.run(["ip", "link", "set", i, "master", "br0"], check=True)
    subprocess.run(["ip", "link", "set", "br0", "up"], check=True)
    before = counter(b, "tx_packets")
    time.sleep(seconds)
    n = counter(b, "tx_packets") - before
    subprocess.run(["ip", "link", "del", "br0"], check=False)
    return n


def main() -> None:
    hugepages()
    mode, *args = sys.argv[1:]
    secs = float(args[-1])
    t0 = time.monotonic()
    options = args[1] if len(args) == 3 and mode in ("aioixy-tx", "aioixy-rx") else ""
    if mode == "aioixy-tx":
        n = asyncio.run(aioixy_tx(args[0], secs, options))
    elif mode == "aioixy-rx":
        print("ready", flush=True)
        n = asyncio.run(aioixy_rx(args[0], secs, options))
    elif mode == "aioixy-fwd":
        n = asyncio.run(aioixy_fwd(args[0], args[1], secs))
    elif mode == "kernel-tx":
        n = kernel_tx(args[0], secs)
    elif mode == "kernel-rx":
        n = kernel_rx(args[0], secs)
    elif mode == "kernel-fwd":
        n = kernel_fwd(args[0], args[1], secs)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"mode": mode, "packets": n, "seconds": round(time.monotonic() - t0, 3)}))


if __name__ == "__main__":
    main()
