"""Capture packets to a pcap or pcapng file that tcpdump, Wireshark, tshark and scapy read.

    python examples/pcap_capture.py OUT.pcap [--device DEV] [--count N] [--duration S]
                                             [--snaplen B] [--format pcap|pcapng] [--json]

Without --device it captures from the built-in null device (numbered Ethernet/IPv4/UDP frames).
Ctrl-C or SIGTERM ends the capture cleanly: the file holds every packet counted in the summary.
Each batch is written by one native call (aioixy.jobs.capfile.CaptureWriter: the records'
headers and payloads in one writev, no Python per packet) with one timestamp per batch: the
batch is what arrived together.
"""

from __future__ import annotations

import argparse
import json
import sys

import aioixy
from aioixy.jobs import until_stopped
from aioixy.jobs.capfile import CaptureWriter


async def capture(port: aioixy.Port, writer: CaptureWriter, count: int | None) -> int:
    async for batch in port.rx():
        with batch:  # buffers go back to the pool as soon as they are written
            writer.write(batch, None if count is None else count - writer.packets)
        if count is not None and writer.packets >= count:
            break
    return writer.packets


async def run(path: str, device: str, count: int | None, duration: float | None,
              snaplen: int, fmt: str = "pcap") -> dict:
    # a capture should see everything: the null source waits for us instead of dropping
    opts = {"overflow": "pause"} if device == "null" else {"promisc": True}
    with CaptureWriter(path, fmt, snaplen) as writer:
        async with aioixy.open(device, **opts) as port:
            # until the count, the duration, Ctrl-C or SIGTERM, whichever comes first
            done = await until_stopped(capture(port, writer, count), timeout=duration)
            stats = port.stats()
    return {"file": path, "packets": writer.packets, "device": device,
            "stopped": "count" if done is not None else "duration or signal",
            "rx_dropped": stats.rx_dropped, "writer_dropped": writer.dropped,
            "pools_whole": aioixy.native_pools_alive() == 0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", help="pcap file to write")
    ap.add_argument("--device", default="null")
    ap.add_argument("--count", type=int, help="stop after this many packets")
    ap.add_argument("--duration", type=float, help="stop after this many seconds")
    ap.add_argument("--snaplen", type=int, default=65535, help="bytes kept per packet")
    ap.add_argument("--format", choices=["pcap", "pcapng"], default="pcap")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop")
    args = ap.parse_args()
    if args.count is None and args.duration is None:
        args.count = 1000
    summary = aioixy.run(run(args.file, args.device, args.count, args.duration, args.snaplen,
                             args.format), uvloop=args.uvloop)
    print(json.dumps(summary) if args.json else
          f"captured {summary['packets']} packets from {args.device} into {args.file}")
    return 0 if summary["pools_whole"] else 1


if __name__ == "__main__":
    sys.exit(main())
