/* Claiming a PCI function for a user-space driver: decide how DMA may reach memory (VFIO or
 * physical addresses), take the device from its kernel driver, map its memory BAR and turn on
 * bus mastering. Any PCI driver (ixgbe today) uses this instead of doing it itself. */
#ifndef AIOIXY_PCI_CLAIM_H
#define AIOIXY_PCI_CLAIM_H

#include "dma.h"
#include "pci.h"
#include "vfio.h"

enum aioixy_pci_access { AIOIXY_PCI_VFIO = 1, AIOIXY_PCI_SYSFS = 2, AIOIXY_PCI_VFIO_BIND = 3 };

/* How to reach device `addr` given what sysfs (under `sysfs_root`, normally "/sys") says.
 * VFIO is preferred whenever the device has an IOMMU group, as ixy does: the IOMMU then keeps
 * the device's DMA inside the memory mapped for it.
 *  - bound to vfio-pci: AIOIXY_PCI_VFIO;
 *  - in an IOMMU group, bound elsewhere or to nothing: AIOIXY_PCI_VFIO_BIND (bind it to
 *    vfio-pci, then VFIO) - unless want_vfio is false and the group's domain is "identity"
 *    (iommu=pt: DMA is not translated), then AIOIXY_PCI_SYSFS; with want_vfio false and a
 *    translating domain, an error (physical addresses would be blocked by the IOMMU);
 *    AIOIXY_PCI_VFIO_BIND also needs the vfio-pci driver loaded, else an error says so;
 *  - no IOMMU group: AIOIXY_PCI_SYSFS, sysfs BAR mapping and physical addresses.
 * Returns one of those, or -AIOIXY_E* with the error set. */
int aioixy_pci_choose_access(const char *sysfs_root, const char *addr, bool want_vfio);
/* Hand device `addr` to vfio-pci: driver_override, unbind from its driver, drivers_probe, then
 * wait (up to 1 s) until sysfs shows it bound to vfio-pci. 0 or -AIOIXY_E*. */
int aioixy_pci_bind_vfio(const char *sysfs_root, const char *addr);

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
