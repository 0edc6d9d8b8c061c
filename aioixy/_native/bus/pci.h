/* PCI devices through sysfs: identity, kernel driver binding, bus mastering, BAR access, and
 * the safety check that keeps aioixy off a NIC carrying this host's traffic. Shared by the
 * VirtIO and ixgbe drivers. */
#ifndef AIOIXY_PCI_H
#define AIOIXY_PCI_H

#include "common.h"

#include <sys/types.h>

struct aioixy_pci_info {
    char addr[16];          /* canonical dddd:bb:dd.f */
    uint16_t vendor, device;
    uint32_t klass;
    char driver[64];        /* bound kernel driver, "" if none */
    char ifname[64];        /* its network interface, "" if none */
    bool net_driver;        /* a network driver holds it (virtio: the virtio device's driver),
                             * so it has an interface, maybe in another network namespace */
    bool if_up;             /* interface administratively up */
    int if_addrs;           /* IPv4/IPv6 addresses on it (link-local IPv6 not counted) */
};

/* Fill *info for a PCI address (already canonical). 0 or -AIOIXY_ENODEV. */
int aioixy_pci_info(const char *addr, struct aioixy_pci_info *info);
/* Refuse (-AIOIXY_EBUSY with an explanation), unless force, if the device's interface is up
 * with addresses, or if a network driver holds it but its interface is not in this network
 * namespace (then nothing here can tell whether it carries traffic). */
int aioixy_pci_check_safe(const struct aioixy_pci_info *info, bool force);
/* Unbind the kernel driver (if any). 0 or -AIOIXY_E*. */
int aioixy_pci_unbind(const struct aioixy_pci_info *info);
/* Set Bus Master Enable (and I/O + memory decoding) in the command register. */
int aioixy_pci_enable_dma(const char *addr);
/* Open BAR `bar` (resourceN) read-write. Returns fd or -AIOIXY_E*. */
int aioixy_pci_open_bar(const char *addr, int bar);

/* Port-I/O BAR accessors over a resourceN fd: sysfs only takes 1, 2 or 4 byte accesses. */
uint8_t aioixy_bar_read8(int fd, off_t off);
uint16_t aioixy_bar_read16(int fd, off_t off);
uint32_t aioixy_bar_read32(int fd, off_t off);
void aioixy_bar_write8(int fd, off_t off, uint8_t v);
void aioixy_bar_write16(int fd, off_t off, uint16_t v);
void aioixy_bar_write32(int fd, off_t off, uint32_t v);

#endif
