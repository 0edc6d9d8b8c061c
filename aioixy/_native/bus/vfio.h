/* VFIO: a PCI device bound to vfio-pci, driven through its container (IOMMU domain), group and
 * device file descriptors. DMA memory for such a device comes from dma.c's DMA_VFIO provider
 * with the container fd (IOVA = virtual address). */
#ifndef AIOIXY_VFIO_H
#define AIOIXY_VFIO_H

#include "common.h"

#include <stddef.h>

struct aioixy_vfio {
    int container, group, device; /* -1 when not open */
};

/* Open the device's IOMMU group, attach it to a new type-1 container, get the device fd. */
int aioixy_vfio_open(const char *addr, struct aioixy_vfio *v);
/* mmap BAR `bar` (must be a memory BAR that allows mmap). */
int aioixy_vfio_map_bar(struct aioixy_vfio *v, int bar, void **out, size_t *len);
/* Set memory decoding and bus master in the command register through the config region. */
int aioixy_vfio_enable_bus_master(struct aioixy_vfio *v);
/* Read `len` bytes of PCI config space at `off` (for tests and identification). */
int aioixy_vfio_config_read(struct aioixy_vfio *v, uint32_t off, void *buf, size_t len);
void aioixy_vfio_close(struct aioixy_vfio *v);

#endif
