/* The poller layer without Python: a pair of ports, N sequenced packets a -> b through the tx
 * ring, the wire and the rx ring, waiting on the eventfd exactly as the asyncio side does.
 * Run under ThreadSanitizer this checks the wake-up protocol and the close paths for races. */
#include "port.h"
#include "ring.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* "kickloop": a test-only device with a pollable fd, like a kernel socket. What its tx takes it
 * loops back to its own rx and signals on an eventfd (its "interrupt"). With idle spinning off,
 * its poller sleeps in poll() between almost every batch, so only the kick eventfd written by
 * aioixy_tx_enqueue can wake it: this exercises the kick protocol (and close's wake-up) under
 * ThreadSanitizer. */
struct kick_dev {
    struct aioixy_dev dev;
    struct aioixy_ring *loop;
    int irq;
};

static uint32_t kick_rx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    (void)q;
    struct kick_dev *k = (struct kick_dev *)dev;
    uint64_t v;
    if (read(k->irq, &v, sizeof(v)) < 0) { /* EAGAIN: nothing signalled, the ring decides */
    }
    return aioixy_ring_dequeue_burst(k->loop, (void **)bufs, n);
}

static uint32_t kick_tx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    (void)q;
    struct kick_dev *k = (struct kick_dev *)dev;
    if (!n)
        return 0;
    uint32_t done = aioixy_ring_enqueue_burst(k->loop, (void *const *)bufs, n);
    if (done) {
        uint64_t one = 1;
        if (write(k->irq, &one, sizeof(one)) < 0) { /* saturated: already readable */
        }
    }
    return done;
}

static int kick_poll_fd(struct aioixy_dev *dev, uint16_t q, short *events)
{
    (void)q;
    *events = POLLIN;
    return ((struct kick_dev *)dev)->irq;
}

static void kick_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    (void)dev;
    memset(out, 0, sizeof(*out));
}

static void kick_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    (void)dev;
    out->up = true;
    out->speed_mbps = 0;
}

static int kick_promisc(struct aioixy_dev *dev, bool on)
{
    (void)dev;
    (void)on;
    return 0;
}

static void kick_close(struct aioixy_dev *dev)
{
    struct kick_dev *k = (struct kick_dev *)dev;
    struct aioixy_pkt_buf *b[32];
    uint32_t n;
    while ((n = aioixy_ring_dequeue_burst(k->loop, (void **)b, 32)) > 0)
        aioixy_mempool_free_bulk(b, n);
    aioixy_ring_free(k->loop);
    close(k->irq);
    aioixy_dev_release_pools(dev);
    free(k);
}

static const struct aioixy_dev_ops kick_ops = {
    .driver = "kickloop",
    .rx_batch = kick_rx,
    .tx_batch = kick_tx,
    .read_stats = kick_stats,
    .link_status = kick_link,
    .set_promisc = kick_promisc,
    .poll_fd = kick_poll_fd,
    .close = kick_close,
};

static int kick_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    struct kick_dev *k = calloc(1, sizeof(*k));
    if (!k)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    k->dev.ops = &kick_ops;
    snprintf(k->dev.name, sizeof(k->dev.name), "%s", name);
    snprintf(k->dev.driver, sizeof(k->dev.driver), "kickloop");
    k->dev.num_rx_queues = k->dev.num_tx_queues = 1;
    k->dev.dma.kind = DMA_ANON;
    k->dev.dma.vfio_container_fd = -1;
    k->loop = aioixy_ring_create(256);
    k->irq = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int rc = aioixy_dev_create_pools(&k->dev, cfg);
    if (rc || !k->loop || k->irq < 0) {
        aioixy_ring_free(k->loop);
        free(k);
        return rc ? rc : aioixy_set_error(AIOIXY_EIO, "kickloop: setup failed");
    }
    *out = &k->dev;
    return 0;
}

static struct aioixy_driver kick_driver = {.name = "kickloop", .prefix = "kickloop", .open = kick_open};
AIOIXY_REGISTER_DRIVER(kick_driver)

/* Each packet goes through tx ring -> (kick) poller -> loop -> rx ring -> (eventfd) us, one at a
 * time, so nearly every packet finds the poller asleep in poll() and must be kicked awake. */
static int kick_roundtrips(uint64_t n)
{
    struct aioixy_port_config cfg;
    aioixy_port_config_defaults(&cfg);
    cfg.idle_spin = 0;
    cfg.idle_pause = 0;
    struct aioixy_port *p;
    if (aioixy_port_open("kickloop", &cfg, &p)) {
        fprintf(stderr, "open kickloop: %s\n", aioixy_last_error());
        return 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b;
        if (!aioixy_port_alloc(p, 0, &b, 1, 60)) {
            fprintf(stderr, "FAIL: kickloop pool empty at %lu\n", (unsigned long)i);
            return 1;
        }
        memcpy(b->data, &i, 8);
        if (aioixy_tx_enqueue(p, 0, &b, 1) != 1) {
            fprintf(stderr, "FAIL: kickloop tx ring full\n");
            return 1;
        }
        uint32_t got;
        while ((got = aioixy_rx_dequeue(p, 0, &b, 1)) == 0) {
            if (aioixy_queue_prepare_wait(p, 0, true, false))
                continue;
            struct pollfd pfd = {.fd = aioixy_queue_eventfd(p, 0), .events = POLLIN};
            /* built with no poll() safety timeout (Makefile): a lost kick never comes back */
            if (poll(&pfd, 1, 2000) <= 0) {
                fprintf(stderr, "FAIL: kickloop packet %lu never came back\n", (unsigned long)i);
                return 1;
            }
            uint64_t v;
            if (read(pfd.fd, &v, sizeof(v)) < 0) { /* EAGAIN: harmless */
            }
        }
        uint64_t seq;
        memcpy(&seq, b->data, 8);
        aioixy_mempool_free_bulk(&b, 1);
        if (seq != i) {
            fprintf(stderr, "FAIL: kickloop got %lu, expected %lu\n", (unsigned long)seq, (unsigned long)i);
            return 1;
        }
    }
    struct aioixy_queue_stats st;
    aioixy_queue_stats(p, 0, &st);
    aioixy_port_close(p);
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: kickloop pool alive after close\n");
        return 1;
    }
    if (st.idle_sleeps == 0) {
        fprintf(stderr, "FAIL: the kickloop poller never slept, the kick path was not exercised\n");
        return 1;
    }
    printf("port_smoke kick: %lu round trips, poller slept %lu times, pool freed\n",
           (unsigned long)n, (unsigned long)st.idle_sleeps);
    return 0;
}

static int wait_rx(struct aioixy_port *p, struct aioixy_pkt_buf **b)
{
    while (aioixy_rx_dequeue(p, 0, b, 1) == 0) {
        if (aioixy_queue_prepare_wait(p, 0, true, false))
            continue;
        struct pollfd pfd = {.fd = aioixy_queue_eventfd(p, 0), .events = POLLIN};
        /* built with no poll() safety timeout (Makefile): a lost wake-up never comes back */
        if (poll(&pfd, 1, 2000) <= 0)
            return -1;
        uint64_t v;
        if (read(pfd.fd, &v, sizeof(v)) < 0) { /* EAGAIN: harmless */
        }
    }
    return 0;
}

/* Poll groups: ping-pong between two pair ends whose pollers never spin (they sleep before
 * nearly every packet), so each round trip needs the tx kick, the pair's doorbell ring of the
 * peer's poller and the rx eventfd. Mode 0: both ends in one group; mode 1: each end in its own
 * group (the doorbell crosses threads). Meanwhile a third port joins the first group and leaves
 * it again, over and over, while the group runs the pair: membership changes under traffic. */
static int group_pingpong(uint64_t n, int mode)
{
    struct aioixy_poll_group_config gc = {.cpu = -1, .idle_sleep_min_us = 10, .idle_sleep_max_us = 500};
    struct aioixy_poller *g[2];
    if (aioixy_poll_group_create(&gc, &g[0]) || aioixy_poll_group_create(&gc, &g[1])) {
        fprintf(stderr, "group create: %s\n", aioixy_last_error());
        return 1;
    }
    struct aioixy_port_config cfg;
    aioixy_port_config_defaults(&cfg);
    struct aioixy_port *a, *b;
    cfg.poller = g[0];
    if (aioixy_port_open("pair:grp:a", &cfg, &a)) {
        fprintf(stderr, "open a: %s\n", aioixy_last_error());
        return 1;
    }
    cfg.poller = g[mode];
    if (aioixy_port_open("pair:grp:b", &cfg, &b)) {
        fprintf(stderr, "open b: %s\n", aioixy_last_error());
        return 1;
    }
    aioixy_poll_group_release(g[1]); /* the ports keep it alive */
    uint32_t expect = mode ? 1 : 2;
    if (aioixy_poll_group_queues(g[0]) != expect) {
        fprintf(stderr, "FAIL: group serves %u queues, expected %u\n", aioixy_poll_group_queues(g[0]),
                expect);
        return 1;
    }
    struct aioixy_port *extra = NULL;
    struct aioixy_port_config ecfg;
    aioixy_port_config_defaults(&ecfg);
    ecfg.poller = g[0];
    ecfg.rx_enabled = false; /* a tx-only null port: it must not keep the group awake */
    for (uint64_t i = 0; i < n; i++) {
        if (i % 64 == 0) {
            if (extra) {
                aioixy_port_close(extra);
                extra = NULL;
            } else if (aioixy_port_open("null", &ecfg, &extra)) {
                fprintf(stderr, "open null in group: %s\n", aioixy_last_error());
                return 1;
            }
        }
        struct aioixy_pkt_buf *pkt;
        if (!aioixy_port_alloc(a, 0, &pkt, 1, 60)) {
            fprintf(stderr, "FAIL: group pool empty at %lu\n", (unsigned long)i);
            return 1;
        }
        memcpy(pkt->data, &i, 8);
        if (aioixy_tx_enqueue(a, 0, &pkt, 1) != 1 || wait_rx(b, &pkt)) {
            fprintf(stderr, "FAIL: group mode %d: packet %lu lost a -> b\n", mode, (unsigned long)i);
            return 1;
        }
        if (aioixy_tx_enqueue(b, 0, &pkt, 1) != 1 || wait_rx(a, &pkt)) {
            fprintf(stderr, "FAIL: group mode %d: packet %lu lost b -> a\n", mode, (unsigned long)i);
            return 1;
        }
        uint64_t seq;
        memcpy(&seq, pkt->data, 8);
        aioixy_mempool_free_bulk(&pkt, 1);
        if (seq != i) {
            fprintf(stderr, "FAIL: group got %lu, expected %lu\n", (unsigned long)seq, (unsigned long)i);
            return 1;
        }
    }
    struct aioixy_queue_stats sa;
    aioixy_queue_stats(a, 0, &sa);
    if (extra)
        aioixy_port_close(extra);
    aioixy_port_close(a);
    if (aioixy_poll_group_queues(g[0]) != (mode ? 0 : 1)) {
        fprintf(stderr, "FAIL: closing a left the group with %u queues\n", aioixy_poll_group_queues(g[0]));
        return 1;
    }
    aioixy_poll_group_release(g[0]);
    aioixy_port_close(b);
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: group pools alive after close\n");
        return 1;
    }
    if (sa.idle_sleeps == 0) {
        fprintf(stderr, "FAIL: the group's poller never slept: the doorbell was not exercised\n");
        return 1;
    }
    printf("port_smoke group %s: %lu round trips, poller slept %lu times, pools freed\n",
           mode ? "(two groups)" : "(one group)", (unsigned long)n, (unsigned long)sa.idle_sleeps);
    return 0;
}

static int wait_for(struct aioixy_port *p, bool rx, bool tx)
{
    if (aioixy_queue_prepare_wait(p, 0, rx, tx))
        return 0;
    struct pollfd pfd = {.fd = aioixy_queue_eventfd(p, 0), .events = POLLIN};
    int r = poll(&pfd, 1, 5000);
    if (r <= 0) {
        fprintf(stderr, "FAIL: no wake-up within 5 s (rx=%d tx=%d)\n", rx, tx);
        return -1;
    }
    uint64_t v;
    if (read(pfd.fd, &v, sizeof(v)) < 0) { /* EAGAIN: raced with another reset, harmless */
    }
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000ull;
    /* "sim": the same run through the ixgbe driver and the 82599 model's cable */
    bool sim = argc > 2 && strcmp(argv[2], "sim") == 0;
    if (argc > 2 && strcmp(argv[2], "kick") == 0)
        return kick_roundtrips(n / 20 ? n / 20 : 1);
    if (argc > 2 && strcmp(argv[2], "group") == 0)
        return group_pingpong(n / 20 ? n / 20 : 1, 0) || group_pingpong(n / 20 ? n / 20 : 1, 1);
    const char *name_a = sim ? "sim-82599:smoke:0" : "pair:smoke:a";
    const char *name_b = sim ? "sim-82599:smoke:1" : "pair:smoke:b";
    struct aioixy_port_config cfg;
    aioixy_port_config_defaults(&cfg);
    cfg.rx_ring_size = cfg.tx_ring_size = 64;
    cfg.batch_size = 32;
    cfg.dev.flow_control = true;
    cfg.overflow = AIOIXY_OVERFLOW_PAUSE;
    cfg.dev.rx_descs = 128;
    cfg.dev.promisc = sim; /* the sequence number overwrites the destination MAC */
    for (int round = 0; round < 3; round++) {
        struct aioixy_port *a, *b;
        if (aioixy_port_open(name_a, &cfg, &a) || aioixy_port_open(name_b, &cfg, &b)) {
            fprintf(stderr, "open: %s\n", aioixy_last_error());
            return 1;
        }
        uint64_t sent = 0, recvd = 0;
        struct aioixy_pkt_buf *tx[32], *rx[32];
        uint32_t have = 0; /* allocated, not yet queued */
        while (recvd < n) {
            if (sent < n && have == 0) {
                uint32_t want = n - sent < 32 ? (uint32_t)(n - sent) : 32;
                if (aioixy_port_alloc(a, 0, tx, want, 60)) {
                    for (uint32_t i = 0; i < want; i++)
                        memcpy(tx[i]->data, &(uint64_t){sent + i}, 8);
                    have = want;
                }
            }
            if (have) {
                uint32_t k = aioixy_tx_enqueue(a, 0, tx + (32 - 32), have);
                memmove(tx, tx + k, (have - k) * sizeof(tx[0]));
                have -= k;
                sent += k;
            }
            uint32_t got = aioixy_rx_dequeue(b, 0, rx, 32);
            for (uint32_t i = 0; i < got; i++, recvd++) {
                uint64_t v;
                memcpy(&v, rx[i]->data, 8);
                if (v != recvd || rx[i]->len != 60) {
                    fprintf(stderr, "FAIL: got seq %lu len %u, expected %lu\n", (unsigned long)v,
                            rx[i]->len, (unsigned long)recvd);
                    return 1;
                }
            }
            if (got)
                aioixy_mempool_free_bulk(rx, got);
            else if (have && wait_for(a, false, true))
                return 1;
            else if (!have && sent == n && wait_for(b, true, false))
                return 1;
        }
        struct aioixy_queue_stats sa, sb;
        /* the receiver can see the last packet before the sender's poller has counted it:
         * give the counter up to 5 s to catch up */
        for (int w = 0; w < 5000; w++) {
            aioixy_queue_stats(a, 0, &sa);
            if (sa.tx_packets == n)
                break;
            usleep(1000);
        }
        aioixy_queue_stats(b, 0, &sb);
        if (sa.tx_packets != n || sb.rx_packets != n || sb.rx_dropped) {
            fprintf(stderr, "FAIL: stats tx %lu rx %lu dropped %lu\n", (unsigned long)sa.tx_packets,
                    (unsigned long)sb.rx_packets, (unsigned long)sb.rx_dropped);
            return 1;
        }
        aioixy_port_close(a);
        aioixy_port_close(b);
        if (aioixy_mempool_live_count() != 0) {
            fprintf(stderr, "FAIL: %u pools alive after close\n", aioixy_mempool_live_count());
            return 1;
        }
    }
    /* null: a producer that is never waited for, closed while running flat out */
    struct aioixy_port *p;
    if (aioixy_port_open("null", &cfg, &p)) {
        fprintf(stderr, "open null: %s\n", aioixy_last_error());
        return 1;
    }
    struct aioixy_pkt_buf *rx[32];
    for (int i = 0; i < 1000; i++) {
        uint32_t got = aioixy_rx_dequeue(p, 0, rx, 32);
        if (got)
            aioixy_mempool_free_bulk(rx, got);
        else if (wait_for(p, true, false))
            return 1;
    }
    aioixy_port_close(p);
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: null pool alive after close\n");
        return 1;
    }
    printf("port_smoke: 3 rounds of %lu packets %s -> %s in order, pools freed\n", (unsigned long)n,
           name_a, name_b);
    return 0;
}
