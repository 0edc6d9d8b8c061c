/* The "pair" software device: two ports joined back to back by an in-memory wire.
 *
 * "pair:NAME:a" and "pair:NAME:b" open the two ends of the wire called NAME; the two opens may
 * come from anywhere in the process, in any order. Each direction has one SPSC ring per queue
 * index: tx queue q of one end feeds ring q, which the other end's rx queue (q % rx_queues)
 * drains, so every ring keeps exactly one producer thread and one consumer thread.
 *
 * The wire holds rx_descs packets per ring (default 1024), fixed by the end opened first; the
 * other end may leave rx_descs at 0 or must name the same size.
 *
 * The link is up only while both ends are open. Transmitting while the peer is closed drops the
 * packets for good (tx_errors), as a cable with nobody at the other end would. A full wire
 * drops the excess too (tx_errors), unless the end was opened with flow_control, in which case
 * tx accepts only what fits and the back-pressure reaches the sender's Python code through its
 * tx ring, like 802.3x PAUSE frames on a real link.
 *
 * Closing an end must not race with the peer's tx poller still pushing into the end's incoming
 * rings: each producer raises a per-ring busy flag around its enqueue and re-checks that the
 * receiver is open; the closer clears its open flag, waits out busy producers, then drains. Both
 * sides use seq_cst stores and loads, so either the producer sees the closed flag or the closer sees the
 * busy flag. Whatever is left on the wire when both ends are closed goes back to its pools.
 */
#include "device.h"
#include "ring.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAIR_DEFAULT_WIRE 1024u
_Static_assert(PAIR_DEFAULT_WIRE <= AIOIXY_DEFAULT_DESCS_MAX, "pools are sized with the largest default");

struct pair_counters {
    _Atomic uint64_t rx_packets, rx_bytes;
    _Atomic uint64_t tx_packets, tx_bytes, tx_errors;
} AIOIXY_CACHE_ALIGNED;

struct pair_wire;

struct pair_end {
    struct aioixy_dev dev;
    struct pair_wire *wire;
    int side; /* 0 = a, 1 = b */
    bool flow_control;
    struct pair_counters c[AIOIXY_MAX_QUEUES];
};

struct pair_wire {
    struct pair_wire *next;
    char name[64];
    uint32_t wire_size;
    struct pair_end *ends[2];            /* guarded by wires_lock */
    _Atomic bool open[2];
    /* busy[s][q]: end s's tx poller q is inside an enqueue towards the other end */
    struct {
        _Atomic uint32_t flag;
    } busy[2][AIOIXY_MAX_QUEUES] AIOIXY_CACHE_ALIGNED;
    struct aioixy_ring *rings[2][AIOIXY_MAX_QUEUES]; /* rings[s][q]: from end s, tx queue q */
};

static pthread_mutex_t wires_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pair_wire *wires;

static uint32_t pair_tx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct pair_end *e = (struct pair_end *)dev;
    struct pair_wire *w = e->wire;
    struct pair_counters *c = &e->c[q];
    if (n == 0)
        return 0;
    /* sum before publishing: once enqueued, the peer may free a buffer at any moment */
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += bufs[i]->len;
    int peer = 1 - e->side;
    _Atomic uint32_t *busy = &w->busy[e->side][q].flag;
    /* seq_cst store + load, paired with the closer's seq_cst store + load (Dekker) */
    atomic_store_explicit(busy, 1, memory_order_seq_cst);
    bool peer_open = atomic_load_explicit(&w->open[peer], memory_order_seq_cst);
    uint32_t k = 0;
    uint64_t unsent_bytes = 0;
    if (peer_open) {
        /* the unsent tail stays ours, so its lengths can be read after the enqueue */
        k = aioixy_ring_enqueue_burst(w->rings[e->side][q], (void *const *)bufs, n);
        for (uint32_t i = k; i < n; i++)
            unsent_bytes += bufs[i]->len;
    } else {
        unsent_bytes = bytes;
    }
    if (k) {
        /* wake the peer's poller if it sleeps; inside the busy window, so the peer (and the
         * doorbell of its poller, which outlives its device) cannot be gone */
        struct aioixy_dev *pd = &w->ends[peer]->dev;
        struct aioixy_doorbell *bell =
            atomic_load_explicit(&pd->doorbell[q % pd->num_rx_queues], memory_order_acquire);
        if (bell)
            aioixy_doorbell_ring(bell);
    }
    atomic_store_explicit(busy, 0, memory_order_release);
    aioixy_counter_add(&c->tx_packets, k);
    aioixy_counter_add(&c->tx_bytes, bytes - unsent_bytes);
    if (k == n)
        return n;
    if (peer_open && e->flow_control)
        return k; /* back-pressure: the poller keeps the rest and retries */
    aioixy_mempool_free_bulk(bufs + k, n - k);
    aioixy_counter_add(&c->tx_errors, n - k);
    return n;
}

static uint32_t pair_rx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct pair_end *e = (struct pair_end *)dev;
    struct pair_wire *w = e->wire;
    int peer = 1 - e->side;
    uint32_t got = 0;
    uint16_t nrx = dev->num_rx_queues;
    for (uint16_t r = q; r < AIOIXY_MAX_QUEUES && got < n; r += nrx)
        got += aioixy_ring_dequeue_burst(w->rings[peer][r], (void **)(bufs + got), n - got);
    if (got) {
        uint64_t bytes = 0;
        for (uint32_t i = 0; i < got; i++)
            bytes += bufs[i]->len;
        aioixy_counter_add(&e->c[q].rx_packets, got);
        aioixy_counter_add(&e->c[q].rx_bytes, bytes);
    }
    return got;
}

/* Sleep on the doorbell: the peer's tx rings it after putting frames on our incoming rings.
 * Called after the poller announced its sleep, so a frame published before that is seen here
 * and one published after it rings. (Room on the wire for our own tx under flow control comes
 * with no signal: the poller's blocked state keeps its back-off short.) */
static int pair_poll_fd(struct aioixy_dev *dev, uint16_t q, short *events)
{
    (void)events;
    struct pair_end *e = (struct pair_end *)dev;
    int peer = 1 - e->side;
    for (uint16_t r = q; r < AIOIXY_MAX_QUEUES; r += dev->num_rx_queues)
        if (!aioixy_ring_consumer_empty(e->wire->rings[peer][r]))
            return AIOIXY_POLL_RX_READY;
    return AIOIXY_POLL_DOORBELL;
}

static void pair_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct pair_end *e = (struct pair_end *)dev;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++) {
        struct pair_counters *c = &e->c[i];
        out->rx_packets += atomic_load_explicit(&c->rx_packets, memory_order_relaxed);
        out->rx_bytes += atomic_load_explicit(&c->rx_bytes, memory_order_relaxed);
        out->tx_packets += atomic_load_explicit(&c->tx_packets, memory_order_relaxed);
        out->tx_bytes += atomic_load_explicit(&c->tx_bytes, memory_order_relaxed);
        out->tx_errors += atomic_load_explicit(&c->tx_errors, memory_order_relaxed);
    }
}

static void pair_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    struct pair_end *e = (struct pair_end *)dev;
    out->up = atomic_load_explicit(&e->wire->open[0], memory_order_acquire) &&
              atomic_load_explicit(&e->wire->open[1], memory_order_acquire);
    out->speed_mbps = out->up ? 10000 : 0;
}

static int pair_promisc(struct aioixy_dev *dev, bool on)
{
    dev->promisc = on; /* nothing filters on an in-memory wire */
    return 0;
}

static void drain(struct aioixy_ring *r)
{
    struct aioixy_pkt_buf *tmp[64];
    uint32_t n;
    while ((n = aioixy_ring_dequeue_burst(r, (void **)tmp, 64)) > 0)
        aioixy_mempool_free_bulk(tmp, n);
}

static void wire_free(struct pair_wire *w)
{
    for (int s = 0; s < 2; s++)
        for (int q = 0; q < AIOIXY_MAX_QUEUES; q++) {
            if (w->rings[s][q])
                drain(w->rings[s][q]);
            aioixy_ring_free(w->rings[s][q]);
        }
    free(w);
}

static void pair_close(struct aioixy_dev *dev)
{
    struct pair_end *e = (struct pair_end *)dev;
    struct pair_wire *w = e->wire;
    int peer = 1 - e->side;
    pthread_mutex_lock(&wires_lock);
    atomic_store_explicit(&w->open[e->side], false, memory_order_seq_cst);
    /* wait out a peer poller caught between its open check and its enqueue */
    for (int q = 0; q < AIOIXY_MAX_QUEUES; q++)
        while (atomic_load_explicit(&w->busy[peer][q].flag, memory_order_seq_cst))
            aioixy_cpu_relax();
    /* our own pollers are joined, so this thread is now the only consumer of incoming rings */
    for (int q = 0; q < AIOIXY_MAX_QUEUES; q++)
        drain(w->rings[peer][q]);
    w->ends[e->side] = NULL;
    bool last = w->ends[peer] == NULL;
    if (last) {
        for (struct pair_wire **pp = &wires; *pp; pp = &(*pp)->next)
            if (*pp == w) {
                *pp = w->next;
                break;
            }
    }
    pthread_mutex_unlock(&wires_lock);
    if (last)
        wire_free(w);
    aioixy_dev_release_pools(dev);
    free(e);
}

static const struct aioixy_dev_ops pair_ops = {
    .driver = "pair",
    .rx_batch = pair_rx,
    .tx_batch = pair_tx,
    .read_stats = pair_stats,
    .link_status = pair_link,
    .set_promisc = pair_promisc,
    .poll_fd = pair_poll_fd,
    .close = pair_close,
};

static struct pair_wire *wire_get(const char *name, uint32_t wire_size)
{
    for (struct pair_wire *w = wires; w; w = w->next)
        if (strcmp(w->name, name) == 0)
            return w;
    struct pair_wire *w = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*w) + 63) & ~(size_t)63);
    if (!w) {
        aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
        return NULL;
    }
    memset(w, 0, sizeof(*w));
    snprintf(w->name, sizeof(w->name), "%s", name);
    w->wire_size = wire_size;
    for (int s = 0; s < 2; s++)
        for (int q = 0; q < AIOIXY_MAX_QUEUES; q++)
            if (!(w->rings[s][q] = aioixy_ring_create(wire_size))) {
                wire_free(w);
                return NULL;
            }
    w->next = wires;
    wires = w;
    return w;
}

static int pair_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    /* "pair:NAME:a" / "pair:NAME:b" */
    const char *wname = name + strlen("pair:");
    const char *colon = strrchr(wname, ':');
    if (!colon || colon == wname || (strcmp(colon, ":a") != 0 && strcmp(colon, ":b") != 0))
        return aioixy_set_error(AIOIXY_ENODEV, "bad pair name '%s': expected pair:NAME:a or pair:NAME:b", name);
    size_t nlen = (size_t)(colon - wname);
    char wire_name[64];
    if (nlen >= sizeof(wire_name))
        return aioixy_set_error(AIOIXY_EINVAL, "pair name '%.*s' is longer than 63 characters", (int)nlen, wname);
    memcpy(wire_name, wname, nlen);
    wire_name[nlen] = '\0';
    int side = colon[1] == 'a' ? 0 : 1;
    uint32_t wire_size = cfg->rx_descs ? cfg->rx_descs : PAIR_DEFAULT_WIRE;
    if (wire_size < 2 || (wire_size & (wire_size - 1)))
        return aioixy_set_error(AIOIXY_EINVAL, "pair wire size %u must be a power of two >= 2", wire_size);

    struct pair_end *e = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*e) + 63) & ~(size_t)63);
    if (!e)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(e, 0, sizeof(*e));
    e->dev.ops = &pair_ops;
    snprintf(e->dev.name, sizeof(e->dev.name), "%s", name);
    snprintf(e->dev.driver, sizeof(e->dev.driver), "pair");
    e->dev.num_rx_queues = cfg->rx_queues;
    e->dev.num_tx_queues = cfg->tx_queues;
    e->dev.promisc = cfg->promisc;
    e->dev.dma.kind = DMA_HOST; /* buffers cross the wire by pointer: the CPU only */
    e->dev.dma.vfio_container_fd = -1;
    e->dev.min_tx_len = 14; /* an Ethernet header; the peer receives whole buffers of any size */
    e->side = side;
    e->flow_control = cfg->flow_control;
    /* locally administered MAC derived from the wire name, last byte tells the end */
    uint32_t h = 2166136261u;
    for (const char *c = wire_name; *c; c++)
        h = (h ^ (uint8_t)*c) * 16777619u;
    uint8_t mac[6] = {0x02, (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h,
                      (uint8_t)(0x0a + side)};
    memcpy(e->dev.mac, mac, 6);
    int rc = aioixy_dev_create_pools(&e->dev, cfg);
    if (rc) {
        free(e);
        return rc;
    }
    pthread_mutex_lock(&wires_lock);
    struct pair_wire *w = wire_get(wire_name, wire_size);
    if (!w) {
        rc = -aioixy_last_errcode();
    } else if (w->ends[side]) {
        rc = aioixy_set_error(AIOIXY_EBUSY, "%s is busy: that end of pair '%s' is already open",
                              name, wire_name);
    } else if (cfg->rx_descs && w->wire_size != wire_size) {
        rc = aioixy_set_error(AIOIXY_EINVAL, "pair '%s' was opened with a wire of %u packets, not %u",
                              wire_name, w->wire_size, wire_size);
    } else {
        e->wire = w;
        w->ends[side] = e;
        atomic_store_explicit(&w->open[side], true, memory_order_release);
    }
    pthread_mutex_unlock(&wires_lock);
    if (rc) {
        aioixy_dev_release_pools(&e->dev);
        free(e);
        return rc;
    }
    *out = &e->dev;
    return 0;
}

static struct aioixy_driver pair_driver = {
    .name = "pair",
    .prefix = "pair:",
    .open = pair_open,
    .in_memory = true,
};
AIOIXY_REGISTER_DRIVER(pair_driver)
