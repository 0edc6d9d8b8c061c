/* The modern VirtIO PCI interface (VirtIO 1.x, 4.1.3 - 4.1.4): the device lists vendor-specific
 * capabilities (4.1.4) in its PCI configuration space, each naming a BAR, an offset and a length
 * of one structure: the common configuration (4.1.4.3), the notification area (4.1.4.4), the
 * ISR status (4.1.4.5) and the device-specific configuration (4.1.4.6). They live in memory
 * BARs, mapped once, so register accesses are plain loads and stores and a queue notification
 * is one store, no syscall.
 *
 * Also here: the vio_* calls, which dispatch to the legacy interface (virtio_legacy.c) for a
 * legacy device. */
#include "virtio_pci.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* capability (4.1.4): cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset,
 * length; the notification capability adds notify_off_multiplier */
#define PCI_CAP_ID_VNDR 0x09
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4

/* common configuration (4.1.4.3), byte offsets */
#define CC_DFSELECT 0
#define CC_DF 4
#define CC_GFSELECT 8
#define CC_GF 12
#define CC_MSIX 16
#define CC_NUMQ 18
#define CC_STATUS 20
#define CC_CFGGEN 21
#define CC_Q_SELECT 22
#define CC_Q_SIZE 24
#define CC_Q_MSIX 26
#define CC_Q_ENABLE 28
#define CC_Q_NOFF 30
#define CC_Q_DESCLO 32
#define CC_Q_DESCHI 36
#define CC_Q_AVAILLO 40
#define CC_Q_AVAILHI 44
#define CC_Q_USEDLO 48
#define CC_Q_USEDHI 52
#define CC_LEN 56

static inline uint8_t rd8(volatile uint8_t *b, uint32_t off)
{
    return *(volatile uint8_t *)(b + off);
}
static inline uint16_t rd16(volatile uint8_t *b, uint32_t off)
{
    return *(volatile uint16_t *)(b + off);
}
static inline uint32_t rd32(volatile uint8_t *b, uint32_t off)
{
    return *(volatile uint32_t *)(b + off);
}
static inline void wr8(volatile uint8_t *b, uint32_t off, uint8_t v)
{
    *(volatile uint8_t *)(b + off) = v;
}
static inline void wr16(volatile uint8_t *b, uint32_t off, uint16_t v)
{
    *(volatile uint16_t *)(b + off) = v;
}
static inline void wr32(volatile uint8_t *b, uint32_t off, uint32_t v)
{
    *(volatile uint32_t *)(b + off) = v;
}
/* 64-bit fields: the two halves may be written separately (4.1.3.1) */
static inline void wr64(volatile uint8_t *b, uint32_t off, uint64_t v)
{
    wr32(b, off, (uint32_t)v);
    wr32(b, off + 4, (uint32_t)(v >> 32));
}

/* The 256 bytes of standard configuration space (root reads them all; others only 64). */
static int read_config(const char *addr, uint8_t cfg[256])
{
    char path[256];
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", addr);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return aioixy_set_error(errno == ENOENT ? AIOIXY_ENODEV : AIOIXY_EIO, "cannot open %s: %s",
                                path, strerror(errno));
    memset(cfg, 0, 256);
    ssize_t n = pread(fd, cfg, 256, 0);
    close(fd);
    if (n < 64)
        return aioixy_set_error(AIOIXY_EIO, "reading the configuration space of %s failed", addr);
    return 0;
}

/* Find the first capability of each type we need; false if there is no common configuration. */
static bool parse_caps(const uint8_t cfg[256], struct vio_pci *t, uint32_t *notify_mult)
{
    bool common = false, notify = false, isr = false;
    t->has_devcfg = false;
    if (!(cfg[0x06] & 0x10)) /* status: capabilities list */
        return false;
    uint8_t pos = cfg[0x34] & 0xfc;
    for (int guard = 0; pos >= 0x40 && pos <= 256 - 20 && guard < 48; guard++) {
        const uint8_t *c = cfg + pos;
        if (c[0] == PCI_CAP_ID_VNDR && c[2] >= 16 && c[4] <= 5) {
            struct vio_cap cap;
            cap.bar = c[4];
            memcpy(&cap.off, c + 8, 4);
            memcpy(&cap.len, c + 12, 4);
            switch (c[3]) {
            case CAP_COMMON:
                if (!common)
                    t->cap_common = cap, common = true;
                break;
            case CAP_NOTIFY:
                if (!notify && c[2] >= 20) {
                    t->cap_notify = cap, notify = true;
                    memcpy(notify_mult, c + 16, 4);
                }
                break;
            case CAP_ISR:
                if (!isr)
                    t->cap_isr = cap, isr = true;
                break;
            case CAP_DEVICE:
                if (!t->has_devcfg)
                    t->cap_devcfg = cap, t->has_devcfg = true;
                break;
            default:
                break;
            }
        }
        pos = c[1] & 0xfc;
    }
    return common && notify && isr;
}

bool vio_modern_present(const char *addr)
{
    uint8_t cfg[256];
    struct vio_pci t;
    uint32_t mult;
    memset(&t, 0, sizeof(t));
    if (read_config(addr, cfg))
        return false;
    return parse_caps(cfg, &t, &mult);
}

int vio_modern_probe(const char *addr, bool force, struct vio_pci *t)
{
    t->modern = true;
    t->iofd = -1;
    struct aioixy_pci_info info;
    int rc = aioixy_pci_info(addr, &info);
    if (rc)
        return rc;
    if ((info.klass >> 16) != 0x02)
        return aioixy_set_error(AIOIXY_ENODEV, "%s (class %06x) is not a network controller", addr,
                                info.klass);
    if ((rc = aioixy_pci_check_safe(&info, force)))
        return rc;
    if (geteuid() != 0)
        return aioixy_set_error(AIOIXY_EPERM, "virtio %s: driving a PCI device from user space "
                                "needs root (sysfs unbind, BAR mapping, physical addresses)", addr);
    uint8_t cfg[256];
    if ((rc = read_config(addr, cfg)))
        return rc;
    if (!parse_caps(cfg, t, &t->notify_mult))
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: no modern VirtIO capabilities (common "
                                "configuration, notifications, ISR) in its PCI capability list",
                                addr);
    if (t->cap_common.len < CC_LEN)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: common configuration is %u bytes, "
                                "expected at least %u", addr, t->cap_common.len, CC_LEN);
    /* Physical addresses only: a modern device behind an IOMMU honours it only with
     * VIRTIO_F_ACCESS_PLATFORM, which the VFIO path would need; that path is not written yet. */
    int access = aioixy_pci_choose_access("/sys", addr, false);
    if (access < 0)
        return access;
    if (access == AIOIXY_PCI_VFIO)
        return aioixy_set_error(AIOIXY_EINVAL, "virtio %s: the function is bound to vfio-pci, but "
                                "the VirtIO driver uses physical addresses (no IOMMU); bind it back "
                                "to virtio-pci or unbind it", addr);
    return 0;
}

/* Map BAR `bar` of the claimed function (the common configuration's BAR is already mapped). */
static volatile uint8_t *bar_base(struct vio_pci *t, uint8_t bar, uint32_t need)
{
    void *base;
    size_t len;
    if (bar == t->cap_common.bar) {
        base = t->claim.bar;
        len = t->claim.bar_len;
    } else {
        if (!t->extra_map[bar]) {
            int fd = aioixy_pci_open_bar(t->name, bar);
            if (fd < 0)
                return NULL;
            struct stat st;
            void *p = MAP_FAILED;
            if (fstat(fd, &st) == 0 && st.st_size > 0)
                p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            int e = errno;
            close(fd);
            if (p == MAP_FAILED) {
                aioixy_set_error(AIOIXY_EIO, "virtio %s: mmap of BAR%u failed: %s (an I/O BAR?)",
                                 t->name, bar, strerror(e));
                return NULL;
            }
            t->extra_map[bar] = p;
            t->extra_len[bar] = (size_t)st.st_size;
        }
        base = t->extra_map[bar];
        len = t->extra_len[bar];
    }
    if (need > len) {
        aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: a capability reaches past the end of BAR%u "
                         "(%u > %zu bytes)", t->name, bar, need, len);
        return NULL;
    }
    return base;
}

int vio_modern_claim(struct vio_pci *t, bool force)
{
    int rc = aioixy_pci_claim(t->name, t->cap_common.bar,
                              (size_t)t->cap_common.off + t->cap_common.len, false, force, &t->claim);
    if (rc)
        return rc;
    volatile uint8_t *b;
    if (!(b = bar_base(t, t->cap_common.bar, t->cap_common.off + t->cap_common.len)))
        return -aioixy_last_errcode();
    t->common = b + t->cap_common.off;
    if (!(b = bar_base(t, t->cap_notify.bar, t->cap_notify.off + t->cap_notify.len)))
        return -aioixy_last_errcode();
    t->notify = b + t->cap_notify.off;
    t->notify_len = t->cap_notify.len;
    if (!(b = bar_base(t, t->cap_isr.bar, t->cap_isr.off + t->cap_isr.len)))
        return -aioixy_last_errcode();
    t->isr = b + t->cap_isr.off; /* mapped for completeness: we poll, and never read it */
    if (t->has_devcfg) {
        if (!(b = bar_base(t, t->cap_devcfg.bar, t->cap_devcfg.off + t->cap_devcfg.len)))
            return -aioixy_last_errcode();
        t->devcfg = b + t->cap_devcfg.off;
        t->devcfg_len = t->cap_devcfg.len;
    }
    return 0;
}

void vio_close(struct vio_pci *t)
{
    if (!t->modern) {
        vio_legacy_close(t);
        return;
    }
    for (int i = 0; i < 6; i++)
        if (t->extra_map[i])
            munmap(t->extra_map[i], t->extra_len[i]);
    memset(t->extra_map, 0, sizeof(t->extra_map));
    aioixy_pci_unclaim(&t->claim);
    t->common = t->notify = t->isr = t->devcfg = NULL;
}

uint8_t vio_get_status(struct vio_pci *t)
{
    return t->modern ? rd8(t->common, CC_STATUS) : vio_legacy_get_status(t);
}

void vio_set_status(struct vio_pci *t, uint8_t st)
{
    if (t->modern)
        wr8(t->common, CC_STATUS, st);
    else
        vio_legacy_set_status(t, st);
}

int vio_reset(struct vio_pci *t)
{
    if (t->modern && !t->common)
        return 0; /* never mapped: nothing was started */
    if (!t->modern && t->iofd < 0)
        return 0;
    vio_set_status(t, 0);
    /* complete when status reads back 0 (4.1.4.3.2); the rings are no longer touched then */
    struct timespec ts = {0, 100000};
    for (int i = 0; i < 10000 && vio_get_status(t) != 0; i++)
        nanosleep(&ts, NULL);
    if (vio_get_status(t) != 0)
        return aioixy_set_error(AIOIXY_ETIMEDOUT, "virtio %s: device did not reset", t->name);
    return 0;
}

uint64_t vio_device_features(struct vio_pci *t)
{
    if (!t->modern)
        return vio_legacy_features(t);
    wr32(t->common, CC_DFSELECT, 0);
    uint64_t lo = rd32(t->common, CC_DF);
    wr32(t->common, CC_DFSELECT, 1);
    uint64_t hi = rd32(t->common, CC_DF);
    return lo | hi << 32;
}

int vio_set_features(struct vio_pci *t, uint64_t f)
{
    if (!t->modern) {
        vio_legacy_set_features(t, f);
        return 0;
    }
    wr32(t->common, CC_GFSELECT, 0);
    wr32(t->common, CC_GF, (uint32_t)f);
    wr32(t->common, CC_GFSELECT, 1);
    wr32(t->common, CC_GF, (uint32_t)(f >> 32));
    /* 3.1.1: FEATURES_OK, then read it back: a device that cannot work with this subset
     * clears it */
    uint8_t st = vio_get_status(t);
    vio_set_status(t, st | VIO_ST_FEATURES_OK);
    if (!(vio_get_status(t) & VIO_ST_FEATURES_OK))
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: the device did not accept the features "
                                "%#llx (FEATURES_OK cleared)", t->name, (unsigned long long)f);
    return 0;
}

uint16_t vio_queue_max(struct vio_pci *t, uint16_t index)
{
    if (!t->modern)
        return vio_legacy_queue_max(t, index);
    if (index >= rd16(t->common, CC_NUMQ))
        return 0;
    wr16(t->common, CC_Q_SELECT, index);
    return rd16(t->common, CC_Q_SIZE);
}

int vio_queue_setup(struct vio_pci *t, struct virtq *q)
{
    if (!t->modern)
        return vio_legacy_queue_setup(t, q);
    volatile uint8_t *c = t->common;
    wr16(c, CC_Q_SELECT, q->index);
    wr16(c, CC_Q_SIZE, q->size); /* may be smaller than the maximum (4.1.4.3.2) */
    /* no MSI-X vector: we poll (per-queue interrupts would be routed here once the port layer
     * can wait on them) */
    wr16(c, CC_Q_MSIX, VIO_MSI_NO_VECTOR);
    wr64(c, CC_Q_DESCLO, vq_desc_iova(q));
    wr64(c, CC_Q_AVAILLO, vq_driver_iova(q));
    wr64(c, CC_Q_USEDLO, vq_device_iova(q));
    uint32_t off = (uint32_t)rd16(c, CC_Q_NOFF) * t->notify_mult;
    if (off + 2 > t->notify_len)
        return aioixy_set_error(AIOIXY_EDEVICE, "virtio %s: queue %u notifies at offset %u, past "
                                "the %u-byte notification area", t->name, q->index, off,
                                t->notify_len);
    q->notify_mmio = (volatile uint16_t *)(t->notify + off);
    q->notify_fd = -1;
    wr16(c, CC_Q_ENABLE, 1); /* volatile stores stay in program order: addresses first */
    return 0;
}

void vio_config_read(struct vio_pci *t, uint32_t off, void *out, uint32_t len)
{
    if (!t->modern) {
        vio_legacy_config_read(t, off, out, len);
        return;
    }
    uint8_t *o = out;
    if (!t->devcfg || off + len > t->devcfg_len) {
        memset(out, 0, len);
        return;
    }
    /* a multi-byte field may change while it is read: repeat until the generation holds
     * (4.1.4.3.1); fields are read at their natural width */
    uint8_t gen;
    do {
        gen = rd8(t->common, CC_CFGGEN);
        if (len == 2) {
            uint16_t v = rd16(t->devcfg, off);
            memcpy(o, &v, 2);
        } else if (len == 4) {
            uint32_t v = rd32(t->devcfg, off);
            memcpy(o, &v, 4);
        } else {
            for (uint32_t i = 0; i < len; i++)
                o[i] = rd8(t->devcfg, off + i);
        }
    } while (gen != rd8(t->common, CC_CFGGEN));
}
