"""The VM tier: one QEMU guest per test session, with legacy virtio-net NICs (see vmhost.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vmhost import TestVM, why_not_runnable

from tests.tiers import unavailable

REPO = Path(__file__).resolve().parents[2]


def require_vm() -> None:
    reason = why_not_runnable()
    if reason is not None:
        unavailable(f"the VM tier: {reason}")


@pytest.fixture(scope="session")
def vm():
    require_vm()
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.fail("the guest runs the repo's .venv: create it with pip install -e '.[test]'")
    with TestVM(REPO) as v:
        yield v
