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
        ("null:size=20", aioixy.InvalidOption, "size='20' is not a number in 60..1984"),
        ("null:size=abc", aioixy.InvalidOption, "not a number"),
        # issue 10 item 11: these used to wrap, be ignored or cut
        ("null:size=4294967356", aioixy.InvalidOption,
         "size='4294967356' is not a number in 60..1984"),  # was 2^32 + 60 -> 60
        ("null:size=18446744073709551676", aioixy.InvalidOption, "not a number"),  # 2^64 + 60
        ("null:size=-1", aioixy.InvalidOption, "size='-1' is not a number"),
        ("null:size=0x40", aioixy.InvalidOption, "size='0x40' is not a number"),
        ("null:size= 64", aioixy.InvalidOption, "size=' 64' is not a number"),
        ("null:size=", aioixy.InvalidOption, "size='' is not a number"),
        ("null:sise=1000", aioixy.InvalidOption, "unknown option 'sise' \\(known: size\\)"),
        ("null:size=100,size=200", aioixy.InvalidOption, "option 'size' is given twice"),
        ("null:=5", aioixy.InvalidOption, "empty option name"),
        ("null:" + "x" * 200, aioixy.InvalidOption, "longer than 95 characters"),
        ("null\0:size=20", aioixy.InvalidOption, "contains a NUL character"),
        ("pair:a\0:b", aioixy.InvalidOption, "contains a NUL character"),
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
        # issue 10 item 11: no ZeroDivisionError / TypeError / AttributeError escapes
        ({"cpu": []}, r"cpu=\(\): must be a CPU number or a non-empty list"),
        ({"cpu": "0"}, "cpu='0': must be a CPU number"),
        ({"cpu": [True]}, "cpu=True is not a CPU"),
        ({"promisc": "yes"}, "promisc='yes': must be True or False"),
        ({"flow_control": 1}, "flow_control=1: must be True or False"),
        ({"rx": None}, "rx=None: must be True or False"),
        ({"idle": {"spin": 1}}, "idle=.*must be an aioixy.IdlePolicy"),
        ({"link_timeout": "10"}, "link_timeout='10': must be 0..600"),
        ({"link_timeout": float("nan")}, "link_timeout=nan"),
        ({"options": 5}, "options=5: must be a string"),
        ({"options": "size=60\0sise=1"}, "contains a NUL character"),
        ({"batch_size": "64"}, "batch_size='64'"),
        ({"ring_size": 1024.0}, "ring_size=1024.0"),
        ({"sise": 1000}, "unknown option 'sise' \\(aioixy.open takes: batch_size"),
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


@pytest.mark.parametrize(
    ("device", "options", "match"),
    [
        ("null", "sise=1000", r"null: unknown option 'sise' \(known: size\)"),
        ("null", "size=4294967356", "size='4294967356' is not a number in 60..1984"),
        ("pair:opt:a", "flow=1", "pair: takes no options"),
        ("sim-82599:opt:0", "wire=gen,flow=3", r"unknown option 'flow' \(known: wire, flows"),
        ("sim-82599:opt:0", "flows=4294967297", "flows='4294967297' is not a number in 1..65536"),
        ("sim-82599:opt:0", "count=-1", "count='-1' is not a number"),
        ("sim-82599:opt:0", "peer=" + "p" * 120, "longer than 95 characters"),
    ],
)
async def test_driver_options_are_checked_against_what_the_driver_knows(device, options, match):
    with pytest.raises(aioixy.InvalidOption, match=match):
        await aioixy.open(device, options=options)


async def test_driver_options_that_are_right_still_work():
    async with aioixy.open("null", options="size=1500") as p:
        async for batch in p.rx():
            with batch:
                assert {len(pkt) for pkt in batch} == {1500}
            break
    async with aioixy.open("null:size=128") as p:
        async for batch in p.rx():
            with batch:
                assert {len(pkt) for pkt in batch} == {128}
            break


def test_model_card_options_are_checked_for_register_access_too():
    from aioixy.devices import sim

    with pytest.raises(aioixy.InvalidOption, match="sim-82599: unknown option 'wires'"):
        sim.RegisterAccess("optcheck", options="wires=gen")
