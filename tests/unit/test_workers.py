"""aioixy.serve without a kernel interface: misuse refused before any process starts, and the
supervisor's sums on null ports (each worker its own null device). The packet: fanout, restarts
and signals are in tests/kernel/test_workers.py."""

from __future__ import annotations

import pytest

import aioixy
from tests.kernel import workers_nf


@pytest.mark.parametrize("workers", [0, -1, 257, 1.5, True, "2"])
def test_bad_worker_counts_refused(workers):
    with pytest.raises(aioixy.InvalidOption, match="workers="):
        aioixy.serve(workers_nf.count_null, "null", workers=workers)


def test_no_device_or_no_function_refused():
    with pytest.raises(aioixy.InvalidOption, match="at least one device"):
        aioixy.serve(workers_nf.count_null, workers=2)
    with pytest.raises(aioixy.InvalidOption, match="not a function"):
        aioixy.serve("nf", "null", workers=2)


def test_fanout_group_is_the_supervisors():
    with pytest.raises(aioixy.InvalidOption, match="fanout_group= is chosen by the supervisor"):
        aioixy.serve(workers_nf.count_null, "packet:lo", workers=2, options="fanout_group=3")


def test_results_and_sums_of_two_workers():
    seen = []
    s = aioixy.serve(workers_nf.count_null, "null", workers=2, stats_interval=0.05,
                     on_stats=lambda states: seen.append([w.total("rx_packets") for w in states]))
    assert sorted(r["index"] for r in s.results) == [0, 1]
    assert all(r["frames"] >= 10000 for r in s.results)
    # each worker's last report counts at least what its function saw; the sum is theirs
    for w, r in zip(s.workers, s.results, strict=True):
        assert w.total("rx_packets") >= r["frames"]
        assert w.exitcode == 0 and w.pid > 0 and w.restarts == 0
    assert s.total("rx_packets") == sum(w.total("rx_packets") for w in s.workers)
    assert seen, "on_stats never called"


def test_cli_pktgen_count_split_between_workers():
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "aioixy", "pktgen", "null", "--count", "100001",
                        "--workers", "3", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["packets"] == 100001  # 33334 + 33334 + 33333: each worker its share
    assert sorted(w["packets"] for w in s["workers"]) == [33333, 33334, 33334]
    assert s["pools_whole"] and s["restarts"] == 0 and s["dead"] == []


def test_cli_refuses_what_workers_cannot_share():
    import subprocess
    import sys

    for extra, msg in ((["--http", "127.0.0.1:0", "--http-token", "x"], "--http-token with"),):
        r = subprocess.run([sys.executable, "-m", "aioixy", "pktgen", "null", "--workers", "2",
                            *extra], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and msg in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "aioixy", "dump", "null", "-w", "-", "--workers",
                        "2"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "each worker writes a file" in r.stderr, r.stderr


def test_cli_workers_metrics_sum_the_workers():
    """--http with --workers: one /metrics, the port counters summed over the workers and the
    same counters per worker."""
    import re
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "aioixy", "pktgen", "null", "--workers", "2",
                             "--rate", "20000", "--duration", "30", "--json",
                             "--http", f"127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "no metrics with both workers sending"
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics",
                                              timeout=5).read().decode()
            except OSError:
                text = ""
            per = {m[0]: int(float(m[1])) for m in re.findall(
                r'^aioixy_worker_tx_packets_total\{port="null",worker="(\d)"\} (\S+)$', text,
                re.M)}
            if len(per) == 2 and all(per.values()):
                break
            time.sleep(0.3)
        total = re.search(r'^aioixy_port_tx_packets_total\{port="null"\} (\S+)$', text, re.M)
        assert int(float(total[1])) == sum(per.values())
        assert re.search(r'^aioixy_worker_up\{worker="1"\} 1\.0$', text, re.M)
        assert re.search(r'^aioixy_worker_restarts_total\{worker="0"\} 0\.0$', text, re.M)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_cli_fwd_with_workers_runs_the_job_in_each():
    """fwd opens both devices in every worker (here null -> pair: each worker its own) and the
    summary sums the workers' forwarded packets."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "aioixy", "fwd", "null", "pair:wkfwd:a",
                        "--workers", "2", "--duration", "1", "--json"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert [w["index"] for w in s["workers"]] == [0, 1]
    assert all(w["packets"] > 0 for w in s["workers"])
    assert s["packets"] == sum(w["packets"] for w in s["workers"])
    assert set(s["ports"]) == {"null", "pair:wkfwd:a"} and s["pools_whole"]
