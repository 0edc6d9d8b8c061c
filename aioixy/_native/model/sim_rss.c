/* sim-82599 RSS: the Toeplitz hash over the fields MRQC enables and the RETA lookup
 * (datasheet 7.1.2.8). */
#include "sim_internal.h"
#include "sim82599.h"

#include <string.h>

/* Toeplitz hash (datasheet 7.1.2.8.1): for every set bit of the input, XOR in the 32 key bits
 * starting at that bit position. */
uint32_t aioixy_toeplitz(const uint8_t key[40], const uint8_t *in, size_t len)
{
    uint32_t h = 0;
    uint32_t window = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
    for (size_t i = 0; i < len; i++) {
        uint8_t next = i + 4 < 40 ? key[i + 4] : 0;
        for (int b = 7; b >= 0; b--) {
            if (in[i] & (1u << b))
                h ^= window;
            window = (window << 1) | ((next >> b) & 1u);
        }
    }
    return h;
}

/* Which fields MRQC asks for in this frame; returns the RSS type (0 = none). */
static uint32_t rss_input(struct sim_port *p, const uint8_t *f, uint32_t len, uint8_t *in, size_t *n)
{
    uint32_t mrqc = sim_reg(p, IXGBE_MRQC);
    if (len < 14)
        return 0;
    uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
    if (et == 0x0800 && len >= 34 && (f[14] >> 4) == 4) {
        uint32_t ihl = (f[14] & 15u) * 4u;
        bool frag = ((f[20] & 0x3f) | f[21]) != 0;
        uint8_t proto = f[23];
        memcpy(in, f + 26, 8);
        if (!frag && 14 + ihl + 4 <= len) {
            if (proto == 6 && (mrqc & IXGBE_MRQC_TCPIPV4)) {
                memcpy(in + 8, f + 14 + ihl, 4);
                *n = 12;
                return IXGBE_RSSTYPE_TCPV4;
            }
            if (proto == 17 && (mrqc & IXGBE_MRQC_UDPIPV4)) {
                memcpy(in + 8, f + 14 + ihl, 4);
                *n = 12;
                return IXGBE_RSSTYPE_UDPV4;
            }
        }
        if (mrqc & IXGBE_MRQC_IPV4) {
            *n = 8;
            return IXGBE_RSSTYPE_IPV4;
        }
    } else if (et == 0x86dd && len >= 54) {
        uint8_t nh = f[20];
        memcpy(in, f + 22, 32);
        if (len >= 58) {
            if (nh == 6 && (mrqc & IXGBE_MRQC_TCPIPV6)) {
                memcpy(in + 32, f + 54, 4);
                *n = 36;
                return IXGBE_RSSTYPE_TCPV6;
            }
            if (nh == 17 && (mrqc & IXGBE_MRQC_UDPIPV6)) {
                memcpy(in + 32, f + 54, 4);
                *n = 36;
                return IXGBE_RSSTYPE_UDPV6;
            }
        }
        if (mrqc & IXGBE_MRQC_IPV6) {
            *n = 32;
            return IXGBE_RSSTYPE_IPV6;
        }
    }
    return 0;
}


int sim_rss_queue(struct sim_port *p, const uint8_t *f, uint32_t len, uint32_t *type, uint32_t *hash)
{
    *type = *hash = 0;
    if ((sim_reg(p, IXGBE_MRQC) & IXGBE_MRQC_MRQE_MASK) != IXGBE_MRQC_RSSEN)
        return 0;
    uint8_t in[36];
    size_t n = 0;
    *type = rss_input(p, f, len, in, &n);
    if (!*type)
        return 0;
    uint8_t key[40];
    for (int i = 0; i < 10; i++) {
        uint32_t k = sim_reg(p, IXGBE_RSSRK(i));
        key[4 * i] = (uint8_t)k;
        key[4 * i + 1] = (uint8_t)(k >> 8);
        key[4 * i + 2] = (uint8_t)(k >> 16);
        key[4 * i + 3] = (uint8_t)(k >> 24);
    }
    *hash = aioixy_toeplitz(key, in, n);
    uint32_t idx = *hash & 127u;
    return (int)((sim_reg(p, IXGBE_RETA(idx / 4)) >> (8 * (idx % 4))) & 0xfu);
}
