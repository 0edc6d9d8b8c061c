"""Runs the native stress tests (plain, ThreadSanitizer, AddressSanitizer+UBSan) via make.

They live in C (tests/native/*.c) because the races they hunt need two native threads hammering
a ring or a pool millions of times; this module makes them part of the one test command.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NATIVE = Path(__file__).resolve().parents[2] / "aioixy" / "_native"


@pytest.mark.parametrize("target", ["check", "tsan", "asan"])
def test_native_suite(target):
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the native tests need {', '.join(missing)} (apt-get install build-essential)")
    proc = subprocess.run(["make", "-s", "-C", str(NATIVE), target], capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    # each of the three programs reports its own success line
    for prog in ("ring_stress:", "mempool_stress:", "port_smoke:", "port_smoke kick:",
                 "port_smoke group (one group):", "port_smoke group (two groups):", "xdp_smoke:",
                 "ops_fuzz:", "packet_smoke:", "virtqueue_stress:"):
        assert prog in proc.stdout, proc.stdout
