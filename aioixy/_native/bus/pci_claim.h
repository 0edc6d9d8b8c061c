/* Claiming a PCI function for a user-space driver: decide how DMA may reach memory (VFIO or
 * physical addresses), take the device from its kernel driver, map its memory BAR and turn on
 * bus mastering. Any PCI driver (ixgbe today) uses this instead of doing it itself. */
#ifndef AIOIXY_PCI_CLAIM_H
#define AIOIXY_PCI_CLAIM_H

#include "dma.h"
#include "pci.h"
#include "vfio.h"

enum aioixy_pci_access { AIOIXY_PCI_VFIO = 1, AIOIXY_PCI_SYSFS = 2 };

/* How to reach device `addr` given what sysfs (under `sysfs_root`, normally "/sys") says:
 *  - bound to vfio-pci: VFIO;
 *  - in an IOMMU group (an IOMMU translates its DMA) but bound elsewhere: an error that says
 *    to bind it to vfio-pci, because physical addresses would be blocked by the IOMMU - unless
 *    the group's domain is "identity" (iommu=pt: DMA is not translated);
 *  - no IOMMU group: sysfs BAR mapping and physical addresses (refused if want_vfio).
 * Returns AIOIXY_PCI_VFIO / AIOIXY_PCI_SYSFS, or -AIOIXY_E* with the error set. */
int aioixy_pci_choose_access(const char *sysfs_root, const char *addr, bool want_vfio);

struct aioixy_pci_claim {
    struct aioixy_pci_info info;
    struct aioixy_vfio vfio;      /* open when access == AIOIXY_PCI_VFIO */
    enum aioixy_pci_access access;
    void *bar;                    /* the mapped memory BAR */
    size_t bar_len;
    struct aioixy_dma_ctx dma;    /* how the driver must allocate DMA memory */
};

/* Claim PCI function `addr` (network controllers only) and map memory BAR `bar` (at least
 * `min_bar_len` bytes). Refuses a NIC carrying this host's traffic unless force. On failure
 * nothing stays claimed or mapped. */
int aioixy_pci_claim(const char *addr, int bar, size_t min_bar_len, bool want_vfio, bool force,
                     struct aioixy_pci_claim *out);
void aioixy_pci_unclaim(struct aioixy_pci_claim *c);

#endif
