/* Kernel network interfaces as a "bus": what the kernel-backed drivers (packet:, xdp:) need to
 * know about the interface the user named, and the safety check that keeps aioixy off an
 * interface carrying this host's traffic. Read-only: nothing here changes an interface.
 *
 * What counts as "carrying the host's traffic" (aioixy_netif_check_safe), checked on the
 * interface itself and, if it is enslaved to a bridge/bond/team, on its master too:
 *  - any IPv4 address, except link-local 169.254.0.0/16;
 *  - any IPv6 address, except link-local fe80::/10;
 *  - a default route (IPv4 0.0.0.0/0 in /proc/net/route, IPv6 ::/0 in /proc/net/ipv6_route)
 *    through it, in the main table of the caller's network namespace.
 * An interface that is down is never refused (it carries nothing right now).
 */
#ifndef AIOIXY_NETIF_H
#define AIOIXY_NETIF_H

#include "common.h"
#include "device.h"

#define AIOIXY_IFNAMSIZ 16

struct aioixy_netif {
    char name[AIOIXY_IFNAMSIZ];
    int ifindex;
    uint8_t mac[6];
    uint32_t mtu;
    uint16_t rx_queues, tx_queues; /* from /sys/class/net/IF/queues (rx-N, tx-N); >= 1 */
    bool up;                       /* administratively up (IFF_UP) */
    char master[AIOIXY_IFNAMSIZ];  /* bridge/bond it is enslaved to, "" if none */
};

/* What carries traffic: filled by aioixy_netif_traffic, reported by the safety check. */
struct aioixy_netif_traffic {
    int addrs;                   /* addresses that count (see above) */
    char first_addr[64];         /* the first of them, printable, "" if none */
    bool default_route;          /* a default route leaves through it */
};

/* Resolve an interface name. -AIOIXY_EINVAL for a malformed name, -AIOIXY_ENODEV (naming the
 * interface and the network namespace) if there is none. */
int aioixy_netif_lookup(const char *name, struct aioixy_netif *out);
/* Addresses and default routes on `name` (not its master). */
void aioixy_netif_traffic(const char *name, struct aioixy_netif_traffic *out);
/* 0, or -AIOIXY_EBUSY naming what was found, unless force. `what` names the caller
 * ("packet", "xdp") in the message. */
int aioixy_netif_check_safe(const struct aioixy_netif *nif, bool force, const char *what);
/* Link state and speed from sysfs (operstate, speed). */
void aioixy_netif_link(const char *name, struct aioixy_link *out);
/* What the interface the port opened (its ifindex) is now. An interface deleted, moved to
 * another network namespace, or deleted and re-created under the same name (a new ifindex) is
 * gone: the port's sockets are bound to an interface that no longer exists here. */
struct aioixy_netif_now {
    bool gone;
    bool up;        /* IFF_UP and IFF_RUNNING */
    uint32_t mtu;
    char name[AIOIXY_IFNAMSIZ]; /* its current name (it may have been renamed) */
};
void aioixy_netif_now(int ifindex, struct aioixy_netif_now *out);
/* Link state of the interface with this ifindex (down if it is gone). */
void aioixy_netif_link_of(int ifindex, struct aioixy_link *out);
/* 0, or -AIOIXY_EINVAL if the interface is administratively down: aioixy never changes an
 * interface's state, and a down interface would take the port's frames nowhere. */
int aioixy_netif_check_up(const struct aioixy_netif *nif, const char *what);
/* Promiscuous mode as a membership of an AF_PACKET socket (PACKET_MR_PROMISC), never the
 * interface flag: the kernel counts memberships (the interface's "promiscuity") and drops ours
 * when the socket closes, so an admin's promiscuous mode is never switched off and a crashed
 * process never leaves the interface promiscuous. *fd < 0 opens an unbound socket for it (it
 * receives nothing), which the caller closes at the end. 0 or -AIOIXY_E*. */
int aioixy_netif_promisc(int *fd, const struct aioixy_netif *nif, bool on, const char *what);
/* -AIOIXY_EINVAL (naming the counts) if the interface has fewer rx or tx queues than cfg asks
 * for: for drivers that bind hardware queues (xdp:); packet: fans out in software instead. */
int aioixy_netif_check_queues(const struct aioixy_netif *nif, const struct aioixy_dev_config *cfg,
                              const char *what);

#endif
