"""The ``aioixy`` command as a user runs it: real processes, JSON summaries, --http."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

import aioixy
from aioixy.pcap import read_pcap
from aioixy.testing import frame_seq

from .procs import Proc, http, last_json, run


def test_pktgen_null_count_json():
    r = run(["-m", "aioixy", "pktgen", "null", "--count", "1000", "--json"])
    assert r.returncode == 0, r.stderr
    s = last_json(r.stdout)
    assert s["job"] == "pktgen" and s["packets"] == 1000 and s["bytes"] == 60_000
    assert s["ports"]["null"]["tx_packets"] == 1000
    assert s["pools_whole"] is True


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
        line = proc.wait_line("aioixy: control plane on ", proc.err)
        url = line.split(" on ", 1)[1].rstrip("/")
        status, ports = http("GET", url + "/api/ports")
        assert status == 200 and [p["name"] for p in ports["ports"]] == ["null"]
        deadline = time.monotonic() + 10
        while http("GET", url + "/api/ports/null")[1]["stats"]["tx_packets"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status, pg = http("GET", url + "/api/pktgen")
        assert status == 200 and pg["rate"] == 2000 and pg["running"] is True
        assert pg["port"] == "null" and pg["packets"] > 0
        status, pg = http("PUT", url + "/api/pktgen", {"rate": 50000})
        assert status == 200 and pg["rate"] == 50000
        status, err = http("PUT", url + "/api/pktgen", {"rate": "max"})
        assert status == 400 and "rate 'max'" in err["error"]
        status, pg = http("PUT", url + "/api/pktgen", {"running": False})
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
        from aioixy.pcap import PcapWriter
        from aioixy.testing import make_frame

        with open(cmd[1], "wb") as f:
            w = PcapWriter(f)
            for i in range(2000):
                w.write(make_frame(i))
        cmd += ["--rate", "1000"]
    proc = Proc(["-m", "aioixy", *cmd, "--duration", "30", "--http", "127.0.0.1:0", "--json"])
    try:
        url = proc.wait_line("aioixy: control plane on ", proc.err).split(" on ", 1)[1]
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
