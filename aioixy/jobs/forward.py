"""The forwarding job: everything one port receives leaves through another."""

from __future__ import annotations

import aioixy
from aioixy.jobs.job import Job


async def forward(src: aioixy.Port, dst: aioixy.Port, job: Job) -> None:
    """Everything src receives goes out of dst, until job.stop."""
    # a hardware dst cannot DMA from a software src's buffers: then every frame is copied
    direct = dst.can_send_buffers_of(src)
    async for batch in src.rx():
        with batch:
            sending = batch if direct else dst.alloc(len(batch), size=0)
            if not direct:
                for o, pkt in zip(sending, batch, strict=True):
                    o.write(pkt.data)
            n, nbytes = len(sending), sending.nbytes
            try:
                await dst.tx(sending)
            finally:
                # a tx cancelled while it waits for ring space has sent a prefix: count it
                job.packets += n - len(sending)
                job.bytes += nbytes - sending.nbytes
                if sending is not batch:
                    sending.release()
        if job.stop.is_set():
            return
