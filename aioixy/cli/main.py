"""The ``aioixy`` command: list, pktgen, fwd, dump, replay, demo."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import attrs

from aioixy._ffi import lib
from aioixy.core.config import MAX_BATCH

# exit codes (documented in `aioixy --help` and docs/user-guide.md; tests/apps/test_cli.py
# checks each)
EXIT_OK = 0
EXIT_POOLS_NOT_WHOLE = 1
EXIT_USAGE = 2
EXIT_DEVICE = 3
EXIT_JOB_DIED = 4

EPILOG = """\
exit codes:
  0  the job ran and stopped (count or duration reached, Ctrl-C or SIGTERM), mempools whole
  1  mempools not whole after the run (buffers leaked), or demo frames out of order: a bug;
     please report it
  2  bad arguments or input: an option out of range, an unknown driver option, a file that
     cannot be read (or written) or is not a pcap/pcapng file, a bad --http-token, a missing
     extra
  3  device or system error: no such device, busy, not permitted, no hugepages, device
     failure, an HTTP address that cannot be bound
  4  a job died mid-run (e.g. a mempool ran dry); the summary names it and the error
"""

#: how long the demo runs without --duration (and without --http: then until Ctrl-C)
DEMO_SECONDS = 5.0

#: the largest frame any port's buffer can hold (the largest buffers less their header)
MAX_FRAME = lib.AIOIXY_MAX_BUF_SIZE - lib.AIOIXY_PKT_HEADER
#: the most bytes of a packet a capture keeps (tcpdump's default snap length)
MAX_SNAPLEN = lib.AIOIXY_CAP_MAX_SNAPLEN

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from aioixy.control import ControlPlane


class UsageError(Exception):
    """Bad arguments or input found after parsing (exit code 2)."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON summary (and no status line)")
    p.add_argument("--duration", type=_seconds, help="stop after this many seconds")
    p.add_argument("--batch-size", type=_int_in(1, MAX_BATCH), default=64)
    p.add_argument("--uvloop", action="store_true", help="run on uvloop")
    p.add_argument("--busy", action="store_true",
                   help="busy-polling pollers (a thread per queue that never sleeps: the lowest "
                        "latency, a core per queue)")
    p.add_argument("--force", action="store_true", help="take NICs that are up with addresses")
    p.add_argument("--options", default="", metavar="K=V,...",
                   help="driver options, e.g. wire=gen,flows=64 for a sim-82599 card")
    p.add_argument("--http", type=_hostport, metavar="HOST:PORT",
                   help="serve the HTTP control plane (JSON API, /metrics, live dashboard) "
                        "beside the job; port 0 picks a free one (needs aioixy[http])")
    p.add_argument("--http-token", metavar="TOKEN",
                   help="the control plane's token (default: $AIOIXY_HTTP_TOKEN, else a random "
                        "one, printed with the address); needed for every change, and for "
                        "every request when bound beyond localhost")


def _add_divert(p: argparse.ArgumentParser) -> None:
    p.add_argument("--divert", type=_divert, metavar="RULES",
                   help="xdp:/packet: take only these frames, leave the rest to the kernel: "
                        "PROTO[:PORT],... (e.g. udp:9999,icmp) or the firewall's JSON rules "
                        "('[{\"action\": \"allow\", \"proto\": \"udp\", \"dport\": 9999}]'); "
                        "narrow rules need no --force (docs/kernel-ports.md)")


def _divert(text: str) -> list[dict[str, Any]]:
    """--divert: JSON rule dicts, or the short form PROTO[:PORT],... (each one allow rule)."""
    if text.lstrip().startswith("["):
        try:
            rules = json.loads(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"--divert: not JSON: {exc}") from None
        if not isinstance(rules, list):
            raise argparse.ArgumentTypeError("--divert: a JSON list of rule objects")
        return rules
    rules = []
    for tok in filter(None, (t.strip() for t in text.split(","))):
        proto, _, port = tok.partition(":")
        rule: dict[str, Any] = {"action": "allow", "proto": proto}
        if port:
            if not port.isdigit():
                raise argparse.ArgumentTypeError(f"--divert: {tok!r}: the port is a number")
            rule["dport"] = int(port)
        rules.append(rule)
    if not rules:
        raise argparse.ArgumentTypeError("--divert: no rules (e.g. udp:9999,icmp)")
    return rules
def _add_queues(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queues", type=_queues, default=1, metavar="all|N",
                   help="rx queues to receive on (default 1): 'all' takes every rx queue of an "
                        "xdp:/packet: interface (xdp:IF on fewer leaves the others' frames to "
                        f"the kernel, with a warning); N: 1..{lib.AIOIXY_MAX_QUEUES}")


def _queues(text: str) -> int | str:
    return "all" if text == "all" else _int_in(1, lib.AIOIXY_MAX_QUEUES)(text)


def _rx_queues(dev: str, queues: int | str) -> int:
    """What --queues means for one device: 'all' is its interface's rx queue count."""
    if queues != "all":
        return int(queues)
    kind, _, ifname = dev.partition(":")
    if kind not in ("xdp", "packet") or not ifname or ":" in ifname:
        raise UsageError(f"--queues all: {dev} is not a whole kernel interface (xdp:IF or "
                         "packet:IF); give a number")
    from aioixy._ffi import ffi

    nif = ffi.new("struct aioixy_netif *")
    if lib.aioixy_netif_lookup(ifname.encode(), nif) != 0:
        return 1  # the open says what is wrong with the name
    return min(nif.rx_queues, lib.AIOIXY_MAX_QUEUES)


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=_int_in(1, 256), default=1, metavar="N",
                   help="run the job in N processes (packet: interfaces shared by a fanout "
                        "group; --count and --rate split between them; dump writes FILE.wI.ext "
                        "per worker); a worker that dies is restarted (docs/scale-out.md)")


def _hostport(text: str) -> tuple[str, int]:
    from aioixy.control.app import parse_hostport

    try:
        return parse_hostport(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_in(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not lo <= value <= hi:
            if hi < 2**32:
                raise argparse.ArgumentTypeError(f"{value} is not in {lo}..{hi}")
            # a count: its upper bound is only there to keep it in 64 bits, and reads as noise
            raise argparse.ArgumentTypeError(f"{value}: must be {lo} or more" if value < lo
                                             else f"{value}: too large (at most 2**63)")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: must be a positive number of seconds")
    return value


def _rate(text: str) -> float:
    from aioixy.jobs import check_rate

    try:
        rate = check_rate(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    assert rate is not None
    return rate


def _size(text: str) -> tuple[int, int]:
    from aioixy.core.generator import parse_size

    try:
        lo, hi = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    for v in (lo, hi):
        if not lib.AIOIXY_FRAME_MIN <= v <= MAX_FRAME:
            raise argparse.ArgumentTypeError(f"{v} is not in {lib.AIOIXY_FRAME_MIN}..{MAX_FRAME}")
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text}: the range's low end is above its high end")
    return lo, hi


def _parsed(parse: Callable[[str, str], Any], what: str) -> Callable[[str], str]:
    """An argparse type that checks a value with `parse` and keeps the text."""
    def check(text: str) -> str:
        try:
            parse(text, what)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _add_frame_options(p: argparse.ArgumentParser) -> None:
    """What pktgen's frames carry (aioixy.FrameSpec): addresses, ports and flows."""
    from aioixy.core import frames
    from aioixy.core.generator import VARY, parse_ipv4, parse_mac

    g = p.add_argument_group("frame (Ethernet/IPv4/UDP, correct checksums)")
    g.add_argument("--dst-mac", type=_parsed(parse_mac, "--dst-mac"), default="ff:ff:ff:ff:ff:ff",
                   help="destination MAC (default: broadcast)")
    g.add_argument("--src-mac", type=_parsed(parse_mac, "--src-mac"),
                   help="source MAC (default: the port's)")
    g.add_argument("--src-ip", type=_parsed(parse_ipv4, "--src-ip"), default="198.18.0.1")
    g.add_argument("--dst-ip", type=_parsed(parse_ipv4, "--dst-ip"), default="198.18.0.2")
    g.add_argument("--sport", type=_int_in(0, 65535), default=frames.FLOW_PORT_BASE,
                   help=f"UDP source port (default {frames.FLOW_PORT_BASE})")
    g.add_argument("--dport", type=_int_in(0, 65535), default=frames.DST_PORT,
                   help=f"UDP destination port (default {frames.DST_PORT})")
    g.add_argument("--flows", type=_int_in(1, 1 << 24), default=1,
                   help="spread frames round robin over this many flows (see --vary)")
    g.add_argument("--vary", choices=list(VARY), default="sport",
                   help="what differs between flows: flow f adds f to it (default: sport)")
    g.add_argument("--timestamp", action="store_true",
                   help="a u64 send time (ns since the epoch) after the sequence number")


def _frame_spec(a: argparse.Namespace):
    import aioixy

    return aioixy.FrameSpec(dst_mac=a.dst_mac, src_mac=a.src_mac, src_ip=a.src_ip,
                            dst_ip=a.dst_ip, sport=a.sport, dport=a.dport,
                            size=a.size, flows=a.flows, vary=a.vary, timestamp=a.timestamp)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aioixy", description=__doc__.split("\n")[0],
                                     epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("list", help="network PCI devices and kernel interfaces, and whether "
                       "aioixy can (safely) take them")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("pktgen", help="send numbered packets, optionally at a fixed rate")
    p.add_argument("device")
    p.add_argument("--rate", type=_rate, help="packets per second (default: as fast as possible)")
    p.add_argument("--size", type=_size, default=(lib.AIOIXY_FRAME_MIN,) * 2, metavar="B|LO-HI",
                   help="frame size in bytes without FCS (default 60, the Ethernet minimum; at "
                        "most what the port's buffers hold), or a range: each frame's size drawn "
                        "uniformly from LO..HI")
    p.add_argument("--count", type=_int_in(0, 2**63), help="stop after this many packets")
    _add_frame_options(p)
    _add_workers(p)
    _add_common(p)
    p = sub.add_parser("fwd", help="forward between two devices, both directions")
    p.add_argument("device_a")
    p.add_argument("device_b")
    _add_divert(p)
    _add_queues(p)
    _add_workers(p)
    _add_common(p)
    p = sub.add_parser("dump", help="capture to a pcap or pcapng file")
    p.add_argument("device")
    p.add_argument("--write", "-w", required=True, metavar="FILE",
                   help="the capture file; '-' writes to standard output (the summary then "
                        "goes to stderr)")
    p.add_argument("--format", choices=["pcap", "pcapng"], default="pcap",
                   help="pcap (tcpdump's, microseconds; the default) or pcapng (Wireshark's "
                        "default, nanoseconds)")
    p.add_argument("--snaplen", "-s", type=_int_in(0, MAX_SNAPLEN), default=0, metavar="B",
                   help=f"bytes kept of each packet (0, the default: {MAX_SNAPLEN})")
    p.add_argument("--file-size", "-C", type=_int_in(1, 10**6), metavar="MB",
                   help="start a new file once the current one holds MB million bytes: FILE, "
                        "FILE1, FILE2, ... (like tcpdump -C)")
    p.add_argument("--files", "-W", type=_int_in(1, 10**6), metavar="N",
                   help="with -C: a ring of N files FILE0..FILE<N-1>, the oldest overwritten")
    p.add_argument("--count", type=_int_in(0, 2**63), help="stop after this many packets")
    _add_divert(p)
    _add_queues(p)
    _add_workers(p)
    _add_common(p)
    p = sub.add_parser("replay", help="send the packets of a pcap file")
    p.add_argument("file")
    p.add_argument("device")
    p.add_argument("--rate", type=_rate, help="packets per second")
    _add_common(p)
    p = sub.add_parser("demo", help="forward on the built-in devices, with live rates "
                       f"({DEMO_SECONDS:g} s; with --http until Ctrl-C)")
    p.add_argument("--device", default="null",
                   help="source device (default: null); --options and --force apply to it")
    _add_common(p)
    return parser


@attrs.define
class _Setup:
    """What a command's setup gets: its arguments and the means to open ports and start tasks."""

    args: argparse.Namespace
    job: Any
    stack: contextlib.AsyncExitStack
    ports: list = attrs.field(factory=list)
    tasks: list[asyncio.Task] = attrs.field(factory=list)
    #: called with the control plane once it serves (--http), e.g. to expose pktgen's knobs
    on_control: Callable[[ControlPlane], None] | None = None

    async def port(self, dev: str, **kw: Any):
        import aioixy

        a = self.args
        opts = {"batch_size": a.batch_size, "force": a.force, "options": a.options, **kw}
        if getattr(a, "divert", None) is not None:
            opts["divert"] = a.divert
        worker = getattr(a, "worker", None)  # --workers: this process is one of them
        if worker is not None:
            opts["options"] = worker.options_for(dev)  # the run's fanout group
        if a.busy:
            opts["idle"] = aioixy.IdlePolicy.busy()
        if kw.get("rx", True) and getattr(a, "queues", 1) != 1:
            opts["rx_queues"] = _rx_queues(dev, a.queues)
        with warnings.catch_warnings(record=True) as said:
            warnings.simplefilter("always", aioixy.QueuesLeftWarning)
            p = await self.stack.enter_async_context(aioixy.open(dev, **opts))
        for w in said:  # e.g. QueuesLeftWarning: frames this port will never see
            print(f"aioixy: warning: {w.message}", file=sys.stderr, flush=True)
        self.ports.append(p)
        if worker is not None:
            worker.ports.append(p)  # reported to the supervisor
        return p

    def start(self, coro: Coroutine, name: str) -> None:
        self.tasks.append(asyncio.create_task(coro, name=name))


async def _pktgen(s: _Setup) -> None:
    import aioixy
    from aioixy import jobs
    from aioixy.jobs.pktgen import burst_for

    a = s.args
    p = await s.port(a.device, rx=False)
    if a.size[1] > p.info.data_room:  # the driver's buffers, which may be larger than asked
        raise UsageError(f"--size {a.size[1]}: a {p.info.buf_size}-byte buffer holds frames of "
                         f"at most {p.info.data_room} bytes")
    gen = aioixy.Generator(p, _frame_spec(a))
    lim = jobs.RateLimiter(a.rate, burst_for(p))
    s.start(jobs.pktgen(p, s.job, count=a.count, limiter=lim, gen=gen), f"pktgen on {p.name}")

    def expose(control: ControlPlane) -> None:
        from aioixy.control import PktgenControl

        control.pktgen = PktgenControl(lim, s.job, p.name, gen)

    s.on_control = expose


async def _fwd(s: _Setup) -> None:
    from aioixy import jobs

    # forwarded frames must be finished ones: complete the partial checksums of a host's own
    # traffic (veth, tap) on xdp: (packet: always does; docs/kernel-ports.md)
    a = await s.port(s.args.device_a, fix_checksums=True)
    b = await s.port(s.args.device_b, fix_checksums=True)
    s.start(jobs.forward(a, b, s.job), f"fwd {a.name} -> {b.name}")
    s.start(jobs.forward(b, a, s.job), f"fwd {b.name} -> {a.name}")


async def _dump(s: _Setup) -> None:
    from aioixy import jobs
    from aioixy.jobs.capfile import CaptureWriter

    a = s.args
    if a.files is not None and a.file_size is None:
        raise UsageError("--files (-W) needs --file-size (-C): a ring of files of that size")
    if a.write == "-" and a.file_size is not None:
        raise UsageError("--file-size (-C): standard output cannot be split into files")
    try:
        writer = CaptureWriter(a.write, a.format, a.snaplen or MAX_SNAPLEN,
                               a.file_size * 10**6 if a.file_size else None, a.files)
    except OSError as exc:
        raise UsageError(f"{exc.filename or a.write}: {exc.strerror or exc}") from None
    s.stack.callback(writer.close)
    p = await s.port(a.device)

    async def dump() -> None:  # a file that fails (a full disk) ends the job
        try:
            await jobs.dump(p, s.job, writer, a.count)
        finally:
            s.job.extra["files"] = list(dict.fromkeys(writer.paths))

    s.start(dump(), f"dump {p.name} to {a.write}")


async def _replay(s: _Setup) -> None:
    from aioixy import jobs
    from aioixy.jobs.pcap import PcapError

    a = s.args
    try:  # bad input is found before any device is opened
        frames, cut = jobs.load_pcap(a.file)
    except (OSError, PcapError) as exc:
        raise UsageError(f"{a.file}: {exc.strerror or exc}" if isinstance(exc, OSError)
                         else f"{a.file}: {exc}") from None
    if cut:
        print(f"aioixy: {a.file}: {cut}; replaying those", file=sys.stderr, flush=True)
    p = await s.port(a.device, rx=False)
    lim = jobs.RateLimiter(a.rate, a.batch_size)
    s.start(jobs.replay(p, s.job, a.file, lim, a.batch_size, frames=frames),
            f"replay into {p.name}")


#: the long-running jobs: each opens its ports and starts its tasks; _run_job does the rest
JOBS: dict[str, Callable[[_Setup], Awaitable[None]]] = {
    "pktgen": _pktgen, "fwd": _fwd, "dump": _dump, "replay": _replay,
}


async def _run_job(args: argparse.Namespace) -> dict:
    import aioixy
    from aioixy import jobs

    job = jobs.Job(args.cmd)
    _stop_on_signals(job.stop)
    async with contextlib.AsyncExitStack() as stack:
        setup = _Setup(args, job, stack)
        try:
            await JOBS[args.cmd](setup)
            if args.http:
                # entered last, so it is shut down first: no request reads a port being closed
                control = await stack.enter_async_context(
                    _control_plane(args.http, args.http_token))
                control.job = job  # the dashboard names it, and says when it ended
                for p in setup.ports:
                    control.add_port(p)
                if setup.on_control:
                    setup.on_control(control)
        except BaseException:
            # set-up failed (say the HTTP address is taken) after tasks started: end them
            # before their ports close, so none dies unheard
            for t in setup.tasks:
                t.cancel()
            await asyncio.gather(*setup.tasks, return_exceptions=True)
            setup.tasks.clear()
            raise
        ports, main_tasks = setup.ports, setup.tasks
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
        bad = next((r for r in results if isinstance(r, aioixy.InvalidOption)), None)
        if bad is not None:
            raise bad  # bad input met by the job (exit 2), not a failure of the job
        # a task that failed stopped the job for good: say so (and in the exit code)
        dead = [{"task": t.get_name(), "error": f"{type(r).__name__}: {r}"}
                for t, r in zip(main_tasks, results, strict=True)
                if isinstance(r, Exception) and not isinstance(r, asyncio.CancelledError)]
        del results  # their tracebacks hold the tasks' frames (and any batch in them)
        await _tx_drained(ports)
        summary = job.summary(ports)
        summary["dead"] = dead
        main_tasks.clear()  # finished tasks keep their frames (and any batch in them) alive
    gc.collect()
    summary["pools_whole"] = aioixy.native_pools_alive() == 0
    return summary


def _stop_on_signals(stop: asyncio.Event) -> None:
    """Ctrl-C, and what `timeout`, systemd and docker send: both stop the job cleanly (ports
    closed, buffers back in their pools, the pcap file ends on a whole record) and print the
    summary."""
    from aioixy.jobs import stop_on_signals

    stop_on_signals(stop)


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
async def _control_plane(hostport: tuple[str, int],
                         token: str | None) -> AsyncIterator[ControlPlane]:
    """Serve an empty control plane on the running loop; yields it for ports to be added."""
    from aioixy.control import TOKEN_ENV, ControlPlane, make_app, serving, token_of, token_url
    from aioixy.control.security import is_loopback

    control = ControlPlane()
    token = token or os.environ.get(TOKEN_ENV) or None
    try:
        app = make_app(control, token=token)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    host = hostport[0]
    if not is_loopback(host):
        print(f"aioixy: WARNING: the control plane listens on {host}, beyond this machine: "
              "every request needs the token, and it travels unencrypted (plain HTTP)",
              file=sys.stderr, flush=True)
    async with serving(app, *hostport) as url:
        # stderr, and always (also with --json): scripts started with port 0 need the address
        print(f"aioixy: control plane on {token_url(url, token_of(app))}",
              file=sys.stderr, flush=True)
        yield control


async def _demo(args: argparse.Namespace):
    from aioixy.jobs import Job, demo

    job = Job("demo")  # its stop flag is the demo's; the dashboard shows its name and state
    stop = job.stop
    _stop_on_signals(stop)
    async with contextlib.AsyncExitStack() as stack:
        control = await stack.enter_async_context(_control_plane(args.http, args.http_token)) \
            if args.http else None
        if control is not None:
            control.job = job
        # serving a dashboard, the demo runs until stopped: by the time the page is
        # opened, a demo of the default 5 s would have ended
        duration = args.duration or (None if args.http else DEMO_SECONDS)
        return await demo.run(args.device, duration, args.batch_size,
                              as_json=args.json, control=control, stop=stop,
                              options=args.options, force=args.force, busy=args.busy)


async def _status(job, ports, show: bool) -> None:
    if not show:
        return
    from aioixy.jobs import units

    tty = sys.stderr.isatty()
    last_n, last_b, last_t = 0, 0, time.monotonic()
    while True:
        await asyncio.sleep(0.5)
        now = time.monotonic()
        dt = now - last_t
        rate, byte_rate = (job.packets - last_n) / dt, (job.bytes - last_b) / dt
        last_n, last_b, last_t = job.packets, job.bytes, now
        drops = sum(p.stats().rx_dropped for p in ports if not p.closed)
        line = (f"{job.name}: {units.count(job.packets)} packets, "
                f"{units.rates(rate, byte_rate)}, {units.count(drops)} rx dropped")
        if "writer_dropped" in job.extra:
            line += f", {units.count(job.extra['writer_dropped'])} dropped by the writer"
        print(("\r" + line) if tty else line, end="" if tty else "\n", file=sys.stderr,
              flush=True)


def _print_list(as_json: bool) -> None:
    from aioixy.devices.netlist import SOFTWARE, interfaces, network_devices

    nics = network_devices()
    ifaces = interfaces()
    if as_json:
        print(json.dumps({"pci": [{**attrs.asdict(n), "safe": n.safe} for n in nics],
                          "interfaces": [{**attrs.asdict(i), "safe": i.safe} for i in ifaces],
                          "software": SOFTWARE}, indent=1))
        return
    print(f"{'address':<14} {'id':<10} {'aioixy':<8} {'kernel':<12} {'interface':<10} state")
    for n in nics:
        if n.safe:
            state = "up, no address" if n.up else "down"
        elif n.interface is None:  # held by a network driver: its interface is elsewhere
            state = "UNSAFE: its interface is in another network namespace"
        else:
            state = "UNSAFE: up with " + ", ".join(n.addresses)
        print(f"{n.address:<14} {n.vendor}:{n.device:<5} {n.aioixy_driver or '-':<8} "
              f"{n.kernel_driver or '-':<12} {n.interface or '-':<10} {state}")
    print(f"\n{'interface':<16} {'backends':<12} {'queues':<7} {'mtu':<6} state")
    for i in ifaces:
        state = f"UNSAFE: {', '.join(i.addresses) or 'default route'}" if not i.safe else \
            ("up, no address" if i.up else "down")
        if i.master:
            state += f" (in {i.master})"
        print(f"{i.name:<16} {','.join(i.backends) or '- (not root)':<12} "
              f"{i.rx_queues}/{i.tx_queues:<5} {i.mtu:<6} {state}")
    print()
    for s in SOFTWARE:
        print(f"{s['device']:<40} {s['what']}")


def exit_code(summary: dict) -> int:
    """A finished job's exit code: leaked buffers first, then a dead job."""
    if not summary["pools_whole"]:
        return EXIT_POOLS_NOT_WHOLE
    return EXIT_JOB_DIED if summary.get("dead") else EXIT_OK


def _runner(args: argparse.Namespace) -> Callable[[Coroutine], Any]:
    import aioixy

    return functools.partial(aioixy.run, uvloop=args.uvloop)


def _cmd_list(args: argparse.Namespace) -> int:
    _print_list(args.json)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    result = _runner(args)(_demo(args))
    for d in result.dead:
        print(f"aioixy: {d['task']} died: {d['error']}", file=sys.stderr)
    if not result.pools_whole or result.out_of_order:
        return EXIT_POOLS_NOT_WHOLE
    return EXIT_JOB_DIED if result.dead else EXIT_OK


def _cmd_job(args: argparse.Namespace) -> int:
    from aioixy.jobs import units

    if getattr(args, "workers", 1) > 1:
        summary = _run_workers(args)
    else:
        summary = _runner(args)(_run_job(args))
    # `dump -w -` writes the capture to stdout: everything else goes to stderr
    out = sys.stderr if getattr(args, "write", None) == "-" else sys.stdout
    if args.json:
        print(json.dumps(summary), file=out)
    else:
        if sys.stderr.isatty():
            print(file=sys.stderr)
        pools = "whole" if summary["pools_whole"] else "NOT whole"
        dead = "".join(f"; DIED: {d['task']}: {d['error']}" for d in summary["dead"])
        print(f"{summary['job']}: {units.count(summary['packets'])} packets in "
              f"{summary['seconds']} s ({units.packet_rate(summary['pps'])}, "
              f"{units.scaled(summary['bps'], 'bit/s')}); mempools {pools}{dead}", file=out)
        if "writer_dropped" in summary:
            print(f"{summary['job']}: {units.count(summary['writer_dropped'])} dropped by the "
                  "writer (its output not keeping up), "
                  f"{units.count(sum(p['rx_dropped'] for p in summary['ports'].values()))} "
                  "dropped by the port (rx ring full)", file=out)
    for d in summary["dead"]:
        print(f"aioixy: {d['task']} died: {d['error']}", file=sys.stderr)
    return exit_code(summary)


def _run_workers(args: argparse.Namespace) -> dict:
    from aioixy.cli import workers

    if args.http and args.http_token:
        raise UsageError("--http-token with --workers: the workers' endpoint is a read-only "
                         "GET /metrics (no control to protect)")
    if getattr(args, "write", None) == "-":
        raise UsageError("--write - with --workers: each worker writes a file of its own")
    # refused before any worker starts: the same check as one job's
    if args.cmd == "dump" and args.files is not None and args.file_size is None:
        raise UsageError("--files (-W) needs --file-size (-C): a ring of files of that size")
    return workers.run(args, _run_job)



#: every subcommand: what runs it, returning the exit code
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": _cmd_list, "demo": _cmd_demo, **dict.fromkeys(JOBS, _cmd_job),
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from aioixy import AioixyError, InvalidOption

    try:
        return COMMANDS[args.cmd](args)
    except (InvalidOption, UsageError) as exc:
        print(f"aioixy: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportError as exc:
        # --http without the http extra installed
        print(f"aioixy: {exc} (pip install 'aioixy[http]')", file=sys.stderr)
        return EXIT_USAGE
    except (AioixyError, OSError) as exc:  # the device; an HTTP address in use
        print(f"aioixy: {exc}", file=sys.stderr)
        return EXIT_DEVICE


if __name__ == "__main__":
    sys.exit(main())
