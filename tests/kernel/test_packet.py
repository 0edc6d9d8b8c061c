"""packet: (AF_PACKET with PACKET_MMAP rings) beyond the shared suites: bad input, the safety
check, options, several queues (fanout), promiscuous mode, VLAN tags, idle behaviour, and
``aioixy list``. Interfaces are veth ends this test creates; opens that need an address or a
route on the interface run in a namespace of their own (a subprocess), never in the host's."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

import aioixy
from aioixy.errors import DeviceNotFound, InvalidOption
from aioixy.testing import frame_seq, make_frame, transfer
from tests.kernel.netns import in_ns, ip
from tests.kernel.test_kernel_peer import parse_udp

pytestmark = pytest.mark.usefixtures("no_leaks")


def _open_in(ns: str | None, device: str, *, user: str | None = None, **opts) -> dict:
    """Open `device` in a fresh process (in namespace ns, as `user`): what happened, as JSON."""
    code = textwrap.dedent(f"""
        import asyncio, json, aioixy
        async def main():
            try:
                async with aioixy.open({device!r}, **{opts!r}) as p:
                    return {{"ok": p.driver, "link": p.link().up}}
            except aioixy.AioixyError as exc:
                return {{"error": type(exc).__name__, "message": str(exc)}}
        print(json.dumps(asyncio.run(main())))
        """)
    argv = [sys.executable, "-c", code]
    if user:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", *argv]
    r = subprocess.run(in_ns(ns, argv), capture_output=True, text=True, timeout=60,
                       cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


async def test_missing_interface_is_device_not_found(netlab):
    with pytest.raises(DeviceNotFound, match="no network interface 'axnosuchif0'"):
        await aioixy.open("packet:axnosuchif0")


@pytest.mark.parametrize("name", ["packet:", "packet:a/b", "packet:waytoolonginterfacename"])
async def test_malformed_interface_name_is_invalid(netlab, name):
    with pytest.raises(InvalidOption, match="is not a network interface name"):
        await aioixy.open(name)


@pytest.mark.parametrize("options,match", [
    ("qdisc_bypass=maybe", "qdisc_bypass='maybe'"),
    ("fanout=random", "fanout='random'"),
    ("retire_ms=0", "retire_ms='0'"),
    ("ring=v9", "ring='v9'"),
    ("bogus=1", "unknown option 'bogus'"),
])
async def test_bad_options_are_refused_by_name(netlab, options, match):
    v = netlab.veth()
    with pytest.raises(InvalidOption, match=match):
        await aioixy.open(f"packet:{v.a}", options=options)


async def test_down_interface_is_refused_and_left_down(netlab):
    v = netlab.veth(up=False)
    with pytest.raises(InvalidOption, match="is down"):
        await aioixy.open(f"packet:{v.a}")
    assert "UP" not in json.loads(ip("-j", "link", "show", v.a))[0]["flags"]


def test_interface_with_address_refused_unless_forced(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("addr", "add", "198.18.4.1/24", "dev", v.a, ns=ns)
    res = _open_in(ns, f"packet:{v.a}")
    assert res["error"] == "DeviceBusy", res
    assert "198.18.4.1" in res["message"] and "force=True" in res["message"], res
    assert _open_in(ns, f"packet:{v.a}", force=True) == {"ok": "packet", "link": True}


def test_link_local_ipv6_alone_does_not_count(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)  # up in a namespace: the kernel gives it an fe80:: address
    ip("addr", "add", "fe80::1234/64", "dev", v.a, ns=ns)
    assert _open_in(ns, f"packet:{v.a}") == {"ok": "packet", "link": True}


def test_default_route_without_address_refused(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("route", "add", "default", "dev", v.a, ns=ns)
    res = _open_in(ns, f"packet:{v.a}")
    assert res["error"] == "DeviceBusy" and "default route" in res["message"], res


def test_master_with_address_refused(netlab):
    """An interface in a bridge carries the bridge's traffic."""
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("link", "add", "br0", "type", "bridge", ns=ns)
    ip("link", "set", v.a, "master", "br0", ns=ns)
    ip("addr", "add", "198.18.4.1/24", "dev", "br0", ns=ns)
    ip("link", "set", "br0", "up", ns=ns)
    res = _open_in(ns, f"packet:{v.a}")
    assert res["error"] == "DeviceBusy" and "br0" in res["message"], res


def test_not_root_is_not_permitted(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    res = _open_in(ns, f"packet:{v.a}", user="65534")
    assert res["error"] == "NotPermitted" and "CAP_NET_RAW" in res["message"], res


@pytest.mark.parametrize("options", ["qdisc_bypass=1", "fanout=lb,retire_ms=5", "ring=v2",
                                     "ring=v2,qdisc_bypass=1"])
async def test_options_still_deliver(netlab, options):
    v = netlab.veth()
    lossless = {"overflow": "pause", "batch_size": 32, "options": options}
    async with aioixy.open(f"packet:{v.a}", **lossless) as a, \
            aioixy.open(f"packet:{v.b}", **lossless) as b:
        rep = await transfer(a, b, 2000, timeout=120, window=256)
        assert rep.ok(2000), rep


async def test_fanout_spreads_flows_over_queues(netlab):
    """Four rx queues in one PACKET_FANOUT (hash) group: every frame arrives once, on the queue
    its flow hashes to, and 64 flows do not all land on one queue."""
    v = netlab.veth()
    async with aioixy.open(f"packet:{v.a}") as a, \
            aioixy.open(f"packet:{v.b}", rx_queues=4, tx_queues=1) as b:
        count = 64 * 8
        seen: dict[int, set[int]] = {q: set() for q in range(4)}

        async def drain(q: int) -> None:
            async for batch in b.rx(q):
                with batch:
                    for pkt in batch:
                        seen[q].add(frame_seq(pkt.data))
                if sum(len(s) for s in seen.values()) >= count:
                    return

        tasks = [asyncio.create_task(drain(q)) for q in range(4)]
        for i in range(0, count, 32):
            batch = a.alloc(32, size=60)
            for k, pkt in enumerate(batch):
                pkt.data[:] = make_frame(i + k, 60, flow=(i + k) % 64)
            await a.tx(batch)
        _, pending = await asyncio.wait(tasks, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        everything = set().union(*seen.values())
        assert len(everything) == count == sum(len(s) for s in seen.values())
        assert sum(1 for s in seen.values() if s) >= 2, {q: len(s) for q, s in seen.items()}
        # one flow, one queue: the hash keeps a flow's frames together (and so in order)
        queues_of_flow: dict[int, set[int]] = {}
        for q, s in seen.items():
            for seq in s:
                queues_of_flow.setdefault(seq % 64, set()).add(q)
        assert all(len(qs) == 1 for qs in queues_of_flow.values()), queues_of_flow


async def test_promiscuous_mode_is_a_socket_membership(netlab):
    """Counted by the kernel per socket: visible as the interface's promiscuity while open and
    gone with the port, without ever setting the interface's own IFF_PROMISC flag by hand."""
    v = netlab.veth()

    def promiscuity() -> int:
        return json.loads(ip("-j", "-d", "link", "show", v.a))[0]["promiscuity"]

    async with aioixy.open(f"packet:{v.a}", promisc=True) as p:
        assert p.promiscuous and promiscuity() == 1
        p.set_promisc(False)
        assert not p.promiscuous and promiscuity() == 0
        p.set_promisc(True)
        assert promiscuity() == 1
    assert promiscuity() == 0


@pytest.mark.parametrize("ring", ["v3", "v2"])
async def test_vlan_tag_delivered_in_the_frame(netlab, ring):
    """The kernel moves a received VLAN tag into metadata; the driver puts it back."""
    v = netlab.veth()
    frame = make_frame(5, 100)
    tagged = frame[:12] + b"\x81\x00\x20\x07" + frame[12:]  # PCP 1, VID 7
    opts = {"options": f"ring={ring}"}
    async with aioixy.open(f"packet:{v.a}", **opts) as a, \
            aioixy.open(f"packet:{v.b}", **opts) as b:
        batch = a.alloc(1, size=len(tagged))
        batch[0].write(tagged)
        await a.tx(batch)
        async with asyncio.timeout(10):
            async for got in b.rx():
                with got:
                    assert [bytes(p.data) for p in got] == [tagged]
                break


async def test_oversized_and_runt_frames_refused_and_counted(netlab):
    v = netlab.veth()
    async with aioixy.open(f"packet:{v.a}") as a, aioixy.open(f"packet:{v.b}") as b:
        batch = a.alloc(3, size=60)
        batch[0].length = 1514 + 4 + 100  # beyond MTU 1500 + Ethernet header + one VLAN tag
        batch[1].length = 10              # not even an Ethernet header
        batch[2].data[:] = make_frame(1, 60)
        # refused in the caller's hands, before the driver sees them: the packets stay ours
        with pytest.raises(aioixy.PacketRejected, match="at most 1518 bytes"):
            await a.tx([batch[0]])
        with pytest.raises(aioixy.PacketRejected, match="at least 14 bytes"):
            await a.tx([batch[1]])
        assert len(batch) == 3
        await a.tx([batch[2]])
        batch.release()
        async with asyncio.timeout(10):
            async for got in b.rx():
                with got:
                    assert [len(p.data) for p in got] == [60]
                break
        assert a.stats().device.tx_errors == 0
        assert a.stats().device.tx_packets == 1


@pytest.mark.parametrize("ring", ["v3", "v2"])
async def test_idle_port_sleeps_in_poll_and_wakes_for_rx_and_tx(netlab, ring):
    """An idle packet: port's poller sleeps in poll() on its socket (the 100 ms safety timeout
    bounds its sleeps to a handful a second; the timed back-off would take thousands), and wakes
    both for a frame the kernel delivers and for a frame Python enqueues."""
    v = netlab.veth()
    opts = {"options": f"ring={ring}"}
    async with aioixy.open(f"packet:{v.a}", **opts) as a, \
            aioixy.open(f"packet:{v.b}", **opts) as b:
        await asyncio.sleep(0.3)
        before = a.queue_stats(0).idle_sleeps
        await asyncio.sleep(1.0)
        slept = a.queue_stats(0).idle_sleeps - before
        assert slept <= 30, f"{slept} sleeps in 1 s: the poller is not sleeping in poll()"
        for seq in range(3):  # tx into a sleeping poller (the kick), rx by a sleeping poller
            batch = a.alloc(1, size=60)
            batch[0].data[:] = make_frame(seq, 60)
            await a.tx(batch)
            async with asyncio.timeout(10):
                async for got in b.rx():
                    with got:
                        assert [bytes(p.data) for p in got] == [make_frame(seq, 60)]
                    break
            await asyncio.sleep(0.3)  # both pollers back asleep


def test_aioixy_list_shows_test_veth_with_backends(netlab):
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("addr", "add", "198.18.4.1/24", "dev", v.a, ns=ns)
    r = subprocess.run(in_ns(ns, [sys.executable, "-m", "aioixy", "list", "--json"]),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    ifaces = {i["name"]: i for i in json.loads(r.stdout)["interfaces"]}
    assert set(ifaces) == {v.a}  # a namespace holds only what this test put there (lo hidden)
    me = ifaces[v.a]
    assert "packet" in me["backends"] and "xdp" in me["backends"]
    assert me["up"] and me["addresses"] == ["198.18.4.1/24"] and me["safe"] is False
    assert "198.18.4.1" in me["refusal"]
    text = subprocess.run(in_ns(ns, [sys.executable, "-m", "aioixy", "list"]),
                          capture_output=True, text=True, timeout=60).stdout
    line = next(line for line in text.splitlines() if line.startswith(v.a))
    assert "packet,xdp" in line and "UNSAFE" in line


async def test_udp_multi_queue_from_kernel_all_delivered(netlab):
    """fanout with the kernel as sender: 64 UDP flows from a namespace over 4 rx queues."""
    ns = netlab.netns()
    v = netlab.veth(ns_a=ns)
    ip("addr", "add", "198.18.5.1/24", "dev", v.a, ns=ns)
    async with aioixy.open(f"packet:{v.b}", rx_queues=4) as port:
        ip("neigh", "replace", "198.18.5.2", "lladdr", port.mac, "dev", v.a, ns=ns)
        got: list[bytes] = []

        async def receive() -> None:
            async for batch in port.rx():
                with batch:
                    got.extend(p for pkt in batch
                               if (p := parse_udp(bytes(pkt.data), 9999)) is not None)
                if len(got) >= 256:
                    return

        rx = asyncio.create_task(receive())
        sender = textwrap.dedent("""
            import socket, time
            socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(64)]
            for i in range(256):
                socks[i % 64].sendto(i.to_bytes(4, "big"), ("198.18.5.2", 9999))
                time.sleep(0.0005)
            """)
        proc = await asyncio.create_subprocess_exec(*in_ns(ns, [sys.executable, "-c", sender]))
        assert await asyncio.wait_for(proc.wait(), 60) == 0
        await asyncio.wait_for(rx, 30)
        assert sorted(int.from_bytes(p, "big") for p in got) == list(range(256))
        assert sum(1 for q in range(4) if port.queue_stats(q).rx_packets) >= 2
