#include "kframe.h"

#include <linux/virtio_net.h>
#include <string.h>

#include "csum.h"

#ifndef VIRTIO_NET_HDR_GSO_UDP_L4
#define VIRTIO_NET_HDR_GSO_UDP_L4 5 /* UDP_SEGMENT (Linux 5.x headers) */
#endif

static inline uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static inline uint32_t rd32(const uint8_t *p) { return rd16(p) << 16 | rd16(p + 2); }
static inline void wr16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void wr32(uint8_t *p, uint32_t v) { wr16(p, v >> 16); wr16(p + 2, v); }

bool aioixy_kframe_complete(uint8_t *frame, uint32_t len, uint32_t start, uint32_t off)
{
    if ((off != 16 && off != 6) || start >= len || len - start < off + 2)
        return false;
    /* the field holds the pseudo-header sum: it is part of what is summed */
    uint32_t c = ~aioixy_csum_fold(aioixy_csum_bytes(frame + start, len - start)) & 0xffffu;
    /* a computed 0 is sent as 0xffff (for UDP, 0 would mean "no checksum") */
    wr16(frame + start + off, c ? c : 0xffffu);
    return true;
}

/* Where the L3/L4 headers are. The payload of the L4 segment ends at the IP length, which must
 * fit the frame (Ethernet padding after it is not summed). */
struct l4 {
    uint32_t l3, l4, end;
    uint8_t proto;
    bool v6;
};

static bool find_l4(const uint8_t *f, uint32_t len, struct l4 *h)
{
    if (len < 14)
        return false;
    uint32_t et = rd16(f + 12), l3 = 14;
    if (et == 0x8100 && len >= 18) {
        et = rd16(f + 16);
        l3 = 18;
    }
    h->l3 = l3;
    if (et == 0x0800) {
        if (len < l3 + 20 || (f[l3] >> 4) != 4)
            return false;
        uint32_t ihl = (f[l3] & 15u) * 4u, tot = rd16(f + l3 + 2);
        if (ihl < 20 || tot < ihl || l3 + tot > len || (rd16(f + l3 + 6) & 0x3fff))
            return false; /* a fragment's checksum covers the reassembled datagram */
        h->l4 = l3 + ihl;
        h->end = l3 + tot;
        h->proto = f[l3 + 9];
        h->v6 = false;
    } else if (et == 0x86dd) {
        if (len < l3 + 40 || (f[l3] >> 4) != 6)
            return false;
        uint32_t pl = rd16(f + l3 + 4);
        if (l3 + 40 + pl > len)
            return false;
        h->l4 = l3 + 40;
        h->end = l3 + 40 + pl;
        h->proto = f[l3 + 6]; /* extension headers are not followed */
        h->v6 = true;
    } else {
        return false;
    }
    return (h->proto == 6 && h->end >= h->l4 + 20) || (h->proto == 17 && h->end >= h->l4 + 8);
}

/* The pseudo-header sum (unfolded) for an L4 segment of l4len bytes. */
static uint64_t pseudo_sum(const uint8_t *f, const struct l4 *h, uint32_t l4len)
{
    uint64_t s = (uint64_t)h->proto + l4len;
    if (h->v6) {
        for (uint32_t i = 0; i < 32; i += 4)
            s += rd32(f + h->l3 + 8 + i);
    } else {
        s += (uint64_t)rd32(f + h->l3 + 12) + rd32(f + h->l3 + 16);
    }
    return s;
}

static void l4_checksum(uint8_t *f, const struct l4 *h)
{
    uint32_t coff = h->proto == 6 ? 16 : 6, l4len = h->end - h->l4;
    wr16(f + h->l4 + coff, 0);
    uint32_t c = ~aioixy_csum_fold(pseudo_sum(f, h, l4len) + aioixy_csum_bytes(f + h->l4, l4len)) &
                 0xffffu;
    wr16(f + h->l4 + coff, c ? c : 0xffffu);
}

bool aioixy_kframe_fix_partial(uint8_t *frame, uint32_t len)
{
    struct l4 h;
    if (!find_l4(frame, len, &h))
        return false;
    uint32_t coff = h.proto == 6 ? 16 : 6;
    uint32_t field = rd16(frame + h.l4 + coff);
    /* the partial checksum is the folded pseudo-header sum, not complemented. A finished
     * checksum equal to it by chance (1 in 65536) is recomputed to the same value, since a
     * correct checksum is unique; only a wrong one that also matches would be "repaired" */
    uint32_t p = aioixy_csum_fold(pseudo_sum(frame, &h, h.end - h.l4));
    if (field != p && !(p == 0xffffu && field == 0))
        return false;
    l4_checksum(frame, &h);
    return true;
}

int aioixy_gso_init(struct aioixy_gso *g, const uint8_t *frame, uint32_t len, uint8_t gso_type,
                    uint32_t gso_size)
{
    memset(g, 0, sizeof(*g));
    struct l4 h;
    uint8_t t = gso_type & (uint8_t)~VIRTIO_NET_HDR_GSO_ECN;
    if (!gso_size || !find_l4(frame, len, &h) || h.end != len)
        return -1;
    bool want_v6 = t == VIRTIO_NET_HDR_GSO_TCPV6;
    if (t == VIRTIO_NET_HDR_GSO_TCPV4 || t == VIRTIO_NET_HDR_GSO_TCPV6) {
        if (h.proto != 6 || h.v6 != want_v6)
            return -1;
        uint32_t doff = (uint32_t)(frame[h.l4 + 12] >> 4) * 4u;
        if (doff < 20 || h.l4 + doff > len)
            return -1;
        g->hdr_len = h.l4 + doff;
        g->seq = rd32(frame + h.l4 + 4);
    } else if (t == VIRTIO_NET_HDR_GSO_UDP_L4) {
        if (h.proto != 17)
            return -1;
        g->hdr_len = h.l4 + 8;
        g->udp = true;
    } else {
        return -1; /* UFO (IP fragmentation) and anything newer */
    }
    g->frame = frame;
    g->len = len;
    g->l3 = h.l3;
    g->l4 = h.l4;
    g->v6 = h.v6;
    g->mss = gso_size;
    g->ip_id = h.v6 ? 0 : (uint16_t)rd16(frame + h.l3 + 4);
    return 0;
}

uint32_t aioixy_gso_left(const struct aioixy_gso *g)
{
    uint32_t payload = g->len - g->hdr_len;
    if (g->off >= payload)
        return payload == 0 && g->off == 0 ? 1 : 0;
    return (payload - g->off + g->mss - 1) / g->mss;
}

uint32_t aioixy_gso_next(struct aioixy_gso *g, uint8_t *out, uint32_t room)
{
    uint32_t payload = g->len - g->hdr_len;
    uint32_t chunk = payload - g->off < g->mss ? payload - g->off : g->mss;
    uint32_t seg = g->hdr_len + chunk;
    if (seg > room || !aioixy_gso_left(g))
        return 0;
    uint32_t i = g->off / g->mss; /* index of this segment */
    bool first = g->off == 0, last = g->off + chunk >= payload;
    memcpy(out, g->frame, g->hdr_len);
    memcpy(out + g->hdr_len, g->frame + g->hdr_len + g->off, chunk);
    struct l4 h = {.l3 = g->l3, .l4 = g->l4, .end = seg, .proto = g->udp ? 17 : 6, .v6 = g->v6};
    uint8_t *ip = out + g->l3;
    if (g->v6) {
        wr16(ip + 4, seg - g->l3 - 40);
    } else {
        wr16(ip + 2, seg - g->l3);
        wr16(ip + 4, (uint16_t)(g->ip_id + i)); /* what the NIC's TSO does to the id */
        wr16(ip + 10, 0);
        wr16(ip + 10, ~aioixy_csum_fold(aioixy_csum_bytes(ip, g->l4 - g->l3)) & 0xffffu);
    }
    uint8_t *l4 = out + g->l4;
    if (g->udp) {
        wr16(l4 + 4, seg - g->l4);
    } else {
        wr32(l4 + 4, g->seq + g->off);
        uint8_t fl = l4[13];
        if (!last)
            fl &= (uint8_t)~0x09u; /* FIN and PSH only on the last segment */
        if (!first)
            fl &= (uint8_t)~0x80u; /* CWR only on the first */
        l4[13] = fl;
    }
    l4_checksum(out, &h);
    g->off += chunk ? chunk : 1; /* a header-only frame is one segment */
    return seg;
}
