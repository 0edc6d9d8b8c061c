/* "Divert only what the user asks for": firewall rules (aioixy.ops.RuleSet semantics, first
 * match wins, IPv4 only; everything else gets the default) compiled into the kernel's filters.
 *
 *  - xdp: an eBPF XDP program: a frame a rule allows (or the default, if it allows) goes to the
 *    queue's AF_XDP socket through the XSKMAP; every other frame XDP_PASSes on to the kernel
 *    stack, untouched. Without rules the port runs the 6-instruction program of bpf.c.
 *  - packet: a classic BPF socket filter (SO_ATTACH_FILTER): the socket sees only what a rule
 *    allows (the kernel keeps seeing everything, as it always does with packet:).
 *
 * The match is RuleSet.allows() exactly: a frame of at least 34 bytes with EtherType 0x0800 at
 * offset 12 is IPv4; source (26) and destination (30) are matched under their masks, the
 * protocol is byte 23; the destination port is the 16 bits at 14 + 4 * (byte 14 & 15) + 2, for
 * protocols 6 and 17 when the frame holds them, else "none" (which no dport rule matches).
 * tests/kernel/test_xdp_divert.py runs the XDP program (BPF_PROG_TEST_RUN) and the socket
 * filter (frames over a veth) against RuleSet.allows on a table of frames.
 */
#ifndef AIOIXY_DIVERT_H
#define AIOIXY_DIVERT_H

#include "common.h"
#include "device.h"

struct bpf_insn;
struct sock_filter;

struct aioixy_divert {
    const struct aioixy_divert_rule *rules;
    uint32_t n;
    bool default_allow;
};

/* The dev config's rules, validated (count, protocol, port): 0 or -AIOIXY_EINVAL. */
int aioixy_divert_from_config(const struct aioixy_dev_config *cfg, struct aioixy_divert *out);

/* Does the rule set take only traffic it names? Its default leaves frames to the kernel and
 * every allowing rule names a destination port or an address prefix; then the port may run on
 * an interface that carries the host's traffic without force (docs/kernel-ports.md). */
bool aioixy_divert_is_narrow(const struct aioixy_divert *d);

/* Longest programs (instructions) for AIOIXY_DIVERT_MAX_RULES rules. */
#define AIOIXY_DIVERT_EBPF_MAX (32 + 12 * AIOIXY_DIVERT_MAX_RULES)
#define AIOIXY_DIVERT_CBPF_MAX (32 + 14 * AIOIXY_DIVERT_MAX_RULES)

/* The XDP program: allowed frames -> bpf_redirect_map(map_fd, rx_queue_index, fallback),
 * others -> XDP_PASS. Returns the instruction count. */
uint32_t aioixy_divert_ebpf(const struct aioixy_divert *d, int map_fd, int fallback,
                            struct bpf_insn *out);
/* The socket filter. Returns the instruction count. */
uint32_t aioixy_divert_cbpf(const struct aioixy_divert *d, struct sock_filter *out);

/* Load the XDP program (with an empty XSKMAP and XDP_TX as the redirect's fallback, so an
 * allowed frame comes back as XDP_TX) and run it on one frame with BPF_PROG_TEST_RUN: 1 the
 * frame would be diverted, 0 it would go to the kernel, or -AIOIXY_E* (the verifier's refusal
 * included). For tests. */
int aioixy_divert_test(const struct aioixy_divert_rule *rules, uint32_t n, bool default_allow,
                       const uint8_t *frame, uint32_t len);

#endif
