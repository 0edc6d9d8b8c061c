/* The kernel side of an AF_XDP port without libbpf/libxdp: raw bpf() syscalls and rtnetlink.
 *
 * One "XDP attachment" per interface and process: an XSKMAP (key = rx queue index, value = an
 * AF_XDP socket) and a six-instruction XDP program that redirects each frame to the socket of
 * the queue it arrived on and passes it to the kernel stack when that queue has none. Ports of
 * one process on one interface share the attachment (reference counted), so "xdp:eth1:0" and
 * "xdp:eth1:1" can be two ports.
 *
 * With divert rules (divert.h) the program redirects only what they allow and passes the rest.
 *
 * Attach: BPF_LINK_CREATE (the link belongs to its fd, so a SIGKILLed process leaves nothing on
 * the interface); netlink IFLA_XDP with XDP_FLAGS_UPDATE_IF_NOEXIST when links are unavailable
 * (kernels < 5.9) or asked for. A netlink-attached program survives its process: the next open
 * recognises it by program name and by the owner pid written into its map's name, and replaces
 * it if that process is gone. Someone else's program is refused unless forced.
 */
#ifndef AIOIXY_BPF_H
#define AIOIXY_BPF_H

#include "common.h"

#define AIOIXY_XDP_PROG_NAME "aioixy_xsk"

struct aioixy_divert; /* divert.h: NULL = redirect every frame of a bound queue */

enum aioixy_xdp_mode { AIOIXY_XDP_AUTO = 0, AIOIXY_XDP_NATIVE = 1, AIOIXY_XDP_GENERIC = 2 };
enum aioixy_xdp_attach { AIOIXY_ATTACH_AUTO = 0, AIOIXY_ATTACH_LINK = 1, AIOIXY_ATTACH_NETLINK = 2 };

struct aioixy_xdp_prog;

/* Find or create this process's attachment on ifindex. `force` replaces a foreign program.
 * 0 or -AIOIXY_E* with the error message set. */
int aioixy_xdp_acquire(int ifindex, const char *ifname, enum aioixy_xdp_mode mode,
                       enum aioixy_xdp_attach how, bool force, const struct aioixy_divert *divert,
                       struct aioixy_xdp_prog **out);
/* Point rx queue `queue` at AF_XDP socket `xsk_fd` (0 or -AIOIXY_E*; EBUSY if taken). */
int aioixy_xdp_bind_queue(struct aioixy_xdp_prog *p, uint32_t queue, int xsk_fd);
void aioixy_xdp_unbind_queue(struct aioixy_xdp_prog *p, uint32_t queue);
/* Drop a reference; the last one detaches the program and closes map, program and link. */
void aioixy_xdp_release(struct aioixy_xdp_prog *p);
/* "native" or "generic": the mode the program got. */
const char *aioixy_xdp_mode_name(const struct aioixy_xdp_prog *p);
bool aioixy_xdp_is_link(const struct aioixy_xdp_prog *p);

/* What is attached to an interface, as the kernel reports it (for tests and `aioixy list`):
 * program ids per mode (0 = none). 0 or -AIOIXY_E*. */
struct aioixy_xdp_query {
    uint32_t drv_prog_id, skb_prog_id, hw_prog_id;
};
int aioixy_xdp_query(int ifindex, struct aioixy_xdp_query *out);
/* Name of a loaded BPF program by id ("" if gone). 0 or -AIOIXY_E*. */
int aioixy_bpf_prog_name(uint32_t prog_id, char *name, size_t len);

/* Attach a program that returns `action` (XDP_PASS, XDP_DROP, ...) for every frame, named
 * `name`, through a bpf_link; returns the link fd (close it to detach) or -AIOIXY_E*. For tests
 * (someone else's program) and the benchmark's kernel ceiling (XDP_DROP). */
int aioixy_xdp_attach_verdict(int ifindex, int action, const char *name, bool native);

#endif
