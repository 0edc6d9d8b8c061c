#include "mempool.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct aioixy_mempool {
    /* everything the lock protects shares the lock's cache line */
    atomic_flag lock;
    _Atomic uint32_t free_top; /* written under the lock; read lock-free for stats */
    bool released;
    uint32_t num_bufs AIOIXY_CACHE_ALIGNED;
    uint32_t buf_size;
    struct aioixy_dma_mem mem;
    uint32_t stack[];
};

static atomic_uint live_pools;
static _Atomic uint64_t bad_frees;
static atomic_flag bad_free_reported = ATOMIC_FLAG_INIT;

static void pool_lock(struct aioixy_mempool *p)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(&p->lock, memory_order_acquire)) {
        /* the holder may be a preempted thread on a busy 2-core box: stop burning its core */
        if (++spins > 1024) {
            sched_yield();
            spins = 0;
        } else {
            aioixy_cpu_relax();
        }
    }
}

static void pool_unlock(struct aioixy_mempool *p)
{
    atomic_flag_clear_explicit(&p->lock, memory_order_release);
}

static inline struct aioixy_pkt_buf *buf_at(struct aioixy_mempool *p, uint32_t idx)
{
    return (struct aioixy_pkt_buf *)((uint8_t *)p->mem.virt + (size_t)idx * p->buf_size);
}

struct aioixy_mempool *aioixy_mempool_create(const struct aioixy_dma_ctx *ctx, uint32_t num_bufs,
                                             uint32_t buf_size)
{
    if (buf_size == 0)
        buf_size = AIOIXY_DEFAULT_BUF_SIZE;
    if (buf_size < AIOIXY_MIN_BUF_SIZE || buf_size > AIOIXY_MAX_BUF_SIZE || (buf_size & (buf_size - 1))) {
        aioixy_set_error(AIOIXY_EINVAL, "buffer size %u must be a power of two in %u..%u", buf_size,
                         AIOIXY_MIN_BUF_SIZE, AIOIXY_MAX_BUF_SIZE);
        return NULL;
    }
    if (num_bufs == 0 || num_bufs > AIOIXY_MAX_POOL_BUFS) {
        aioixy_set_error(AIOIXY_EINVAL, "pool size %u must be in 1..%u buffers", num_bufs,
                         AIOIXY_MAX_POOL_BUFS);
        return NULL;
    }
    struct aioixy_mempool *p = aligned_alloc(AIOIXY_CACHE_LINE,
        (sizeof(*p) + (size_t)num_bufs * sizeof(uint32_t) + AIOIXY_CACHE_LINE - 1) &
        ~(size_t)(AIOIXY_CACHE_LINE - 1));
    if (!p) {
        aioixy_set_error(AIOIXY_ENOMEM, "out of memory for a pool of %u buffers", num_bufs);
        return NULL;
    }
    memset(p, 0, sizeof(*p));
    atomic_flag_clear(&p->lock);
    p->num_bufs = num_bufs;
    p->buf_size = buf_size;
    /* buffers need not be contiguous with each other: each one's IOVA is looked up below */
    if (aioixy_dma_alloc(ctx, (size_t)num_bufs * buf_size, false, &p->mem) != 0) {
        free(p);
        return NULL;
    }
    for (uint32_t i = 0; i < num_bufs; i++) {
        struct aioixy_pkt_buf *b = buf_at(p, i);
        b->iova = aioixy_dma_iova(&p->mem, b);
        if (!b->iova) {
            aioixy_dma_free(&p->mem);
            free(p);
            return NULL;
        }
        b->pool = p;
        b->idx = i;
        b->len = 0;
        b->rx_flags = 0;
        atomic_init(&b->state, AIOIXY_BUF_FREE);
        /* LIFO: hand out low indices first, so a small working set stays cache-hot */
        p->stack[i] = num_bufs - 1 - i;
    }
    atomic_init(&p->free_top, num_bufs);
    atomic_fetch_add_explicit(&live_pools, 1, memory_order_relaxed);
    return p;
}

static void pool_destroy(struct aioixy_mempool *p)
{
    aioixy_dma_free(&p->mem);
    free(p);
    atomic_fetch_sub_explicit(&live_pools, 1, memory_order_relaxed);
}

void aioixy_mempool_release(struct aioixy_mempool *p)
{
    if (!p)
        return;
    pool_lock(p);
    p->released = true;
    bool destroy = atomic_load_explicit(&p->free_top, memory_order_relaxed) == p->num_bufs;
    pool_unlock(p);
    if (destroy)
        pool_destroy(p);
}

uint32_t aioixy_mempool_alloc_bulk(struct aioixy_mempool *p, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    pool_lock(p);
    uint32_t top = atomic_load_explicit(&p->free_top, memory_order_relaxed);
    if (top < n) {
        pool_unlock(p);
        return 0;
    }
    top -= n;
    for (uint32_t i = 0; i < n; i++)
        bufs[i] = buf_at(p, p->stack[top + n - 1 - i]);
    atomic_store_explicit(&p->free_top, top, memory_order_relaxed);
    pool_unlock(p);
    for (uint32_t i = 0; i < n; i++) {
        bufs[i]->len = 0;
        atomic_store_explicit(&bufs[i]->state, AIOIXY_BUF_OUT, memory_order_relaxed);
    }
    return n;
}

static void refuse_free(const struct aioixy_pkt_buf *b, const char *why)
{
    atomic_fetch_add_explicit(&bad_frees, 1, memory_order_relaxed);
    /* once per process: a loop of bad frees must not flood stderr */
    if (!atomic_flag_test_and_set_explicit(&bad_free_reported, memory_order_relaxed))
        fprintf(stderr, "aioixy: refused to free packet buffer %u of pool %p: %s (a buffer was "
                "freed twice; it was NOT returned again, so the pool stays consistent)\n",
                b->idx, (void *)b->pool, why);
}

/* Frees a run of buffers that all belong to p. */
static void free_run(struct aioixy_mempool *p, struct aioixy_pkt_buf *const *bufs, uint32_t n)
{
    pool_lock(p);
    uint32_t top = atomic_load_explicit(&p->free_top, memory_order_relaxed);
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        /* the header line is read for idx anyway: the state check costs no extra miss */
        if (aioixy_unlikely(atomic_load_explicit(&b->state, memory_order_relaxed) != AIOIXY_BUF_OUT)) {
            refuse_free(b, "it is already free");
            continue;
        }
        if (aioixy_unlikely(top >= p->num_bufs)) {
            refuse_free(b, "the pool is already full");
            continue;
        }
        atomic_store_explicit(&b->state, AIOIXY_BUF_FREE, memory_order_relaxed);
        p->stack[top++] = b->idx;
    }
    atomic_store_explicit(&p->free_top, top, memory_order_relaxed);
    bool destroy = p->released && top == p->num_bufs;
    pool_unlock(p);
    if (destroy)
        pool_destroy(p);
}

void aioixy_mempool_free_bulk(struct aioixy_pkt_buf *const *bufs, uint32_t n)
{
    uint32_t start = 0;
    while (start < n) {
        struct aioixy_mempool *p = bufs[start]->pool;
        uint32_t end = start + 1;
        while (end < n && bufs[end]->pool == p)
            end++;
        free_run(p, bufs + start, end - start);
        start = end;
    }
}

/* set in a forked child only, before any other thread exists there */
static bool forget_frees;

void aioixy_mempool_forget_frees(void) { forget_frees = true; }

void aioixy_buf_array_release(struct aioixy_pkt_buf **a)
{
    aioixy_mempool_free_slots(a + 1, (uint32_t)(uintptr_t)a[0]);
}

void aioixy_mempool_free_slots(struct aioixy_pkt_buf **bufs, uint32_t n)
{
    if (forget_frees)
        return;
    uint32_t start = 0;
    while (start < n) {
        if (!bufs[start]) {
            start++;
            continue;
        }
        struct aioixy_mempool *p = bufs[start]->pool;
        uint32_t end = start + 1;
        while (end < n && bufs[end] && bufs[end]->pool == p)
            end++;
        free_run(p, bufs + start, end - start);
        memset(bufs + start, 0, (end - start) * sizeof(*bufs));
        start = end;
    }
}

struct aioixy_pkt_buf *aioixy_mempool_alloc(struct aioixy_mempool *p)
{
    struct aioixy_pkt_buf *b;
    return aioixy_mempool_alloc_bulk(p, &b, 1) ? b : NULL;
}

void aioixy_mempool_free(struct aioixy_pkt_buf *buf) { free_run(buf->pool, &buf, 1); }

uint32_t aioixy_mempool_free_count(const struct aioixy_mempool *p)
{
    /* a snapshot is fine for stats; tests read it when the pool is quiescent */
    return atomic_load_explicit(&((struct aioixy_mempool *)p)->free_top, memory_order_relaxed);
}

uint32_t aioixy_mempool_size(const struct aioixy_mempool *p) { return p->num_bufs; }
uint32_t aioixy_mempool_buf_size(const struct aioixy_mempool *p) { return p->buf_size; }
uint32_t aioixy_mempool_data_room(const struct aioixy_mempool *p) { return p->buf_size - AIOIXY_PKT_HEADER; }
uint32_t aioixy_mempool_live_count(void) { return atomic_load_explicit(&live_pools, memory_order_relaxed); }

void *aioixy_mempool_region(const struct aioixy_mempool *p, size_t *len)
{
    *len = (size_t)p->num_bufs * p->buf_size;
    return p->mem.virt;
}
uint64_t aioixy_mempool_bad_frees(void) { return atomic_load_explicit(&bad_frees, memory_order_relaxed); }

bool aioixy_mempool_dma_reachable(const struct aioixy_mempool *p, const struct aioixy_dma_ctx *ctx)
{
    return aioixy_dma_reachable(&p->mem, ctx);
}
int aioixy_mempool_dma_kind(const struct aioixy_mempool *p) { return (int)p->mem.kind; }
