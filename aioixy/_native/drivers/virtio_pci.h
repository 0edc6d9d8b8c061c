/* The two ways a VirtIO PCI device is reached (VirtIO 1.x, section 4.1):
 *  - legacy (4.1.4.8): an I/O-port BAR0 with a fixed register layout, 32 feature bits, queues
 *    at a page frame number; every access a pread/pwrite on sysfs resource0 (virtio_legacy.c);
 *  - modern (4.1.4): vendor capabilities in PCI config space point into memory BARs (common
 *    configuration, notifications, ISR, device configuration), mapped once; 64 feature bits,
 *    VIRTIO_F_VERSION_1, FEATURES_OK, queues at three separate addresses (virtio_pci_modern.c).
 * The net driver (virtio.c) talks to either through struct vio_pci.
 */
#ifndef AIOIXY_VIRTIO_PCI_H
#define AIOIXY_VIRTIO_PCI_H

#include "pci_claim.h"
#include "virtqueue.h"

#define VIO_ST_ACKNOWLEDGE 1u
#define VIO_ST_DRIVER 2u
#define VIO_ST_DRIVER_OK 4u
#define VIO_ST_FEATURES_OK 8u
#define VIO_ST_FAILED 0x80u

#define VIO_F_EVENT_IDX (1ull << 29)
#define VIO_F_VERSION_1 (1ull << 32)
#define VIO_F_ACCESS_PLATFORM (1ull << 33)
#define VIO_F_RING_PACKED (1ull << 34)
#define VIO_F_NOTIFICATION_DATA (1ull << 38)

#define VIO_MSI_NO_VECTOR 0xffffu

struct vio_pci {
    bool modern;
    const char *name;             /* the device name, for messages */
    /* legacy */
    int iofd;                     /* resource0 */
    /* modern */
    struct aioixy_pci_claim claim; /* maps the BAR holding the common configuration */
    struct vio_cap {
        uint8_t bar;
        uint32_t off, len;
    } cap_common, cap_notify, cap_isr, cap_devcfg;
    bool has_devcfg;
    volatile uint8_t *common, *isr, *devcfg, *notify;
    uint32_t notify_mult, notify_len, devcfg_len;
    void *extra_map[6];           /* other BARs a capability points into (sysfs mmap) */
    size_t extra_len[6];
};

/* Does the function have the modern interface (a common-configuration capability)? Reads the
 * capability list from sysfs (root: beyond the first 64 bytes of config space). */
bool vio_modern_present(const char *addr);
/* Open the transport. The device stays as it was (no reset yet). Legacy: `info` was checked by
 * the caller; unbinds the kernel driver and turns on bus mastering.
 * Modern, in two steps so that nothing is changed before the DMA memory is there: probe checks
 * (network class, safety, root, physical addresses usable: a function bound to vfio-pci is
 * refused) and reads the capabilities; claim unbinds the kernel driver and maps the BARs. */
int vio_legacy_open(const struct aioixy_pci_info *info, struct vio_pci *t);
int vio_modern_probe(const char *addr, bool force, struct vio_pci *t);
int vio_modern_claim(struct vio_pci *t, bool force);
void vio_close(struct vio_pci *t);

uint8_t vio_get_status(struct vio_pci *t);
void vio_set_status(struct vio_pci *t, uint8_t st);
/* Write 0 and wait until it reads back 0 (the device then no longer touches the rings). */
int vio_reset(struct vio_pci *t);
uint64_t vio_device_features(struct vio_pci *t);
/* Write the accepted features; modern: set FEATURES_OK and check the device kept it. */
int vio_set_features(struct vio_pci *t, uint64_t features);
/* Largest size of queue `index` (0 = no such queue). */
uint16_t vio_queue_max(struct vio_pci *t, uint16_t index);
/* Give queue q (allocated with vq_alloc, q->index set) to the device, no MSI-X vector, and
 * set up its notification; modern: enable it. */
int vio_queue_setup(struct vio_pci *t, struct virtq *q);
/* Device-specific configuration (5.1.4 for net), read consistently (config_generation). */
void vio_config_read(struct vio_pci *t, uint32_t off, void *out, uint32_t len);

/* The legacy interface's side of the calls above (virtio_legacy.c); the vio_* calls dispatch
 * to them for a legacy device. */
void vio_legacy_close(struct vio_pci *t);
uint8_t vio_legacy_get_status(struct vio_pci *t);
void vio_legacy_set_status(struct vio_pci *t, uint8_t st);
uint64_t vio_legacy_features(struct vio_pci *t);
void vio_legacy_set_features(struct vio_pci *t, uint64_t f);
uint16_t vio_legacy_queue_max(struct vio_pci *t, uint16_t index);
int vio_legacy_queue_setup(struct vio_pci *t, struct virtq *q);
void vio_legacy_config_read(struct vio_pci *t, uint32_t off, void *out, uint32_t len);

#endif
