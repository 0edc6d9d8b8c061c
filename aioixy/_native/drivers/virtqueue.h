/* Virtqueues for the VirtIO driver, written from the VirtIO 1.x specification: the split
 * virtqueue (section 2.7) and the packed virtqueue (section 2.8), with the notification
 * suppression of both (2.7.7/2.7.10 with VIRTIO_F_EVENT_IDX, 2.8.10/2.8.14).
 *
 * One virtqueue belongs to one thread (its queue's poller, or the control path under the
 * port's control mutex), so nothing here is locked. The device is the other party: every word
 * it writes or reads concurrently is accessed through atomics with explicit orders.
 *
 * Buffers are identified by an id in 0..size-1 (for split rings the id is also the index of
 * the head descriptor; packed rings carry it in the descriptor). A chain of k descriptors (the
 * control queue's commands) takes k descriptors and one id.
 */
#ifndef AIOIXY_VIRTQUEUE_H
#define AIOIXY_VIRTQUEUE_H

#include "dma.h"
#include "mempool.h"
#include "pci.h"

#include <stdatomic.h>

#define VQ_DESC_F_NEXT 1u
#define VQ_DESC_F_WRITE 2u
#define VQ_PACKED_F_AVAIL (1u << 7)
#define VQ_PACKED_F_USED (1u << 15)
#define VQ_USED_F_NO_NOTIFY 1u
#define VQ_AVAIL_F_NO_INTERRUPT 1u
#define VQ_EVENT_ENABLE 0u  /* packed event suppression flags (2.8.10) */
#define VQ_EVENT_DISABLE 1u
#define VQ_EVENT_DESC 2u

struct vq_split_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct vq_packed_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t id;
    uint16_t flags;
};

struct vq_event {
    uint16_t off_wrap; /* descriptor ring offset (bits 0..14) and wrap counter (bit 15) */
    uint16_t flags;
};

struct virtq {
    bool packed;
    bool event_idx;          /* VIRTIO_F_EVENT_IDX negotiated */
    uint16_t size, index;    /* descriptors; the queue's number on the device */
    /* notification: a 16-bit MMIO store (modern) or a port write through the BAR fd (legacy) */
    volatile uint16_t *notify_mmio;
    int notify_fd;
    uint32_t notify_off;
    struct aioixy_dma_mem mem;
    /* split ring */
    struct vq_split_desc *desc;
    uint16_t *avail_flags, *avail_idx, *avail_ring, *used_event;
    uint16_t *used_flags, *used_idx, *avail_event;
    struct vq_used_elem *used_ring;
    uint16_t published;      /* avail->idx as last written */
    uint16_t used_seen;      /* used->idx as last read */
    /* packed ring */
    struct vq_packed_desc *pdesc;
    struct vq_event *driver_event, *device_event;
    bool avail_wrap, used_wrap;
    uint16_t head_slot, head_flags; /* first descriptor of the batch not yet made available */
    bool head_wrap;
    uint16_t pending;        /* descriptors added since the last publish */
    uint16_t *chain_len;     /* descriptors per id */
    /* both */
    uint16_t next_avail;     /* split: next avail index (free-running); packed: next slot */
    uint16_t last_used;      /* split: next used index (free-running); packed: next slot */
    uint16_t n_free;         /* free descriptors */
    uint16_t n_ids;          /* free ids on the stack */
    uint16_t *free_ids;
    struct aioixy_pkt_buf **bufs; /* buffer behind each id (NULL for control commands) */
    _Atomic uint64_t notifies; /* notifications sent (only the owning thread writes it) */
};

/* Memory for a ring of `size` descriptors (power of two for split rings) from `ctx`, zeroed,
 * and the bookkeeping. 0 or -AIOIXY_E* with the error set. */
int vq_alloc(struct virtq *q, struct aioixy_dma_ctx *ctx, uint16_t index, uint16_t size,
             bool packed, bool event_idx);
/* Bus addresses of the three areas (2.6: descriptor area, driver area, device area). */
uint64_t vq_desc_iova(const struct virtq *q);
uint64_t vq_driver_iova(const struct virtq *q);
uint64_t vq_device_iova(const struct virtq *q);
/* Ask the device not to signal used buffers (we poll). */
void vq_no_interrupts(struct virtq *q);
/* Return every buffer still posted to its pool (only after the device was reset), free all. */
void vq_free(struct virtq *q);
/* Post a chain of n descriptors (one id, no buffer) and publish it: the control queue. */
int vq_add_chain(struct virtq *q, uint16_t n, const uint64_t *addr, const uint32_t *len,
                 const bool *device_writes);

static inline uint16_t vq_load16(const uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void vq_store16(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* The publish-then-check pairs below need store->load ordering (a plain release/acquire pair
 * allows the load to pass the store): both sides are sequentially consistent, so the check
 * cannot see a state older than the store (on x86 the store is an xchg). */
static inline void vq_store16_sc(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static inline uint16_t vq_load16_sc(const uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void vq_notify(struct virtq *q)
{
    aioixy_counter_add(&q->notifies, 1);
    if (q->notify_mmio)
        *q->notify_mmio = q->index; /* after the seq_cst publish: the ring is visible */
    else
        aioixy_bar_write16(q->notify_fd, q->notify_off, q->index);
}

/* Add one buffer (one descriptor) without making it visible yet; the caller checked n_free. */
static inline void vq_add(struct virtq *q, uint64_t addr, uint32_t len, bool device_writes,
                          struct aioixy_pkt_buf *buf)
{
    uint16_t id = q->free_ids[--q->n_ids];
    q->n_free--;
    q->bufs[id] = buf;
    if (!q->packed) {
        struct vq_split_desc *d = &q->desc[id];
        d->addr = addr;
        d->len = len;
        d->flags = device_writes ? VQ_DESC_F_WRITE : 0;
        d->next = 0;
        q->avail_ring[q->next_avail++ & (q->size - 1)] = id;
        return;
    }
    q->chain_len[id] = 1;
    uint16_t slot = q->next_avail;
    struct vq_packed_desc *d = &q->pdesc[slot];
    d->addr = addr;
    d->len = len;
    d->id = id;
    uint16_t flags = (uint16_t)((device_writes ? VQ_DESC_F_WRITE : 0) |
                                (q->avail_wrap ? VQ_PACKED_F_AVAIL : VQ_PACKED_F_USED));
    if (q->pending++ == 0) {
        /* the batch's first descriptor becomes available last, so the device sees all at once */
        q->head_slot = slot;
        q->head_flags = flags;
        q->head_wrap = q->avail_wrap;
    } else {
        vq_store16(&d->flags, flags);
    }
    if (++q->next_avail == q->size) {
        q->next_avail = 0;
        q->avail_wrap = !q->avail_wrap;
    }
}

/* Make what vq_add added visible to the device and notify it unless it said it needs none. */
static inline void vq_publish(struct virtq *q)
{
    bool kick;
    if (!q->packed) {
        uint16_t old = q->published, now = q->next_avail;
        if (old == now)
            return;
        /* the check below must not pass the index store: the device may have decided (on the
         * old index) to stop watching, and we would skip a notification it needs */
        vq_store16_sc(q->avail_idx, now);
        q->published = now;
        if (q->event_idx) {
            uint16_t ev = vq_load16_sc(q->avail_event);
            kick = (uint16_t)(now - ev - 1) < (uint16_t)(now - old);
        } else {
            kick = !(vq_load16_sc(q->used_flags) & VQ_USED_F_NO_NOTIFY);
        }
    } else {
        if (!q->pending)
            return;
        uint16_t n = q->pending;
        q->pending = 0;
        vq_store16_sc(&q->pdesc[q->head_slot].flags, q->head_flags);
        uint16_t flags = vq_load16_sc(&q->device_event->flags);
        if (flags == VQ_EVENT_DISABLE) {
            kick = false;
        } else if (flags == VQ_EVENT_DESC && q->event_idx) {
            /* notify iff the slot the device named is one of the n just made available */
            uint16_t ow = vq_load16_sc(&q->device_event->off_wrap);
            int32_t off = ow & 0x7fff;
            bool wrap = ow >> 15;
            int32_t d = off - (int32_t)q->head_slot + (wrap == q->head_wrap ? 0 : q->size);
            kick = d >= 0 && d < n;
        } else {
            kick = true;
        }
    }
    if (kick)
        vq_notify(q);
}

/* Take the next used buffer: true with *buf (NULL for a control chain) and the length the
 * device wrote, false if there is none. */
static inline bool vq_pop(struct virtq *q, struct aioixy_pkt_buf **buf, uint32_t *len)
{
    uint16_t id;
    if (!q->packed) {
        if (q->last_used == q->used_seen) {
            q->used_seen = vq_load16(q->used_idx); /* acquire: the entries are valid after it */
            if (q->last_used == q->used_seen)
                return false;
        }
        const struct vq_used_elem *e = &q->used_ring[q->last_used++ & (q->size - 1)];
        id = (uint16_t)e->id;
        *len = e->len;
        /* a chain gives back every descriptor it took (the control queue's) */
        uint16_t d = id;
        while (q->desc[d].flags & VQ_DESC_F_NEXT) {
            uint16_t next = q->desc[d].next;
            q->desc[d].flags = 0;
            q->free_ids[q->n_ids++] = next;
            q->n_free++;
            d = next;
        }
        q->n_free++;
    } else {
        struct vq_packed_desc *d = &q->pdesc[q->last_used];
        uint16_t flags = vq_load16(&d->flags); /* acquire: id and len are valid after it */
        bool avail = flags & VQ_PACKED_F_AVAIL, used = flags & VQ_PACKED_F_USED;
        if (avail != used || used != q->used_wrap)
            return false;
        id = d->id;
        *len = d->len;
        uint16_t k = q->chain_len[id];
        q->n_free = (uint16_t)(q->n_free + k);
        q->last_used = (uint16_t)(q->last_used + k);
        if (q->last_used >= q->size) {
            q->last_used = (uint16_t)(q->last_used - q->size);
            q->used_wrap = !q->used_wrap;
        }
    }
    *buf = q->bufs[id];
    q->bufs[id] = NULL;
    q->free_ids[q->n_ids++] = id;
    return true;
}

#endif
