/* The ixgbe driver's view of a BAR0.
 *
 * On a real 82599 every register access is a load or store to the memory-mapped BAR0 (sysfs
 * resource0 or a VFIO region, mapped by bus/). Whoever attaches the driver may instead supply
 * register-access hooks: the sim-82599 model does, so that each access reaches it as a
 * transaction, the way a PCIe read/write request reaches a device. That lets the model
 * implement what plain shared memory cannot (self-clearing bits, clear-on-read counters, bits
 * that latch later) and notice *when* and *in which order* the driver touched a register. The
 * driver never names the model: it only sees the hooks. With no hooks (real hardware) the cost
 * is one predictable branch per access, and the fast path does one access per batch (the
 * tail write).
 */
#ifndef AIOIXY_IXGBE_H
#define AIOIXY_IXGBE_H

#include "device.h"
/* No register facts here: the model, which includes this header for the hooks, keeps its own
 * register table (model/sim_regs.h), so a wrong offset in ixgbe_regs.h cannot hide from it. */

struct ixgbe_mmio {
    volatile uint8_t *base; /* mapped BAR0, used when read32 is NULL */
    uint32_t (*read32)(void *ctx, uint32_t reg);            /* NULL: direct MMIO */
    void (*write32)(void *ctx, uint32_t reg, uint32_t val); /* set together with read32 */
    void *ctx;
};

static inline uint32_t ixgbe_rd(const struct ixgbe_mmio *m, uint32_t reg)
{
    if (aioixy_unlikely(m->read32 != NULL))
        return m->read32(m->ctx, reg);
    return *(volatile uint32_t *)(m->base + reg);
}

static inline void ixgbe_wr(const struct ixgbe_mmio *m, uint32_t reg, uint32_t val)
{
    if (aioixy_unlikely(m->write32 != NULL)) {
        m->write32(m->ctx, reg, val);
        return;
    }
    *(volatile uint32_t *)(m->base + reg) = val;
}

/* What the caller of ixgbe_attach owns and wants back at close. */
struct ixgbe_backing {
    struct ixgbe_mmio mmio;
    uint16_t device_id;         /* PCI device id: says what the board has behind the MAC */
    struct aioixy_dma_ctx dma;
    void (*release)(void *arg); /* unmap the BAR / close VFIO fds / detach from the model */
    /* Interrupts (option irq=msix): route MSI-X vectors 0..n-1 to eventfds fds[0..n-1]
     * (n = 0: stop routing; the driver closes the eventfds after that). VFIO's MSI-X trigger
     * on a card, the model's message target for the model. NULL: no interrupts to be had. */
    int (*irq_route)(void *arg, uint32_t n, const int *fds);
    void *arg;
};

/* Initialize the 82599 function behind `backing` (reset, link, rx/tx queues, RSS) and return a
 * device. On failure the backing is released too. */
int aioixy_ixgbe_attach(const char *name, const struct ixgbe_backing *backing,
                        const struct aioixy_dev_config *cfg, struct aioixy_dev **out);

#endif
