#include "virtqueue.h"

#include <stdlib.h>
#include <string.h>

/* One layout serves both transports for split rings: descriptor table, then the available ring
 * (flags, idx, ring[size], used_event), then at the next 4 KiB boundary the used ring (flags,
 * idx, ring[size], avail_event). The legacy interface needs exactly this (2.7.2's legacy
 * layout, one page frame number); the modern one takes the three addresses separately and
 * only needs the alignments 16/2/4 (2.7), which it satisfies too. */
#define SPLIT_ALIGN 4096u

static size_t split_used_off(uint16_t n)
{
    return (16u * n + 2u * (3u + n) + SPLIT_ALIGN - 1) & ~(size_t)(SPLIT_ALIGN - 1);
}

static size_t split_bytes(uint16_t n)
{
    return split_used_off(n) + ((2u * 3u + 8u * n + SPLIT_ALIGN - 1) & ~(size_t)(SPLIT_ALIGN - 1));
}

/* packed: descriptor ring (16 B each), then the driver and the device event suppression
 * structures (4 B each, 4-aligned: 2.8.10.1) */
static size_t packed_bytes(uint16_t n)
{
    return 16u * n + 2 * sizeof(struct vq_event);
}

int vq_alloc(struct virtq *q, struct aioixy_dma_ctx *ctx, uint16_t index, uint16_t size,
             bool packed, bool event_idx)
{
    memset(q, 0, sizeof(*q));
    q->notify_fd = -1;
    if (size == 0 || (!packed && (size & (size - 1))) || size > 32768)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtqueue %u: size %u is not usable (a split "
                                "ring needs a power of two, a packed one at most 32768)", index,
                                size);
    int rc = aioixy_dma_alloc(ctx, packed ? packed_bytes(size) : split_bytes(size), true, &q->mem);
    if (rc)
        return rc;
    memset(q->mem.virt, 0, q->mem.size);
    q->packed = packed;
    q->event_idx = event_idx;
    q->size = size;
    q->index = index;
    uint8_t *base = q->mem.virt;
    if (packed) {
        q->pdesc = (struct vq_packed_desc *)base;
        q->driver_event = (struct vq_event *)(base + 16u * size);
        q->device_event = q->driver_event + 1;
        q->avail_wrap = q->used_wrap = true; /* both wrap counters start at 1 (2.8.1) */
    } else {
        q->desc = (struct vq_split_desc *)base;
        q->avail_flags = (uint16_t *)(base + 16u * size);
        q->avail_idx = q->avail_flags + 1;
        q->avail_ring = q->avail_flags + 2;
        q->used_event = q->avail_ring + size;
        q->used_flags = (uint16_t *)(base + split_used_off(size));
        q->used_idx = q->used_flags + 1;
        q->used_ring = (struct vq_used_elem *)(q->used_flags + 2);
        q->avail_event = (uint16_t *)(q->used_ring + size);
    }
    q->free_ids = calloc(size, sizeof(*q->free_ids));
    q->chain_len = calloc(size, sizeof(*q->chain_len));
    q->bufs = calloc(size, sizeof(*q->bufs));
    if (!q->free_ids || !q->chain_len || !q->bufs)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    for (uint16_t i = 0; i < size; i++)
        q->free_ids[i] = (uint16_t)(size - 1 - i);
    q->n_ids = q->n_free = size;
    return 0;
}

uint64_t vq_desc_iova(const struct virtq *q)
{
    return q->mem.iova;
}

uint64_t vq_driver_iova(const struct virtq *q)
{
    return q->mem.iova + 16u * q->size; /* the available ring / the driver event structure */
}

uint64_t vq_device_iova(const struct virtq *q)
{
    return q->mem.iova + (q->packed ? 16u * q->size + sizeof(struct vq_event)
                                    : split_used_off(q->size));
}

void vq_no_interrupts(struct virtq *q)
{
    if (q->packed)
        vq_store16(&q->driver_event->flags, VQ_EVENT_DISABLE);
    else
        /* without EVENT_IDX the flag asks for no interrupts; with it the device reads
         * used_event instead, and we leave that at 0: an interrupt once per 65536 buffers,
         * which goes nowhere (no MSI-X vector, INTx unclaimed) */
        vq_store16(q->avail_flags, VQ_AVAIL_F_NO_INTERRUPT);
}

void vq_free(struct virtq *q)
{
    if (q->bufs)
        for (uint16_t i = 0; i < q->size; i++)
            if (q->bufs[i])
                aioixy_mempool_free(q->bufs[i]);
    free(q->bufs);
    free(q->free_ids);
    free(q->chain_len);
    aioixy_dma_free(&q->mem);
    memset(q, 0, sizeof(*q));
    q->notify_fd = -1;
}

int vq_add_chain(struct virtq *q, uint16_t n, const uint64_t *addr, const uint32_t *len,
                 const bool *device_writes)
{
    if (n == 0 || q->n_free < n || q->n_ids == 0)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtqueue %u has no room for %u descriptors",
                                q->index, n);
    if (!q->packed) {
        uint16_t ids[8];
        if (n > 8)
            return aioixy_set_error(AIOIXY_EINVAL, "chain of %u descriptors is too long", n);
        for (uint16_t i = 0; i < n; i++) {
            ids[i] = q->free_ids[--q->n_ids];
            q->n_free--;
        }
        for (uint16_t i = 0; i < n; i++) {
            struct vq_split_desc *d = &q->desc[ids[i]];
            d->addr = addr[i];
            d->len = len[i];
            d->flags = (uint16_t)((i + 1 < n ? VQ_DESC_F_NEXT : 0) |
                                  (device_writes[i] ? VQ_DESC_F_WRITE : 0));
            d->next = i + 1 < n ? ids[i + 1] : 0;
        }
        q->bufs[ids[0]] = NULL;
        q->avail_ring[q->next_avail++ & (q->size - 1)] = ids[0];
    } else {
        uint16_t id = q->free_ids[--q->n_ids];
        q->bufs[id] = NULL;
        q->chain_len[id] = n;
        for (uint16_t i = 0; i < n; i++) {
            uint16_t slot = q->next_avail;
            struct vq_packed_desc *d = &q->pdesc[slot];
            d->addr = addr[i];
            d->len = len[i];
            d->id = id;
            uint16_t flags = (uint16_t)((i + 1 < n ? VQ_DESC_F_NEXT : 0) |
                                        (device_writes[i] ? VQ_DESC_F_WRITE : 0) |
                                        (q->avail_wrap ? VQ_PACKED_F_AVAIL : VQ_PACKED_F_USED));
            if (q->pending++ == 0) {
                q->head_slot = slot;
                q->head_flags = flags;
                q->head_wrap = q->avail_wrap;
            } else {
                vq_store16(&d->flags, flags);
            }
            q->n_free--;
            if (++q->next_avail == q->size) {
                q->next_avail = 0;
                q->avail_wrap = !q->avail_wrap;
            }
        }
    }
    vq_publish(q);
    return 0;
}
