/* Two threads push N sequence numbers through a small SPSC ring with random bulk sizes on both
 * sides; the consumer checks that every value arrives exactly once and in order. */
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t n_items;
static struct aioixy_ring *ring;

static uint32_t rnd(uint64_t *s) /* xorshift: cheap, deterministic per thread */
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (uint32_t)*s;
}

static void *producer(void *arg)
{
    (void)arg;
    uint64_t seed = 0x9e3779b97f4a7c15ull, next = 1;
    void *buf[64];
    while (next <= n_items) {
        uint32_t want = rnd(&seed) % 64 + 1;
        if (want > n_items - next + 1)
            want = (uint32_t)(n_items - next + 1);
        for (uint32_t i = 0; i < want; i++)
            buf[i] = (void *)(uintptr_t)(next + i);
        uint32_t done = aioixy_ring_enqueue_burst(ring, buf, want);
        next += done; /* what did not fit is re-generated next round with the same values */
    }
    return NULL;
}

int main(int argc, char **argv)
{
    n_items = argc > 1 ? strtoull(argv[1], NULL, 10) : 10000000ull;
    ring = aioixy_ring_create(256);
    if (!ring) {
        fprintf(stderr, "ring_create: %s\n", aioixy_last_error());
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, producer, NULL);
    uint64_t seed = 0x243f6a8885a308d3ull, expect = 1;
    void *buf[64];
    while (expect <= n_items) {
        uint32_t got = aioixy_ring_dequeue_burst(ring, buf, rnd(&seed) % 64 + 1);
        for (uint32_t i = 0; i < got; i++, expect++)
            if ((uintptr_t)buf[i] != expect) {
                fprintf(stderr, "FAIL: got %lu, expected %lu\n", (unsigned long)(uintptr_t)buf[i],
                        (unsigned long)expect);
                return 1;
            }
    }
    pthread_join(t, NULL);
    if (aioixy_ring_count(ring) != 0) {
        fprintf(stderr, "FAIL: ring not empty at the end\n");
        return 1;
    }
    aioixy_ring_free(ring);
    printf("ring_stress: %lu items in order, none lost or duplicated\n", (unsigned long)n_items);
    return 0;
}
