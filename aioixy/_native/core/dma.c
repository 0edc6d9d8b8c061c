#include "dma.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGEMAP_PFN_MASK ((1ull << 55) - 1)
#define PAGEMAP_PRESENT (1ull << 63)

static void hugepage_counts(long *total, long *free_pages)
{
    *total = *free_pages = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f)
        return;
    char line[128];
    while (fgets(line, sizeof(line), f)) {
        sscanf(line, "HugePages_Total: %ld", total);
        sscanf(line, "HugePages_Free: %ld", free_pages);
    }
    fclose(f);
}

uint64_t aioixy_virt_to_phys(const void *addr)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        aioixy_set_error(AIOIXY_EPERM, "cannot open /proc/self/pagemap: %s", strerror(errno));
        return 0;
    }
    uint64_t entry = 0;
    off_t off = (off_t)((uintptr_t)addr / (uintptr_t)page) * (off_t)sizeof(entry);
    ssize_t n = pread(fd, &entry, sizeof(entry), off);
    close(fd);
    if (n != (ssize_t)sizeof(entry)) {
        aioixy_set_error(AIOIXY_EIO, "reading /proc/self/pagemap failed: %s", strerror(errno));
        return 0;
    }
    if (!(entry & PAGEMAP_PRESENT)) {
        aioixy_set_error(AIOIXY_EIO, "page at %p is not present in memory", addr);
        return 0;
    }
    uint64_t pfn = entry & PAGEMAP_PFN_MASK;
    if (pfn == 0) {
        /* the kernel hides PFNs from processes without CAP_SYS_ADMIN */
        aioixy_set_error(AIOIXY_EPERM,
                         "physical addresses are hidden from this process (/proc/self/pagemap "
                         "shows PFN 0): hardware DMA needs root (CAP_SYS_ADMIN)");
        return 0;
    }
    return pfn * (uint64_t)page + ((uintptr_t)addr % (uintptr_t)page);
}

static int alloc_hugepages(size_t map_size, void **out)
{
    void *p = mmap(NULL, map_size, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS | MAP_HUGETLB | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        int e = errno;
        long total, free_pages;
        hugepage_counts(&total, &free_pages);
        size_t need = map_size / AIOIXY_HUGEPAGE_SIZE;
        if (e == ENOMEM || e == EINVAL)
            return aioixy_set_error(AIOIXY_ENOHUGE,
                                    "no hugepages: need %zu free 2 MiB hugepages, the system has "
                                    "%ld reserved and %ld free; reserve more with "
                                    "'echo %ld > /proc/sys/vm/nr_hugepages' (as root)",
                                    need, total, free_pages,
                                    (total < 0 ? 0 : total) + (long)need + 8);
        if (e == EPERM || e == EACCES)
            return aioixy_set_error(AIOIXY_EPERM, "not permitted to map hugepages: %s", strerror(e));
        return aioixy_set_error(AIOIXY_ENOMEM, "mmap of %zu bytes of hugepages failed: %s",
                                map_size, strerror(e));
    }
    /* locked so the physical addresses handed to the device can never change under it */
    if (mlock(p, map_size) != 0) {
        int e = errno;
        munmap(p, map_size);
        return aioixy_set_error(e == EPERM ? AIOIXY_EPERM : AIOIXY_ENOMEM,
                                "mlock of DMA memory failed: %s (root or a larger "
                                "RLIMIT_MEMLOCK is needed)", strerror(e));
    }
    *out = p;
    return 0;
}

static int vfio_map(int container, void *virt, size_t size)
{
    struct vfio_iommu_type1_dma_map map = {
        .argsz = sizeof(map),
        .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        .vaddr = (uint64_t)(uintptr_t)virt,
        .iova = (uint64_t)(uintptr_t)virt,
        .size = size,
    };
    if (ioctl(container, VFIO_IOMMU_MAP_DMA, &map) != 0)
        return aioixy_set_error(AIOIXY_EIO,
                                "VFIO_IOMMU_MAP_DMA of %zu bytes at %p failed: %s (an IOMMU "
                                "with 48-bit address width is needed for IOVA = VA)",
                                size, virt, strerror(errno));
    return 0;
}

/* Registry of DMA_ANON regions: the "IOMMU" of device models, which must refuse DMA to memory
 * that was never handed out for DMA. Changes are rare (pool and ring allocation), lookups are
 * frequent, so lookups are answered from a caller-side cache validated by a generation count. */
#define ANON_MAX 4096
static struct {
    pthread_mutex_t lock;
    _Atomic uint64_t gen;
    uint32_t n;
    uintptr_t start[ANON_MAX], end[ANON_MAX];
} anon = {.lock = PTHREAD_MUTEX_INITIALIZER};

static bool anon_register(void *p, size_t size)
{
    pthread_mutex_lock(&anon.lock);
    bool ok = anon.n < ANON_MAX;
    if (ok) {
        anon.start[anon.n] = (uintptr_t)p;
        anon.end[anon.n] = (uintptr_t)p + size;
        anon.n++;
        atomic_fetch_add_explicit(&anon.gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&anon.lock);
    return ok;
}

static void anon_unregister(void *p)
{
    pthread_mutex_lock(&anon.lock);
    for (uint32_t i = 0; i < anon.n; i++) {
        if (anon.start[i] == (uintptr_t)p) {
            anon.n--;
            anon.start[i] = anon.start[anon.n];
            anon.end[i] = anon.end[anon.n];
            break;
        }
    }
    /* bumped under the lock, so a cache filled before this free can never validate again */
    atomic_fetch_add_explicit(&anon.gen, 1, memory_order_release);
    pthread_mutex_unlock(&anon.lock);
}

bool aioixy_dma_anon_lookup(uint64_t iova, uint64_t len, struct aioixy_dma_window *cache)
{
    uint64_t gen = atomic_load_explicit(&anon.gen, memory_order_acquire);
    if (cache->gen == gen && cache->end && iova >= cache->start && len <= cache->end - iova &&
        iova < cache->end)
        return true;
    bool ok = false;
    pthread_mutex_lock(&anon.lock);
    for (uint32_t i = 0; i < anon.n; i++) {
        if (iova >= anon.start[i] && iova < anon.end[i] && len <= anon.end[i] - iova) {
            cache->start = anon.start[i];
            cache->end = anon.end[i];
            cache->gen = atomic_load_explicit(&anon.gen, memory_order_relaxed);
            ok = true;
            break;
        }
    }
    pthread_mutex_unlock(&anon.lock);
    return ok;
}

int aioixy_dma_alloc(const struct aioixy_dma_ctx *ctx, size_t size, bool contiguous,
                     struct aioixy_dma_mem *out)
{
    memset(out, 0, sizeof(*out));
    out->vfio_container_fd = -1;
    if (size == 0)
        return aioixy_set_error(AIOIXY_EINVAL, "DMA allocation of 0 bytes");
    out->kind = ctx->kind;
    out->size = size;
    void *p = NULL;
    int rc;
    switch (ctx->kind) {
    case DMA_HOST:
    case DMA_ANON: {
        long page = sysconf(_SC_PAGESIZE);
        out->map_size = (size + (size_t)page - 1) & ~((size_t)page - 1);
        p = mmap(NULL, out->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return aioixy_set_error(AIOIXY_ENOMEM, "mmap of %zu bytes failed: %s", out->map_size,
                                    strerror(errno));
        out->virt = p;
        out->iova = (uint64_t)(uintptr_t)p;
        out->contiguous = true;
        if (ctx->kind == DMA_ANON && !anon_register(p, out->map_size)) {
            munmap(p, out->map_size);
            memset(out, 0, sizeof(*out));
            return aioixy_set_error(AIOIXY_ENOMEM, "more than %d DMA regions are live", ANON_MAX);
        }
        return 0;
    }
    case DMA_HUGEPAGE:
        out->map_size = (size + AIOIXY_HUGEPAGE_SIZE - 1) & ~(size_t)(AIOIXY_HUGEPAGE_SIZE - 1);
        rc = alloc_hugepages(out->map_size, &p);
        if (rc)
            return rc;
        out->virt = p;
        out->iova = aioixy_virt_to_phys(p);
        if (!out->iova) {
            munmap(p, out->map_size);
            return -aioixy_last_errcode();
        }
        out->contiguous = true;
        for (size_t off = AIOIXY_HUGEPAGE_SIZE; off < out->map_size; off += AIOIXY_HUGEPAGE_SIZE) {
            uint64_t phys = aioixy_virt_to_phys((uint8_t *)p + off);
            if (phys != out->iova + off)
                out->contiguous = false;
        }
        if (contiguous && !out->contiguous) {
            munmap(p, out->map_size);
            return aioixy_set_error(AIOIXY_ENOMEM,
                                    "%zu bytes of physically contiguous DMA memory were needed but "
                                    "the hugepages obtained are not contiguous; use smaller rings "
                                    "or reserve hugepages early after boot", size);
        }
        return 0;
    case DMA_VFIO:
        if (ctx->vfio_container_fd < 0)
            return aioixy_set_error(AIOIXY_EINVAL, "VFIO DMA requested without a VFIO container");
        out->map_size = (size + AIOIXY_HUGEPAGE_SIZE - 1) & ~(size_t)(AIOIXY_HUGEPAGE_SIZE - 1);
        rc = alloc_hugepages(out->map_size, &p);
        if (rc == -AIOIXY_ENOHUGE) {
            /* the IOMMU translates, so ordinary pinned pages work too; only the TLB suffers */
            p = mmap(NULL, out->map_size, PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
            if (p == MAP_FAILED)
                return aioixy_set_error(AIOIXY_ENOMEM, "mmap for VFIO DMA failed: %s", strerror(errno));
            aioixy_clear_error();
        } else if (rc) {
            return rc;
        }
        rc = vfio_map(ctx->vfio_container_fd, p, out->map_size);
        if (rc) {
            munmap(p, out->map_size);
            return rc;
        }
        out->virt = p;
        out->iova = (uint64_t)(uintptr_t)p;
        out->contiguous = true;
        out->vfio_container_fd = ctx->vfio_container_fd;
        return 0;
    }
    return aioixy_set_error(AIOIXY_EINVAL, "unknown DMA provider %d", (int)ctx->kind);
}

void aioixy_dma_free(struct aioixy_dma_mem *mem)
{
    if (!mem->virt)
        return;
    if (mem->kind == DMA_VFIO && mem->vfio_container_fd >= 0) {
        struct vfio_iommu_type1_dma_unmap unmap = {
            .argsz = sizeof(unmap),
            .iova = (uint64_t)(uintptr_t)mem->virt,
            .size = mem->map_size,
        };
        (void)ioctl(mem->vfio_container_fd, VFIO_IOMMU_UNMAP_DMA, &unmap);
    }
    if (mem->kind == DMA_ANON)
        anon_unregister(mem->virt);
    munmap(mem->virt, mem->map_size);
    memset(mem, 0, sizeof(*mem));
}

bool aioixy_dma_reachable(const struct aioixy_dma_mem *mem, const struct aioixy_dma_ctx *ctx)
{
    if (ctx->kind == DMA_HOST)
        return true;
    if (mem->kind != ctx->kind)
        return false;
    return ctx->kind != DMA_VFIO || mem->vfio_container_fd == ctx->vfio_container_fd;
}

uint64_t aioixy_dma_iova(const struct aioixy_dma_mem *mem, const void *addr)
{
    uintptr_t off = (uintptr_t)addr - (uintptr_t)mem->virt;
    if ((uintptr_t)addr < (uintptr_t)mem->virt || off >= mem->map_size) {
        aioixy_set_error(AIOIXY_EINVAL, "address %p is outside the DMA region", addr);
        return 0;
    }
    if (mem->kind != DMA_HUGEPAGE || mem->contiguous)
        return mem->iova + off;
    return aioixy_virt_to_phys(addr);
}
