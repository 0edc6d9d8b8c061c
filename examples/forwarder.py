"""L2 forwarder: everything one port receives goes out of the other, source MAC rewritten.

    python examples/forwarder.py [DEV_A DEV_B] [--duration S] [--json] [--promisc]

With two devices it forwards both ways between them until --duration (or SIGTERM / Ctrl-C),
e.g. `packet:veth1 packet:veth2` as a bridge between two network namespaces. Without, it runs
on the built-in devices: null (a line-rate source of numbered frames) -> forwarder ->
pair:fwd:a ==wire==> pair:fwd:b, where a checker verifies that every frame arrives in order
and carries pair:fwd:a's MAC as its source.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys

import aioixy
from aioixy.core.frames import frame_seq


def mac_bytes(port: aioixy.Port) -> bytes:
    return bytes.fromhex(port.mac.replace(":", ""))


async def forward(src: aioixy.Port, dst: aioixy.Port, counts: dict[str, int]) -> None:
    """The network function: rewrite the source MAC in place (zero-copy, one native call per
    batch), send the batch on."""
    mac = mac_bytes(dst)
    key = f"{src.name}->{dst.name}"
    async for batch in src.rx():
        batch.set_src_mac(mac)
        n = len(batch)
        try:
            await dst.tx(batch)  # the batch belongs to dst now: nothing is copied
        finally:
            # cancelled while waiting for ring space, tx has sent a prefix: count what went
            counts[key] = counts.get(key, 0) + n - len(batch)
            batch.release()


async def check(port: aioixy.Port, expect_src: bytes, result: dict[str, int]) -> None:
    """Count what arrives; a frame out of sequence or with a wrong source MAC is an error."""
    last = None
    async for batch in port.rx():
        with batch:
            for pkt in batch:
                seq = frame_seq(pkt.data)
                if last is not None and seq != last + 1:
                    result["out_of_order"] += 1
                if pkt.data[6:12] != expect_src:
                    result["bad_mac"] += 1
                last = seq
            result["received"] += len(batch)


async def run(devices: list[str], duration: float, promisc: bool = False) -> dict:
    counts: dict[str, int] = {}
    result = {"received": 0, "out_of_order": 0, "bad_mac": 0}
    # lossless on the built-in path: the null source pauses and the wire pushes back, so the
    # checker can demand a gapless sequence
    lossless = {"overflow": "pause", "flow_control": True}
    # a real NIC filters by destination MAC: forwarding what is addressed to others needs promisc;
    # traffic a host sends into a veth/tap has partial checksums, which xdp: completes only when
    # asked (packet: always does): forwarded as they came, the next kernel would drop them
    opts = {"promisc": promisc, "fix_checksums": True} if devices else lossless
    async with contextlib.AsyncExitStack() as stack:
        a, b = [await stack.enter_async_context(aioixy.open(d, **opts))
                for d in (devices or ["null", "pair:fwd:a"])]
        tasks = [asyncio.create_task(forward(a, b, counts))]
        if devices:
            tasks.append(asyncio.create_task(forward(b, a, counts)))
        else:
            sink = await stack.enter_async_context(aioixy.open("pair:fwd:b", **lossless))
            tasks.append(asyncio.create_task(check(sink, mac_bytes(b), result)))
        # SIGTERM / Ctrl-C end the run like --duration does: summary printed, pools checked
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait([*tasks, stopper], timeout=duration,
                           return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()  # cancelled tasks' tracebacks hold the last batch: let it go
    gc.collect()
    return {"forwarded": counts, **({} if devices else result),
            "pools_whole": aioixy.native_pools_alive() == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("devices", nargs="*", help="two devices (default: the built-in self-test)")
    ap.add_argument("--duration", type=float, default=2.0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--promisc", action="store_true",
                    help="receive frames addressed to any MAC (a forwarder between two NICs)")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    if len(args.devices) not in (0, 2):
        ap.error("give two devices, or none for the self-test")
    summary = aioixy.run(run(args.devices, args.duration, args.promisc), uvloop=args.uvloop)
    print(json.dumps(summary) if args.json else
          "\n".join(f"{k}: {v}" for k, v in summary.items()))
    ok = summary["pools_whole"] and not summary.get("out_of_order") \
        and not summary.get("bad_mac")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
