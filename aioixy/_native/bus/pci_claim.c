#include "pci_claim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* basename of the symlink at path ("" if none), at most 63 characters */
static void link_name(const char *path, char *out, size_t len)
{
    char link[512];
    out[0] = '\0';
    ssize_t n = readlink(path, link, sizeof(link) - 1);
    if (n <= 0)
        return;
    link[n] = '\0';
    const char *slash = strrchr(link, '/');
    snprintf(out, len, "%.63s", slash ? slash + 1 : link);
}

int aioixy_pci_choose_access(const char *sysfs_root, const char *addr, bool want_vfio)
{
    char path[512], driver[64], group[64];
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sysfs_root, addr);
    link_name(path, driver, sizeof(driver));
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/iommu_group", sysfs_root, addr);
    link_name(path, group, sizeof(group));
    if (strcmp(driver, "vfio-pci") == 0)
        return AIOIXY_PCI_VFIO;
    if (!group[0])
        return AIOIXY_PCI_SYSFS; /* no IOMMU: physical addresses are what the device uses */
    const char *bound = driver[0] ? driver : "no driver";
    if (!want_vfio) {
        /* iommu=pt puts the group in an identity domain: DMA is untranslated, so physical
         * addresses do reach memory */
        char type[32] = "";
        snprintf(path, sizeof(path), "%s/kernel/iommu_groups/%s/type", sysfs_root, group);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(type, sizeof(type), f))
                type[0] = '\0';
            fclose(f);
            type[strcspn(type, "\n")] = '\0';
        }
        if (strcmp(type, "identity") == 0)
            return AIOIXY_PCI_SYSFS;
        return aioixy_set_error(AIOIXY_EINVAL,
                                "%s is behind an IOMMU (IOMMU group %s, bound to %s) and vfio=False: "
                                "the IOMMU would block DMA to physical addresses. Open it with "
                                "vfio=True (aioixy binds it to vfio-pci)", addr, group, bound);
    }
    snprintf(path, sizeof(path), "%s/bus/pci/drivers/vfio-pci", sysfs_root);
    if (access(path, F_OK) != 0)
        return aioixy_set_error(AIOIXY_ENODEV,
                                "%s is behind an IOMMU (IOMMU group %s, bound to %s): aioixy drives "
                                "it through VFIO, but the vfio-pci driver is not loaded (modprobe "
                                "vfio-pci)", addr, group, bound);
    return AIOIXY_PCI_VFIO_BIND;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int e = n < 0 ? -errno : 0;
    close(fd);
    return e;
}

int aioixy_pci_bind_vfio(const char *sysfs_root, const char *addr)
{
    char path[512], driver[64];
    const char *step = "driver_override";
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver_override", sysfs_root, addr);
    int e = write_text(path, "vfio-pci");
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sysfs_root, addr);
    link_name(path, driver, sizeof(driver));
    if (!e && driver[0]) {
        step = "unbind";
        snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver/unbind", sysfs_root, addr);
        e = write_text(path, addr);
    }
    if (!e) {
        step = "drivers_probe";
        snprintf(path, sizeof(path), "%s/bus/pci/drivers_probe", sysfs_root);
        e = write_text(path, addr);
    }
    if (e)
        return aioixy_set_error(e == -EACCES || e == -EPERM ? AIOIXY_EPERM : AIOIXY_EIO,
                                "%s: binding it to vfio-pci failed at %s (%s): %s", addr, step, path,
                                strerror(-e));
    /* the kernel binds on drivers_probe; give it a moment */
    snprintf(path, sizeof(path), "%s/bus/pci/devices/%s/driver", sysfs_root, addr);
    for (int i = 0; i < 100; i++) {
        link_name(path, driver, sizeof(driver));
        if (strcmp(driver, "vfio-pci") == 0)
            return 0;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return aioixy_set_error(AIOIXY_EIO, "%s: asked the kernel to bind it to vfio-pci, but it is "
                            "bound to %s", addr, driver[0] ? driver : "no driver");
}

void aioixy_pci_unclaim(struct aioixy_pci_claim *c)
{
    if (c->bar)
        munmap(c->bar, c->bar_len);
    c->bar = NULL;
    aioixy_vfio_close(&c->vfio);
}

static int map_resource(struct aioixy_pci_claim *c, int bar, size_t min_len)
{
    int fd = aioixy_pci_open_bar(c->info.addr, bar);
    if (fd < 0)
        return fd;
    struct stat st;
    if (fstat(fd, &st) != 0 || (size_t)st.st_size < min_len) {
        close(fd);
        return aioixy_set_error(AIOIXY_EDEVICE, "%s: BAR%d is %lld bytes, expected at least %zu",
                                c->info.addr, bar, (long long)st.st_size, min_len);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return aioixy_set_error(AIOIXY_EIO, "%s: mmap of BAR%d failed: %s", c->info.addr, bar,
                                strerror(e));
    c->bar = p;
    c->bar_len = (size_t)st.st_size;
    return 0;
}

int aioixy_pci_claim(const char *addr, int bar, size_t min_bar_len, bool want_vfio, bool force,
                     struct aioixy_pci_claim *out)
{
    memset(out, 0, sizeof(*out));
    out->vfio.container = out->vfio.group = out->vfio.device = out->vfio.irq_index = -1;
    out->dma.vfio_container_fd = -1;
    int rc = aioixy_pci_info(addr, &out->info);
    if (rc)
        return rc;
    if ((out->info.klass >> 16) != 0x02)
        return aioixy_set_error(AIOIXY_ENODEV, "%s (class %06x) is not a network controller", addr,
                                out->info.klass);
    if ((rc = aioixy_pci_check_safe(&out->info, force)))
        return rc;
    if (geteuid() != 0)
        return aioixy_set_error(AIOIXY_EPERM, "%s: driving a PCI device from user space needs root "
                                "(sysfs unbind and BAR mapping, or VFIO)", addr);
    int access = aioixy_pci_choose_access("/sys", addr, want_vfio);
    if (access < 0)
        return access;
    if (access == AIOIXY_PCI_VFIO_BIND) {
        if ((rc = aioixy_pci_bind_vfio("/sys", addr)))
            return rc;
        access = AIOIXY_PCI_VFIO;
    }
    out->access = (enum aioixy_pci_access)access;
    if (access == AIOIXY_PCI_VFIO) {
        /* the IOMMU translates: IOVA = VA, no physical addresses */
        if ((rc = aioixy_vfio_open(addr, &out->vfio)) ||
            (rc = aioixy_vfio_map_bar(&out->vfio, bar, &out->bar, &out->bar_len)) ||
            (rc = aioixy_vfio_enable_bus_master(&out->vfio)))
            goto fail;
        if (out->bar_len < min_bar_len) {
            rc = aioixy_set_error(AIOIXY_EDEVICE, "%s: BAR%d is %zu bytes, expected at least %zu",
                                  addr, bar, out->bar_len, min_bar_len);
            goto fail;
        }
        out->dma.kind = DMA_VFIO;
        out->dma.vfio_container_fd = out->vfio.container;
    } else {
        if ((rc = aioixy_pci_unbind(&out->info)) || (rc = aioixy_pci_enable_dma(addr)) ||
            (rc = map_resource(out, bar, min_bar_len)))
            goto fail;
        out->dma.kind = DMA_HUGEPAGE;
    }
    return 0;
fail:
    aioixy_pci_unclaim(out);
    return rc;
}
