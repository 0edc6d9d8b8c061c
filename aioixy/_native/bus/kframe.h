/* Frames as the kernel hands them to a packet socket or an AF_XDP socket, made into frames a
 * wire would carry.
 *
 * Traffic a host generates itself (a container's veth, a tap, virtio_net) leaves its TCP/UDP
 * checksum to "the hardware" (CHECKSUM_PARTIAL: the field holds only the pseudo-header sum) and
 * may be one GSO/TSO super-frame of up to 64 KiB that "the hardware" would cut into MTU-sized
 * segments. On a veth nothing ever does either, so a port that forwards such frames as they
 * came delivers frames the next kernel drops (UdpInCsumErrors, TcpInCsumErrors) or no frame at
 * all (too long). These helpers finish the job in software:
 *  - aioixy_kframe_complete: the kernel said where the checksum is (virtio_net_hdr csum_start /
 *    csum_offset, as packet: gets it with PACKET_VNET_HDR): sum from there to the end;
 *  - aioixy_kframe_fix_partial: nobody said (AF_XDP has no checksum status): an IPv4/IPv6
 *    TCP/UDP checksum field that holds exactly the pseudo-header sum is a partial one, complete
 *    it; any other value (a finished checksum, right or wrong) is left alone;
 *  - aioixy_gso_*: cut a TCP (or UDP_L4) super-frame into segments of gso_size payload bytes,
 *    each with its own IP length/id, TCP sequence number and flags, and full checksums.
 */
#ifndef AIOIXY_KFRAME_H
#define AIOIXY_KFRAME_H

#include "common.h"

/* Complete a partial checksum: the ones' complement sum of frame[start..len) (which includes
 * the pseudo-header sum already in the field) goes to frame[start + off]. Only TCP (off 16) and
 * UDP (off 6) offsets are taken. false (frame untouched) when out of bounds or another offset. */
bool aioixy_kframe_complete(uint8_t *frame, uint32_t len, uint32_t start, uint32_t off);

/* See above; true if the checksum was completed. Unfragmented IPv4, IPv6 without extension
 * headers, Ethernet with at most one 802.1Q tag; the lengths must fit the frame. */
bool aioixy_kframe_fix_partial(uint8_t *frame, uint32_t len);

/* Segmentation of one super-frame. */
struct aioixy_gso {
    const uint8_t *frame;
    uint32_t len;
    uint32_t l3, l4, hdr_len; /* offsets: IP header, L4 header, first payload byte */
    uint32_t mss, off;        /* payload bytes per segment, payload bytes already emitted */
    uint32_t seq;             /* TCP: the first segment's sequence number */
    uint16_t ip_id;
    bool v6, udp;
};

/* Set up g for frame (starting with its Ethernet header). gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
 * _TCPV6 or _UDP_L4 (the ECN bit ignored). 0, or -1 for a frame it cannot cut (another type,
 * IP options it cannot follow, lengths that do not add up). */
int aioixy_gso_init(struct aioixy_gso *g, const uint8_t *frame, uint32_t len, uint8_t gso_type,
                    uint32_t gso_size);
/* Number of segments still to come. */
uint32_t aioixy_gso_left(const struct aioixy_gso *g);
/* Write the next segment to out (room bytes); its length, or 0 if it does not fit room. */
uint32_t aioixy_gso_next(struct aioixy_gso *g, uint8_t *out, uint32_t room);

#endif
