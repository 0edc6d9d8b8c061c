/* Native packet generation (see gen.h). */
#include "gen.h"

#include <string.h>
#include <time.h>

#define GEN_MAGIC 0x67656e31u /* "gen1": set by a successful init */

static inline uint32_t fold(uint64_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint32_t)s;
}

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v);
}

static inline void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* the one's-complement contribution of a 32-bit value (two 16-bit words) */
static inline uint64_t words32(uint32_t v) { return (v >> 16) + (v & 0xffff); }
static inline uint64_t words64(uint64_t v) { return words32((uint32_t)(v >> 32)) + words32((uint32_t)v); }

int aioixy_gen_init(struct aioixy_gen *g, const struct aioixy_gen_spec *spec)
{
    if (spec->min_len < AIOIXY_FRAME_MIN || spec->min_len > spec->max_len ||
        spec->max_len > AIOIXY_GEN_MAX_LEN)
        return aioixy_set_error(AIOIXY_EINVAL, "generator: frame sizes %u..%u out of range %u..%u",
                                spec->min_len, spec->max_len, AIOIXY_FRAME_MIN, AIOIXY_GEN_MAX_LEN);
    if (spec->flows == 0)
        return aioixy_set_error(AIOIXY_EINVAL, "generator: flows must be at least 1");
    if (spec->vary & ~(uint32_t)(AIOIXY_GEN_VARY_SPORT | AIOIXY_GEN_VARY_DPORT |
                                 AIOIXY_GEN_VARY_SRC_IP | AIOIXY_GEN_VARY_DST_IP))
        return aioixy_set_error(AIOIXY_EINVAL, "generator: unknown vary bits %#x", spec->vary);
    if (spec->flows > 1 && !spec->vary)
        return aioixy_set_error(AIOIXY_EINVAL, "generator: %u flows but nothing varies", spec->flows);
    if (spec->flags & ~(uint32_t)(AIOIXY_GEN_SEQ | AIOIXY_GEN_TIMESTAMP | AIOIXY_GEN_UDP_CSUM))
        return aioixy_set_error(AIOIXY_EINVAL, "generator: unknown flags %#x", spec->flags);
    /* checked: from here on the generator is rebuilt (an error above left it as it was) */
    g->magic = 0;
    g->spec = *spec;
    g->spec.addrs.ip_id = 0;
    g->seq = 0;
    g->flow = 0;
    g->rng = spec->seed ? spec->seed : 0x9e3779b97f4a7c15ull;

    uint8_t *t = g->tmpl;
    memset(t, 0, spec->max_len);
    aioixy_frame_headers(t, spec->max_len, &g->spec.addrs);
    /* payload filler: byte i of the frame is (uint8_t)i; sequence number and timestamp 0 */
    for (uint32_t i = AIOIXY_GEN_TS_OFFSET; i < spec->max_len; i++)
        t[i] = (uint8_t)i;
    if (spec->flags & AIOIXY_GEN_TIMESTAMP)
        memset(t + AIOIXY_GEN_TS_OFFSET, 0, 8);

    uint8_t *ip = t + AIOIXY_FRAME_IP_OFFSET, *udp = t + AIOIXY_FRAME_UDP_OFFSET;
    g->sport = spec->addrs.src_port;
    g->dport = spec->addrs.dst_port;
    g->src_ip = be32(ip + 12);
    g->dst_ip = be32(ip + 16);
    /* IPv4 header words that never change: all but total length, checksum, varying addresses */
    uint64_t s = 0;
    for (int w = 0; w < AIOIXY_FRAME_IP_LEN; w += 2)
        if (w != 2 && w != 10)
            s += (uint32_t)ip[w] << 8 | ip[w + 1];
    if (spec->vary & AIOIXY_GEN_VARY_SRC_IP)
        s -= words32(g->src_ip);
    if (spec->vary & AIOIXY_GEN_VARY_DST_IP)
        s -= words32(g->dst_ip);
    g->ip_const = fold(s);
    /* UDP: pseudo-header (addresses, protocol; the length per packet) and the ports */
    s = 17;
    if (!(spec->vary & AIOIXY_GEN_VARY_SRC_IP))
        s += words32(g->src_ip);
    if (!(spec->vary & AIOIXY_GEN_VARY_DST_IP))
        s += words32(g->dst_ip);
    if (!(spec->vary & AIOIXY_GEN_VARY_SPORT))
        s += g->sport;
    if (!(spec->vary & AIOIXY_GEN_VARY_DPORT))
        s += g->dport;
    g->udp_const = fold(s);
    (void)udp;
    const uint8_t *pl = t + AIOIXY_FRAME_SEQ_OFFSET;
    uint32_t words = (spec->max_len - AIOIXY_FRAME_SEQ_OFFSET) / 2;
    uint32_t acc = 0;
    g->payload_sum[0] = 0;
    for (uint32_t k = 0; k < words; k++) {
        acc = fold((uint64_t)acc + ((uint32_t)pl[2 * k] << 8 | pl[2 * k + 1]));
        g->payload_sum[k + 1] = (uint16_t)acc;
    }
    g->magic = GEN_MAGIC;
    return 0;
}

static inline uint64_t next_rng(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

int32_t aioixy_gen_fill(struct aioixy_gen *g, struct aioixy_pkt_buf *const *bufs, uint32_t n)
{
    if (g->magic != GEN_MAGIC)
        return aioixy_set_error(AIOIXY_EINVAL, "generator: not initialised");
    const struct aioixy_gen_spec *sp = &g->spec;
    /* every buffer must hold the longest frame before any is written */
    const struct aioixy_mempool *seen = NULL;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        if (!b || b->pool == seen)
            continue;
        uint32_t room = aioixy_mempool_data_room(b->pool);
        if (room < sp->max_len)
            return aioixy_set_error(AIOIXY_EINVAL, "generator: packet %u's buffer holds %u bytes, "
                                    "frames may be %u", i, room, sp->max_len);
        seen = b->pool;
    }
    uint64_t ts = 0;
    if (sp->flags & AIOIXY_GEN_TIMESTAMP) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        ts = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
    }
    const uint32_t lo = sp->min_len, span = sp->max_len - sp->min_len + 1, vary = sp->vary;
    const bool do_seq = sp->flags & AIOIXY_GEN_SEQ, do_csum = sp->flags & AIOIXY_GEN_UDP_CSUM;
    const uint64_t per_batch = do_csum ? words64(ts) : 0;
    uint64_t seq = g->seq;
    uint32_t flow = g->flow, flows = sp->flows;
    uint64_t bytes = 0;
    int32_t done = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        if (!b)
            continue;
        uint32_t len = lo;
        if (span > 1)
            len += (uint32_t)(((next_rng(&g->rng) >> 32) * span) >> 32);
        uint8_t *d = b->data;
        memcpy(d, g->tmpl, len);
        b->len = len;
        b->rx_flags = 0;
        bytes += len;
        uint8_t *ip = d + AIOIXY_FRAME_IP_OFFSET, *udp = d + AIOIXY_FRAME_UDP_OFFSET;
        uint32_t ip_len = len - AIOIXY_FRAME_ETH_LEN, udp_len = ip_len - AIOIXY_FRAME_IP_LEN;
        uint64_t ip_sum = g->ip_const + ip_len;
        uint64_t udp_sum = g->udp_const + 2 * (uint64_t)udp_len + per_batch;
        if (vary) {
            if (vary & AIOIXY_GEN_VARY_SRC_IP) {
                uint32_t a = g->src_ip + flow;
                put32(ip + 12, a);
                ip_sum += words32(a);
                udp_sum += words32(a);
            }
            if (vary & AIOIXY_GEN_VARY_DST_IP) {
                uint32_t a = g->dst_ip + flow;
                put32(ip + 16, a);
                ip_sum += words32(a);
                udp_sum += words32(a);
            }
            if (vary & AIOIXY_GEN_VARY_SPORT) {
                uint32_t p = (g->sport + flow) & 0xffff;
                put16(udp, p);
                udp_sum += p;
            }
            if (vary & AIOIXY_GEN_VARY_DPORT) {
                uint32_t p = (g->dport + flow) & 0xffff;
                put16(udp + 2, p);
                udp_sum += p;
            }
            if (++flow == flows)
                flow = 0;
        }
        put16(ip + 2, ip_len);
        put16(ip + 10, ~fold(ip_sum) & 0xffff);
        put16(udp + 4, udp_len);
        if (do_seq) {
            put64(d + AIOIXY_FRAME_SEQ_OFFSET, seq);
            udp_sum += words64(seq);
            seq++;
        }
        if (ts)
            put64(d + AIOIXY_GEN_TS_OFFSET, ts);
        if (do_csum) {
            uint32_t pl = udp_len - AIOIXY_FRAME_UDP_LEN;
            udp_sum += g->payload_sum[pl / 2];
            if (pl & 1)
                udp_sum += (uint32_t)g->tmpl[AIOIXY_FRAME_SEQ_OFFSET + pl - 1] << 8;
            uint32_t c = ~fold(udp_sum) & 0xffff;
            put16(udp + 6, c ? c : 0xffff); /* 0 means "no checksum": send its other form */
        }
        done++;
    }
    g->seq = seq;
    g->flow = flow;
    g->bytes += bytes;
    return done;
}
