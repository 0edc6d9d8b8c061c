/* Runs one batch operation (aioixy/_native/ops) over a batch of 64 test frames, ROUNDS times,
 * so callgrind can count the instructions each packet costs in it. Usage:
 *   ops_ipp OP ROUNDS [FILTER_FILE]
 * OP: lengths, gather_ip_dst, gather_dport, swap_macs, set_mac, dec_ttl, vlan (set + strip),
 *     ipv4_csum, l4_csum, l4_fix, flow_hash, set_ip_src, classify, split.
 * classify/split read a compiled filter (bench_batchops.py writes it from aioixy.Filter): one
 * line "nrules words default_allow", one of nrules allow flags, then per field a line
 * "nbounds njump shift", a line of bounds, a line of nbounds * words bitmap words and a line of
 * njump jump entries.
 * bench/bench_batchops.py runs it with two ROUNDS values and divides the difference. */
#include "frames.h"
#include "mempool.h"
#include "ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BATCH 64

static struct aioixy_filter *load_filter(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static struct aioixy_filter flt;
    unsigned nr, words, def;
    if (fscanf(f, "%u %u %u", &nr, &words, &def) != 3)
        return NULL;
    uint8_t *allow = calloc(nr + 1, 1);
    for (unsigned i = 0; i < nr; i++) {
        unsigned a;
        if (fscanf(f, "%u", &a) != 1)
            return NULL;
        allow[i] = (uint8_t)a;
    }
    for (int k = 0; k < AIOIXY_FILTER_FIELDS; k++) {
        unsigned nb, nj, shift;
        if (fscanf(f, "%u %u %u", &nb, &nj, &shift) != 3)
            return NULL;
        uint64_t *b = calloc(nb, sizeof(*b)), *m = calloc((size_t)nb * words, sizeof(*m));
        for (unsigned i = 0; i < nb; i++)
            if (fscanf(f, "%lu", &b[i]) != 1)
                return NULL;
        for (unsigned i = 0; i < nb * words; i++)
            if (fscanf(f, "%lu", &m[i]) != 1)
                return NULL;
        uint32_t *j = nj ? calloc(nj, sizeof(*j)) : NULL;
        for (unsigned i = 0; i < nj; i++)
            if (fscanf(f, "%u", &j[i]) != 1)
                return NULL;
        flt.fields[k].jump = j;
        flt.fields[k].njump = nj;
        flt.fields[k].shift = shift;
        flt.fields[k].nbounds = nb;
        flt.fields[k].bounds = b;
        flt.fields[k].bitmaps = m;
    }
    fclose(f);
    flt.nrules = nr;
    flt.words = words;
    flt.allow = allow;
    flt.default_allow = (uint8_t)def;
    flt.hits = calloc(nr + 1, sizeof(uint64_t));
    flt.touched = calloc(nr + 1, sizeof(uint32_t));
    return &flt;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *op = argv[1];
    long rounds = atol(argv[2]);
    struct aioixy_filter *flt = argc > 3 ? load_filter(argv[3]) : NULL;
    struct aioixy_dma_ctx ctx = {.kind = DMA_ANON, .vfio_container_fd = -1};
    struct aioixy_mempool *pool = aioixy_mempool_create(&ctx, 256, 2048);
    struct aioixy_pkt_buf *bufs[BATCH], *yes[BATCH], *no[BATCH];
    if (!pool || aioixy_mempool_alloc_bulk(pool, bufs, BATCH) != BATCH)
        return 1;
    for (uint32_t i = 0; i < BATCH; i++) {
        struct aioixy_frame_addrs a = {
            .dst_mac = {2, 0, 0, 0, 0, 2}, .src_mac = {2, 0, 0, 0, 0, 1},
            .src_ip = {198, 18, 0, 1}, .dst_ip = {198, 18, 0, 2},
            .ip_id = (uint16_t)i, .src_port = (uint16_t)(1024 + i), .dst_port = 5678,
        };
        aioixy_frame_headers(bufs[i]->data, 64, &a);
        aioixy_frame_set_seq(bufs[i]->data, i);
        memset(bufs[i]->data + AIOIXY_FRAME_SEQ_OFFSET + 8, 0xa5, 64 - 50);
        bufs[i]->len = 64;
    }
    aioixy_ops_l4_csum(bufs, BATCH, true, NULL);
    uint64_t out64[BATCH];
    uint32_t out32[BATCH], n_no;
    uint16_t out16[BATCH];
    uint8_t st[BATCH];
    static const uint8_t mac[6] = {2, 0, 0, 0, 0, 9};
    uint64_t sink = 0;
    for (long r = 0; r < rounds; r++) {
        if (!strcmp(op, "lengths"))
            sink += aioixy_ops_lengths(bufs, BATCH, out32);
        else if (!strcmp(op, "gather_ip_dst"))
            sink += (uint64_t)aioixy_ops_gather(bufs, BATCH, AIOIXY_F_IP_DST, out32, st);
        else if (!strcmp(op, "gather_dport"))
            sink += (uint64_t)aioixy_ops_gather(bufs, BATCH, AIOIXY_F_DPORT, out16, st);
        else if (!strcmp(op, "swap_macs"))
            sink += aioixy_ops_swap_macs(bufs, BATCH);
        else if (!strcmp(op, "set_mac"))
            sink += aioixy_ops_set_mac(bufs, BATCH, 1, mac);
        else if (!strcmp(op, "dec_ttl")) {
            if (!aioixy_ops_dec_ttl(bufs, BATCH, st))
                aioixy_ops_set_field(bufs, BATCH, AIOIXY_F_IP_TTL, NULL, 64);
        } else if (!strcmp(op, "vlan")) {
            sink += aioixy_ops_set_vlan(bufs, BATCH, 7, st);
            sink += aioixy_ops_strip_vlan(bufs, BATCH);
        } else if (!strcmp(op, "ipv4_csum"))
            sink += aioixy_ops_ipv4_csum(bufs, BATCH, false, st);
        else if (!strcmp(op, "l4_csum"))
            sink += aioixy_ops_l4_csum(bufs, BATCH, false, st);
        else if (!strcmp(op, "l4_fix"))
            sink += aioixy_ops_l4_csum(bufs, BATCH, true, st);
        else if (!strcmp(op, "flow_hash"))
            sink += aioixy_ops_flow_hash(bufs, BATCH, 0, false, out32);
        else if (!strcmp(op, "set_ip_src"))
            sink += (uint64_t)aioixy_ops_set_field(bufs, BATCH, AIOIXY_F_IP_SRC, NULL,
                                                   0xc6120001u + (uint64_t)(r & 1));
        else if (!strcmp(op, "classify") && flt) {
            sink += (uint64_t)aioixy_ops_classify(flt, bufs, BATCH, st, NULL);
            flt->ntouched = 0;
            memset(flt->hits, 0, (flt->nrules + 1) * sizeof(uint64_t));
        } else if (!strcmp(op, "split")) {
            for (uint32_t i = 0; i < BATCH; i++)
                st[i] = (uint8_t)(i & 1);
            sink += aioixy_ops_split(bufs, BATCH, st, yes, no, &n_no);
        } else {
            fprintf(stderr, "unknown op %s (or no filter file)\n", op);
            return 2;
        }
    }
    (void)out64;
    printf("%lu\n", (unsigned long)sink);
    aioixy_mempool_free_bulk(bufs, BATCH);
    aioixy_mempool_release(pool);
    return 0;
}
