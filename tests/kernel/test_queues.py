"""Which queues of an interface a kernel port takes, and what it refuses: a down interface
(both drivers), and the warning when an ``xdp:`` port leaves rx queues of the interface to the
kernel."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import warnings

import pytest

import aioixy
from aioixy.devices.xdp import attached_programs
from aioixy.jobs.pcap import PcapReader
from aioixy.testing import frame_seq, make_frame

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_down_interface_refused_clearly_by_both(netlab, driver):
    v = netlab.veth(up=False)
    with pytest.raises(aioixy.InvalidOption, match=rf"{driver}:{v.a}: the interface is down.*"
                       rf"ip link set {v.a} up"):
        await aioixy.open(f"{driver}:{v.a}")
    assert attached_programs(v.a) == ()  # xdp: refused before anything was attached


async def test_xdp_port_on_fewer_queues_than_the_interface_warns(netlab):
    v = netlab.veth(rx_queues=4)
    with pytest.warns(aioixy.QueuesLeftWarning,
                      match=r"receives on 1 of the interface's 4 rx queues; frames on the other "
                            r"3 go to the kernel.*rx_queues=4"):
        async with aioixy.open(f"xdp:{v.a}") as p:
            assert p.info.rx_queues_left == 3
    with pytest.warns(aioixy.QueuesLeftWarning, match="receives on 2 of the interface's 4"):
        async with aioixy.open(f"xdp:{v.a}", rx_queues=2, tx_queues=2):
            pass
    # no warning where nothing is left behind, or where the user said which queue to take
    with warnings.catch_warnings():
        warnings.simplefilter("error", aioixy.QueuesLeftWarning)
        async with aioixy.open(f"xdp:{v.a}", rx_queues=4, tx_queues=4) as p:
            assert p.info.rx_queues_left == 0
        async with aioixy.open(f"xdp:{v.a}:2"):
            pass
        async with aioixy.open(f"xdp:{v.a}", rx=False):
            pass
        async with aioixy.open(f"packet:{v.a}"):  # a packet socket sees every queue's frames
            pass


def _dump(ifname: str, out: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aioixy", "dump", f"xdp:{ifname}", "-w", out,
                             "--count", "400", "--json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


async def _feed_until_done(sender, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Send numbered frames on each of sender's 4 tx queues (veth puts queue q's frames on the
    peer's rx queue q; the number's thousands say the queue) until the dump ends."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    seq = 0
    while proc.poll() is None:
        assert loop.time() < end, "the dump did not end"
        for q in range(4):
            batch = sender.alloc(10, size=60, queue=q)
            for i, p in enumerate(batch):
                p.data[:] = make_frame(q * 100000 + seq + i, 60)
            await sender.tx(batch, queue=q)
        seq += 10
        await asyncio.sleep(0.05)


def _queues_seen(path: str) -> set[int]:
    with open(path, "rb") as f:
        return {frame_seq(data) // 100000 for _, data in PcapReader(f)}


async def test_cli_dump_queues_all_takes_every_queue(netlab, tmp_path):
    v = netlab.veth(rx_queues=4)
    async with aioixy.open(f"xdp:{v.b}", rx=False, rx_queues=4, tx_queues=4) as sender:
        out = str(tmp_path / "all.pcap")
        proc = _dump(v.a, out, "--queues", "all")
        try:
            await _feed_until_done(sender, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "warning" not in err
        assert _queues_seen(out) == {0, 1, 2, 3}

        out = str(tmp_path / "one.pcap")  # the default: queue 0 only, and it says so
        proc = _dump(v.a, out, "--duration", "2")
        try:
            await _feed_until_done(sender, proc)
        finally:
            if proc.poll() is None:
                proc.kill()
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "aioixy: warning: " in err and "receives on 1 of the interface's 4 rx queues" \
            in err, err
        assert _queues_seen(out) == {0}


def test_cli_queues_all_needs_a_whole_interface(netlab):
    v = netlab.veth(rx_queues=2)
    r = subprocess.run([sys.executable, "-m", "aioixy", "dump", f"xdp:{v.a}:1", "-w",
                        "/dev/null", "--queues", "all"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "not a whole kernel interface" in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "aioixy", "dump", "null", "-w", "/dev/null",
                        "--queues", "17"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "not in 1..16" in r.stderr, r.stderr
