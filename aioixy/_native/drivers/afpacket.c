/* "packet:IFACE": any Linux network interface through AF_PACKET sockets with PACKET_MMAP rings,
 * the kernel-backed fallback where AF_XDP is not available. The interface stays with its kernel
 * driver; aioixy sees every frame it receives and transmits frames out of it.
 *
 * One socket per queue index. Each has a TPACKET_V3 rx ring (blocks of frames, handed to us
 * whole when full or when the retire timer expires) and a tx ring (TPACKET_V3 frames, which the
 * kernel treats like V2 slots). With options="ring=v2" both rings are TPACKET_V2 instead: one
 * slot per frame, handed over (and woken for) frame by frame, for the lowest latency at low
 * rates, at the price of a wake-up per frame instead of per block when the port is idle-ish. With several rx queues the sockets join one PACKET_FANOUT group,
 * so the kernel spreads flows over them by hash. Queue indices beyond rx_queues get a socket
 * bound to no protocol: they transmit and never receive.
 *
 * Copy, not zero-copy: the rings live in kernel memory mapped into us, while aioixy's buffers
 * live in the port's mempools, and a received packet must stay valid after its ring block went
 * back to the kernel. rx copies each frame out of its block into a pool buffer; tx copies the
 * pool buffer into a free ring slot and frees the buffer at once. Ownership on the Python side
 * is therefore exactly that of every other driver.
 *
 * rx never makes a syscall. tx writes slots and makes one sendto() per tx batch (the kick), not
 * per packet. When the poller is idle it sleeps in poll() on the socket (poll_fd).
 *
 * What the kernel strips is put back: a VLAN tag the NIC (or veth) offloaded into metadata is
 * re-inserted into the frame. A frame longer than the block's room is dropped and counted in
 * rx_errors, never delivered truncated. Frames this port transmits are not looped back into its
 * own rx (PACKET_IGNORE_OUTGOING), so the port sees what arrives on the wire, as a NIC would.
 */
#include "device.h"
#include "divert.h"
#include "kframe.h"
#include "netif.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/filter.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif
#ifndef PACKET_FANOUT_FLAG_UNIQUEID
#define PACKET_FANOUT_FLAG_UNIQUEID 0x2000
#endif

#define RX_BLOCK_SIZE (1u << 16)    /* 64 KiB blocks: ~500 small frames or 40 full-size ones */
/* V3 rx blocks hold a whole GSO super-frame (64 KiB of payload plus headers), which a host's
 * own TCP hands to a veth or tap at default offloads; the frame is cut into segments here */
#define RX_V3_BLOCK_SIZE (1u << 17)
#define VNET_LEN ((uint32_t)sizeof(struct virtio_net_hdr))
#define DEFAULT_RX_FRAMES 2048u     /* ring sized for this many 2 KiB frames (4 MiB) */
#define DEFAULT_TX_FRAMES 1024u
#define DEFAULT_RETIRE_MS 1u
/* how often a queue's poller re-reads the interface (gone? MTU?) while it sends or sleeps */
#define REFRESH_NS 20000000u
/* where the kernel reads a tx frame's data: the aligned header (no sockaddr_ll on tx) */
#define TX_DATA_OFF_V3 TPACKET_ALIGN(sizeof(struct tpacket3_hdr))
#define TX_DATA_OFF_V2 TPACKET_ALIGN(sizeof(struct tpacket2_hdr))

struct pkt_queue {
    /* poller-private */
    struct {
        uint8_t *blk;              /* rx block being read, NULL if none is open */
        struct tpacket3_hdr *pkt;  /* next frame in it */
        uint32_t left;             /* frames left in it */
        uint32_t blk_idx;
        uint32_t rx_head;          /* ring=v2: next rx slot */
        uint32_t tx_head;
        bool tx_full;              /* last tx_batch found no free slot: poll for POLLOUT */
        bool tx_retry;             /* the last kick failed: marked slots wait for another */
        bool link_down;            /* ... because the interface is down: retry on a slow clock */
        bool gone_counted;         /* the interface is gone and the ring's unsent frames counted */
        uint64_t next_refresh_ns;  /* when to re-read the interface (pkt_refresh) */
        bool rx_starved;           /* last rx_batch stopped for lack of pool buffers */
        bool in_gso;               /* the current frame is a super-frame being cut: gso */
        struct aioixy_gso gso;
    } w AIOIXY_CACHE_ALIGNED;
    /* written by the poller (single writer), read by stats */
    struct {
        _Atomic uint64_t rx_packets, rx_bytes, rx_errors, tx_packets, tx_bytes, tx_errors;
        _Atomic uint64_t csum_completed, csum_left, gso_frames, gso_segments, gso_refused;
    } c AIOIXY_CACHE_ALIGNED;
    /* set at open */
    int fd AIOIXY_CACHE_ALIGNED;
    bool rx;
    uint32_t vnet;                 /* VNET_LEN: PACKET_VNET_HDR is on (rx sockets); else 0 */
    uint8_t *map;
    size_t map_len;
    uint8_t *rx_ring;
    uint32_t rx_blocks;
    uint32_t rx_frames, rx_frame_size; /* ring=v2 */
    uint8_t *tx_ring;
    uint32_t tx_frames, tx_frame_size, tx_data_off;
};

struct pkt_dev {
    struct aioixy_dev dev;
    struct aioixy_netif nif;
    uint16_t nq;
    uint32_t max_frame;            /* rx ring=v2 slot sizing: MTU + Ethernet + VLAN header at open */
    _Atomic uint32_t mtu;          /* the interface's MTU now (pkt_refresh follows changes) */
    bool v2;                       /* options ring=v2: TPACKET_V2 slots instead of V3 blocks */
    pthread_mutex_t lock;          /* stats accumulation, promisc */
    uint64_t kernel_drops;
    struct aioixy_divert divert;   /* cfg's rules (valid during open only) */         /* PACKET_STATISTICS tp_drops, summed (reading resets them) */
    struct pkt_queue q[AIOIXY_MAX_QUEUES];
};

/* The ring status words are shared with the kernel in mmap'ed memory: read with acquire (the
 * frame's contents are valid once its status says so), hand back with release. */
static inline uint32_t status_load(const volatile uint32_t *s)
{
    return __atomic_load_n(s, __ATOMIC_ACQUIRE);
}

static inline void status_store(volatile uint32_t *s, uint32_t v)
{
    __atomic_store_n(s, v, __ATOMIC_RELEASE);
}

static inline struct tpacket_block_desc *block_at(struct pkt_queue *pq, uint32_t i)
{
    return (struct tpacket_block_desc *)(pq->rx_ring + (size_t)i * RX_V3_BLOCK_SIZE);
}

static void release_block(struct pkt_queue *pq)
{
    struct tpacket_block_desc *bd = (struct tpacket_block_desc *)pq->w.blk;
    status_store(&bd->hdr.bh1.block_status, TP_STATUS_KERNEL);
    pq->w.blk = NULL;
    pq->w.left = 0;
    pq->w.blk_idx = (pq->w.blk_idx + 1) % pq->rx_blocks;
}

/* Open the next block if the kernel has handed it to us. */
static bool open_block(struct pkt_queue *pq)
{
    struct tpacket_block_desc *bd = block_at(pq, pq->w.blk_idx);
    if (!(status_load(&bd->hdr.bh1.block_status) & TP_STATUS_USER))
        return false;
    pq->w.blk = (uint8_t *)bd;
    pq->w.left = bd->hdr.bh1.num_pkts;
    pq->w.pkt = (struct tpacket3_hdr *)((uint8_t *)bd + bd->hdr.bh1.offset_to_first_pkt);
    return true;
}

/* What a ring header (V2 or V3) says about one received frame. */
struct rx_meta {
    const uint8_t *data;
    uint32_t snaplen, len, status;
    uint16_t tci, tpid;
};

/* PACKET_VNET_HDR: the kernel writes a virtio_net_hdr right before each frame, saying whether
 * its checksum is partial (and where it is) and whether it is a GSO super-frame. */
static inline struct virtio_net_hdr vnet_of(const struct rx_meta *m)
{
    struct virtio_net_hdr v;
    memcpy(&v, m->data - VNET_LEN, sizeof(v));
    return v;
}

/* Put back the VLAN tag the kernel moved into metadata: the frame in b grows by 4 bytes. */
static void insert_tag(const struct rx_meta *h, struct aioixy_pkt_buf *b)
{
    uint16_t tpid = (h->status & TP_STATUS_VLAN_TPID_VALID) ? h->tpid : ETH_P_8021Q;
    memmove(b->data + 16, b->data + 12, b->len - 12);
    b->data[12] = (uint8_t)(tpid >> 8);
    b->data[13] = (uint8_t)tpid;
    b->data[14] = (uint8_t)(h->tci >> 8);
    b->data[15] = (uint8_t)h->tci;
    b->len += 4;
}

/* Copy one ring frame into b; false if it cannot be delivered whole. */
static bool copy_frame(const struct rx_meta *h, struct aioixy_pkt_buf *b, uint32_t room)
{
    const uint8_t *src = h->data;
    uint32_t len = h->snaplen;
    if (h->len != len || len < ETH_HLEN)
        return false; /* truncated by the ring (or a runt): never deliver part of a frame */
    if (h->status & TP_STATUS_VLAN_VALID) {
        if (len + 4 > room)
            return false;
        uint16_t tpid = (h->status & TP_STATUS_VLAN_TPID_VALID) ? h->tpid : ETH_P_8021Q;
        uint16_t tci = h->tci;
        memcpy(b->data, src, 12);
        b->data[12] = (uint8_t)(tpid >> 8);
        b->data[13] = (uint8_t)tpid;
        b->data[14] = (uint8_t)(tci >> 8);
        b->data[15] = (uint8_t)tci;
        memcpy(b->data + 16, src + 12, len - 12);
        b->len = len + 4;
        return true;
    }
    if (len > room)
        return false;
    memcpy(b->data, src, len);
    b->len = len;
    return true;
}

/* A frame copied into b whose checksum the kernel left partial: complete it. */
static void finish_csum(struct pkt_queue *pq, const struct rx_meta *h, struct aioixy_pkt_buf *b)
{
    struct virtio_net_hdr v = vnet_of(h);
    if (!(v.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM))
        return;
    uint32_t shift = (h->status & TP_STATUS_VLAN_VALID) ? 4 : 0; /* the tag we put back */
    if (aioixy_kframe_complete(b->data, b->len, v.csum_start + shift, v.csum_offset))
        aioixy_counter_add(&pq->c.csum_completed, 1);
    else
        aioixy_counter_add(&pq->c.csum_left, 1); /* not TCP/UDP: delivered as it came */
}

/* Is the frame a GSO super-frame (more than one wire frame)? Then set up its cutting; a
 * super-frame that cannot be cut is counted (rx_errors, rx_gso_refused) and skipped. Returns
 * true if the frame is to be cut (pq->w.gso ready), false to copy it as one frame. */
static bool gso_start(struct pkt_queue *pq, const struct rx_meta *h, bool *refused)
{
    *refused = false;
    struct virtio_net_hdr v = vnet_of(h);
    if (v.gso_type == VIRTIO_NET_HDR_GSO_NONE)
        return false;
    if (h->len != h->snaplen || aioixy_gso_init(&pq->w.gso, h->data, h->len, v.gso_type, v.gso_size)) {
        *refused = true;
        return false;
    }
    pq->w.in_gso = true;
    aioixy_counter_add(&pq->c.gso_frames, 1);
    return true;
}

/* Cut segments of the current super-frame into up to n fresh buffers. Returns how many were
 * written; *done when the frame is finished (or refused half-way: counted). */
static uint32_t gso_cut(struct pkt_queue *pq, struct aioixy_mempool *pool, const struct rx_meta *h,
                        struct aioixy_pkt_buf **bufs, uint32_t n, uint64_t *bytes, bool *done)
{
    uint32_t room = aioixy_mempool_data_room(pool);
    uint32_t want = aioixy_gso_left(&pq->w.gso);
    uint32_t tag = (h->status & TP_STATUS_VLAN_VALID) ? 4 : 0;
    *done = false;
    if (want > n)
        want = n;
    if (!want) {
        *done = true;
        pq->w.in_gso = false;
        return 0;
    }
    if (!aioixy_mempool_alloc_bulk(pool, bufs, want)) {
        pq->w.rx_starved = true;
        return 0;
    }
    uint32_t got = 0;
    while (got < want) {
        struct aioixy_pkt_buf *b = bufs[got];
        uint32_t len = room > tag ? aioixy_gso_next(&pq->w.gso, b->data, room - tag) : 0;
        if (!len) { /* a segment longer than a buffer: the rest of the frame cannot be delivered */
            aioixy_counter_add(&pq->c.gso_refused, 1);
            aioixy_counter_add(&pq->c.rx_errors, 1);
            pq->w.in_gso = false;
            break;
        }
        b->len = len;
        if (tag)
            insert_tag(h, b);
        *bytes += b->len;
        got++;
    }
    if (got < want)
        aioixy_mempool_free_bulk(bufs + got, want - got);
    aioixy_counter_add(&pq->c.gso_segments, got);
    if (!pq->w.in_gso || !aioixy_gso_left(&pq->w.gso)) {
        pq->w.in_gso = false;
        *done = true;
    }
    return got;
}

static inline struct rx_meta meta_v3(const struct tpacket3_hdr *h)
{
    return (struct rx_meta){(const uint8_t *)h + h->tp_mac, h->tp_snaplen, h->tp_len,
                            h->tp_status, h->hv1.tp_vlan_tci, h->hv1.tp_vlan_tpid};
}

static inline void next_frame_v3(struct pkt_queue *pq)
{
    pq->w.pkt = (struct tpacket3_hdr *)((uint8_t *)pq->w.pkt + pq->w.pkt->tp_next_offset);
    if (--pq->w.left == 0)
        release_block(pq); /* back to the kernel at once, not on the next call */
}

static uint32_t rx_v3(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    struct pkt_queue *pq = &pd->q[q];
    struct aioixy_mempool *pool = dev->pools[q];
    uint32_t room = aioixy_mempool_data_room(pool);
    uint32_t got = 0;
    uint64_t bytes = 0, bad = 0;
    pq->w.rx_starved = false;
    while (got < n) {
        if (!pq->w.blk && !open_block(pq))
            break;
        if (!pq->w.left) {
            release_block(pq);
            continue;
        }
        if (pq->w.in_gso) { /* a super-frame being cut, possibly over several calls */
            struct rx_meta m = meta_v3(pq->w.pkt);
            bool done;
            got += gso_cut(pq, pool, &m, bufs + got, n - got, &bytes, &done);
            if (!done)
                break; /* bufs full, or the pool is empty */
            next_frame_v3(pq);
            continue;
        }
        uint32_t take = pq->w.left < n - got ? pq->w.left : n - got;
        if (!aioixy_mempool_alloc_bulk(pool, bufs + got, take)) {
            pq->w.rx_starved = true; /* Python holds the pool: leave the frames in the ring */
            break;
        }
        uint32_t kept = 0;
        for (uint32_t i = 0; i < take; i++) {
            struct rx_meta m = meta_v3(pq->w.pkt);
            if (pq->vnet) {
                bool refused;
                if (gso_start(pq, &m, &refused))
                    break; /* cut on the next round of the outer loop */
                if (refused) {
                    aioixy_counter_add(&pq->c.gso_refused, 1);
                    bad++;
                    next_frame_v3(pq);
                    continue;
                }
            }
            struct aioixy_pkt_buf *b = bufs[got + kept];
            if (copy_frame(&m, b, room)) {
                if (pq->vnet)
                    finish_csum(pq, &m, b);
                bytes += b->len;
                kept++;
            } else {
                bad++;
            }
            next_frame_v3(pq);
        }
        if (kept < take) /* the spare buffers sit at the tail of what was allocated */
            aioixy_mempool_free_bulk(bufs + got + kept, take - kept);
        got += kept;
    }
    if (got) {
        aioixy_counter_add(&pq->c.rx_packets, got);
        aioixy_counter_add(&pq->c.rx_bytes, bytes);
    }
    if (bad)
        aioixy_counter_add(&pq->c.rx_errors, bad);
    return got;
}

static inline struct tpacket2_hdr *slot_v2(struct pkt_queue *pq, uint32_t i)
{
    return (struct tpacket2_hdr *)(pq->rx_ring + (size_t)i * pq->rx_frame_size);
}

/* ring=v2: one slot per frame, each handed back to the kernel as soon as it is copied. */
static uint32_t rx_v2(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    struct pkt_queue *pq = &pd->q[q];
    struct aioixy_mempool *pool = dev->pools[q];
    uint32_t room = aioixy_mempool_data_room(pool);
    pq->w.rx_starved = false;
    uint32_t ready = 0, head = pq->w.rx_head;
    while (ready < n && (status_load(&slot_v2(pq, head)->tp_status) & TP_STATUS_USER)) {
        ready++;
        head = head + 1 == pq->rx_frames ? 0 : head + 1;
    }
    if (!ready)
        return 0;
    if (!aioixy_mempool_alloc_bulk(pool, bufs, ready)) {
        pq->w.rx_starved = true;
        return 0;
    }
    uint32_t got = 0, bad = 0;
    uint64_t bytes = 0;
    head = pq->w.rx_head;
    for (uint32_t i = 0; i < ready; i++) {
        struct tpacket2_hdr *h = slot_v2(pq, head);
        struct rx_meta m = {(const uint8_t *)h + h->tp_mac, h->tp_snaplen, h->tp_len,
                            h->tp_status, h->tp_vlan_tci, h->tp_vlan_tpid};
        if (pq->vnet && vnet_of(&m).gso_type != VIRTIO_NET_HDR_GSO_NONE) {
            /* a V2 slot holds one MTU frame: a super-frame arrives truncated and cannot be cut */
            aioixy_counter_add(&pq->c.gso_refused, 1);
            bad++;
        } else if (copy_frame(&m, bufs[got], room)) {
            if (pq->vnet)
                finish_csum(pq, &m, bufs[got]);
            bytes += bufs[got++]->len;
        } else {
            bad++;
        }
        status_store(&h->tp_status, TP_STATUS_KERNEL);
        head = head + 1 == pq->rx_frames ? 0 : head + 1;
    }
    pq->w.rx_head = head;
    if (got < ready)
        aioixy_mempool_free_bulk(bufs + got, ready - got);
    if (got) {
        aioixy_counter_add(&pq->c.rx_packets, got);
        aioixy_counter_add(&pq->c.rx_bytes, bytes);
    }
    if (bad)
        aioixy_counter_add(&pq->c.rx_errors, bad);
    return got;
}

static uint32_t pkt_rx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    return ((struct pkt_dev *)dev)->v2 ? rx_v2(dev, q, bufs, n) : rx_v3(dev, q, bufs, n);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO, no syscall */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Re-read the interface by its ifindex: gone (deleted, moved away, or re-created under the same
 * name: a new ifindex), or a new MTU, which the tx limit follows (the port layer's, refused in
 * the caller's hands, and pkt_tx's own). Any thread. */
static void pkt_refresh(struct pkt_dev *pd)
{
    struct aioixy_netif_now now;
    aioixy_netif_now(pd->nif.ifindex, &now);
    if (now.gone) {
        aioixy_dev_set_gone(&pd->dev, "packet:%s: the interface is gone (deleted or moved to "
                            "another network namespace; ifindex %d no longer exists here): close "
                            "the port and open it again", pd->nif.name, pd->nif.ifindex);
        return;
    }
    if (now.mtu && now.mtu != atomic_load_explicit(&pd->mtu, memory_order_relaxed)) {
        atomic_store_explicit(&pd->mtu, now.mtu, memory_order_relaxed);
        atomic_store_explicit(&pd->dev.max_tx_len, now.mtu + ETH_HLEN + 4, memory_order_relaxed);
    }
}

static void maybe_refresh(struct pkt_dev *pd, struct pkt_queue *pq)
{
    uint64_t t = now_ns();
    if (t < pq->w.next_refresh_ns)
        return;
    pq->w.next_refresh_ns = t + REFRESH_NS;
    pkt_refresh(pd);
}

/* Hand every marked slot to the kernel. A failure (the driver's queue full, the link down)
 * stops it early and leaves slots marked: retried on the next call, also an empty one. */
static void kick(struct pkt_dev *pd, struct pkt_queue *pq)
{
    if (sendto(pq->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0) {
        pq->w.tx_retry = pq->w.link_down = false;
        return;
    }
    int e = errno;
    pq->w.tx_retry = true;
    pq->w.link_down = e == ENETDOWN;
    if (e == ENXIO || e == ENODEV) /* the socket's interface is no more */
        pkt_refresh(pd);
}

/* The kernel sends an untagged frame of at most MTU + 14 bytes; only a VLAN-tagged one may
 * carry 4 more. Anything longer it would skip silently (PACKET_LOSS). */
static inline bool frame_fits(const struct aioixy_pkt_buf *b, uint32_t mtu)
{
    if (b->len <= mtu + ETH_HLEN)
        return true;
    if (b->len > mtu + ETH_HLEN + 4)
        return false;
    uint16_t type = (uint16_t)(b->data[12] << 8 | b->data[13]);
    return type == ETH_P_8021Q || type == ETH_P_8021AD;
}

/* Slots still waiting to be sent when the interface went away never leave: tx_errors. */
static void count_unsent(struct pkt_dev *pd, struct pkt_queue *pq)
{
    uint64_t lost = 0;
    for (uint32_t i = 0; i < pq->tx_frames; i++) {
        uint8_t *slot = pq->tx_ring + (size_t)i * pq->tx_frame_size;
        uint32_t st = pd->v2 ? status_load(&((struct tpacket2_hdr *)slot)->tp_status)
                             : status_load(&((struct tpacket3_hdr *)slot)->tp_status);
        if (st == TP_STATUS_SEND_REQUEST)
            lost++;
    }
    if (lost)
        aioixy_counter_add(&pq->c.tx_errors, lost);
    pq->w.gone_counted = true;
    pq->w.tx_retry = false;
}

static uint32_t pkt_tx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    struct pkt_queue *pq = &pd->q[q];
    if (n == 0) {
        /* nothing to reclaim (accepted buffers were copied and freed at once), but slots a
         * failed kick left marked must not wait for the application's next frame */
        if (pq->w.tx_retry)
            kick(pd, pq);
        return 0;
    }
    maybe_refresh(pd, pq);
    const uint32_t mtu = atomic_load_explicit(&pd->mtu, memory_order_relaxed);
    uint32_t queued = 0, taken = 0, refused = 0;
    uint64_t bytes = 0;
    uint32_t head = pq->w.tx_head;
    for (; taken < n; taken++) {
        struct aioixy_pkt_buf *b = bufs[taken];
        if (b->len < ETH_HLEN || !frame_fits(b, mtu) ||
            b->len + pq->vnet > pq->tx_frame_size - pq->tx_data_off) {
            refused++; /* the kernel would refuse it too: drop it here, counted */
            continue;
        }
        uint8_t *slot = pq->tx_ring + (size_t)head * pq->tx_frame_size;
        volatile uint32_t *status;
        if (pd->v2) {
            struct tpacket2_hdr *h = (struct tpacket2_hdr *)slot;
            status = &h->tp_status;
            if (status_load(status) != TP_STATUS_AVAILABLE)
                break; /* ring full: the kernel has not sent this slot's previous frame yet */
            h->tp_len = b->len + pq->vnet;
            h->tp_snaplen = b->len + pq->vnet;
        } else {
            struct tpacket3_hdr *h = (struct tpacket3_hdr *)slot;
            status = &h->tp_status;
            if (status_load(status) != TP_STATUS_AVAILABLE)
                break;
            h->tp_len = b->len + pq->vnet;
            h->tp_snaplen = b->len + pq->vnet;
            h->tp_next_offset = 0;
        }
        /* with PACKET_VNET_HDR the kernel reads a virtio_net_hdr first: all zero, a finished
         * frame (no checksum or segmentation left to do) */
        if (pq->vnet)
            memset(slot + pq->tx_data_off, 0, pq->vnet);
        memcpy(slot + pq->tx_data_off + pq->vnet, b->data, b->len);
        status_store(status, TP_STATUS_SEND_REQUEST);
        bytes += b->len;
        queued++;
        head = head + 1 == pq->tx_frames ? 0 : head + 1;
    }
    pq->w.tx_head = head;
    pq->w.tx_full = taken < n;
    if (queued || pq->w.tx_retry)
        kick(pd, pq); /* the kernel sends every slot marked SEND_REQUEST */
    if (taken)
        aioixy_mempool_free_bulk(bufs, taken);
    if (queued) {
        aioixy_counter_add(&pq->c.tx_packets, queued);
        aioixy_counter_add(&pq->c.tx_bytes, bytes);
    }
    if (refused)
        aioixy_counter_add(&pq->c.tx_errors, refused);
    return taken;
}

static int pkt_poll_fd(struct aioixy_dev *dev, uint16_t q, short *events)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    struct pkt_queue *pq = &pd->q[q];
    maybe_refresh(pd, pq);
    if (aioixy_dev_is_gone(dev)) {
        /* nothing will ever come: sleep on the safety timeout (the port layer drops tx) */
        if (!pq->w.gone_counted)
            count_unsent(pd, pq);
        *events = 0;
        return pq->fd;
    }
    /* frames are waiting but the pool is empty: POLLIN would fire at once, forever; the timed
     * back-off notices when Python gives buffers back */
    if (pq->w.rx_starved)
        return -1;
    /* slots wait for a retried kick: nothing in the kernel will wake us for them. While the
     * link is down, the retry waits for poll()'s safety timeout instead of the short back-off */
    if (pq->w.tx_retry && !pq->w.link_down)
        return -1;
    *events = (short)((pq->rx ? POLLIN : 0) | (pq->w.tx_full && !pq->w.link_down ? POLLOUT : 0));
    return pq->fd;
}

/* poll() reported an error on queue q's socket: after a link down the kernel sets ENETDOWN on
 * every bound socket, and poll() reports it until someone reads it (SO_ERROR), even once the
 * link is up again and frames flow. Read it, and see whether the interface is still there. */
static void pkt_poll_error(struct aioixy_dev *dev, uint16_t q)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(pd->q[q].fd, SOL_SOCKET, SO_ERROR, &err, &len);
    pkt_refresh(pd);
}

static void pkt_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&pd->lock);
    for (uint16_t i = 0; i < pd->nq; i++) {
        struct tpacket_stats_v3 st;
        socklen_t len = sizeof(st);
        if (pd->q[i].rx && getsockopt(pd->q[i].fd, SOL_PACKET, PACKET_STATISTICS, &st, &len) == 0)
            pd->kernel_drops += st.tp_drops;
    }
    out->rx_missed = pd->kernel_drops;
    pthread_mutex_unlock(&pd->lock);
    uint64_t csum_done = 0, csum_left = 0, gso_frames = 0, gso_segs = 0, gso_refused = 0;
    for (uint16_t i = 0; i < pd->nq; i++) {
        struct pkt_queue *pq = &pd->q[i];
#define LD(f) atomic_load_explicit(&pq->c.f, memory_order_relaxed)
        out->rx_packets += LD(rx_packets);
        out->rx_bytes += LD(rx_bytes);
        out->rx_errors += LD(rx_errors);
        out->tx_packets += LD(tx_packets);
        out->tx_bytes += LD(tx_bytes);
        out->tx_errors += LD(tx_errors);
        csum_done += LD(csum_completed);
        csum_left += LD(csum_left);
        gso_frames += LD(gso_frames);
        gso_segs += LD(gso_segments);
        gso_refused += LD(gso_refused);
#undef LD
    }
    const struct { const char *name; uint64_t v; } ex[] = {
        {"rx_csum_completed", csum_done},   /* partial checksums finished (kframe.h) */
        {"rx_csum_left_partial", csum_left}, /* partial, but not TCP/UDP: delivered as is */
        {"rx_gso_frames", gso_frames},       /* super-frames cut into segments */
        {"rx_gso_segments", gso_segs},       /* the segments they gave */
        {"rx_gso_refused", gso_refused},     /* super-frames that could not be cut (rx_errors) */
    };
    out->num_extra = 0;
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]) && i < AIOIXY_STATS_EXTRA; i++) {
        snprintf(out->extra[i].name, sizeof(out->extra[i].name), "%s", ex[i].name);
        out->extra[i].value = ex[i].v;
        out->num_extra++;
    }
}

static void pkt_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    pkt_refresh(pd); /* also notices a deletion or an MTU change at once */
    if (aioixy_dev_is_gone(dev)) {
        out->up = false;
        out->speed_mbps = 0;
        return;
    }
    aioixy_netif_link_of(pd->nif.ifindex, out); /* by ifindex: never a namesake's link */
}

/* Promiscuous mode: a membership of queue 0's socket (netif.h), dropped when it closes. */
static int pkt_promisc(struct aioixy_dev *dev, bool on)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    if (on == dev->promisc)
        return 0;
    return aioixy_netif_promisc(&pd->q[0].fd, &pd->nif, on, "packet");
}

static void close_queue(struct pkt_queue *pq)
{
    if (pq->map)
        munmap(pq->map, pq->map_len);
    if (pq->fd >= 0)
        close(pq->fd);
    pq->map = NULL;
    pq->fd = -1;
}

static void pkt_close(struct aioixy_dev *dev)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    for (uint16_t i = 0; i < AIOIXY_MAX_QUEUES; i++)
        close_queue(&pd->q[i]);
    aioixy_dev_release_pools(dev);
    pthread_mutex_destroy(&pd->lock);
    free(pd);
}

/* A forked child's copies of the sockets and ring mappings (each mapping holds its socket
 * too): gone, so the parent's close really closes them. */
static void pkt_forget_after_fork(struct aioixy_dev *dev)
{
    struct pkt_dev *pd = (struct pkt_dev *)dev;
    for (uint16_t i = 0; i < AIOIXY_MAX_QUEUES; i++)
        close_queue(&pd->q[i]);
}

static const struct aioixy_dev_ops pkt_ops = {
    .driver = "packet",
    .rx_batch = pkt_rx,
    .tx_batch = pkt_tx,
    .read_stats = pkt_stats,
    .link_status = pkt_link,
    .set_promisc = pkt_promisc,
    .poll_fd = pkt_poll_fd,
    .poll_error = pkt_poll_error,
    .forget_after_fork = pkt_forget_after_fork,
    .close = pkt_close,
};

struct pkt_opts {
    bool v2;
    bool qdisc_bypass;
    int fanout_mode;
    int fanout_group; /* -1: a group of this port's own (several rx queues) or none */
    uint32_t retire_ms;
};

static int parse_opts(const char *ifname, const char *options, struct pkt_opts *o)
{
    char val[AIOIXY_OPT_VALUE_MAX + 1];
    o->v2 = false;
    o->qdisc_bypass = false;
    o->fanout_mode = PACKET_FANOUT_HASH;
    o->fanout_group = -1;
    if (aioixy_opt_get(options, "ring", val, sizeof(val))) {
        if (strcmp(val, "v2") == 0)
            o->v2 = true;
        else if (strcmp(val, "v3") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "packet:%s: ring='%s': use v3 (blocks, the "
                                    "default) or v2 (a slot per frame)", ifname, val);
    }
    o->retire_ms = DEFAULT_RETIRE_MS;
    if (aioixy_opt_get(options, "qdisc_bypass", val, sizeof(val))) {
        if (!val[0] || strcmp(val, "1") == 0 || strcmp(val, "true") == 0)
            o->qdisc_bypass = true;
        else if (strcmp(val, "0") != 0 && strcmp(val, "false") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "packet:%s: qdisc_bypass='%s': use 1 or 0", ifname, val);
    }
    if (aioixy_opt_get(options, "fanout", val, sizeof(val))) {
        static const struct { const char *name; int mode; } modes[] = {
            {"hash", PACKET_FANOUT_HASH}, {"lb", PACKET_FANOUT_LB}, {"cpu", PACKET_FANOUT_CPU},
            {"qm", PACKET_FANOUT_QM},
        };
        int m = -1;
        for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
            if (strcmp(val, modes[i].name) == 0)
                m = modes[i].mode;
        if (m < 0)
            return aioixy_set_error(AIOIXY_EINVAL, "packet:%s: fanout='%s': use hash, lb, cpu or qm",
                                    ifname, val);
        o->fanout_mode = m;
    }
    if (aioixy_opt_get(options, "fanout_group", val, sizeof(val))) {
        /* worker processes (aioixy.serve) join one group that their supervisor named, so
         * the kernel spreads flows over the sockets of every worker */
        char *end;
        unsigned long v = strtoul(val, &end, 10);
        if (*end || !val[0] || v > 0xffff)
            return aioixy_set_error(AIOIXY_EINVAL, "packet:%s: fanout_group='%s': must be 0..65535",
                                    ifname, val);
        o->fanout_group = (int)v;
    }
    if (aioixy_opt_get(options, "retire_ms", val, sizeof(val))) {
        char *end;
        unsigned long v = strtoul(val, &end, 10);
        if (*end || !val[0] || v < 1 || v > 1000)
            return aioixy_set_error(AIOIXY_EINVAL, "packet:%s: retire_ms='%s': must be 1..1000", ifname, val);
        o->retire_ms = (uint32_t)v;
    }
    return 0;
}

static int sock_err(const struct pkt_dev *pd, const char *what, int e)
{
    if (e == EPERM || e == EACCES)
        return aioixy_set_error(AIOIXY_EPERM, "packet:%s: %s: not permitted (AF_PACKET needs "
                                "CAP_NET_RAW: run as root)", pd->nif.name, what);
    return aioixy_set_error(AIOIXY_EIO, "packet:%s: %s failed: %s", pd->nif.name, what, strerror(e));
}

static int open_queue(struct pkt_dev *pd, uint16_t i, const struct aioixy_dev_config *cfg,
                      const struct pkt_opts *o, int *fanout_id)
{
    struct pkt_queue *pq = &pd->q[i];
    pq->rx = i < pd->dev.num_rx_queues && !cfg->tx_only; /* rx=False: receive nothing */
    /* protocol 0: no frame reaches the socket before its ring exists and it is bound */
    pq->fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (pq->fd < 0)
        return sock_err(pd, "socket(AF_PACKET)", errno);
    int v = o->v2 ? TPACKET_V2 : TPACKET_V3;
    if (setsockopt(pq->fd, SOL_PACKET, PACKET_VERSION, &v, sizeof(v)))
        return sock_err(pd, o->v2 ? "PACKET_VERSION TPACKET_V2" : "PACKET_VERSION TPACKET_V3", errno);
    v = 1; /* a malformed tx slot is skipped, not left blocking the ring */
    if (setsockopt(pq->fd, SOL_PACKET, PACKET_LOSS, &v, sizeof(v)))
        return sock_err(pd, "PACKET_LOSS", errno);
    if (o->qdisc_bypass && setsockopt(pq->fd, SOL_PACKET, PACKET_QDISC_BYPASS, &v, sizeof(v)))
        return sock_err(pd, "PACKET_QDISC_BYPASS", errno);
    if (pq->rx && setsockopt(pq->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &v, sizeof(v)))
        return sock_err(pd, "PACKET_IGNORE_OUTGOING (needs Linux 4.20)", errno);
    /* per frame: partial checksum (where) and GSO (segment size), see kframe.h */
    if (pq->rx && setsockopt(pq->fd, SOL_PACKET, PACKET_VNET_HDR, &v, sizeof(v)))
        return sock_err(pd, "PACKET_VNET_HDR", errno);
    pq->vnet = pq->rx ? VNET_LEN : 0;

    size_t rx_len = 0;
    uint32_t room = (cfg->buf_size ? cfg->buf_size : AIOIXY_DEFAULT_BUF_SIZE) - AIOIXY_PKT_HEADER;
    if (pq->rx && o->v2) {
        /* a slot holds its header, the sockaddr_ll and the frame: sized for what a buffer holds
         * (and at most the MTU plus headers), a power of two so slots tile the blocks */
        uint32_t want = pd->max_frame < room ? pd->max_frame : room;
        uint32_t fsz = 2048;
        while (fsz < want + TPACKET2_HDRLEN + 16 + VNET_LEN && fsz < RX_BLOCK_SIZE)
            fsz *= 2;
        uint32_t frames = cfg->rx_descs ? cfg->rx_descs : DEFAULT_RX_FRAMES;
        uint32_t per_block = RX_BLOCK_SIZE / fsz;
        pq->rx_blocks = (frames + per_block - 1) / per_block;
        pq->rx_frame_size = fsz;
        pq->rx_frames = pq->rx_blocks * per_block;
        struct tpacket_req req = {
            .tp_block_size = RX_BLOCK_SIZE,
            .tp_block_nr = pq->rx_blocks,
            .tp_frame_size = fsz,
            .tp_frame_nr = pq->rx_frames,
        };
        if (setsockopt(pq->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)))
            return sock_err(pd, "PACKET_RX_RING", errno);
        rx_len = (size_t)pq->rx_blocks * RX_BLOCK_SIZE;
    } else if (pq->rx) {
        uint32_t frames = cfg->rx_descs ? cfg->rx_descs : DEFAULT_RX_FRAMES;
        uint64_t bytes = (uint64_t)frames * 2048u;
        pq->rx_blocks = (uint32_t)((bytes + RX_V3_BLOCK_SIZE - 1) / RX_V3_BLOCK_SIZE);
        if (pq->rx_blocks < 2)
            pq->rx_blocks = 2; /* one being filled, one being read */
        struct tpacket_req3 req = {
            .tp_block_size = RX_V3_BLOCK_SIZE,
            .tp_block_nr = pq->rx_blocks,
            .tp_frame_size = 2048,
            .tp_frame_nr = pq->rx_blocks * (RX_V3_BLOCK_SIZE / 2048),
            .tp_retire_blk_tov = o->retire_ms,
        };
        if (setsockopt(pq->fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof(req)))
            return sock_err(pd, "PACKET_RX_RING", errno);
        rx_len = (size_t)pq->rx_blocks * RX_V3_BLOCK_SIZE;
    }
    pq->tx_data_off = o->v2 ? TX_DATA_OFF_V2 : TX_DATA_OFF_V3;
    uint32_t fsz = 2048;
    while (fsz < room + pq->tx_data_off + pq->vnet && fsz < RX_BLOCK_SIZE)
        fsz *= 2;
    pq->tx_frame_size = fsz;
    uint32_t txf = cfg->tx_descs ? cfg->tx_descs : DEFAULT_TX_FRAMES;
    uint32_t per_block = RX_BLOCK_SIZE / fsz;
    uint32_t tx_blocks = (txf + per_block - 1) / per_block;
    pq->tx_frames = tx_blocks * per_block;
    struct tpacket_req3 treq = {
        .tp_block_size = RX_BLOCK_SIZE,
        .tp_block_nr = tx_blocks,
        .tp_frame_size = fsz,
        .tp_frame_nr = pq->tx_frames,
    };
    /* V2 takes the first four fields only (struct tpacket_req) */
    if (setsockopt(pq->fd, SOL_PACKET, PACKET_TX_RING, &treq,
                   o->v2 ? sizeof(struct tpacket_req) : sizeof(treq)))
        return sock_err(pd, "PACKET_TX_RING", errno);
    size_t tx_len = (size_t)tx_blocks * RX_BLOCK_SIZE;
    pq->map_len = rx_len + tx_len;
    void *m = mmap(NULL, pq->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_LOCKED, pq->fd, 0);
    if (m == MAP_FAILED)
        m = mmap(NULL, pq->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, pq->fd, 0);
    if (m == MAP_FAILED) {
        pq->map = NULL;
        return sock_err(pd, "mmap of the packet rings", errno);
    }
    pq->map = m;
    pq->rx_ring = pq->rx ? pq->map : NULL;
    pq->tx_ring = pq->map + rx_len;

    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET,
        .sll_protocol = pq->rx ? htons(ETH_P_ALL) : 0,
        .sll_ifindex = pd->nif.ifindex,
    };
    if (pq->rx && cfg->divert) {
        /* before bind: the socket never holds a frame the rules do not allow */
        static _Thread_local struct sock_filter code[AIOIXY_DIVERT_CBPF_MAX];
        struct sock_fprog prog = {.len = (unsigned short)aioixy_divert_cbpf(&pd->divert, code),
                                  .filter = code};
        if (setsockopt(pq->fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)))
            return sock_err(pd, "SO_ATTACH_FILTER (divert rules)", errno);
    }
    if (bind(pq->fd, (struct sockaddr *)&sll, sizeof(sll)))
        return sock_err(pd, "bind", errno);
    if (pq->rx && (pd->dev.num_rx_queues > 1 || o->fanout_group >= 0)) {
        /* the kernel picks a group id no one else uses; the other queues join it */
        int arg = *fanout_id < 0 ? (o->fanout_mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16
                                 : (o->fanout_mode << 16) | *fanout_id;
        if (setsockopt(pq->fd, SOL_PACKET, PACKET_FANOUT, &arg, sizeof(arg)))
            return sock_err(pd, o->fanout_group >= 0 ? "PACKET_FANOUT (joining fanout_group: "
                            "another socket holds that id with another mode or interface?)"
                            : "PACKET_FANOUT (Linux 4.7 or newer for a unique group)", errno);
        if (*fanout_id < 0) {
            int got = 0;
            socklen_t len = sizeof(got);
            if (getsockopt(pq->fd, SOL_PACKET, PACKET_FANOUT, &got, &len))
                return sock_err(pd, "reading the PACKET_FANOUT group", errno);
            *fanout_id = got & 0xffff;
        }
    }
    return 0;
}

static int pkt_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    const char *ifname = name + strlen("packet:");
    struct pkt_opts o;
    int rc = parse_opts(ifname, cfg->options, &o);
    if (rc)
        return rc;
    struct pkt_dev *pd = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*pd) + 63) & ~(size_t)63);
    if (!pd)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(pd, 0, sizeof(*pd));
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++)
        pd->q[i].fd = -1;
    pthread_mutex_init(&pd->lock, NULL);
    pd->dev.ops = &pkt_ops;
    pd->dev.dma.kind = DMA_HOST; /* the kernel copies: tx takes buffers from any pool */
    pd->dev.dma.vfio_container_fd = -1;
    rc = aioixy_netif_lookup(ifname, &pd->nif);
    if (!rc)
        rc = cfg->divert ? aioixy_divert_from_config(cfg, &pd->divert) : 0;
    /* a socket that sees only what narrow rules name (divert.h) may sit on an interface that
     * carries the host's traffic: packet: never takes frames from the kernel anyway */
    bool narrow = !rc && cfg->divert && aioixy_divert_is_narrow(&pd->divert);
    if (!rc)
        rc = aioixy_netif_check_safe(&pd->nif, cfg->force || narrow, "packet");
    if (!rc)
        rc = aioixy_netif_check_up(&pd->nif, "packet");
    if (rc) {
        pkt_close(&pd->dev);
        return rc;
    }
    snprintf(pd->dev.name, sizeof(pd->dev.name), "%s", name);
    snprintf(pd->dev.driver, sizeof(pd->dev.driver), "packet");
    memcpy(pd->dev.mac, pd->nif.mac, 6);
    pd->dev.num_rx_queues = cfg->rx_queues;
    pd->dev.num_tx_queues = cfg->tx_queues;
    pd->nq = cfg->rx_queues > cfg->tx_queues ? cfg->rx_queues : cfg->tx_queues;
    pd->max_frame = pd->nif.mtu + ETH_HLEN + 4; /* one VLAN tag may ride on top of the MTU */
    atomic_store_explicit(&pd->mtu, pd->nif.mtu, memory_order_relaxed);
    pd->v2 = o.v2;
    pd->dev.min_tx_len = ETH_HLEN;       /* refused in the caller's hands (port layer) */
    pd->dev.max_tx_len = pd->max_frame;
    rc = aioixy_dev_create_pools(&pd->dev, cfg);
    int fanout_id = o.fanout_group;
    for (uint16_t i = 0; !rc && i < pd->nq; i++)
        rc = open_queue(pd, i, cfg, &o, &fanout_id);
    if (!rc && cfg->promisc)
        rc = pkt_promisc(&pd->dev, true);
    if (rc) {
        pkt_close(&pd->dev);
        return rc;
    }
    pd->dev.promisc = cfg->promisc;
    *out = &pd->dev;
    return 0;
}

static const char *const packet_options[] = {"ring", "qdisc_bypass", "fanout", "fanout_group",
                                             "retire_ms", NULL};

static struct aioixy_driver packet_driver = {
    .name = "packet",
    .prefix = "packet:",
    .open = pkt_open,
    .options = packet_options,
};
AIOIXY_REGISTER_DRIVER(packet_driver)
