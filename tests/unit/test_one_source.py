"""Facts written once: limits, defaults, error codes and the test frame come from the native
headers, and what a port can hold is what its driver set up (issue 9)."""

from __future__ import annotations

import itertools
import os

import pytest

import aioixy
from aioixy import errors
from aioixy._ffi import ffi, lib
from aioixy.core import frames
from aioixy.core.config import MAX_BATCH, MAX_QUEUES, IdlePolicy, PortConfig

pytestmark = [
    pytest.mark.usefixtures("no_leaks"),
    # small explicit pools are what the limit tests are about: the sizing advice is expected
    pytest.mark.filterwarnings("ignore::aioixy.PoolSizeWarning"),
]

_ids = itertools.count()


def _unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_ids)}"


def test_python_defaults_are_the_native_defaults():
    native = ffi.new("struct aioixy_port_config *")
    lib.aioixy_port_config_defaults(native)
    ours, _keep = PortConfig().to_native(ffi, lib)
    for field in ("batch_size", "rx_ring_size", "tx_ring_size", "overflow", "idle_spin",
                  "idle_pause", "idle_sleep_min_us", "idle_sleep_max_us", "rx_enabled"):
        assert getattr(ours, field) == getattr(native, field), field
    for field in ("rx_queues", "tx_queues", "link_timeout_ms"):
        assert getattr(ours.dev, field) == getattr(native.dev, field), field
    assert list(ours.cpus) == list(native.cpus)
    cfg = PortConfig()
    # left out, the pool is sized from the rings, never below the native default
    assert cfg.pool_size is None
    assert cfg.pool_buffers == max(lib.AIOIXY_DEFAULT_POOL_BUFS, cfg.capacity)
    assert cfg.buf_size == lib.AIOIXY_DEFAULT_BUF_SIZE
    assert cfg.pkt_size == lib.AIOIXY_FRAME_MIN == frames.MIN_FRAME


def test_the_cpu_table_is_as_long_as_the_queue_limit():
    native = ffi.new("struct aioixy_port_config *")
    assert len(native.cpus) == lib.AIOIXY_MAX_QUEUES == MAX_QUEUES


@pytest.mark.parametrize(("option", "good", "bad"), [
    ("rx_queues", lib.AIOIXY_MAX_QUEUES, lib.AIOIXY_MAX_QUEUES + 1),
    ("batch_size", lib.AIOIXY_MAX_BATCH, lib.AIOIXY_MAX_BATCH + 1),
    ("ring_size", lib.AIOIXY_MAX_RING_SIZE, lib.AIOIXY_MAX_RING_SIZE * 2),
    ("ring_size", lib.AIOIXY_MIN_RING_SIZE, lib.AIOIXY_MIN_RING_SIZE // 2),
    ("pool_size", lib.AIOIXY_MIN_POOL_BUFS, lib.AIOIXY_MIN_POOL_BUFS - 1),
    ("pool_size", lib.AIOIXY_MAX_POOL_BUFS, lib.AIOIXY_MAX_POOL_BUFS + 1),
    ("buf_size", lib.AIOIXY_MAX_BUF_SIZE, lib.AIOIXY_MAX_BUF_SIZE * 2),
    ("buf_size", lib.AIOIXY_MIN_BUF_SIZE, lib.AIOIXY_MIN_BUF_SIZE // 2),
    ("rx_descs", lib.AIOIXY_MAX_DESCS, lib.AIOIXY_MAX_DESCS + 1),
    ("pkt_size", lib.AIOIXY_FRAME_MIN, lib.AIOIXY_FRAME_MIN - 1),
])
def test_python_limits_are_the_native_limits(option, good, bad):
    assert MAX_BATCH == lib.AIOIXY_MAX_BATCH
    PortConfig(**{option: good})
    with pytest.raises(aioixy.InvalidOption, match=option):
        PortConfig(**{option: bad})


def test_the_native_side_enforces_the_same_pool_limit():
    # past Python's validation, straight into the port layer: the same bound, the same error
    cfg = ffi.new("struct aioixy_port_config *")
    lib.aioixy_port_config_defaults(cfg)
    cfg.dev.pool_bufs = lib.AIOIXY_MIN_POOL_BUFS - 1
    out = ffi.new("struct aioixy_port **")
    rc = lib.aioixy_port_open(b"null", cfg, out)
    assert rc == -lib.AIOIXY_EINVAL
    exc = errors.from_native(rc)
    assert isinstance(exc, aioixy.InvalidOption)
    assert f"must be {lib.AIOIXY_MIN_POOL_BUFS}.." in str(exc)


def test_every_native_error_code_has_its_own_exception():
    codes = {name: getattr(lib, name) for name in dir(lib)
             if name.startswith("AIOIXY_E") and name[8:].isupper() and "_" not in name[8:]}
    assert len(codes) >= 9, codes
    classes = set()
    for name, code in codes.items():
        lib.aioixy_clear_error()
        exc = errors.from_native(-code)
        assert type(exc) is not errors.AioixyError, f"{name} has no exception class"
        classes.add(type(exc))
    assert len(classes) == len(codes), "two native codes share one exception class"
    assert type(errors.from_native(-(max(codes.values()) + 1))) is errors.AioixyError


async def test_frames_module_reads_and_rebuilds_what_null_generates():
    async with aioixy.open("null:size=100") as port:
        async for batch in port.rx():
            with batch:
                got = [p.tobytes() for p in batch]
            break
    mac = bytes.fromhex(port.mac.replace(":", ""))
    assert [frames.frame_seq(f) for f in got] == list(range(len(got)))
    # the same header builder, from Python: null's frames are these headers + its own filler
    hdr = frames.headers(100, src=mac, dst=b"\x02\0\0\0\0\x02", src_port=1234, dst_port=5678)
    for seq, f in enumerate(got):
        assert len(f) == 100
        assert f[:frames.SEQ_OFFSET] == hdr
        assert f[frames.SEQ_OFFSET:frames.SEQ_END] == seq.to_bytes(8, "big")


def test_frames_round_trip():
    for seq, size, flow in [(0, 60, 0), (7, 61, 3), (2**40 + 1, 1514, 300), (65537, 9000, 1)]:
        f = frames.make_frame(seq, size, flow=flow)
        assert len(f) == size
        assert frames.frame_seq(f) == seq
        assert frames.check_frame(f, size) == seq
        g = bytearray(f)
        frames.set_seq(g, seq + 1)
        assert frames.frame_seq(g) == seq + 1
        with pytest.raises(AssertionError, match="byte"):
            frames.check_frame(g)  # the pattern and IP id belong to seq, not seq + 1
    with pytest.raises(ValueError, match="out of range"):
        frames.make_frame(0, frames.MIN_FRAME - 1)


@pytest.mark.parametrize("buf_size", [2048, 4096])
async def test_port_info_reports_what_null_set_up(buf_size):
    async with aioixy.open("null", buf_size=buf_size, rx_queues=2, tx_queues=3,
                           pool_size=512) as port:
        info = port.info
        assert (info.driver, info.name) == ("null", "null")
        assert (info.rx_queues, info.tx_queues, info.num_queues) == (2, 3, 3)
        assert info.buf_size == buf_size
        assert info.data_room == buf_size - lib.AIOIXY_PKT_HEADER
        assert info.pool_size == 512 == port.queue_stats(0).pool_size
        assert info.mac == port.mac == "02:00:00:00:00:01"
        assert info.min_tx_len <= frames.MIN_FRAME and info.max_tx_len == info.data_room
        assert not port.promiscuous
        port.set_promisc(True)
        assert port.promiscuous


async def test_ixgbe_buffers_are_4096_bytes_and_alloc_uses_them():
    # 82599 receive buffers are set in 1 KiB units and the driver asks for 4 KiB ones, whatever
    # buf_size says: the port must offer (and only offer) the room that is really there
    card = _unique("one")
    async with aioixy.open(f"sim-82599:{card}:0", buf_size=2048) as port:
        info = port.info
        assert info.driver == "ixgbe"
        assert info.buf_size == 4096
        assert info.data_room == 4096 - lib.AIOIXY_PKT_HEADER
        with port.alloc(2, size=3000) as b:
            assert [len(p) for p in b] == [3000, 3000]
            b[0].length = info.data_room
            assert b[0].room == info.data_room
        with pytest.raises(aioixy.InvalidOption, match=f"0..{info.data_room}"):
            port.alloc(1, size=info.data_room + 1)


def test_idle_policy_defaults_are_native():
    p = IdlePolicy()
    assert (p.spin, p.pause, p.sleep_min_us, p.sleep_max_us) == (
        lib.AIOIXY_DEFAULT_IDLE_SPIN, lib.AIOIXY_DEFAULT_IDLE_PAUSE,
        lib.AIOIXY_DEFAULT_IDLE_SLEEP_MIN_US, lib.AIOIXY_DEFAULT_IDLE_SLEEP_MAX_US)


async def test_frames_module_reads_what_the_82599_models_generator_sends():
    # the model's generator builds its frames with the same core/frames.h as null and Python
    card = _unique("gen")
    async with aioixy.open(f"sim-82599:{card}:0", overflow="pause",
                           options="wire=gen,flows=3,size=128,count=30") as port:
        got: list[bytes] = []
        async for batch in port.rx():
            with batch:
                got.extend(p.tobytes() for p in batch)
            if len(got) >= 30:
                break
    mac = bytes.fromhex(port.mac.replace(":", ""))
    assert [frames.frame_seq(f) for f in got] == list(range(30))
    for seq, f in enumerate(got):
        flow = seq % 3
        assert len(f) == 128
        assert f[:frames.SEQ_OFFSET] == frames.headers(
            128, src=b"\x02GEN\x00\x01", dst=mac, src_port=frames.FLOW_PORT_BASE + flow,
            dst_port=9, src_ip=bytes((10, 0, 0, flow)), dst_ip=bytes((10, 1, 0, 1)))
