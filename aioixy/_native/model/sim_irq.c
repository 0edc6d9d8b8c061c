/* sim-82599 interrupts: queue causes, the MSI-X vectors IVAR maps them to, masking, auto-clear
 * and auto-mask, and EITR throttling (datasheet 7.3: 7.3.1.2 MSI-X, 7.3.2 registers, 7.3.4
 * interrupt moderation; 8.2.3.5 the registers). The MSI-X message of vector v is an eventfd
 * the function's owner attaches (aioixy_sim_msix_attach): what the VFIO MSI-X trigger is on a
 * real card. What the model plays:
 *  - MSI-X mode only (GPIE.MSIX_MODE), vectors 0..15, whose causes are EICR bits 15:0;
 *  - a cause: an rx write-back (or a tx DD write-back) of a queue whose IVAR entry is valid
 *    sets EICR bit v; software sets causes with EICS;
 *  - vector v sends its message when EICR bit v and EIMS bit v are both set, at most once per
 *    EITR interval (ITR_INTERVAL x 2 us; 0 = no throttling): a cause inside the interval
 *    waits and is sent when the interval ends (counted as throttled);
 *  - on sending, EIAC clears the EICR bit (auto-clear) and, with GPIE.EIAME, EIAM clears the
 *    EIMS bit (auto-mask): no further message until the driver writes EIMS again (re-arms);
 *  - EIMS / EIMC write 1 to set / clear the mask; EICR reads clear it, writes of 1 clear bits.
 * Faults: a vector enabled in EIMS outside MSI-X mode, with no IVAR entry mapping a cause to
 * it, or with no message target; an IVAR entry naming a vector above 15. */
#include "sim_internal.h"
#include "sim82599.h"

#include <string.h>
#include <unistd.h>

#define QUEUE_VECTORS 0xffffu /* EICR/EIMS bits 15:0: the queue vectors the model plays */

static uint64_t itr_ns(struct sim_port *p, uint32_t v)
{
    return (uint64_t)((sim_reg(p, IXGBE_EITR(v)) & IXGBE_EITR_ITR_MASK) >> 3) * 2000ull;
}

/* Send vector v's message if its cause is pending and enabled and its interval is over. */
static void try_send(struct sim_port *p, uint32_t v, uint64_t now)
{
    uint32_t bit = 1u << v;
    if (!(sim_reg(p, IXGBE_EICR) & sim_reg(p, IXGBE_EIMS) & bit)) {
        p->irq_held &= ~bit; /* masked or cleared meanwhile: nothing to send at the end */
        return;
    }
    uint64_t ivl = itr_ns(p, v);
    if (ivl && p->irq_sent_at[v] && now < p->irq_sent_at[v] + ivl) {
        if (!(p->irq_held & bit))
            p->irq_throttled++;
        p->irq_held |= bit;
        return;
    }
    p->irq_held &= ~bit;
    p->irq_sent_at[v] = now;
    p->irq_sent[v]++;
    if ((sim_reg(p, IXGBE_GPIE) & IXGBE_GPIE_EIAME) && (sim_reg(p, IXGBE_EIAM) & bit))
        sim_reg_set(p, IXGBE_EIMS, sim_reg(p, IXGBE_EIMS) & ~bit);
    if (sim_reg(p, IXGBE_EIAC) & bit)
        sim_reg_set(p, IXGBE_EICR, sim_reg(p, IXGBE_EICR) & ~bit);
    if (p->msix_fd[v] >= 0) {
        uint64_t one = 1;
        ssize_t rc = write(p->msix_fd[v], &one, sizeof(one));
        (void)rc; /* the counter cannot overflow in practice; EAGAIN would mean it did */
    }
}

static void raise_causes(struct sim_port *p, uint32_t bits, uint64_t now)
{
    bits &= QUEUE_VECTORS;
    if (!bits)
        return;
    sim_reg_set(p, IXGBE_EICR, sim_reg(p, IXGBE_EICR) | bits);
    for (uint32_t v = 0; bits; v++, bits >>= 1)
        if (bits & 1u)
            try_send(p, v, now);
}

void sim_irq_queue_cause(struct sim_port *p, int q, bool rx, uint64_t now)
{
    uint32_t ivar = sim_reg(p, IXGBE_IVAR((uint32_t)q / 2u));
    uint32_t e = (ivar >> (16u * ((uint32_t)q & 1u) + (rx ? 0u : 8u))) & 0xffu;
    if (!(e & IXGBE_IVAR_ALLOC_VAL))
        return;
    raise_causes(p, 1u << (e & 0xfu), now);
}

void sim_irq_advance(struct sim_port *p, uint64_t now)
{
    for (uint32_t held = p->irq_held, v = 0; held; v++, held >>= 1)
        if (held & 1u)
            try_send(p, v, now);
}

void sim_irq_reset(struct sim_port *p)
{
    p->irq_held = 0;
    memset(p->irq_sent_at, 0, sizeof(p->irq_sent_at));
}

/* Is some cause (rx or tx of one of the model's queues) mapped to vector v? */
static bool vector_mapped(struct sim_port *p, uint32_t v)
{
    for (uint32_t i = 0; i < SIM_QUEUES / 2; i++) {
        uint32_t ivar = sim_reg(p, IXGBE_IVAR(i));
        for (uint32_t k = 0; k < 4; k++) {
            uint32_t e = (ivar >> (8u * k)) & 0xffu;
            if ((e & IXGBE_IVAR_ALLOC_VAL) && (e & 0x3fu) == v)
                return true;
        }
    }
    return false;
}

/* A write to one of the interrupt registers; false if `reg` is not one. */
bool sim_irq_write(struct sim_port *p, uint32_t reg, uint32_t val, uint64_t now)
{
    if (reg == IXGBE_EIMS) {
        uint32_t on = val & QUEUE_VECTORS;
        if (on && !(sim_reg(p, IXGBE_GPIE) & IXGBE_GPIE_MSIX_MODE)) {
            sim_fault(p, "EIMS 0x%08x enables queue interrupts with GPIE.MSIX_MODE clear: the model "
                      "plays MSI-X mode only (set GPIE first: datasheet 4.6.3.1, 7.3.1)", val);
            return true;
        }
        for (uint32_t v = 0; v < 16; v++) {
            if (!(on & (1u << v)))
                continue;
            if (!vector_mapped(p, v))
                sim_fault(p, "EIMS enables vector %u but no IVAR entry maps a cause to it "
                          "(program IVAR before EIMS: datasheet 7.3.1.2)", v);
            else if (p->msix_fd[v] < 0)
                sim_fault(p, "EIMS enables vector %u but its MSI-X message has no target (the "
                          "MSI-X table entry / VFIO eventfd is not set up)", v);
        }
        sim_reg_set(p, IXGBE_EIMS, sim_reg(p, IXGBE_EIMS) | (val & 0x7fffffffu));
        /* a cause that waited while masked is sent now */
        raise_causes(p, sim_reg(p, IXGBE_EICR) & on, now);
    } else if (reg == IXGBE_EIMC) {
        sim_reg_set(p, IXGBE_EIMS, sim_reg(p, IXGBE_EIMS) & ~val);
    } else if (reg == IXGBE_EICS) {
        raise_causes(p, val, now);
    } else if (reg == IXGBE_EICR) {
        sim_reg_set(p, IXGBE_EICR, sim_reg(p, IXGBE_EICR) & ~val);
    } else if (reg >= IXGBE_IVAR(0) && reg < IXGBE_IVAR(SIM_QUEUES / 2)) {
        for (uint32_t k = 0; k < 4; k++) {
            uint32_t e = (val >> (8u * k)) & 0xffu;
            if ((e & IXGBE_IVAR_ALLOC_VAL) && (e & 0x3fu) > 15u)
                sim_fault(p, "IVAR(%u) 0x%08x maps a queue cause to vector %u: the model plays "
                          "vectors 0..15", (reg - IXGBE_IVAR(0)) / 4u, val, e & 0x3fu);
        }
        sim_reg_set(p, reg, val);
    } else if (reg >= IXGBE_EITR(0) && reg < IXGBE_EITR(16)) {
        sim_reg_set(p, reg, val & ~IXGBE_EITR_CNT_WDIS); /* CNT_WDIS is write-only */
    } else {
        return false;
    }
    return true;
}

/* EICR reads clear it (the driver's stop sequence relies on that). */
bool sim_irq_read(struct sim_port *p, uint32_t reg, uint32_t *v)
{
    if (reg != IXGBE_EICR)
        return false;
    *v = sim_reg(p, IXGBE_EICR);
    sim_reg_set(p, IXGBE_EICR, 0);
    return true;
}

int aioixy_sim_msix_attach(struct sim_port *p, uint32_t vector, int fd)
{
    if (vector >= 16)
        return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: MSI-X vector %u: the model plays 0..15",
                                vector);
    pthread_mutex_lock(&p->card->lock);
    p->msix_fd[vector] = fd;
    pthread_mutex_unlock(&p->card->lock);
    return 0;
}

void aioixy_sim_irq_counts(struct sim_port *p, uint32_t vector, uint64_t *sent, uint64_t *throttled)
{
    pthread_mutex_lock(&p->card->lock);
    *sent = vector < 16 ? p->irq_sent[vector] : 0;
    *throttled = p->irq_throttled;
    pthread_mutex_unlock(&p->card->lock);
}
