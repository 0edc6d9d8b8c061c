"""``GET /api/events``: server-sent events with per-port counters and rates.

One sampler task per application reads the ports every ``interval`` seconds and fans the result
out to every connected client, so N dashboards cost one stats read, not N. A client that stops
reading loses old updates (its queue keeps the newest few), never stalls the sampler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from aioixy.control.snapshot import RateSampler
from aioixy.control.state import ControlPlane

_QUEUE_DEPTH = 4
_CLOSED: dict[str, Any] = {}  # sentinel: the server is shutting down


class EventHub:
    def __init__(self, control: ControlPlane) -> None:
        self._control = control
        self._sampler = RateSampler()
        self._clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.latest: dict[str, Any] | None = None
        self.seq = 0

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_DEPTH)
        self._clients.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self._clients.discard(q)

    def publish(self, event: dict[str, Any]) -> None:
        for q in self._clients:
            if q.full():
                q.get_nowait()
            q.put_nowait(event)

    def tick(self) -> dict[str, Any]:
        self.seq += 1
        c = self._control
        self.latest = {"seq": self.seq, **self._sampler.sample(c.ports)}
        if c.job is not None:
            self.latest["job"] = {"name": c.job.name, "running": not c.job.stop.is_set(),
                                  "packets": c.job.packets, "bytes": c.job.bytes}
        # the page's controls show the state they change (a rule's hits, the rate)
        if c.pktgen is not None:
            self.latest["pktgen"] = c.pktgen.to_json()
        if c.firewall is not None:
            self.latest["firewall"] = c.firewall.to_json()
        self.publish(self.latest)
        return self.latest

    async def run(self) -> None:
        while True:
            self.tick()
            await asyncio.sleep(self._control.interval)

    def close(self) -> None:
        # wakes every stream handler so a server shutdown does not wait for clients to leave
        self.publish(_CLOSED)


async def hub_ctx(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup context: the sampler lives exactly as long as the server."""
    hub: EventHub = app[HUB]
    task = asyncio.create_task(hub.run(), name="aioixy-control-sampler")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def on_shutdown(app: web.Application) -> None:
    app[HUB].close()


async def events(request: web.Request) -> web.StreamResponse:
    hub: EventHub = request.app[HUB]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                       "Cache-Control": "no-cache"})
    await resp.prepare(request)
    q = hub.subscribe()
    try:
        # the newest sample right away: a fresh dashboard shows numbers before the next tick
        if hub.latest is not None:
            q.put_nowait(hub.latest)
        await resp.write(b"retry: 1000\n\n")
        while True:
            event = await q.get()
            if event is _CLOSED:
                # said out loud, so a page can tell a server that ended (with its job) from a
                # connection that broke, and stop reconnecting
                await resp.write(b"event: end\ndata: {}\n\n")
                break
            data = json.dumps(event, separators=(",", ":"))
            await resp.write(f"id: {event['seq']}\nevent: stats\ndata: {data}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away
    finally:
        hub.unsubscribe(q)
    return resp


HUB = web.AppKey("aioixy_event_hub", EventHub)
