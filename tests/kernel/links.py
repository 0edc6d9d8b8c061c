"""A veth pair as a context manager, for tests that want one without the ``netlab`` fixture (the
shared e2e suite, test_xdp.py): a thin wrapper over tests/kernel/netns.py's NetLab (unique names,
default offloads, IPv6 off on the ends left here, removed afterwards, stale ones swept)."""

from __future__ import annotations

import contextlib
import subprocess

from tests.kernel import netns
from tests.tiers import unavailable

_checked: list[str | None] = []


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def require_root() -> None:
    """The kernel tier's prerequisites, checked once per session (fails in CI, see tiers.py)."""
    if not _checked:
        _checked.append(netns.missing_prerequisites())
        if _checked[0] is None:
            netns.sweep_stale()
    if _checked[0]:
        unavailable(_checked[0])


@contextlib.contextmanager
def veth_pair(queues: int = 1):
    """A fresh veth pair, both ends up in this network namespace."""
    require_root()
    lab = netns.NetLab()
    try:
        v = lab.veth(rx_queues=queues)
        yield v.a, v.b
    finally:
        lab.cleanup()
