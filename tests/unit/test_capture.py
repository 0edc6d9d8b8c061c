"""The native capture writer (jobs/capfile.py, ops/capture.c) and the pcapng reader, checked
against independent readers (tshark, scapy) and writers (tshark's and scapy's pcapng)."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import scapy.layers.inet  # noqa: F401 - registers Ethernet/IP/UDP with scapy's readers
from scapy.utils import rdpcap, wrpcapng

import aioixy
from aioixy.core.frames import frame_seq
from aioixy.jobs.capfile import CaptureWriter
from aioixy.jobs.pcap import PcapngReader, PcapReader, open_capture
from tests.tiers import unavailable

pytestmark = pytest.mark.usefixtures("no_leaks")


def _tshark(path, *fields: str) -> list[list[str]]:
    if shutil.which("tshark") is None:
        unavailable("tshark is not installed (apt-get install tshark)")
    r = subprocess.run(["tshark", "-r", str(path), "-T", "fields",
                        *[x for f in fields for x in ("-e", f)]],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return [line.split("\t") for line in r.stdout.splitlines()]


async def _capture(writer: CaptureWriter, packets: int, size: int = 60, **kw) -> None:
    async with aioixy.open(f"null:size={size}", overflow="pause", **kw) as port:
        async for batch in port.rx():
            with batch:
                writer.write(batch, packets - writer.packets)
            if writer.packets >= packets:
                return


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
@pytest.mark.parametrize(("size", "snaplen"), [(60, 262144), (1000, 100), (1500, 1500)])
async def test_tshark_scapy_and_aioixy_read_the_same_capture(tmp_path, fmt, size, snaplen):
    path = tmp_path / f"c.{fmt}"
    with CaptureWriter(str(path), fmt, snaplen) as w:
        await _capture(w, 1000, size)
    assert w.packets == 1000 and w.bytes == 1000 * size and w.dropped == 0
    cap = min(size, snaplen)
    rows = _tshark(path, "frame.len", "frame.cap_len", "udp.dstport")
    assert rows == [[str(size), str(cap), "5678"]] * 1000
    pkts = rdpcap(str(path))
    assert [len(p) for p in pkts] == [cap] * 1000
    with open(path, "rb") as f:
        reader = open_capture(f)
        assert isinstance(reader, PcapngReader if fmt == "pcapng" else PcapReader)
        recs = list(reader)
    assert [bytes(p) for p in pkts] == [d for _, d in recs] and reader.truncated is None
    seqs = [frame_seq(d) for _, d in recs]
    assert seqs == list(range(seqs[0], seqs[0] + 1000))
    assert abs(recs[0][0] - float(pkts[0].time)) < 1e-6


async def test_a_ring_of_files_like_tcpdump_C_W(tmp_path):
    base = str(tmp_path / "ring.pcap")
    with CaptureWriter(base, "pcapng", file_size=20_000, files=3) as w:
        await _capture(w, 3000)
    assert sorted(os.listdir(tmp_path)) == ["ring.pcap0", "ring.pcap1", "ring.pcap2"]
    assert len(w.paths) > 3  # it went round the ring
    total = 0
    for name in ("ring.pcap0", "ring.pcap1", "ring.pcap2"):
        n = len(_tshark(tmp_path / name, "frame.len"))
        assert n > 0 and os.path.getsize(tmp_path / name) < 20_000 + 256 * 100
        total += n
    assert total < 3000  # the oldest were overwritten
    with CaptureWriter(str(tmp_path / "seq.pcap"), file_size=5_000) as w:
        await _capture(w, 1000)
    names = sorted(n for n in os.listdir(tmp_path) if n.startswith("seq"))
    assert names[:3] == ["seq.pcap", "seq.pcap1", "seq.pcap2"]
    assert sum(len(_tshark(tmp_path / n, "frame.len")) for n in names) == 1000


async def test_a_slow_pipe_reader_makes_the_writer_drop_whole_records(tmp_path):
    """The writer's own drops, apart from the port's: a reader taking 4 KiB every 5 ms."""
    import io
    import threading
    import time

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    data = bytearray()
    done = threading.Event()

    def slow_reader() -> None:
        while not done.is_set():
            data.extend(_read_some(rd, 4096))
            time.sleep(0.005)

    t = threading.Thread(target=slow_reader)
    t.start()
    try:
        with CaptureWriter(str(fifo), "pcapng") as w:
            async with aioixy.open("null:size=200", overflow="pause") as port:
                async for batch in port.rx():
                    with batch:
                        w.write(batch)
                    if w.dropped > 1000 and w.packets > 100:
                        break
                rx_dropped = port.stats().rx_dropped
        assert rx_dropped == 0  # the writer's drops alone, counted apart
        done.set()
        t.join()
        while chunk := _read_some(rd, 1 << 20):
            data.extend(chunk)
    finally:
        done.set()
        t.join()
        os.close(rd)
    reader = open_capture(io.BytesIO(bytes(data)))
    assert len(list(reader)) == w.packets and reader.truncated is None


def _read_some(fd: int, n: int) -> bytes:
    try:
        return os.read(fd, n)
    except BlockingIOError:
        return b""


def test_a_failed_write_leaves_whole_records(tmp_path):
    """A file size limit (EFBIG mid-batch): the file is cut back to its last whole record."""
    path = tmp_path / "cut.pcap"
    code = textwrap.dedent(f"""
        import asyncio, resource, signal
        import aioixy
        from aioixy.jobs.capfile import CaptureWriter
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_003, 100_003))
        async def main():
            w = CaptureWriter({str(path)!r})
            async with aioixy.open("null:size=300", overflow="pause") as port:
                async for batch in port.rx():
                    with batch:
                        try:
                            w.write(batch)
                        except OSError as exc:
                            print("errno", exc.errno, w.packets, flush=True)
                            return
        asyncio.run(main())
        """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    _, err, written = r.stdout.split()
    assert int(err) == errno.EFBIG
    size = os.path.getsize(path)
    assert size < 100_003 and (size - 24) % (16 + 300) == 0  # whole records only
    with open(path, "rb") as f:
        reader = PcapReader(f)
        assert len(list(reader)) == int(written) and reader.truncated is None


def test_dev_full_is_an_error_with_its_errno(tmp_path):
    with pytest.raises(OSError) as info:
        CaptureWriter("/dev/full")
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize(("kw", "says"), [
    ({"format": "erf"}, "format 'erf'"),
    ({"snaplen": 0}, "snaplen 0"),
    ({"snaplen": 262145}, "snaplen 262145"),
    ({"files": 3}, "needs file_size"),
    ({"file_size": 0}, "file_size 0"),
])
def test_bad_writer_options(tmp_path, kw, says):
    with pytest.raises(aioixy.InvalidOption, match=says):
        CaptureWriter(str(tmp_path / "x"), **kw)
    assert not (tmp_path / "x").exists()


def _pcapng_of_others(tmp_path, frames: list[bytes]) -> dict[str, str]:
    """The same frames as pcapng written by scapy and by tshark (from a pcap)."""
    from scapy.layers.l2 import Ether

    by_scapy = tmp_path / "scapy.pcapng"
    wrpcapng(str(by_scapy), [Ether(f) for f in frames])
    from scapy.utils import wrpcap
    plain = tmp_path / "plain.pcap"
    wrpcap(str(plain), [Ether(f) for f in frames])
    by_tshark = tmp_path / "tshark.pcapng"
    if shutil.which("tshark") is None:
        unavailable("tshark is not installed (apt-get install tshark)")
    subprocess.run(["tshark", "-r", str(plain), "-F", "pcapng", "-w", str(by_tshark)],
                   check=True, capture_output=True, timeout=60)
    return {"scapy": str(by_scapy), "tshark": str(by_tshark)}


@pytest.mark.parametrize("writer", ["scapy", "tshark"])
async def test_pcapng_of_other_writers_is_read_and_replayed(tmp_path, writer):
    from aioixy.core.frames import make_frame
    from aioixy.jobs import Job, load_pcap, replay

    frames = [make_frame(i, 60 + i) for i in range(50)]
    path = _pcapng_of_others(tmp_path, frames)[writer]
    got_frames, cut = load_pcap(path)
    assert got_frames == frames and cut is None
    with open(path, "rb") as f:
        data = f.read()
    import io
    cut_reader = PcapngReader(io.BytesIO(data[:-5]))
    assert len(list(cut_reader)) == 49 and "is cut short" in cut_reader.truncated
    lossless = {"flow_control": True, "overflow": "pause"}
    async with aioixy.open("pair:cap1:a", **lossless) as a, \
            aioixy.open("pair:cap1:b", **lossless) as b:
        await replay(a, Job("replay"), path)
        got: list[bytes] = []
        async for batch in b.rx():
            with batch:
                got += [p.tobytes() for p in batch]
            if len(got) >= 50:
                break
    assert got == frames
