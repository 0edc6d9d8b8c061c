/* Internet checksum arithmetic (RFC 1071, RFC 1624), shared by the batch operations (ops/) and
 * the kernel ports' receive paths (bus/kframe.c), so there is one implementation of it. */
#ifndef AIOIXY_CSUM_H
#define AIOIXY_CSUM_H

#include <stdint.h>
#include <string.h>

static inline uint32_t aioixy_csum_fold(uint64_t s)
{
    s = (s & 0xffffffffu) + (s >> 32);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    s = (s & 0xffffu) + (s >> 16);
    return (uint32_t)s;
}

/* The ones' complement sum of len bytes, folded to 16 bits, in network order. Words are
 * loaded in host order, four bytes at a time, and the folded sum is byte-swapped once at the
 * end: the sum is independent of byte order up to that swap (RFC 1071, 2.B). */
static inline uint64_t aioixy_csum_bytes(const uint8_t *p, uint32_t len)
{
    uint64_t s = 0;
    uint32_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint32_t w[2];
        memcpy(w, p + i, 8);
        s += (uint64_t)w[0] + w[1];
    }
    for (; i + 4 <= len; i += 4) {
        uint32_t w;
        memcpy(&w, p + i, 4);
        s += w;
    }
    if (i + 2 <= len) {
        uint16_t w;
        memcpy(&w, p + i, 2);
        s += w;
        i += 2;
    }
    if (i < len) { /* a last odd byte is the high half of a network-order word */
        uint8_t last[2] = {p[i], 0};
        uint16_t w;
        memcpy(&w, last, 2);
        s += w;
    }
    uint32_t f = aioixy_csum_fold(s);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    f = (uint32_t)__builtin_bswap16((uint16_t)f);
#endif
    return f;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 16-bit word changing from m to m'. */
static inline uint32_t aioixy_csum_adjust(uint32_t hc, uint32_t old, uint32_t new_)
{
    return ~aioixy_csum_fold((uint64_t)(~hc & 0xffffu) + (~old & 0xffffu) + new_) & 0xffffu;
}

#endif
