/* Batch operations: one native call works on every packet of a batch.
 *
 * Python's cost is per call, not per byte, so a network function written in Python gets near
 * line rate only if it touches a batch a handful of times rather than each packet. Every
 * function here takes the batch's slot array (bufs[0..n)), skips NULL slots (packets the batch
 * no longer owns), allocates nothing, and never reads or writes past a packet's `len` (or, for
 * a write that grows the packet, past its buffer's data room): a short or malformed packet is
 * skipped and reported as such, never guessed at.
 *
 * Header parsing (ops.c, parse()): Ethernet, at most one 802.1Q tag (0x8100), IPv4 with a
 * valid version/IHL whose header fits the packet; TCP/UDP ports only for the first fragment.
 * The classifier (aioixy_ops_classify) deliberately follows the firewall RuleSet's own
 * parsing instead, so a compiled filter decides exactly as RuleSet.allows() does.
 */
#ifndef AIOIXY_OPS_H
#define AIOIXY_OPS_H

#include "common.h"
#include "mempool.h"

/* Header fields readable with aioixy_ops_gather and writable with aioixy_ops_set_field. The
 * element type of the value arrays follows the field's width: 1 -> uint8_t, 2 -> uint16_t,
 * 4 -> uint32_t, 6 (MAC addresses) -> uint64_t. Values are numbers (big-endian on the wire). */
enum aioixy_field {
    AIOIXY_F_DST_MAC = 0,
    AIOIXY_F_SRC_MAC,
    AIOIXY_F_ETHERTYPE,  /* the outer type/length word at offset 12 */
    AIOIXY_F_VLAN_TCI,   /* present only for 802.1Q-tagged frames */
    AIOIXY_F_IP_TOS,
    AIOIXY_F_IP_LEN,
    AIOIXY_F_IP_ID,
    AIOIXY_F_IP_TTL,
    AIOIXY_F_IP_PROTO,
    AIOIXY_F_IP_CSUM,
    AIOIXY_F_IP_SRC,
    AIOIXY_F_IP_DST,
    AIOIXY_F_SPORT,      /* TCP/UDP, first fragment only */
    AIOIXY_F_DPORT,
    AIOIXY_F_COUNT
};

/* Width in bytes of a field (0 for an unknown id). */
uint32_t aioixy_ops_field_width(int field);

/* out[i] = bufs[i]->len (0 for a NULL slot). Returns the number of owned packets. */
uint32_t aioixy_ops_lengths(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t *out);

/* out[i] = field value of packet i, present[i] = 1 if the packet has the field (else out[i] =
 * 0, present[i] = 0). `present` may be NULL. Returns how many packets have it, or -EINVAL. */
int32_t aioixy_ops_gather(struct aioixy_pkt_buf *const *bufs, uint32_t n, int field, void *out,
                          uint8_t *present);

/* The `width`-byte (1, 2, 4 or 8) big-endian value at `offset` of each packet, for packets at
 * least offset + width long. Returns how many, or -EINVAL for a bad width. */
int32_t aioixy_ops_gather_at(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t offset,
                             uint32_t width, uint64_t *out, uint8_t *present);

/* Write a field in every packet that has it: values[i] (element type by width), or `scalar`
 * for all when values is NULL. IPv4 header fields fix the IPv4 checksum incrementally
 * (RFC 1624); addresses and ports also fix the TCP/UDP checksum when the whole L4 header is in
 * the packet (a UDP checksum of 0, "none", stays 0). Writing IP_CSUM itself fixes nothing.
 * Returns how many packets were written, or -EINVAL. */
int32_t aioixy_ops_set_field(struct aioixy_pkt_buf *const *bufs, uint32_t n, int field,
                             const void *values, uint64_t scalar);

/* Exchange destination and source MAC in every packet of at least 12 bytes. */
uint32_t aioixy_ops_swap_macs(struct aioixy_pkt_buf *const *bufs, uint32_t n);

/* Set the destination (which = 0) or source (which = 1) MAC of packets >= 12 bytes. */
uint32_t aioixy_ops_set_mac(struct aioixy_pkt_buf *const *bufs, uint32_t n, int which,
                            const uint8_t *mac);

/* Per-packet status codes of the rewrite and check operations below. */
enum aioixy_op_status {
    AIOIXY_OP_DONE = 0,     /* done / checksum correct */
    AIOIXY_OP_EXPIRED = 1,  /* dec_ttl: TTL was 0 or 1, left as is (a router drops it) */
    AIOIXY_OP_BAD = 1,      /* checksum wrong */
    AIOIXY_OP_SKIPPED = 2,  /* not applicable: not IPv4 / not TCP-UDP / short, or a NULL slot */
    AIOIXY_OP_NO_ROOM = 3,  /* set_vlan: inserting a tag would not fit the buffer */
    AIOIXY_OP_NONE = 4,     /* l4 checksum: UDP without a checksum (0) */
};

/* Decrement the IPv4 TTL of every packet whose TTL is > 1, fixing the header checksum
 * incrementally. status[i] (may be NULL) gets DONE, EXPIRED or SKIPPED. Returns how many were
 * decremented. */
uint32_t aioixy_ops_dec_ttl(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint8_t *status);

/* 802.1Q: rewrite the TCI of tagged frames, insert a tag (0x8100 + tci) after the MACs of
 * untagged ones (the frame grows by 4 bytes, if its buffer has room). Status per packet: DONE,
 * NO_ROOM or SKIPPED (< 14 bytes). Returns how many frames carry `tci` afterwards. */
uint32_t aioixy_ops_set_vlan(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint16_t tci,
                             uint8_t *status);
/* Remove the 802.1Q tag of tagged frames (they shrink by 4 bytes). Returns how many. */
uint32_t aioixy_ops_strip_vlan(struct aioixy_pkt_buf *const *bufs, uint32_t n);

/* Verify (fix = false) or recompute (fix = true) the IPv4 header checksum. status[i]: DONE
 * (correct / fixed), BAD (wrong, verify only) or SKIPPED. Returns how many are correct after. */
uint32_t aioixy_ops_ipv4_csum(struct aioixy_pkt_buf *const *bufs, uint32_t n, bool fix,
                              uint8_t *status);

/* The same for the TCP/UDP checksum over the IPv4 pseudo-header and the L4 segment (its length
 * from the IPv4 total length, which must fit the packet). Unfragmented packets only. */
uint32_t aioixy_ops_l4_csum(struct aioixy_pkt_buf *const *bufs, uint32_t n, bool fix,
                            uint8_t *status);

/* A 32-bit flow hash of (src, dst, proto, sport, dport) for IPv4 (ports 0 when absent), of
 * the MACs and EtherType otherwise, seeded. symmetric: both directions of a flow hash alike.
 * Use it to shard flows over queues/tasks. NULL slots get 0. */
uint32_t aioixy_ops_flow_hash(struct aioixy_pkt_buf *const *bufs, uint32_t n, uint32_t seed,
                              bool symmetric, uint32_t *out);

/* ---- classification -------------------------------------------------------------------- */

/* A rule set compiled into per-field interval tables (bit-vector scheme): for each field the
 * sorted lower bounds of its elementary intervals, and per interval a bitmap of the rules whose
 * range covers it. A packet's verdict is the lowest rule set in the AND of its fields' bitmaps
 * (first match wins), or the default. Cost per packet: a binary search per field plus `words`
 * ANDs, independent of where the deciding rule sits in the list. Built by aioixy.Filter. */
#define AIOIXY_FILTER_FIELDS 6     /* ethertype, ip src, ip dst, proto, sport, dport */
#define AIOIXY_FILTER_MAX_WORDS 64 /* 4096 rules */

struct aioixy_filter_field {
    uint32_t nbounds;          /* >= 1, bounds[0] == 0 */
    const uint64_t *bounds;    /* ascending */
    const uint64_t *bitmaps;   /* nbounds * words */
    /* Optional (NULL when there are few bounds): jump[k] = the interval holding k << shift, so
     * a lookup searches only the few bounds between jump[k] and jump[k + 1] instead of all of
     * them; njump entries, a key whose bucket falls outside falls back to the full search. */
    const uint32_t *jump;
    uint32_t njump;
    uint32_t shift;
};

struct aioixy_filter {
    uint32_t nrules;
    uint32_t words;            /* ceil(nrules / 64), >= 1 */
    struct aioixy_filter_field fields[6];
    const uint8_t *allow;      /* per rule: 1 allow, 0 deny */
    uint8_t default_allow;
    uint64_t *hits;            /* nrules + 1 counters (last: default), accumulated */
    uint32_t *touched;         /* nrules + 1: indices whose counter went from 0 to > 0 ... */
    uint32_t ntouched;         /* ... so whoever folds the counters visits only those */
};

/* verdict[i] = 1 (allow) / 0 (deny) per slot (NULL slots: 0 and not counted); rule[i] (may be
 * NULL) = deciding rule index, nrules for the default, 0xFFFF for a NULL slot. Returns how many
 * were allowed, or -EINVAL for a malformed filter. */
int32_t aioixy_ops_classify(struct aioixy_filter *f, struct aioixy_pkt_buf *const *bufs,
                            uint32_t n, uint8_t *verdict, uint16_t *rule);

/* Move the owned slots of bufs[0..n) into yes[] (mask[i] != 0) or no[], keeping order.
 * *n_no gets the count of no[]. Returns the count of yes[]. bufs is not modified. */
uint32_t aioixy_ops_split(struct aioixy_pkt_buf *const *bufs, uint32_t n, const uint8_t *mask,
                          struct aioixy_pkt_buf **yes, struct aioixy_pkt_buf **no,
                          uint32_t *n_no);
/* aioixy_ops_split, and bufs[0..n) is all NULL afterwards: the move and the source's loss of
 * ownership happen in one call, which a Python exception cannot split. */
uint32_t aioixy_ops_split_take(struct aioixy_pkt_buf **bufs, uint32_t n, const uint8_t *mask,
                               struct aioixy_pkt_buf **yes, struct aioixy_pkt_buf **no,
                               uint32_t *n_no);
/* Move the non-NULL entries of src[0..n) to dst (packed, order kept), NULLing them in src;
 * returns how many. */
uint32_t aioixy_ops_take_all(struct aioixy_pkt_buf **dst, struct aioixy_pkt_buf **src, uint32_t n);

#endif
