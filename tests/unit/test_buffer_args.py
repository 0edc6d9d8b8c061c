"""Probes: array-like arguments of batch operations (issue 16 item 1).

``set_field`` values and ``split`` masks used to pass a ``len()`` check while exposing fewer
bytes than the native op reads (bytes for a 4-byte field, an ``(n, 0)`` array, a short
``array('I')``, a 2-D or bytes mask): the op read past the buffer and packets left with process
memory in their headers. Every such argument is now checked (element size x count, shape, dtype,
contiguity) before native code runs. ``test_batch_op_arguments_fuzz_under_asan`` fuzzes the
same surface with the extension built under AddressSanitizer, so an over-read fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from array import array
from pathlib import Path

import numpy as np
import pytest

import aioixy
from aioixy.testing import make_frame
from tests.tiers import unavailable

pytestmark = [pytest.mark.usefixtures("no_leaks"),
              pytest.mark.filterwarnings("ignore::aioixy.PoolSizeWarning")]

N = 8
ROOT = Path(__file__).resolve().parents[2]


def _bad_values(n: int):
    """(label, values) that the old len() check let through, and other malformed arguments."""
    return [
        ("bytes(n) to a 4-byte field", bytes(n)),
        ("bytearray(n)", bytearray(n)),
        ("np.zeros((n, 0))", np.zeros((n, 0), dtype=np.uint32)),
        ("np.zeros((n, 2))", np.zeros((n, 2), dtype=np.uint32)),
        ("short array('I')", array("I", [1] * (n - 1))),
        ("array('I') of n bytes", array("B", bytes(n))),  # fine as values, see below
        ("float array", np.zeros(n)),
        ("float array.array", array("d", [0.0] * n)),
        ("a 2-D memoryview", memoryview(bytes(4 * n)).cast("B", (n, 4))),
        ("a 0-byte 2-D memoryview", memoryview(np.zeros((n, 0), np.uint8))),
        ("non-contiguous view of too few", np.arange(n, dtype=np.uint32)[::2]),
        ("strings", ["x"] * n),
        ("an int-like object", 3.5),
    ]


@pytest.fixture
async def batch():
    async with aioixy.open("null", pool_size=512, rx=False) as port:
        b = port.alloc(N, size=60)
        for i, pkt in enumerate(b):
            pkt.write(make_frame(i))
        yield b
        b.release()


@pytest.mark.parametrize("label", [lbl for lbl, _ in _bad_values(N)])
async def test_set_field_refuses_values_that_are_not_one_integer_per_slot(batch, label):
    values = dict(_bad_values(N))[label]
    before = [p.tobytes() for p in batch]
    if label == "array('I') of n bytes":
        # n single-byte integers: one per slot, a valid argument
        assert batch.set_field("ip_src", values) == N
        assert batch.field("ip_src").tolist() == [0] * N
        return
    with pytest.raises(aioixy.InvalidOption, match="ip_src"):
        batch.set_field("ip_src", values)
    assert [p.tobytes() for p in batch] == before  # nothing was written


async def test_set_field_takes_a_strided_array_and_writes_each_slot(batch):
    values = np.arange(2 * N, dtype=np.int64)[::2]  # non-contiguous but one integer per slot
    assert batch.set_field("ip_src", values) == N
    assert batch.field("ip_src").tolist() == list(range(0, 2 * N, 2))
    assert batch.set_field("ip_ttl", bytes(range(N))) == N  # bytes: fine for a 1-byte field
    assert batch.field("ip_ttl").tolist() == list(range(N))


BAD_MASKS = [
    ("np.zeros((n, 0), bool)", np.zeros((N, 0), bool)),
    ("np.zeros((n, 2), bool)", np.zeros((N, 2), bool)),
    ("a 0-byte 2-D memoryview", memoryview(np.zeros((N, 0), np.uint8))),
    ("a short bytes mask", bytes(N - 1)),
    ("a float mask", np.zeros(N)),
    ("a 4-byte-element array", array("I", [1] * (N - 1))),
    ("a non-contiguous short mask", np.ones(N, bool)[::2]),
]


@pytest.mark.parametrize("label", [lbl for lbl, _ in BAD_MASKS])
async def test_split_refuses_masks_that_are_not_one_entry_per_slot(batch, label):
    mask = dict(BAD_MASKS)[label]
    with pytest.raises(aioixy.InvalidOption, match="split"):
        batch.split(mask)
    assert len(batch) == N  # the batch keeps every packet


async def test_split_takes_bytes_non_contiguous_and_integer_masks(batch):
    yes, no = batch.split(bytes([1, 0] * (N // 2)))
    assert (len(yes), len(no)) == (N // 2, N // 2)
    both = aioixy.merge(yes, no)
    a, b = both.split(np.array([1, 0, 0, 0, 0, 0, 0, 0] * 2, dtype=np.int32)[::2])
    assert (len(a), len(b)) == (2, N - 2)
    a.release()
    b.release()


class _LyingLength:
    """len() says n, iteration yields fewer: the old mask path built a short buffer."""

    def __len__(self) -> int:
        return N

    def __iter__(self):
        return iter([True] * 2)


async def test_a_mask_whose_length_lies_is_refused(batch):
    with pytest.raises(aioixy.InvalidOption, match="split mask"):
        batch.split(_LyingLength())
    assert len(batch) == N


# --- the fuzz, under AddressSanitizer -------------------------------------------------------

def _libasan() -> str | None:
    try:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out if out and os.path.isabs(out) and os.path.exists(out) else None


@pytest.fixture(scope="session")
def asan_extension(tmp_path_factory) -> Path:
    """The cffi extension built with -fsanitize=address into a temporary directory."""
    if _libasan() is None:
        unavailable("no libasan (apt-get install gcc libasan8): the ASan fuzz cannot run")
    out = tmp_path_factory.mktemp("asan-ext")
    env = {**os.environ, "AIOIXY_SANITIZE": "address"}
    # run from the output directory: build.py then names its sources by absolute paths
    code = (f"import sys; sys.path.insert(0, {str(ROOT / 'aioixy' / '_native')!r}); "
            f"import build; build.ffibuilder.compile(tmpdir={str(out)!r})")
    proc = subprocess.run([sys.executable, "-c", code], cwd=out, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = list(out.rglob("_aioixy*.so"))
    assert found, f"no extension in {out}: {proc.stdout[-2000:]}"
    return found[0]


def run_asan_fuzz(extension: Path, examples: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "LD_PRELOAD": _libasan() or "", "PYTHONMALLOC": "malloc",
           "ASAN_OPTIONS": "detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=99",
           "AIOIXY_ASAN_EXTENSION": str(extension), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, str(ROOT / "tests" / "unit" / "asan_batchops_fuzz.py"),
                           str(examples)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def test_batch_op_arguments_fuzz_under_asan(asan_extension):
    proc = run_asan_fuzz(asan_extension, 300)
    report = proc.stdout[-3000:] + proc.stderr[-6000:]
    assert "AddressSanitizer" not in proc.stderr, report
    assert proc.returncode == 0, report
    assert "asan fuzz: 300 examples" in proc.stdout, report
    assert "extension built with ASan: yes" in proc.stdout, report
