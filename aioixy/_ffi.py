"""The compiled cffi extension (built by aioixy/_native/build.py at install time)."""

from __future__ import annotations

try:
    from aioixy._native._aioixy import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a built extension
    raise ImportError(
        "aioixy's native extension is not built: install the package with "
        "`pip install .` or `pip install -e .` (it compiles aioixy/_native with cffi)"
    ) from exc

__all__ = ["ffi", "lib"]
