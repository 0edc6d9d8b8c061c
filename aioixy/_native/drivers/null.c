/* The "null" software device: an infinitely fast NIC on a wire that never ends.
 *
 * rx: every call returns a full batch of valid Ethernet/IPv4/UDP frames of the configured size
 *     ("null:size=N" or cfg->pkt_size, default 60 bytes) built from a template. Each rx queue
 *     numbers its packets: the test frame of frames.h, sequence numbers starting at 0. When the queue's pool has no free
 *     buffer the shortfall is counted in rx_missed, as a NIC counts frames it had no buffer for.
 * tx: counts packets and bytes, then frees the buffers.
 * Link is always up; promiscuous mode is accepted and has nothing to change.
 */
#include "device.h"
#include "frames.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


struct null_queue {
    /* written by exactly one poller; read by read_stats from other threads */
    _Atomic uint64_t rx_packets, rx_bytes, rx_missed;
    _Atomic uint64_t tx_packets, tx_bytes;
    uint64_t seq;
} AIOIXY_CACHE_ALIGNED;

struct null_dev {
    struct aioixy_dev dev;
    uint32_t pkt_size;
    uint8_t tmpl[AIOIXY_DEFAULT_BUF_SIZE] AIOIXY_CACHE_ALIGNED;
    struct null_queue q[AIOIXY_MAX_QUEUES];
};

static void build_template(struct null_dev *nd)
{
    memset(nd->tmpl, 0, sizeof(nd->tmpl));
    struct aioixy_frame_addrs a = {
        .dst_mac = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02},
        .src_ip = {198, 18, 0, 1},
        .dst_ip = {198, 18, 0, 2},
        .src_port = 1234,
        .dst_port = 5678,
    };
    memcpy(a.src_mac, nd->dev.mac, 6);
    aioixy_frame_headers(nd->tmpl, nd->pkt_size, &a);
    for (uint32_t i = AIOIXY_FRAME_SEQ_OFFSET + AIOIXY_FRAME_SEQ_LEN; i < nd->pkt_size; i++)
        nd->tmpl[i] = (uint8_t)i;
}

static uint32_t null_rx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct null_dev *nd = (struct null_dev *)dev;
    struct null_queue *q = &nd->q[qid];
    struct aioixy_mempool *pool = dev->pools[qid];
    uint32_t got = aioixy_mempool_alloc_bulk(pool, bufs, n);
    if (aioixy_unlikely(got == 0)) {
        uint32_t avail = aioixy_mempool_free_count(pool);
        if (avail && avail < n)
            got = aioixy_mempool_alloc_bulk(pool, bufs, avail);
        aioixy_counter_add(&q->rx_missed, n - got);
        if (!got)
            return 0;
    }
    const uint32_t size = nd->pkt_size;
    uint64_t seq = q->seq;
    for (uint32_t i = 0; i < got; i++) {
        uint8_t *d = bufs[i]->data;
        memcpy(d, nd->tmpl, size);
        aioixy_frame_set_seq(d, seq++);
        bufs[i]->len = size;
    }
    q->seq = seq;
    aioixy_counter_add(&q->rx_packets, got);
    aioixy_counter_add(&q->rx_bytes, (uint64_t)got * size);
    return got;
}

static uint32_t null_tx(struct aioixy_dev *dev, uint16_t qid, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct null_dev *nd = (struct null_dev *)dev;
    struct null_queue *q = &nd->q[qid];
    if (n == 0)
        return 0;
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += bufs[i]->len;
    aioixy_mempool_free_bulk(bufs, n);
    aioixy_counter_add(&q->tx_packets, n);
    aioixy_counter_add(&q->tx_bytes, bytes);
    return n;
}

static void null_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct null_dev *nd = (struct null_dev *)dev;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++) {
        struct null_queue *q = &nd->q[i];
        out->rx_packets += atomic_load_explicit(&q->rx_packets, memory_order_relaxed);
        out->rx_bytes += atomic_load_explicit(&q->rx_bytes, memory_order_relaxed);
        out->rx_missed += atomic_load_explicit(&q->rx_missed, memory_order_relaxed);
        out->tx_packets += atomic_load_explicit(&q->tx_packets, memory_order_relaxed);
        out->tx_bytes += atomic_load_explicit(&q->tx_bytes, memory_order_relaxed);
    }
}

static void null_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    (void)dev;
    out->up = true;
    out->speed_mbps = 10000;
}

static int null_promisc(struct aioixy_dev *dev, bool on)
{
    dev->promisc = on;
    return 0;
}

/* The source always has frames while its pool has buffers; buffers come back from Python with
 * no signal, so an empty pool takes the timed back-off. tx frees at once: nothing to reclaim. */
static int null_poll_fd(struct aioixy_dev *dev, uint16_t q, short *events)
{
    (void)events;
    return aioixy_mempool_free_count(dev->pools[q]) ? AIOIXY_POLL_RX_READY : AIOIXY_POLL_TIMED;
}

static void null_close(struct aioixy_dev *dev)
{
    aioixy_dev_release_pools(dev);
    free(dev);
}

static const struct aioixy_dev_ops null_ops = {
    .driver = "null",
    .rx_batch = null_rx,
    .tx_batch = null_tx,
    .read_stats = null_stats,
    .link_status = null_link,
    .set_promisc = null_promisc,
    .poll_fd = null_poll_fd,
    .close = null_close,
};

static const char *const null_options[] = {"size", NULL};

static int null_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    uint32_t size = cfg->pkt_size ? cfg->pkt_size : AIOIXY_FRAME_MIN;
    uint32_t room = (cfg->buf_size ? cfg->buf_size : AIOIXY_DEFAULT_BUF_SIZE) - AIOIXY_PKT_HEADER;
    if (room > AIOIXY_DEFAULT_BUF_SIZE)
        room = AIOIXY_DEFAULT_BUF_SIZE;
    /* "null:size=128": the name's tail holds options too (checked here: the registry only
     * sees cfg->options); the name's win over cfg->options */
    const char *tail = strchr(name, ':') ? strchr(name, ':') + 1 : NULL;
    int rc = aioixy_opt_check(tail, null_options, "null");
    if (rc)
        return rc;
    uint64_t v;
    rc = aioixy_opt_u64(tail, "size", AIOIXY_FRAME_MIN, room, &v, "null");
    if (rc == 0)
        rc = aioixy_opt_u64(cfg->options, "size", AIOIXY_FRAME_MIN, room, &v, "null");
    if (rc < 0)
        return rc;
    if (rc == 1)
        size = (uint32_t)v;
    if (size < AIOIXY_FRAME_MIN || size > room)
        return aioixy_set_error(AIOIXY_EINVAL, "null: packet size %u must be in %u..%u bytes", size,
                                AIOIXY_FRAME_MIN, room);
    struct null_dev *nd = aligned_alloc(AIOIXY_CACHE_LINE, sizeof(*nd));
    if (!nd)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(nd, 0, sizeof(*nd));
    nd->dev.ops = &null_ops;
    snprintf(nd->dev.name, sizeof(nd->dev.name), "%s", name);
    snprintf(nd->dev.driver, sizeof(nd->dev.driver), "null");
    nd->dev.num_rx_queues = cfg->rx_queues;
    nd->dev.num_tx_queues = cfg->tx_queues;
    static const uint8_t mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};
    memcpy(nd->dev.mac, mac, 6);
    nd->dev.promisc = cfg->promisc;
    nd->dev.dma.kind = DMA_HOST; /* no device reads these buffers: the CPU frees them */
    nd->dev.dma.vfio_container_fd = -1;
    nd->dev.min_tx_len = 14; /* an Ethernet header; no upper limit but the buffer */
    nd->pkt_size = size;
    build_template(nd);
    rc = aioixy_dev_create_pools(&nd->dev, cfg);
    if (rc) {
        free(nd);
        return rc;
    }
    *out = &nd->dev;
    return 0;
}

static struct aioixy_driver null_driver = {
    .name = "null",
    .prefix = "null",
    .open = null_open,
    .options = null_options,
    .in_memory = true,
};
AIOIXY_REGISTER_DRIVER(null_driver)
