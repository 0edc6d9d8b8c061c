/* Lock-free single-producer / single-consumer ring of pointers.
 *
 * Indices run free (uint32_t, wrapping); slot = index & mask. The producer owns `head`, the
 * consumer owns `tail`; each lives on its own cache line together with the owner's cached copy
 * of the other side's index, so in the common case an operation touches only its own line plus
 * the slots. Ordering: the producer publishes slots with a release store of head, the consumer
 * reads head with acquire before reading slots; symmetrically the consumer releases tail after
 * it has read the slots, and the producer acquires tail before reusing them. Nothing stronger
 * is needed for SPSC.
 */
#ifndef AIOIXY_RING_H
#define AIOIXY_RING_H

#include "common.h"

struct aioixy_ring {
    struct {
        _Atomic uint32_t head;   /* next slot the producer writes */
        uint32_t cached_tail;    /* producer's last view of tail */
    } prod AIOIXY_CACHE_ALIGNED;
    struct {
        _Atomic uint32_t tail;   /* next slot the consumer reads */
        uint32_t cached_head;    /* consumer's last view of head */
    } cons AIOIXY_CACHE_ALIGNED;
    uint32_t size AIOIXY_CACHE_ALIGNED; /* power of two; read-only after create */
    uint32_t mask;
    void *slots[] AIOIXY_CACHE_ALIGNED;
};

/* size: power of two >= 2. NULL with error set on bad size / no memory. */
struct aioixy_ring *aioixy_ring_create(uint32_t size);
void aioixy_ring_free(struct aioixy_ring *r);

/* Enqueue up to n objects; returns how many were enqueued (0..n), in order. Producer only. */
static inline uint32_t aioixy_ring_enqueue_burst(struct aioixy_ring *r, void *const *objs, uint32_t n)
{
    uint32_t head = atomic_load_explicit(&r->prod.head, memory_order_relaxed);
    uint32_t free_slots = r->size - (head - r->prod.cached_tail);
    if (free_slots < n) {
        r->prod.cached_tail = atomic_load_explicit(&r->cons.tail, memory_order_acquire);
        free_slots = r->size - (head - r->prod.cached_tail);
        if (n > free_slots)
            n = free_slots;
    }
    for (uint32_t i = 0; i < n; i++)
        r->slots[(head + i) & r->mask] = objs[i];
    atomic_store_explicit(&r->prod.head, head + n, memory_order_release);
    return n;
}

/* Dequeue up to n objects; returns how many were dequeued. Consumer only. */
static inline uint32_t aioixy_ring_dequeue_burst(struct aioixy_ring *r, void **objs, uint32_t n)
{
    uint32_t tail = atomic_load_explicit(&r->cons.tail, memory_order_relaxed);
    uint32_t avail = r->cons.cached_head - tail;
    if (avail < n) {
        r->cons.cached_head = atomic_load_explicit(&r->prod.head, memory_order_acquire);
        avail = r->cons.cached_head - tail;
        if (n > avail)
            n = avail;
    }
    for (uint32_t i = 0; i < n; i++)
        objs[i] = r->slots[(tail + i) & r->mask];
    atomic_store_explicit(&r->cons.tail, tail + n, memory_order_release);
    return n;
}

/* Approximate occupancy, safe from any thread (for stats). */
static inline uint32_t aioixy_ring_count(const struct aioixy_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->prod.head, memory_order_acquire);
    uint32_t tail = atomic_load_explicit(&r->cons.tail, memory_order_acquire);
    return head - tail;
}

/* Exact for the consumer: is there anything to dequeue? (refreshes the cached head) */
static inline bool aioixy_ring_consumer_empty(struct aioixy_ring *r)
{
    uint32_t tail = atomic_load_explicit(&r->cons.tail, memory_order_relaxed);
    if (r->cons.cached_head != tail)
        return false;
    r->cons.cached_head = atomic_load_explicit(&r->prod.head, memory_order_acquire);
    return r->cons.cached_head == tail;
}

/* Exact for the producer: free slots (refreshes the cached tail). */
static inline uint32_t aioixy_ring_producer_space(struct aioixy_ring *r)
{
    uint32_t head = atomic_load_explicit(&r->prod.head, memory_order_relaxed);
    r->prod.cached_tail = atomic_load_explicit(&r->cons.tail, memory_order_acquire);
    return r->size - (head - r->prod.cached_tail);
}

/* Out-of-line wrappers so Python (cffi) and tests can drive a ring directly. */
uint32_t aioixy_ring_enqueue(struct aioixy_ring *r, void *const *objs, uint32_t n);
uint32_t aioixy_ring_dequeue(struct aioixy_ring *r, void **objs, uint32_t n);
uint32_t aioixy_ring_size(const struct aioixy_ring *r);
uint32_t aioixy_ring_used(const struct aioixy_ring *r);

#endif
