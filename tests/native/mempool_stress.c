/* Buffers cross threads the way they do in aioixy: thread A allocates in bulk and passes them
 * through a ring to thread B, which frees them in bulk, while the main thread allocates and
 * frees too. Every buffer carries an "owned" flag that must flip 0->1 on alloc and 1->0 on
 * free: a buffer handed out twice, or freed twice, is caught. At the end the pool is whole and,
 * once released, destroyed. */
#include "mempool.h"
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define NBUF 1024u
static struct aioixy_mempool *pool;
static struct aioixy_ring *ring;
static _Atomic uint8_t owned[NBUF];
static _Atomic int failed;
static _Atomic int producer_done;
static uint64_t rounds;

static void take(struct aioixy_pkt_buf **b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (atomic_exchange_explicit(&owned[b[i]->idx], 1, memory_order_relaxed) != 0) {
            fprintf(stderr, "FAIL: buffer %u handed out twice\n", b[i]->idx);
            atomic_store(&failed, 1);
        }
}

static void give(struct aioixy_pkt_buf **b, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (atomic_exchange_explicit(&owned[b[i]->idx], 0, memory_order_relaxed) != 1) {
            fprintf(stderr, "FAIL: buffer %u freed while not owned\n", b[i]->idx);
            atomic_store(&failed, 1);
        }
    aioixy_mempool_free_bulk(b, n);
}

static void *producer(void *arg)
{
    (void)arg;
    struct aioixy_pkt_buf *b[32];
    for (uint64_t r = 0; r < rounds; r++) {
        uint32_t n = (uint32_t)(r % 32) + 1;
        if (!aioixy_mempool_alloc_bulk(pool, b, n))
            continue;
        take(b, n);
        uint32_t sent = 0;
        while (sent < n)
            sent += aioixy_ring_enqueue_burst(ring, (void **)b + sent, n - sent);
    }
    atomic_store_explicit(&producer_done, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg)
{
    (void)arg;
    struct aioixy_pkt_buf *b[64];
    for (;;) {
        uint32_t n = aioixy_ring_dequeue_burst(ring, (void **)b, 64);
        if (n)
            give(b, n);
        else if (atomic_load_explicit(&producer_done, memory_order_acquire) &&
                 aioixy_ring_count(ring) == 0)
            return NULL;
    }
}

int main(int argc, char **argv)
{
    rounds = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000ull;
    struct aioixy_dma_ctx ctx = {.kind = DMA_ANON, .vfio_container_fd = -1};
    pool = aioixy_mempool_create(&ctx, NBUF, 2048);
    ring = aioixy_ring_create(512);
    if (!pool || !ring) {
        fprintf(stderr, "setup: %s\n", aioixy_last_error());
        return 1;
    }
    pthread_t p, c;
    pthread_create(&p, NULL, producer, NULL);
    pthread_create(&c, NULL, consumer, NULL);
    struct aioixy_pkt_buf *b[16];
    for (uint64_t r = 0; r < rounds; r++) { /* a third party using the same pool */
        if (aioixy_mempool_alloc_bulk(pool, b, 16)) {
            take(b, 16);
            give(b, 16);
        }
    }
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    if (aioixy_mempool_free_count(pool) != NBUF) {
        fprintf(stderr, "FAIL: %u of %u buffers free at the end\n", aioixy_mempool_free_count(pool), NBUF);
        return 1;
    }
    aioixy_mempool_release(pool);
    aioixy_ring_free(ring);
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: pool not destroyed after release\n");
        return 1;
    }
    if (atomic_load(&failed))
        return 1;
    printf("mempool_stress: %lu rounds, pool whole and destroyed\n", (unsigned long)rounds);
    return 0;
}
