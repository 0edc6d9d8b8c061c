"""The ``aioixy`` command as a user runs it: real processes, JSON summaries, --http."""

from __future__ import annotations

import asyncio
import io
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

import aioixy
from aioixy.jobs.pcap import read_pcap
from aioixy.testing import frame_seq

from .procs import Proc, control_url, http, last_json, run


def test_pktgen_null_count_json():
    r = run(["-m", "aioixy", "pktgen", "null", "--count", "1000", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["job"] == "pktgen" and s["packets"] == 1000 and s["bytes"] == 60_000
    assert s["ports"]["null"]["tx_packets"] == 1000
    assert s["pools_whole"] is True


def test_pktgen_size_range_and_addressing_flags():
    r = run(["-m", "aioixy", "pktgen", "null", "--count", "5000", "--size", "60-1000",
             "--dst-mac", "02:00:00:00:00:09", "--dst-ip", "10.9.9.9", "--dport", "53",
             "--flows", "16", "--vary", "dst-ip", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["packets"] == 5000 and s["ports"]["null"]["tx_packets"] == 5000
    # uniform over 60..1000: the mean is ~530 bytes, far from either end
    assert 400 * 5000 < s["bytes"] < 660 * 5000, s["bytes"]


def test_dump_pcapng_ring_and_snaplen_read_by_tshark(tmp_path):
    import shutil

    from tests.tiers import unavailable

    if shutil.which("tshark") is None:
        unavailable("tshark is not installed (apt-get install tshark)")
    base = tmp_path / "ring.pcapng"
    r = run(["-m", "aioixy", "dump", "null:size=500", "-w", str(base), "--format", "pcapng",
             "-s", "100", "-C", "1", "-W", "2", "--count", "10000", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["packets"] == 10000 and s["writer_dropped"] == 0
    assert s["files"] == [f"{base}0", f"{base}1"]
    for name in s["files"]:
        t = subprocess.run(["tshark", "-r", name, "-T", "fields", "-e", "frame.len", "-e",
                            "frame.cap_len"], capture_output=True, text=True, check=True)
        lines = set(t.stdout.splitlines())
        assert lines == {"500\t100"}, lines


def test_dump_to_stdout_drops_in_the_writer_when_the_reader_is_slow():
    """`dump -w -`: the capture on stdout, the summary on stderr, the writer's drops apart."""
    import subprocess as sp
    import sys

    from aioixy.jobs.pcap import open_capture

    p = sp.Popen([sys.executable, "-m", "aioixy", "dump", "null", "-w", "-", "--format",
                  "pcapng", "--duration", "2", "--json"], stdout=sp.PIPE, stderr=sp.PIPE)
    data = bytearray()
    t0 = time.monotonic()
    while chunk := p.stdout.read(4096):  # a slow reader: 4 KiB every 10 ms
        data += chunk
        time.sleep(0.01 if time.monotonic() - t0 < 3 else 0)
    err = p.stderr.read().decode()
    assert p.wait(timeout=30) == 0, err
    s = last_json(err)
    reader = open_capture(io.BytesIO(bytes(data)))
    assert len(list(reader)) == s["packets"] > 0 and reader.truncated is None
    assert s["writer_dropped"] > 0


def test_fwd_null_into_pair_json():
    # also the regression test for a rx waiter spinning without yielding while a tx waiter on
    # the same queue could proceed (this hung; in a subprocess, so a hang is a timeout)
    r = run(["-m", "aioixy", "fwd", "null", "pair:clifwd:a", "--duration", "0.5", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["job"] == "fwd" and s["packets"] > 0
    ports = s["ports"]
    assert set(ports) == {"null", "pair:clifwd:a"}
    # everything forwarded came from null's rx and went out of the pair, whose device drops
    # it for good: nobody holds the other end, so its link is down
    assert ports["null"]["rx_packets"] >= s["packets"]
    assert ports["pair:clifwd:a"]["tx_packets"] == s["packets"]
    assert ports["pair:clifwd:a"]["tx_dropped"] == s["packets"]
    assert s["pools_whole"] is True


def test_list_json_names_the_software_devices():
    r = run(["-m", "aioixy", "list", "--json"])
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert isinstance(s["pci"], list)
    for nic in s["pci"]:
        assert {"address", "kernel_driver", "safe"} <= set(nic)
    devices = " ".join(d["device"] for d in s["software"])
    assert "null" in devices and "pair:" in devices


def test_dump_then_replay_through_the_pair(tmp_path):
    pcap = tmp_path / "null.pcap"
    r = run(["-m", "aioixy", "dump", "null", "-w", str(pcap), "--count", "500", "--json"])
    assert r.returncode == 0, r.stderr
    assert last_json(r.stdout)["packets"] == 500
    with pcap.open("rb") as f:
        frames = [data for _, data in read_pcap(f)]
    assert len(frames) == 500
    seqs = [frame_seq(f) for f in frames]
    assert seqs == list(range(seqs[0], seqs[0] + 500))

    # replay into pair:clirp:a; this process holds the other end and must get every frame back
    got: list[bytes] = []
    ready, done = threading.Event(), threading.Event()

    def receiver() -> None:
        async def main() -> None:
            async with aioixy.open("pair:clirp:b", overflow="pause") as b:
                ready.set()
                async with asyncio.timeout(30):
                    async for batch in b.rx():
                        with batch:
                            got.extend(p.tobytes() for p in batch)
                        if len(got) >= 500:
                            return

        try:
            asyncio.run(main())
        finally:
            done.set()

    t = threading.Thread(target=receiver)
    t.start()
    assert ready.wait(10)
    # the CLI in this process: the pair's two ends find each other by name
    from aioixy import cli

    try:
        assert cli.main(["replay", str(pcap), "pair:clirp:a", "--rate", "20000", "--json"]) == 0
    finally:
        assert done.wait(30)
        t.join()
    assert got == frames
    assert aioixy.native_pools_alive() == 0


def test_http_serves_while_pktgen_runs_and_retunes_its_rate():
    proc = Proc(["-m", "aioixy", "pktgen", "null", "--rate", "2000", "--duration", "60",
                 "--http", "127.0.0.1:0", "--json"])
    try:
        url, token = control_url(proc.wait_line("aioixy: control plane on ", proc.err))
        status, ports = http("GET", url + "/api/ports")
        assert status == 200 and [p["name"] for p in ports["ports"]] == ["null"]
        deadline = time.monotonic() + 10
        while http("GET", url + "/api/ports/null")[1]["stats"]["tx_packets"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, pg = http("GET", url + "/api/pktgen")
        assert status == 200 and pg["rate"] == 2000 and pg["running"] is True
        assert pg["port"] == "null" and pg["packets"] > 0
        status, err = http("PUT", url + "/api/pktgen", {"rate": 50000})
        assert status == 401 and "missing token" in err["error"]
        status, pg = http("PUT", url + "/api/pktgen", {"rate": 50000}, token)
        assert status == 200 and pg["rate"] == 50000
        status, err = http("PUT", url + "/api/pktgen", {"rate": "max"}, token)
        assert status == 400 and "rate 'max'" in err["error"]
        status, pg = http("PUT", url + "/api/pktgen", {"running": False}, token)
        assert status == 200 and pg["running"] is False
        time.sleep(0.3)  # a batch already past the limiter may still go out
        paused = http("GET", url + "/api/pktgen")[1]["packets"]
        time.sleep(0.4)
        assert http("GET", url + "/api/pktgen")[1]["packets"] == paused
        status, metrics = http("GET", url + "/metrics")
        assert status == 200 and "aioixy_pktgen_rate_pps 0.0" in metrics
        assert proc.interrupt() == 0, proc.stderr()
        summary = last_json("\n".join(proc.rest()))
        assert summary["packets"] == paused
        assert summary["pools_whole"] is True
    finally:
        proc.kill()


@pytest.mark.parametrize("cmd", [["fwd", "null", "pair:clihttp:a"], ["demo"],
                                 ["dump", "null", "-w", "{tmp}/d.pcap"],
                                 ["replay", "{tmp}/none.pcap", "pair:clihttp2:a"]])
def test_every_long_running_command_serves_http(cmd, tmp_path):
    cmd = [c.replace("{tmp}", str(tmp_path)) for c in cmd]
    if cmd[0] == "replay":  # a pcap to replay slowly enough to be watched
        from aioixy.jobs.pcap import PcapWriter
        from aioixy.testing import make_frame

        with open(cmd[1], "wb") as f:
            w = PcapWriter(f)
            for i in range(2000):
                w.write(make_frame(i))
        cmd += ["--rate", "1000"]
    proc = Proc(["-m", "aioixy", *cmd, "--duration", "30", "--http", "127.0.0.1:0", "--json"])
    try:
        url = control_url(proc.wait_line("aioixy: control plane on ", proc.err))[0] + "/"
        deadline = time.monotonic() + 15
        while True:  # the server is up before the job has opened its ports
            status, ports = http("GET", url + "api/ports")
            assert status == 200
            names = {p["name"] for p in ports["ports"]}
            if names or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        expected = {"fwd": {"null", "pair:clihttp:a"}, "demo": {"null", "pair:demo:a",
                                                                  "pair:demo:b"},
                    "dump": {"null"}, "replay": {"pair:clihttp2:a"}}[cmd[0]]
        assert names == expected
        status, page = http("GET", url)
        assert status == 200 and "EventSource" in page
        if cmd[0] != "demo":  # the demo has no SIGINT handler of its own: it ends by duration
            assert proc.interrupt() == 0, proc.stderr()
            assert last_json("\n".join(proc.rest()))["pools_whole"] is True
    finally:
        proc.kill()


def test_http_token_from_the_option_or_the_environment_and_a_warning_beyond_localhost():
    import os

    chosen = "my-own-token-0123456789"
    proc = Proc(["-m", "aioixy", "pktgen", "null", "--rate", "100", "--duration", "60",
                 "--http", "0.0.0.0:0", "--http-token", chosen, "--json"])
    try:
        warning = proc.wait_line("aioixy: WARNING", proc.err)
        assert "listens on 0.0.0.0" in warning and "every request needs the token" in warning
        url, token = control_url(proc.wait_line("aioixy: control plane on ", proc.err))
        assert token == chosen
        local = "http://127.0.0.1:" + url.rsplit(":", 1)[1]
        status, err = http("GET", local + "/api/ports")
        assert status == 401 and "every request" in err["error"]
        status, ports = http("GET", local + "/api/ports", token=chosen)
        assert status == 200 and ports["ports"][0]["name"] == "null"
        proc.p.terminate()
        assert proc.p.wait(15) == 0, proc.stderr()
    finally:
        proc.kill()
    env_token = "from-the-environment-42"
    os.environ["AIOIXY_HTTP_TOKEN"] = env_token
    try:
        proc = Proc(["-m", "aioixy", "pktgen", "null", "--rate", "100", "--duration", "60",
                     "--http", "127.0.0.1:0", "--json"])
    finally:
        del os.environ["AIOIXY_HTTP_TOKEN"]
    try:
        url, token = control_url(proc.wait_line("aioixy: control plane on ", proc.err))
        assert token == env_token
        assert http("PUT", url + "/api/pktgen", {"rate": 5}, env_token)[0] == 200
        assert proc.interrupt() == 0, proc.stderr()
    finally:
        proc.kill()
    r = run(["-m", "aioixy", "pktgen", "null", "--count", "1", "--http", "127.0.0.1:0",
             "--http-token", "short"])
    assert r.returncode == 2 and "at least 16 characters" in r.stderr, r.stderr


# --- SIGTERM (issue 10 item 7) ----------------------------------------------------------------

def _catches_sigterm(proc: Proc) -> bool:
    """The job has installed its SIGTERM handler (SigCgt in /proc): a SIGTERM sent before that
    would kill an interpreter that is still importing, which says nothing about the job."""
    try:
        status = Path(f"/proc/{proc.p.pid}/status").read_text()
    except OSError:
        return False
    caught = next(int(line.split()[1], 16) for line in status.splitlines()
                  if line.startswith("SigCgt:"))
    return bool(caught & (1 << (signal.SIGTERM - 1)))


def _after_handler(proc: Proc, seconds: float):
    """A ready() that holds `seconds` after the job was first seen handling SIGTERM."""
    since: list[float] = []

    def ready() -> bool:
        if not since:
            since.append(time.monotonic())
        return time.monotonic() - since[0] >= seconds

    return ready


def _terminate_when(proc: Proc, ready) -> dict:
    """SIGTERM once the job handles it and ready() holds; it must end cleanly with a summary."""
    deadline = time.monotonic() + 30
    while not (_catches_sigterm(proc) and ready()):
        assert proc.p.poll() is None, proc.stderr()
        assert time.monotonic() < deadline, proc.stderr()
        time.sleep(0.02)
    proc.p.terminate()  # SIGTERM: what timeout(1), systemd and docker send
    assert proc.p.wait(30) == 0, proc.stderr()
    proc.out_closed.wait(10)
    return last_json("\n".join(proc.rest()))


def test_sigterm_ends_dump_with_a_summary_and_a_pcap_of_whole_records(tmp_path):
    import shutil
    import subprocess

    import scapy.layers.l2  # noqa: F401 - registers Ethernet with scapy's pcap reader
    from scapy.utils import rdpcap

    from aioixy.jobs.pcap import PcapReader
    from tests.tiers import unavailable

    # the old dump ended inside a record about half the time: three runs, each must be whole
    for i in range(3):
        out = tmp_path / f"term{i}.pcap"
        proc = Proc(["-m", "aioixy", "dump", "null", "-w", str(out), "--json"])
        try:
            summary = _terminate_when(
                proc, lambda out=out, size=100_000 + i * 7919: out.exists()
                and out.stat().st_size > size)
        finally:
            proc.kill()
        assert summary["job"] == "dump" and summary["packets"] > 0
        assert summary["pools_whole"] is True and summary["dead"] == []
        with out.open("rb") as f:
            reader = PcapReader(f)
            frames = [data for _, data in reader]
        assert reader.truncated is None
        assert len(frames) == summary["packets"]
        assert out.stat().st_size == 24 + summary["packets"] * (16 + 60)
        seqs = [frame_seq(f) for f in frames]
        assert seqs == sorted(set(seqs))  # in order (null drops what the ring cannot take)
    assert len(rdpcap(str(out))) == summary["packets"]
    if not shutil.which("tshark"):
        unavailable("tshark is not installed: the capture was not read by Wireshark's reader")
    r = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.len"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "cut short" not in r.stderr, r.stderr
    assert r.stdout.split() == ["60"] * summary["packets"]


@pytest.mark.parametrize("cmd", [["pktgen", "null", "--rate", "5000"],
                                 ["fwd", "null", "pair:cliterm:a"],
                                 ["replay", "{tmp}/slow.pcap", "pair:cliterm2:a", "--rate", "500"],
                                 ["demo", "--duration", "60"]])
def test_sigterm_stops_every_long_running_command_like_ctrl_c(cmd, tmp_path):
    from aioixy.jobs.pcap import PcapWriter
    from aioixy.testing import make_frame

    cmd = [c.replace("{tmp}", str(tmp_path)) for c in cmd]
    if cmd[0] == "replay":
        with open(cmd[1], "wb") as f:
            w = PcapWriter(f)
            for i in range(5000):
                w.write(make_frame(i))
    proc = Proc(["-m", "aioixy", *cmd, "--json"])
    try:
        # with --json nothing is printed before the summary: give the running job a moment
        # to move packets once it handles SIGTERM
        settle = _after_handler(proc, 1.5 if cmd[0] == "demo" else 1.0)
        if cmd[0] == "demo":
            summary = _terminate_when(proc, settle)
            assert summary["pools_whole"] is True and summary["forwarded"] > 0
            return
        summary = _terminate_when(proc, settle)
    finally:
        proc.kill()
    assert summary["job"] == cmd[0] and summary["packets"] > 0
    assert summary["pools_whole"] is True and summary["dead"] == []
    assert 0 < summary["seconds"] < 30


def _pcap_bytes(n: int) -> bytes:
    import io

    from aioixy.jobs.pcap import PcapWriter
    from aioixy.testing import make_frame

    buf = io.BytesIO()
    w = PcapWriter(buf)
    for i in range(n):
        w.write(make_frame(i), 1_700_000_000 + i)
    return buf.getvalue()


@pytest.mark.parametrize(("cut", "says"), [(30, "30 of its 60 bytes"),
                                           (-60 - 8, "8 of its 16 header bytes")])
def test_replay_of_a_truncated_pcap_sends_the_whole_records_and_says_what_was_cut(
        tmp_path, cut, says):
    data = _pcap_bytes(10)
    whole9 = 24 + 9 * 76
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[:whole9 + 16 + cut] if cut > 0 else data[:whole9 + 76 + cut])
    r = run(["-m", "aioixy", "replay", str(path), "pair:clicut:a", "--json"])
    assert r.returncode == 0, r.stderr
    assert f"record 10 is cut short: {says}" in r.stderr, r.stderr
    assert "the 9 whole records before it were read; replaying those" in r.stderr
    assert last_json(r.stdout)["packets"] == 9


def test_pcap_reader_keeps_the_whole_records_of_a_cut_file(tmp_path):
    import io
    import warnings

    from aioixy.jobs.pcap import PcapReader, PcapTruncated

    data = _pcap_bytes(5)
    reader = PcapReader(io.BytesIO(data[:-1]))
    assert [ts for ts, _ in reader] == [1_700_000_000 + i for i in range(4)]
    assert reader.count == 4 and "record 5 is cut short: 59 of its 60 bytes" in reader.truncated
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert len(list(read_pcap(io.BytesIO(data[:-1])))) == 4
    assert [w.category for w in caught] == [PcapTruncated]
    complete = PcapReader(io.BytesIO(data))
    assert len(list(complete)) == 5 and complete.truncated is None


# --- exit codes (issue 10 item 11): each documented code, from a real process ----------------

def _bad_pcaps(tmp: Path) -> dict[str, Path]:
    files = {"garbage": b"this is not a pcap file at all",
             "short": b"\xd4\xc3\xb2\xa1\x02\x00",
             "pcapng": bytes.fromhex("0a0d0d0a") + bytes(40),
             "huge-record": _pcap_bytes(1)[:24] + bytes(8) + (1 << 30).to_bytes(4, "little")
             + bytes(4)}
    out = {}
    for name, data in files.items():
        out[name] = tmp / f"{name}.pcap"
        out[name].write_bytes(data)
    return out


EXIT_CASES = [
    (["pktgen", "null", "--size", "10"], 2, "argument --size: 10 is not in 60..65472"),
    (["pktgen", "null", "--size", "5000"], 2, "--size 5000: a 2048-byte buffer holds frames "
                                               "of at most 1984 bytes"),
    (["pktgen", "null", "--duration", "-1"], 2, "--duration: -1: must be a positive number"),
    (["pktgen", "null", "--duration", "nan"], 2, "must be a positive number of seconds"),
    (["pktgen", "null", "--count", "-5"], 2, "argument --count: -5: must be 0 or more"),
    (["pktgen", "null", "--batch-size", "0"], 2, "argument --batch-size: 0 is not in 1..512"),
    # issue 16: 1e308 was accepted, then the job died of an OverflowError (exit 4)
    (["pktgen", "null", "--rate", "1e308", "--count", "10"], 2,
     "rate 1e+308: at most 1e+09 packets per second"),
    (["replay", "{short}", "null", "--rate", "2e9"], 2, "at most 1e+09"),
    (["pktgen", "null", "--rate", "inf", "--count", "10"], 2, "must be a positive number"),
    (["dump", "null", "-w", "{tmp}/x", "-W", "3"], 2, "--files (-W) needs --file-size (-C)"),
    (["dump", "null", "-w", "-", "-C", "3"], 2, "standard output cannot be split"),
    (["dump", "null", "-w", "{tmp}/x", "-s", "262145"], 2, "argument --snaplen/-s: 262145"),
    (["pktgen", "null", "--size", "100-90"], 2, "100-90: the range's low end is above"),
    (["pktgen", "null", "--size", "60-70000"], 2, "argument --size: 70000 is not in 60..65472"),
    (["pktgen", "null", "--size", "60-3000"], 2, "--size 3000: a 2048-byte buffer holds"),
    (["pktgen", "null", "--dst-mac", "ff:ff:ff"], 2, "--dst-mac 'ff:ff:ff': expected six hex"),
    (["pktgen", "null", "--src-ip", "10.0.0"], 2, "--src-ip '10.0.0': not an IPv4 address"),
    (["pktgen", "null", "--dport", "65536"], 2, "argument --dport: 65536 is not in 0..65535"),
    (["pktgen", "null", "--flows", "0"], 2, "argument --flows: 0 is not in 1..16777216"),
    (["pktgen", "null", "--vary", "ttl"], 2, "argument --vary: invalid choice: 'ttl'"),
    (["replay", "{garbage}", "null"], 2, "garbage.pcap: not a pcap or pcapng file (magic 74686973"),
    (["replay", "{short}", "null"], 2, "short.pcap: file too short for a pcap header"),
    (["replay", "{pcapng}", "null"], 2, "pcapng section header: bad byte-order magic"),
    (["replay", "{huge-record}", "null"], 2, "record 1 claims 1073741824 bytes"),
    (["replay", "{tmp}/missing.pcap", "null"], 2, "missing.pcap: No such file or directory"),
    (["dump", "null", "-w", "{tmp}/no/such/dir/x.pcap"], 2, "No such file or directory"),
    (["pktgen", "null:sise=1000", "--count", "1"], 2, "null: unknown option 'sise'"),
    (["pktgen", "null:size=4294967356", "--count", "1"], 2,
     "size='4294967356' is not a number in 60..1984"),
    (["fwd", "null", "pair:cliopt:a", "--options", "size=70"], 2, "pair: takes no options"),
    (["pktgen", "no-such-device", "--count", "1"], 3, "unknown device 'no-such-device'"),
    (["pktgen", "0000:ff:1f.7", "--count", "1"], 3, "no PCI device at 0000:ff:1f.7"),
    # the file header is written before the device is opened: a full disk is found then
    (["dump", "null", "-w", "/dev/full"], 2, "/dev/full: No space left on device"),
]


@pytest.mark.parametrize(("cmd", "code", "says"), EXIT_CASES,
                         ids=[" ".join(c) for c, _, _ in EXIT_CASES])
def test_each_error_gets_its_documented_exit_code_and_a_clear_message(tmp_path, cmd, code, says):
    from aioixy import cli

    files = _bad_pcaps(tmp_path)
    cmd = [c.replace("{tmp}", str(tmp_path)) for c in cmd]
    cmd = [str(files[c[1:-1]]) if c[1:-1] in files else c for c in cmd]
    r = run(["-m", "aioixy", *cmd, "--json"], timeout=60)
    assert r.returncode == code, r.stderr
    assert says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert f"  {code}  " in cli.EPILOG  # documented
    if code == cli.EXIT_JOB_DIED:  # the summary says so too
        s = last_json(r.stdout)
        assert s["pools_whole"] is True and s["dead"][0]["task"] == "dump null to /dev/full"
        assert "No space left on device" in s["dead"][0]["error"]


def test_an_http_address_in_use_is_exit_3_and_no_task_dies_unheard():
    import socket

    from aioixy import cli

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = run(["-m", "aioixy", "pktgen", "null", "--count", "100000000",
                 "--http", f"127.0.0.1:{port}", "--json"])
    assert r.returncode == cli.EXIT_DEVICE, r.stderr
    assert "address already in use" in r.stderr.lower() and "Traceback" not in r.stderr


def test_a_demo_task_that_dies_is_reported_and_exits_4(monkeypatch, capsys):
    from aioixy import cli
    from aioixy.jobs import demo

    seen = 0

    def frame_seq(data) -> int:  # the sink's frame reader fails after a few batches
        nonlocal seen
        seen += 1
        if seen > 5:
            raise ValueError("cannot read this frame")
        return seen

    monkeypatch.setattr(demo, "frame_seq", frame_seq)
    assert cli.main(["demo", "--duration", "30", "--json"]) == cli.EXIT_JOB_DIED
    out, err = capsys.readouterr()
    result = last_json(out)
    assert result["pools_whole"] is True and result["forwarded"] > 0
    assert result["dead"] == [{"task": "sink pair:demo:b",
                               "error": "ValueError: cannot read this frame"}]
    assert "aioixy: sink pair:demo:b died: ValueError: cannot read this frame" in err
    assert result["seconds"] < 30  # stopped when the task died, not at the duration
    assert aioixy.native_pools_alive() == 0


@pytest.mark.parametrize("cmd", [["fwd", "null", "pair:clibusy:a"], ["demo"]])
def test_busy_opens_every_port_with_busy_polling(monkeypatch, capsys, cmd):
    from aioixy import cli

    opened: list[dict] = []
    real_open = aioixy.open

    def recording_open(device, **opts):
        opened.append({"device": device, **opts})
        return real_open(device, **opts)

    monkeypatch.setattr(aioixy, "open", recording_open)
    assert cli.main([*cmd, "--duration", "0.3", "--busy", "--json"]) == 0
    assert len(opened) >= 2
    busy = aioixy.IdlePolicy.busy()
    assert all(o.get("idle") == busy for o in opened), opened
    opened.clear()
    assert cli.main([*cmd, "--duration", "0.3", "--json"]) == 0
    assert opened and not any("idle" in o for o in opened), opened
    capsys.readouterr()
    assert aioixy.native_pools_alive() == 0
