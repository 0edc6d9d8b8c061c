#include "ring.h"

#include <stdlib.h>
#include <string.h>

struct aioixy_ring *aioixy_ring_create(uint32_t size)
{
    if (size < 2 || (size & (size - 1)) != 0 || size > (1u << 24)) {
        aioixy_set_error(AIOIXY_EINVAL, "ring size %u must be a power of two in 2..16777216", size);
        return NULL;
    }
    size_t bytes = sizeof(struct aioixy_ring) + (size_t)size * sizeof(void *);
    bytes = (bytes + AIOIXY_CACHE_LINE - 1) & ~(size_t)(AIOIXY_CACHE_LINE - 1);
    struct aioixy_ring *r = aligned_alloc(AIOIXY_CACHE_LINE, bytes);
    if (!r) {
        aioixy_set_error(AIOIXY_ENOMEM, "out of memory for a ring of %u slots", size);
        return NULL;
    }
    memset(r, 0, bytes);
    atomic_init(&r->prod.head, 0);
    atomic_init(&r->cons.tail, 0);
    r->size = size;
    r->mask = size - 1;
    return r;
}

void aioixy_ring_free(struct aioixy_ring *r) { free(r); }

uint32_t aioixy_ring_enqueue(struct aioixy_ring *r, void *const *objs, uint32_t n)
{
    return aioixy_ring_enqueue_burst(r, objs, n);
}

uint32_t aioixy_ring_dequeue(struct aioixy_ring *r, void **objs, uint32_t n)
{
    return aioixy_ring_dequeue_burst(r, objs, n);
}

uint32_t aioixy_ring_size(const struct aioixy_ring *r) { return r->size; }
uint32_t aioixy_ring_used(const struct aioixy_ring *r) { return aioixy_ring_count(r); }
