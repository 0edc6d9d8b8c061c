/* The kernel's own AF_PACKET ceiling for bench/bench_kernel.py: a plain C loop, no aioixy.
 *   pktloop tx IFNAME SECONDS [BATCH]   sendmmsg() of 60-byte broadcast frames, BATCH per call
 *   pktloop rx IFNAME SECONDS [BATCH]   recvmmsg() of whatever arrives, BATCH per call
 * Prints one JSON line: {"mode", "packets", "seconds", "mpps"}. Also the traffic generator of
 * the rx measurements (tx mode). Built by the benchmark with the system C compiler. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s tx|rx IFNAME SECONDS [BATCH]\n", argv[0]);
        return 2;
    }
    int tx = strcmp(argv[1], "tx") == 0;
    double seconds = atof(argv[3]);
    int batch = argc > 4 ? atoi(argv[4]) : 64;
    if (batch < 1 || batch > MAX_BATCH)
        batch = 64;
    int ifindex = (int)if_nametoindex(argv[2]);
    if (!ifindex) {
        perror("if_nametoindex");
        return 1;
    }
    int s = socket(AF_PACKET, SOCK_RAW, tx ? 0 : htons(ETH_P_ALL));
    if (s < 0) {
        perror("socket");
        return 1;
    }
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = ifindex,
                              .sll_protocol = tx ? 0 : htons(ETH_P_ALL)};
    if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) != 0) {
        perror("bind");
        return 1;
    }
    static unsigned char frames[MAX_BATCH][2048];
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < batch; i++) {
        unsigned char *f = frames[i];
        memset(f, 0xff, 6);
        memcpy(f + 6, "\x02\xaa\x00\x00\x00\x01", 6);
        f[12] = 0x08; /* IPv4 ethertype; the body is zeros: nobody parses it */
        f[13] = 0x00;
        iov[i].iov_base = f;
        iov[i].iov_len = tx ? 60 : 2048;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    unsigned long long packets = 0;
    double start = now(), end = start + seconds, t;
    unsigned iter = 0;
    for (;;) {
        int n = tx ? sendmmsg(s, msgs, (unsigned)batch, 0)
                   : recvmmsg(s, msgs, (unsigned)batch, MSG_WAITFORONE, NULL);
        if (n > 0)
            packets += (unsigned long long)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR && errno != ENOBUFS) {
            perror(tx ? "sendmmsg" : "recvmmsg");
            return 1;
        }
        if ((++iter & 15) == 0 || n <= 0) {
            t = now();
            if (t >= end)
                break;
        }
    }
    t = now() - start;
    printf("{\"mode\": \"%s\", \"packets\": %llu, \"seconds\": %.3f, \"mpps\": %.4f}\n",
           tx ? "tx" : "rx", packets, t, (double)packets / t / 1e6);
    return 0;
}
