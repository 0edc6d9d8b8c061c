/* The legacy VirtIO PCI interface (VirtIO 1.x, 4.1.4.8): BAR0 is an I/O-port BAR that user
 * space reaches through pread/pwrite on sysfs resource0, in 1, 2 or 4 byte accesses. Every
 * register access is a syscall, so the fast path touches it only to notify. */
#include "virtio_pci.h"

#include <unistd.h>

#define VP_HOST_FEATURES 0
#define VP_GUEST_FEATURES 4
#define VP_QUEUE_PFN 8
#define VP_QUEUE_NUM 12
#define VP_QUEUE_SEL 14
#define VP_QUEUE_NOTIFY 16
#define VP_STATUS 18
#define VP_CONFIG 20 /* device-specific config while MSI-X is disabled (it always is here) */

int vio_legacy_open(const struct aioixy_pci_info *info, struct vio_pci *t)
{
    t->modern = false;
    int rc;
    if ((rc = aioixy_pci_unbind(info)) || (rc = aioixy_pci_enable_dma(info->addr)))
        return rc;
    t->iofd = aioixy_pci_open_bar(info->addr, 0);
    return t->iofd < 0 ? t->iofd : 0;
}

void vio_legacy_close(struct vio_pci *t)
{
    if (t->iofd >= 0)
        close(t->iofd);
    t->iofd = -1;
}

uint8_t vio_legacy_get_status(struct vio_pci *t)
{
    return aioixy_bar_read8(t->iofd, VP_STATUS);
}

void vio_legacy_set_status(struct vio_pci *t, uint8_t st)
{
    aioixy_bar_write8(t->iofd, VP_STATUS, st);
}

uint64_t vio_legacy_features(struct vio_pci *t)
{
    return aioixy_bar_read32(t->iofd, VP_HOST_FEATURES);
}

void vio_legacy_set_features(struct vio_pci *t, uint64_t f)
{
    aioixy_bar_write32(t->iofd, VP_GUEST_FEATURES, (uint32_t)f);
}

uint16_t vio_legacy_queue_max(struct vio_pci *t, uint16_t index)
{
    aioixy_bar_write16(t->iofd, VP_QUEUE_SEL, index);
    uint16_t n = aioixy_bar_read16(t->iofd, VP_QUEUE_NUM);
    return n == 0xffff ? 0 : n;
}

int vio_legacy_queue_setup(struct vio_pci *t, struct virtq *q)
{
    if (q->mem.iova >> 44)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: virtqueue memory above 16 TiB cannot "
                                "be given to a legacy device", t->name);
    aioixy_bar_write16(t->iofd, VP_QUEUE_SEL, q->index);
    /* the legacy interface takes one 4 KiB page frame number for the whole ring */
    aioixy_bar_write32(t->iofd, VP_QUEUE_PFN, (uint32_t)(q->mem.iova >> 12));
    q->notify_mmio = NULL;
    q->notify_fd = t->iofd;
    q->notify_off = VP_QUEUE_NOTIFY;
    return 0;
}

void vio_legacy_config_read(struct vio_pci *t, uint32_t off, void *out, uint32_t len)
{
    uint8_t *o = out;
    for (uint32_t i = 0; i < len; i++)
        o[i] = aioixy_bar_read8(t->iofd, VP_CONFIG + off + i);
}
