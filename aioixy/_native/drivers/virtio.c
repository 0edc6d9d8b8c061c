/* User-space driver for legacy virtio-net PCI devices (1af4:1000), written from the VirtIO
 * specification's legacy interface (virtio 1.x spec, section 4.1.4.8 "Legacy Interfaces: A Note
 * on PCI Device Layout", section 2.7 split virtqueues, section 5.1 network device).
 *
 * Shape of the driver:
 *  - BAR0 is an I/O-port BAR; user space reaches it through pread/pwrite on sysfs resource0,
 *    which accepts 1, 2 and 4 byte accesses only. Every register access is a syscall, so the
 *    fast path touches the BAR only for the one queue notification per batch (and none when the
 *    device set VRING_USED_F_NO_NOTIFY).
 *  - Three split virtqueues: 0 = rx, 1 = tx, 2 = control (for promiscuous mode). Legacy queues
 *    live at a physical page frame (QUEUE_PFN), so their memory comes from hugepages with
 *    physical addresses taken from /proc/self/pagemap. Legacy virtio devices DMA to guest
 *    physical memory directly (QEMU bypasses a vIOMMU for them), so VFIO is not used here.
 *  - Every packet buffer is one descriptor: the 10-byte virtio_net_hdr sits in the mempool
 *    headroom right before the packet data, so the device writes/reads header + frame in one go.
 *  - We poll: VRING_AVAIL_F_NO_INTERRUPT is set on rx and tx, and MSI-X is never enabled.
 */
#include "device.h"
#include "pci.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* legacy header (BAR0), byte offsets */
#define VP_HOST_FEATURES 0
#define VP_GUEST_FEATURES 4
#define VP_QUEUE_PFN 8
#define VP_QUEUE_NUM 12
#define VP_QUEUE_SEL 14
#define VP_QUEUE_NOTIFY 16
#define VP_STATUS 18
#define VP_ISR 19
#define VP_CONFIG 20 /* device-specific config, when MSI-X is disabled */

#define ST_ACKNOWLEDGE 1u
#define ST_DRIVER 2u
#define ST_DRIVER_OK 4u
#define ST_FAILED 0x80u

#define NET_F_MAC (1u << 5)
#define NET_F_STATUS (1u << 16)
#define NET_F_CTRL_VQ (1u << 17)
#define NET_F_CTRL_RX (1u << 18)

#define NET_S_LINK_UP 1u

#define VRING_DESC_F_NEXT 1u
#define VRING_DESC_F_WRITE 2u
#define VRING_USED_F_NO_NOTIFY 1u
#define VRING_AVAIL_F_NO_INTERRUPT 1u
#define VRING_ALIGN 4096u

#define NET_HDR_LEN 10u /* struct virtio_net_hdr without MRG_RXBUF */
#define CTRL_RX 0
#define CTRL_RX_PROMISC 0
#define CTRL_OK 0

#define Q_RX 0
#define Q_TX 1
#define Q_CTRL 2

struct vring_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct vring_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq {
    uint16_t size, index;
    struct vring_desc *desc;
    uint16_t *avail_flags, *avail_idx, *avail_ring;
    uint16_t *used_flags, *used_idx;
    struct vring_used_elem *used_ring;
    struct aioixy_dma_mem mem;
    uint16_t next_avail;  /* our shadow of avail->idx */
    uint16_t last_used;   /* next used entry to consume */
    uint16_t n_free;
    uint16_t *free_ids;   /* stack of free descriptor ids */
    struct aioixy_pkt_buf **bufs; /* buffer behind each descriptor id */
};

struct vio_counters {
    _Atomic uint64_t rx_packets, rx_bytes, rx_missed, tx_packets, tx_bytes;
} ;

struct virtio_dev {
    struct aioixy_dev dev;
    int bar; /* resource0 fd */
    uint32_t features;
    struct virtq q[3];
    bool have_ctrl;
    struct aioixy_dma_mem ctrl_mem; /* command buffers for the control queue */
    struct vio_counters rx AIOIXY_CACHE_ALIGNED; /* written by the rx poller */
    struct vio_counters tx AIOIXY_CACHE_ALIGNED; /* written by the tx poller */
    struct aioixy_pkt_buf *scratch[AIOIXY_MAX_BATCH] AIOIXY_CACHE_ALIGNED; /* tx reclaim */
};

/* The device is another agent reading and writing this memory: accesses to the index and flag
 * words it shares with us go through atomics so the compiler neither tears nor caches them. */
static inline uint16_t shared_load16(const uint16_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void shared_store16(uint16_t *p, uint16_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static size_t vring_bytes(uint16_t n)
{
    size_t a = 16u * n + 2u * (3u + n);
    a = (a + VRING_ALIGN - 1) & ~(size_t)(VRING_ALIGN - 1);
    return a + ((2u * 3u + 8u * n + VRING_ALIGN - 1) & ~(size_t)(VRING_ALIGN - 1));
}

static int setup_queue(struct virtio_dev *vd, uint16_t index, struct virtq *q)
{
    aioixy_bar_write16(vd->bar, VP_QUEUE_SEL, index);
    uint16_t n = aioixy_bar_read16(vd->bar, VP_QUEUE_NUM);
    if (n == 0 || n == 0xffff)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: queue %u does not exist", vd->dev.name, index);
    if (n & (n - 1))
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: queue %u size %u is not a power of two",
                                vd->dev.name, index, n);
    int rc = aioixy_dma_alloc(&vd->dev.dma, vring_bytes(n), true, &q->mem);
    if (rc)
        return rc;
    q->size = n;
    q->index = index;
    uint8_t *base = q->mem.virt;
    q->desc = (struct vring_desc *)base;
    q->avail_flags = (uint16_t *)(base + 16u * n);
    q->avail_idx = q->avail_flags + 1;
    q->avail_ring = q->avail_flags + 2;
    size_t used_off = (16u * n + 2u * (3u + n) + VRING_ALIGN - 1) & ~(size_t)(VRING_ALIGN - 1);
    q->used_flags = (uint16_t *)(base + used_off);
    q->used_idx = q->used_flags + 1;
    q->used_ring = (struct vring_used_elem *)(q->used_flags + 2);
    q->free_ids = calloc(n, sizeof(*q->free_ids));
    q->bufs = calloc(n, sizeof(*q->bufs));
    if (!q->free_ids || !q->bufs)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    for (uint16_t i = 0; i < n; i++)
        q->free_ids[i] = (uint16_t)(n - 1 - i);
    q->n_free = n;
    if (q->mem.iova >> 44)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtqueue memory above 16 TiB cannot be given to a legacy device");
    /* legacy devices take the ring's page frame number (4 KiB pages) */
    aioixy_bar_write32(vd->bar, VP_QUEUE_PFN, (uint32_t)(q->mem.iova >> 12));
    return 0;
}

/* Publish avail entries [from, q->next_avail) and kick the device unless it opted out. */
static void publish(struct virtio_dev *vd, struct virtq *q)
{
    shared_store16(q->avail_idx, q->next_avail);
    /* the flag read must not pass the index store: the device could have set NO_NOTIFY after
     * seeing an older index, and then we would skip a kick it needs */
    atomic_thread_fence(memory_order_seq_cst);
    if (!(shared_load16(q->used_flags) & VRING_USED_F_NO_NOTIFY))
        aioixy_bar_write16(vd->bar, VP_QUEUE_NOTIFY, q->index);
}

static void rx_refill(struct virtio_dev *vd)
{
    struct virtq *q = &vd->q[Q_RX];
    struct aioixy_mempool *pool = vd->dev.pools[0];
    uint32_t room = aioixy_mempool_data_room(pool);
    struct aioixy_pkt_buf *b[64];
    bool added = false;
    while (q->n_free) {
        uint32_t want = q->n_free < 64 ? q->n_free : 64;
        uint32_t got = aioixy_mempool_alloc_bulk(pool, b, want);
        if (!got)
            break; /* pool exhausted: the ring runs short until buffers come back */
        for (uint32_t i = 0; i < got; i++) {
            uint16_t id = q->free_ids[--q->n_free];
            q->bufs[id] = b[i];
            q->desc[id].addr = aioixy_pkt_data_iova(b[i]) - NET_HDR_LEN;
            q->desc[id].len = NET_HDR_LEN + room;
            q->desc[id].flags = VRING_DESC_F_WRITE;
            q->desc[id].next = 0;
            q->avail_ring[q->next_avail++ & (q->size - 1)] = id;
        }
        added = true;
    }
    if (added)
        publish(vd, q);
}

static uint32_t virtio_rx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    (void)qid;
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    struct virtq *q = &vd->q[Q_RX];
    uint16_t used = shared_load16(q->used_idx);
    uint32_t got = 0;
    uint64_t bytes = 0;
    while (q->last_used != used && got < n) {
        struct vring_used_elem *e = &q->used_ring[q->last_used++ & (q->size - 1)];
        uint16_t id = (uint16_t)e->id;
        struct aioixy_pkt_buf *b = q->bufs[id];
        q->bufs[id] = NULL;
        q->free_ids[q->n_free++] = id;
        uint32_t len = e->len > NET_HDR_LEN ? e->len - NET_HDR_LEN : 0;
        b->len = len;
        bytes += len;
        bufs[got++] = b;
    }
    if (got) {
        aioixy_counter_add(&vd->rx.rx_packets, got);
        aioixy_counter_add(&vd->rx.rx_bytes, bytes);
        rx_refill(vd);
    } else if (q->n_free) {
        rx_refill(vd); /* retry after an earlier pool shortage */
    }
    return got;
}

static void tx_reclaim(struct virtio_dev *vd)
{
    struct virtq *q = &vd->q[Q_TX];
    uint16_t used = shared_load16(q->used_idx);
    uint32_t k = 0;
    while (q->last_used != used) {
        uint16_t id = (uint16_t)q->used_ring[q->last_used++ & (q->size - 1)].id;
        vd->scratch[k++] = q->bufs[id];
        q->bufs[id] = NULL;
        q->free_ids[q->n_free++] = id;
        if (k == AIOIXY_MAX_BATCH) {
            aioixy_mempool_free_bulk(vd->scratch, k);
            k = 0;
        }
    }
    if (k)
        aioixy_mempool_free_bulk(vd->scratch, k);
}

static uint32_t virtio_tx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    (void)qid;
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    struct virtq *q = &vd->q[Q_TX];
    tx_reclaim(vd);
    uint32_t i = 0;
    uint64_t bytes = 0;
    for (; i < n && q->n_free; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        uint16_t id = q->free_ids[--q->n_free];
        memset(b->data - NET_HDR_LEN, 0, NET_HDR_LEN); /* no offloads: an all-zero header */
        q->bufs[id] = b;
        q->desc[id].addr = aioixy_pkt_data_iova(b) - NET_HDR_LEN;
        q->desc[id].len = NET_HDR_LEN + b->len;
        q->desc[id].flags = 0;
        q->desc[id].next = 0;
        bytes += b->len;
        q->avail_ring[q->next_avail++ & (q->size - 1)] = id;
    }
    if (i) {
        publish(vd, q);
        aioixy_counter_add(&vd->tx.tx_packets, i);
        aioixy_counter_add(&vd->tx.tx_bytes, bytes);
    }
    return i;
}

static void virtio_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    memset(out, 0, sizeof(*out));
    out->rx_packets = atomic_load_explicit(&vd->rx.rx_packets, memory_order_relaxed);
    out->rx_bytes = atomic_load_explicit(&vd->rx.rx_bytes, memory_order_relaxed);
    out->tx_packets = atomic_load_explicit(&vd->tx.tx_packets, memory_order_relaxed);
    out->tx_bytes = atomic_load_explicit(&vd->tx.tx_bytes, memory_order_relaxed);
}

static void virtio_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    if (vd->features & NET_F_STATUS)
        out->up = aioixy_bar_read16(vd->bar, VP_CONFIG + 6) & NET_S_LINK_UP;
    else
        out->up = true; /* without the STATUS feature the link is defined to be up */
    out->speed_mbps = out->up ? 10000 : 0; /* virtio reports no speed; nominal, like Linux */
}

/* One command on the control queue: header (class, cmd), one data byte, device-written ack. */
static int ctrl_command(struct virtio_dev *vd, uint8_t cls, uint8_t cmd, uint8_t data)
{
    struct virtq *q = &vd->q[Q_CTRL];
    if (q->n_free < 3)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: control queue is full", vd->dev.name);
    uint8_t *m = vd->ctrl_mem.virt;
    m[0] = cls;
    m[1] = cmd;
    m[16] = data;
    m[32] = 0xff; /* ack: the device overwrites it */
    uint16_t ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = q->free_ids[--q->n_free];
    const uint32_t off[3] = {0, 16, 32}, len[3] = {2, 1, 1};
    for (int i = 0; i < 3; i++) {
        q->desc[ids[i]].addr = vd->ctrl_mem.iova + off[i];
        q->desc[ids[i]].len = len[i];
        q->desc[ids[i]].flags = (uint16_t)((i < 2 ? VRING_DESC_F_NEXT : 0) | (i == 2 ? VRING_DESC_F_WRITE : 0));
        q->desc[ids[i]].next = i < 2 ? ids[i + 1] : 0;
    }
    q->avail_ring[q->next_avail++ & (q->size - 1)] = ids[0];
    publish(vd, q);
    struct timespec ts = {0, 100000};
    for (int spin = 0; spin < 20000 && shared_load16(q->used_idx) == q->last_used; spin++)
        nanosleep(&ts, NULL);
    if (shared_load16(q->used_idx) == q->last_used)
        return aioixy_set_error(AIOIXY_ETIMEDOUT, "virtio %s: no answer on the control queue",
                                vd->dev.name);
    q->last_used++;
    for (int i = 2; i >= 0; i--)
        q->free_ids[q->n_free++] = ids[i];
    uint8_t ack = __atomic_load_n(&m[32], __ATOMIC_ACQUIRE);
    if (ack != CTRL_OK)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: the device refused control command "
                                "%u/%u (ack %u)", vd->dev.name, cls, cmd, ack);
    return 0;
}

static int virtio_promisc(struct aioixy_dev *dev, bool on)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    if (!vd->have_ctrl)
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: the device offers no control queue "
                                "with CTRL_RX, so promiscuous mode cannot be changed", dev->name);
    return ctrl_command(vd, CTRL_RX, CTRL_RX_PROMISC, on ? 1 : 0);
}

static void free_queue_mem(struct virtq *q, bool free_bufs)
{
    if (free_bufs && q->bufs)
        for (uint16_t i = 0; i < q->size; i++)
            if (q->bufs[i])
                aioixy_mempool_free(q->bufs[i]);
    free(q->bufs);
    free(q->free_ids);
    aioixy_dma_free(&q->mem);
    memset(q, 0, sizeof(*q));
}

static void device_reset(struct virtio_dev *vd)
{
    aioixy_bar_write8(vd->bar, VP_STATUS, 0);
    /* the reset is complete when status reads back 0; the device then no longer touches the
     * rings, so their buffers may be freed */
    for (int i = 0; i < 1000 && aioixy_bar_read8(vd->bar, VP_STATUS) != 0; i++)
        usleep(100);
}

static void virtio_close(struct aioixy_dev *dev)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    if (vd->bar >= 0) {
        device_reset(vd);
        close(vd->bar);
    }
    for (int i = 0; i < 3; i++)
        free_queue_mem(&vd->q[i], i != Q_CTRL);
    aioixy_dma_free(&vd->ctrl_mem);
    aioixy_dev_release_pools(dev);
    free(vd);
}

static const struct aioixy_dev_ops virtio_ops = {
    .driver = "virtio",
    .rx_batch = virtio_rx,
    .tx_batch = virtio_tx,
    .read_stats = virtio_stats,
    .link_status = virtio_link,
    .set_promisc = virtio_promisc,
    .close = virtio_close,
};

static int virtio_open(const char *addr, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    struct aioixy_pci_info info;
    int rc = aioixy_pci_info(addr, &info);
    if (rc)
        return rc;
    if (info.vendor != 0x1af4 || info.device != 0x1000 || (info.klass >> 16) != 0x02)
        return aioixy_set_error(AIOIXY_ENODEV, "%s (%04x:%04x, class %06x) is not a legacy virtio-net "
                                "device", addr, info.vendor, info.device, info.klass);
    if (cfg->rx_queues != 1 || cfg->tx_queues != 1)
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: a legacy virtio-net device has one rx and "
                                "one tx queue (asked for %u/%u)", addr, cfg->rx_queues, cfg->tx_queues);
    if ((rc = aioixy_pci_check_safe(&info, cfg->force)))
        return rc;
    if (geteuid() != 0)
        return aioixy_set_error(AIOIXY_EPERM, "virtio %s: driving a PCI device from user space "
                                "needs root (sysfs unbind, BAR access, physical addresses)", addr);
    struct virtio_dev *vd = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*vd) + 63) & ~(size_t)63);
    if (!vd)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(vd, 0, sizeof(*vd));
    vd->bar = -1;
    vd->dev.ops = &virtio_ops;
    snprintf(vd->dev.name, sizeof(vd->dev.name), "%s", addr);
    snprintf(vd->dev.driver, sizeof(vd->dev.driver), "virtio");
    vd->dev.num_rx_queues = 1;
    vd->dev.num_tx_queues = 1;
    vd->dev.dma.kind = DMA_HUGEPAGE;
    vd->dev.dma.vfio_container_fd = -1;
    /* no offloads negotiated: one Ethernet frame of at most MTU 1500 plus a VLAN tag */
    vd->dev.min_tx_len = 14;
    vd->dev.max_tx_len = 1518;

    /* hugepages first: failing for lack of them must not leave the device unbound */
    if ((rc = aioixy_dev_create_pools(&vd->dev, cfg)))
        goto fail;
    if ((rc = aioixy_dma_alloc(&vd->dev.dma, 64, true, &vd->ctrl_mem)))
        goto fail;
    if ((rc = aioixy_pci_unbind(&info)))
        goto fail;
    if ((rc = aioixy_pci_enable_dma(addr)))
        goto fail;
    if ((vd->bar = aioixy_pci_open_bar(addr, 0)) < 0) {
        rc = vd->bar;
        goto fail;
    }
    /* always from a reset: a previous user may have died with the queues live */
    device_reset(vd);
    if (aioixy_bar_read8(vd->bar, VP_STATUS) != 0) {
        rc = aioixy_set_error(AIOIXY_ETIMEDOUT, "virtio %s: device did not reset", addr);
        goto fail;
    }
    aioixy_bar_write8(vd->bar, VP_STATUS, ST_ACKNOWLEDGE);
    aioixy_bar_write8(vd->bar, VP_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);
    uint32_t host = aioixy_bar_read32(vd->bar, VP_HOST_FEATURES);
    vd->features = host & (NET_F_MAC | NET_F_STATUS | NET_F_CTRL_VQ | NET_F_CTRL_RX);
    aioixy_bar_write32(vd->bar, VP_GUEST_FEATURES, vd->features);
    vd->have_ctrl = (vd->features & (NET_F_CTRL_VQ | NET_F_CTRL_RX)) == (NET_F_CTRL_VQ | NET_F_CTRL_RX);
    if ((rc = setup_queue(vd, Q_RX, &vd->q[Q_RX])) || (rc = setup_queue(vd, Q_TX, &vd->q[Q_TX])))
        goto fail;
    if (vd->have_ctrl && (rc = setup_queue(vd, Q_CTRL, &vd->q[Q_CTRL])))
        goto fail;
    /* we poll, so ask the device not to interrupt (it may still, harmlessly: MSI-X is off) */
    shared_store16(vd->q[Q_RX].avail_flags, VRING_AVAIL_F_NO_INTERRUPT);
    shared_store16(vd->q[Q_TX].avail_flags, VRING_AVAIL_F_NO_INTERRUPT);
    aioixy_bar_write8(vd->bar, VP_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_DRIVER_OK);
    if (aioixy_bar_read8(vd->bar, VP_STATUS) & ST_FAILED) {
        rc = aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: device set FAILED during initialization", addr);
        goto fail;
    }
    if (vd->features & NET_F_MAC)
        for (int i = 0; i < 6; i++)
            vd->dev.mac[i] = aioixy_bar_read8(vd->bar, VP_CONFIG + i);
    rx_refill(vd);
    if (vd->have_ctrl) {
        /* say it explicitly: devices differ in their reset default (QEMU's is promiscuous) */
        if ((rc = ctrl_command(vd, CTRL_RX, CTRL_RX_PROMISC, cfg->promisc ? 1 : 0)))
            goto fail;
        vd->dev.promisc = cfg->promisc;
    } else {
        vd->dev.promisc = true; /* without CTRL_RX the device filters nothing */
    }
    *out = &vd->dev;
    return 0;
fail:
    virtio_close(&vd->dev);
    return rc;
}

static const struct aioixy_pci_id virtio_ids[] = {{0x1af4, 0x1000}, {0, 0}};

static struct aioixy_driver virtio_driver = {
    .name = "virtio",
    .pci_ids = virtio_ids,
    .open = virtio_open,
};
AIOIXY_REGISTER_DRIVER(virtio_driver)
