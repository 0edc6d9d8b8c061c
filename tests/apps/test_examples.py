"""Every example, run as a user would run it on the built-in devices, with its results checked."""

from __future__ import annotations

import shutil
import subprocess
import time

import scapy.layers.inet  # noqa: F401 - registers Ethernet/IP/UDP with scapy's pcap reader
from scapy.utils import rdpcap

from aioixy.jobs.pcap import read_pcap
from aioixy.testing import frame_seq
from tests.tiers import unavailable

from .procs import EXAMPLES, Proc, control_url, http, last_json, run


def example(name: str) -> str:
    return str(EXAMPLES / name)


def test_forwarder_rewrites_the_source_mac_and_keeps_order():
    r = run([example("forwarder.py"), "--duration", "0.5", "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = last_json(r.stdout)
    forwarded = s["forwarded"]["null->pair:fwd:a"]
    assert forwarded > 0
    assert 0 < s["received"] <= forwarded
    assert s["out_of_order"] == 0 and s["bad_mac"] == 0
    assert s["pools_whole"] is True


def test_pktgen_delivers_every_frame_intact_per_flow():
    r = run([example("pktgen.py"), "--count", "3000", "--flows", "3", "--size", "128",
             "--rate", "50000", "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = last_json(r.stdout)
    assert s["sent"] == s["received"] == 3000
    assert s["per_flow"] == {"0": 1000, "1": 1000, "2": 1000}
    assert s["errors"] == [] and s["pools_whole"] is True


def test_pcap_capture_reads_back_with_aioixy_and_other_tools(tmp_path):
    out = tmp_path / "cap.pcap"
    r = run([example("pcap_capture.py"), str(out), "--count", "700", "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = last_json(r.stdout)
    assert s["packets"] == 700 and s["pools_whole"] is True
    with out.open("rb") as f:
        records = list(read_pcap(f))
    assert len(records) == 700
    seqs = [frame_seq(data) for _, data in records]
    assert seqs == list(range(seqs[0], seqs[0] + 700))  # the null source numbers its frames
    assert all(len(data) == 60 and data[12:14] == b"\x08\x00" for _, data in records)
    stamps = [t for t, _ in records]
    assert stamps == sorted(stamps) and abs(stamps[0] - time.time()) < 600
    # scapy is a test dependency: it must read the file; tshark (Wireshark's reader) is installed
    # by .ci/run
    pkts = rdpcap(str(out))
    assert len(pkts) == 700 and all(p["UDP"].dport == 5678 for p in pkts)
    if not shutil.which("tshark"):
        unavailable("tshark is not installed: the capture was not read by Wireshark's reader")
    fields = subprocess.run(["tshark", "-r", str(out), "-T", "fields", "-e", "frame.len",
                             "-e", "ip.proto", "-e", "udp.dstport"],
                            capture_output=True, text=True, timeout=60, check=True)
    rows = fields.stdout.split("\n")[:-1]
    assert len(rows) == 700 and set(rows) == {"60\t17\t5678"}


def test_latency_probe_answers_every_probe_with_a_consistent_histogram():
    r = run([example("latency_probe.py"), "--count", "200", "--interval-ms", "0.5", "--json"])
    assert r.returncode == 0, r.stdout + r.stderr
    s = last_json(r.stdout)
    assert s["sent"] == s["received"] == 200 and s["strays"] == 0
    assert sum(s["histogram"].values()) == 200
    assert 0 < s["min_us"] <= s["p50_us"] <= s["p99_us"] <= s["max_us"]
    lo = min(int(k.split("-")[0]) for k in s["histogram"])
    hi = max(int(k.split("-")[1]) for k in s["histogram"])
    assert lo <= s["min_us"] and s["max_us"] < hi


def test_echo_responder_answers_every_ping_over_the_pair():
    r = run([example("echo_responder.py"), "--duration", "1"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "10/10 echo replies over pair:echo" in r.stdout


def _passed(proc: Proc) -> dict[str, int]:
    import json

    while True:
        line = proc.line()
        if line.startswith("{"):
            status = json.loads(line)
            return {k: status["passed"].get(k, 0) for k in ("53", "5678")}


def test_firewall_deny_rule_added_over_http_stops_only_matching_traffic():
    proc = Proc([example("firewall.py"), "--http", "127.0.0.1:0", "--duration", "60",
                 "--rate", "4000", "--json"])
    try:
        url, token = control_url(proc.wait_line("control plane: "))
        first = _passed(proc)
        second = _passed(proc)
        assert second["53"] > first["53"] and second["5678"] > first["5678"]
        status, rule = http("POST", url + "/api/firewall/rules",
                            {"action": "deny", "src": "10.0.0.0/24", "proto": "udp",
                             "dport": 53}, token)
        assert status == 201 and rule["id"] == 1
        for _ in range(2):  # packets already past the firewall may still arrive
            _passed(proc)
        blocked = _passed(proc)
        later = [_passed(proc) for _ in range(3)]
        assert all(p["53"] == blocked["53"] for p in later), later
        assert later[-1]["5678"] > blocked["5678"]
        status, rules = http("GET", url + "/api/firewall/rules")
        assert status == 200 and rules["rules"][0]["hits"] > 0
        assert rules["default_hits"] > 0  # port 5678 passed by default
        status, _ = http("DELETE", url + "/api/firewall/rules/1", token=token)
        assert status == 200
        for _ in range(20):  # and it flows again
            if _passed(proc)["53"] > blocked["53"]:
                break
        else:
            raise AssertionError("port 53 traffic did not resume after the rule was deleted")
        assert proc.interrupt() == 0, proc.stderr()
        final = last_json("\n".join(proc.rest()))
        assert final["final"] is True and final["pools_whole"] is True
    finally:
        proc.kill()


def test_firewall_with_hundreds_of_rules_at_full_speed_keeps_traffic_flowing():
    """Issue 10 item 9: a slow firewall (300 rules to match) behind a fast generator filled the
    lossless chain's rings with more buffers than the generator's pool had: the generator died
    of PoolExhausted, traffic stopped for good, and the summary still said all was fine."""
    proc = Proc([example("firewall.py"), "--http", "127.0.0.1:0", "--duration", "60",
                 "--rate", "1000000", "--json"])
    try:
        url, token = control_url(proc.wait_line("control plane: "))
        for i in range(300):  # none matches the lab's flows: every packet is judged by all
            status, _ = http("POST", url + "/api/firewall/rules",
                             {"action": "deny", "src": f"192.{168 + i // 256}.{i % 256}.0/24",
                              "proto": "udp",
                              "dport": 1000 + i}, token)
            assert status == 201
        samples = [_passed(proc) for _ in range(12)]  # 3 s at full speed, rings full
        assert all(a["53"] < b["53"] and a["5678"] < b["5678"]
                   for a, b in zip(samples[-4:], samples[-3:], strict=False)), samples
        assert proc.interrupt() == 0, proc.stderr()
        final = last_json("\n".join(proc.rest()))
        assert final["final"] is True and final["dead"] == [] and final["pools_whole"] is True
        assert len(final["rules"]["rules"]) == 300
    finally:
        proc.kill()


def test_firewall_reports_a_dead_generator_and_exits_4():
    # a pool far smaller than the path's rings (the old default's situation, made certain):
    # the generator dies of PoolExhausted; the summary and the exit code must say so
    r = run([example("firewall.py"), "--http", "127.0.0.1:0", "--duration", "30",
             "--rate", "1000000", "--pool-size", "256", "--json"])
    assert r.returncode == 4, r.stdout + r.stderr
    assert "PoolSizeWarning: pool_size=256 is smaller than the" in r.stderr
    final = last_json(r.stdout)
    assert final["final"] is True and final["pools_whole"] is True
    assert [d["task"] for d in final["dead"]] == ["generator"]
    assert final["dead"][0]["error"].startswith("PoolExhausted: cannot allocate")
    assert "firewall: generator died: PoolExhausted" in r.stderr
    # it ran (the firewall judged its frames), then died: not a start-up failure
    assert final["rules"]["default_hits"] > 0


def test_every_example_runs_on_uvloop_when_asked():
    for name in sorted(p.name for p in EXAMPLES.glob("*.py")):
        r = run([example(name), "--help"])
        assert r.returncode == 0 and "--uvloop" in r.stdout, (name, r.stdout, r.stderr)
    r = run([example("latency_probe.py"), "--count", "50", "--interval-ms", "0.5", "--json",
             "--uvloop"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert last_json(r.stdout)["received"] == 50


def test_aioixy_run_picks_the_loop():
    import asyncio

    import aioixy

    async def loop_module() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert aioixy.run(loop_module(), uvloop=True).startswith("uvloop")
    assert aioixy.run(loop_module()).startswith("asyncio")
