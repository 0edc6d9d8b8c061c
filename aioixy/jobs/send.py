"""Copying frames from Python bytes into a port's buffers and sending them."""

from __future__ import annotations

from collections.abc import Sequence

import aioixy


async def send_frames(port: aioixy.Port, frames: Sequence[bytes | bytearray | memoryview],
                      queue: int = 0) -> int:
    """Copy `frames` into fresh buffers of `port` and send them; returns how many.

    If cancelled before the port took them, the buffers go back to the pool (nothing leaks).
    """
    if not frames:
        return 0
    with port.alloc(len(frames), size=0, queue=queue) as b:
        for pkt, frame in zip(b, frames, strict=True):
            pkt.write(frame)
        return await port.tx(b, queue=queue)
