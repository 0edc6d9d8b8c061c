/* The packet: (AF_PACKET) driver without Python, so AddressSanitizer/UBSan and ThreadSanitizer
 * see all of it: a veth pair made here (removed at exit), a one-queue sender and a receiver with
 * two rx queues in one fan-out group, N sequenced frames per round through the kernel, each
 * received exactly once and in order within its queue, device stats read concurrently with the
 * pollers, pauses that put both pollers to sleep in poll() (and tx that must kick them awake),
 * three rounds of open/close, every pool released at the end; "v2" runs it over TPACKET_V2. Needs root: without it, it reports
 * SKIP (and fails under CI=true, where the tier must run). */
#include "frames.h"
#include "port.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veth_lab.h"

/* the numbered test frame (frames.h), with the flow in the source port so the fan-out hash has
 * something to spread */
static void frame(struct aioixy_pkt_buf *b, uint64_t seq)
{
    const struct aioixy_frame_addrs addrs = {
        .dst_mac = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, .src_mac = {0x02, 0, 0, 0, 0, 0x02},
        .src_ip = {198, 18, 0, 1}, .dst_ip = {198, 18, 0, 2},
        .src_port = (uint16_t)(1024 + seq % 16), .dst_port = 5678};
    aioixy_frame_headers(b->data, AIOIXY_FRAME_MIN, &addrs);
    aioixy_frame_set_seq(b->data, seq);
    memset(b->data + AIOIXY_FRAME_SEQ_OFFSET + AIOIXY_FRAME_SEQ_LEN, 0xa5,
           AIOIXY_FRAME_MIN - AIOIXY_FRAME_SEQ_OFFSET - AIOIXY_FRAME_SEQ_LEN);
    b->len = AIOIXY_FRAME_MIN;
}

int main(int argc, char **argv)
{
    lab_tag = "packet_smoke";
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000ull;
    /* "v2": the same over TPACKET_V2 slots (options ring=v2) instead of V3 blocks */
    const char *ring = argc > 2 && strcmp(argv[2], "v2") == 0 ? "ring=v2" : "ring=v3";
    if (geteuid() != 0) {
        const char *ci = getenv("CI");
        printf("packet_smoke: SKIP (needs root for veth and AF_PACKET)\n");
        return ci && strcmp(ci, "true") == 0 ? 1 : 0;
    }
    snprintf(va, sizeof(va), "axp%da", (int)(getpid() % 100000));
    snprintf(vb, sizeof(vb), "axp%db", (int)(getpid() % 100000));
    char cmd[320];
    snprintf(cmd, sizeof(cmd), "ip link add %s type veth peer name %s", va, vb);
    if (sh(cmd))
        return 1;
    atexit(lab_cleanup);
    /* no IPv6: the kernel would send router solicitations into the test traffic */
    snprintf(cmd, sizeof(cmd), "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 && echo 1 > "
             "/proc/sys/net/ipv6/conf/%s/disable_ipv6 && ip link set %s up && ip link set %s up",
             va, vb, va, vb);
    if (sh(cmd))
        return 1;
    struct aioixy_port_config cfg_a, cfg_b;
    aioixy_port_config_defaults(&cfg_a);
    cfg_a.dev.rx_queues = 2;
    cfg_a.batch_size = 32;
    cfg_a.overflow = AIOIXY_OVERFLOW_PAUSE;
    cfg_a.dev.options = ring;
    cfg_b = cfg_a;
    cfg_b.dev.rx_queues = 1;
    char name_a[32], name_b[32];
    snprintf(name_a, sizeof(name_a), "packet:%s", va);
    snprintf(name_b, sizeof(name_b), "packet:%s", vb);
    uint8_t *seen = calloc(n, 1);
    if (!seen)
        return 1;
    for (int round = 0; round < 3; round++) {
        struct aioixy_port *a, *b;
        if (aioixy_port_open(name_a, &cfg_a, &a) || aioixy_port_open(name_b, &cfg_b, &b)) {
            fprintf(stderr, "open: %s\n", aioixy_last_error());
            return 1;
        }
        memset(seen, 0, n);
        uint64_t sent = 0, recvd = 0, last[2] = {0, 0};
        bool any[2] = {false, false};
        struct aioixy_pkt_buf *bufs[32];
        int idle = 0;
        while (recvd < n) {
            int progress = 0;
            /* a window of 256 in flight: a veth has no flow control */
            if (sent < n && sent - recvd < 256) {
                uint32_t want = n - sent < 32 ? (uint32_t)(n - sent) : 32;
                if (aioixy_port_alloc(b, 0, bufs, want, 60)) {
                    for (uint32_t i = 0; i < want; i++)
                        frame(bufs[i], sent + i);
                    uint32_t k = aioixy_tx_enqueue(b, 0, bufs, want);
                    if (k < want)
                        aioixy_mempool_free_bulk(bufs + k, want - k);
                    sent += k;
                    progress += k > 0;
                }
                if (sent % 4096 < 32) /* let both pollers fall asleep in poll() now and then */
                    usleep(30000);
            }
            for (uint16_t q = 0; q < 2; q++) {
                uint32_t got = aioixy_rx_dequeue(a, q, bufs, 32);
                for (uint32_t i = 0; i < got; i++) {
                    uint64_t seq = aioixy_frame_seq(bufs[i]->data);
                    if (bufs[i]->len != AIOIXY_FRAME_MIN || seq >= n || seen[seq] ||
                        (any[q] && seq <= last[q])) {
                        fprintf(stderr, "FAIL: queue %u got len %u seq %llu (last %llu)\n", q,
                                bufs[i]->len, (unsigned long long)seq, (unsigned long long)last[q]);
                        return 1;
                    }
                    seen[seq] = 1;
                    last[q] = seq;
                    any[q] = true;
                    recvd++;
                }
                if (got)
                    aioixy_mempool_free_bulk(bufs, got);
                progress += got > 0;
            }
            struct aioixy_dev_stats s; /* read concurrently with the pollers (TSan) */
            aioixy_port_dev_stats(a, &s);
            if (s.rx_missed) {
                fprintf(stderr, "FAIL: %llu frames dropped by the kernel within the window\n",
                        (unsigned long long)s.rx_missed);
                return 1;
            }
            if (progress) {
                idle = 0;
            } else if (++idle > 5000) { /* ~5 s without any progress */
                fprintf(stderr, "FAIL: stalled at %llu received of %llu sent\n",
                        (unsigned long long)recvd, (unsigned long long)sent);
                return 1;
            } else {
                usleep(1000);
            }
        }
        if (!any[0] || !any[1]) {
            fprintf(stderr, "FAIL: fan-out used only queue %d\n", any[0] ? 0 : 1);
            return 1;
        }
        struct aioixy_dev_stats s;
        aioixy_port_dev_stats(a, &s);
        if (s.rx_packets != n) {
            fprintf(stderr, "FAIL: device counted %llu rx, expected %llu\n",
                    (unsigned long long)s.rx_packets, (unsigned long long)n);
            return 1;
        }
        aioixy_port_close(a);
        aioixy_port_close(b);
    }
    free(seen);
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: %u pools still alive after close\n", aioixy_mempool_live_count());
        return 1;
    }
    printf("packet_smoke: %s, %llu frames over 2 fan-out queues x 3 rounds ok\n", ring,
           (unsigned long long)n);
    return 0;
}
