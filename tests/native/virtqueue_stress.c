/* The VirtIO driver's virtqueues (drivers/virtqueue.h) against a device emulated in a second
 * thread, for split and packed rings, with and without EVENT_IDX, on small rings so both sides
 * wrap thousands of times. The emulated device stops polling whenever the ring is empty and
 * waits for a notification, with the notification suppression each mode defines armed first:
 * a notification the driver wrongly skips hangs the device and fails the run. Checks that
 * buffers come back in order with the lengths the device wrote, and that command chains (the
 * control queue's) take and return the right number of descriptors. Usage:
 *   virtqueue_stress BUFFERS   (per mode) */
#include "virtqueue.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define QSIZE 16

static struct virtq q;
static volatile uint16_t notify_reg;
static _Atomic bool stop_dev;
static _Atomic int dev_failed;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* the device side of the publish-then-check pairs, sequentially consistent like the driver's */
static uint16_t ld(const uint16_t *p)
{
    return vq_load16_sc(p);
}

static void st(uint16_t *p, uint16_t v)
{
    vq_store16_sc(p, v);
}

static uint64_t notifies(void)
{
    return atomic_load_explicit(&q.notifies, memory_order_relaxed);
}

/* --- the emulated device --- */
static uint16_t d_avail, d_used;  /* split: free-running indices; packed: ring positions */
static bool d_avail_wrap = true, d_used_wrap = true;

/* one available buffer (a chain) taken and returned used; false if none */
static bool dev_split_one(void)
{
    uint16_t idx = ld(q.avail_idx);
    if (idx == d_avail)
        return false;
    uint16_t head = q.avail_ring[d_avail & (QSIZE - 1)];
    uint32_t len = 0;
    for (uint16_t d = head;; d = q.desc[d].next) {
        len += q.desc[d].len;
        if (!(q.desc[d].flags & VQ_DESC_F_NEXT))
            break;
    }
    d_avail++;
    struct vq_used_elem *e = &q.used_ring[d_used & (QSIZE - 1)];
    e->id = head;
    e->len = len;
    st(q.used_idx, ++d_used);
    return true;
}

static bool packed_avail(uint16_t flags, bool wrap)
{
    return !!(flags & VQ_PACKED_F_AVAIL) == wrap && !!(flags & VQ_PACKED_F_USED) != wrap;
}

static bool dev_packed_one(void)
{
    uint16_t flags = ld(&q.pdesc[d_avail].flags);
    if (!packed_avail(flags, d_avail_wrap))
        return false;
    uint32_t len = 0;
    uint16_t n = 0, id = 0;
    for (;;) {
        struct vq_packed_desc *d = &q.pdesc[d_avail];
        if (n > 0 && !packed_avail(ld(&d->flags), d_avail_wrap)) {
            atomic_store(&dev_failed, 1); /* a chain's tail must be there with its head */
            return false;
        }
        len += d->len;
        id = d->id;
        n++;
        bool more = d->flags & VQ_DESC_F_NEXT;
        if (++d_avail == QSIZE)
            d_avail = 0, d_avail_wrap = !d_avail_wrap;
        if (!more)
            break;
    }
    /* one used descriptor for the chain, then skip the rest of its slots (2.8.7) */
    struct vq_packed_desc *u = &q.pdesc[d_used];
    u->id = id;
    u->len = len;
    st(&u->flags, d_used_wrap ? (VQ_PACKED_F_AVAIL | VQ_PACKED_F_USED) : 0);
    d_used = (uint16_t)(d_used + n);
    if (d_used >= QSIZE)
        d_used = (uint16_t)(d_used - QSIZE), d_used_wrap = !d_used_wrap;
    return true;
}

static bool dev_one(void)
{
    return q.packed ? dev_packed_one() : dev_split_one();
}

/* Nothing to do: say "notify me" the way the mode defines, re-check, then wait for a kick. */
static void dev_arm(bool on)
{
    if (q.packed) {
        if (on && q.event_idx) {
            st(&q.device_event->off_wrap, (uint16_t)(d_avail | (d_avail_wrap ? 0x8000 : 0)));
            st(&q.device_event->flags, VQ_EVENT_DESC);
        } else {
            st(&q.device_event->flags, on ? VQ_EVENT_ENABLE : VQ_EVENT_DISABLE);
        }
    } else if (q.event_idx) {
        if (on)
            st(q.avail_event, d_avail);
    } else {
        st(q.used_flags, on ? 0 : VQ_USED_F_NO_NOTIFY);
    }
}

static void *device(void *arg)
{
    (void)arg;
    dev_arm(false);
    while (!atomic_load(&stop_dev)) {
        if (dev_one())
            continue;
        uint64_t seen = notifies();
        dev_arm(true);
        if (dev_one()) {
            dev_arm(false);
            continue;
        }
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        while (notifies() == seen && !atomic_load(&stop_dev)) {
            sched_yield();
            clock_gettime(CLOCK_MONOTONIC, &t);
            if (t.tv_sec - t0.tv_sec > 5) {
                fprintf(stderr, "virtqueue_stress: device waited 5 s for a notification that "
                        "never came (packed=%d event_idx=%d)\n", q.packed, q.event_idx);
                atomic_store(&dev_failed, 1);
                return NULL;
            }
        }
        dev_arm(false);
    }
    return NULL;
}

/* --- the driver side: vq_add / vq_add_chain / vq_publish / vq_pop --- */
static int run(bool packed, bool event_idx, long rounds)
{
    struct aioixy_dma_ctx ctx = {DMA_ANON, -1};
    if (vq_alloc(&q, &ctx, 3, QSIZE, packed, event_idx)) {
        fprintf(stderr, "vq_alloc: %s\n", aioixy_last_error());
        return 1;
    }
    q.notify_mmio = &notify_reg;
    d_avail = d_used = 0;
    d_avail_wrap = d_used_wrap = true;
    atomic_store(&stop_dev, false);
    pthread_t th;
    pthread_create(&th, NULL, device, NULL);
    /* what is in flight, in order: a sequence number (>= 1) per buffer, 0 for a chain */
    uint64_t fifo[4 * QSIZE];
    uint32_t fifo_len[4 * QSIZE];
    unsigned head = 0, tail = 0;
    uint64_t seq = 1, done = 0;
    int rc = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while ((long)done < rounds && !rc && !atomic_load(&dev_failed)) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 120) {
            fprintf(stderr, "virtqueue_stress: only %lu of %ld buffers in 120 s\n",
                    (unsigned long)done, rounds);
            rc = 1;
            break;
        }
        if (rnd() % 8 == 0 && q.n_free >= 3) {
            const uint64_t a[3] = {0x1000, 0x2000, 0x3000};
            const uint32_t l[3] = {2, 5, 1};
            const bool w[3] = {false, false, true};
            if (vq_add_chain(&q, 3, a, l, w)) {
                fprintf(stderr, "vq_add_chain: %s\n", aioixy_last_error());
                rc = 1;
                break;
            }
            fifo[tail % (4 * QSIZE)] = 0;
            fifo_len[tail++ % (4 * QSIZE)] = 8;
        } else if (q.n_free) {
            uint32_t k = 1 + rnd() % q.n_free;
            for (uint32_t i = 0; i < k; i++, seq++) {
                uint32_t len = (uint32_t)(seq % 1500) + 1;
                vq_add(&q, seq * 64, len, rnd() & 1, (struct aioixy_pkt_buf *)(uintptr_t)(seq * 64));
                fifo[tail % (4 * QSIZE)] = seq;
                fifo_len[tail++ % (4 * QSIZE)] = len;
            }
            vq_publish(&q);
        }
        struct aioixy_pkt_buf *b;
        uint32_t len;
        if (!q.n_free)
            sched_yield(); /* a full ring: give the device thread the CPU */
        while (vq_pop(&q, &b, &len)) {
            if (head == tail) {
                fprintf(stderr, "virtqueue_stress: a used buffer nobody added\n");
                rc = 1;
                break;
            }
            uint64_t want = fifo[head % (4 * QSIZE)];
            uint32_t want_len = fifo_len[head++ % (4 * QSIZE)];
            if ((uintptr_t)b != want * 64 || len != want_len) {
                fprintf(stderr, "virtqueue_stress: got buffer %lu len %u, expected %lu len %u "
                        "(packed=%d event_idx=%d)\n", (unsigned long)((uintptr_t)b / 64), len,
                        (unsigned long)want, want_len, packed, event_idx);
                rc = 1;
                break;
            }
            done++;
        }
    }
    /* drain what is still in flight */
    for (int spin = 0; head != tail && !rc && spin < 5000000 && !atomic_load(&dev_failed); spin++) {
        struct aioixy_pkt_buf *b;
        uint32_t len;
        if (vq_pop(&q, &b, &len))
            head++, done++;
    }
    if (head != tail && !rc) {
        fprintf(stderr, "virtqueue_stress: %u buffers never came back\n", tail - head);
        rc = 1;
    }
    if (q.n_free != QSIZE || q.n_ids != QSIZE) {
        fprintf(stderr, "virtqueue_stress: %u descriptors / %u ids free after the drain, "
                "expected %u\n", q.n_free, q.n_ids, QSIZE);
        rc = 1;
    }
    atomic_store(&stop_dev, true);
    pthread_join(th, NULL);
    if (atomic_load(&dev_failed))
        rc = 1;
    uint64_t kicks = notifies();
    memset(q.bufs, 0, QSIZE * sizeof(*q.bufs)); /* fake buffers: nothing to give back */
    vq_free(&q);
    if (!rc)
        printf("  %s%s: %lu buffers, %lu notifications\n", packed ? "packed" : "split",
               event_idx ? "+event_idx" : "", (unsigned long)done, (unsigned long)kicks);
    return rc;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 100000;
    int rc = 0;
    for (int packed = 0; packed < 2 && !rc; packed++)
        for (int ev = 0; ev < 2 && !rc; ev++)
            rc = run(packed, ev, rounds);
    if (!rc)
        printf("virtqueue_stress: split and packed rings, %ld buffers each, in order\n", rounds);
    return rc;
}
