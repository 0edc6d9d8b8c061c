"""`aioixy list` and the CLI's error messages, as a newcomer meets them: the host's NIC seen from
a network namespace, the unknown-device list, the not-root xdp: message, a negative count."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from aioixy._ffi import ffi, lib
from tests.tiers import unavailable

from .procs import ROOT, run

PASSTHROUGH = {"vfio-pci", "uio_pci_generic", "igb_uio", "pci-stub"}


def test_pci_info_sees_the_network_driver_of_each_nic_here():
    # read-only: what sysfs says about this machine's NICs (nothing is opened or changed)
    out = json.loads(run(["-m", "aioixy", "list", "--json"]).stdout)["pci"]
    if not out:
        unavailable("no network PCI device here")
    for nic in out:
        info = ffi.new("struct aioixy_pci_info *")
        assert lib.aioixy_pci_info(nic["address"].encode(), info) == 0
        if nic["interface"]:  # an interface here: some network driver made it
            assert info.net_driver, nic
        if not nic["kernel_driver"] or nic["kernel_driver"] in PASSTHROUGH:
            assert not info.net_driver, nic


def _pci_info(driver: str, net_driver: bool, ifname: str = "", up: bool = False,
              addrs: int = 0):
    info = ffi.new("struct aioixy_pci_info *")
    info.addr = b"0000:42:00.0"
    info.driver = driver.encode()
    info.net_driver = net_driver
    info.ifname = ifname.encode()
    info.if_up = up
    info.if_addrs = addrs
    return info


# net_driver is what aioixy_pci_info reads from sysfs: a network driver holds the function
# (for virtio-pci, the transport, virtio_net on its virtioN device)
@pytest.mark.parametrize(("driver", "net_driver", "ifname", "up", "addrs", "refused"), [
    ("ixgbe", True, "", False, 0, "no network interface in this network namespace"),
    ("virtio-pci", True, "", False, 0, "no network interface in this network namespace"),
    ("virtio-pci", False, "", False, 0, None),  # no virtio_net: no interface anywhere
    ("ixgbe", True, "eth1", True, 2, "up with 2 address(es)"),
    ("ixgbe", True, "eth1", True, 0, None),
    ("ixgbe", True, "eth1", False, 3, None),
    ("vfio-pci", False, "", False, 0, None),
    ("", False, "", False, 0, None),
])
def test_the_pci_check_refuses_a_nic_whose_interface_is_elsewhere(driver, net_driver, ifname,
                                                                   up, addrs, refused):
    info = _pci_info(driver, net_driver, ifname, up, addrs)
    rc = lib.aioixy_pci_check_safe(info, False)
    if refused is None:
        assert rc == 0
    else:
        assert rc == -lib.AIOIXY_EBUSY
        assert refused in ffi.string(lib.aioixy_last_error()).decode()
    assert lib.aioixy_pci_check_safe(info, True) == 0  # force takes it anyway


def _nics_with_interfaces() -> list[dict]:
    out = json.loads(run(["-m", "aioixy", "list", "--json"]).stdout)["pci"]
    return [n for n in out if n["interface"] and n["kernel_driver"] not in PASSTHROUGH]


def test_list_in_a_network_namespace_does_not_call_the_hosts_nic_safe(netlab):
    host = _nics_with_interfaces()
    if not host:
        unavailable("no PCI NIC with a kernel interface here: nothing to see from a namespace")
    ns = netlab.netns()
    cmd = ["ip", "netns", "exec", ns, sys.executable, "-m", "aioixy", "list"]
    r = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    seen = {n["address"]: n for n in json.loads(r.stdout)["pci"]}
    for nic in host:
        inside = seen[nic["address"]]
        assert inside["interface"] is None  # its interface lives in the root namespace
        assert inside["safe"] is False, inside
        assert "another one" in inside["refusal"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=ROOT)
    rows = [ln for ln in r.stdout.splitlines() if ln.startswith(host[0]["address"])]
    assert rows and rows[0].endswith("UNSAFE: its interface is in another network namespace")


def test_the_unknown_device_message_lists_every_kind_of_device():
    r = run(["-m", "aioixy", "pktgen", "no-such-device", "--count", "1"])
    assert r.returncode == 3
    for kind in ("'null'", "'pair:NAME:a|b'", "'sim-82599:...'", "'packet:IFACE'",
                 "'xdp:IFACE'", "0000:01:00.0"):
        assert kind in r.stderr, r.stderr


def test_not_root_xdp_and_packet_messages_name_their_device(netlab):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        unavailable("setpriv (util-linux) is not installed: cannot run a command as nobody")
    ns = netlab.netns()
    v = netlab.veth(ns, ns)
    for dev in (f"xdp:{v.a}", f"packet:{v.a}"):
        r = subprocess.run(
            ["ip", "netns", "exec", ns, setpriv, "--reuid=65534", "--regid=65534",
             "--clear-groups", "--inh-caps=-all", sys.executable, "-m", "aioixy", "pktgen",
             dev, "--count", "1"],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
        assert r.returncode == 3, r.stderr
        assert r.stderr.startswith(f"aioixy: {dev}: "), r.stderr
        assert "root" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("arg", "says"), [("-5", "-5: must be 0 or more"),
                                           (str(2**64), f"{2**64}: too large (at most 2**63)")])
def test_a_count_out_of_range_says_a_sane_range(arg, says):
    for cmd in (["pktgen", "null"], ["dump", "null", "-w", "/dev/null"]):
        r = run(["-m", "aioixy", *cmd, "--count", arg])
        assert r.returncode == 2 and f"argument --count: {says}" in r.stderr, r.stderr
        assert "9223372036854775808" not in r.stderr
