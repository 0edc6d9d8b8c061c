"""Ctrl-C and SIGTERM end every example cleanly, with its summary, as they end the CLI's jobs:
exit 0, no traceback, buffers back in their pools."""

from __future__ import annotations

import signal
import time

import pytest

from aioixy.jobs.pcap import read_pcap

from .procs import EXAMPLES, Proc, last_json
from .test_cli import _catches_sigterm

SIGNALS = pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM],
                                  ids=["SIGINT", "SIGTERM"])


def _stop(proc: Proc, sig: int, ready=lambda: True, timeout: float = 30) -> list[str]:
    """Send `sig` once the example handles it (SigCgt: SIGINT is installed first, so SIGTERM
    caught means both are) and ready() holds; it must exit 0. Returns its stdout lines."""
    deadline = time.monotonic() + timeout
    while not (_catches_sigterm(proc) and ready()):
        assert proc.p.poll() is None, proc.stderr()
        assert time.monotonic() < deadline, proc.stderr()
        time.sleep(0.02)
    proc.p.send_signal(sig)
    assert proc.p.wait(30) == 0, proc.stderr()
    proc.out_closed.wait(10)
    assert "Traceback" not in proc.stderr(), proc.stderr()
    return proc.rest()


def _held_for(seconds: float):
    since: list[float] = []

    def ready() -> bool:
        since.append(time.monotonic())
        return since[-1] - since[0] >= seconds

    return ready


@SIGNALS
def test_pcap_capture_stops_with_a_summary_and_a_whole_file(tmp_path, sig):
    out = tmp_path / "cap.pcap"
    proc = Proc([str(EXAMPLES / "pcap_capture.py"), str(out), "--count", "100000000",
                 "--json"])
    try:
        lines = _stop(proc, sig, lambda: out.exists() and out.stat().st_size > 50_000)
    finally:
        proc.kill()
    s = last_json("\n".join(lines))
    assert s["pools_whole"] is True and s["stopped"] == "duration or signal"
    with out.open("rb") as f:
        assert len(list(read_pcap(f))) == s["packets"] > 0


@SIGNALS
def test_pktgen_self_test_stops_with_a_summary(sig):
    proc = Proc([str(EXAMPLES / "pktgen.py"), "--count", "100000000", "--rate", "20000",
                 "--json"])
    try:
        lines = _stop(proc, sig, _held_for(1.0))
    finally:
        proc.kill()
    s = last_json("\n".join(lines))
    assert s["interrupted"] is True and s["pools_whole"] is True and s["errors"] == []
    assert 0 < s["received"] <= s["sent"] < 100_000_000
    assert sum(s["per_flow"].values()) == s["received"]


@SIGNALS
def test_pktgen_on_a_device_stops_with_a_summary(sig):
    proc = Proc([str(EXAMPLES / "pktgen.py"), "--device", "null", "--count", "100000000",
                 "--json"])
    try:
        lines = _stop(proc, sig, _held_for(1.0))
    finally:
        proc.kill()
    s = last_json("\n".join(lines))
    assert s["interrupted"] is True and s["pools_whole"] is True and s["sent"] > 0


@SIGNALS
def test_latency_probe_stops_probing_and_reports_the_probes_sent(sig):
    proc = Proc([str(EXAMPLES / "latency_probe.py"), "--count", "10000000", "--json"])
    try:
        lines = _stop(proc, sig, _held_for(1.0))
    finally:
        proc.kill()
    s = last_json("\n".join(lines))
    assert s["interrupted"] is True and s["pools_whole"] is True
    assert 0 < s["sent"] < 10_000_000
    assert s["received"] == s["sent"] and s["strays"] == 0  # every probe sent was answered
    assert sum(s["histogram"].values()) == s["received"]


@SIGNALS
def test_latency_probe_text_summary(sig):
    proc = Proc([str(EXAMPLES / "latency_probe.py"), "--count", "10000000"])
    try:
        lines = _stop(proc, sig, _held_for(0.5))
    finally:
        proc.kill()
    assert " probes answered; RTT min " in lines[0], lines


@SIGNALS
def test_echo_responder_on_a_device_answers_until_stopped(sig):
    # the old responder quit after 2 s with --device: it must still be answering after 3
    proc = Proc([str(EXAMPLES / "echo_responder.py"), "--device", "pair:echosig:a"])
    try:
        assert proc.wait_line("answering for 198.18.0.2 on pair:echosig:a")
        lines = _stop(proc, sig, _held_for(3.0))
    finally:
        proc.kill()
    assert lines[-1] == "answered 0, ignored 0; mempools whole", lines


@SIGNALS
def test_echo_responder_self_test_stops_with_its_line(sig):
    proc = Proc([str(EXAMPLES / "echo_responder.py"), "--duration", "100000"])
    try:
        lines = _stop(proc, sig, _held_for(0.3))
    finally:
        proc.kill()
    assert lines[-1].endswith(" echo replies over pair:echo (interrupted)"), lines
