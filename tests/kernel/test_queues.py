"""Which queues of an interface a kernel port takes, and what it refuses: a down interface
(both drivers), and the warning when an ``xdp:`` port leaves rx queues of the interface to the
kernel."""

from __future__ import annotations

import pytest

import aioixy
from aioixy.devices.xdp import attached_programs

pytestmark = pytest.mark.usefixtures("no_leaks")


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_down_interface_refused_clearly_by_both(netlab, driver):
    v = netlab.veth(up=False)
    with pytest.raises(aioixy.InvalidOption, match=rf"{driver}:{v.a}: the interface is down.*"
                       rf"ip link set {v.a} up"):
        await aioixy.open(f"{driver}:{v.a}")
    assert attached_programs(v.a) == ()  # xdp: refused before anything was attached
