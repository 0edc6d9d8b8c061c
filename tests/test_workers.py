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
