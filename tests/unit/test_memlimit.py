"""A pool larger than the process may have (a cgroup memory limit) is an OutOfMemory at open,
with the numbers, not an OOM kill inside it (issue 16 item 5). docs/probes.md lists the probes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aioixy.core.memlimit import MemoryRoom, check_request, memory_room
from aioixy.errors import OutOfMemory
from tests.tiers import unavailable

MiB = 1 << 20


def _tree(tmp_path: Path, cgroup: str, files: dict[str, str], meminfo_kb: int) -> tuple:
    proc, root = tmp_path / "proc", tmp_path / "cg"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup)
    (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {meminfo_kb} kB\n")
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    return proc, root


def test_room_is_the_smallest_of_meminfo_and_every_cgroup_level(tmp_path):
    # v2: the job's own cgroup allows 1 GiB, its parent 600 MiB of which 500 are used
    proc, root = _tree(tmp_path, "0::/svc/job\n", {
        "cgroup.controllers": "cpu memory",
        "svc/job/memory.max": str(1024 * MiB), "svc/job/memory.current": str(100 * MiB),
        "svc/memory.max": str(600 * MiB), "svc/memory.current": str(500 * MiB),
        "memory.current": str(5000 * MiB),  # the root has no memory.max
    }, meminfo_kb=8 * 1024 * 1024)
    room = memory_room(proc, root)
    assert room.available == 100 * MiB and "svc: memory.max" in room.source
    # MemAvailable smaller than any cgroup room
    proc, root = _tree(tmp_path / "b", "0::/svc/job\n", {
        "cgroup.controllers": "memory",
        "svc/job/memory.max": "max", "svc/job/memory.current": "1",
    }, meminfo_kb=300 * 1024)
    assert memory_room(proc, root) == MemoryRoom(300 * MiB, f"MemAvailable {300 * MiB} bytes")
    # v1 (a hybrid mount: the memory controller's own hierarchy), the unlimited root ignored
    proc, root = _tree(tmp_path / "c", "4:memory:/a/b\n0::/\n", {
        "memory/a/b/memory.limit_in_bytes": str(256 * MiB),
        "memory/a/b/memory.usage_in_bytes": str(56 * MiB),
        "memory/a/memory.limit_in_bytes": "9223372036854771712",
        "memory/a/memory.usage_in_bytes": "1",
        "memory/memory.limit_in_bytes": "9223372036854771712",
        "memory/memory.usage_in_bytes": "1",
    }, meminfo_kb=8 * 1024 * 1024)
    room = memory_room(proc, root)
    assert room.available == 200 * MiB and "memory.limit_in_bytes" in room.source
    # over the limit already: no room at all, never negative
    proc, root = _tree(tmp_path / "d", "4:memory:/x\n", {
        "memory/x/memory.limit_in_bytes": str(10 * MiB),
        "memory/x/memory.usage_in_bytes": str(11 * MiB),
    }, meminfo_kb=8 * 1024 * 1024)
    assert memory_room(proc, root).available == 0


def test_check_request_says_what_was_asked_and_what_is_left():
    room = MemoryRoom(100 * MiB, "cgroup /sys/fs/cgroup/x: memory.max 1")
    check_request(100 * MiB, "pool", room)  # exactly fits
    with pytest.raises(OutOfMemory, match=r"pool needs 104857601 bytes \(100 MiB\).*only "
                                          r"104857600 more .*cgroup /sys/fs/cgroup/x"):
        check_request(100 * MiB + 1, "pool", room)
    check_request(1 << 50, "pool", MemoryRoom(None, "no memory limit found"))


# --- a real cgroup -----------------------------------------------------------------------------

CHILD = """
import asyncio, sys
import aioixy

async def main():
    try:
        port = await aioixy.open("null", pool_size=1_000_000)
    except aioixy.OutOfMemory as exc:
        print("refused:", exc)
        return 0
    port.close()
    print("opened")
    return 1

sys.exit(asyncio.run(main()))
"""


@contextlib.contextmanager
def _memory_cgroup(limit: int):
    """A fresh memory cgroup limited to `limit` bytes (v2 if the machine has it, else v1):
    yields the file a pid is written to, to move a process in; removed afterwards."""
    if os.geteuid() != 0:
        unavailable("creating a cgroup needs root")
    name = f"aioixy-test-{os.getpid()}"
    v2 = next((r for r in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
               if "memory" in (r / "cgroup.subtree_control").read_text().split()), None) \
        if Path("/sys/fs/cgroup/cgroup.controllers").exists() else None
    if v2 is not None:
        d, limit_file = v2 / name, "memory.max"
    elif Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists():
        d, limit_file = Path("/sys/fs/cgroup/memory") / name, "memory.limit_in_bytes"
    else:
        unavailable("no cgroup memory controller (v2 with memory enabled, or v1) to test in")
    d.mkdir()
    try:
        (d / limit_file).write_text(str(limit))
        yield d / "cgroup.procs"
    finally:
        for _ in range(50):  # the child's exit is seen by the cgroup a moment later
            with contextlib.suppress(OSError):
                d.rmdir()
                break
            time.sleep(0.1)
        assert not d.exists(), f"could not remove the test cgroup {d}"


def test_a_pool_beyond_the_cgroup_limit_is_refused_not_oom_killed():
    with _memory_cgroup(256 * MiB) as procs:
        def join() -> None:
            procs.write_text(str(os.getpid()))

        r = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                           timeout=120, preexec_fn=join)
    assert r.returncode == 0, f"exit {r.returncode} (-9: OOM-killed): {r.stdout} {r.stderr}"
    assert "refused: null: 1 pool(s) of 1000000 buffers of 2048 bytes needs 2048000000 bytes" \
        in r.stdout, r.stdout
    assert "cgroup" in r.stdout and str(256 * MiB) in r.stdout, r.stdout
