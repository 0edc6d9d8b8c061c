"""Worker processes (aioixy.serve): N processes share a packet: interface through one
PACKET_FANOUT group, every frame of many flows reaches exactly one worker, a killed worker is
restarted, and the supervisor sums the workers' counters.

The frames come from the peer namespace over an AF_PACKET socket (tests/kernel/workers_nf.py),
one flow per UDP source port; the fanout hash spreads flows over the workers' sockets whatever
rx queue of the veth a frame arrived on.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import aioixy
from aioixy.core.workers import Supervisor
from tests.kernel import workers_nf


def _mac(ifname: str) -> str:
    with open(f"/sys/class/net/{ifname}/address") as f:
        return f.read().strip()


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Running:
    """A supervisor in a thread of the test process (so the test can watch and stop it)."""

    def __init__(self, device: str, workers: int) -> None:
        self.sup = Supervisor(workers_nf.collect, (device,), workers=workers, stats_interval=0.1)
        self.summary = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.sup.run()
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def ready(self) -> bool:
        return all(s.ready for s in self.sup.states)

    def stop(self):
        self.sup.stop()
        self.thread.join(60)
        assert not self.thread.is_alive(), "supervisor did not stop"
        if self.error:
            raise self.error
        return self.summary


def _send(netlab, v, first: int, count: int, flows: int = 64, pps: float = 20000) -> None:
    p = netlab.popen(v.ns_b, [sys.executable, "-m", "tests.kernel.workers_nf", v.b, _mac(v.a),
                              str(first), str(count), str(flows), str(pps)],
                     cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert p.wait(60) == 0


@pytest.mark.parametrize(("queues", "workers"), [(2, 2), (4, 4), (4, 2)])
def test_every_frame_reaches_exactly_one_worker(netlab, queues, workers):
    ns = netlab.netns()
    v = netlab.veth(ns_b=ns, rx_queues=queues)
    run = _Running(f"packet:{v.a}", workers)
    try:
        _wait(run.ready, 60, "the workers to open their ports")
        count = 4000
        _send(netlab, v, 0, count)
        # every frame counted by some worker's port (and nothing dropped on the way to Python)
        _wait(lambda: sum(s.total("rx_packets") for s in run.sup.states) >= count, 30,
              "the workers to receive every frame")
    finally:
        summary = run.stop()
    seqs = [s for r in summary.results for s in r["seqs"]]
    assert sorted(seqs) == list(range(count)), "lost or duplicated frames"
    per_worker = [len(r["seqs"]) for r in summary.results]
    assert all(n > 0 for n in per_worker), f"flows not spread over the workers: {per_worker}"
    assert summary.total("rx_dropped") == 0
    # the summed counters are the workers' own: at least the test's frames, each once
    assert summary.total("rx_packets") == sum(s.total("rx_packets") for s in summary.workers)
    assert summary.total("rx_packets") >= count
    assert summary.restarts == 0


def test_killed_worker_is_restarted_and_gets_traffic_again(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_b=ns, rx_queues=2)
    run = _Running(f"packet:{v.a}", 2)
    try:
        _wait(run.ready, 60, "the workers to open their ports")
        _send(netlab, v, 0, 1000)
        _wait(lambda: sum(s.total("rx_packets") for s in run.sup.states) >= 1000, 30,
              "the first burst")
        victim = run.sup.states[1]
        old_pid, before = victim.pid, victim.total("rx_packets")
        os.kill(old_pid, signal.SIGKILL)
        _wait(lambda: victim.restarts == 1 and victim.ready and victim.pid != old_pid, 60,
              "the supervisor to restart the killed worker")
        # the dead incarnation's counters are kept: the sum never goes back
        assert victim.total("rx_packets") >= before
        _send(netlab, v, 10000, 2000)
        _wait(lambda: victim.total("rx_packets") > before, 30,
              "the restarted worker to receive")
        _wait(lambda: sum(s.total("rx_packets") for s in run.sup.states) >= 3000, 30,
              "the second burst")
    finally:
        summary = run.stop()
    assert summary.restarts == 1
    second = sorted(s for r in summary.results for s in r["seqs"] if s >= 10000)
    # after the restart nothing is lost or duplicated; the killed worker lost only the first
    # burst's frames it held (its results went with it)
    assert second == list(range(10000, 12000))
    assert summary.workers[1].result["pid"] != old_pid
    assert len([s for s in summary.workers[1].result["seqs"] if s >= 10000]) > 0


def test_stop_on_sigterm_sums_the_workers(tmp_path, netlab):
    """The supervisor as a program: SIGTERM stops every worker, the summary sums them."""
    ns = netlab.netns()
    v = netlab.veth(ns_b=ns, rx_queues=2)
    out = tmp_path / "summary.txt"
    script = (
        "import sys, aioixy\n"
        "from tests.kernel import workers_nf\n"
        f"s = aioixy.serve(workers_nf.collect, 'packet:{v.a}', workers=2, stats_interval=0.1)\n"
        "n = sum(len(r['seqs']) for r in s.results)\n"
        f"open({str(out)!r}, 'w').write(f'{{n}} {{s.total(\"rx_packets\")}} {{s.restarts}}')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = netlab.popen(None, [sys.executable, "-c", script], cwd=root)
    # the workers are children of the supervisor; wait until both have a socket on the veth
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = _children(proc.pid)
        if len(kids) == 2 and all(_has_packet_socket(k) for k in kids):
            break
        time.sleep(0.1)
    else:
        raise AssertionError("workers did not start")
    _send(netlab, v, 0, 1500)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    got, rx, restarts = map(int, out.read_text().split())
    assert got == 1500
    assert rx >= 1500
    assert restarts == 0
    assert _children(proc.pid) == []


def test_workers_end_when_their_supervisor_is_killed(netlab):
    """SIGKILL to the supervisor (no chance to stop anyone): the workers see their parent gone
    and stop on their own instead of holding the interface's sockets as orphans."""
    ns = netlab.netns()
    v = netlab.veth(ns_b=ns, rx_queues=2)
    script = ("import aioixy\nfrom tests.kernel import workers_nf\n"
              f"aioixy.serve(workers_nf.collect, 'packet:{v.a}', workers=2)\n")
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    proc = netlab.popen(None, [sys.executable, "-c", script], cwd=root)
    deadline = time.monotonic() + 60
    while not (len(kids := _children(proc.pid)) == 2 and all(_has_packet_socket(k) for k in kids)):
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.1)
    proc.kill()
    proc.wait(30)
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{k}") and "Z" not in _state(k) for k in kids):
        assert time.monotonic() < deadline, f"workers {kids} outlived their supervisor"
        time.sleep(0.1)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return "Z"


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(x) for x in f.read().split()]
    except FileNotFoundError:
        return []
    # multiprocessing's spawn also starts a resource tracker: keep the workers only
    return [k for k in kids if "multiprocessing.spawn" in _cmdline(k) and
            "resource_tracker" not in _cmdline(k)]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def _has_packet_socket(pid: int, count: int = 1) -> bool:
    import contextlib

    inodes = set()
    with contextlib.suppress(FileNotFoundError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    with open("/proc/net/packet") as f:
        return sum(line.split()[-1] in inodes for line in f.readlines()[1:]) >= count


def test_xdp_workers_refused_clearly():
    with pytest.raises(aioixy.InvalidOption, match="packet:eth9 with workers > 1"):
        aioixy.serve(workers_nf.collect, "xdp:eth9", workers=2)


@pytest.mark.parametrize("queues", [[], ["--queues", "all"]])
def test_cli_dump_with_workers_writes_every_frame_once(tmp_path, netlab, queues):
    """aioixy dump --workers 2 (and --queues all: every worker a socket per rx queue, all in
    the one group): a file per worker, together every frame exactly once; SIGINT stops them and
    the summary sums them."""
    import json

    from aioixy.jobs.pcap import read_pcap

    ns = netlab.netns()
    v = netlab.veth(ns_b=ns, rx_queues=4)
    cap = tmp_path / "cap.pcap"
    proc = netlab.popen(None, [sys.executable, "-m", "aioixy", "dump", f"packet:{v.a}", "-w",
                               str(cap), "--workers", "2", "--json", *queues],
                        stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    sockets = 4 if queues else 1
    while not (len(_children(proc.pid)) == 2 and
               all(_has_packet_socket(k, sockets) for k in _children(proc.pid))):
        assert time.monotonic() < deadline, "workers did not start"
        assert proc.poll() is None, "aioixy dump ended early"
        time.sleep(0.1)
    _send(netlab, v, 0, 3000)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    summary = json.loads(out)
    files = sorted(tmp_path.glob("cap.w*.pcap"))
    assert [f.name for f in files] == ["cap.w0.pcap", "cap.w1.pcap"]
    per_file = []
    for f in files:
        with open(f, "rb") as fh:
            per_file.append([s for _, data in read_pcap(fh)
                             if (s := workers_nf.seq_of(memoryview(data))) is not None])
    assert sorted(per_file[0] + per_file[1]) == list(range(3000))
    assert all(per_file), "one worker got nothing"
    assert summary["packets"] >= 3000 and summary["pools_whole"] and summary["restarts"] == 0
    assert len(summary["workers"]) == 2
    assert sum(w["packets"] for w in summary["workers"]) == summary["packets"]
