"""How much more memory this process may fault in, before a pool is created.

Creating a pool writes every buffer's header, so every page of it is touched at open: a pool
larger than the process may have gets it OOM-killed inside ``open()`` (in a container or a
systemd unit with a memory limit) instead of a clear error. The room is the smallest of
MemAvailable and, for the process's own cgroup and each of its parents, limit minus usage
(cgroup v2 ``memory.max`` / ``memory.current``; v1 ``memory.limit_in_bytes`` /
``memory.usage_in_bytes``).
"""

from __future__ import annotations

from pathlib import Path

import attrs

from aioixy.errors import OutOfMemory

#: a v1 limit at or above this is "no limit" (the kernel reports ~2^63 rounded to pages)
_V1_UNLIMITED = 1 << 60


@attrs.frozen
class MemoryRoom:
    """The bytes this process may still get (None: nothing limits it that we know of), and
    what sets that number, for the error message."""

    available: int | None
    source: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _mem_available(proc: Path) -> int | None:
    text = _read(proc / "meminfo")
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _levels(base: Path, rel: str) -> list[Path]:
    """The cgroup directory of `rel` under `base` and each parent up to `base` itself."""
    out = []
    d = base / rel.strip("/")
    while True:
        out.append(d)
        if d == base:
            return out
        d = d.parent


def memory_room(proc: Path | str = "/proc", cgroup_root: Path | str = "/sys/fs/cgroup",
                pid: str = "self") -> MemoryRoom:
    """What this process (or `pid`) may still fault in; the paths are parameters for tests."""
    proc, root = Path(proc), Path(cgroup_root)
    best: tuple[int, str] | None = None

    def consider(room: int, source: str) -> None:
        nonlocal best
        if best is None or room < best[0]:
            best = (max(room, 0), source)

    avail = _mem_available(proc)
    if avail is not None:
        consider(avail, f"MemAvailable {avail} bytes")
    for line in (_read(proc / pid / "cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":  # v2: one unified hierarchy
            base = root / "unified" if (root / "unified" / "cgroup.controllers").exists() \
                else root
            for d in _levels(base, rel):
                limit, used = _read(d / "memory.max"), _read(d / "memory.current")
                if limit and limit != "max" and used is not None:
                    consider(int(limit) - int(used), f"cgroup {d}: memory.max {limit} bytes, "
                                                     f"memory.current {used}")
        elif "memory" in controllers.split(","):  # v1
            base = root / "memory"
            for d in _levels(base, rel):
                limit = _read(d / "memory.limit_in_bytes")
                used = _read(d / "memory.usage_in_bytes")
                if limit and used is not None and int(limit) < _V1_UNLIMITED:
                    consider(int(limit) - int(used), f"cgroup {d}: memory.limit_in_bytes "
                                                     f"{limit} bytes, memory.usage_in_bytes "
                                                     f"{used}")
    if best is None:
        return MemoryRoom(None, "no memory limit found")
    return MemoryRoom(best[0], best[1])


def check_request(nbytes: int, what: str, room: MemoryRoom | None = None) -> None:
    """OutOfMemory, with the numbers, if `nbytes` more cannot be had."""
    room = memory_room() if room is None else room
    if room.available is not None and nbytes > room.available:
        raise OutOfMemory(
            f"{what} needs {nbytes} bytes ({nbytes / 2**20:.0f} MiB) of buffer memory, but "
            f"this process may get only {room.available} more ({room.available / 2**20:.0f} "
            f"MiB; {room.source}): open with a smaller pool_size (or buf_size), or raise the "
            "memory limit")
