"""Capture to and replay from pcap files: the dump and replay jobs."""

from __future__ import annotations

import aioixy
from aioixy.jobs.capfile import CaptureWriter
from aioixy.jobs.job import Job
from aioixy.jobs.pcap import open_capture
from aioixy.jobs.rate import RateLimiter
from aioixy.jobs.send import send_frames


async def dump(port: aioixy.Port, job: Job, writer: CaptureWriter,
               count: int | None = None) -> None:
    """Write what `port` receives, a batch per native write, until `count` or job.stop.

    ``job.extra["writer_dropped"]`` counts what the writer dropped itself (its output, a pipe,
    not keeping up), apart from the port's rx drops."""
    job.extra["writer_dropped"] = 0
    async for batch in port.rx():
        with batch:
            left = None if count is None else count - job.packets
            before = writer.bytes
            job.packets += writer.write(batch, left)
            job.bytes += writer.bytes - before
            job.extra["writer_dropped"] = writer.dropped
        if job.stop.is_set() or (count is not None and job.packets >= count):
            return


def load_pcap(path: str) -> tuple[list[bytes], str | None]:
    """The frames of a pcap or pcapng file and, if its last record was cut short, what was cut.

    Raises PcapError for a file that is neither (or corrupt), OSError if it cannot be read.
    """
    with open(path, "rb") as f:
        reader = open_capture(f)
        frames = [data for _, data in reader]
    return frames, reader.truncated


async def replay(port: aioixy.Port, job: Job, path: str, limiter: RateLimiter | None = None,
                 batch: int = 32, frames: list[bytes] | None = None) -> None:
    """Send the frames of the pcap file `path` (or `frames`, already read from it)."""
    limiter = limiter or RateLimiter(None, batch)
    if frames is None:
        frames, _ = load_pcap(path)
    # checked before anything is sent: the port would refuse the frame half-way through
    lo, hi = port.info.min_tx_len, port.info.max_tx_len
    for i, frame in enumerate(frames):
        if not lo <= len(frame) <= hi:
            raise aioixy.InvalidOption(
                f"{path}: packet {i + 1} has {len(frame)} bytes; {port.name} ({port.driver}) "
                f"sends frames of {lo}..{hi} bytes (a buffer holds {port.info.data_room})")
    pos = 0
    while pos < len(frames) and not job.stop.is_set():
        n = await limiter.allow(min(batch, len(frames) - pos))
        chunk = frames[pos:pos + n]
        await send_frames(port, chunk)
        pos += n
        job.packets += n
        job.bytes += sum(map(len, chunk))
