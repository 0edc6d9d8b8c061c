/* VFIO: a PCI device bound to vfio-pci, driven through its container (IOMMU domain), group and
 * device file descriptors. DMA memory for such a device comes from dma.c's DMA_VFIO provider
 * with the container fd (IOVA = virtual address). */
#ifndef AIOIXY_VFIO_H
#define AIOIXY_VFIO_H

#include "common.h"

#include <stddef.h>

struct aioixy_vfio {
    int container, group, device; /* -1 when not open */
    int irq_index;                /* the VFIO irq index enabled (MSI-X or MSI), -1 none */
};

/* Open the device's IOMMU group, attach it to a new type-1 container, get the device fd. */
int aioixy_vfio_open(const char *addr, struct aioixy_vfio *v);
/* mmap BAR `bar` (must be a memory BAR that allows mmap). */
int aioixy_vfio_map_bar(struct aioixy_vfio *v, int bar, void **out, size_t *len);
/* Set memory decoding and bus master in the command register through the config region. */
int aioixy_vfio_enable_bus_master(struct aioixy_vfio *v);
/* Read `len` bytes of PCI config space at `off` (for tests and identification). */
int aioixy_vfio_config_read(struct aioixy_vfio *v, uint32_t off, void *buf, size_t len);
/* Interrupts. How many vectors the device offers for VFIO irq index `index`
 * (VFIO_PCI_MSIX_IRQ_INDEX 2, VFIO_PCI_MSI_IRQ_INDEX 1): VFIO_DEVICE_GET_IRQ_INFO. */
int aioixy_vfio_irq_count(struct aioixy_vfio *v, uint32_t index, uint32_t *count);
/* Route vectors 0..n-1 each to eventfd fds[i] (VFIO_DEVICE_SET_IRQS, DATA_EVENTFD |
 * ACTION_TRIGGER): MSI-X, or MSI when the device has no MSI-X (then only as many vectors as
 * its MSI capability offers). The kernel signals fds[i] each time vector i fires. */
int aioixy_vfio_irq_enable(struct aioixy_vfio *v, uint32_t n, const int *fds);
/* Stop routing (done by close too); the eventfds stay the caller's to close. */
void aioixy_vfio_irq_disable(struct aioixy_vfio *v);
void aioixy_vfio_close(struct aioixy_vfio *v);

#endif
