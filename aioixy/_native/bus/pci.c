#include "pci.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool read_hex(const char *path, unsigned *v)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%x", v) == 1;
    fclose(f);
    return ok;
}

/* The interface of a NIC: <dev>/net/IF for most drivers, <dev>/virtioN/net/IF for virtio. */
static void find_ifname(const char *devdir, char *out, size_t len)
{
    char path[512];
    out[0] = '\0';
    snprintf(path, sizeof(path), "%.300s/net", devdir);
    DIR *d = opendir(path);
    if (!d) {
        DIR *dd = opendir(devdir);
        if (!dd)
            return;
        struct dirent *e;
        while ((e = readdir(dd))) {
            if (strncmp(e->d_name, "virtio", 6) == 0) {
                snprintf(path, sizeof(path), "%.300s/%.100s/net", devdir, e->d_name);
                d = opendir(path);
                if (d)
                    break;
            }
        }
        closedir(dd);
        if (!d)
            return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] != '.') {
            snprintf(out, len, "%.63s", e->d_name);
            break;
        }
    }
    closedir(d);
}

/* Kernel drivers that take a function without making a network interface of it. */
static bool makes_no_interface(const char *driver)
{
    static const char *const passthrough[] = {"vfio-pci", "uio_pci_generic", "igb_uio",
                                              "pci-stub"};
    for (size_t i = 0; i < sizeof(passthrough) / sizeof(passthrough[0]); i++)
        if (strcmp(driver, passthrough[i]) == 0)
            return true;
    return false;
}

/* virtio-pci is only the transport: the network driver (virtio_net) binds to the virtioN
 * device under the function. Without it bound there is no interface anywhere. */
static bool virtio_child_bound(const char *devdir)
{
    DIR *dd = opendir(devdir);
    if (!dd)
        return false;
    bool bound = false;
    struct dirent *e;
    char path[512];
    while (!bound && (e = readdir(dd))) {
        if (strncmp(e->d_name, "virtio", 6) != 0)
            continue;
        snprintf(path, sizeof(path), "%.300s/%.100s/driver", devdir, e->d_name);
        bound = access(path, F_OK) == 0;
    }
    closedir(dd);
    return bound;
}

int aioixy_pci_info(const char *addr, struct aioixy_pci_info *info)
{
    memset(info, 0, sizeof(*info));
    snprintf(info->addr, sizeof(info->addr), "%s", addr);
    char dir[256], path[512];
    snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", addr);
    unsigned v;
    snprintf(path, sizeof(path), "%s/vendor", dir);
    if (!read_hex(path, &v))
        return aioixy_set_error(AIOIXY_ENODEV, "no PCI device at %s", addr);
    info->vendor = (uint16_t)v;
    snprintf(path, sizeof(path), "%s/device", dir);
    if (read_hex(path, &v))
        info->device = (uint16_t)v;
    snprintf(path, sizeof(path), "%s/class", dir);
    if (read_hex(path, &v))
        info->klass = v;
    snprintf(path, sizeof(path), "%s/driver", dir);
    char link[512];
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n > 0) {
        link[n] = '\0';
        const char *slash = strrchr(link, '/');
        snprintf(info->driver, sizeof(info->driver), "%.63s", slash ? slash + 1 : link);
    }
    find_ifname(dir, info->ifname, sizeof(info->ifname));
    info->net_driver = info->driver[0] && !makes_no_interface(info->driver) &&
                       (strcmp(info->driver, "virtio-pci") != 0 || virtio_child_bound(dir));
    if (info->ifname[0]) {
        unsigned flags = 0;
        snprintf(path, sizeof(path), "/sys/class/net/%s/flags", info->ifname);
        if (read_hex(path, &flags))
            info->if_up = flags & IFF_UP;
        struct ifaddrs *ifa = NULL;
        if (getifaddrs(&ifa) == 0) {
            for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                if (!i->ifa_addr || strcmp(i->ifa_name, info->ifname) != 0)
                    continue;
                if (i->ifa_addr->sa_family == AF_INET)
                    info->if_addrs++;
                else if (i->ifa_addr->sa_family == AF_INET6) {
                    const struct in6_addr *a6 = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;
                    if (!IN6_IS_ADDR_LINKLOCAL(a6))
                        info->if_addrs++;
                }
            }
            freeifaddrs(ifa);
        }
    }
    return 0;
}

int aioixy_pci_check_safe(const struct aioixy_pci_info *info, bool force)
{
    if (force)
        return 0;
    /* Bound to a network driver, yet no interface here: sysfs shows a function's interface
     * only inside the interface's own network namespace, so from a container or `ip netns
     * exec` the host's NIC looks idle while it carries the host's traffic. */
    if (!info->ifname[0] && info->net_driver)
        return aioixy_set_error(AIOIXY_EBUSY,
                                "%s is bound to the kernel driver %s but has no network "
                                "interface in this network namespace: its interface is "
                                "probably in another one, and may carry traffic there, so "
                                "aioixy will not take it over. Unbind it from %s, or open it "
                                "with force=True",
                                info->addr, info->driver, info->driver);
    if (!info->ifname[0] || !info->if_up || info->if_addrs == 0)
        return 0;
    return aioixy_set_error(AIOIXY_EBUSY,
                            "%s is the kernel interface %s, which is up with %d address(es): it "
                            "may carry this host's traffic, so aioixy will not take it over. Take "
                            "the interface down ('ip link set %s down') or open with force=True",
                            info->addr, info->ifname, info->if_addrs, info->ifname);
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

int aioixy_pci_unbind(const struct aioixy_pci_info *info)
{
    if (!info->driver[0])
        return 0;
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver/unbind", info->addr);
    int e = write_file(path, info->addr);
    if (e == -EACCES || e == -EPERM)
        return aioixy_set_error(AIOIXY_EPERM, "not permitted to unbind %s from %s: run as root",
                                info->addr, info->driver);
    if (e)
        return aioixy_set_error(AIOIXY_EIO, "unbinding %s from %s failed: %s", info->addr,
                                info->driver, strerror(-e));
    return 0;
}

int aioixy_pci_enable_dma(const char *addr)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", addr);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return aioixy_set_error(errno == EACCES ? AIOIXY_EPERM : AIOIXY_EIO,
                                "cannot open %s: %s", path, strerror(errno));
    uint16_t cmd = 0;
    int rc = 0;
    if (pread(fd, &cmd, 2, 4) != 2) {
        rc = aioixy_set_error(AIOIXY_EIO, "reading the PCI command register of %s failed", addr);
    } else {
        cmd |= 1u << 0 | 1u << 1 | 1u << 2; /* I/O space, memory space, bus master */
        if (pwrite(fd, &cmd, 2, 4) != 2)
            rc = aioixy_set_error(AIOIXY_EIO, "enabling bus mastering on %s failed: %s", addr,
                                  strerror(errno));
    }
    close(fd);
    return rc;
}

int aioixy_pci_open_bar(const char *addr, int bar)
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource%d", addr, bar);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return aioixy_set_error(errno == EACCES || errno == EPERM ? AIOIXY_EPERM : AIOIXY_EIO,
                                "cannot open BAR%d of %s (%s): %s", bar, addr, path, strerror(errno));
    return fd;
}

#define BAR_RW(bits)                                                              \
    uint##bits##_t aioixy_bar_read##bits(int fd, off_t off)                       \
    {                                                                             \
        uint##bits##_t v = 0;                                                     \
        if (pread(fd, &v, sizeof(v), off) != (ssize_t)sizeof(v))                  \
            v = (uint##bits##_t)~0u;                                              \
        return v;                                                                 \
    }                                                                             \
    void aioixy_bar_write##bits(int fd, off_t off, uint##bits##_t v)              \
    {                                                                             \
        if (pwrite(fd, &v, sizeof(v), off) != (ssize_t)sizeof(v))                 \
            aioixy_set_error(AIOIXY_EIO, "BAR write at %#lx failed", (long)off); \
    }
BAR_RW(8)
BAR_RW(16)
BAR_RW(32)
