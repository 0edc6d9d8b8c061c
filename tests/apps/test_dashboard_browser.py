"""The dashboard in a real browser: headless Chromium, driven over the DevTools protocol.

Traffic flows on a pair while the page is open; the test reads the page's own elements (the
numbers its JavaScript wrote from the SSE stream) and checks they move. Chromium missing: the
test fails under CI=true and is skipped (with a warning) elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import re

import aiohttp
import pytest

import aioixy
from aioixy import jobs
from aioixy.control import ControlPlane, make_app, serving, token_of, token_url
from tests.tiers import unavailable

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"


def _require_chromium() -> None:
    if os.access(CHROMIUM, os.X_OK):
        return
    unavailable(f"{CHROMIUM} not found: the dashboard was NOT tested in a browser "
                "(apt-get install chromium)")


class DevTools:
    """Just enough of the Chrome DevTools protocol: evaluate JavaScript in a page."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)

    async def evaluate(self, expression: str) -> object:
        msg_id = next(self._ids)
        await self._ws.send_json({"id": msg_id, "method": "Runtime.evaluate",
                                  "params": {"expression": expression, "returnByValue": True}})
        while True:
            reply = await self._ws.receive_json(timeout=10)
            if reply.get("id") == msg_id:
                result = reply["result"]
                if "exceptionDetails" in result:
                    raise AssertionError(f"page script failed: {result['exceptionDetails']}")
                return result["result"].get("value")


async def _launch(url: str, profile: str) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", "--remote-debugging-port=0",
        f"--user-data-dir={profile}", url,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    seen = []
    async with asyncio.timeout(60):
        while True:
            line = (await proc.stderr.readline()).decode()
            if not line:
                raise AssertionError("chromium exited:\n" + "".join(seen))
            seen.append(line)
            m = re.search(r"DevTools listening on ws://([^/]+)/", line)
            if m:
                return proc, m.group(1)


def _read_page(port: str) -> str:
    # the page's own numbers, as its script wrote them from the event stream
    return f"""JSON.stringify({{
        status: document.getElementById("status")?.textContent,
        updates: Number(document.getElementById("updates")?.textContent ?? 0),
        rx_pps: Number((document.getElementById("rx-pps-{port}") || {{}}).textContent),
        rx_packets: Number((document.getElementById("rx-packets-{port}") || {{}}).textContent),
        chart: !!document.getElementById("chart-{port}"),
        stream: typeof es === "undefined" ? null : es.url,
    }})"""


async def _dashboard_session(tmp_path) -> list[dict]:
    samples: list[dict] = []
    async with aioixy.open("pair:dash:a", flow_control=True) as a, \
            aioixy.open("pair:dash:b", overflow="pause") as b:
        control = ControlPlane(interval=0.25)
        control.add_port(a)
        control.add_port(b)
        job = jobs.Job("pktgen")
        # a modest rate leaves the two CPUs to Chromium; the rate varies a little between
        # samples, which is what makes the displayed numbers move
        gen = asyncio.create_task(jobs.pktgen(a, job, limiter=jobs.RateLimiter(20_000, 32)))

        async def drain() -> None:
            async for batch in b.rx():
                batch.release()

        sink = asyncio.create_task(drain())
        proc = None
        try:
            app = make_app(control)
            # bound beyond loopback, every request needs the token: the page gets it from the
            # address the server prints and must hand it to its event stream
            async with serving(app, "0.0.0.0", 0) as bound, aiohttp.ClientSession() as http:
                url = "http://127.0.0.1:" + bound.rsplit(":", 1)[1]
                proc, devtools = await _launch(token_url(url, token_of(app)),
                                               str(tmp_path / "profile"))
                async with asyncio.timeout(30):
                    while True:
                        targets = await (await http.get(f"http://{devtools}/json/list")).json()
                        pages = [t for t in targets if t.get("type") == "page"
                                 and t.get("url", "").startswith(url)]
                        if pages:
                            break
                        await asyncio.sleep(0.2)
                async with http.ws_connect(pages[0]["webSocketDebuggerUrl"],
                                           max_msg_size=0) as ws:
                    page = DevTools(ws)
                    async with asyncio.timeout(30):
                        while True:
                            s = json.loads(await page.evaluate(_read_page(b.name)))
                            if s["updates"] >= 3 and s["chart"]:
                                break
                            await asyncio.sleep(0.2)
                    for _ in range(6):
                        samples.append(json.loads(await page.evaluate(_read_page(b.name))))
                        await asyncio.sleep(0.5)
        finally:
            if proc is not None and proc.returncode is None:
                proc.terminate()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 10)
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            job.stop.set()
            for t in (gen, sink):
                t.cancel()
            await asyncio.gather(gen, sink, return_exceptions=True)
            del gen, sink
    return samples


def test_dashboard_shows_moving_rx_numbers_in_chromium(tmp_path):
    _require_chromium()
    samples = asyncio.run(_dashboard_session(tmp_path))
    gc.collect()
    assert aioixy.native_pools_alive() == 0
    assert all(s["status"] == "live" and s["chart"] for s in samples), samples
    assert all("/api/events?token=" in s["stream"] for s in samples), samples
    updates = [s["updates"] for s in samples]
    assert updates == sorted(updates) and updates[-1] > updates[0], samples
    packets = [s["rx_packets"] for s in samples]
    assert all(x < y for x, y in itertools.pairwise(packets)), samples
    rates = [s["rx_pps"] for s in samples]
    assert all(r > 0 for r in rates) and len(set(rates)) > 1, samples
