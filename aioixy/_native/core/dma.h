/* DMA-able memory: one interface, three providers, and plain host memory.
 *
 *  DMA_HOST      plain anonymous memory no device may DMA from: software devices (null, pair)
 *                move it with the CPU. Not in the DMA_ANON registry, so a device model refuses
 *                it like an IOMMU would refuse memory that was never mapped.
 *  DMA_ANON      plain anonymous memory, IOVA == virtual address. For software devices and
 *                device models (the 82599 model DMAs with IOVA = VA), never for real hardware.
 *  DMA_HUGEPAGE  2 MiB hugepages (MAP_HUGETLB), mlocked, IOVA = physical address read from
 *                /proc/self/pagemap. Needs root (CAP_SYS_ADMIN to see PFNs) and reserved
 *                hugepages; a region that must be contiguous is refused if its pages are not.
 *  DMA_VFIO      hugepage-backed memory mapped into a VFIO container with
 *                VFIO_IOMMU_MAP_DMA, IOVA = virtual address.
 */
#ifndef AIOIXY_DMA_H
#define AIOIXY_DMA_H

#include "common.h"

#define AIOIXY_HUGEPAGE_SIZE (2u * 1024u * 1024u)

enum aioixy_dma_kind { DMA_ANON = 0, DMA_HUGEPAGE = 1, DMA_VFIO = 2, DMA_HOST = 3 };

/* Per-device DMA context: which provider, and for VFIO the container fd. */
struct aioixy_dma_ctx {
    enum aioixy_dma_kind kind;
    int vfio_container_fd; /* DMA_VFIO only, else -1 */
};

struct aioixy_dma_mem {
    void *virt;        /* start of the region */
    uint64_t iova;     /* bus address of virt (meaningful for the whole region only if contiguous) */
    size_t size;       /* usable size requested (rounded up) */
    /* private to dma.c */
    size_t map_size;
    enum aioixy_dma_kind kind;
    int vfio_container_fd;
    bool contiguous;
};

/* Allocate `size` bytes (zeroed). If `contiguous`, the whole region must be IOVA-contiguous
 * (always true for ANON and VFIO; for HUGEPAGE, sizes > 2 MiB are checked page by page and
 * refused with AIOIXY_ENOMEM if not contiguous). Returns 0 or -AIOIXY_E*. */
int aioixy_dma_alloc(const struct aioixy_dma_ctx *ctx, size_t size, bool contiguous,
                     struct aioixy_dma_mem *out);
void aioixy_dma_free(struct aioixy_dma_mem *mem);

/* Can a device with DMA context `ctx` reach memory from `mem`? A DMA_HOST device (the CPU
 * copies) reaches anything; a DMA_ANON device (a model: IOVA = VA, checked against the global
 * registry) reaches DMA_ANON memory; DMA_HUGEPAGE (physical addresses) reaches DMA_HUGEPAGE; a
 * VFIO device reaches only what is mapped in its own container. */
bool aioixy_dma_reachable(const struct aioixy_dma_mem *mem, const struct aioixy_dma_ctx *ctx);

/* IOVA of an arbitrary address inside a region from aioixy_dma_alloc (pagemap lookup for
 * HUGEPAGE, identity for ANON/VFIO). Returns 0 on failure (address 0 is never valid DMA). */
uint64_t aioixy_dma_iova(const struct aioixy_dma_mem *mem, const void *addr);

/* Is [iova, iova+len) inside one live DMA_ANON region? Device models call this for every DMA
 * they perform, like an IOMMU would check its page tables. `cache` (zero-initialised, one per
 * caller thread) remembers the last region hit and is revalidated by a generation count, so
 * the common case takes no lock. */
struct aioixy_dma_window {
    uint64_t start, end, gen;
};
bool aioixy_dma_anon_lookup(uint64_t iova, uint64_t len, struct aioixy_dma_window *cache);

/* Translate any mlocked virtual address through /proc/self/pagemap (0 on failure). */
uint64_t aioixy_virt_to_phys(const void *addr);

#endif
