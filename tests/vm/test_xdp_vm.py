"""xdp: on the guest kernel's own virtio_net driver (native XDP, copy mode), inside the test VM:
the shared e2e suite on the two hub-joined NICs."""

from __future__ import annotations

import json
import re

NICS = ("0000:00:10.0", "0000:00:11.0")

# Give both NICs back to the kernel (earlier tests may have left them unbound from virtio-pci),
# load virtio_net and print the interface names.
SETUP = """
set -e
for d in NICS; do
  p=/sys/bus/pci/devices/$d
  if [ -e $p/driver ] && [ "$(basename "$(readlink $p/driver)")" != virtio-pci ]; then
    echo $d > $p/driver/unbind
  fi
  echo > $p/driver_override 2>/dev/null || true
  [ -e $p/driver ] || echo $d > /sys/bus/pci/drivers/virtio-pci/bind
done
modprobe virtio_net
sleep 1
for d in NICS; do
  n=$(ls /sys/bus/pci/devices/$d/virtio*/net/)
  echo 1 > /proc/sys/net/ipv6/conf/$n/disable_ipv6
  ip link set $n up
  echo $n
done
""".replace("NICS", " ".join(NICS))

PROBE = """
import asyncio, json, sys, aioixy
from aioixy.devices.xdp import attached_programs
async def main():
    async with aioixy.open("xdp:" + sys.argv[1]) as p:
        d = p.stats().device
        print(json.dumps({"zero_copy": d.zero_copy, "native": d.extra["xdp_native"],
                          "programs": [(x.mode, x.name) for x in attached_programs(sys.argv[1])]}))
asyncio.run(main())
"""


def test_shared_e2e_suite_runs_on_xdp_over_virtio_net(vm):
    r = vm.run(SETUP, timeout=120)
    assert r.rc == 0, r.out + r.err
    ifaces = r.out.split()
    assert len(ifaces) == 2, r.out
    try:
        probe = vm.py("-c", PROBE, ifaces[0], timeout=300)
        assert probe.rc == 0, probe.out + probe.err
        info = json.loads(probe.out.strip().splitlines()[-1])
        # virtio_net has driver XDP but (in 6.1) no AF_XDP zero-copy
        assert info == {"zero_copy": False, "native": 1,
                        "programs": [["native", "aioixy_xsk"]]}, info
        r = vm.run([vm.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "xdp",
                    "tests/unit/test_devices_e2e.py"], timeout=1500,
                   env={"AIOIXY_E2E_XDP": ",".join(ifaces), "AIOIXY_E2E_ONLY": "xdp",
                        "PYTHONDONTWRITEBYTECODE": "1"})
        assert r.rc == 0, r.out + r.err
        # 5 tests x 2 loops, nothing skipped
        assert re.search(r"\b10 passed\b", r.out) and "skipped" not in r.out, r.out
    finally:
        # leave the NICs as the other VM tests expect them: bound to virtio-pci, no netdev
        vm.run("rmmod virtio_net", timeout=60)
