"""The VirtIO driver against QEMU's virtio-net device model, inside a throw-away guest."""

from __future__ import annotations

import json
import re
import signal
import time

import pytest
from vmhost import TestVM, leftovers, tap_guest_ip, tap_pci

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
    # tests/test_devices_e2e.py, the suite pair and sim-82599 run, on the two hub-joined NICs
    vm.run("echo 96 > /proc/sys/vm/nr_hugepages").check()
    r = vm.run([vm.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "virtio",
                "tests/test_devices_e2e.py"], timeout=1500,
               env={"AIOIXY_E2E_VIRTIO": "0000:00:10.0,0000:00:11.0",
                    "PYTHONDONTWRITEBYTECODE": "1"})
    assert r.rc == 0, r.out + r.err
    # 4 tests x 2 loops (the slow-consumer test does not apply to QEMU's hub and is not
    # generated for virtio); nothing may be skipped
    assert re.search(r"\b8 passed\b", r.out) and "skipped" not in r.out, r.out


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
    log = "/tmp/responder.log"
    pid = vm.spawn([vm.python, "examples/echo_responder.py", "--device", tap_pci(0),
                    "--ip", tap_guest_ip(0), "--duration", "300"], log)
    try:
        deadline = time.monotonic() + 120
        while "answering" not in vm.run(["cat", log]).out:
            assert time.monotonic() < deadline, vm.run(["cat", log]).out
            assert vm.reap(pid, 0.1) is None, vm.run(["cat", log]).out
        ping = vm.host(["ping", "-c", "10", "-i", "0.2", "-W", "5", tap_guest_ip(0)], timeout=120)
        assert " 10 received" in ping.stdout, ping.stdout + ping.stderr
        udp = vm.host(["python3", "-c", UDP_CLIENT, tap_guest_ip(0)], timeout=120)
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
