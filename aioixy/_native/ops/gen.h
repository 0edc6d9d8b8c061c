/* Native packet generation: a frame built once, per-batch fills of what varies.
 *
 * A generator holds one template frame (Ethernet/IPv4/UDP, the numbered test frame of
 * frames.h) with its headers and checksums computed once, and the one's-complement sums that do
 * not change between packets. aioixy_gen_fill writes a whole batch in one call: per packet it
 * copies the template (cache-hot: one or two cache lines for small frames) and patches what
 * varies -- the sequence number, the flow (source/destination port or address, round robin over
 * `flows`), the size (uniform over min_len..max_len), a timestamp -- with IPv4 and UDP checksums
 * that stay correct, finished from the precomputed sums rather than recomputed over the frame.
 *
 * The template is copied rather than left in the buffers (ixy's pktgen keeps pre-filled buffers
 * in a pool of its own): here tx buffers come from the port's pool, shared with rx, and a pair
 * port hands them to another port's reader, so what a buffer held before is not known.
 */
#ifndef AIOIXY_GEN_H
#define AIOIXY_GEN_H

#include "common.h"
#include "frames.h"
#include "mempool.h"

/* the longest frame a generator makes: the largest buffer's data room */
#define AIOIXY_GEN_MAX_LEN (AIOIXY_MAX_BUF_SIZE - AIOIXY_PKT_HEADER)
/* where the timestamp goes: right after the sequence number, within the shortest frame */
#define AIOIXY_GEN_TS_OFFSET (AIOIXY_FRAME_SEQ_OFFSET + AIOIXY_FRAME_SEQ_LEN)
#define AIOIXY_GEN_TS_END (AIOIXY_GEN_TS_OFFSET + 8)
_Static_assert(AIOIXY_GEN_TS_END <= AIOIXY_FRAME_MIN, "every frame has room for the timestamp");

/* what changes from flow to flow (spec.vary): field = its base value + flow index */
enum aioixy_gen_vary {
    AIOIXY_GEN_VARY_SPORT = 1,
    AIOIXY_GEN_VARY_DPORT = 2,
    AIOIXY_GEN_VARY_SRC_IP = 4,
    AIOIXY_GEN_VARY_DST_IP = 8,
};

enum aioixy_gen_flags {
    AIOIXY_GEN_SEQ = 1,        /* u64 sequence number at AIOIXY_FRAME_SEQ_OFFSET (else 0) */
    AIOIXY_GEN_TIMESTAMP = 2,  /* u64 CLOCK_REALTIME ns at AIOIXY_GEN_TS_OFFSET, per batch */
    AIOIXY_GEN_UDP_CSUM = 4,   /* compute the UDP checksum (else 0: "none", legal over IPv4) */
};

struct aioixy_gen_spec {
    struct aioixy_frame_addrs addrs; /* flow 0's addresses and ports; ip_id is ignored (0) */
    uint32_t min_len, max_len;       /* AIOIXY_FRAME_MIN <= min_len <= max_len <= GEN_MAX_LEN */
    uint32_t flows;                  /* >= 1 */
    uint32_t vary;                   /* enum aioixy_gen_vary bits; 0 with flows == 1 */
    uint32_t flags;                  /* enum aioixy_gen_flags bits */
    uint64_t seed;                   /* of the size draw */
};

struct aioixy_gen {
    struct aioixy_gen_spec spec;
    uint64_t seq;                    /* next sequence number (the caller may set it) */
    uint32_t flow;                   /* next flow index */
    uint64_t bytes;                  /* bytes of every frame filled so far */
    uint64_t rng;                    /* xorshift64 state of the size draw */
    uint32_t magic;
    uint32_t ip_const, udp_const;    /* sums of the header words that never change */
    uint32_t sport, dport, src_ip, dst_ip; /* flow 0's values, host order */
    /* payload_sum[k]: folded sum of the template's first 2k UDP payload bytes (the sequence
     * number and timestamp bytes count as 0 there: they are added per packet) */
    uint16_t payload_sum[(AIOIXY_GEN_MAX_LEN - AIOIXY_FRAME_SEQ_OFFSET) / 2 + 1];
    uint8_t tmpl[AIOIXY_GEN_MAX_LEN];
};

/* Check `spec` and build the template and sums into `g` (which may be uninitialised memory).
 * Returns 0, or -AIOIXY_EINVAL with the error message set and `g` as it was. */
int aioixy_gen_init(struct aioixy_gen *g, const struct aioixy_gen_spec *spec);

/* Fill bufs[0..n) (NULL slots skipped): each gets a whole frame and its length. All or nothing:
 * if one buffer's data room is shorter than spec.max_len, nothing is written and -AIOIXY_EINVAL
 * is returned. Otherwise returns the number of frames written. */
int32_t aioixy_gen_fill(struct aioixy_gen *g, struct aioixy_pkt_buf *const *bufs, uint32_t n);

#endif
