/* Batch operations on random, mostly malformed packets: each packet lives in a heap block of
 * exactly 64 + len bytes, so under AddressSanitizer any read or write past a packet's length is
 * caught. Also checks invariants a wrong bound would break: lengths unchanged (except by the
 * VLAN ops, which are not run here because they may legitimately grow a frame up to its
 * buffer's room), fix-then-verify checksums agree, classify's verdicts agree with its rule
 * indices. Usage: ops_fuzz ROUNDS */
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 32

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

/* Random bytes with the header fields the parser branches on often set to plausible values. */
static struct aioixy_pkt_buf *make_pkt(void)
{
    uint32_t len = rnd() % 100;
    struct aioixy_pkt_buf *b = malloc(sizeof(*b) + len);
    memset(b, 0, sizeof(*b));
    b->len = len;
    for (uint32_t i = 0; i < len; i++)
        b->data[i] = (uint8_t)rnd();
    uint32_t l3 = 14;
    if (len >= 14) {
        uint32_t r = rnd() % 8;
        if (r < 2 && len >= 18) {
            b->data[12] = 0x81, b->data[13] = 0x00;
            b->data[16] = 0x08, b->data[17] = 0x00;
            l3 = 18;
        } else if (r < 7) {
            b->data[12] = 0x08, b->data[13] = 0x00;
        }
    }
    if (len > l3 + 9) {
        if (rnd() % 4)
            b->data[l3] = (uint8_t)(0x40 | (5 + rnd() % 3));
        b->data[l3 + 9] = (uint8_t)(rnd() % 2 ? 17 : 6);
        if (rnd() % 2)
            b->data[l3 + 6] = b->data[l3 + 7] = 0;
        if (rnd() % 2) { /* total length: sometimes consistent with the frame */
            uint32_t tot = len - l3 - (rnd() % 3);
            b->data[l3 + 2] = (uint8_t)(tot >> 8), b->data[l3 + 3] = (uint8_t)tot;
        }
    }
    return b;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 10000;
    /* a two-rule filter: deny udp from 10/8, allow tcp to port 80; default allow */
    static const uint64_t eth_b[] = {0, 0x800, 0x801}, ip_b[] = {0, 0x0a000000, 0x0b000000};
    static const uint64_t any_b[] = {0}, proto_b[] = {0, 6, 7, 17, 18}, port_b[] = {0, 80, 81};
    static const uint64_t eth_m[] = {0, 3, 0}, ip_m[] = {2, 3, 2}, any_m[] = {3};
    static const uint64_t proto_m[] = {0, 2, 0, 1, 0}, port_m[] = {1, 3, 1};
    static const uint8_t allow[] = {0, 1};
    uint64_t hits[3] = {0};
    uint32_t touched[3];
    struct aioixy_filter flt = {
        .nrules = 2, .words = 1,
        .fields = {{3, eth_b, eth_m, NULL, 0, 0}, {3, ip_b, ip_m, NULL, 0, 0},
                   {1, any_b, any_m, NULL, 0, 0}, {5, proto_b, proto_m, NULL, 0, 0},
                   {1, any_b, any_m, NULL, 0, 0}, {3, port_b, port_m, NULL, 0, 0}},
        .allow = allow, .default_allow = 1, .hits = hits, .touched = touched,
    };
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 1};
    struct aioixy_pkt_buf *bufs[N], *yes[N], *no[N];
    uint64_t out64[N];
    uint32_t out32[N], lens[N], n_no;
    uint16_t out16[N];
    uint8_t st[N], st2[N], present[N], verdict[N];
    for (long r = 0; r < rounds; r++) {
        for (int i = 0; i < N; i++)
            bufs[i] = rnd() % 16 ? make_pkt() : NULL; /* NULL: a slot the batch gave away */
        aioixy_ops_lengths(bufs, N, lens);
        for (int f = 0; f < AIOIXY_F_COUNT; f++) {
            void *out = aioixy_ops_field_width(f) == 1 ? (void *)st
                      : aioixy_ops_field_width(f) == 2 ? (void *)out16
                      : aioixy_ops_field_width(f) == 4 ? (void *)out32 : (void *)out64;
            if (aioixy_ops_gather(bufs, N, f, out, present) < 0)
                return fprintf(stderr, "ops_fuzz: gather %d refused\n", f), 1;
            aioixy_ops_set_field(bufs, N, f, NULL, rnd());
        }
        aioixy_ops_gather_at(bufs, N, rnd() % 80, 8, out64, present);
        aioixy_ops_swap_macs(bufs, N);
        aioixy_ops_set_mac(bufs, N, 1, mac);
        aioixy_ops_dec_ttl(bufs, N, st);
        aioixy_ops_flow_hash(bufs, N, 7, true, out32);
        aioixy_ops_ipv4_csum(bufs, N, true, NULL);
        aioixy_ops_ipv4_csum(bufs, N, false, st);
        aioixy_ops_l4_csum(bufs, N, true, NULL);
        aioixy_ops_l4_csum(bufs, N, false, st2);
        for (int i = 0; i < N; i++) {
            if (bufs[i] && bufs[i]->len != lens[i])
                return fprintf(stderr, "ops_fuzz: a length changed\n"), 1;
            if (st[i] == AIOIXY_OP_BAD || st2[i] == AIOIXY_OP_BAD)
                return fprintf(stderr, "ops_fuzz: fixed checksum does not verify\n"), 1;
        }
        uint16_t rule[N];
        int32_t allowed = aioixy_ops_classify(&flt, bufs, N, verdict, rule);
        flt.ntouched = 0;
        int32_t count = 0;
        for (int i = 0; i < N; i++) {
            if (!bufs[i])
                continue;
            uint8_t want = rule[i] < 2 ? allow[rule[i]] : 1;
            if (verdict[i] != want)
                return fprintf(stderr, "ops_fuzz: verdict disagrees with rule\n"), 1;
            count += verdict[i];
        }
        if (count != allowed)
            return fprintf(stderr, "ops_fuzz: allowed count wrong\n"), 1;
        memset(hits, 0, sizeof(hits));
        uint32_t ny = aioixy_ops_split(bufs, N, verdict, yes, no, &n_no);
        uint32_t owned = 0;
        for (int i = 0; i < N; i++)
            owned += bufs[i] != NULL;
        if (ny + n_no != owned)
            return fprintf(stderr, "ops_fuzz: split lost or duplicated a packet\n"), 1;
        for (int i = 0; i < N; i++)
            free(bufs[i]);
    }
    printf("ops_fuzz: %ld rounds of %d packets OK\n", rounds, N);
    return 0;
}
