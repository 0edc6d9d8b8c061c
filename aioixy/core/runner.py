"""Running a coroutine on the default asyncio loop or on uvloop (the CLI's and the examples'
``--uvloop``)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, uvloop: bool = False) -> T:
    """``asyncio.run(main)``, or ``uvloop.run(main)`` with ``uvloop=True`` (the ``uvloop``
    package must be installed: ``pip install aioixy[test]`` has it)."""
    if uvloop:
        import uvloop as _uvloop

        return _uvloop.run(main)
    return asyncio.run(main)
