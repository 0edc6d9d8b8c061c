"""`aioixy demo` as the README runs it: serving its dashboard until stopped, and with the source
device's --options and --force honoured."""

from __future__ import annotations

import signal
import sys
import time

import pytest

from aioixy.cli.main import DEMO_SECONDS, EXIT_DEVICE, EXIT_USAGE

from .procs import Proc, control_url, http, last_json, run
from .test_cli import _catches_sigterm


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_with_http_and_no_duration_serves_until_stopped(sig):
    # the README's command, on port 0; no --json: the status lines are what a user sees
    proc = Proc(["-m", "aioixy", "demo", "--http", "127.0.0.1:0"])
    try:
        url, _ = control_url(proc.wait_line("aioixy: control plane on ", proc.err))
        started = time.monotonic()
        proc.wait_line("[")  # a status line: the demo forwards
        # past the demo's default duration, it still runs and still serves
        while time.monotonic() - started < DEMO_SECONDS + 1.5:
            assert proc.p.poll() is None, proc.stderr()
            time.sleep(0.25)
        status, ports = http("GET", url + "/api/ports")
        assert status == 200 and {p["name"] for p in ports["ports"]} == {
            "null", "pair:demo:a", "pair:demo:b"}
        assert http("GET", url + "/api/ports/pair:demo:b")[1]["stats"]["rx_packets"] > 0
        event = _first_event(url)  # the dashboard names the job and knows it runs
        assert event["job"]["name"] == "demo" and event["job"]["running"] is True
        deadline = time.monotonic() + 15
        while not _catches_sigterm(proc):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.p.send_signal(sig)
        assert proc.p.wait(30) == 0, proc.stderr()
        proc.out_closed.wait(10)
        summary = proc.rest()[-1]
        assert summary.startswith("summary: forwarded "), summary
        assert "mempools whole" in summary and " 0 out of order" in summary
        assert "Traceback" not in proc.stderr()
    finally:
        proc.kill()


def _first_event(url: str) -> dict:
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/api/events", timeout=10) as r:
        for raw in r:
            line = raw.decode()
            if line.startswith("data: ") and "job" in (event := json.loads(line[6:])):
                return event
    raise AssertionError("the event stream ended without an event")


def test_demo_without_http_still_ends_after_its_default_duration():
    t0 = time.monotonic()
    r = run(["-m", "aioixy", "demo", "--json"], timeout=60)
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["forwarded"] > 0 and abs(s["seconds"] - DEMO_SECONDS) < 1
    assert time.monotonic() - t0 < 30


def test_demo_takes_the_source_devices_options_a_generating_card_forwards():
    r = run(["-m", "aioixy", "demo", "--device", "sim-82599:demogen:0", "--options",
             "wire=gen,flows=8", "--duration", "1", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["forwarded"] > 0 and s["received"] > 0 and s["pools_whole"] is True
    # and an option the device does not know is refused, not ignored
    r = run(["-m", "aioixy", "demo", "--device", "sim-82599:demogen:0", "--options",
             "wire=gen,flowz=8", "--duration", "1", "--json"])
    assert r.returncode == EXIT_USAGE and "unknown option 'flowz'" in r.stderr, r.stderr
    r = run(["-m", "aioixy", "demo", "--options", "sise=100", "--duration", "1", "--json"])
    assert r.returncode == EXIT_USAGE and "null: unknown option 'sise'" in r.stderr


def test_demo_force_takes_an_interface_that_is_up_with_an_address(netlab):
    from tests.kernel.netns import ip

    ns = netlab.netns()
    v = netlab.veth(ns, ns)
    ip("addr", "add", "192.0.2.1/24", "dev", v.a, ns=ns)  # in use: carries an address
    demo = ["ip", "netns", "exec", ns, sys.executable, "-m", "aioixy", "demo", "--device",
            f"packet:{v.a}", "--duration", "1", "--json"]
    import subprocess

    r = subprocess.run(demo, capture_output=True, text=True, timeout=60)
    assert r.returncode == EXIT_DEVICE and "force=True" in r.stderr, r.stderr
    r = subprocess.run([*demo, "--force"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["pools_whole"] is True and s["dead"] == []


def test_a_cli_job_is_named_in_the_live_stream_and_its_end_is_announced():
    import json
    import urllib.request

    proc = Proc(["-m", "aioixy", "pktgen", "null", "--rate", "1000", "--duration", "30",
                 "--http", "127.0.0.1:0", "--json"])
    try:
        url, _ = control_url(proc.wait_line("aioixy: control plane on ", proc.err))
        with urllib.request.urlopen(url + "/api/events", timeout=30) as r:
            lines = iter(raw.decode().rstrip("\n") for raw in r)
            # the server is up before the job has opened its ports and registered
            first = next(e for ln in lines if ln.startswith("data: ")
                         and "job" in (e := json.loads(ln[6:])))
            assert first["job"] == {**first["job"], "name": "pktgen", "running": True}
            assert first["pktgen"]["rate"] == 1000
            while not _catches_sigterm(proc):
                time.sleep(0.02)
            proc.p.send_signal(signal.SIGINT)
            # the stream's last words: the job ended (not a broken connection)
            rest = list(lines)
        assert "event: end" in rest, rest[-5:]
        assert proc.p.wait(30) == 0, proc.stderr()
    finally:
        proc.kill()
