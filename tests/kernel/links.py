"""veth pairs for the kernel-port tests: unique names, up, IPv6 off (so the kernel sends nothing on
them), no addresses; always removed afterwards."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess

from tests.tiers import unavailable

_ids = itertools.count()


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def require_root() -> None:
    if os.geteuid() != 0:
        unavailable("kernel-port tests need root (veth pairs, BPF, AF_XDP sockets)")
    try:
        subprocess.run(["ip", "-V"], capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        unavailable("kernel-port tests need iproute2's ip")


def quiet_up(ifname: str) -> None:
    run("sysctl", "-qw", f"net.ipv6.conf.{ifname}.disable_ipv6=1")
    run("ip", "link", "set", ifname, "up")


@contextlib.contextmanager
def veth_pair(queues: int = 1):
    """A fresh veth pair (names unique to this process) in this network namespace."""
    require_root()
    n = next(_ids)
    a, b = f"ax{os.getpid() % 100000}{n}a", f"ax{os.getpid() % 100000}{n}b"
    q = ["numtxqueues", str(queues), "numrxqueues", str(queues)]
    run("ip", "link", "add", a, *q, "type", "veth", "peer", "name", b, *q)
    try:
        quiet_up(a)
        quiet_up(b)
        yield a, b
    finally:
        subprocess.run(["ip", "link", "del", a], capture_output=True)
