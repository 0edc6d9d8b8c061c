/* Batch operations (see ops.h). Bytes on the wire are read and written one at a time in
 * network order, so nothing here depends on host byte order or alignment. */
#include "ops.h"

#include "csum.h"

#include <string.h>

static inline uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t rd32(const uint8_t *p) { return rd16(p) << 16 | rd16(p + 2); }
static inline uint64_t rd48(const uint8_t *p) { return (uint64_t)rd16(p) << 32 | rd32(p + 2); }
static inline void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, v >> 16); wr16(p + 2, v); }
static inline void wr48(uint8_t *p, uint64_t v) { wr16(p, (uint32_t)(v >> 32)); wr32(p + 2, (uint32_t)v); }

/* Where the headers are, as far as the packet's own bytes vouch for them. */
struct hdrs {
    uint32_t l3, l4;
    uint8_t proto;
    bool ip, ports;
};

static inline void parse(const uint8_t *d, uint32_t len, struct hdrs *h)
{
    /* every field defined on every path: callers compute offsets before testing h->ip */
    h->l3 = h->l4 = 0;
    h->proto = 0;
    h->ip = h->ports = false;
    if (len < 14)
        return;
    uint32_t et = rd16(d + 12), l3 = 14;
    if (et == 0x8100 && len >= 18) {
        et = rd16(d + 16);
        l3 = 18;
    }
    if (et != 0x0800 || len < l3 + 20)
        return;
    uint32_t ihl = (d[l3] & 15u) * 4u;
    if ((d[l3] >> 4) != 4 || ihl < 20 || len < l3 + ihl)
        return;
    h->ip = true;
    h->l3 = l3;
    h->l4 = l3 + ihl;
    h->proto = d[l3 + 9];
    h->ports = (h->proto == 6 || h->proto == 17) && (rd16(d + l3 + 6) & 0x1fff) == 0 &&
               len >= h->l4 + 4;
}

/* ---- ones' complement arithmetic: core/csum.h ---------------------------------------- */

#define fold aioixy_csum_fold
#define sum_bytes aioixy_csum_bytes
#define csum_adjust aioixy_csum_adjust

/* ---- fields -------------------------------------------------------------------------------- */

enum layer { L2, TAG, L3, L4 };
struct field_desc { uint8_t layer, off, width; };
static const struct field_desc FIELDS[AIOIXY_F_COUNT] = {
    [AIOIXY_F_DST_MAC] = {L2, 0, 6},  [AIOIXY_F_SRC_MAC] = {L2, 6, 6},
    [AIOIXY_F_ETHERTYPE] = {L2, 12, 2}, [AIOIXY_F_VLAN_TCI] = {TAG, 14, 2},
    [AIOIXY_F_IP_TOS] = {L3, 1, 1},   [AIOIXY_F_IP_LEN] = {L3, 2, 2},
    [AIOIXY_F_IP_ID] = {L3, 4, 2},    [AIOIXY_F_IP_TTL] = {L3, 8, 1},
    [AIOIXY_F_IP_PROTO] = {L3, 9, 1}, [AIOIXY_F_IP_CSUM] = {L3, 10, 2},
    [AIOIXY_F_IP_SRC] = {L3, 12, 4},  [AIOIXY_F_IP_DST] = {L3, 16, 4},
    [AIOIXY_F_SPORT] = {L4, 0, 2},    [AIOIXY_F_DPORT] = {L4, 2, 2},
};

uint32_t aioixy_ops_field_width(int field)
{
    return field >= 0 && field < AIOIXY_F_COUNT ? FIELDS[field].width : 0;
}

/* Offset of the field in this packet, or -1 if the packet does not have it. */
static inline int64_t field_offset(const struct field_desc *fd, const uint8_t *d, uint32_t len,
                                   struct hdrs *h)
{
    uint32_t off;
    switch (fd->layer) {
    case L2:
        off = fd->off;
        break;
    case TAG:
        if (len < 18 || rd16(d + 12) != 0x8100)
            return -1;
        off = fd->off;
        break;
    case L3:
        parse(d, len, h);
        if (!h->ip)
            return -1;
        off = h->l3 + fd->off;
        break;
    default:
        parse(d, len, h);
        if (!h->ports)
            return -1;
        off = h->l4 + fd->off;
        break;
    }
    return off + fd->width <= len ? (int64_t)off : -1;
}

static inline uint64_t read_width(const uint8_t *p, uint32_t w)
{
    switch (w) {
    case 1: return p[0];
    case 2: return rd16(p);
    case 4: return rd32(p);
    case 6: return rd48(p);
    default: return (uint64_t)rd32(p) << 32 | rd32(p + 4);
    }
}

static inline void store_elem(void *out, uint32_t i, uint32_t w, uint64_t v)
{
    switch (w) {
    case 1: ((uint8_t *)out)[i] = (uint8_t)v; break;
    case 2: ((uint16_t *)out)[i] = (uint16_t)v; break;
    case 4: ((uint32_t *)out)[i] = (uint32_t)v; break;
    default: ((uint64_t *)out)[i] = v; break;
    }
}

static inline uint64_t load_elem(const void *in, uint32_t i, uint32_t w)
{
    switch (w) {
    case 1: return ((const uint8_t *)in)[i];
    case 2: return ((const uint16_t *)in)[i];
    case 4: return ((const uint32_t *)in)[i];
    default: return ((const uint64_t *)in)[i];
    }
}

uint32_t aioixy_ops_lengths(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t *out)
{
    uint32_t owned = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        out[i] = b ? b->len : 0;
        owned += b != NULL;
    }
    return owned;
}

int32_t aioixy_ops_gather(struct aioixy_pkt_buf *const *bufs, uint32_t n, int field, void *out,
                          uint8_t *present)
{
    if (field < 0 || field >= AIOIXY_F_COUNT)
        return -AIOIXY_EINVAL;
    const struct field_desc *fd = &FIELDS[field];
    int32_t found = 0;
    struct hdrs h;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        int64_t off = b ? field_offset(fd, b->data, b->len, &h) : -1;
        uint64_t v = off >= 0 ? read_width(b->data + off, fd->width) : 0;
        store_elem(out, i, fd->width, v);
        if (present)
            present[i] = off >= 0;
        found += off >= 0;
    }
    return found;
}

int32_t aioixy_ops_gather_at(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t offset,
                             uint32_t width, uint64_t *out, uint8_t *present)
{
    if (width != 1 && width != 2 && width != 4 && width != 8)
        return -AIOIXY_EINVAL;
    int32_t found = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        bool ok = b && b->len >= width && offset <= b->len - width;
        out[i] = ok ? read_width(b->data + offset, width) : 0;
        if (present)
            present[i] = ok;
        found += ok;
    }
    return found;
}

/* Fix the checksum at `csum` (if any) for the 16-bit words of [old, old+w) becoming new. */
static inline uint32_t adjust_words(uint32_t hc, const uint8_t *old, const uint8_t *new_,
                                    uint32_t w)
{
    for (uint32_t k = 0; k < w; k += 2)
        hc = csum_adjust(hc, rd16(old + k), rd16(new_ + k));
    return hc;
}

int32_t aioixy_ops_set_field(struct aioixy_pkt_buf *const *bufs, uint32_t n, int field,
                             const void *values, uint64_t scalar)
{
    if (field < 0 || field >= AIOIXY_F_COUNT)
        return -AIOIXY_EINVAL;
    const struct field_desc *fd = &FIELDS[field];
    const uint32_t w = fd->width;
    int32_t done = 0;
    struct hdrs h = {0}; /* parsed only for L3/L4 fields; L2 ones never read it */
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        int64_t off = b ? field_offset(fd, b->data, b->len, &h) : -1;
        if (off < 0)
            continue;
        uint64_t v = values ? load_elem(values, i, w) : scalar;
        uint8_t *p = b->data + off;
        /* the checksum sees the field inside its aligned 16-bit word(s) */
        uint32_t a0 = (fd->layer == L3 || fd->layer == L4) && (fd->off & 1) ? 1 : 0;
        uint8_t before[8], after[8];
        uint32_t span = (w + a0 + 1) & ~1u;
        memcpy(before, p - a0, span);
        switch (w) {
        case 1: p[0] = (uint8_t)v; break;
        case 2: wr16(p, (uint32_t)v); break;
        case 4: wr32(p, (uint32_t)v); break;
        default: wr48(p, v); break;
        }
        memcpy(after, p - a0, span);
        if (fd->layer == L3 && field != AIOIXY_F_IP_CSUM) {
            uint8_t *c = b->data + h.l3 + 10;
            wr16(c, adjust_words(rd16(c), before, after, span));
        }
        bool in_pseudo = field == AIOIXY_F_IP_SRC || field == AIOIXY_F_IP_DST ||
                         field == AIOIXY_F_SPORT || field == AIOIXY_F_DPORT;
        if (in_pseudo && h.ip && (h.proto == 6 || h.proto == 17) &&
            (rd16(b->data + h.l3 + 6) & 0x1fff) == 0) {
            uint32_t coff = h.l4 + (h.proto == 6 ? 16u : 6u);
            if (coff + 2 <= b->len) {
                uint8_t *c = b->data + coff;
                uint32_t hc = rd16(c);
                if (!(h.proto == 17 && hc == 0)) {
                    hc = adjust_words(hc, before, after, span);
                    wr16(c, h.proto == 17 && hc == 0 ? 0xffffu : hc);
                }
            }
        }
        done++;
    }
    return done;
}

/* ---- rewrites ------------------------------------------------------------------------------ */

uint32_t aioixy_ops_swap_macs(struct aioixy_pkt_buf *const *bufs, uint32_t n)
{
    uint32_t done = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        if (!b || b->len < 12)
            continue;
        uint8_t tmp[6];
        memcpy(tmp, b->data, 6);
        memcpy(b->data, b->data + 6, 6);
        memcpy(b->data + 6, tmp, 6);
        done++;
    }
    return done;
}

uint32_t aioixy_ops_set_mac(struct aioixy_pkt_buf *const *bufs, uint32_t n, int which,
                            const uint8_t *mac)
{
    uint32_t done = 0, off = which ? 6 : 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        if (!b || b->len < 12)
            continue;
        memcpy(b->data + off, mac, 6);
        done++;
    }
    return done;
}

uint32_t aioixy_ops_dec_ttl(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint8_t *status)
{
    uint32_t done = 0;
    struct hdrs h;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        uint8_t st = AIOIXY_OP_SKIPPED;
        if (b) {
            parse(b->data, b->len, &h);
            if (h.ip) {
                uint8_t *ip = b->data + h.l3;
                if (ip[8] <= 1) {
                    st = AIOIXY_OP_EXPIRED;
                } else {
                    uint32_t old = rd16(ip + 8);
                    ip[8]--;
                    wr16(ip + 10, csum_adjust(rd16(ip + 10), old, rd16(ip + 8)));
                    st = AIOIXY_OP_DONE;
                    done++;
                }
            }
        }
        if (status)
            status[i] = st;
    }
    return done;
}

uint32_t aioixy_ops_set_vlan(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint16_t tci,
                             uint8_t *status)
{
    uint32_t done = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        uint8_t st = AIOIXY_OP_SKIPPED;
        if (b && b->len >= 14) {
            if (b->len >= 18 && rd16(b->data + 12) == 0x8100) {
                wr16(b->data + 14, tci);
                st = AIOIXY_OP_DONE;
            } else if (b->len + 4 > aioixy_mempool_data_room(b->pool)) {
                st = AIOIXY_OP_NO_ROOM;
            } else {
                memmove(b->data + 16, b->data + 12, b->len - 12);
                wr16(b->data + 12, 0x8100);
                wr16(b->data + 14, tci);
                b->len += 4;
                st = AIOIXY_OP_DONE;
            }
        }
        done += st == AIOIXY_OP_DONE;
        if (status)
            status[i] = st;
    }
    return done;
}

uint32_t aioixy_ops_strip_vlan(struct aioixy_pkt_buf *const *bufs, uint32_t n)
{
    uint32_t done = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        if (!b || b->len < 18 || rd16(b->data + 12) != 0x8100)
            continue;
        memmove(b->data + 12, b->data + 16, b->len - 16);
        b->len -= 4;
        done++;
    }
    return done;
}

/* ---- checksums ------------------------------------------------------------------------------ */

uint32_t aioixy_ops_ipv4_csum(struct aioixy_pkt_buf *const *bufs, uint32_t n, bool fix,
                              uint8_t *status)
{
    uint32_t good = 0;
    struct hdrs h;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        uint8_t st = AIOIXY_OP_SKIPPED;
        if (b) {
            parse(b->data, b->len, &h);
            if (h.ip) {
                uint8_t *ip = b->data + h.l3;
                uint32_t hl = h.l4 - h.l3;
                if (fix) {
                    wr16(ip + 10, 0);
                    wr16(ip + 10, ~fold(sum_bytes(ip, hl)) & 0xffffu);
                    st = AIOIXY_OP_DONE;
                } else {
                    st = fold(sum_bytes(ip, hl)) == 0xffffu ? AIOIXY_OP_DONE : AIOIXY_OP_BAD;
                }
            }
        }
        good += st == AIOIXY_OP_DONE;
        if (status)
            status[i] = st;
    }
    return good;
}

uint32_t aioixy_ops_l4_csum(struct aioixy_pkt_buf *const *bufs, uint32_t n, bool fix,
                            uint8_t *status)
{
    uint32_t good = 0;
    struct hdrs h;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        uint8_t st = AIOIXY_OP_SKIPPED;
        if (b) {
            parse(b->data, b->len, &h);
            const uint8_t *ip = b->data + h.l3;
            uint32_t tot = h.ip ? rd16(ip + 2) : 0, hl = h.l4 - h.l3;
            uint32_t min = h.proto == 6 ? 20 : 8;
            if (h.ports && tot >= hl + min && h.l3 + tot <= b->len &&
                (rd16(ip + 6) & 0x3fff) == 0) {
                uint8_t *l4 = b->data + h.l4;
                uint32_t l4len = tot - hl, coff = h.proto == 6 ? 16 : 6;
                uint32_t hc = rd16(l4 + coff);
                uint64_t pseudo = (uint64_t)rd32(ip + 12) + rd32(ip + 16) + h.proto + l4len;
                if (h.proto == 17 && hc == 0 && !fix) {
                    st = AIOIXY_OP_NONE;
                } else if (fix) {
                    wr16(l4 + coff, 0);
                    uint32_t c = ~fold(pseudo + sum_bytes(l4, l4len)) & 0xffffu;
                    wr16(l4 + coff, h.proto == 17 && c == 0 ? 0xffffu : c);
                    st = AIOIXY_OP_DONE;
                } else {
                    st = fold(pseudo + sum_bytes(l4, l4len)) == 0xffffu ? AIOIXY_OP_DONE
                                                                        : AIOIXY_OP_BAD;
                }
            }
        }
        good += st == AIOIXY_OP_DONE || st == AIOIXY_OP_NONE;
        if (status)
            status[i] = st;
    }
    return good;
}

/* ---- hashing -------------------------------------------------------------------------------- */

static inline uint32_t mix32(uint32_t h, uint32_t k)
{
    k *= 0xcc9e2d51u;
    k = (k << 15) | (k >> 17);
    k *= 0x1b873593u;
    h ^= k;
    h = (h << 13) | (h >> 19);
    return h * 5u + 0xe6546b64u;
}

static inline uint32_t fmix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

uint32_t aioixy_ops_flow_hash(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t seed,
                              bool symmetric, uint32_t *out)
{
    uint32_t owned = 0;
    struct hdrs h;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        if (!b) {
            out[i] = 0;
            continue;
        }
        owned++;
        const uint8_t *d = b->data;
        parse(d, b->len, &h);
        uint32_t a, c, e;
        if (h.ip) {
            a = rd32(d + h.l3 + 12);
            c = rd32(d + h.l3 + 16);
            uint32_t sp = h.ports ? rd16(d + h.l4) : 0, dp = h.ports ? rd16(d + h.l4 + 2) : 0;
            if (symmetric && (a > c || (a == c && sp > dp))) {
                uint32_t t = a; a = c; c = t;
                t = sp; sp = dp; dp = t;
            }
            e = sp << 16 | dp;
            out[i] = fmix32(mix32(mix32(mix32(mix32(seed, a), c), e), h.proto) ^ 13u);
        } else if (b->len >= 14) {
            uint64_t m1 = rd48(d), m2 = rd48(d + 6);
            if (symmetric && m1 > m2) {
                uint64_t t = m1; m1 = m2; m2 = t;
            }
            uint32_t x = mix32(mix32(seed, (uint32_t)m1), (uint32_t)(m1 >> 32));
            x = mix32(mix32(x, (uint32_t)m2), (uint32_t)(m2 >> 32));
            out[i] = fmix32(mix32(x, rd16(d + 12)) ^ 14u);
        } else {
            out[i] = fmix32(seed ^ b->len);
        }
    }
    return owned;
}

/* ---- classification ------------------------------------------------------------------------- */

/* Index of the elementary interval holding v: the last i with bounds[i] <= v (bounds[0] = 0).
 * The jump table narrows the search to one bucket's bounds (usually zero or one). */
static inline uint32_t interval(const struct aioixy_filter_field *f, uint64_t v)
{
    const uint64_t *bounds = f->bounds;
    uint32_t lo = 0, hi = f->nbounds - 1; /* the answer lies in [lo, hi] */
    if (f->jump) {
        uint64_t k = v >> f->shift;
        if (k + 1 < f->njump) {
            lo = f->jump[k];
            hi = f->jump[k + 1];
            if (hi >= f->nbounds || lo > hi) /* a malformed table: search everything */
                lo = 0, hi = f->nbounds - 1;
        }
    }
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if (bounds[mid] <= v)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Field values as RuleSet.allows() sees a frame: IPv4 means EtherType 0x0800 (no VLAN look-
 * through) and >= 34 bytes; the L4 header starts at 14 + IHL * 4 whatever the IHL says; a port
 * is there for TCP/UDP when those 4 bytes are. Absent values sit just past each field's range. */
static inline void classify_keys(const uint8_t *d, uint32_t len, uint64_t key[6])
{
    key[0] = 0x10000;
    key[1] = key[2] = 1ull << 32;
    key[3] = 0x100;
    key[4] = key[5] = 0x10000;
    if (len < 14)
        return;
    uint32_t et = rd16(d + 12);
    if (et != 0x0800 || len < 34) {
        key[0] = et == 0x0800 ? 0x10000 : et;
        return;
    }
    key[0] = et;
    key[1] = rd32(d + 26);
    key[2] = rd32(d + 30);
    key[3] = d[23];
    uint32_t l4 = 14 + (d[14] & 15u) * 4u;
    if ((d[23] == 6 || d[23] == 17) && len >= l4 + 4) {
        key[4] = rd16(d + l4);
        key[5] = rd16(d + l4 + 2);
    }
}

int32_t aioixy_ops_classify(struct aioixy_filter *f, struct aioixy_pkt_buf *const *bufs,
                            uint32_t n, uint8_t *verdict, uint16_t *rule)
{
    const uint32_t words = f->words;
    if (words == 0 || words > AIOIXY_FILTER_MAX_WORDS || f->nrules > words * 64u ||
        f->ntouched > f->nrules + 1)
        return -AIOIXY_EINVAL;
    for (int k = 0; k < AIOIXY_FILTER_FIELDS; k++)
        if (f->fields[k].nbounds == 0)
            return -AIOIXY_EINVAL;
    int32_t allowed = 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct aioixy_pkt_buf *b = bufs[i];
        if (!b) {
            verdict[i] = 0;
            if (rule)
                rule[i] = 0xffff;
            continue;
        }
        uint64_t key[AIOIXY_FILTER_FIELDS];
        classify_keys(b->data, b->len, key);
        const uint64_t *rows[AIOIXY_FILTER_FIELDS];
        for (int k = 0; k < AIOIXY_FILTER_FIELDS; k++) {
            const struct aioixy_filter_field *ff = &f->fields[k];
            rows[k] = ff->bitmaps + (size_t)interval(ff, key[k]) * words;
        }
        uint32_t r = f->nrules;
        for (uint32_t w = 0; w < words; w++) {
            uint64_t m = rows[0][w] & rows[1][w] & rows[2][w] & rows[3][w] & rows[4][w] &
                         rows[5][w];
            if (m) {
                r = w * 64u + (uint32_t)__builtin_ctzll(m);
                break;
            }
        }
        uint8_t v = r < f->nrules ? f->allow[r] : f->default_allow;
        verdict[i] = v;
        if (rule)
            rule[i] = (uint16_t)r;
        if (f->hits[r]++ == 0)
            f->touched[f->ntouched++] = r;
        allowed += v;
    }
    return allowed;
}

uint32_t aioixy_ops_split(struct aioixy_pkt_buf *const *bufs, uint32_t n, const uint8_t *mask,
                          struct aioixy_pkt_buf **yes, struct aioixy_pkt_buf **no,
                          uint32_t *n_no)
{
    uint32_t y = 0, o = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct aioixy_pkt_buf *b = bufs[i];
        if (!b)
            continue;
        if (mask[i])
            yes[y++] = b;
        else
            no[o++] = b;
    }
    *n_no = o;
    return y;
}

uint32_t aioixy_ops_split_take(struct aioixy_pkt_buf **bufs, uint32_t n, const uint8_t *mask,
                               struct aioixy_pkt_buf **yes, struct aioixy_pkt_buf **no,
                               uint32_t *n_no)
{
    uint32_t y = aioixy_ops_split(bufs, n, mask, yes, no, n_no);
    memset(bufs, 0, n * sizeof(*bufs));
    return y;
}

uint32_t aioixy_ops_take_all(struct aioixy_pkt_buf **dst, struct aioixy_pkt_buf **src, uint32_t n)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (src[i]) {
            dst[k++] = src[i];
            src[i] = NULL;
        }
    }
    return k;
}
