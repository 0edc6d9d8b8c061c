#include "vfio.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

void aioixy_vfio_close(struct aioixy_vfio *v)
{
    aioixy_vfio_irq_disable(v);
    /* device first: the group cannot leave its container while a device fd is open */
    if (v->device >= 0)
        close(v->device);
    if (v->group >= 0)
        close(v->group);
    if (v->container >= 0)
        close(v->container);
    v->container = v->group = v->device = -1;
}

static int fail(struct aioixy_vfio *v, int code, const char *addr, const char *what)
{
    int e = errno;
    aioixy_vfio_close(v);
    return aioixy_set_error(code, "VFIO %s: %s: %s", addr, what, strerror(e));
}

int aioixy_vfio_open(const char *addr, struct aioixy_vfio *v)
{
    v->container = v->group = v->device = v->irq_index = -1;
    char path[128], link[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", addr);
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n < 0)
        return aioixy_set_error(AIOIXY_ENODEV, "VFIO %s: the device has no IOMMU group (%s): "
                                "is an IOMMU enabled (intel_iommu=on)?", addr, path);
    link[n] = '\0';
    const char *group = basename(link);
    v->container = open("/dev/vfio/vfio", O_RDWR);
    if (v->container < 0)
        return fail(v, errno == EACCES ? AIOIXY_EPERM : AIOIXY_ENODEV, addr,
                    "cannot open /dev/vfio/vfio (is the vfio module loaded?)");
    if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
        errno = EINVAL;
        return fail(v, AIOIXY_EDEVICE, addr, "unknown VFIO API version");
    }
    if (!ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1_IOMMU)) {
        errno = EINVAL;
        return fail(v, AIOIXY_EDEVICE, addr, "no type-1 IOMMU support");
    }
    snprintf(path, sizeof(path), "/dev/vfio/%s", group);
    v->group = open(path, O_RDWR);
    if (v->group < 0)
        return fail(v, errno == EBUSY ? AIOIXY_EBUSY : errno == EACCES ? AIOIXY_EPERM : AIOIXY_ENODEV,
                    addr, "cannot open its VFIO group");
    struct vfio_group_status status = {.argsz = sizeof(status)};
    if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &status) != 0)
        return fail(v, AIOIXY_EIO, addr, "VFIO_GROUP_GET_STATUS");
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
        aioixy_vfio_close(v);
        return aioixy_set_error(AIOIXY_EBUSY, "VFIO %s: IOMMU group %s is not viable: every device "
                                "in it must be bound to vfio-pci (or no driver)", addr, group);
    }
    if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) != 0)
        return fail(v, AIOIXY_EIO, addr, "VFIO_GROUP_SET_CONTAINER");
    if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU) != 0)
        return fail(v, AIOIXY_EIO, addr, "VFIO_SET_IOMMU");
    v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, addr);
    if (v->device < 0)
        return fail(v, AIOIXY_EIO, addr, "VFIO_GROUP_GET_DEVICE_FD");
    return 0;
}

static int region_info(struct aioixy_vfio *v, uint32_t index, struct vfio_region_info *ri)
{
    memset(ri, 0, sizeof(*ri));
    ri->argsz = sizeof(*ri);
    ri->index = index;
    if (ioctl(v->device, VFIO_DEVICE_GET_REGION_INFO, ri) != 0)
        return aioixy_set_error(AIOIXY_EIO, "VFIO_DEVICE_GET_REGION_INFO(%u): %s", index, strerror(errno));
    return 0;
}

int aioixy_vfio_map_bar(struct aioixy_vfio *v, int bar, void **out, size_t *len)
{
    struct vfio_region_info ri;
    int rc = region_info(v, VFIO_PCI_BAR0_REGION_INDEX + (uint32_t)bar, &ri);
    if (rc)
        return rc;
    if (!(ri.flags & VFIO_REGION_INFO_FLAG_MMAP) || ri.size == 0)
        return aioixy_set_error(AIOIXY_EDEVICE, "VFIO: BAR%d cannot be mmap'ed (an I/O BAR?)", bar);
    void *p = mmap(NULL, ri.size, PROT_READ | PROT_WRITE, MAP_SHARED, v->device, (off_t)ri.offset);
    if (p == MAP_FAILED)
        return aioixy_set_error(AIOIXY_EIO, "VFIO: mmap of BAR%d failed: %s", bar, strerror(errno));
    *out = p;
    *len = ri.size;
    return 0;
}

int aioixy_vfio_config_read(struct aioixy_vfio *v, uint32_t off, void *buf, size_t len)
{
    struct vfio_region_info ri;
    int rc = region_info(v, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
    if (rc)
        return rc;
    if (pread(v->device, buf, len, (off_t)(ri.offset + off)) != (ssize_t)len)
        return aioixy_set_error(AIOIXY_EIO, "VFIO: config space read failed: %s", strerror(errno));
    return 0;
}

int aioixy_vfio_enable_bus_master(struct aioixy_vfio *v)
{
    struct vfio_region_info ri;
    int rc = region_info(v, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
    if (rc)
        return rc;
    uint16_t cmd;
    if (pread(v->device, &cmd, 2, (off_t)(ri.offset + 4)) != 2)
        return aioixy_set_error(AIOIXY_EIO, "VFIO: cannot read the command register: %s", strerror(errno));
    cmd |= (1u << 1) | (1u << 2); /* memory space, bus master */
    if (pwrite(v->device, &cmd, 2, (off_t)(ri.offset + 4)) != 2)
        return aioixy_set_error(AIOIXY_EIO, "VFIO: cannot write the command register: %s", strerror(errno));
    return 0;
}

/* ---------------------------------------------------------------- interrupts */

int aioixy_vfio_irq_count(struct aioixy_vfio *v, uint32_t index, uint32_t *count)
{
    *count = 0;
    if (v->device < 0)
        return aioixy_set_error(AIOIXY_EINVAL, "VFIO: interrupts of a device that is not open");
    struct vfio_irq_info info = {.argsz = sizeof(info), .index = index};
    if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &info) != 0)
        return aioixy_set_error(AIOIXY_EIO, "VFIO_DEVICE_GET_IRQ_INFO(%u): %s", index, strerror(errno));
    /* an eventfd trigger is what we ask for; a device without it is as good as none */
    *count = (info.flags & VFIO_IRQ_INFO_EVENTFD) ? info.count : 0;
    return 0;
}

static int set_irqs(struct aioixy_vfio *v, uint32_t index, uint32_t n, const int *fds)
{
    /* the header and n int32 fds; 64 vectors is more than any queue layout here needs */
    union {
        struct vfio_irq_set set;
        uint8_t raw[sizeof(struct vfio_irq_set) + 64 * sizeof(int32_t)];
    } buf;
    if (n > 64)
        return aioixy_set_error(AIOIXY_EINVAL, "VFIO: %u interrupt vectors (at most 64)", n);
    memset(&buf, 0, sizeof(buf));
    buf.set.argsz = (uint32_t)(sizeof(struct vfio_irq_set) + n * sizeof(int32_t));
    buf.set.flags = (n ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
                    VFIO_IRQ_SET_ACTION_TRIGGER;
    buf.set.index = index;
    buf.set.start = 0;
    buf.set.count = n; /* 0 with DATA_NONE: disable every vector of the index */
    for (uint32_t i = 0; i < n; i++) {
        int32_t fd = fds[i];
        memcpy(buf.set.data + i * sizeof(int32_t), &fd, sizeof(fd));
    }
    if (ioctl(v->device, VFIO_DEVICE_SET_IRQS, &buf.set) != 0)
        return aioixy_set_error(AIOIXY_EIO, "VFIO_DEVICE_SET_IRQS(index %u, %u vectors): %s", index, n,
                                strerror(errno));
    return 0;
}

int aioixy_vfio_irq_enable(struct aioixy_vfio *v, uint32_t n, const int *fds)
{
    if (n == 0)
        return aioixy_set_error(AIOIXY_EINVAL, "VFIO: enabling 0 interrupt vectors");
    uint32_t have = 0;
    int rc = aioixy_vfio_irq_count(v, VFIO_PCI_MSIX_IRQ_INDEX, &have);
    if (rc)
        return rc;
    uint32_t index = VFIO_PCI_MSIX_IRQ_INDEX;
    if (have == 0) {
        if ((rc = aioixy_vfio_irq_count(v, VFIO_PCI_MSI_IRQ_INDEX, &have)))
            return rc;
        index = VFIO_PCI_MSI_IRQ_INDEX;
    }
    if (have < n)
        return aioixy_set_error(AIOIXY_EDEVICE, "VFIO: the device offers %u %s vectors, %u wanted",
                                have, index == VFIO_PCI_MSIX_IRQ_INDEX ? "MSI-X" : "MSI", n);
    aioixy_vfio_irq_disable(v);
    if ((rc = set_irqs(v, index, n, fds)))
        return rc;
    v->irq_index = (int)index;
    return 0;
}

void aioixy_vfio_irq_disable(struct aioixy_vfio *v)
{
    /* only what irq_enable set: a struct zeroed by its owner (index 0 is INTx) means none */
    if ((v->irq_index != VFIO_PCI_MSIX_IRQ_INDEX && v->irq_index != VFIO_PCI_MSI_IRQ_INDEX) ||
        v->device < 0)
        return;
    (void)set_irqs(v, (uint32_t)v->irq_index, 0, NULL);
    v->irq_index = -1;
}
