"""The VM tier: one QEMU guest per test session, with legacy virtio-net NICs (see vmhost.py)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vmhost import TestVM, why_not_runnable

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.vm)


def require_vm() -> None:
    reason = why_not_runnable()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"the VM tier must run in CI but cannot: {reason}")
    msg = f"VM TIER NOT RUN: {reason}"
    warnings.warn(msg, stacklevel=2)
    print(f"\n*** {msg} ***", file=sys.stderr)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def vm():
    require_vm()
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.fail("the guest runs the repo's .venv: create it with pip install -e '.[test]'")
    with TestVM(REPO) as v:
        yield v
