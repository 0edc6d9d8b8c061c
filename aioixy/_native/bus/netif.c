#include "netif.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <limits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static bool valid_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= AIOIXY_IFNAMSIZ || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return false;
    for (const char *c = name; *c; c++)
        if (*c == '/' || *c == ':' || *c <= ' ' || *c == 0x7f)
            return false;
    return true;
}

/* rx-N / tx-N entries under /sys/class/net/IF/queues; 1 if sysfs does not say */
static void count_queues(const char *name, uint16_t *rx, uint16_t *tx)
{
    char path[96];
    snprintf(path, sizeof(path), "/sys/class/net/%s/queues", name);
    unsigned nrx = 0, ntx = 0;
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, "rx-", 3) == 0)
                nrx++;
            else if (strncmp(e->d_name, "tx-", 3) == 0)
                ntx++;
        }
        closedir(d);
    }
    *rx = (uint16_t)(nrx ? (nrx > UINT16_MAX ? UINT16_MAX : nrx) : 1);
    *tx = (uint16_t)(ntx ? (ntx > UINT16_MAX ? UINT16_MAX : ntx) : 1);
}

int aioixy_netif_lookup(const char *name, struct aioixy_netif *out)
{
    memset(out, 0, sizeof(*out));
    if (!name || !valid_name(name))
        return aioixy_set_error(AIOIXY_EINVAL,
                                "'%s' is not a network interface name (1..%d characters, no '/', "
                                "':' or spaces)", name ? name : "", AIOIXY_IFNAMSIZ - 1);
    snprintf(out->name, sizeof(out->name), "%s", name);
    unsigned idx = if_nametoindex(name);
    if (idx == 0)
        return aioixy_set_error(AIOIXY_ENODEV,
                                "no network interface '%s' in this network namespace "
                                "(see 'ip link' or 'aioixy list')", name);
    out->ifindex = (int)idx;
    /* ioctls, not sysfs: they answer for the caller's network namespace, whoever mounted /sys */
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return aioixy_set_error(AIOIXY_EIO, "socket() for interface queries failed: %s", strerror(errno));
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    int rc = 0;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) == 0)
        memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
    else
        rc = aioixy_set_error(AIOIXY_EIO, "cannot read the MAC address of %s: %s", name, strerror(errno));
    if (!rc && ioctl(s, SIOCGIFMTU, &ifr) == 0)
        out->mtu = (uint32_t)ifr.ifr_mtu;
    else if (!rc)
        rc = aioixy_set_error(AIOIXY_EIO, "cannot read the MTU of %s: %s", name, strerror(errno));
    if (!rc && ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
        out->up = (ifr.ifr_flags & IFF_UP) != 0;
    else if (!rc)
        rc = aioixy_set_error(AIOIXY_EIO, "cannot read the flags of %s: %s", name, strerror(errno));
    close(s);
    if (rc)
        return rc;
    count_queues(name, &out->rx_queues, &out->tx_queues);
    char path[96], target[PATH_MAX];
    snprintf(path, sizeof(path), "/sys/class/net/%s/master", name);
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n > 0) {
        target[n] = '\0';
        const char *base = strrchr(target, '/');
        base = base ? base + 1 : target;
        size_t len = strnlen(base, sizeof(out->master) - 1);
        memcpy(out->master, base, len);
        out->master[len] = '\0';
    }
    return 0;
}

static bool default_route_v4(const char *name)
{
    FILE *f = fopen("/proc/net/route", "r");
    if (!f)
        return false;
    char line[512], ifn[64];
    unsigned long dest, gw, mask;
    unsigned flags, refcnt, use, metric;
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        if (sscanf(line, "%63s %lx %lx %x %u %u %u %lx", ifn, &dest, &gw, &flags, &refcnt, &use,
                   &metric, &mask) == 8)
            found = strcmp(ifn, name) == 0 && dest == 0 && mask == 0;
    fclose(f);
    return found;
}

static bool default_route_v6(const char *name)
{
    FILE *f = fopen("/proc/net/ipv6_route", "r");
    if (!f)
        return false;
    char line[512], dest[40], src[40], hop[40], ifn[64];
    unsigned plen, splen, metric, refcnt, use, flags;
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        if (sscanf(line, "%32s %x %32s %x %32s %x %x %x %x %63s", dest, &plen, src, &splen, hop,
                   &metric, &refcnt, &use, &flags, ifn) == 10)
            found = strcmp(ifn, name) == 0 && plen == 0 &&
                    strspn(dest, "0") == strlen(dest);
    fclose(f);
    return found;
}

void aioixy_netif_traffic(const char *name, struct aioixy_netif_traffic *out)
{
    memset(out, 0, sizeof(*out));
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) == 0) {
        for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
            if (!i->ifa_addr || !i->ifa_name || strcmp(i->ifa_name, name) != 0)
                continue;
            char text[64] = "";
            if (i->ifa_addr->sa_family == AF_INET) {
                const struct in_addr *a4 = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;
                if ((ntohl(a4->s_addr) & 0xffff0000u) == 0xa9fe0000u) /* 169.254/16 */
                    continue;
                inet_ntop(AF_INET, a4, text, sizeof(text));
            } else if (i->ifa_addr->sa_family == AF_INET6) {
                const struct in6_addr *a6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                if (IN6_IS_ADDR_LINKLOCAL(a6))
                    continue;
                inet_ntop(AF_INET6, a6, text, sizeof(text));
            } else {
                continue;
            }
            if (out->addrs++ == 0)
                snprintf(out->first_addr, sizeof(out->first_addr), "%s", text);
        }
        freeifaddrs(ifa);
    }
    out->default_route = default_route_v4(name) || default_route_v6(name);
}

static int refuse(const char *what, const char *name, const char *via, const struct aioixy_netif_traffic *t)
{
    char found[160];
    if (t->addrs && t->default_route)
        snprintf(found, sizeof(found), "%d address(es) (first: %s) and a default route", t->addrs,
                 t->first_addr);
    else if (t->addrs)
        snprintf(found, sizeof(found), "%d address(es) (first: %s)", t->addrs, t->first_addr);
    else
        snprintf(found, sizeof(found), "the default route");
    return aioixy_set_error(AIOIXY_EBUSY,
                            "%s:%s: interface %s%s%s is up and carries %s: it may be this host's "
                            "connection, so aioixy will not take it over. Use an interface "
                            "without addresses or routes, or open with force=True",
                            what, name, via[0] ? via : name, via[0] ? ", the master of " : "",
                            via[0] ? name : "", found);
}

int aioixy_netif_check_safe(const struct aioixy_netif *nif, bool force, const char *what)
{
    if (force || !nif->up)
        return 0;
    struct aioixy_netif_traffic t;
    aioixy_netif_traffic(nif->name, &t);
    if (t.addrs || t.default_route)
        return refuse(what, nif->name, "", &t);
    if (nif->master[0]) {
        aioixy_netif_traffic(nif->master, &t);
        if (t.addrs || t.default_route)
            return refuse(what, nif->name, nif->master, &t);
    }
    return 0;
}

void aioixy_netif_link(const char *name, struct aioixy_link *out)
{
    out->up = false;
    out->speed_mbps = 0;
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s >= 0) {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
        /* IFF_RUNNING is the operstate: carrier present and the device up */
        if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
            out->up = (ifr.ifr_flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING);
        close(s);
    }
    if (!out->up)
        return;
    char path[96];
    snprintf(path, sizeof(path), "/sys/class/net/%s/speed", name);
    FILE *f = fopen(path, "r");
    if (f) {
        long v;
        if (fscanf(f, "%ld", &v) == 1 && v > 0 && v < 10000000)
            out->speed_mbps = (uint32_t)v;
        fclose(f);
    }
}

int aioixy_netif_check_queues(const struct aioixy_netif *nif, const struct aioixy_dev_config *cfg,
                              const char *what)
{
    if (cfg->rx_queues > nif->rx_queues || cfg->tx_queues > nif->tx_queues)
        return aioixy_set_error(AIOIXY_EINVAL,
                                "%s:%s: asked for %u rx / %u tx queues, the interface has %u rx / "
                                "%u tx", what, nif->name, cfg->rx_queues, cfg->tx_queues,
                                nif->rx_queues, nif->tx_queues);
    return 0;
}

int aioixy_netif_check_up(const struct aioixy_netif *nif, const char *what)
{
    if (nif->up)
        return 0;
    return aioixy_set_error(AIOIXY_EINVAL,
                            "%s:%s: the interface is down. aioixy never changes an interface's "
                            "state: bring it up first ('ip link set %s up')",
                            what, nif->name, nif->name);
}

int aioixy_netif_promisc(int *fd, const struct aioixy_netif *nif, bool on, const char *what)
{
    if (*fd < 0) {
        if (!on)
            return 0; /* no socket, no membership */
        /* protocol 0 and never bound: the socket exists only to hold the membership */
        *fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (*fd < 0)
            return aioixy_set_error(errno == EPERM || errno == EACCES ? AIOIXY_EPERM : AIOIXY_EIO,
                                    "%s:%s: cannot open a socket for promiscuous mode: %s", what,
                                    nif->name, strerror(errno));
    }
    struct packet_mreq mr = {.mr_ifindex = nif->ifindex, .mr_type = PACKET_MR_PROMISC};
    if (setsockopt(*fd, SOL_PACKET, on ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP, &mr,
                   sizeof(mr)) != 0)
        return aioixy_set_error(AIOIXY_EIO, "%s:%s: cannot %s promiscuous mode: %s", what,
                                nif->name, on ? "enable" : "disable", strerror(errno));
    return 0;
}

void aioixy_netif_now(int ifindex, struct aioixy_netif_now *out)
{
    memset(out, 0, sizeof(*out));
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return; /* cannot tell: say nothing rather than "gone" */
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_ifindex = ifindex;
    if (ioctl(s, SIOCGIFNAME, &ifr) != 0) {
        out->gone = errno == ENODEV || errno == ENXIO;
        close(s);
        return;
    }
    snprintf(out->name, sizeof(out->name), "%.*s", (int)sizeof(out->name) - 1, ifr.ifr_name);
    if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0)
        out->up = (ifr.ifr_flags & (IFF_UP | IFF_RUNNING)) == (IFF_UP | IFF_RUNNING);
    if (ioctl(s, SIOCGIFMTU, &ifr) == 0 && ifr.ifr_mtu > 0)
        out->mtu = (uint32_t)ifr.ifr_mtu;
    close(s);
}

void aioixy_netif_link_of(int ifindex, struct aioixy_link *out)
{
    struct aioixy_netif_now now;
    aioixy_netif_now(ifindex, &now);
    if (now.gone || !now.name[0]) {
        out->up = false;
        out->speed_mbps = 0;
        return;
    }
    aioixy_netif_link(now.name, out); /* by its current name, never a namesake's */
}
