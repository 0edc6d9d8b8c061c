"""What the VM tier runs inside the guest: one case per invocation, a JSON line on success.

    python tests/vm/guest_cases.py CASE [ARGS]

Each case exits non-zero with a traceback when a check fails. The host-side tests
(tests/vm/test_virtio_vm.py) start them through the agent and assert on the outcome.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import time

import aioixy
from aioixy.core.frames import set_seq
from aioixy.testing import frame_seq, make_frame, receive_sequence, sizes_for, transfer

A, B = "0000:00:10.0", "0000:00:11.0"
MAC_B = bytes.fromhex("52540012340b")
LOSSLESS = {"overflow": "pause", "batch_size": 32}
# fewer frames in flight than b's 256 rx descriptors: the device never runs out of buffers, so
# QEMU never has to queue (and possibly reorder) frames on the hub
WINDOW = 192


def hugepages(n: int = 96) -> None:
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(n))


def all_pools_freed() -> bool:
    # A NIC keeps rx buffers posted while open, so "whole" is checked after close: a pool is
    # destroyed only once every one of its buffers is back, so zero live pools means not one
    # DMA buffer was lost.
    gc.collect()
    return aioixy.native_pools_alive() == 0


async def case_ab(count: int, na: str = A, nb: str = B, opt_a: str = "", opt_b: str = "") -> dict:
    sizes = sizes_for(count)
    async with aioixy.open(na, options=opt_a, **LOSSLESS) as a, \
            aioixy.open(nb, options=opt_b, **LOSSLESS) as b:
        assert a.driver == "virtio", a.driver
        if na == A:
            assert a.mac == "52:54:00:12:34:0a", a.mac
        assert a.link().up and b.link().up
        t0 = time.monotonic()
        rep = await transfer(a, b, count, sizes, timeout=600, window=WINDOW)
        elapsed = time.monotonic() - t0
        assert rep.ok(count), rep
        sa, sb = a.stats(), b.stats()
        assert sa.tx_packets == sb.rx_packets == count, (sa, sb)
        assert sa.tx_bytes == sb.rx_bytes == sum(sizes)
        assert sa.device.tx_packets == sb.device.rx_packets == count
        # what each end negotiated (modern, packed, event_idx, ...) and its notifications
        mode = {"a": sa.device.extra, "b": sb.device.extra, "mac_a": a.mac, "mac_b": b.mac}
    assert all_pools_freed()
    return {"packets": count, "bytes": rep.bytes, "seconds": round(elapsed, 2),
            "pps": round(count / elapsed), **mode}


async def case_promisc() -> dict:
    foreign = bytes.fromhex("525400999999")
    dests = {"own": MAC_B, "foreign": foreign, "broadcast": b"\xff" * 6}
    seen = {}
    async with aioixy.open(A, **LOSSLESS) as a, aioixy.open(B, **LOSSLESS) as b:
        for mode in (False, True, False):
            b.set_promisc(mode)
            assert b.promiscuous == mode
            got = set()
            for i, mac in enumerate(dests.values()):
                batch = a.alloc(1)
                batch[0].write(make_frame(i, 60, bytes.fromhex("52540012340a"), mac))
                await a.tx(batch)
            rep = await receive_sequence(b, 3, timeout=3, sizes=[60] * 3)
            del rep
            # receive_sequence consumed them; re-send and record which destinations arrive
            for i, mac in enumerate(dests.values()):
                batch = a.alloc(1)
                batch[0].write(make_frame(100 + i, 60, bytes.fromhex("52540012340a"), mac))
                await a.tx(batch)
            deadline = time.monotonic() + 3
            stream = b.rx()
            while time.monotonic() < deadline and len(got) < 3:
                try:
                    batch = await asyncio.wait_for(stream.__anext__(), deadline - time.monotonic())
                except TimeoutError:
                    break
                for pkt in batch:
                    seq = frame_seq(pkt.data)
                    if seq >= 100:
                        got.add(list(dests)[seq - 100])
                batch.release()
            seen[str(mode)] = sorted(got)
    assert seen["False"] == ["broadcast", "own"], seen
    assert seen["True"] == ["broadcast", "foreign", "own"], seen
    return seen


async def case_reopen(rounds: int) -> dict:
    for r in range(rounds):
        async with aioixy.open(A, **LOSSLESS) as a, aioixy.open(B, **LOSSLESS) as b:
            rep = await transfer(a, b, 500, timeout=60, window=WINDOW)
            assert rep.ok(500), (r, rep)
        assert all_pools_freed(), r
    return {"rounds": rounds}


async def case_blast() -> None:
    """Sends from A forever (the host SIGKILLs this process mid-traffic)."""
    async with aioixy.open(A, batch_size=32) as a:
        print("blasting", flush=True)
        seq = 0
        while True:
            batch = a.alloc(32)
            for pkt in batch:
                set_seq(pkt.data, seq)
                seq += 1
            await a.tx(batch)


def expect(exc: type[Exception], fn, *args, **kw) -> str:
    try:
        asyncio.run(fn(*args, **kw))
    except exc as e:
        return str(e)
    raise AssertionError(f"{fn.__name__}{args} did not raise {exc.__name__}")


async def _open(dev: str, **kw) -> None:
    async with aioixy.open(dev, **kw):
        pass


def driver_of(addr: str) -> str:
    link = f"/sys/bus/pci/devices/{addr}/driver"
    return os.path.basename(os.readlink(link)) if os.path.exists(link) else ""


def case_errors() -> dict:
    out = {}
    out["no_device"] = expect(aioixy.DeviceNotFound, _open, "0000:00:1e.7")
    out["not_virtio_isa_bridge"] = expect(aioixy.DeviceNotFound, _open, "0000:00:1f.0")
    out["virtio_serial"] = expect(aioixy.DeviceNotFound, _open, "0000:00:03.0")
    # no hugepages: refused before the NIC is touched (it stays with its kernel driver)
    t1 = "0000:00:13.0"
    before = driver_of(t1)
    hugepages(0)
    out["no_hugepages"] = expect(aioixy.NoHugepages, _open, t1)
    assert driver_of(t1) == before, (before, driver_of(t1))
    hugepages()
    # an interface that is up with an address is refused unless forced
    subprocess.run(["modprobe", "virtio_net"], check=True)
    if not driver_of(t1):
        with open("/sys/bus/pci/drivers/virtio-pci/bind", "w") as f:
            f.write(t1)
    time.sleep(0.5)
    devdir = f"/sys/bus/pci/devices/{t1}"
    vdir = next(d for d in os.listdir(devdir) if d.startswith("virtio"))
    ifname = os.listdir(f"{devdir}/{vdir}/net")[0]
    subprocess.run(["ip", "addr", "add", "198.18.1.2/24", "dev", ifname], check=True)
    subprocess.run(["ip", "link", "set", ifname, "up"], check=True)
    out["busy"] = expect(aioixy.DeviceBusy, _open, t1)
    assert "force" in out["busy"] and ifname in out["busy"]
    asyncio.run(_open(t1, force=True))  # forcing works, and the device is ours afterwards
    assert driver_of(t1) == "", driver_of(t1)
    # not root: the same open as an unprivileged user
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                        sys.executable, "-c",
                        "import asyncio, aioixy\n"
                        "async def go():\n await aioixy.open('0000:00:10.0')\n"
                        "try:\n asyncio.run(go())\n"
                        "except aioixy.NotPermitted as e: print('NotPermitted:', e)\n"],
                       capture_output=True, text=True)
    assert "NotPermitted" in r.stdout, r.stdout + r.stderr
    out["not_root"] = r.stdout.strip()
    return out


def case_vfio() -> dict:
    """The VFIO DMA provider: memory mapped into an IOMMU container with IOVA = VA."""
    from aioixy._ffi import ffi, lib

    dev = B
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    base = f"/sys/bus/pci/devices/{dev}"
    if driver_of(dev):
        with open(f"{base}/driver/unbind", "w") as f:
            f.write(dev)
    with open(f"{base}/driver_override", "w") as f:
        f.write("vfio-pci")
    with open("/sys/bus/pci/drivers_probe", "w") as f:
        f.write(dev)
    assert driver_of(dev) == "vfio-pci", driver_of(dev)
    group = os.path.basename(os.readlink(f"{base}/iommu_group"))
    # aioixy's own VFIO code (vfio.c, what the ixgbe driver uses): group -> container -> device
    v = ffi.new("struct aioixy_vfio *")
    rc = lib.aioixy_vfio_open(dev.encode(), v)
    assert rc == 0, ffi.string(lib.aioixy_last_error())
    container = v.container
    try:
        ids = ffi.new("uint16_t[2]")
        assert lib.aioixy_vfio_config_read(v, 0, ids, 4) == 0
        assert (ids[0], ids[1]) == (0x1AF4, 0x1000), (hex(ids[0]), hex(ids[1]))
        assert lib.aioixy_vfio_enable_bus_master(v) == 0, ffi.string(lib.aioixy_last_error())
        cmd = ffi.new("uint16_t *")
        assert lib.aioixy_vfio_config_read(v, 4, cmd, 2) == 0
        assert cmd[0] & 0x6 == 0x6, hex(cmd[0])  # memory space + bus master
        # a legacy virtio BAR0 is I/O space: mapping it must fail with a clear message
        bar, blen = ffi.new("void **"), ffi.new("size_t *")
        assert lib.aioixy_vfio_map_bar(v, 0, bar, blen) != 0
        assert "cannot be mmap" in ffi.string(lib.aioixy_last_error()).decode()
        ctx = ffi.new("struct aioixy_dma_ctx *")
        ctx.kind = lib.DMA_VFIO
        ctx.vfio_container_fd = container
        mem = ffi.new("struct aioixy_dma_mem *")
        rc = lib.aioixy_dma_alloc(ctx, 4 << 20, True, mem)
        assert rc == 0, ffi.string(lib.aioixy_last_error())
        virt = int(ffi.cast("uintptr_t", mem.virt))
        assert mem.iova == virt
        lib.aioixy_dma_free(mem)
        pool = lib.aioixy_mempool_create(ctx, 1024, 2048)
        assert pool != ffi.NULL, ffi.string(lib.aioixy_last_error())
        bufs = ffi.new("struct aioixy_pkt_buf *[1024]")
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs, 1024) == 1024
        assert all(bufs[i].iova == int(ffi.cast("uintptr_t", bufs[i])) for i in range(1024))
        lib.aioixy_mempool_free_bulk(bufs, 1024)
        lib.aioixy_mempool_release(pool)
        # a bad container is refused with a clear error
        ctx.vfio_container_fd = -1
        rc = lib.aioixy_dma_alloc(ctx, 4096, True, mem)
        err = ffi.string(lib.aioixy_last_error()).decode()
        assert rc != 0 and "container" in err, err
    finally:
        lib.aioixy_vfio_close(v)
    # everything was released: the group opens again
    assert lib.aioixy_vfio_open(dev.encode(), v) == 0, ffi.string(lib.aioixy_last_error())
    lib.aioixy_vfio_close(v)
    return {"group": group, "iova_is_va": True, "vfio_device": True}


async def case_mq(seconds: float, options: str, expect: int) -> dict:
    """Four queue pairs on the mq NIC: say "ready", count what each rx queue gets from the host's
    flows until `expect` frames arrived (or time is up), then send 50 frames on each tx queue."""
    from vmhost import MQ_PAIRS, MQ_PCI

    counts = [0] * MQ_PAIRS
    async with aioixy.open(MQ_PCI, rx_queues=MQ_PAIRS, tx_queues=MQ_PAIRS, options=options) as p:
        extra = p.stats().device.extra
        print("ready", flush=True)

        async def drain(q: int) -> None:
            async for batch in p.rx(queue=q):
                counts[q] += sum(1 for pkt in batch if len(pkt.data) > 40 and pkt.data[23] == 17)
                batch.release()

        tasks = [asyncio.create_task(drain(q)) for q in range(MQ_PAIRS)]
        deadline = time.monotonic() + seconds
        while sum(counts) < expect and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for q in range(MQ_PAIRS):
            batch = p.alloc(50)
            for i, pkt in enumerate(batch):
                pkt.write(make_frame(i, 60, bytes.fromhex("525400123410"), b"\xff" * 6))
            await p.tx(batch, queue=q)
        await asyncio.sleep(1)  # let the pollers hand them to the device before close
        tx = p.stats().tx_packets
    assert all_pools_freed()
    return {"per_queue": counts, "tx_packets": tx, **extra}


def case_modern_errors() -> dict:
    from vmhost import MODERN_PAIR, MQ_PCI

    out = {}
    ma, mb = MODERN_PAIR
    out["legacy_on_1041"] = expect(aioixy.InvalidOption, _open, ma, options="transport=legacy")
    out["packed_on_legacy"] = expect(aioixy.InvalidOption, _open, A, options="ring=packed")
    out["queues_on_legacy"] = expect(aioixy.InvalidOption, _open, mb, rx_queues=2,
                                     options="transport=legacy")
    out["no_mq"] = expect(aioixy.InvalidOption, _open, ma, rx_queues=2)
    out["too_many_pairs"] = expect(aioixy.InvalidOption, _open, MQ_PCI, rx_queues=8)
    out["rss_bad_queue"] = expect(aioixy.InvalidOption, _open, MQ_PCI, rx_queues=2,
                                  options="rss=5")
    out["bad_ring"] = expect(aioixy.InvalidOption, _open, ma, options="ring=circular")
    out["modern_on_legacy_only"] = expect(aioixy.DeviceError, _open, A, options="transport=modern")
    assert all_pools_freed()
    return out


def main() -> int:
    case = sys.argv[1]
    hugepages()
    if case == "ab":
        res = asyncio.run(case_ab(int(sys.argv[2]), *sys.argv[3:]))
    elif case == "mq":
        res = asyncio.run(case_mq(float(sys.argv[2]), sys.argv[3], int(sys.argv[4])))
    elif case == "modern_errors":
        res = case_modern_errors()
    elif case == "promisc":
        res = asyncio.run(case_promisc())
    elif case == "reopen":
        res = asyncio.run(case_reopen(int(sys.argv[2])))
    elif case == "blast":
        asyncio.run(case_blast())
        return 0
    elif case == "errors":
        res = case_errors()
    elif case == "vfio":
        res = case_vfio()
    else:
        raise SystemExit(f"unknown case {case}")
    print(json.dumps({"case": case, "ok": True, **res}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
