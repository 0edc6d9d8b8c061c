/* User-space driver for virtio-net PCI devices, written from the VirtIO 1.x specification
 * (section 5.1 the network device, 4.1 the PCI transport, 2.7/2.8 virtqueues).
 *
 * Devices: 1af4:1041 (modern only: what QEMU puts behind a PCIe port) and 1af4:1000 (legacy,
 * or transitional with both interfaces). Which interface is used (docs/virtio.md):
 *  - 1041: modern;
 *  - 1000: modern if the function lists the modern capabilities, else legacy;
 *  - options="transport=legacy" / "transport=modern" forces one (an error if absent).
 * Transports: virtio_legacy.c, virtio_pci_modern.c. Rings: virtqueue.h (split, or packed with
 * options="ring=packed" on a device offering VIRTIO_F_RING_PACKED).
 *
 * Shape of the driver:
 *  - queue pair p is rx virtqueue 2p and tx virtqueue 2p+1, driven by poller p; the control
 *    queue comes after the last pair (5.1.2). More than one pair needs VIRTIO_NET_F_MQ; then
 *    VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, or, if the device offers VIRTIO_NET_F_RSS, an RSS
 *    configuration (5.1.6.5.7) that spreads flows over the pairs (options="rss=...").
 *  - every packet buffer is one descriptor: the virtio_net_hdr (10 bytes legacy, 12 modern:
 *    num_buffers is always there with VIRTIO_F_VERSION_1, 5.1.6) sits in the mempool headroom
 *    right before the packet data, so the device writes/reads header + frame in one go;
 *  - we poll: no interrupts asked for, no MSI-X vector given to any queue.
 */
#include "device.h"
#include "virtio_pci.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NET_F_MAC (1ull << 5)
#define NET_F_STATUS (1ull << 16)
#define NET_F_CTRL_VQ (1ull << 17)
#define NET_F_CTRL_RX (1ull << 18)
#define NET_F_MQ (1ull << 22)
#define NET_F_RSS (1ull << 60)

/* device configuration (5.1.4), byte offsets */
#define NCFG_MAC 0
#define NCFG_STATUS 6
#define NCFG_MAX_PAIRS 8
#define NCFG_RSS_KEY 17
#define NCFG_RSS_TABLE 18
#define NCFG_HASH_TYPES 20
#define NET_S_LINK_UP 1u

#define HDR_LEN_LEGACY 10u /* struct virtio_net_hdr without MRG_RXBUF */
#define HDR_LEN_MODERN 12u /* ... with num_buffers, always present under VERSION_1 */

#define CTRL_RX 0
#define CTRL_RX_PROMISC 0
#define CTRL_MQ 4
#define CTRL_MQ_VQ_PAIRS_SET 0
#define CTRL_MQ_RSS_CONFIG 1
#define CTRL_OK 0
/* control buffer layout: header, data, ack */
#define CTRL_DATA 64u
#define CTRL_DATA_MAX 896u
#define CTRL_ACK 960u
#define CTRL_BYTES 1024u

#define RSS_HASH_TYPES 0x3fu /* IPv4, TCPv4, UDPv4, IPv6, TCPv6, UDPv6 (5.1.6.5.7.1) */
#define RSS_TABLE_MAX 128u
#define RSS_KEY_LEN 40u

struct vio_pair {
    struct virtq rx, tx;
    _Atomic uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
    struct aioixy_pkt_buf *scratch[AIOIXY_MAX_BATCH]; /* tx reclaim */
} AIOIXY_CACHE_ALIGNED;

struct virtio_dev {
    struct aioixy_dev dev;
    struct vio_pci t;
    uint64_t features;
    uint32_t hdr_len;
    uint16_t pairs;
    bool have_ctrl, rss;
    struct virtq ctrl;
    struct aioixy_dma_mem ctrl_mem; /* command buffers for the control queue */
    struct vio_pair *qp;            /* `pairs` of them, cache aligned */
};

static const uint8_t rss_key[RSS_KEY_LEN] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static void rx_refill(struct virtio_dev *vd, struct virtq *q, struct aioixy_mempool *pool)
{
    uint32_t room = aioixy_mempool_data_room(pool);
    struct aioixy_pkt_buf *b[64];
    while (q->n_free) {
        uint32_t want = q->n_free < 64 ? q->n_free : 64;
        uint32_t got = aioixy_mempool_alloc_bulk(pool, b, want);
        if (!got)
            break; /* pool exhausted: the ring runs short until buffers come back */
        for (uint32_t i = 0; i < got; i++)
            vq_add(q, aioixy_pkt_data_iova(b[i]) - vd->hdr_len, vd->hdr_len + room, true, b[i]);
    }
    vq_publish(q);
}

static uint32_t virtio_rx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    struct vio_pair *p = &vd->qp[qid];
    uint32_t got = 0, len;
    uint64_t bytes = 0;
    struct aioixy_pkt_buf *b;
    while (got < n && vq_pop(&p->rx, &b, &len)) {
        len = len > vd->hdr_len ? len - vd->hdr_len : 0;
        b->len = len;
        bytes += len;
        bufs[got++] = b;
    }
    if (got) {
        aioixy_counter_add(&p->rx_packets, got);
        aioixy_counter_add(&p->rx_bytes, bytes);
    }
    if (p->rx.n_free)
        rx_refill(vd, &p->rx, dev->pools[qid]); /* also retries after a pool shortage */
    return got;
}

static void tx_reclaim(struct vio_pair *p)
{
    uint32_t k = 0, len;
    struct aioixy_pkt_buf *b;
    while (vq_pop(&p->tx, &b, &len)) {
        p->scratch[k++] = b;
        if (k == AIOIXY_MAX_BATCH) {
            aioixy_mempool_free_bulk(p->scratch, k);
            k = 0;
        }
    }
    if (k)
        aioixy_mempool_free_bulk(p->scratch, k);
}

static uint32_t virtio_tx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    struct vio_pair *p = &vd->qp[qid];
    struct virtq *q = &p->tx;
    tx_reclaim(p);
    uint32_t i = 0;
    uint64_t bytes = 0;
    for (; i < n && q->n_free; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        memset(b->data - vd->hdr_len, 0, vd->hdr_len); /* no offloads: an all-zero header */
        vq_add(q, aioixy_pkt_data_iova(b) - vd->hdr_len, vd->hdr_len + b->len, false, b);
        bytes += b->len;
    }
    if (i) {
        vq_publish(q);
        aioixy_counter_add(&p->tx_packets, i);
        aioixy_counter_add(&p->tx_bytes, bytes);
    }
    return i;
}

static void add_extra(struct aioixy_dev_stats *out, const char *name, uint64_t v)
{
    if (out->num_extra >= AIOIXY_STATS_EXTRA)
        return;
    snprintf(out->extra[out->num_extra].name, sizeof(out->extra[0].name), "%s", name);
    out->extra[out->num_extra++].value = v;
}

static void virtio_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    memset(out, 0, sizeof(*out));
    uint64_t notifies = 0;
    for (uint16_t i = 0; i < vd->pairs; i++) {
        struct vio_pair *p = &vd->qp[i];
        out->rx_packets += atomic_load_explicit(&p->rx_packets, memory_order_relaxed);
        out->rx_bytes += atomic_load_explicit(&p->rx_bytes, memory_order_relaxed);
        out->tx_packets += atomic_load_explicit(&p->tx_packets, memory_order_relaxed);
        out->tx_bytes += atomic_load_explicit(&p->tx_bytes, memory_order_relaxed);
        notifies += atomic_load_explicit(&p->rx.notifies, memory_order_relaxed) +
                    atomic_load_explicit(&p->tx.notifies, memory_order_relaxed);
    }
    /* what was negotiated, so a caller (and the tests) can see which path runs */
    add_extra(out, "modern", vd->t.modern);
    add_extra(out, "packed", !!(vd->features & VIO_F_RING_PACKED));
    add_extra(out, "event_idx", !!(vd->features & VIO_F_EVENT_IDX));
    add_extra(out, "queue_pairs", vd->pairs);
    add_extra(out, "rss", vd->rss);
    add_extra(out, "notifies", notifies);
}

static void virtio_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    if (vd->features & NET_F_STATUS) {
        uint16_t st;
        vio_config_read(&vd->t, NCFG_STATUS, &st, 2);
        out->up = st & NET_S_LINK_UP;
    } else {
        out->up = true; /* without the STATUS feature the link is defined to be up */
    }
    out->speed_mbps = out->up ? 10000 : 0; /* virtio reports no speed; nominal, like Linux */
}

/* One command on the control queue (5.1.6.5): header (class, cmd), the data, and an ack byte
 * the device writes. Waits up to 2 s for it. */
static int ctrl_command(struct virtio_dev *vd, uint8_t cls, uint8_t cmd, const void *data,
                        uint32_t len)
{
    if (len == 0 || len > CTRL_DATA_MAX)
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: control data of %u bytes", vd->dev.name, len);
    uint8_t *m = vd->ctrl_mem.virt;
    m[0] = cls;
    m[1] = cmd;
    memcpy(m + CTRL_DATA, data, len);
    m[CTRL_ACK] = 0xff; /* the device overwrites it */
    const uint64_t addr[3] = {vd->ctrl_mem.iova, vd->ctrl_mem.iova + CTRL_DATA,
                              vd->ctrl_mem.iova + CTRL_ACK};
    const uint32_t lens[3] = {2, len, 1};
    const bool writes[3] = {false, false, true};
    int rc = vq_add_chain(&vd->ctrl, 3, addr, lens, writes);
    if (rc)
        return rc;
    struct aioixy_pkt_buf *none;
    uint32_t used_len;
    struct timespec ts = {0, 100000};
    bool done = false;
    for (int spin = 0; spin < 20000 && !(done = vq_pop(&vd->ctrl, &none, &used_len)); spin++)
        nanosleep(&ts, NULL);
    if (!done)
        return aioixy_set_error(AIOIXY_ETIMEDOUT, "virtio %s: no answer on the control queue",
                                vd->dev.name);
    uint8_t ack = __atomic_load_n(&m[CTRL_ACK], __ATOMIC_ACQUIRE);
    if (ack != CTRL_OK)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: the device refused control command "
                                "%u/%u (ack %u)", vd->dev.name, cls, cmd, ack);
    return 0;
}

static int virtio_promisc(struct aioixy_dev *dev, bool on)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    if (!(vd->features & NET_F_CTRL_RX) || !vd->have_ctrl)
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: the device offers no control queue "
                                "with CTRL_RX, so promiscuous mode cannot be changed", dev->name);
    uint8_t v = on ? 1 : 0;
    return ctrl_command(vd, CTRL_RX, CTRL_RX_PROMISC, &v, 1);
}

static void virtio_close(struct aioixy_dev *dev)
{
    struct virtio_dev *vd = (struct virtio_dev *)dev;
    /* reset first: after that the device no longer touches the rings */
    (void)vio_reset(&vd->t);
    vio_close(&vd->t);
    if (vd->qp)
        for (uint16_t i = 0; i < vd->pairs; i++) {
            vq_free(&vd->qp[i].rx);
            vq_free(&vd->qp[i].tx);
        }
    free(vd->qp);
    vq_free(&vd->ctrl);
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

struct vio_opts {
    int transport;          /* 0 auto, 1 legacy, 2 modern */
    bool packed, event_idx;
    bool rss_off;
    uint16_t rss_list[AIOIXY_MAX_QUEUES];
    uint16_t rss_n;         /* 0: every pair */
};

static int parse_opts(const char *addr, const struct aioixy_dev_config *cfg, struct vio_opts *o)
{
    char v[AIOIXY_OPT_VALUE_MAX + 1];
    memset(o, 0, sizeof(*o));
    o->event_idx = true;
    if (aioixy_opt_get(cfg->options, "transport", v, sizeof(v))) {
        if (strcmp(v, "legacy") == 0)
            o->transport = 1;
        else if (strcmp(v, "modern") == 0)
            o->transport = 2;
        else if (strcmp(v, "auto") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: transport=%s: expected legacy, "
                                    "modern or auto", addr, v);
    }
    if (aioixy_opt_get(cfg->options, "ring", v, sizeof(v))) {
        if (strcmp(v, "packed") == 0)
            o->packed = true;
        else if (strcmp(v, "split") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: ring=%s: expected split or packed",
                                    addr, v);
    }
    if (aioixy_opt_get(cfg->options, "event_idx", v, sizeof(v))) {
        if (strcmp(v, "off") == 0)
            o->event_idx = false;
        else if (strcmp(v, "on") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: event_idx=%s: expected on or off",
                                    addr, v);
    }
    if (aioixy_opt_get(cfg->options, "rss", v, sizeof(v))) {
        /* "off", "on" (every pair) or the rx queues to steer to, "1:3" */
        if (strcmp(v, "off") == 0) {
            o->rss_off = true;
        } else if (strcmp(v, "on") != 0) {
            for (char *s = v, *end; *s; s = *end ? end + 1 : end) {
                unsigned long q = strtoul(s, &end, 10);
                if (end == s || (*end && *end != ':') || q >= cfg->rx_queues ||
                    o->rss_n == AIOIXY_MAX_QUEUES)
                    return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: rss=%s: expected off, on "
                                            "or rx queue numbers below %u separated by ':'",
                                            addr, v, cfg->rx_queues);
                o->rss_list[o->rss_n++] = (uint16_t)q;
            }
        }
    }
    return 0;
}

static int setup_vq(struct virtio_dev *vd, struct virtq *q, uint16_t index)
{
    uint16_t n = vio_queue_max(&vd->t, index);
    if (n == 0)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: queue %u does not exist", vd->dev.name, index);
    bool packed = vd->features & VIO_F_RING_PACKED;
    int rc = vq_alloc(q, &vd->dev.dma, index, n, packed, vd->features & VIO_F_EVENT_IDX);
    return rc ? rc : vio_queue_setup(&vd->t, q);
}

/* Several pairs: tell the device how many (and, with RSS, how to spread flows over them). */
static int setup_pairs(struct virtio_dev *vd, const struct vio_opts *o)
{
    if (!vd->rss) {
        uint16_t n = vd->pairs;
        return ctrl_command(vd, CTRL_MQ, CTRL_MQ_VQ_PAIRS_SET, &n, 2);
    }
    uint16_t table_len, max_table;
    uint8_t max_key;
    uint32_t types;
    vio_config_read(&vd->t, NCFG_RSS_TABLE, &max_table, 2);
    vio_config_read(&vd->t, NCFG_RSS_KEY, &max_key, 1);
    vio_config_read(&vd->t, NCFG_HASH_TYPES, &types, 4);
    for (table_len = RSS_TABLE_MAX; table_len > max_table && table_len > 1; table_len /= 2)
        ;
    uint8_t key_len = max_key < RSS_KEY_LEN ? max_key : RSS_KEY_LEN;
    /* virtio_net_rss_config: hash_types, indirection_table_mask, unclassified_queue,
     * indirection_table[], max_tx_vq, hash_key_length, hash_key_data[] (5.1.6.5.7.1) */
    uint8_t buf[CTRL_DATA_MAX];
    size_t off = 0;
    uint32_t ht = types & RSS_HASH_TYPES;
    uint16_t mask = (uint16_t)(table_len - 1);
    /* only queues someone polls: with fewer rx than tx queues the extra pairs' rx stays idle */
    uint16_t nq = o->rss_n ? o->rss_n : vd->dev.num_rx_queues;
    uint16_t first = o->rss_n ? o->rss_list[0] : 0;
    memcpy(buf + off, &ht, 4), off += 4;
    memcpy(buf + off, &mask, 2), off += 2;
    memcpy(buf + off, &first, 2), off += 2;
    for (uint16_t i = 0; i < table_len; i++) {
        uint16_t q = o->rss_n ? o->rss_list[i % nq] : (uint16_t)(i % nq);
        memcpy(buf + off, &q, 2), off += 2;
    }
    uint16_t tx = vd->pairs;
    memcpy(buf + off, &tx, 2), off += 2;
    buf[off++] = key_len;
    memcpy(buf + off, rss_key, key_len), off += key_len;
    return ctrl_command(vd, CTRL_MQ, CTRL_MQ_RSS_CONFIG, buf, (uint32_t)off);
}

static int negotiate(struct virtio_dev *vd, const struct vio_opts *o)
{
    const char *addr = vd->dev.name;
    uint64_t host = vio_device_features(&vd->t);
    uint64_t want = NET_F_MAC | NET_F_STATUS | NET_F_CTRL_VQ | NET_F_CTRL_RX;
    if (vd->t.modern) {
        if (!(host & VIO_F_VERSION_1))
            return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: the modern interface does not offer "
                                    "VIRTIO_F_VERSION_1", addr);
        /* ACCESS_PLATFORM: without an IOMMU the platform's translation is the identity, so
         * physical addresses stay right; a device that offers it may refuse FEATURES_OK
         * without it. NOTIFICATION_DATA is not accepted (docs/virtio.md). */
        want |= VIO_F_VERSION_1 | VIO_F_ACCESS_PLATFORM;
        if (o->event_idx)
            want |= VIO_F_EVENT_IDX;
        if (o->packed) {
            if (!(host & VIO_F_RING_PACKED))
                return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: ring=packed, but the device does "
                                        "not offer VIRTIO_F_RING_PACKED (QEMU: packed=on)", addr);
            want |= VIO_F_RING_PACKED;
        }
        if (vd->pairs > 1) {
            if ((host & (NET_F_MQ | NET_F_CTRL_VQ)) != (NET_F_MQ | NET_F_CTRL_VQ))
                return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: %u queue pairs asked for, but the "
                                        "device does not offer VIRTIO_NET_F_MQ (QEMU: mq=on and a "
                                        "netdev with queues=N)", addr, vd->pairs);
            want |= NET_F_MQ;
            if (!o->rss_off)
                want |= NET_F_RSS;
        }
    }
    vd->features = host & want;
    if (vd->t.modern && vd->pairs > 1) {
        /* max_virtqueue_pairs is valid once MQ is offered (read before FEATURES_OK is fine) */
        uint16_t max;
        vio_config_read(&vd->t, NCFG_MAX_PAIRS, &max, 2);
        if (max < vd->pairs)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: %u queue pairs asked for, the device "
                                    "has %u", addr, vd->pairs, max);
    }
    if (o->rss_n && !(vd->features & NET_F_RSS))
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: rss=... needs several queue pairs and a "
                                "device offering VIRTIO_NET_F_RSS (QEMU: rss=on)", addr);
    vd->rss = vd->features & NET_F_RSS;
    vd->have_ctrl = (vd->features & NET_F_CTRL_VQ) != 0;
    return vio_set_features(&vd->t, vd->features);
}

static int virtio_open(const char *addr, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    struct aioixy_pci_info info;
    int rc = aioixy_pci_info(addr, &info);
    if (rc)
        return rc;
    if (info.vendor != 0x1af4 || (info.device != 0x1000 && info.device != 0x1041) ||
        (info.klass >> 16) != 0x02)
        return aioixy_set_error(AIOIXY_ENODEV, "%s (%04x:%04x, class %06x) is not a virtio-net "
                                "device", addr, info.vendor, info.device, info.klass);
    struct vio_opts o;
    if ((rc = parse_opts(addr, cfg, &o)))
        return rc;
    bool modern;
    if (info.device == 0x1041) {
        if (o.transport == 1)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: transport=legacy, but 1af4:1041 is "
                                    "a modern-only device", addr);
        modern = true;
    } else {
        modern = o.transport == 2 || (o.transport == 0 && vio_modern_present(addr));
    }
    uint16_t pairs = cfg->rx_queues > cfg->tx_queues ? cfg->rx_queues : cfg->tx_queues;
    if (!modern) {
        if (pairs != 1)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: the legacy interface drives one rx "
                                    "and one tx queue (asked for %u/%u); several need the modern "
                                    "interface", addr, cfg->rx_queues, cfg->tx_queues);
        if (o.packed)
            return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: ring=packed needs the modern "
                                    "interface (the legacy one has split rings only)", addr);
        if ((rc = aioixy_pci_check_safe(&info, cfg->force)))
            return rc;
        if (geteuid() != 0)
            return aioixy_set_error(AIOIXY_EPERM, "virtio %s: driving a PCI device from user space "
                                    "needs root (sysfs unbind, BAR access, physical addresses)", addr);
    }
    struct virtio_dev *vd = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*vd) + 63) & ~(size_t)63);
    if (!vd)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(vd, 0, sizeof(*vd));
    vd->t.iofd = -1;
    /* nothing claimed yet: a failure before the claim must not close fd 0 */
    vd->t.claim.vfio.container = vd->t.claim.vfio.group = vd->t.claim.vfio.device = -1;
    vd->ctrl.notify_fd = -1;
    vd->dev.ops = &virtio_ops;
    snprintf(vd->dev.name, sizeof(vd->dev.name), "%s", addr);
    snprintf(vd->dev.driver, sizeof(vd->dev.driver), "virtio");
    vd->t.name = vd->dev.name;
    vd->pairs = pairs;
    vd->dev.num_rx_queues = cfg->rx_queues;
    vd->dev.num_tx_queues = cfg->tx_queues;
    vd->dev.dma.kind = DMA_HUGEPAGE;
    vd->dev.dma.vfio_container_fd = -1;
    /* no offloads negotiated: one Ethernet frame of at most MTU 1500 plus a VLAN tag */
    vd->dev.min_tx_len = 14;
    vd->dev.max_tx_len = 1518;
    vd->hdr_len = modern ? HDR_LEN_MODERN : HDR_LEN_LEGACY;
    size_t qp_bytes = ((sizeof(struct vio_pair) * pairs) + 63) & ~(size_t)63;
    vd->qp = aligned_alloc(AIOIXY_CACHE_LINE, qp_bytes);
    if (!vd->qp) {
        free(vd);
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    }
    memset(vd->qp, 0, qp_bytes);
    for (uint16_t i = 0; i < pairs; i++)
        vd->qp[i].rx.notify_fd = vd->qp[i].tx.notify_fd = -1;

    if (modern && (rc = vio_modern_probe(addr, cfg->force, &vd->t)))
        goto fail;
    /* hugepages first: failing for lack of them must not leave the device unbound */
    if ((rc = aioixy_dev_create_pools(&vd->dev, cfg)))
        goto fail;
    if ((rc = aioixy_dma_alloc(&vd->dev.dma, CTRL_BYTES, true, &vd->ctrl_mem)))
        goto fail;
    if ((rc = modern ? vio_modern_claim(&vd->t, cfg->force) : vio_legacy_open(&info, &vd->t)))
        goto fail;
    /* always from a reset: a previous user may have died with the queues live */
    if ((rc = vio_reset(&vd->t)))
        goto fail;
    vio_set_status(&vd->t, VIO_ST_ACKNOWLEDGE);
    vio_set_status(&vd->t, VIO_ST_ACKNOWLEDGE | VIO_ST_DRIVER);
    if ((rc = negotiate(vd, &o)))
        goto fail;
    for (uint16_t i = 0; i < pairs; i++) {
        if ((rc = setup_vq(vd, &vd->qp[i].rx, (uint16_t)(2 * i))) ||
            (rc = setup_vq(vd, &vd->qp[i].tx, (uint16_t)(2 * i + 1))))
            goto fail;
        /* we poll, so ask the device not to interrupt (no vector is routed anyway) */
        vq_no_interrupts(&vd->qp[i].rx);
        vq_no_interrupts(&vd->qp[i].tx);
    }
    if (vd->have_ctrl) {
        uint16_t ctrl_index = 2;
        if (vd->features & NET_F_MQ) {
            uint16_t max;
            vio_config_read(&vd->t, NCFG_MAX_PAIRS, &max, 2);
            ctrl_index = (uint16_t)(2 * max);
        }
        if ((rc = setup_vq(vd, &vd->ctrl, ctrl_index)))
            goto fail;
        vq_no_interrupts(&vd->ctrl);
    }
    uint8_t st = vio_get_status(&vd->t);
    vio_set_status(&vd->t, st | VIO_ST_DRIVER_OK);
    if (vio_get_status(&vd->t) & VIO_ST_FAILED) {
        rc = aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: device set FAILED during initialization", addr);
        goto fail;
    }
    if (vd->features & NET_F_MAC)
        vio_config_read(&vd->t, NCFG_MAC, vd->dev.mac, 6);
    for (uint16_t i = 0; i < pairs; i++)
        rx_refill(vd, &vd->qp[i].rx, vd->dev.pools[i]);
    if (vd->features & NET_F_CTRL_RX && vd->have_ctrl) {
        /* say it explicitly: devices differ in their reset default (QEMU's is promiscuous) */
        uint8_t v = cfg->promisc ? 1 : 0;
        if ((rc = ctrl_command(vd, CTRL_RX, CTRL_RX_PROMISC, &v, 1)))
            goto fail;
        vd->dev.promisc = cfg->promisc;
    } else {
        vd->dev.promisc = true; /* without CTRL_RX the device filters nothing */
    }
    if (pairs > 1 && (rc = setup_pairs(vd, &o)))
        goto fail;
    *out = &vd->dev;
    return 0;
fail:
    virtio_close(&vd->dev);
    return rc;
}

static const struct aioixy_pci_id virtio_ids[] = {{0x1af4, 0x1000}, {0x1af4, 0x1041}, {0, 0}};
static const char *const virtio_options[] = {"transport", "ring", "event_idx", "rss", NULL};

static struct aioixy_driver virtio_driver = {
    .name = "virtio",
    .pci_ids = virtio_ids,
    .open = virtio_open,
    .options = virtio_options,
};
AIOIXY_REGISTER_DRIVER(virtio_driver)
