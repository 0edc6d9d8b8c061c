/* AF_XDP driver: "xdp:IFNAME" (queues 0..N-1 with rx_queues=N) or "xdp:IFNAME:Q" (one queue).
 *
 * Each aioixy queue is one AF_XDP socket bound to one rx/tx queue of the interface, with its own
 * UMEM: the memory of that queue's mempool, registered whole. Pool buffers are the UMEM's frames,
 * so the kernel (copy mode) or the NIC (zero-copy) writes packets straight into aioixy_pkt_buf
 * data and Python sees them without another copy.
 *
 * Layout. A pool buffer is a 64-byte header then data. The kernel puts a frame's data
 * XDP_PACKET_HEADROOM (256) bytes after the address it took from the fill ring. In aligned chunk
 * mode that address is rounded down to a chunk start, so data would sit 256 bytes into a buffer,
 * not 64. Unaligned chunk mode takes the address as given: we post (buffer + 64 - 256), the
 * frame lands exactly at buffer->data, and the 192 bytes the kernel counts as headroom are the
 * tail of the previous buffer, which it never writes (our program does not grow the head).
 * Buffer 0 has no such predecessor; buffers that cannot take rx (that one, and in zero-copy mode
 * those whose frame would cross a 4 KiB page, which the kernel refuses unless the pages are
 * DMA-contiguous) are kept aside as "spares" for transmit copies.
 *
 * Ownership. held[i] is set while the kernel owns buffer i (posted to the fill or tx ring) and
 * cleared when it comes back (rx or completion ring). close() frees whatever is still held, so
 * the pool is whole after any run, whatever the kernel kept in its caches.
 *
 * Wake-ups (XDP_USE_NEED_WAKEUP): the poller only makes a syscall when a ring's flags ask for it:
 * sendto() to start transmission, recvfrom() when the fill ring needs a kick.
 */
#include <errno.h>
#include <linux/if_xdp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bpf.h"
#include "device.h"
#include "divert.h"
#include "kframe.h"
#include "netif.h"

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

#define XDP_HEADROOM 256u /* XDP_PACKET_HEADROOM: fixed by the kernel */
#define DEFAULT_RING 2048u
#define PAGE 4096u
#define REFRESH_NS 20000000u /* how often an idle queue re-reads the interface (gone? MTU?) */

struct xsk_ring {
    _Atomic uint32_t *producer, *consumer;
    _Atomic uint32_t *flags;
    void *desc;
    uint32_t mask, size;
    uint32_t cached_prod, cached_cons; /* our side's index, kept locally */
    void *map;
    size_t map_len;
};

struct xq {
    /* poller-private (rx and tx of one queue index run on the same poller thread) */
    struct xsk_ring rx, tx, fill, comp;
    struct aioixy_pkt_buf *tmp[AIOIXY_MAX_BATCH];
    /* counters: single writer (the poller), read by read_stats */
    struct {
        _Atomic uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
        _Atomic uint64_t tx_kicks, fill_kicks, tx_too_long, csum_fixed;
        _Atomic uint64_t tx_lost; /* posted, then the interface went away: never sent */
    } st AIOIXY_CACHE_ALIGNED;
    /* set at open */
    int fd AIOIXY_CACHE_ALIGNED;
    uint32_t ifq;     /* the interface's queue index */
    bool receives;    /* rx queue: gets an XSKMAP entry */
    bool in_map;      /* its XSKMAP entry is in place */
    bool zero_copy;
    bool fix_csum;    /* fix_checksums: complete partial TCP/UDP checksums on rx */
    struct aioixy_mempool *pool;
    uint8_t *umem;
    size_t umem_len;
    uint32_t buf_size, chunk, nbufs;
    uint32_t buf_shift; /* log2(buf_size): pool buffer sizes are powers of two */
    bool link_down;     /* the last tx kick found the interface down: retry on a slow clock */
    bool gone_counted;  /* the interface is gone and what it kept of our tx is counted */
    uint64_t next_refresh_ns;
    uint8_t *held;
    struct aioixy_pkt_buf **spare;
    uint32_t nspare;
};

struct xdp_dev {
    struct aioixy_dev dev;
    struct aioixy_netif nif;
    struct aioixy_xdp_prog *prog; /* NULL for a tx-only port */
    int promisc_fd;   /* AF_PACKET socket holding our promiscuous membership, -1 if none */
    bool fix_csum;
    _Atomic uint32_t mtu; /* the interface's MTU now (xdp_refresh follows changes) */
    struct xq *q[AIOIXY_MAX_QUEUES];
};

static inline struct xdp_dev *X(struct aioixy_dev *d) { return (struct xdp_dev *)d; }

static inline uint32_t buf_index(const struct xq *q, const struct aioixy_pkt_buf *b)
{
    return (uint32_t)(((const uint8_t *)b - q->umem) >> q->buf_shift);
}

/* The buffer an address inside it (e.g. its data) belongs to. */
static inline struct aioixy_pkt_buf *buf_at(const struct xq *q, uint64_t off)
{
    return (struct aioixy_pkt_buf *)(q->umem + ((off >> q->buf_shift) << q->buf_shift));
}

/* Can buffer i be posted to the fill ring (see Layout above)? */
static bool rx_capable(const struct xq *q, uint32_t i)
{
    uint64_t start = (uint64_t)i * q->buf_size + AIOIXY_PKT_HEADER;
    if (start < XDP_HEADROOM)
        return false;
    uint64_t a = start - XDP_HEADROOM;
    if (q->zero_copy && (a % PAGE) + q->chunk > PAGE)
        return false;
    return true;
}

/* ---- rings ---- */

static void ring_unmap(struct xsk_ring *r)
{
    if (r->map)
        munmap(r->map, r->map_len);
    r->map = NULL;
}

static int ring_map(struct xsk_ring *r, int fd, const struct xdp_ring_offset *off, uint32_t size,
                    size_t desc_size, off_t pgoff, const char *what)
{
    r->map_len = off->desc + size * desc_size;
    void *m = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, pgoff);
    if (m == MAP_FAILED) {
        r->map = NULL;
        return aioixy_set_error(AIOIXY_EIO, "cannot map the AF_XDP %s ring: %s", what, strerror(errno));
    }
    r->map = m;
    r->producer = (_Atomic uint32_t *)((uint8_t *)m + off->producer);
    r->consumer = (_Atomic uint32_t *)((uint8_t *)m + off->consumer);
    r->flags = (_Atomic uint32_t *)((uint8_t *)m + off->flags);
    r->desc = (uint8_t *)m + off->desc;
    r->size = size;
    r->mask = size - 1;
    r->cached_prod = atomic_load_explicit(r->producer, memory_order_relaxed);
    r->cached_cons = atomic_load_explicit(r->consumer, memory_order_relaxed);
    return 0;
}

static inline bool needs_wakeup(const struct xsk_ring *r)
{
    return atomic_load_explicit(r->flags, memory_order_relaxed) & XDP_RING_NEED_WAKEUP;
}

/* ---- fast path ---- */

/* Keep the fill ring stocked from the pool. Takes what the pool can give, so an rx burst that
 * Python still holds does not stop reception for good; the next call tops up again. */
static void refill(struct xq *q)
{
    uint32_t cons = atomic_load_explicit(q->fill.consumer, memory_order_acquire);
    uint32_t room = q->fill.size - (q->fill.cached_prod - cons);
    if (room < 16 && room < q->fill.size / 4)
        return; /* top up in batches, not one buffer per call */
    uint32_t want = room < AIOIXY_MAX_BATCH ? room : AIOIXY_MAX_BATCH;
    uint32_t got = 0;
    while (want && !(got = aioixy_mempool_alloc_bulk(q->pool, q->tmp, want)))
        want >>= 1;
    if (!got)
        return;
    uint64_t *ring = q->fill.desc;
    uint32_t prod = q->fill.cached_prod;
    for (uint32_t i = 0; i < got; i++) {
        uint32_t idx = buf_index(q, q->tmp[i]);
        if (aioixy_unlikely(!rx_capable(q, idx))) {
            q->spare[q->nspare++] = q->tmp[i];
            continue;
        }
        q->held[idx] = 1;
        ring[prod++ & q->fill.mask] = (uint64_t)idx * q->buf_size + AIOIXY_PKT_HEADER - XDP_HEADROOM;
    }
    if (prod == q->fill.cached_prod)
        return;
    q->fill.cached_prod = prod;
    atomic_store_explicit(q->fill.producer, prod, memory_order_release);
    if (needs_wakeup(&q->fill)) {
        recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
        aioixy_counter_add(&q->st.fill_kicks, 1);
    }
}

static uint32_t xdp_rx_batch(struct aioixy_dev *dev, uint16_t qi, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct xq *q = X(dev)->q[qi];
    uint32_t prod = atomic_load_explicit(q->rx.producer, memory_order_acquire);
    uint32_t cons = q->rx.cached_cons;
    uint32_t avail = prod - cons;
    if (avail > n)
        avail = n;
    const struct xdp_desc *ring = q->rx.desc;
    uint64_t bytes = 0, fixed = 0;
    for (uint32_t i = 0; i < avail; i++) {
        const struct xdp_desc *d = &ring[(cons + i) & q->rx.mask];
        /* unaligned mode: the address we posted, plus the data offset in the top 16 bits */
        uint64_t base = d->addr & XSK_UNALIGNED_BUF_ADDR_MASK;
        uint64_t data = base + (d->addr >> XSK_UNALIGNED_BUF_OFFSET_SHIFT);
        struct aioixy_pkt_buf *b = (struct aioixy_pkt_buf *)(q->umem + base + XDP_HEADROOM - AIOIXY_PKT_HEADER);
        uint32_t len = d->len;
        if (aioixy_unlikely(q->umem + data != b->data)) {
            /* a program moved the frame start: bring it back to where Python expects it */
            uint32_t room = q->buf_size - AIOIXY_PKT_HEADER;
            if (len > room)
                len = room;
            memmove(b->data, q->umem + data, len);
        }
        b->len = len;
        q->held[buf_index(q, b)] = 0;
        bufs[i] = b;
        bytes += len;
        if (q->fix_csum && aioixy_kframe_fix_partial(b->data, len))
            fixed++;
    }
    if (fixed)
        aioixy_counter_add(&q->st.csum_fixed, fixed);
    if (avail) {
        q->rx.cached_cons = cons + avail;
        atomic_store_explicit(q->rx.consumer, cons + avail, memory_order_release);
        aioixy_counter_add(&q->st.rx_packets, avail);
        aioixy_counter_add(&q->st.rx_bytes, bytes);
    }
    refill(q);
    return avail;
}

/* Take back what the kernel finished sending. */
static void reclaim(struct xq *q)
{
    uint32_t prod = atomic_load_explicit(q->comp.producer, memory_order_acquire);
    uint32_t cons = q->comp.cached_cons;
    if (prod == cons)
        return;
    const uint64_t *ring = q->comp.desc;
    uint64_t bytes = 0;
    uint32_t total = prod - cons;
    while (cons != prod) {
        uint32_t k = prod - cons;
        if (k > AIOIXY_MAX_BATCH)
            k = AIOIXY_MAX_BATCH;
        for (uint32_t i = 0; i < k; i++) {
            uint64_t a = ring[(cons + i) & q->comp.mask];
            struct aioixy_pkt_buf *b = buf_at(q, (a & XSK_UNALIGNED_BUF_ADDR_MASK) + (a >> XSK_UNALIGNED_BUF_OFFSET_SHIFT));
            q->held[buf_index(q, b)] = 0;
            bytes += b->len;
            q->tmp[i] = b;
        }
        aioixy_mempool_free_bulk(q->tmp, k);
        cons += k;
    }
    q->comp.cached_cons = cons;
    atomic_store_explicit(q->comp.consumer, cons, memory_order_release);
    aioixy_counter_add(&q->st.tx_packets, total);
    aioixy_counter_add(&q->st.tx_bytes, bytes);
}

/* Re-read the interface by its ifindex: gone (deleted, moved away, or re-created under the same
 * name: a new ifindex), or a new MTU, which the tx limits follow. Any thread. */
static void xdp_refresh(struct xdp_dev *x)
{
    struct aioixy_netif_now now;
    aioixy_netif_now(x->nif.ifindex, &now);
    if (now.gone) {
        aioixy_dev_set_gone(&x->dev, "xdp:%s: the interface is gone (deleted or moved to another "
                            "network namespace; ifindex %d no longer exists here): close the port "
                            "and open it again", x->nif.name, x->nif.ifindex);
        return;
    }
    if (now.mtu && now.mtu != atomic_load_explicit(&x->mtu, memory_order_relaxed)) {
        atomic_store_explicit(&x->mtu, now.mtu, memory_order_relaxed);
        atomic_store_explicit(&x->dev.max_tx_len, now.mtu + 18, memory_order_relaxed);
    }
}

static void kick_tx(struct xdp_dev *x, struct xq *q)
{
    /* EAGAIN/EBUSY/ENOBUFS: the kernel is still working on the ring; the next round kicks again */
    ssize_t rc = sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0);
    aioixy_counter_add(&q->st.tx_kicks, 1);
    int e = rc < 0 ? errno : 0;
    q->link_down = e == ENETDOWN;
    if (e == ENXIO || e == ENODEV) /* the socket was unbound: its interface is no more */
        xdp_refresh(x);
}

static uint32_t xdp_tx_batch(struct aioixy_dev *dev, uint16_t qi, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct xq *q = X(dev)->q[qi];
    reclaim(q);
    uint32_t cons = atomic_load_explicit(q->tx.consumer, memory_order_acquire);
    uint32_t prod = q->tx.cached_prod;
    uint32_t space = q->tx.size - (prod - cons);
    uint32_t k = n < space ? n : space;
    struct xdp_desc *ring = q->tx.desc;
    uint32_t ndrop = 0, bad_len = 0, posted = 0;
    struct aioixy_pkt_buf *drop[AIOIXY_MAX_BATCH];
    uint32_t accepted = 0;
    uint32_t max_frame = atomic_load_explicit(&X(dev)->mtu, memory_order_relaxed) + 18;
    if (max_frame > q->chunk)
        max_frame = q->chunk;
    for (; accepted < k; accepted++) {
        struct aioixy_pkt_buf *b = bufs[accepted];
        if (aioixy_unlikely(b->len < 14 || b->len > max_frame)) {
            /* not a frame the link can carry: the kernel would send it and the peer drop it
             * silently (or reject the descriptor); refuse and count it here instead */
            drop[ndrop++] = b;
            bad_len++;
            continue;
        }
        if (aioixy_unlikely(b->pool != q->pool)) {
            /* only UMEM addresses can be sent: copy a buffer from another pool into ours */
            struct aioixy_pkt_buf *c = q->nspare ? q->spare[--q->nspare] : aioixy_mempool_alloc(q->pool);
            if (!c)
                break; /* pool empty: the rest waits until completions return buffers */
            memcpy(c->data, b->data, b->len);
            c->len = b->len;
            drop[ndrop++] = b;
            b = c;
        }
        uint32_t idx = buf_index(q, b);
        q->held[idx] = 1;
        ring[prod & q->tx.mask] = (struct xdp_desc){
            .addr = (uint64_t)idx * q->buf_size + AIOIXY_PKT_HEADER, .len = b->len, .options = 0};
        prod++;
        posted++;
    }
    if (ndrop)
        aioixy_mempool_free_bulk(drop, ndrop);
    if (bad_len)
        aioixy_counter_add(&q->st.tx_too_long, bad_len);
    if (posted) {
        q->tx.cached_prod = prod;
        atomic_store_explicit(q->tx.producer, prod, memory_order_release);
    }
    /* copy mode sends a bounded number of frames per syscall: kick while any are outstanding */
    if (prod != cons && needs_wakeup(&q->tx))
        kick_tx(X(dev), q);
    return accepted;
}

/* ---- control path ---- */

static void xdp_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct xdp_dev *x = X(dev);
    struct xdp_statistics sum;
    memset(&sum, 0, sizeof(sum));
    uint64_t kicks_tx = 0, kicks_fill = 0, too_long = 0, csum_fixed = 0, lost = 0;
    bool zc = true;
    uint16_t nq = dev->num_rx_queues > dev->num_tx_queues ? dev->num_rx_queues : dev->num_tx_queues;
    for (uint16_t i = 0; i < nq; i++) {
        struct xq *q = x->q[i];
#define LD(f) atomic_load_explicit(&q->st.f, memory_order_relaxed)
        out->rx_packets += LD(rx_packets);
        out->rx_bytes += LD(rx_bytes);
        out->tx_packets += LD(tx_packets);
        out->tx_bytes += LD(tx_bytes);
        kicks_tx += LD(tx_kicks);
        kicks_fill += LD(fill_kicks);
        too_long += LD(tx_too_long);
        csum_fixed += LD(csum_fixed);
        lost += LD(tx_lost);
#undef LD
        zc = zc && q->zero_copy;
        struct xdp_statistics s;
        memset(&s, 0, sizeof(s));
        socklen_t len = sizeof(s);
        if (getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &s, &len) == 0) {
            sum.rx_dropped += s.rx_dropped;
            sum.rx_invalid_descs += s.rx_invalid_descs;
            sum.tx_invalid_descs += s.tx_invalid_descs;
            sum.rx_ring_full += s.rx_ring_full;
            sum.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
            sum.tx_ring_empty_descs += s.tx_ring_empty_descs;
        }
    }
    out->rx_missed = sum.rx_dropped + sum.rx_ring_full;
    out->rx_errors = sum.rx_invalid_descs;
    out->tx_errors = sum.tx_invalid_descs + too_long + lost;
    out->zero_copy = zc;
    const struct { const char *name; uint64_t v; } ex[] = {
        {"xdp_rx_dropped", sum.rx_dropped},
        {"xdp_rx_invalid_descs", sum.rx_invalid_descs},
        {"xdp_rx_ring_full", sum.rx_ring_full},
        {"xdp_rx_fill_ring_empty_descs", sum.rx_fill_ring_empty_descs},
        {"xdp_tx_invalid_descs", sum.tx_invalid_descs},
        {"xdp_tx_ring_empty_descs", sum.tx_ring_empty_descs},
        {"tx_kicks", kicks_tx},
        {"fill_kicks", kicks_fill},
        {"tx_dropped_bad_length", too_long}, /* shorter than 14 or longer than MTU + 18 */
        {"rx_csum_completed", csum_fixed}, /* fix_checksums: partial checksums finished */
        /* a tx-only port attaches no program */
        {"xdp_native", x->prog && strcmp(aioixy_xdp_mode_name(x->prog), "native") == 0},
        {"xdp_link", x->prog && aioixy_xdp_is_link(x->prog)},
    };
    out->num_extra = 0;
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]) && i < AIOIXY_STATS_EXTRA; i++) {
        snprintf(out->extra[i].name, sizeof(out->extra[i].name), "%s", ex[i].name);
        out->extra[i].value = ex[i].v;
        out->num_extra++;
    }
}

static void xdp_link_status(struct aioixy_dev *dev, struct aioixy_link *out)
{
    xdp_refresh(X(dev)); /* also notices a deletion or an MTU change at once */
    if (aioixy_dev_is_gone(dev)) {
        out->up = false;
        out->speed_mbps = 0;
        return;
    }
    aioixy_netif_link_of(X(dev)->nif.ifindex, out); /* by ifindex: never a namesake's link */
}

/* poll() reported an error on the queue's socket (the kernel sets one when the interface goes
 * away): read it so it stops, and see whether the interface is still there. */
static void xdp_poll_error(struct aioixy_dev *dev, uint16_t qi)
{
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(X(dev)->q[qi]->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    xdp_refresh(X(dev));
}

/* The poller is about to sleep: give it the socket, which poll() reports readable when the
 * kernel has put frames on the rx ring (the kernel's wake-up). Not while transmitted frames
 * wait for completion (completions wake no poll()), and not while the fill ring is empty
 * because the pool is (Python holds the buffers; nothing could arrive to wake us): then the
 * timed back-off runs. */
static int xdp_poll_fd(struct aioixy_dev *dev, uint16_t qi, short *events)
{
    struct xdp_dev *x = X(dev);
    struct xq *q = x->q[qi];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO, no syscall */
    uint64_t t = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (t >= q->next_refresh_ns) {
        q->next_refresh_ns = t + REFRESH_NS;
        xdp_refresh(x);
    }
    reclaim(q);
    if (aioixy_dev_is_gone(dev)) {
        /* what the kernel still has of our tx never completes: count it once (tx_errors; the
         * buffers come home at close), and sleep on the safety timeout from now on */
        if (!q->gone_counted) {
            aioixy_counter_add(&q->st.tx_lost, q->tx.cached_prod - q->comp.cached_cons);
            q->gone_counted = true;
        }
        *events = 0;
        return q->fd;
    }
    if (q->tx.cached_prod != q->comp.cached_cons) {
        if (needs_wakeup(&q->tx) || q->link_down)
            kick_tx(x, q);
        if (!q->link_down)
            return -1;
        /* the link is down: retry on poll()'s safety timeout, not the short back-off */
        *events = q->receives ? POLLIN : 0;
        return q->fd;
    }
    if (q->receives) {
        refill(q);
        if (q->fill.cached_prod == atomic_load_explicit(q->fill.consumer, memory_order_acquire))
            return -1;
    }
    *events = q->receives ? POLLIN : 0;
    return q->fd;
}

/* Promiscuous mode: a membership of an AF_PACKET socket the port holds (netif.h), never the
 * interface flag: it ends with the port (close, crash, or a fork child that exits) and leaves
 * an admin's own promiscuous mode alone. */
static int xdp_set_promisc(struct aioixy_dev *dev, bool on)
{
    if (on == dev->promisc)
        return 0;
    return aioixy_netif_promisc(&X(dev)->promisc_fd, &X(dev)->nif, on, "xdp");
}

static void close_queue(struct xq *q)
{
    if (!q)
        return;
    ring_unmap(&q->rx);
    ring_unmap(&q->tx);
    ring_unmap(&q->fill);
    ring_unmap(&q->comp);
    if (q->fd >= 0)
        close(q->fd); /* unbinds; the kernel stops using the UMEM before this returns */
    /* every buffer the kernel still had (fill ring, its caches, unsent tx) comes home */
    uint32_t k = 0;
    for (uint32_t i = 0; q->held && i < q->nbufs; i++) {
        if (!q->held[i])
            continue;
        q->tmp[k++] = (struct aioixy_pkt_buf *)(q->umem + (size_t)i * q->buf_size);
        if (k == AIOIXY_MAX_BATCH) {
            aioixy_mempool_free_bulk(q->tmp, k);
            k = 0;
        }
    }
    if (k)
        aioixy_mempool_free_bulk(q->tmp, k);
    if (q->nspare)
        aioixy_mempool_free_bulk(q->spare, q->nspare);
    free(q->held);
    free(q->spare);
    free(q);
}

static void xdp_close(struct aioixy_dev *dev)
{
    struct xdp_dev *x = X(dev);
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++)
        if (x->q[i] && x->q[i]->in_map)
            aioixy_xdp_unbind_queue(x->prog, x->q[i]->ifq);
    aioixy_xdp_release(x->prog); /* last port on the interface: detached here */
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++)
        close_queue(x->q[i]);
    if (x->promisc_fd >= 0)
        close(x->promisc_fd); /* the kernel drops the membership with the socket */
    aioixy_dev_release_pools(dev);
    free(x);
}

/* A forked child's copies of the AF_XDP sockets, their ring mappings and the promiscuous
 * socket. The program, map and link fds are closed by bpf.c's own fork handler. The UMEM
 * (pool memory) and held[] are the parent's business: untouched. */
static void xdp_forget_after_fork(struct aioixy_dev *dev)
{
    struct xdp_dev *x = X(dev);
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++) {
        struct xq *q = x->q[i];
        if (!q)
            continue;
        ring_unmap(&q->rx);
        ring_unmap(&q->tx);
        ring_unmap(&q->fill);
        ring_unmap(&q->comp);
        if (q->fd >= 0)
            close(q->fd);
        q->fd = -1;
    }
    if (x->promisc_fd >= 0)
        close(x->promisc_fd);
    x->promisc_fd = -1;
}

static const struct aioixy_dev_ops xdp_ops = {
    .driver = "xdp",
    .rx_batch = xdp_rx_batch,
    .tx_batch = xdp_tx_batch,
    .read_stats = xdp_stats,
    .link_status = xdp_link_status,
    .set_promisc = xdp_set_promisc,
    .poll_fd = xdp_poll_fd,
    .poll_error = xdp_poll_error,
    .forget_after_fork = xdp_forget_after_fork,
    .close = xdp_close,
};

/* ---- open ---- */

static int ring_size(uint32_t v, const char *what)
{
    if (v == 0)
        return DEFAULT_RING;
    if (v < 64 || v > 32768 || (v & (v - 1)))
        return aioixy_set_error(AIOIXY_EINVAL, "%s=%u: AF_XDP rings must be a power of two in 64..32768",
                                what, v);
    return (int)v;
}

static int open_queue(struct xdp_dev *x, uint16_t i, uint32_t ifq, bool rx, uint32_t rx_size,
                      uint32_t tx_size, int zc_mode)
{
    struct xq *q = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*q) + 63) & ~(size_t)63);
    if (!q)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(q, 0, sizeof(*q));
    x->q[i] = q;
    q->fd = -1;
    q->ifq = ifq;
    q->receives = rx;
    q->fix_csum = x->fix_csum;
    q->pool = x->dev.pools[i];
    q->umem = aioixy_mempool_region(q->pool, &q->umem_len);
    q->buf_size = aioixy_mempool_buf_size(q->pool);
    q->buf_shift = (uint32_t)__builtin_ctz(q->buf_size);
    q->nbufs = aioixy_mempool_size(q->pool);
    q->chunk = q->buf_size < PAGE ? q->buf_size : PAGE;
    q->held = calloc(q->nbufs, 1);
    q->spare = calloc(q->nbufs, sizeof(*q->spare));
    if (!q->held || !q->spare)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    q->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (q->fd < 0) {
        int e = errno;
        if (e == EPERM || e == EACCES)
            return aioixy_set_error(AIOIXY_EPERM, "AF_XDP sockets need root (CAP_NET_RAW): %s", strerror(e));
        return aioixy_set_error(AIOIXY_ENODEV, "this kernel has no AF_XDP sockets: %s", strerror(e));
    }
    struct xdp_umem_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.addr = (uint64_t)(uintptr_t)q->umem;
    reg.len = q->umem_len;
    reg.chunk_size = q->chunk;
    reg.headroom = 0;
    reg.flags = XDP_UMEM_UNALIGNED_CHUNK_FLAG;
    if (setsockopt(q->fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)) != 0)
        return aioixy_set_error(errno == ENOMEM || errno == EPERM ? AIOIXY_ENOMEM : AIOIXY_EIO,
                                "registering %zu bytes of UMEM failed: %s (RLIMIT_MEMLOCK?)",
                                q->umem_len, strerror(errno));
    /* fill holds rx buffers; completion must fit everything the tx ring can have in flight */
    uint32_t fill = rx ? rx_size : 64;
    const struct { int opt; uint32_t size; const char *what; } sizes[] = {
        {XDP_UMEM_FILL_RING, fill, "fill"}, {XDP_UMEM_COMPLETION_RING, tx_size, "completion"},
        {XDP_RX_RING, rx_size, "rx"}, {XDP_TX_RING, tx_size, "tx"},
    };
    for (size_t k = 0; k < 4; k++)
        if (setsockopt(q->fd, SOL_XDP, sizes[k].opt, &sizes[k].size, sizeof(uint32_t)) != 0)
            return aioixy_set_error(AIOIXY_EIO, "setting the AF_XDP %s ring to %u entries: %s",
                                    sizes[k].what, sizes[k].size, strerror(errno));
    struct xdp_mmap_offsets off;
    socklen_t olen = sizeof(off);
    if (getsockopt(q->fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &olen) != 0)
        return aioixy_set_error(AIOIXY_EIO, "XDP_MMAP_OFFSETS: %s", strerror(errno));
    int rc;
    if ((rc = ring_map(&q->fill, q->fd, &off.fr, fill, sizeof(uint64_t), XDP_UMEM_PGOFF_FILL_RING, "fill")) ||
        (rc = ring_map(&q->comp, q->fd, &off.cr, tx_size, sizeof(uint64_t), XDP_UMEM_PGOFF_COMPLETION_RING, "completion")) ||
        (rc = ring_map(&q->rx, q->fd, &off.rx, rx_size, sizeof(struct xdp_desc), XDP_PGOFF_RX_RING, "rx")) ||
        (rc = ring_map(&q->tx, q->fd, &off.tx, tx_size, sizeof(struct xdp_desc), XDP_PGOFF_TX_RING, "tx")))
        return rc;
    struct sockaddr_xdp sa;
    memset(&sa, 0, sizeof(sa));
    sa.sxdp_family = AF_XDP;
    sa.sxdp_ifindex = (uint32_t)x->nif.ifindex;
    sa.sxdp_queue_id = ifq;
    /* no mode flag: the kernel takes zero-copy when the driver offers it, else copies */
    sa.sxdp_flags = XDP_USE_NEED_WAKEUP | (zc_mode > 0 ? XDP_ZEROCOPY : zc_mode < 0 ? XDP_COPY : 0);
    int brc;
    /* a socket of a process that just died (or of a stale program's map) is released by the
     * kernel asynchronously: give it a moment before calling the queue busy */
    for (int tries = 0; (brc = bind(q->fd, (struct sockaddr *)&sa, sizeof(sa))) != 0 && errno == EBUSY &&
                        tries < 100; tries++)
        usleep(20000);
    if (brc != 0) {
        int e = errno;
        if (e == EOPNOTSUPP && zc_mode > 0)
            return aioixy_set_error(AIOIXY_ENODEV, "%s has no AF_XDP zero-copy support (zero_copy=on)",
                                    x->nif.name);
        if (e == EBUSY)
            return aioixy_set_error(AIOIXY_EBUSY, "queue %u of %s already has an AF_XDP socket", ifq,
                                    x->nif.name);
        return aioixy_set_error(e == EINVAL ? AIOIXY_EINVAL : AIOIXY_EIO,
                                "binding an AF_XDP socket to %s queue %u failed: %s", x->nif.name, ifq,
                                strerror(e));
    }
    struct xdp_options opts = {0};
    socklen_t ol = sizeof(opts);
    if (getsockopt(q->fd, SOL_XDP, XDP_OPTIONS, &opts, &ol) == 0)
        q->zero_copy = opts.flags & XDP_OPTIONS_ZEROCOPY;
    if (rx)
        refill(q);
    return 0;
}

static int parse_choice(const char *opts, const char *key, const char *const *names, int n, int def)
{
    char v[32];
    if (!aioixy_opt_get(opts, key, v, sizeof(v)))
        return def;
    for (int i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    char list[128] = "";
    for (int i = 0; i < n; i++) {
        strncat(list, names[i], sizeof(list) - strlen(list) - 1);
        if (i + 1 < n)
            strncat(list, ", ", sizeof(list) - strlen(list) - 1);
    }
    return aioixy_set_error(AIOIXY_EINVAL, "option %s=%s: expected one of %s", key, v, list);
}

static int xdp_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    const char *spec = name + strlen("xdp:");
    char ifname[AIOIXY_IFNAMSIZ];
    const char *colon = strchr(spec, ':');
    size_t nlen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (nlen == 0)
        return aioixy_set_error(AIOIXY_ENODEV, "bad device '%s': expected xdp:IFNAME or xdp:IFNAME:QUEUE", name);
    if (nlen >= AIOIXY_IFNAMSIZ)
        return aioixy_set_error(AIOIXY_EINVAL, "'%.*s' is not a network interface name (at most %d characters)",
                                (int)nlen, spec, AIOIXY_IFNAMSIZ - 1);
    memcpy(ifname, spec, nlen);
    ifname[nlen] = 0;
    long queue = -1;
    char qopt[AIOIXY_OPT_VALUE_MAX + 1];
    if (colon || aioixy_opt_get(cfg->options, "queue", qopt, sizeof(qopt))) {
        const char *qs = colon ? colon + 1 : qopt;
        char *end;
        errno = 0;
        queue = strtol(qs, &end, 10);
        if (!*qs || *end || errno || queue < 0 || queue > 255)
            return aioixy_set_error(AIOIXY_EINVAL, "bad queue '%s' in '%s': expected a number 0..255", qs, name);
    }
    static const char *const modes[] = {"auto", "native", "generic"};
    static const char *const hows[] = {"auto", "link", "netlink"};
    static const char *const zcs[] = {"auto", "on", "off"};
    int mode = parse_choice(cfg->options, "xdp_mode", modes, 3, AIOIXY_XDP_AUTO);
    int how = parse_choice(cfg->options, "attach", hows, 3, AIOIXY_ATTACH_AUTO);
    int zc = parse_choice(cfg->options, "zero_copy", zcs, 3, 0);
    if (mode < 0 || how < 0 || zc < 0)
        return mode < 0 ? mode : how < 0 ? how : zc;
    int zc_mode = zc == 1 ? 1 : zc == 2 ? -1 : 0;
    struct aioixy_netif nif;
    int rc = aioixy_netif_lookup(ifname, &nif);
    if (rc)
        return rc;
    /* each aioixy queue is an AF_XDP socket on the same-numbered queue of the interface */
    uint16_t nq = cfg->rx_queues > cfg->tx_queues ? cfg->rx_queues : cfg->tx_queues;
    if (queue >= 0 && nq != 1)
        return aioixy_set_error(AIOIXY_EINVAL, "'%s' names one queue; rx_queues/tx_queues must be 1", name);
    uint32_t first = queue >= 0 ? (uint32_t)queue : 0;
    uint32_t nifq = nif.rx_queues > nif.tx_queues ? nif.rx_queues : nif.tx_queues;
    if (first + nq > nifq)
        return aioixy_set_error(AIOIXY_EINVAL, "xdp:%s: the interface has %u queue(s); cannot bind "
                                "queue%s %u%s", ifname, nifq, nq > 1 ? "s" : "", first,
                                nq > 1 ? " and up" : "");
    struct aioixy_divert dv;
    if (cfg->divert && (rc = aioixy_divert_from_config(cfg, &dv)) != 0)
        return rc;
    /* rules that take only what they name leave the host's own traffic to the kernel: such a
     * port may run on an interface that carries it (docs/kernel-ports.md, "Divert") */
    bool narrow = cfg->divert && !cfg->tx_only && aioixy_divert_is_narrow(&dv);
    if ((rc = aioixy_netif_check_safe(&nif, cfg->force || narrow, "xdp")) != 0 ||
        (rc = aioixy_netif_check_up(&nif, "xdp")) != 0)
        return rc;
    int rxs = ring_size(cfg->rx_descs, "rx_descs"), txs = ring_size(cfg->tx_descs, "tx_descs");
    if (rxs < 0 || txs < 0)
        return rxs < 0 ? rxs : txs;
    uint32_t bs = cfg->buf_size ? cfg->buf_size : AIOIXY_DEFAULT_BUF_SIZE;
    if (bs < 2048)
        return aioixy_set_error(AIOIXY_EINVAL, "buf_size=%u: AF_XDP frames need buffers of at least 2048 bytes", bs);
    uint32_t pool = cfg->pool_bufs ? cfg->pool_bufs : AIOIXY_DEFAULT_POOL_BUFS;
    if (pool < (uint32_t)rxs + 256)
        return aioixy_set_error(AIOIXY_EINVAL, "pool_bufs=%u: AF_XDP needs more buffers than its fill ring "
                                "(rx_descs=%d) plus 256", pool, rxs);

    struct xdp_dev *x = calloc(1, sizeof(*x));
    if (!x)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    struct aioixy_dev *dev = &x->dev;
    dev->ops = &xdp_ops;
    snprintf(dev->name, sizeof(dev->name), "%s", name);
    snprintf(dev->driver, sizeof(dev->driver), "xdp");
    x->nif = nif;
    dev->num_rx_queues = cfg->rx_queues;
    dev->num_tx_queues = cfg->tx_queues;
    if (queue < 0 && nif.rx_queues > cfg->rx_queues) /* "xdp:IF" on fewer queues than IF has */
        dev->rx_queues_left = (uint16_t)(nif.rx_queues - cfg->rx_queues);
    /* the kernel pins the pages itself when the UMEM is registered; tx copies a buffer from any
     * other pool into the UMEM, so for the port layer's check it reaches any memory */
    dev->dma.kind = DMA_HOST;
    dev->min_tx_len = 14;              /* an Ethernet header ... */
    dev->max_tx_len = nif.mtu + 18;    /* ... to an MTU frame with a VLAN tag, as tx checks */
    dev->dma.vfio_container_fd = -1;
    memcpy(dev->mac, nif.mac, 6);
    x->promisc_fd = -1;
    atomic_store_explicit(&x->mtu, nif.mtu, memory_order_relaxed);
    struct aioixy_dev_config pc = *cfg;
    pc.pool_bufs = pool;
    pc.buf_size = bs;
    if ((rc = aioixy_dev_create_pools(dev, &pc)) != 0)
        goto fail;
    x->fix_csum = cfg->fix_checksums;
    /* the program first: removing a stale one frees its XSKMAP, and with it the dead process's
     * sockets that would otherwise keep our queues busy. A tx-only port (rx=False: pktgen,
     * replay) attaches none: it must not take a single frame from the kernel, and an AF_XDP
     * socket transmits without any program */
    uint16_t nrx = cfg->tx_only ? 0 : cfg->rx_queues;
    if (nrx && (rc = aioixy_xdp_acquire(nif.ifindex, ifname, mode, how, cfg->force,
                                       cfg->divert ? &dv : NULL, &x->prog)) != 0)
        goto fail;
    for (uint16_t i = 0; i < nq; i++)
        if ((rc = open_queue(x, i, first + i, i < nrx, (uint32_t)rxs, (uint32_t)txs, zc_mode)) != 0)
            goto fail;
    for (uint16_t i = 0; i < nrx; i++)
        if ((rc = aioixy_xdp_bind_queue(x->prog, x->q[i]->ifq, x->q[i]->fd)) != 0)
            goto fail;
        else
            x->q[i]->in_map = true;
    if (cfg->promisc && (rc = xdp_set_promisc(dev, true)) == 0)
        dev->promisc = true;
    if (rc)
        goto fail;
    *out = dev;
    return 0;
fail: {
    /* the BPF and socket layers' messages do not know the device: name it, as the checks
     * above do (closing must not clobber the message either) */
    char msg[400];
    snprintf(msg, sizeof(msg), "%s", aioixy_last_error());
    int code = aioixy_last_errcode();
    xdp_close(dev);
    if (strncmp(msg, "xdp:", 4) == 0)
        aioixy_set_error(code, "%s", msg);
    else
        aioixy_set_error(code, "xdp:%s: %s", ifname, msg);
    return rc;
}
}

static const char *const xdp_options[] = {"queue", "xdp_mode", "attach", "zero_copy", NULL};
static struct aioixy_driver xdp_driver = {.name = "xdp", .prefix = "xdp:", .open = xdp_open,
                                          .options = xdp_options};
AIOIXY_REGISTER_DRIVER(xdp_driver);
