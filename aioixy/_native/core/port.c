#include "port.h"
#include "poller.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#define WANT_RX 1u
#define WANT_TX 2u

struct port_queue {
    /* written by the event loop thread (wait announcements) */
    struct {
        _Atomic uint32_t waiting;
    } py AIOIXY_CACHE_ALIGNED;
    /* written by the poller only; read by stats from any thread */
    struct {
        _Atomic uint64_t rx_packets, rx_bytes, rx_dropped;
        _Atomic uint64_t tx_packets, tx_bytes;
        _Atomic uint64_t wakeups, rx_batches, tx_batches, idle_sleeps;
        _Atomic uint64_t tx_gone; /* dropped because the device is gone: in tx_errors */
        _Atomic uint32_t tx_pending;
    } st AIOIXY_CACHE_ALIGNED;
    /* poller-private working state */
    struct {
        struct aioixy_pkt_buf **scratch;
        struct aioixy_pkt_buf **pending;
        uint32_t *lens;
        uint32_t pending_head, pending_count;
    } work AIOIXY_CACHE_ALIGNED;
    /* set at open, read-only afterwards */
    struct aioixy_port *port AIOIXY_CACHE_ALIGNED;
    struct aioixy_ring *rx_ring;
    struct aioixy_ring *tx_ring;
    uint32_t min_tx_len; /* valid: len - min_tx_len <= dev->max_tx_len - min_tx_len (unsigned) */
    struct aioixy_mempool *own_pool;  /* this queue's pool: always DMA-reachable */
    uint16_t qid;
    bool do_rx, do_tx;
    int efd;
    struct aioixy_poller *poller;  /* the one thread serving this queue (a reference held) */
    struct aioixy_doorbell *bell;  /* its doorbell: rung after putting work in tx_ring */
    bool attached;                 /* the poller runs this queue: detach before draining */
};

struct aioixy_port {
    struct aioixy_dev *dev AIOIXY_CACHE_ALIGNED;
    struct aioixy_port_config cfg;
    uint16_t nq;
    pthread_mutex_t ctl_lock; /* serializes control-path device calls from Python threads */
    struct port_queue *q[AIOIXY_MAX_QUEUES];
};

void aioixy_port_config_defaults(struct aioixy_port_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->dev.rx_queues = 1;
    cfg->dev.tx_queues = 1;
    cfg->dev.link_timeout_ms = AIOIXY_DEFAULT_LINK_TIMEOUT_MS;
    cfg->batch_size = AIOIXY_DEFAULT_BATCH;
    cfg->rx_ring_size = AIOIXY_DEFAULT_RING_SIZE;
    cfg->tx_ring_size = AIOIXY_DEFAULT_RING_SIZE;
    cfg->overflow = AIOIXY_OVERFLOW_DROP;
    cfg->idle_spin = AIOIXY_DEFAULT_IDLE_SPIN;
    cfg->idle_pause = AIOIXY_DEFAULT_IDLE_PAUSE;
    cfg->idle_sleep_min_us = AIOIXY_DEFAULT_IDLE_SLEEP_MIN_US;
    cfg->idle_sleep_max_us = AIOIXY_DEFAULT_IDLE_SLEEP_MAX_US;
    for (int i = 0; i < AIOIXY_MAX_QUEUES; i++)
        cfg->cpus[i] = -1;
    cfg->rx_enabled = true;
}

/* Wake the event loop if (and only if) it announced it waits for `bit`.
 * Both sides use a read-modify-write on `waiting` rather than standalone fences: RMWs on one
 * location are totally ordered, so either our RMW comes after the consumer's announcement (we
 * see it and wake it), or the consumer's exchange reads our RMW's release and therefore sees
 * what we published to the ring before it. (It is also what ThreadSanitizer can check; it does
 * not model atomic_thread_fence.) On x86 a locked RMW costs the same as the mfence it replaces:
 * one per batch, never per packet. */
static inline void notify(struct port_queue *q, uint32_t bit)
{
    uint32_t w = atomic_fetch_or_explicit(&q->py.waiting, 0, memory_order_acq_rel);
    if (aioixy_likely(!(w & bit)))
        return;
    if (atomic_exchange_explicit(&q->py.waiting, 0, memory_order_acq_rel) == 0)
        return;
    uint64_t one = 1;
    ssize_t rc = write(q->efd, &one, sizeof(one));
    (void)rc; /* EAGAIN only if the counter is saturated: the loop is awake anyway */
    aioixy_counter_add(&q->st.wakeups, 1);
}

static int poll_rx(struct port_queue *q, struct aioixy_dev *dev, const struct aioixy_port_config *cfg)
{
    uint32_t want = cfg->batch_size;
    if (cfg->overflow == AIOIXY_OVERFLOW_PAUSE) {
        /* leave packets in the device so its own flow control (or drop counter) applies */
        uint32_t space = aioixy_ring_producer_space(q->rx_ring);
        if (space < want)
            want = space;
        if (!want)
            return ROUND_BLOCKED;
    }
    struct aioixy_pkt_buf **b = q->work.scratch;
    uint32_t n = dev->ops->rx_batch(dev, q->qid, b, want);
    if (!n) {
        if (aioixy_unlikely(aioixy_dev_is_gone(dev)))
            notify(q, WANT_RX); /* a waiting rx stream finds out (aioixy_port_fault) */
        return ROUND_IDLE;
    }
    /* sum before publishing: once in the ring, Python may free (and reuse) a buffer at once */
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < n; i++)
        bytes += b[i]->len;
    uint32_t k = aioixy_ring_enqueue_burst(q->rx_ring, (void *const *)b, n);
    if (aioixy_unlikely(k < n)) {
        /* Python is behind: drop like a NIC with no free descriptor, and account for it */
        for (uint32_t i = k; i < n; i++)
            bytes -= b[i]->len;
        aioixy_mempool_free_bulk(b + k, n - k);
        aioixy_counter_add(&q->st.rx_dropped, n - k);
    }
    aioixy_counter_add(&q->st.rx_packets, k);
    aioixy_counter_add(&q->st.rx_bytes, bytes);
    aioixy_counter_add(&q->st.rx_batches, 1);
    if (k)
        notify(q, WANT_RX);
    return ROUND_WORK;
}

/* The device is gone: nothing queued can ever leave. Free it all (counted, in tx_errors) and
 * wake a tx() waiting for room, which then finds out (aioixy_tx_check). Runs every round, so
 * frames an enqueue raced in past the check go the same way. */
static int drop_tx(struct port_queue *q, const struct aioixy_port_config *cfg)
{
    uint64_t dropped = q->work.pending_count;
    if (q->work.pending_count)
        aioixy_mempool_free_bulk(q->work.pending + q->work.pending_head, q->work.pending_count);
    q->work.pending_count = 0;
    atomic_store_explicit(&q->st.tx_pending, 0, memory_order_relaxed);
    uint32_t n;
    while ((n = aioixy_ring_dequeue_burst(q->tx_ring, (void **)q->work.scratch, cfg->batch_size)) > 0) {
        aioixy_mempool_free_bulk(q->work.scratch, n);
        dropped += n;
    }
    if (dropped)
        aioixy_counter_add(&q->st.tx_gone, dropped);
    notify(q, WANT_TX | WANT_RX);
    return ROUND_IDLE;
}

static int poll_tx(struct port_queue *q, struct aioixy_dev *dev, const struct aioixy_port_config *cfg)
{
    if (aioixy_unlikely(aioixy_dev_is_gone(dev)))
        return drop_tx(q, cfg);
    if (q->work.pending_count == 0) {
        uint32_t n = aioixy_ring_dequeue_burst(q->tx_ring, (void **)q->work.pending, cfg->batch_size);
        q->work.pending_head = 0;
        q->work.pending_count = n;
        if (!n) {
            dev->ops->tx_batch(dev, q->qid, q->work.pending, 0); /* reclaim only */
            return ROUND_IDLE;
        }
        for (uint32_t i = 0; i < n; i++)
            q->work.lens[i] = q->work.pending[i]->len;
        notify(q, WANT_TX);
    }
    uint32_t head = q->work.pending_head;
    uint32_t sent = dev->ops->tx_batch(dev, q->qid, q->work.pending + head, q->work.pending_count);
    if (!sent)
        return ROUND_TX_BLOCKED;
    /* lengths were captured before the call: sent buffers may already be back in a pool */
    uint64_t bytes = 0;
    for (uint32_t i = 0; i < sent; i++)
        bytes += q->work.lens[head + i];
    q->work.pending_head += sent;
    q->work.pending_count -= sent;
    atomic_store_explicit(&q->st.tx_pending, q->work.pending_count, memory_order_relaxed);
    aioixy_counter_add(&q->st.tx_packets, sent);
    aioixy_counter_add(&q->st.tx_bytes, bytes);
    aioixy_counter_add(&q->st.tx_batches, 1);
    return ROUND_WORK;
}

int aioixy_queue_round(struct port_queue *q)
{
    struct aioixy_dev *dev = q->port->dev;
    const struct aioixy_port_config *cfg = &q->port->cfg;
    int r = 0;
    if (q->do_rx)
        r |= poll_rx(q, dev, cfg);
    if (q->do_tx)
        r |= poll_tx(q, dev, cfg);
    return r;
}

/* The poller announced its sleep on the doorbell (an RMW on `sleeping`), so: work Python put in
 * the tx ring before its ring of the doorbell is seen here, and work after it rings (the rx
 * wake-up's protocol in reverse). Then the device: an fd to sleep on (a kernel socket, an
 * interrupt eventfd), its own doorbell ring, or only a timed sleep. */
bool aioixy_queue_sleep_check(struct port_queue *q, struct pollfd *pfd, bool *timed)
{
    if (q->do_tx && !aioixy_ring_consumer_empty(q->tx_ring))
        return true;
    struct aioixy_dev *dev = q->port->dev;
    short events = 0;
    int fd = dev->ops->poll_fd ? dev->ops->poll_fd(dev, q->qid, &events) : AIOIXY_POLL_TIMED;
    if (fd >= 0) {
        pfd->fd = fd;
        pfd->events = events;
        pfd->revents = 0;
    } else if (fd == AIOIXY_POLL_RX_READY) {
        /* rx work is only work if this queue pulls rx (a tx-only null port has "frames") and
         * has room for it: a full rx ring in PAUSE mode is drained by Python without a signal,
         * so that takes a short timed sleep, as before. Spinning there instead made the poller
         * a CPU hog that a loaded machine's scheduler then kept off the CPU for whole slices. */
        if (!q->do_rx)
            return false;
        if (q->port->cfg.overflow != AIOIXY_OVERFLOW_PAUSE || aioixy_ring_producer_space(q->rx_ring))
            return true;
        *timed = true;
    } else if (fd != AIOIXY_POLL_DOORBELL) {
        *timed = true;
    }
    return false;
}

void aioixy_queue_count_sleep(struct port_queue *q) { aioixy_counter_add(&q->st.idle_sleeps, 1); }

void aioixy_queue_poll_error(struct port_queue *q)
{
    struct aioixy_dev *dev = q->port->dev;
    if (dev->ops->poll_error)
        dev->ops->poll_error(dev, q->qid);
}


static int check_config(const struct aioixy_port_config *cfg)
{
    if (cfg->batch_size < 1 || cfg->batch_size > AIOIXY_MAX_BATCH)
        return aioixy_set_error(AIOIXY_EINVAL, "batch_size=%u: must be 1..%d", cfg->batch_size, AIOIXY_MAX_BATCH);
    uint32_t rings[2] = {cfg->rx_ring_size, cfg->tx_ring_size};
    const char *names[2] = {"rx_ring_size", "tx_ring_size"};
    for (int i = 0; i < 2; i++)
        if (rings[i] < AIOIXY_MIN_RING_SIZE || rings[i] > AIOIXY_MAX_RING_SIZE || (rings[i] & (rings[i] - 1)))
            return aioixy_set_error(AIOIXY_EINVAL, "%s=%u: must be a power of two in %u..%u",
                                    names[i], rings[i], AIOIXY_MIN_RING_SIZE, AIOIXY_MAX_RING_SIZE);
    if (cfg->overflow != AIOIXY_OVERFLOW_DROP && cfg->overflow != AIOIXY_OVERFLOW_PAUSE)
        return aioixy_set_error(AIOIXY_EINVAL, "overflow=%d: must be drop or pause", cfg->overflow);
    if (cfg->idle_sleep_max_us && cfg->idle_sleep_min_us > cfg->idle_sleep_max_us)
        return aioixy_set_error(AIOIXY_EINVAL, "idle sleep min %u us > max %u us",
                                cfg->idle_sleep_min_us, cfg->idle_sleep_max_us);
    uint16_t nqs = cfg->dev.rx_queues > cfg->dev.tx_queues ? cfg->dev.rx_queues : cfg->dev.tx_queues;
    for (uint16_t i = 0; cfg->poller && i < nqs && i < AIOIXY_MAX_QUEUES; i++)
        if (cfg->cpus[i] >= 0)
            return aioixy_set_error(AIOIXY_EINVAL, "cpu=%d for queue %u: a port in a poll group "
                                    "runs on the group's thread (pin the group instead)",
                                    cfg->cpus[i], i);
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        CPU_ZERO(&allowed);
    uint16_t nq = cfg->dev.rx_queues > cfg->dev.tx_queues ? cfg->dev.rx_queues : cfg->dev.tx_queues;
    for (uint16_t i = 0; i < nq && i < AIOIXY_MAX_QUEUES; i++) {
        int c = cfg->cpus[i];
        if (c < -1 || (c >= 0 && (c >= CPU_SETSIZE || !CPU_ISSET(c, &allowed))))
            return aioixy_set_error(AIOIXY_EINVAL,
                                    "cpu=%d for queue %u is not a CPU this process may run on "
                                    "(%d CPUs allowed)", c, i, CPU_COUNT(&allowed));
    }
    return 0;
}

static void free_queue(struct port_queue *q)
{
    if (!q)
        return;
    if (q->efd >= 0)
        close(q->efd);
    aioixy_ring_free(q->rx_ring);
    aioixy_ring_free(q->tx_ring);
    free(q->work.scratch);
    free(q->work.pending);
    free(q->work.lens);
    free(q);
}

static void drain_ring(struct aioixy_ring *r, struct aioixy_pkt_buf **tmp, uint32_t cap)
{
    uint32_t n;
    while (r && (n = aioixy_ring_dequeue_burst(r, (void **)tmp, cap)) > 0)
        aioixy_mempool_free_bulk(tmp, n);
}

/* Take every queue off its poller (each returns once its poller runs without them), then
 * return what the rings and the pending lists hold: this thread is their only user now. */
static void detach_and_drain(struct aioixy_port *port)
{
    for (uint16_t i = 0; i < port->nq; i++) {
        struct port_queue *q = port->q[i];
        if (!q || !q->attached)
            continue;
        /* a group serves all of the port's queues: one hand-over for all of them */
        struct port_queue *mine[AIOIXY_MAX_QUEUES];
        uint32_t n = 0;
        for (uint16_t j = i; j < port->nq; j++)
            if (port->q[j] && port->q[j]->attached && port->q[j]->poller == q->poller) {
                mine[n++] = port->q[j];
                port->q[j]->attached = false;
            }
        aioixy_poller_detach(q->poller, mine, n);
    }
    for (uint16_t i = 0; i < port->nq; i++) {
        struct port_queue *q = port->q[i];
        if (!q)
            continue;
        drain_ring(q->rx_ring, q->work.scratch, port->cfg.batch_size);
        drain_ring(q->tx_ring, q->work.scratch, port->cfg.batch_size);
        if (q->work.pending_count)
            aioixy_mempool_free_bulk(q->work.pending + q->work.pending_head, q->work.pending_count);
        q->work.pending_count = 0;
    }
}

/* The device closes before the pollers go: a pair peer may ring our doorbell until our end's
 * close has waited it out. */
static void destroy_port(struct aioixy_port *port)
{
    if (port->dev)
        port->dev->ops->close(port->dev);
    for (uint16_t i = 0; i < port->nq; i++) {
        if (port->q[i])
            aioixy_poller_unref(port->q[i]->poller);
        free_queue(port->q[i]);
    }
    pthread_mutex_destroy(&port->ctl_lock);
    free(port);
}

/* Give each queue its poller: the group's (one reference per queue), or a thread of its own
 * pinned as cfg->cpus asks; publish the doorbells to the device before any poller runs. */
static int start_pollers(struct aioixy_port *port)
{
    const struct aioixy_port_config *cfg = &port->cfg;
    for (uint16_t i = 0; i < port->nq; i++) {
        struct port_queue *q = port->q[i];
        if (cfg->poller) {
            aioixy_poller_ref(cfg->poller);
            q->poller = cfg->poller;
        } else {
            struct aioixy_poller_config pc = {
                .cpu = cfg->cpus[i], .idle_spin = cfg->idle_spin, .idle_pause = cfg->idle_pause,
                .idle_sleep_min_us = cfg->idle_sleep_min_us, .idle_sleep_max_us = cfg->idle_sleep_max_us,
            };
            char tname[16];
            snprintf(tname, sizeof(tname), "aioixy-q%u", i);
            int rc = aioixy_poller_create(&pc, tname, &q->poller);
            if (rc)
                return rc;
        }
        q->bell = aioixy_poller_bell(q->poller);
        atomic_store_explicit(&port->dev->doorbell[i], q->bell, memory_order_release);
    }
    if (cfg->poller) {
        int rc = aioixy_poller_attach(cfg->poller, port->q, port->nq);
        if (rc)
            return rc;
        for (uint16_t i = 0; i < port->nq; i++)
            port->q[i]->attached = true;
        return 0;
    }
    for (uint16_t i = 0; i < port->nq; i++) {
        int rc = aioixy_poller_attach(port->q[i]->poller, &port->q[i], 1);
        if (rc)
            return rc;
        port->q[i]->attached = true;
    }
    return 0;
}

int aioixy_port_open(const char *device, const struct aioixy_port_config *cfg, struct aioixy_port **out)
{
    *out = NULL;
    aioixy_clear_error();
    int rc = check_config(cfg);
    if (rc)
        return rc;
    struct aioixy_port *port = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*port) + 63) & ~(size_t)63);
    if (!port)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(port, 0, sizeof(*port));
    port->cfg = *cfg;
    port->cfg.dev.options = NULL; /* the caller's string is not kept */
    pthread_mutex_init(&port->ctl_lock, NULL);
    struct aioixy_dev_config dc = cfg->dev;
    dc.tx_only = dc.tx_only || !cfg->rx_enabled; /* the driver need not take any traffic */
    rc = aioixy_dev_open(device, &dc, &port->dev);
    if (rc) {
        port->dev = NULL;
        destroy_port(port);
        return rc;
    }
    struct aioixy_dev *dev = port->dev;
    port->nq = dev->num_rx_queues > dev->num_tx_queues ? dev->num_rx_queues : dev->num_tx_queues;
    for (uint16_t i = 0; i < port->nq; i++) {
        struct port_queue *q = aligned_alloc(AIOIXY_CACHE_LINE, sizeof(*q));
        if (!q) {
            rc = aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
            goto fail;
        }
        memset(q, 0, sizeof(*q));
        q->efd = -1;
        port->q[i] = q;
        q->port = port;
        q->qid = i;
        q->do_rx = cfg->rx_enabled && i < dev->num_rx_queues;
        q->do_tx = i < dev->num_tx_queues;
        q->min_tx_len = dev->min_tx_len;
        q->own_pool = i < dev->num_pools ? dev->pools[i] : NULL;
        q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (q->efd < 0) {
            rc = aioixy_set_error(AIOIXY_EIO, "eventfd failed: %s", strerror(errno));
            goto fail;
        }
        q->work.scratch = calloc(cfg->batch_size, sizeof(*q->work.scratch));
        q->work.pending = calloc(cfg->batch_size, sizeof(*q->work.pending));
        q->work.lens = calloc(cfg->batch_size, sizeof(*q->work.lens));
        if (!q->work.scratch || !q->work.pending || !q->work.lens) {
            rc = aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
            goto fail;
        }
        if (q->do_rx && !(q->rx_ring = aioixy_ring_create(cfg->rx_ring_size))) {
            rc = -aioixy_last_errcode();
            goto fail;
        }
        if (q->do_tx && !(q->tx_ring = aioixy_ring_create(cfg->tx_ring_size))) {
            rc = -aioixy_last_errcode();
            goto fail;
        }
    }
    rc = start_pollers(port);
    if (rc)
        goto fail;
    *out = port;
    return 0;
fail:
    detach_and_drain(port);
    destroy_port(port);
    return rc;
}

void aioixy_port_close(struct aioixy_port *port)
{
    if (!port)
        return;
    detach_and_drain(port);
    destroy_port(port);
}

int aioixy_port_fault(struct aioixy_port *port)
{
    aioixy_clear_error();
    if (aioixy_dev_is_gone(port->dev))
        return aioixy_set_error(AIOIXY_EGONE, "%s", port->dev->gone_msg);
    return 0;
}

void aioixy_port_forget_after_fork(struct aioixy_port *port)
{
    /* the child's copy of the port: its pollers do not exist here, nothing is joined or freed */
    if (port && port->dev && port->dev->ops->forget_after_fork)
        port->dev->ops->forget_after_fork(port->dev);
}

void aioixy_port_close_at(struct aioixy_port **handle)
{
    /* the handle lives in Python's memory, so it cannot be declared _Atomic; the exchange makes
     * an aclose() in an executor thread and a close() on the loop thread close it once */
    struct aioixy_port *port = __atomic_exchange_n(handle, NULL, __ATOMIC_ACQ_REL);
    aioixy_port_close(port);
}

uint16_t aioixy_port_num_queues(const struct aioixy_port *port) { return port->nq; }

void aioixy_port_info(struct aioixy_port *port, struct aioixy_port_info *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&port->ctl_lock); /* promisc changes under it */
    const struct aioixy_dev *dev = port->dev;
    snprintf(out->name, sizeof(out->name), "%s", dev->name);
    snprintf(out->driver, sizeof(out->driver), "%s", dev->driver);
    memcpy(out->mac, dev->mac, sizeof(out->mac));
    out->promisc = dev->promisc;
    out->rx_queues = dev->num_rx_queues;
    out->tx_queues = dev->num_tx_queues;
    out->num_queues = port->nq;
    if (dev->num_pools) {
        /* every queue's pool is created from the same (possibly driver-raised) config */
        out->buf_size = aioixy_mempool_buf_size(dev->pools[0]);
        out->data_room = aioixy_mempool_data_room(dev->pools[0]);
        out->pool_size = aioixy_mempool_size(dev->pools[0]);
    }
    /* what aioixy_tx_enqueue accepts: the driver's limits, and never more than a buffer */
    out->min_tx_len = dev->min_tx_len;
    out->max_tx_len = dev->max_tx_len < out->data_room ? dev->max_tx_len : out->data_room;
    out->rx_queues_left = dev->rx_queues_left;
    pthread_mutex_unlock(&port->ctl_lock);
}

uint32_t aioixy_rx_dequeue(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct port_queue *pq = port->q[q];
    if (!pq->rx_ring)
        return 0;
    return aioixy_ring_dequeue_burst(pq->rx_ring, (void **)bufs, n);
}

static bool pool_ok(const struct aioixy_dev *dev, const struct aioixy_mempool *pool)
{
    if (!dev->tx_own_pools)
        return aioixy_mempool_dma_reachable(pool, &dev->dma);
    for (uint16_t i = 0; i < dev->num_pools; i++)
        if (dev->pools[i] == pool)
            return true;
    return false;
}

/* How many leading buffers the device may be given (see struct aioixy_dev). Runs on the caller's
 * thread so a bad packet stays in the caller's hands: the driver never sees it. One compare per
 * packet on a header line the poller reads next anyway; the pool check only when the pool
 * changes from one packet to the next. */
static inline uint32_t tx_valid_prefix(const struct port_queue *pq, struct aioixy_pkt_buf *const *bufs,
                                       uint32_t n)
{
    const struct aioixy_mempool *reachable = pq->own_pool;
    /* the driver may move the limit while the port is open (the interface's MTU changed) */
    const uint32_t min = pq->min_tx_len,
                   span = atomic_load_explicit(&pq->port->dev->max_tx_len, memory_order_relaxed) - min;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        if (aioixy_unlikely(b->len - min > span))
            return i;
        if (aioixy_unlikely(b->pool != reachable)) {
            if (!pool_ok(pq->port->dev, b->pool))
                return i;
            reachable = b->pool;
        }
    }
    return n;
}

uint32_t aioixy_tx_enqueue(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct port_queue *pq = port->q[q];
    if (!pq->tx_ring || aioixy_unlikely(aioixy_dev_is_gone(port->dev)))
        return 0; /* aioixy_tx_check says why */
    uint32_t k = aioixy_ring_enqueue_burst(pq->tx_ring, (void *const *)bufs, tx_valid_prefix(pq, bufs, n));
    if (k)
        aioixy_doorbell_ring(pq->bell); /* wakes the poller only if it sleeps */
    return k;
}

uint32_t aioixy_tx_take(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    uint32_t k = aioixy_tx_enqueue(port, q, bufs, n);
    memset(bufs, 0, k * sizeof(*bufs));
    return k;
}

uint32_t aioixy_tx_take_slots(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **const *slots,
                              uint32_t n)
{
    struct aioixy_pkt_buf *chunk[64];
    uint32_t done = 0;
    while (done < n) {
        uint32_t m = n - done < 64 ? n - done : 64;
        for (uint32_t i = 0; i < m; i++)
            chunk[i] = *slots[done + i];
        uint32_t k = aioixy_tx_enqueue(port, q, chunk, m);
        for (uint32_t i = 0; i < k; i++)
            *slots[done + i] = NULL;
        done += k;
        if (k < m)
            break;
    }
    return done;
}

bool aioixy_port_reaches_pool_of(struct aioixy_port *dst, struct aioixy_port *src, uint16_t q)
{
    if (q >= src->dev->num_pools)
        return false;
    return pool_ok(dst->dev, src->dev->pools[q]);
}

static const char *dma_kind_name(int kind)
{
    switch (kind) {
    case DMA_ANON: return "device-model";
    case DMA_HUGEPAGE: return "hugepage (physical address)";
    case DMA_VFIO: return "VFIO-mapped";
    case DMA_HOST: return "plain host";
    }
    return "unknown";
}

int aioixy_tx_check(struct aioixy_port *port, uint16_t q, const struct aioixy_pkt_buf *buf)
{
    struct port_queue *pq = port->q[q];
    const struct aioixy_dev *dev = port->dev;
    aioixy_clear_error();
    if (aioixy_dev_is_gone(dev))
        return aioixy_set_error(AIOIXY_EGONE, "%s", dev->gone_msg);
    if (buf->len < dev->min_tx_len)
        return aioixy_set_error(AIOIXY_EINVAL, "packet of %u bytes refused: %s (%s) sends frames of "
                                "at least %u bytes", buf->len, dev->name, dev->driver, dev->min_tx_len);
    if (buf->len > dev->max_tx_len)
        return aioixy_set_error(AIOIXY_EINVAL, "packet of %u bytes refused: %s (%s) sends frames of "
                                "at most %u bytes", buf->len, dev->name, dev->driver, dev->max_tx_len);
    if (buf->pool != pq->own_pool && !pool_ok(dev, buf->pool))
        return aioixy_set_error(AIOIXY_EINVAL, "packet refused: its buffer comes from a pool %s (%s) "
                                "cannot DMA from (%s memory of another port; this device needs %s "
                                "memory%s): copy it into a buffer from this port's alloc()",
                                dev->name, dev->driver,
                                dma_kind_name(aioixy_mempool_dma_kind(buf->pool)),
                                dma_kind_name(dev->dma.kind),
                                dev->tx_own_pools ? " from its own pools" : "");
    return 0;
}

int aioixy_queue_prepare_wait(struct aioixy_port *port, uint16_t q, bool want_rx, bool want_tx)
{
    struct port_queue *pq = port->q[q];
    uint32_t bits = (want_rx && pq->rx_ring ? WANT_RX : 0) | (want_tx && pq->tx_ring ? WANT_TX : 0);
    if (!bits)
        return 1;
    /* the RMW pairs with the one in notify(): see there */
    atomic_exchange_explicit(&pq->py.waiting, bits, memory_order_acq_rel);
    /* a gone device never brings anything again: the caller finds out (aioixy_port_fault) */
    bool ready = ((bits & WANT_RX) && !aioixy_ring_consumer_empty(pq->rx_ring)) ||
                 ((bits & WANT_TX) && aioixy_ring_producer_space(pq->tx_ring) > 0) ||
                 aioixy_dev_is_gone(port->dev);
    if (ready) {
        atomic_store_explicit(&pq->py.waiting, 0, memory_order_relaxed);
        return 1;
    }
    return 0;
}

void aioixy_queue_cancel_wait(struct aioixy_port *port, uint16_t q)
{
    atomic_store_explicit(&port->q[q]->py.waiting, 0, memory_order_relaxed);
}

int aioixy_queue_eventfd(const struct aioixy_port *port, uint16_t q) { return port->q[q]->efd; }

void aioixy_queue_stats(struct aioixy_port *port, uint16_t q, struct aioixy_queue_stats *out)
{
    struct port_queue *pq = port->q[q];
    memset(out, 0, sizeof(*out));
#define LD(f) atomic_load_explicit(&pq->st.f, memory_order_relaxed)
    out->rx_packets = LD(rx_packets);
    out->rx_bytes = LD(rx_bytes);
    out->rx_dropped = LD(rx_dropped);
    out->tx_packets = LD(tx_packets);
    out->tx_bytes = LD(tx_bytes);
    out->wakeups = LD(wakeups);
    out->rx_batches = LD(rx_batches);
    out->tx_batches = LD(tx_batches);
    out->idle_sleeps = LD(idle_sleeps);
    out->tx_pending = LD(tx_pending);
#undef LD
    out->rx_ring_used = pq->rx_ring ? aioixy_ring_count(pq->rx_ring) : 0;
    out->tx_ring_used = pq->tx_ring ? aioixy_ring_count(pq->tx_ring) : 0;
    if (q < port->dev->num_pools) {
        out->pool_free = aioixy_mempool_free_count(port->dev->pools[q]);
        out->pool_size = aioixy_mempool_size(port->dev->pools[q]);
    }
}

void aioixy_port_dev_stats(struct aioixy_port *port, struct aioixy_dev_stats *out)
{
    memset(out, 0, sizeof(*out)); /* drivers fill what they have; extras stay empty */
    pthread_mutex_lock(&port->ctl_lock);
    port->dev->ops->read_stats(port->dev, out);
    pthread_mutex_unlock(&port->ctl_lock);
    for (uint16_t i = 0; i < port->nq; i++)
        out->tx_errors += atomic_load_explicit(&port->q[i]->st.tx_gone, memory_order_relaxed);
}

void aioixy_port_link(struct aioixy_port *port, struct aioixy_link *out)
{
    pthread_mutex_lock(&port->ctl_lock);
    port->dev->ops->link_status(port->dev, out);
    pthread_mutex_unlock(&port->ctl_lock);
}

int aioixy_port_set_promisc(struct aioixy_port *port, bool on)
{
    aioixy_clear_error();
    pthread_mutex_lock(&port->ctl_lock);
    int rc = port->dev->ops->set_promisc(port->dev, on);
    if (rc == 0)
        port->dev->promisc = on;
    pthread_mutex_unlock(&port->ctl_lock);
    return rc;
}

uint32_t aioixy_port_alloc(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs,
                           uint32_t n, uint32_t len)
{
    if (q >= port->dev->num_pools)
        return 0;
    struct aioixy_mempool *pool = port->dev->pools[q];
    if (len > aioixy_mempool_data_room(pool))
        return 0;
    if (!aioixy_mempool_alloc_bulk(pool, bufs, n))
        return 0;
    for (uint32_t i = 0; i < n; i++) {
        bufs[i]->len = len;
        bufs[i]->rx_flags = 0; /* a fresh packet: nothing was checked */
        memset(bufs[i]->data, 0, len);
    }
    return n;
}

int aioixy_poll_group_create(const struct aioixy_poll_group_config *cfg, struct aioixy_poller **out)
{
    aioixy_clear_error();
    *out = NULL;
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        CPU_ZERO(&allowed);
    if (cfg->cpu < -1 || (cfg->cpu >= 0 && (cfg->cpu >= CPU_SETSIZE || !CPU_ISSET(cfg->cpu, &allowed))))
        return aioixy_set_error(AIOIXY_EINVAL, "cpu=%d for a poll group is not a CPU this process "
                                "may run on (%d CPUs allowed)", cfg->cpu, CPU_COUNT(&allowed));
    static _Atomic uint32_t groups;
    char name[16];
    snprintf(name, sizeof(name), "aioixy-g%u",
             atomic_fetch_add_explicit(&groups, 1, memory_order_relaxed));
    struct aioixy_poller_config pc = {
        .cpu = cfg->cpu, .idle_spin = cfg->idle_spin, .idle_pause = cfg->idle_pause,
        .idle_sleep_min_us = cfg->idle_sleep_min_us, .idle_sleep_max_us = cfg->idle_sleep_max_us,
    };
    return aioixy_poller_create(&pc, name, out);
}

void aioixy_poll_group_release(struct aioixy_poller *group) { aioixy_poller_unref(group); }

uint32_t aioixy_poll_group_queues(struct aioixy_poller *group) { return aioixy_poller_members(group); }

bool aioixy_port_in_memory(const char *name) { return aioixy_device_in_memory(name); }
