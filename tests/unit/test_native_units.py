"""The native building blocks (ring, mempool, DMA providers) driven directly through cffi."""

from __future__ import annotations

import os

from aioixy import errors
from aioixy._ffi import ffi, lib
from tests.tiers import unavailable


def test_ring_rejects_bad_sizes():
    for size in (0, 1, 3, 1000):
        assert lib.aioixy_ring_create(size) == ffi.NULL
        assert lib.aioixy_last_errcode() == lib.AIOIXY_EINVAL
        assert b"power of two" in ffi.string(lib.aioixy_last_error())


def test_ring_bulk_fifo_and_capacity():
    r = lib.aioixy_ring_create(8)
    try:
        objs = ffi.new("void *[]", [ffi.cast("void *", i + 1) for i in range(12)])
        assert lib.aioixy_ring_enqueue(r, objs, 5) == 5
        assert lib.aioixy_ring_used(r) == 5
        # only 3 more fit
        assert lib.aioixy_ring_enqueue(r, objs + 5, 7) == 3
        out = ffi.new("void *[16]")
        assert lib.aioixy_ring_dequeue(r, out, 4) == 4
        assert [int(ffi.cast("uintptr_t", out[i])) for i in range(4)] == [1, 2, 3, 4]
        # wrap around the end of the slot array
        assert lib.aioixy_ring_enqueue(r, objs + 8, 4) == 4
        assert lib.aioixy_ring_dequeue(r, out, 16) == 8
        got = [int(ffi.cast("uintptr_t", out[i])) for i in range(8)]
        assert got == [5, 6, 7, 8, 9, 10, 11, 12]
        assert lib.aioixy_ring_dequeue(r, out, 16) == 0
    finally:
        lib.aioixy_ring_free(r)


def _anon():
    ctx = ffi.new("struct aioixy_dma_ctx *")
    ctx.kind = lib.DMA_ANON
    ctx.vfio_container_fd = -1
    return ctx


def test_mempool_alloc_free_counts_and_all_or_nothing():
    pool = lib.aioixy_mempool_create(_anon(), 100, 2048)
    assert pool != ffi.NULL
    try:
        assert lib.aioixy_mempool_free_count(pool) == 100
        assert lib.aioixy_mempool_data_room(pool) == 2048 - 64
        bufs = ffi.new("struct aioixy_pkt_buf *[128]")
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs, 60) == 60
        assert lib.aioixy_mempool_free_count(pool) == 40
        # all-or-nothing: 41 > 40 free
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs + 60, 41) == 0
        assert lib.aioixy_mempool_free_count(pool) == 40
        idx = {bufs[i].idx for i in range(60)}
        assert len(idx) == 60, "a buffer was handed out twice"
        for i in range(60):
            b = bufs[i]
            assert b.pool == pool
            # ANON memory: IOVA is the virtual address of the buffer
            assert b.iova == int(ffi.cast("uintptr_t", b))
        lib.aioixy_mempool_free_bulk(bufs, 60)
        assert lib.aioixy_mempool_free_count(pool) == 100
    finally:
        lib.aioixy_mempool_release(pool)


def test_mempool_outlives_release_until_buffers_return():
    live = lib.aioixy_mempool_live_count()
    a = lib.aioixy_mempool_create(_anon(), 16, 2048)
    b = lib.aioixy_mempool_create(_anon(), 16, 2048)
    assert lib.aioixy_mempool_live_count() == live + 2
    bufs = ffi.new("struct aioixy_pkt_buf *[8]")
    assert lib.aioixy_mempool_alloc_bulk(a, bufs, 4) == 4
    assert lib.aioixy_mempool_alloc_bulk(b, bufs + 4, 4) == 4
    lib.aioixy_mempool_release(a)
    lib.aioixy_mempool_release(b)
    # both owners are gone but 4 buffers of each are still out: the memory must stay
    assert lib.aioixy_mempool_live_count() == live + 2
    bufs[0].len = 7  # still writable
    # one free call with buffers of two pools returns each to its home and frees both pools
    lib.aioixy_mempool_free_bulk(bufs, 8)
    assert lib.aioixy_mempool_live_count() == live


def test_mempool_refuses_a_double_free_and_never_overfills():
    pool = lib.aioixy_mempool_create(_anon(), 8, 2048)
    bad = lib.aioixy_mempool_bad_frees()
    try:
        bufs = ffi.new("struct aioixy_pkt_buf *[8]")
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs, 2) == 2
        twice = ffi.new("struct aioixy_pkt_buf *[3]", [bufs[0], bufs[0], bufs[1]])
        lib.aioixy_mempool_free_bulk(twice, 3)
        assert lib.aioixy_mempool_bad_frees() == bad + 1
        assert lib.aioixy_mempool_free_count(pool) == 8  # not 9
        lib.aioixy_mempool_free_bulk(twice, 1)  # already free: refused again
        assert lib.aioixy_mempool_bad_frees() == bad + 2
        assert lib.aioixy_mempool_free_count(pool) == 8
        # nothing aliased: the whole pool is handed out, each buffer once
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs, 8) == 8
        assert len({bufs[i].idx for i in range(8)}) == 8
        lib.aioixy_mempool_free_bulk(bufs, 8)
    finally:
        lib.aioixy_mempool_release(pool)


def test_dma_reachability_follows_the_memory_kind():
    def ctx(kind: int, fd: int = -1):
        c = ffi.new("struct aioixy_dma_ctx *")
        c.kind = kind
        c.vfio_container_fd = fd
        return c

    host = lib.aioixy_mempool_create(ctx(lib.DMA_HOST), 4, 2048)
    model = lib.aioixy_mempool_create(ctx(lib.DMA_ANON), 4, 2048)
    try:
        reach = lib.aioixy_mempool_dma_reachable
        # software devices copy with the CPU: anything
        assert reach(host, ctx(lib.DMA_HOST)) and reach(model, ctx(lib.DMA_HOST))
        # a model reads registered model memory only; hardware reads neither
        assert reach(model, ctx(lib.DMA_ANON)) and not reach(host, ctx(lib.DMA_ANON))
        for kind in (lib.DMA_HUGEPAGE, lib.DMA_VFIO):
            assert not reach(host, ctx(kind, 5)) and not reach(model, ctx(kind, 5))
        # the model's IOMMU (the DMA_ANON registry) does not know host memory
        bufs = ffi.new("struct aioixy_pkt_buf *[2]")
        assert lib.aioixy_mempool_alloc_bulk(host, bufs, 1) == 1
        assert lib.aioixy_mempool_alloc_bulk(model, bufs + 1, 1) == 1
        win = ffi.new("struct aioixy_dma_window *")
        assert not lib.aioixy_dma_anon_lookup(bufs[0].iova, 64, win)
        assert lib.aioixy_dma_anon_lookup(bufs[1].iova, 64, win)
        lib.aioixy_mempool_free_bulk(bufs, 2)
    finally:
        lib.aioixy_mempool_release(host)
        lib.aioixy_mempool_release(model)


def test_mempool_rejects_bad_geometry():
    assert lib.aioixy_mempool_create(_anon(), 10, 1000) == ffi.NULL
    assert b"power of two" in ffi.string(lib.aioixy_last_error())
    assert lib.aioixy_mempool_create(_anon(), 0, 2048) == ffi.NULL


def _hugepages() -> tuple[int, int]:
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["HugePages_Total"]), int(info["HugePages_Free"])


def _set_nr_hugepages(n: int) -> None:
    with open("/proc/sys/vm/nr_hugepages", "w") as f:
        f.write(str(n))


def test_hugepage_provider_gives_physical_addresses_and_clear_errors():
    if os.geteuid() != 0:
        unavailable("hugepage DMA needs root (reserving hugepages, reading physical addresses)")
    total, _ = _hugepages()
    ctx = ffi.new("struct aioixy_dma_ctx *")
    ctx.kind = lib.DMA_HUGEPAGE
    ctx.vfio_container_fd = -1
    mem = ffi.new("struct aioixy_dma_mem *")
    try:
        _set_nr_hugepages(0)
        rc = lib.aioixy_dma_alloc(ctx, 4096, True, mem)
        err = errors.from_native(rc)
        assert isinstance(err, errors.NoHugepages)
        assert "nr_hugepages" in str(err)

        _set_nr_hugepages(total + 4)
        if _hugepages()[1] < 2:
            unavailable("the kernel could not reserve 2 hugepages (fragmented memory)")
        assert lib.aioixy_dma_alloc(ctx, 4096, True, mem) == 0
        try:
            virt = int(ffi.cast("uintptr_t", mem.virt))
            assert mem.iova != 0 and mem.iova != virt
            assert mem.iova % (2 * 1024 * 1024) == 0, "a hugepage is 2 MiB aligned physically"
            assert lib.aioixy_virt_to_phys(ffi.cast("char *", mem.virt) + 12345) == mem.iova + 12345
        finally:
            lib.aioixy_dma_free(mem)
        pool = lib.aioixy_mempool_create(ctx, 2048, 2048)  # 4 MiB: spans two hugepages
        if pool == ffi.NULL:
            unavailable(ffi.string(lib.aioixy_last_error()).decode())
        bufs = ffi.new("struct aioixy_pkt_buf *[2048]")
        assert lib.aioixy_mempool_alloc_bulk(pool, bufs, 2048) == 2048
        for i in (0, 1023, 1024, 2047):
            b = bufs[i]
            assert b.iova == lib.aioixy_virt_to_phys(b)
        lib.aioixy_mempool_free_bulk(bufs, 2048)
        lib.aioixy_mempool_release(pool)
    finally:
        _set_nr_hugepages(total)
