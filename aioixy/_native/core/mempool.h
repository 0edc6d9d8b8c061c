/* Packet buffer pool.
 *
 * A pool is one DMA region cut into fixed-size buffers (power of two, default 2048 B, so a
 * buffer never straddles a 2 MiB hugepage). Each buffer starts with struct aioixy_pkt_buf
 * (64 bytes) followed by the packet data; the bytes just before `data` (headroom) are free
 * for drivers (e.g. the virtio-net header).
 *
 * Thread safety: alloc/free are bulk operations under a small spinlock held for a few
 * dozen instructions, because buffers legitimately cross threads: rx poller -> Python ->
 * another port's tx poller frees them after transmit. One lock round per batch, never per
 * packet. No heap allocation after create.
 *
 * Lifetime: the pool is reference counted by its owner. aioixy_mempool_release() drops the
 * owner's reference; the memory is freed only once every buffer is back (so a batch still
 * held in Python, or a buffer in flight in another port's tx ring, can never dangle).
 */
#ifndef AIOIXY_MEMPOOL_H
#define AIOIXY_MEMPOOL_H

#include "common.h"
#include "dma.h"

#define AIOIXY_PKT_HEADER 64u          /* sizeof(struct aioixy_pkt_buf) */
/* Buffer sizes are powers of two in MIN..MAX (data room = size - AIOIXY_PKT_HEADER). */
#define AIOIXY_MIN_BUF_SIZE 512u
#define AIOIXY_MAX_BUF_SIZE 65536u
#define AIOIXY_DEFAULT_BUF_SIZE 2048u
#define AIOIXY_MAX_POOL_BUFS (1u << 22)
#define AIOIXY_BUF_FREE 0x46524545u   /* "FREE" */
#define AIOIXY_BUF_OUT 0x4f555420u    /* "OUT " */

struct aioixy_mempool;

struct aioixy_pkt_buf {
    uint64_t iova;                /* bus address of this struct; data is at iova + 64 */
    struct aioixy_mempool *pool;  /* home pool */
    uint32_t idx;                 /* index in the pool */
    uint32_t len;                 /* packet length in bytes (data[0..len)) */
    uint64_t user;                /* free for the current owner (e.g. sequence, timestamp) */
    uint32_t rx_flags;            /* AIOIXY_RX_*: a driver that reports them writes them on every
                                   * packet it receives; 0 = nothing known */
    /* AIOIXY_BUF_FREE while in the pool's stack, AIOIXY_BUF_OUT once handed out: a free of a
     * buffer that is already free is refused (never pushed twice, which would alias it). Only
     * the pool changes it, under the pool lock (alloc stores OUT just after the lock, where a
     * racing free of the same buffer can only be a bug, and is then refused as a double free). */
    _Atomic uint32_t state;
    uint8_t headroom[24];         /* drivers may write metadata right before data */
    uint8_t data[];               /* 64-byte aligned packet data */
};
/* rx_flags: what the device checked. "checked" without "bad" means the checksum is good. */
#define AIOIXY_RX_IP_CSUM_CHECKED (1u << 0)  /* IPv4 header checksum verified by the device */
#define AIOIXY_RX_IP_CSUM_BAD (1u << 1)      /* ... and it is wrong */
#define AIOIXY_RX_L4_CSUM_CHECKED (1u << 2)  /* TCP/UDP checksum verified by the device */
#define AIOIXY_RX_L4_CSUM_BAD (1u << 3)      /* ... and it is wrong */
_Static_assert(sizeof(struct aioixy_pkt_buf) == AIOIXY_PKT_HEADER, "pkt_buf header must be 64 B");

/* Create a pool of 1..AIOIXY_MAX_POOL_BUFS buffers of `buf_size` bytes (power of two,
 * AIOIXY_MIN_BUF_SIZE..AIOIXY_MAX_BUF_SIZE, 0 = the default) in memory from `ctx`. Returns NULL with the error set. */
struct aioixy_mempool *aioixy_mempool_create(const struct aioixy_dma_ctx *ctx, uint32_t num_bufs,
                                             uint32_t buf_size);
/* Drop the owner's reference (see Lifetime above). */
void aioixy_mempool_release(struct aioixy_mempool *pool);

/* Take up to n buffers (all-or-nothing: returns n or 0). len is set to 0. */
uint32_t aioixy_mempool_alloc_bulk(struct aioixy_mempool *pool, struct aioixy_pkt_buf **bufs,
                                   uint32_t n);
/* Return n buffers to their home pools (they may come from different pools). A buffer that is
 * already free (a double free) or that would overfill its pool's stack is refused: skipped,
 * counted (aioixy_mempool_bad_frees) and reported once on stderr, never pushed twice. */
void aioixy_mempool_free_bulk(struct aioixy_pkt_buf *const *bufs, uint32_t n);
/* Free the non-NULL entries of bufs[0..n) and set them to NULL in the same call (a holder
 * interrupted right after it returns still sees what it owns: nothing is freed twice). */
void aioixy_mempool_free_slots(struct aioixy_pkt_buf **bufs, uint32_t n);
/* A Python batch's buffer array: a[0] holds the number of slots that follow (an integer stored
 * as a pointer: one plain pointer array is the cheapest thing Python can allocate per batch), and
 * the batch owns the buffers in the non-NULL slots a[1..]. This frees them: the destructor Python
 * attaches to the array, so a batch that is garbage collected returns its buffers without running
 * Python code (which a signal handler's exception could cut short before it freed anything). */
void aioixy_buf_array_release(struct aioixy_pkt_buf **a);
/* In a forked child: the two calls above forget buffers instead of freeing them (the pools are
 * copies whose locks a parent thread may have held at the fork). */
void aioixy_mempool_forget_frees(void);

struct aioixy_pkt_buf *aioixy_mempool_alloc(struct aioixy_mempool *pool);
void aioixy_mempool_free(struct aioixy_pkt_buf *buf);

uint32_t aioixy_mempool_free_count(const struct aioixy_mempool *pool);
uint32_t aioixy_mempool_size(const struct aioixy_mempool *pool);
uint32_t aioixy_mempool_buf_size(const struct aioixy_mempool *pool);
/* Capacity of buf->data (buf_size - 64). */
uint32_t aioixy_mempool_data_room(const struct aioixy_mempool *pool);
/* The pool's memory: buffer i is at region + i * buf_size (page-aligned start). Kernel-backed
 * drivers register it whole with the kernel (AF_XDP UMEM) so packets land in pool buffers. */
void *aioixy_mempool_region(const struct aioixy_mempool *pool, size_t *len);

/* Number of pools alive in the process (created and not yet destroyed): lets tests prove that
 * closing a port frees all native memory. */
uint32_t aioixy_mempool_live_count(void);
/* Frees refused since the process started (double frees, overfills): 0 unless something freed
 * a buffer it did not own. */
uint64_t aioixy_mempool_bad_frees(void);

/* Can a device whose DMA context is `ctx` read this pool's buffers? */
bool aioixy_mempool_dma_reachable(const struct aioixy_mempool *pool, const struct aioixy_dma_ctx *ctx);
int aioixy_mempool_dma_kind(const struct aioixy_mempool *pool); /* enum aioixy_dma_kind */

static inline uint64_t aioixy_pkt_data_iova(const struct aioixy_pkt_buf *b)
{
    return b->iova + AIOIXY_PKT_HEADER;
}

#endif
