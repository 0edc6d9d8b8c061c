"""One rule for every tier that needs something the machine may lack (root, QEMU, Chromium,
tshark, hugepages): in CI (CI=true, where .ci/run installs all of it) a missing piece is a
failure, never a skip; on a developer's machine the test is skipped, loudly."""

from __future__ import annotations

import os
import sys
import warnings

import pytest


def unavailable(msg: str) -> None:
    """Fail in CI, warn and skip elsewhere. Never returns."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"this tier must run in CI but cannot: {msg}")
    warnings.warn(msg, stacklevel=2)
    print(f"\n*** NOT RUN: {msg} ***", file=sys.stderr)
    pytest.skip(msg)
