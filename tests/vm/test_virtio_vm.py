"""The VirtIO driver against QEMU's virtio-net device model, inside a throw-away guest."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from vmhost import (
    MODERN_MACS,
    MODERN_PAIR,
    MQ_GUEST_IP,
    MQ_MAC,
    MQ_PAIRS,
    MQ_PCI,
    MQ_TAP,
    TestVM,
    leftovers,
    tap_guest_ip,
    tap_pci,
)

from tests.vm.conftest import REPO, require_vm


def guest_case(vm, *args: str, timeout: float = 900) -> dict:
    r = vm.py("tests/vm/guest_cases.py", *args, timeout=timeout)
    assert r.rc == 0, f"guest case {args} failed (rc={r.rc}):\n{r.out}\n{r.err}"
    result = json.loads(r.out.strip().splitlines()[-1])
    assert result["ok"] is True
    return result


def test_100k_packets_a_to_b_in_order_and_intact(vm):
    res = guest_case(vm, "ab", "100000")
    assert res["packets"] == 100_000


def test_promiscuous_mode_changes_what_is_received(vm):
    res = guest_case(vm, "promisc")
    assert "foreign" not in res["False"] and "foreign" in res["True"]


def test_close_and_reopen_three_times(vm):
    assert guest_case(vm, "reopen", "3")["rounds"] == 3


def test_shared_e2e_suite_runs_on_virtio(vm):
    # tests/unit/test_devices_e2e.py, the suite pair and sim-82599 run, on the two hub-joined NICs
    vm.run("echo 96 > /proc/sys/vm/nr_hugepages").check()
    r = vm.run([vm.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "virtio",
                "tests/unit/test_devices_e2e.py"], timeout=1500,
               env={"AIOIXY_E2E_VIRTIO": "0000:00:10.0,0000:00:11.0",
                    "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.rc == 0, r.out + r.err
    # 4 tests x 2 loops (the slow-consumer test does not apply to QEMU's hub and is not
    # generated for virtio); nothing may be skipped
    assert re.search(r"\b8 passed\b", r.out) and "skipped" not in r.out, r.out


# --- the modern interface (1af4:1041 and a transitional 1af4:1000), split and packed rings ---

def test_modern_and_transitional_many_sizes_in_order(vm):
    # a: modern-only device; b: transitional, which the driver drives through its modern
    # interface by default (docs/virtio.md)
    res = guest_case(vm, "ab", "10000", *MODERN_PAIR)
    assert res["packets"] == 10_000
    assert (res["mac_a"], res["mac_b"]) == MODERN_MACS
    for end in ("a", "b"):
        assert res[end]["modern"] == 1 and res[end]["packed"] == 0, res
        assert res[end]["event_idx"] == 1, res  # QEMU offers it; notifications follow avail_event


def test_packed_ring_many_sizes_in_order(vm):
    res = guest_case(vm, "ab", "10000", *MODERN_PAIR, "ring=packed", "ring=packed")
    assert res["packets"] == 10_000
    for end in ("a", "b"):
        assert res[end]["modern"] == 1 and res[end]["packed"] == 1, res


def test_transitional_device_forced_to_its_legacy_interface(vm):
    res = guest_case(vm, "ab", "3000", *MODERN_PAIR, "", "transport=legacy")
    assert res["packets"] == 3000
    assert res["a"]["modern"] == 1 and res["b"]["modern"] == 0, res
    assert res["mac_b"] == MODERN_MACS[1]  # the legacy device config, read through BAR0


@pytest.mark.parametrize("options", ["", "ring=packed"])
def test_shared_e2e_suite_runs_on_modern_virtio(vm, options):
    vm.run("echo 96 > /proc/sys/vm/nr_hugepages").check()
    r = vm.run([vm.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "virtio",
                "tests/unit/test_devices_e2e.py"], timeout=1500,
               env={"AIOIXY_E2E_VIRTIO": ",".join(MODERN_PAIR),
                    "AIOIXY_E2E_VIRTIO_OPTIONS": options, "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.rc == 0, r.out + r.err
    assert re.search(r"\b8 passed\b", r.out) and "skipped" not in r.out, r.out


def test_modern_bad_input_errors(vm):
    res = guest_case(vm, "modern_errors")
    assert "modern-only" in res["legacy_on_1041"]
    assert "modern interface" in res["packed_on_legacy"]
    assert "modern interface" in res["queues_on_legacy"]
    assert "VIRTIO_NET_F_MQ" in res["no_mq"]
    assert "has 4" in res["too_many_pairs"]
    assert "rss=5" in res["rss_bad_queue"]
    assert "ring=circular" in res["bad_ring"]
    assert "no modern VirtIO capabilities" in res["modern_on_legacy_only"]


# --- multi-queue: 4 pairs on a multi-queue tap, RSS steering ---

FLOWS = 64
PER_FLOW = 8
UDP_FLOWS = f"""
import socket, sys, time
for rep in range({PER_FLOW}):
    for port in range({FLOWS}):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 20000 + port))
        s.sendto(b"aioixy-mq-%d" % port, (sys.argv[1], 9))
        s.close()
    time.sleep(0.05)
"""


def _mq_run(vm, options: str) -> dict:
    sent = FLOWS * PER_FLOW
    log = f"/tmp/mq-{options or 'default'}.log"
    pid = vm.spawn([vm.python, "tests/vm/guest_cases.py", "mq", "120", options, str(sent)], log)
    try:
        deadline = time.monotonic() + 120
        while "ready" not in vm.run(["cat", log]).out:
            assert time.monotonic() < deadline, vm.run(["cat", log]).out
            assert vm.reap(pid, 0.2) is None, vm.run(["cat", log]).out
        vm.host(["ip", "neigh", "replace", MQ_GUEST_IP, "lladdr", MQ_MAC, "dev", MQ_TAP,
                 "nud", "permanent"])
        before = int(vm.host(["cat", f"/sys/class/net/{MQ_TAP}/statistics/rx_packets"]).stdout)
        udp = vm.host(["python3", "-c", UDP_FLOWS, MQ_GUEST_IP], timeout=120)
        assert udp.returncode == 0, udp.stderr
        assert vm.reap(pid, 200) == 0, vm.run(["cat", log]).out
    finally:
        vm.signal(pid, signal.SIGKILL)
        vm.reap(pid, 30)
        vm.host(["ip", "neigh", "del", MQ_GUEST_IP, "dev", MQ_TAP])
    res = json.loads(vm.run(["cat", log]).out.strip().splitlines()[-1])
    after = int(vm.host(["cat", f"/sys/class/net/{MQ_TAP}/statistics/rx_packets"]).stdout)
    res["host_got"] = after - before
    res["sent"] = sent
    return res


def test_multi_queue_rss_spreads_flows_over_every_pair(vm):
    res = _mq_run(vm, "")
    assert res["queue_pairs"] == MQ_PAIRS and res["rss"] == 1, res
    # 64 flows hashed over 4 queues: each gets some (all in one queue would be ~4^-63)
    assert all(n > 0 for n in res["per_queue"]), res
    assert sum(res["per_queue"]) >= 0.9 * res["sent"], res
    # 50 frames sent on each tx queue reached the host
    assert res["tx_packets"] == 50 * MQ_PAIRS and res["host_got"] >= 50 * MQ_PAIRS, res


def test_rss_indirection_table_steers_to_the_queues_named(vm):
    # only rx queues 1 and 3 in the table: the tap alone would spread flows over all four
    res = _mq_run(vm, "rss=1:3")
    q = res["per_queue"]
    assert q[0] == 0 and q[2] == 0 and q[1] > 0 and q[3] > 0, res
    assert sum(q) >= 0.9 * res["sent"], res


def test_host_pings_the_responder_on_the_modern_mq_nic(vm):
    _ping_and_echo(vm, MQ_PCI, MQ_GUEST_IP)


def test_bad_input_errors(vm):
    res = guest_case(vm, "errors")
    assert "no PCI device at 0000:00:1e.7" in res["no_device"]
    assert "not supported" in res["not_virtio_isa_bridge"]
    assert "1af4:1003" in res["virtio_serial"]
    assert "nr_hugepages" in res["no_hugepages"]
    assert "up with" in res["busy"]
    assert "root" in res["not_root"]


def test_reopen_after_sigkill_mid_traffic(vm):
    log = "/tmp/blast.log"
    pid = vm.spawn([vm.python, "tests/vm/guest_cases.py", "blast"], log)
    deadline = time.monotonic() + 120
    while "blasting" not in vm.run(["cat", log]).out:
        assert time.monotonic() < deadline, vm.run(["cat", log]).out
        time.sleep(0.5)
    time.sleep(2)  # let it send for a while
    vm.signal(pid, signal.SIGKILL)
    assert vm.reap(pid, 30) == -signal.SIGKILL
    # the device was left running with live queues: a new open resets it and works
    res = guest_case(vm, "ab", "3000")
    assert res["packets"] == 3000


def test_host_pings_and_udp_echo_through_the_responder(vm):
    _ping_and_echo(vm, tap_pci(0), tap_guest_ip(0))


def _ping_and_echo(vm, pci: str, ip: str) -> None:
    log = f"/tmp/responder-{pci}.log"
    pid = vm.spawn([vm.python, "examples/echo_responder.py", "--device", pci,
                    "--ip", ip, "--duration", "300"], log)
    try:
        deadline = time.monotonic() + 120
        while "answering" not in vm.run(["cat", log]).out:
            assert time.monotonic() < deadline, vm.run(["cat", log]).out
            assert vm.reap(pid, 0.1) is None, vm.run(["cat", log]).out
        ping = vm.host(["ping", "-c", "10", "-i", "0.2", "-W", "5", ip], timeout=120)
        assert " 10 received" in ping.stdout, ping.stdout + ping.stderr
        udp = vm.host(["python3", "-c", UDP_CLIENT, ip], timeout=120)
        assert udp.returncode == 0, udp.stdout + udp.stderr
        assert udp.stdout.strip() == "20/20 echoed", udp.stdout
    finally:
        vm.signal(pid, signal.SIGINT)
        vm.reap(pid, 30)


UDP_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
ok = 0
for i in range(20):
    msg = f"aioixy-echo-{i}".encode() * (i + 1)
    s.sendto(msg, (sys.argv[1], 7))
    data, _ = s.recvfrom(4096)
    ok += data == msg
print(f"{ok}/20 echoed")
"""


def test_harness_cleans_up_after_a_failure():
    require_vm()
    before = leftovers()
    with pytest.raises(RuntimeError, match="deliberate"), TestVM(REPO, taps=1) as v:
        ns = v.ns
        assert ns in leftovers()["netns"]
        raise RuntimeError("deliberate failure inside the VM context")
    after = leftovers()
    assert ns not in after["netns"]
    assert len(after["qemu"]) == len(before["qemu"])


def test_vfio_device_access_and_dma_provider_iova_equal_to_va():
    # a second, short-lived guest with an emulated IOMMU (the session VM has none)
    require_vm()
    with TestVM(REPO, taps=0, iommu=True) as v:
        res = guest_case(v, "vfio")
    assert res["iova_is_va"] is True
    assert res["vfio_device"] is True
