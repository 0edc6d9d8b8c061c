"""Shared pieces of the application tests: unique pair names, a served control plane."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import attrs
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

import aioixy
from aioixy.control import ControlPlane, PktgenControl, RuleSet, make_app, token_of
from aioixy.jobs import Job, RateLimiter

_ids = itertools.count()
LOSSLESS = {"flow_control": True, "overflow": "pause", "batch_size": 32}


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


@attrs.frozen
class Plane:
    control: ControlPlane
    client: TestClient  # sends the token with every request
    a: aioixy.Port
    b: aioixy.Port
    token: str


@pytest_asyncio.fixture
async def plane(no_leaks) -> AsyncIterator[Plane]:
    """A control plane over a lossless pair, with a (not running) pktgen and a firewall."""
    n = unique("ctl")
    async with aioixy.open(f"pair:{n}:a", **LOSSLESS) as a, \
            aioixy.open(f"pair:{n}:b", **LOSSLESS) as b:
        control = ControlPlane(interval=0.1)
        control.add_port(a)
        control.add_port(b)
        control.firewall = RuleSet()
        control.pktgen = PktgenControl(RateLimiter(1000, 32), Job("pktgen"), a.name,
                                       aioixy.Generator(a))
        app = make_app(control)
        token = token_of(app)
        async with TestClient(TestServer(app),
                              headers={"Authorization": f"Bearer {token}"}) as client:
            yield Plane(control, client, a, b, token)
