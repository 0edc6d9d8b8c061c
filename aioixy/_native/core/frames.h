/* The numbered test frame: the one description of its layout in native code.
 *
 * Ethernet II / IPv4 (20-byte header, no options) / UDP, at least AIOIXY_FRAME_MIN bytes, with a
 * big-endian u64 sequence number as the first 8 bytes of the UDP payload (AIOIXY_FRAME_SEQ_OFFSET).
 * The null device, the 82599 model's traffic generator and Python's aioixy.frames (which reads
 * these constants from the extension and builds its headers with aioixy_frame_headers) all make
 * and read frames through this header; what follows the sequence number is each source's own
 * filler and not part of the format.
 */
#ifndef AIOIXY_FRAMES_H
#define AIOIXY_FRAMES_H

#include <stdint.h>
#include <string.h>

#define AIOIXY_FRAME_ETH_LEN 14      /* dst MAC, src MAC, ethertype */
#define AIOIXY_FRAME_IP_OFFSET 14
#define AIOIXY_FRAME_IP_LEN 20
#define AIOIXY_FRAME_UDP_OFFSET 34
#define AIOIXY_FRAME_UDP_LEN 8
#define AIOIXY_FRAME_SEQ_OFFSET 42   /* = AIOIXY_FRAME_UDP_OFFSET + AIOIXY_FRAME_UDP_LEN */
#define AIOIXY_FRAME_SEQ_LEN 8
#define AIOIXY_FRAME_MIN 60          /* shortest Ethernet frame without its CRC */

/* What varies between frames of the format. Ports are host order; addresses network order. */
struct aioixy_frame_addrs {
    uint8_t dst_mac[6], src_mac[6];
    uint8_t src_ip[4], dst_ip[4];
    uint16_t ip_id;
    uint16_t src_port, dst_port;
};

static inline uint16_t aioixy_ipv4_checksum(const uint8_t *hdr, uint32_t len)
{
    uint32_t sum = 0;
    for (uint32_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)hdr[i] << 8 | hdr[i + 1];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Write the Ethernet, IPv4 and UDP headers of a `len`-byte frame (len >= AIOIXY_FRAME_MIN) into
 * f[0 .. AIOIXY_FRAME_SEQ_OFFSET). The IPv4 header is checksummed; the UDP checksum is 0
 * ("not computed", legal over IPv4), so a source may change the payload without touching the
 * headers. TTL 64, DF clear. */
static inline void aioixy_frame_headers(uint8_t *f, uint32_t len, const struct aioixy_frame_addrs *a)
{
    memset(f, 0, AIOIXY_FRAME_SEQ_OFFSET);
    memcpy(f, a->dst_mac, 6);
    memcpy(f + 6, a->src_mac, 6);
    f[12] = 0x08; /* IPv4 */
    uint8_t *ip = f + AIOIXY_FRAME_IP_OFFSET;
    uint16_t ip_len = (uint16_t)(len - AIOIXY_FRAME_ETH_LEN);
    ip[0] = 0x45; /* version 4, 5 words */
    ip[2] = (uint8_t)(ip_len >> 8);
    ip[3] = (uint8_t)ip_len;
    ip[4] = (uint8_t)(a->ip_id >> 8);
    ip[5] = (uint8_t)a->ip_id;
    ip[8] = 64; /* TTL */
    ip[9] = 17; /* UDP */
    memcpy(ip + 12, a->src_ip, 4);
    memcpy(ip + 16, a->dst_ip, 4);
    uint16_t csum = aioixy_ipv4_checksum(ip, AIOIXY_FRAME_IP_LEN);
    ip[10] = (uint8_t)(csum >> 8);
    ip[11] = (uint8_t)csum;
    uint8_t *udp = f + AIOIXY_FRAME_UDP_OFFSET;
    uint16_t udp_len = (uint16_t)(ip_len - AIOIXY_FRAME_IP_LEN);
    udp[0] = (uint8_t)(a->src_port >> 8);
    udp[1] = (uint8_t)a->src_port;
    udp[2] = (uint8_t)(a->dst_port >> 8);
    udp[3] = (uint8_t)a->dst_port;
    udp[4] = (uint8_t)(udp_len >> 8);
    udp[5] = (uint8_t)udp_len;
}

static inline void aioixy_frame_set_seq(uint8_t *f, uint64_t seq)
{
    for (int b = AIOIXY_FRAME_SEQ_LEN - 1; b >= 0; b--) {
        f[AIOIXY_FRAME_SEQ_OFFSET + b] = (uint8_t)seq;
        seq >>= 8;
    }
}

static inline uint64_t aioixy_frame_seq(const uint8_t *f)
{
    uint64_t seq = 0;
    for (int b = 0; b < AIOIXY_FRAME_SEQ_LEN; b++)
        seq = seq << 8 | f[AIOIXY_FRAME_SEQ_OFFSET + b];
    return seq;
}

#endif
