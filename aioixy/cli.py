"""The ``aioixy`` command: list, pktgen, fwd, dump, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
import time
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aioixy.control import ControlPlane


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON summary (and no status line)")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--uvloop", action="store_true", help="run on uvloop")
    p.add_argument("--force", action="store_true", help="take NICs that are up with addresses")
    p.add_argument("--options", default="", metavar="K=V,...",
                   help="driver options, e.g. wire=gen,flows=64 for a sim-82599 card")
    p.add_argument("--http", type=_hostport, metavar="HOST:PORT",
                   help="serve the HTTP control plane (JSON API, /metrics, live dashboard) "
                        "beside the job; port 0 picks a free one (needs aioixy[http])")


def _hostport(text: str) -> tuple[str, int]:
    from aioixy.control.app import parse_hostport

    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _rate(text: str) -> float:
    from aioixy.tools import check_rate

    try:
        rate = check_rate(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert rate is not None
    return rate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aioixy", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="network PCI devices and whether aioixy can (safely) take them")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("pktgen", help="send numbered packets, optionally at a fixed rate")
    p.add_argument("device")
    p.add_argument("--rate", type=_rate, help="packets per second (default: as fast as possible)")
    p.add_argument("--size", type=int, default=60, help="frame size in bytes (default 60)")
    p.add_argument("--count", type=int, help="stop after this many packets")
    _add_common(p)
    p = sub.add_parser("fwd", help="forward between two devices, both directions")
    p.add_argument("device_a")
    p.add_argument("device_b")
    _add_common(p)
    p = sub.add_parser("dump", help="capture to a pcap file")
    p.add_argument("device")
    p.add_argument("--write", "-w", required=True, metavar="FILE.pcap")
    p.add_argument("--count", type=int, help="stop after this many packets")
    _add_common(p)
    p = sub.add_parser("replay", help="send the packets of a pcap file")
    p.add_argument("file")
    p.add_argument("device")
    p.add_argument("--rate", type=_rate, help="packets per second")
    _add_common(p)
    p = sub.add_parser("demo", help="forward on the built-in devices, with live rates")
    p.add_argument("--device", default="null", help="source device (default: null)")
    _add_common(p)
    return parser


async def _run_job(args: argparse.Namespace) -> dict:
    import aioixy
    from aioixy import tools
    from aioixy.pcap import PcapWriter

    if args.http:
        from aioixy.control import PktgenControl

    opts = {"batch_size": args.batch_size, "force": args.force, "options": args.options}
    job = tools.Job(args.cmd)
    ports: list[aioixy.Port] = []
    main_tasks: list[asyncio.Task] = []
    loop = asyncio.get_running_loop()
    # Ctrl-C: stop the job cleanly (ports closed, buffers back in their pools), then summarize
    with contextlib.suppress(NotImplementedError):
        loop.add_signal_handler(signal.SIGINT, job.stop.set)
    async with contextlib.AsyncExitStack() as stack:
        async def port(dev: str, **kw) -> aioixy.Port:
            p = await stack.enter_async_context(aioixy.open(dev, **{**opts, **kw}))
            ports.append(p)
            return p

        if args.cmd == "pktgen":
            p = await port(args.device, rx=False)
            lim = tools.RateLimiter(args.rate, args.batch_size)
            main_tasks.append(asyncio.create_task(
                tools.pktgen(p, job, args.size, args.count, lim, args.batch_size)))
        elif args.cmd == "fwd":
            a, b = await port(args.device_a), await port(args.device_b)
            main_tasks += [asyncio.create_task(tools.forward(a, b, job)),
                           asyncio.create_task(tools.forward(b, a, job))]
        elif args.cmd == "dump":
            p = await port(args.device)
            f = stack.enter_context(open(args.write, "wb"))  # noqa: SIM115
            main_tasks.append(asyncio.create_task(tools.dump(p, job, PcapWriter(f), args.count)))
        elif args.cmd == "replay":
            p = await port(args.device, rx=False)
            lim = tools.RateLimiter(args.rate, args.batch_size)
            main_tasks.append(asyncio.create_task(tools.replay(p, job, args.file, lim,
                                                               args.batch_size)))
        if args.http:
            # entered last, so it is shut down first: no request reads a port being closed
            control = await stack.enter_async_context(_control_plane(args.http))
            for p in ports:
                control.add_port(p)
            if args.cmd == "pktgen":
                control.pktgen = PktgenControl(lim, job, ports[0].name, args.size)
        job.started = time.monotonic()
        status = asyncio.create_task(_status(job, ports, not args.json))
        stopper = asyncio.create_task(job.stop.wait())
        timeout = args.duration
        await asyncio.wait([*main_tasks, stopper], timeout=timeout,
                           return_when=asyncio.FIRST_COMPLETED)
        job.stop.set()
        job.stopped = time.monotonic()
        for t in (*main_tasks, stopper, status):
            t.cancel()
        results = await asyncio.gather(*main_tasks, return_exceptions=True)
        await asyncio.gather(status, stopper, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError):
                raise r
        await _tx_drained(ports)
        summary = job.summary(ports)
        main_tasks.clear()  # finished tasks keep their frames (and any batch in them) alive
    gc.collect()
    summary["pools_whole"] = aioixy.native_pools_alive() == 0
    return summary


async def _tx_drained(ports, timeout: float = 1.0) -> None:
    """Give the pollers a moment to hand queued packets to the device, so the summary's
    tx counters include everything the job sent (bounded: a stuck device must not hang us)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.closed or ((s := p.stats()).tx_ring_used == 0 and s.tx_pending == 0)
               for p in ports):
            return
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def _control_plane(hostport: tuple[str, int]) -> AsyncIterator[ControlPlane]:
    """Serve an empty control plane on the running loop; yields it for ports to be added."""
    from aioixy.control import ControlPlane, make_app, serving

    control = ControlPlane()
    async with serving(make_app(control), *hostport) as url:
        # stderr, and always (also with --json): scripts started with port 0 need the address
        print(f"aioixy: control plane on {url}/", file=sys.stderr, flush=True)
        yield control


async def _demo(args: argparse.Namespace):
    from aioixy import demo

    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(_control_plane(args.http)) \
            if args.http else None
        return await demo.run(args.device, args.duration or 5.0, args.batch_size,
                              as_json=args.json, control=control)


async def _status(job, ports, show: bool) -> None:
    if not show:
        return
    tty = sys.stderr.isatty()
    last_n, last_t = 0, time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        rate = (job.packets - last_n) / (now - last_t)
        last_n, last_t = job.packets, now
        drops = sum(p.stats().rx_dropped for p in ports if not p.closed)
        line = f"{job.name}: {job.packets} packets, {rate / 1e6:.3f} Mpps, {drops} rx dropped"
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr,
              flush=True)


def _print_list(as_json: bool) -> None:
    from aioixy.netlist import SOFTWARE, network_devices

    nics = network_devices()
    if as_json:
        print(json.dumps({"pci": [{**attrs.asdict(n), "safe": n.safe} for n in nics],
                          "software": SOFTWARE}, indent=1))
        return
    print(f"{'address':<14} {'id':<10} {'aioixy':<8} {'kernel':<12} {'interface':<10} state")
    for n in nics:
        state = ("UNSAFE: up with " + ", ".join(n.addresses)) if not n.safe else \
            ("up, no address" if n.up else "down")
        print(f"{n.address:<14} {n.vendor}:{n.device:<5} {n.aioixy_driver or '-':<8} "
              f"{n.kernel_driver or '-':<12} {n.interface or '-':<10} {state}")
    for s in SOFTWARE:
        print(f"{s['device']:<40} {s['what']}")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from aioixy import AioixyError

    if args.cmd == "list":
        _print_list(args.json)
        return 0
    if args.uvloop:
        import uvloop

        run = uvloop.run
    else:
        run = asyncio.run
    try:
        if args.cmd == "demo":
            result = run(_demo(args))
            return 0 if result.pools_whole and not result.out_of_order else 1
        summary = run(_run_job(args))
    except AioixyError as exc:
        print(f"aioixy: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        # --http without the http extra installed
        print(f"aioixy: {exc} (pip install 'aioixy[http]')", file=sys.stderr)
        return 2
    except OSError as exc:  # a missing file, an HTTP address in use
        print(f"aioixy: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(summary))
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        pools = "whole" if summary["pools_whole"] else "NOT whole"
        print(f"{summary['job']}: {summary['packets']} packets in {summary['seconds']} s "
              f"({summary['pps']} pps); mempools {pools}")
    return 0 if summary["pools_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
