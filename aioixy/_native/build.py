"""cffi build script (API mode, out-of-line): compiled when the package is installed.

Every ``*.c`` file under this directory (core/, bus/, drivers/, model/) is part of the extension,
and every ``*.cdef`` file is part of the declarations Python sees (the binding includes every
header but the private ones, see PRIVATE), so each driver keeps its own
sources and declarations without touching a shared list. Each layer folder is on the include
path, so a source names a header by its file name alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from cffi import FFI

HERE = Path(__file__).resolve().parent

CFLAGS = ["-std=c11", "-O2", "-g", "-Wall", "-Wextra", "-fno-strict-aliasing", "-pthread"]
if os.environ.get("AIOIXY_SANITIZE"):
    # e.g. AIOIXY_SANITIZE=address,undefined for a sanitizer build of the extension
    CFLAGS += [f"-fsanitize={os.environ['AIOIXY_SANITIZE']}", "-fno-omit-frame-pointer"]

sources = sorted(str(p.relative_to(Path.cwd())) if p.is_relative_to(Path.cwd()) else str(p)
                 for p in HERE.rglob("*.c") if p.name != "_aioixy.c")
cdef = "\n".join(p.read_text() for p in sorted(HERE.rglob("*.cdef"), key=lambda p: p.name))
# the binding's translation unit sees every header except the private ones: register tables and
# the model's internals are nobody's interface, and the driver's and the model's register tables
# (drivers/ixgbe_regs.h, model/sim_regs.h) are separate on purpose, so they must not meet
PRIVATE = ("*_regs.h", "*_internal.h")
headers = sorted(p.name for p in HERE.rglob("*.h") if not any(p.match(g) for g in PRIVATE))
include_dirs = sorted({str(p.parent) for p in HERE.rglob("*.h")})

ffibuilder = FFI()
ffibuilder.cdef(cdef)
ffibuilder.set_source(
    "aioixy._native._aioixy",
    "#define _GNU_SOURCE 1\n" + "".join(f'#include "{h}"\n' for h in headers),
    sources=sources,
    include_dirs=include_dirs,
    define_macros=[("_GNU_SOURCE", "1")],
    extra_compile_args=CFLAGS,
    extra_link_args=["-pthread"] + ([f"-fsanitize={os.environ['AIOIXY_SANITIZE']}"]
                                    if os.environ.get("AIOIXY_SANITIZE") else []),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
