"""Bad input gets a specific exception with a useful message, and nothing leaks."""

from __future__ import annotations

import pytest

import aioixy
from tests.tiers import unavailable

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.mark.parametrize(
    ("device", "exc", "match"),
    [
        ("bogus", aioixy.DeviceNotFound, "unknown device 'bogus'"),
        ("0000:7f:1f.7", aioixy.DeviceNotFound, "no PCI device at 0000:7f:1f.7"),
        ("pair:nameonly", aioixy.DeviceNotFound, "pair:NAME:a or pair:NAME:b"),
        ("pair:x:c", aioixy.DeviceNotFound, "pair:NAME:a or pair:NAME:b"),
        ("null:size=20", aioixy.InvalidOption, "packet size 20"),
        ("null:size=abc", aioixy.InvalidOption, "not a number"),
    ],
)
async def test_bad_devices(device, exc, match):
    with pytest.raises(exc, match=match):
        await aioixy.open(device)


def test_unsupported_pci_device_is_named():
    import os

    # A device of this machine that is not a NIC at all (class 0x02), so no aioixy driver can
    # claim it: the registry must refuse it from its ids alone, without touching it.
    root = "/sys/bus/pci/devices"
    devs = []
    for d in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        with open(f"{root}/{d}/class") as f:
            if not f.read().startswith("0x02"):
                devs.append(d)
    if not devs:
        unavailable("this machine exposes no non-network PCI devices in sysfs")
    import asyncio

    async def go():
        await aioixy.open(devs[0])

    with pytest.raises(aioixy.DeviceNotFound, match=r"is not supported|no PCI device"):
        asyncio.run(go())


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"batch_size": 1000}, "batch_size=1000"),
        ({"ring_size": 1000}, "ring_size=1000: must be a power of two"),
        ({"rx_queues": 17}, "rx_queues=17"),
        ({"overflow": "block"}, "overflow='block'"),
        ({"cpu": 4096}, "cpu=4096 is not a CPU"),
        ({"buf_size": 3000}, "buf_size=3000"),
        ({"pool_size": 1}, "pool_size=1"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(aioixy.InvalidOption, match=match):
        aioixy.open("null", **options)


async def test_bad_use_of_an_open_port():
    async with aioixy.open("null") as port:
        with pytest.raises(aioixy.InvalidOption, match="tx queue 3 does not exist"):
            await port.tx(port.alloc(1), queue=3)
        with pytest.raises(aioixy.InvalidOption, match="rx queue 1 does not exist"):
            port.rx(queue=1)
        with pytest.raises(aioixy.InvalidOption, match="size=5000"):
            port.alloc(1, size=5000)
        batch = port.alloc(2)
        with pytest.raises(aioixy.InvalidOption, match="exceed"):
            batch[0].write(b"x" * 4000)
        with pytest.raises(IndexError):
            batch[2]
        batch.release()
    with pytest.raises(aioixy.PortClosed):
        await port.tx([])
