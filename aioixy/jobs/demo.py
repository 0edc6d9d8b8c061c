"""The README's main job: a forwarder on the built-in default devices, with live rates.

null (a line-rate packet source) --rx--> Python --tx--> pair:demo:a ==wire==> pair:demo:b --rx-->
Python (checks every sequence number). Runs anywhere: no NIC, no hugepages, no root.
With a NIC: ``--device 0000:01:00.0`` forwards what that NIC receives into the pair instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import sys
import time
from typing import Any, TextIO

import attrs

import aioixy
from aioixy.core.frames import frame_seq
from aioixy.jobs import units


@attrs.define
class DemoResult:
    seconds: float
    forwarded: int
    received: int
    out_of_order: int
    rx_dropped: int
    mpps_forwarded: float
    mpps_received: float
    #: the frames' bits per second forwarded (without FCS, preamble and gap)
    bps_forwarded: float
    pools_whole: bool
    #: tasks that died mid-run: {"task": name, "error": "Type: message"}
    dead: list[dict[str, str]] = attrs.field(factory=list)


async def run(device: str = "null", duration: float | None = 5.0, batch_size: int = 64,
              out: TextIO | None = None, as_json: bool = False, control: Any = None,
              stop: asyncio.Event | None = None, options: str = "",
              force: bool = False, busy: bool = False) -> DemoResult:
    """Forward `device` -> pair:demo:a ==> pair:demo:b for `duration` s (None: until `stop`).

    `options` and `force` are the source device's (the pair takes neither): e.g. a sim-82599
    card generating its own traffic with ``options="wire=gen"``, or a NIC that is up.
    `busy`: busy-polling pollers, a thread per queue (default: the in-memory ports share one).
    `out`: where the lines go (default: ``sys.stdout`` as it is when the demo runs, not as it
    was at import: a test's captured stream is closed after that test).
    """
    out = sys.stdout if out is None else out
    stop = stop if stop is not None else asyncio.Event()
    duration = math.inf if duration is None else duration
    idle: dict[str, Any] = {"idle": aioixy.IdlePolicy.busy()} if busy else {}
    src_opts: dict[str, Any] = {"overflow": "pause"} if device == "null" else {}
    src_opts.update(options=options, force=force, **idle)
    async with aioixy.open(device, batch_size=batch_size, **src_opts) as src, \
            aioixy.open("pair:demo:a", batch_size=batch_size, flow_control=True, **idle) as a, \
            aioixy.open("pair:demo:b", batch_size=batch_size, **idle) as b:
        if control is not None:  # an aioixy.control.ControlPlane serving beside the demo
            for p in (src, a, b):
                control.add_port(p)
        forwarded = received = disorder = forwarded_bytes = 0
        last_seq = -1

        async def forward() -> None:
            nonlocal forwarded, forwarded_bytes
            async for batch in src.rx():
                n, nbytes = len(batch), batch.nbytes
                try:
                    await a.tx(batch)
                finally:
                    forwarded += n - len(batch)  # a cancelled tx may have sent a prefix
                    forwarded_bytes += nbytes - batch.nbytes
                    batch.release()
                if stop.is_set():
                    return

        async def sink() -> None:
            nonlocal received, disorder, last_seq
            async for batch in b.rx():
                with batch:
                    received += len(batch)
                    if device == "null":  # the null source numbers its packets
                        first = frame_seq(batch[0].data)
                        if first <= last_seq:
                            disorder += 1
                        last_seq = frame_seq(batch[-1].data)
                if stop.is_set():
                    return

        tasks = [asyncio.create_task(forward(), name=f"forward {device} -> pair:demo:a"),
                 asyncio.create_task(sink(), name="sink pair:demo:b")]
        t0 = prev_t = time.perf_counter()
        prev_f = prev_r = prev_fb = 0
        tty = out.isatty() and not as_json
        while (now := time.perf_counter()) - t0 < duration and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.5, t0 + duration - now))
            now = time.perf_counter()
            dt = now - prev_t
            if not as_json:
                fwd = units.rates((forwarded - prev_f) / dt, (forwarded_bytes - prev_fb) / dt)
                line = (f"[{now - t0:4.1f}s] fwd {fwd:>24}   "
                        f"rx {units.packet_rate((received - prev_r) / dt):>10}   "
                        f"dropped {units.count(b.stats().rx_dropped)}")
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=out,
                      flush=True)
            prev_t, prev_f, prev_r, prev_fb = now, forwarded, received, forwarded_bytes
            if any(t.done() for t in tasks):  # a task ended early: it died; stop and say so
                break
        stop.set()
        elapsed = time.perf_counter() - t0
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        dead = [{"task": t.get_name(), "error": f"{type(r).__name__}: {r}"}
                for t, r in zip(tasks, results, strict=True)
                if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        del results
        # a cancelled task keeps its CancelledError, whose traceback keeps the coroutine's
        # frame and the batch it held: drop them so the pools can be counted as whole below
        tasks.clear()
        if tty:
            print(file=out)
        rx_dropped = b.stats().rx_dropped
    gc.collect()
    result = DemoResult(
        seconds=round(elapsed, 3), forwarded=forwarded, received=received,
        out_of_order=disorder, rx_dropped=rx_dropped,
        mpps_forwarded=round(forwarded / elapsed / 1e6, 3),
        mpps_received=round(received / elapsed / 1e6, 3),
        bps_forwarded=round(forwarded_bytes * 8 / elapsed),
        pools_whole=aioixy.native_pools_alive() == 0, dead=dead,
    )
    if as_json:
        print(json.dumps(attrs.asdict(result)), file=out)
    else:
        print(f"summary: forwarded {units.count(forwarded)} packets "
              f"({units.rates(forwarded / elapsed, forwarded_bytes / elapsed)}) "
              f"{device} -> pair:demo:a, received {units.count(received)} on pair:demo:b "
              f"({units.packet_rate(received / elapsed)}), {units.count(rx_dropped)} dropped, "
              f"{disorder} out of order, "
              f"mempools {'whole' if result.pools_whole else 'NOT whole'}"
              + "".join(f"; DIED: {d['task']}: {d['error']}" for d in dead), file=out)
    return result
