/* The ixgbe driver's view of a BAR0, shared with the sim-82599 model.
 *
 * On a real 82599 every register access is a load or store to the memory-mapped BAR0 (sysfs
 * resource0 or a VFIO region). Against the model the same driver code runs, but each access is
 * handed to the model as a transaction, the way a PCIe read/write request reaches a device:
 * this lets the model implement what plain shared memory cannot - self-clearing bits,
 * clear-on-read counters, bits that latch later, and noticing *when* and *in which order* the
 * driver touched a register (the mistakes it must catch). The model's register file itself
 * still lives in a shared memfd mapping. One predictable branch per access is the whole cost,
 * and the fast path does one access per batch (the tail write).
 */
#ifndef AIOIXY_IXGBE_H
#define AIOIXY_IXGBE_H

#include "device.h"
#include "ixgbe_regs.h"

struct sim_port;
uint32_t aioixy_sim_mmio_read(struct sim_port *port, uint32_t reg);
void aioixy_sim_mmio_write(struct sim_port *port, uint32_t reg, uint32_t val);

struct ixgbe_mmio {
    volatile uint8_t *base; /* mapped BAR0 (hardware) */
    struct sim_port *model; /* non-NULL: accesses go to the model */
};

static inline uint32_t ixgbe_rd(const struct ixgbe_mmio *m, uint32_t reg)
{
    if (aioixy_unlikely(m->model != NULL))
        return aioixy_sim_mmio_read(m->model, reg);
    return *(volatile uint32_t *)(m->base + reg);
}

static inline void ixgbe_wr(const struct ixgbe_mmio *m, uint32_t reg, uint32_t val)
{
    if (aioixy_unlikely(m->model != NULL)) {
        aioixy_sim_mmio_write(m->model, reg, val);
        return;
    }
    *(volatile uint32_t *)(m->base + reg) = val;
}

/* What the caller of ixgbe_attach owns and wants back at close. */
struct ixgbe_backing {
    struct ixgbe_mmio mmio;
    struct aioixy_dma_ctx dma;
    void (*release)(void *arg); /* unmap the BAR / close VFIO fds / detach from the model */
    void *arg;
};

/* Initialize the 82599 function behind `backing` (reset, link, rx/tx queues, RSS) and return a
 * device. On failure the backing is released too. */
int aioixy_ixgbe_attach(const char *name, const struct ixgbe_backing *backing,
                        const struct aioixy_dev_config *cfg, struct aioixy_dev **out);

#endif
