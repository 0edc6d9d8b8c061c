"""Fuzz of the array-like arguments of batch operations, run by tests/unit/test_buffer_args.py in a
subprocess with the extension built under AddressSanitizer (LD_PRELOAD=libasan, PYTHONMALLOC=
malloc so every Python object is its own heap block): a native op that reads past a buffer it
was given aborts this process with an ASan report instead of putting heap bytes in packets.

Usage: python tests/unit/asan_batchops_fuzz.py EXAMPLES  (AIOIXY_ASAN_EXTENSION: the built .so)
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.machinery
import importlib.util
import os
import sys
from array import array

# the ASan build takes the place of the installed extension, before aioixy imports it
_path = os.environ["AIOIXY_ASAN_EXTENSION"]
_loader = importlib.machinery.ExtensionFileLoader("aioixy._native._aioixy", _path)
_spec = importlib.util.spec_from_file_location("aioixy._native._aioixy", _path, loader=_loader)
_mod = importlib.util.module_from_spec(_spec)
_loader.exec_module(_mod)
sys.modules["aioixy._native._aioixy"] = _mod

import numpy as np  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import aioixy  # noqa: E402
from aioixy._ffi import lib  # noqa: E402
from aioixy.ops.batch import FIELDS  # noqa: E402
from aioixy.testing import make_frame  # noqa: E402

DTYPES = ["uint8", "uint16", "uint32", "uint64", "int8", "int64", "float64", "bool"]
TYPECODES = "bBhHiIlLqQfd"


@st.composite
def arguments(draw, n: int):
    """Values / masks of every shape the API may be handed, near the batch size n."""
    size = st.just(n) | st.integers(0, n + 3)  # n first: what passes a len() check
    kind = draw(st.sampled_from(["ndarray", "bytes", "bytearray", "array", "memoryview",
                                 "list", "int"]))
    if kind == "ndarray":
        # the shapes that pass a len() check with fewer (or other) elements come first
        k = draw(st.integers(0, 4))
        shape = draw(st.sampled_from([(n, 0), (n, k), (n,), (k,)])
                     | st.lists(size, min_size=1, max_size=3).map(tuple))
        a = np.zeros(shape, dtype=draw(st.sampled_from(DTYPES)))
        if draw(st.booleans()) and a.ndim and a.shape[0] > 1:
            a = a[::2]  # non-contiguous
        if draw(st.booleans()) and a.ndim > 1:
            a = a.T
        return a
    if kind in ("bytes", "bytearray"):
        raw = bytes(draw(st.just(n) | st.integers(0, 4 * n + 8)))
        return raw if kind == "bytes" else bytearray(raw)
    if kind == "array":
        code = draw(st.sampled_from(TYPECODES))
        return array(code, [0] * draw(size))
    if kind == "memoryview":
        rows, cols = draw(size), draw(st.integers(0, 4))
        return memoryview(np.zeros((rows, cols), np.uint8))  # 2-D, possibly 0 bytes
    if kind == "list":
        return draw(st.lists(st.integers(-1, 1 << 40), min_size=0, max_size=n + 3))
    return draw(st.integers(-1, 1 << 40))


def main(examples: int) -> None:
    print("extension built with ASan:", "yes" if lib.__name__ and _mod.__file__ == _path
          else "no")

    wrong: list[str] = []

    async def run() -> int:
        ran = 0
        async with aioixy.open("null", pool_size=512, rx=False) as port:

            @settings(max_examples=examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(st.data())
            def fuzz(data):
                nonlocal ran
                ran += 1
                n = data.draw(st.integers(0, 12))
                batch = port.alloc(n, size=60)
                for i, pkt in enumerate(batch):  # IPv4/UDP: every field is there to be written
                    pkt.write(make_frame(i))
                try:
                    if data.draw(st.booleans()):
                        name = data.draw(st.sampled_from(sorted(FIELDS)))
                        arg = data.draw(arguments(n))
                        with contextlib.suppress(aioixy.InvalidOption):
                            batch.set_field(name, arg)
                    else:
                        arg = data.draw(arguments(n))
                        try:
                            yes, no = batch.split(arg)
                        except aioixy.InvalidOption:
                            pass
                        else:
                            assert len(yes) + len(no) == n
                            yes.release()
                            no.release()
                except Exception as exc:
                    # any other exception is a finding too, but memory safety is what only
                    # this run can see: keep drawing until ASan has had every example
                    wrong.append(f"{type(exc).__name__}: {exc} (n={n}, argument {arg!r})")
                finally:
                    batch.release()

            fuzz()
        return ran

    asyncio.run(run())
    print(f"asan fuzz: {examples} examples")
    if wrong:
        print(f"{len(wrong)} calls raised something else than InvalidOption, e.g.:",
              *sorted(set(wrong))[:10], sep="\n  ")
        sys.exit(1)


if __name__ == "__main__":
    main(int(sys.argv[1]))
