"""Every async test runs twice: on asyncio's default loop and on uvloop."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest

import aioixy
from aioixy.devices import sim
from tests.kernel import netns
from tests.tiers import unavailable

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a test dependency
    uvloop = None


#: one folder, one tier, one marker (the README's "Test tiers" table): `pytest -m kernel` runs
#: what `pytest tests/kernel` runs, and each tier needs only what its row says
TIERS = ("unit", "native", "kernel", "apps", "browser", "vm")
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(_TESTS)
        tier = rel.parts[0] if len(rel.parts) > 1 else None
        if tier not in TIERS:
            raise pytest.UsageError(f"{rel}: every test lives in a tier folder {TIERS}")
        item.add_marker(getattr(pytest.mark, tier))


def pytest_asyncio_loop_factories(config, item):
    factories = {"asyncio": asyncio.new_event_loop}
    if uvloop is None:
        raise pytest.UsageError("uvloop is required for the test suite (pip install -e '.[test]')")
    factories["uvloop"] = uvloop.new_event_loop
    return factories


@pytest.fixture
def no_leaks():
    """Fails the test if any mempool outlives it (i.e. a DMA buffer was not accounted for) or a
    buffer was freed twice."""
    gc.collect()
    before = aioixy.native_pools_alive()
    bad = aioixy.native_bad_frees()
    yield
    gc.collect()
    assert aioixy.native_pools_alive() == before, "a mempool was not released: buffers leaked"
    # a buffer freed twice is refused natively (the pool stays whole), but it is a bug
    assert aioixy.native_bad_frees() == bad, "the native free path refused double frees"


@pytest.fixture(autouse=True)
def _no_model_faults(request):
    """Any driver mistake the 82599 model catches fails the test that made it (tests that make
    mistakes on purpose use the `rogue` fixture or the `model_faults` marker)."""
    before = sim.total_faults()
    yield
    if "rogue" in request.fixturenames or request.node.get_closest_marker("model_faults"):
        return
    assert sim.total_faults() == before, f"the 82599 model caught driver mistakes: {sim.faults()}"


_lab_checked: list[str | None] = []


@pytest.fixture
def netlab():
    """A :class:`tests.kernel.netns.NetLab`: namespaces and veth pairs that are removed after the
    test, also when it fails. The kernel tier's prerequisites (root, iproute2, ping, network
    namespaces) are checked once per session: missing in CI is a failure (tests/tiers.py)."""
    if not _lab_checked:
        _lab_checked.append(netns.missing_prerequisites())
        if _lab_checked[0] is None:
            netns.sweep_stale()
    if _lab_checked[0]:
        unavailable(_lab_checked[0])
    lab = netns.NetLab()
    try:
        yield lab
    finally:
        lab.cleanup()
