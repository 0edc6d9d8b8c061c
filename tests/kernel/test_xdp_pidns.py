"""attach=netlink and PID namespaces: a program whose owner lives in another PID namespace is
never judged dead by kill(pid, 0) in ours, never removed without force.

The holder runs under `unshare --pid --fork` with a pid (99991) that exists nowhere in this
namespace, so the old check (kill(99991, 0) fails: "dead") would have removed its program
while it was running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

import aioixy
from aioixy.devices.xdp import attached_programs
from tests.kernel.links import veth_pair
from tests.tiers import unavailable

pytestmark = pytest.mark.usefixtures("no_leaks")
OWNER_PID = 99991


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def test_netlink_program_of_an_owner_in_another_pid_namespace_is_kept():
    if shutil.which("unshare") is None:
        unavailable("'unshare' is not installed (util-linux)")
    with veth_pair() as (a, _b):
        code = textwrap.dedent(f"""
            import asyncio, os, aioixy
            async def main():
                port = await aioixy.open("xdp:{a}", options="attach=netlink")
                print("ready", os.getpid(), flush=True)
                await asyncio.sleep(3600)
            asyncio.run(main())
        """)
        # the new namespace's next pid is OWNER_PID: the holder's number, meaningless here
        holder = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
             f"echo {OWNER_PID - 1} > /proc/sys/kernel/ns_last_pid; "
             f'"{sys.executable}" -c "$0"', code],  # forked, not exec'd: sh stays pid 1
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = holder.stdout.readline().split()
            if line != ["ready", str(OWNER_PID)]:
                holder.kill()
                raise AssertionError(f"holder: {line} {holder.communicate(timeout=30)[1]}")
            if _alive(OWNER_PID):
                unavailable(f"pid {OWNER_PID} exists in this namespace: the test needs it free")
            before = attached_programs(a)
            assert len(before) == 1
            with pytest.raises(aioixy.DeviceBusy, match="another PID namespace"):
                await aioixy.open(f"xdp:{a}", options="attach=netlink")
            with pytest.raises(aioixy.DeviceBusy, match="another PID namespace"):
                await aioixy.open(f"xdp:{a}")
            assert attached_programs(a) == before  # left alone: its owner is alive
            assert holder.poll() is None
            holder.kill()
            holder.wait()
            # gone now, but nothing here can prove it: still refused without force ...
            with pytest.raises(aioixy.DeviceBusy, match="another PID namespace"):
                await aioixy.open(f"xdp:{a}", options="attach=netlink")
            # ... and force=True, the documented way, replaces it
            async with aioixy.open(f"xdp:{a}", force=True, options="attach=netlink"):
                now = attached_programs(a)
                assert len(now) == 1 and now[0].id != before[0].id
            assert attached_programs(a) == ()
        finally:
            holder.kill()
            holder.wait()
