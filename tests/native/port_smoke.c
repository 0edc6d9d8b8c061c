/* The poller layer without Python: a pair of ports, N sequenced packets a -> b through the tx
 * ring, the wire and the rx ring, waiting on the eventfd exactly as the asyncio side does.
 * Run under ThreadSanitizer this checks the wake-up protocol and the close paths for races. */
#include "port.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
