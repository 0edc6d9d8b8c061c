"""Promiscuous mode on kernel ports (``packet:`` and ``xdp:``) is a membership of a socket the
port holds, counted by the kernel (the interface's "promiscuity"), never the IFF_PROMISC flag:
an admin's own promiscuous mode survives our open, set_promisc(False) and close, and ours goes
away with the port."""

from __future__ import annotations

import json

import pytest

import aioixy
from tests.kernel.netns import ip

pytestmark = pytest.mark.usefixtures("no_leaks")

IFF_PROMISC = 0x100


def _state(ifname: str) -> tuple[int, bool]:
    """(the kernel's promiscuity count, whether the admin flag shows in `ip link`)."""
    info = json.loads(ip("-j", "-d", "link", "show", ifname))[0]
    return info["promiscuity"], "PROMISC" in info["flags"]


def _sys_flags(ifname: str) -> int:
    with open(f"/sys/class/net/{ifname}/flags") as f:
        return int(f.read(), 16)


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_admin_promisc_survives_and_ours_goes_with_the_port(netlab, driver):
    v = netlab.veth()
    ip("link", "set", v.a, "promisc", "on")  # the admin's
    assert _state(v.a) == (1, True)
    async with aioixy.open(f"{driver}:{v.a}", promisc=True) as p:
        assert p.promiscuous
        assert _state(v.a) == (2, True)
        p.set_promisc(False)  # ours only
        assert not p.promiscuous
        assert _state(v.a) == (1, True)
        p.set_promisc(True)
        assert _state(v.a) == (2, True)
    assert _state(v.a) == (1, True)  # the admin's is still there after our close
    assert _sys_flags(v.a) & IFF_PROMISC

    ip("link", "set", v.a, "promisc", "off")
    assert _state(v.a) == (0, False)
    async with aioixy.open(f"{driver}:{v.a}", promisc=True) as p:
        assert _state(v.a)[0] == 1
        assert _sys_flags(v.a) & IFF_PROMISC  # the interface really is promiscuous
        assert not _state(v.a)[1]  # ... without an admin flag that could outlive us
    assert _state(v.a) == (0, False)
    assert not _sys_flags(v.a) & IFF_PROMISC


@pytest.mark.parametrize("driver", ["packet", "xdp"])
async def test_port_without_promisc_never_changes_it(netlab, driver):
    v = netlab.veth()
    async with aioixy.open(f"{driver}:{v.a}") as p:
        assert not p.promiscuous
        assert _state(v.a) == (0, False)
        p.set_promisc(False)  # nothing to drop: no error, nothing changed
        assert _state(v.a) == (0, False)
    assert _state(v.a) == (0, False)
