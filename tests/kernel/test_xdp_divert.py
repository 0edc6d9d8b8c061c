"""What an ``xdp:`` port takes from the kernel: nothing when it only transmits.

A tx-only port (``rx=False``, as ``aioixy pktgen`` and ``replay`` open theirs) attaches no XDP
program, so the interface's own traffic (ARP, ping, ...) keeps reaching the kernel while a
generator runs on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from tests.kernel.netns import in_ns, ip
from tests.kernel.test_kernel_peer import _wait_line

pytestmark = pytest.mark.usefixtures("no_leaks")


def xdp_attached(ns: str, ifname: str) -> bool:
    return "xdp" in json.loads(ip("-d", "-j", "link", "show", ifname, ns=ns))[0]


def test_tx_only_port_takes_nothing_ping_keeps_working(netlab):
    ns1, ns2 = netlab.netns(), netlab.netns()
    v = netlab.veth(ns_a=ns1, ns_b=ns2)
    ip("addr", "add", "198.18.7.1/24", "dev", v.a, ns=ns1)
    ip("addr", "add", "198.18.7.2/24", "dev", v.b, ns=ns2)
    # pktgen on the interface that answers the pings (it carries an address: --force)
    gen = netlab.popen(ns2, [sys.executable, "-u", "-m", "aioixy", "pktgen", f"xdp:{v.b}",
                             "--force", "--rate", "2000", "--duration", "60"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    _wait_line(gen, "pkt")  # its status line: the port is open and sending
    assert not xdp_attached(ns2, v.b), "a tx-only port attached an XDP program"
    ip("neigh", "flush", "dev", v.a, ns=ns1)  # ARP must get through as well
    r = subprocess.run(in_ns(ns1, ["ping", "-c", "5", "-i", "0.2", "-W", "2", "198.18.7.2"]),
                       capture_output=True, text=True, timeout=60)
    assert gen.poll() is None, "the generator stopped before the pings were done"
    assert r.returncode == 0 and " 0% packet loss" in r.stdout, r.stdout + r.stderr
    # and the generator did send meanwhile: ns1's end received its frames
    before = _rx_packets(ns1, v.a)
    time.sleep(0.5)
    assert _rx_packets(ns1, v.a) > before + 100
    gen.terminate()
    gen.communicate(timeout=60)
    assert gen.returncode == 0


def _rx_packets(ns: str, ifname: str) -> int:
    return json.loads(ip("-s", "-j", "link", "show", ifname, ns=ns))[0]["stats64"]["rx"]["packets"]
