/* The AF_XDP driver without Python, so AddressSanitizer/UBSan and ThreadSanitizer see all of it:
 * a veth pair (made here, removed at exit), xdp: ports on both ends with two queues each, N
 * sequenced frames per queue b -> a through the kernel, checked in order per queue; three rounds
 * of open/close, and every pool released at the end. Needs root: without it, it reports SKIP
 * (and fails under CI=true, where the tier must run). */
#include "port.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "veth_lab.h"

static void frame(struct aioixy_pkt_buf *b, uint16_t q, uint64_t seq)
{
    memset(b->data, 0xff, 6);                       /* broadcast */
    memcpy(b->data + 6, "\x02\x00\x00\x00\x00\x02", 6);
    b->data[12] = 0x88;                             /* local experimental ethertype */
    b->data[13] = 0xb5;
    memcpy(b->data + 14, &q, sizeof(q));
    memcpy(b->data + 16, &seq, sizeof(seq));
    b->len = 60;
}

int main(int argc, char **argv)
{
    lab_tag = "xdp_smoke";
    uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 20000ull;
    if (geteuid() != 0) {
        const char *ci = getenv("CI");
        printf("xdp_smoke: SKIP (needs root for veth, BPF and AF_XDP)\n");
        return ci && strcmp(ci, "true") == 0 ? 1 : 0;
    }
    /* the kernel tests' naming (ax<pid>x<n>...): if this process dies before its atexit
     * cleanup (e.g. a sanitizer abort), tests/kernel/netns.py sweep_stale() removes the pair */
    snprintf(va, sizeof(va), "ax%dx9a", (int)getpid());
    snprintf(vb, sizeof(vb), "ax%dx9b", (int)getpid());
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "ip link add %s numtxqueues 2 numrxqueues 2 type veth peer name %s "
             "numtxqueues 2 numrxqueues 2", va, vb);
    if (sh(cmd))
        return 1;
    atexit(lab_cleanup);
    /* no IPv6: the kernel would send router solicitations into the test traffic */
    snprintf(cmd, sizeof(cmd), "echo 1 > /proc/sys/net/ipv6/conf/%s/disable_ipv6 && echo 1 > "
             "/proc/sys/net/ipv6/conf/%s/disable_ipv6 && ip link set %s up && ip link set %s up",
             va, vb, va, vb);
    if (sh(cmd))
        return 1;
    struct aioixy_port_config cfg;
    aioixy_port_config_defaults(&cfg);
    cfg.dev.rx_queues = cfg.dev.tx_queues = 2;
    cfg.batch_size = 32;
    cfg.overflow = AIOIXY_OVERFLOW_PAUSE;
    char name_a[32], name_b[32];
    snprintf(name_a, sizeof(name_a), "xdp:%s", va);
    snprintf(name_b, sizeof(name_b), "xdp:%s", vb);
    for (int round = 0; round < 3; round++) {
        struct aioixy_port *a, *b;
        if (aioixy_port_open(name_a, &cfg, &a) || aioixy_port_open(name_b, &cfg, &b)) {
            fprintf(stderr, "open: %s\n", aioixy_last_error());
            return 1;
        }
        uint64_t sent[2] = {0, 0}, recvd[2] = {0, 0};
        struct aioixy_pkt_buf *bufs[32];
        int idle = 0;
        while (recvd[0] < n || recvd[1] < n) {
            int progress = 0;
            for (uint16_t q = 0; q < 2; q++) {
                /* a window of 256 in flight per queue: a veth has no flow control */
                if (sent[q] < n && sent[q] - recvd[q] < 256) {
                    uint32_t want = n - sent[q] < 32 ? (uint32_t)(n - sent[q]) : 32;
                    if (aioixy_port_alloc(b, q, bufs, want, 60)) {
                        for (uint32_t i = 0; i < want; i++)
                            frame(bufs[i], q, sent[q] + i);
                        uint32_t k = aioixy_tx_enqueue(b, q, bufs, want);
                        if (k < want)
                            aioixy_mempool_free_bulk(bufs + k, want - k);
                        sent[q] += k;
                        progress += k > 0;
                    }
                }
                uint32_t got = aioixy_rx_dequeue(a, q, bufs, 32);
                for (uint32_t i = 0; i < got; i++) {
                    uint16_t fq;
                    uint64_t seq;
                    memcpy(&fq, bufs[i]->data + 14, sizeof(fq));
                    memcpy(&seq, bufs[i]->data + 16, sizeof(seq));
                    if (bufs[i]->len != 60 || fq != q || seq != recvd[q]) {
                        fprintf(stderr, "FAIL: queue %u got len %u queue %u seq %llu, expected seq %llu\n",
                                q, bufs[i]->len, fq, (unsigned long long)seq,
                                (unsigned long long)recvd[q]);
                        return 1;
                    }
                    recvd[q]++;
                }
                if (got)
                    aioixy_mempool_free_bulk(bufs, got);
                progress += got > 0;
            }
            if (progress) {
                idle = 0;
            } else if (++idle > 5000) { /* ~5 s without any progress */
                fprintf(stderr, "FAIL: stalled at %llu/%llu and %llu/%llu\n",
                        (unsigned long long)recvd[0], (unsigned long long)sent[0],
                        (unsigned long long)recvd[1], (unsigned long long)sent[1]);
                return 1;
            } else {
                usleep(1000);
            }
        }
        struct aioixy_dev_stats s;
        aioixy_port_dev_stats(a, &s);
        if (s.rx_packets != 2 * n) {
            fprintf(stderr, "FAIL: device counted %llu rx, expected %llu\n",
                    (unsigned long long)s.rx_packets, (unsigned long long)(2 * n));
            return 1;
        }
        aioixy_port_close(a);
        aioixy_port_close(b);
    }
    if (aioixy_mempool_live_count() != 0) {
        fprintf(stderr, "FAIL: %u pools still alive after close\n", aioixy_mempool_live_count());
        return 1;
    }
    printf("xdp_smoke: %llu frames x 2 queues x 3 rounds ok\n", (unsigned long long)n);
    return 0;
}
