/* sim-82599 register file: reset and its timers, register transactions (what the driver's
 * read32/write32 hooks reach), and the checks a queue enable must pass. */
#include "sim_internal.h"
#include "sim82599.h"

#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------ reset and timers */

void sim_port_defaults(struct sim_port *p)
{
    memset(p->regs, 0, IXGBE_BAR0_SIZE);
    memset(p->rx, 0, sizeof(p->rx));
    memset(p->tx, 0, sizeof(p->tx));
    p->gprc = p->gptc = p->gorc = p->gotc = p->mpc = 0;
    memset(p->qprc, 0, sizeof(p->qprc));
    memset(p->qptc, 0, sizeof(p->qptc));
    p->gorch_latch = p->gotch_latch = 0;
    p->link_at = 0;
    /* the MAC address the EEPROM would load */
    sim_reg_set(p, IXGBE_RAL(0), (uint32_t)p->mac[0] | (uint32_t)p->mac[1] << 8 |
                                 (uint32_t)p->mac[2] << 16 | (uint32_t)p->mac[3] << 24);
    sim_reg_set(p, IXGBE_RAH(0), (uint32_t)p->mac[4] | (uint32_t)p->mac[5] << 8 | IXGBE_RAH_AV);
    /* datasheet reset values the driver relies on reading back */
    sim_reg_set(p, IXGBE_AUTOC, IXGBE_AUTOC_LMS_10G_SERIAL | (1u << 7));
    sim_reg_set(p, IXGBE_SRRCTL(0), 2u); /* BSIZEPKT 2 KiB, legacy descriptors */
    for (uint32_t q = 1; q < SIM_QUEUES; q++)
        sim_reg_set(p, IXGBE_SRRCTL(q), 2u);
    sim_reg_set(p, IXGBE_RTTDCS, IXGBE_RTTDCS_ARBDIS);
}

void sim_advance(struct sim_port *p, uint64_t now)
{
    if (p->reset_until && now >= p->reset_until) {
        p->reset_until = 0;
        sim_reg_set(p, IXGBE_CTRL, sim_reg(p, IXGBE_CTRL) & ~IXGBE_CTRL_RST_MASK);
        p->autoread_at = now + SIM_AUTOREAD_NS;
    }
    if (p->autoread_at && now >= p->autoread_at) {
        p->autoread_at = 0;
        sim_reg_set(p, IXGBE_EEC, sim_reg(p, IXGBE_EEC) | IXGBE_EEC_ARD);
        sim_reg_set(p, IXGBE_RDRXCTL, sim_reg(p, IXGBE_RDRXCTL) | IXGBE_RDRXCTL_DMAIDONE);
    }
    if (p->link_at && now >= p->link_at) {
        p->link_at = 0;
        sim_reg_set(p, IXGBE_LINKS, IXGBE_LINKS_UP | IXGBE_LINKS_SPEED_10G);
    }
    for (int q = 0; q < SIM_QUEUES; q++) {
        if (p->rx[q].latch_at && now >= p->rx[q].latch_at) {
            p->rx[q].latch_at = 0;
            p->rx[q].enabled = true;
        }
        if (p->tx[q].latch_at && now >= p->tx[q].latch_at) {
            p->tx[q].latch_at = 0;
            p->tx[q].enabled = true;
        }
    }
}

/* ------------------------------------------------------------------ register transactions */

static bool ring_reg(uint32_t reg, uint32_t base, int *q, uint32_t *which)
{
    if (reg < base || reg >= base + 0x40u * SIM_QUEUES)
        return false;
    *q = (int)((reg - base) / 0x40u);
    *which = (reg - base) % 0x40u;
    return true;
}

static bool is_stat(uint32_t reg)
{
    int q;
    uint32_t w;
    return reg == IXGBE_GPRC || reg == IXGBE_GPTC || reg == IXGBE_GORCL || reg == IXGBE_GORCH ||
           reg == IXGBE_GOTCL || reg == IXGBE_GOTCH || (reg >= IXGBE_MPC(0) && reg <= IXGBE_MPC(7)) ||
           (ring_reg(reg, 0x01000, &q, &w) && w == 0x30) || (ring_reg(reg, 0x06000, &q, &w) && w == 0x30);
}

static uint32_t take32(uint64_t *c)
{
    uint64_t v = *c;
    *c = 0;
    return v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
}

uint32_t aioixy_sim_mmio_read(struct sim_port *p, uint32_t reg)
{
    struct sim_card *c = p->card;
    pthread_mutex_lock(&c->lock);
    uint64_t now = sim_now_ns();
    uint32_t v = 0;
    if (reg >= IXGBE_BAR0_SIZE || (reg & 3)) {
        sim_fault(p, "read of register 0x%05x: outside BAR0 or not 4-byte aligned", reg);
        goto out;
    }
    if (sim_in_reset(p, now)) {
        sim_fault(p, "register 0x%05x read %.0f us after CTRL.RST; the datasheet asks for at least "
              "1 ms before any access", reg, (double)(now - (p->reset_until - SIM_RESET_NS)) / 1e3);
        v = sim_reg(p, reg);
        goto out;
    }
    sim_advance(p, now);
    int q;
    uint32_t w;
    if (is_stat(reg)) {
        if (reg == IXGBE_GPRC) v = take32(&p->gprc);
        else if (reg == IXGBE_GPTC) v = take32(&p->gptc);
        else if (reg == IXGBE_GORCL) {
            uint64_t o = p->gorc;
            p->gorc = 0;
            v = (uint32_t)o;
            p->gorch_latch = (uint32_t)(o >> 32) & 0xf;
        } else if (reg == IXGBE_GORCH) {
            v = p->gorch_latch;
            p->gorch_latch = 0;
        } else if (reg == IXGBE_GOTCL) {
            uint64_t o = p->gotc;
            p->gotc = 0;
            v = (uint32_t)o;
            p->gotch_latch = (uint32_t)(o >> 32) & 0xf;
        } else if (reg == IXGBE_GOTCH) {
            v = p->gotch_latch;
            p->gotch_latch = 0;
        } else if (reg == IXGBE_MPC(0)) v = take32(&p->mpc);
        else if (ring_reg(reg, 0x01000, &q, &w)) v = take32(&p->qprc[q]);
        else if (ring_reg(reg, 0x06000, &q, &w)) v = take32(&p->qptc[q]);
        goto out;
    }
    v = sim_reg(p, reg);
    if (ring_reg(reg, 0x01000, &q, &w)) {
        if (w == 0x28) /* RXDCTL: ENABLE reads 1 once latched */
            v = (v & ~IXGBE_RXDCTL_ENABLE) | (p->rx[q].enabled ? IXGBE_RXDCTL_ENABLE : 0);
        else if (w == 0x10)
            v = p->rx[q].head;
    } else if (ring_reg(reg, 0x06000, &q, &w)) {
        if (w == 0x28)
            v = (v & ~IXGBE_TXDCTL_ENABLE) | (p->tx[q].enabled ? IXGBE_TXDCTL_ENABLE : 0);
        else if (w == 0x10)
            v = p->tx[q].head;
    }
out:
    pthread_mutex_unlock(&c->lock);
    return v;
}

/* The checks a queue enable must pass (4.6.7 / 4.6.8: ring registers first, then ENABLE). */
static bool ring_valid(struct sim_port *p, bool rx, int q, struct sim_ring *r)
{
    uint32_t b = rx ? 0x01000u : 0x06000u;
    const char *dir = rx ? "rx" : "tx";
    uint64_t base = (uint64_t)sim_reg(p, b + 0x40u * q + 4) << 32 | sim_reg(p, b + 0x40u * q);
    uint32_t len = sim_reg(p, b + 0x40u * q + 8);
    if (!base || !len) {
        sim_fault(p, "%s queue %d enabled before its ring registers were set (base 0x%llx, length %u)",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if ((base & 127) || (len & 127) || len > 65536u * 16u) {
        sim_fault(p, "%s queue %d: ring base 0x%llx / length %u must be 128-byte multiples",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if (!sim_dma_ok(p, base, len)) {
        sim_fault(p, "%s queue %d: descriptor ring at 0x%llx (+%u bytes) is outside DMA memory",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if (rx) {
        uint32_t srrctl = sim_reg(p, IXGBE_SRRCTL(q));
        if ((srrctl & IXGBE_SRRCTL_DESCTYPE_MASK) != IXGBE_SRRCTL_DESCTYPE_ADV_ONEBUF) {
            sim_fault(p, "rx queue %d: SRRCTL.DESCTYPE %u; the model implements advanced one-buffer "
                  "descriptors only", q, (srrctl >> 25) & 7);
            return false;
        }
        if (!(srrctl & IXGBE_SRRCTL_BSIZEPKT_MASK)) {
            sim_fault(p, "rx queue %d: SRRCTL.BSIZEPKT is 0", q);
            return false;
        }
    } else if (!(sim_reg(p, IXGBE_DMATXCTL) & IXGBE_DMATXCTL_TE)) {
        sim_fault(p, "tx queue %d enabled while DMATXCTL.TE is 0 (transmit DMA must be enabled first)", q);
        return false;
    }
    r->base = base;
    r->n = len / 16u;
    r->head = 0;
    return true;
}

static void write_tail(struct sim_port *p, bool rx, int q, uint32_t reg, uint32_t val)
{
    struct sim_ring *r = rx ? &p->rx[q] : &p->tx[q];
    uint32_t n = r->n ? r->n : sim_reg(p, reg - 0x18 + 0x08) / 16u;
    if (n == 0 || val >= n) {
        sim_fault(p, "%s queue %d: tail %u written beyond the ring (%u descriptors)", rx ? "rx" : "tx",
              q, val, n);
        return;
    }
    sim_reg_set(p, reg, val);
}

void aioixy_sim_mmio_write(struct sim_port *p, uint32_t reg, uint32_t val)
{
    struct sim_card *c = p->card;
    pthread_mutex_lock(&c->lock);
    uint64_t now = sim_now_ns();
    if (reg >= IXGBE_BAR0_SIZE || (reg & 3)) {
        sim_fault(p, "write of register 0x%05x: outside BAR0 or not 4-byte aligned", reg);
        goto out;
    }
    if (sim_in_reset(p, now)) {
        sim_fault(p, "register 0x%05x written %.0f us after CTRL.RST; the datasheet asks for at least "
              "1 ms before any access", reg, (double)(now - (p->reset_until - SIM_RESET_NS)) / 1e3);
        goto out;
    }
    sim_advance(p, now);
    int q;
    uint32_t w;
    if (reg == IXGBE_CTRL) {
        if (val & IXGBE_CTRL_RST) {
            sim_port_defaults(p);
            p->reset_until = now + SIM_RESET_NS;
            sim_reg_set(p, IXGBE_CTRL, val);
        } else {
            if (val & IXGBE_CTRL_LRST) {
                sim_reg_set(p, IXGBE_LINKS, 0);
                p->link_at = 0;
            }
            sim_reg_set(p, IXGBE_CTRL, val & ~IXGBE_CTRL_LRST);
        }
    } else if (reg == IXGBE_AUTOC) {
        sim_reg_set(p, reg, val & ~IXGBE_AUTOC_AN_RESTART);
        if (val & IXGBE_AUTOC_AN_RESTART) {
            sim_reg_set(p, IXGBE_LINKS, 0);
            p->link_at = now + SIM_LINK_NS;
        }
    } else if (is_stat(reg) || reg == IXGBE_LINKS || reg == IXGBE_STATUS) {
        /* read-only: writes are ignored by the device */
    } else if (ring_reg(reg, 0x01000, &q, &w) || ring_reg(reg, 0x06000, &q, &w)) {
        bool rx = reg < 0x06000;
        struct sim_ring *r = rx ? &p->rx[q] : &p->tx[q];
        bool live = r->enabled || r->latch_at;
        uint32_t en_bit = rx ? IXGBE_RXDCTL_ENABLE : IXGBE_TXDCTL_ENABLE;
        if (w == 0x18) { /* tail */
            write_tail(p, rx, q, reg, val);
        } else if (w == 0x28) { /* RXDCTL / TXDCTL */
            sim_reg_set(p, reg, val);
            if ((val & en_bit) && !live) {
                if (ring_valid(p, rx, q, r))
                    r->latch_at = now + SIM_LATCH_NS;
            } else if (!(val & en_bit) && live) {
                r->enabled = false;
                r->latch_at = 0;
            }
        } else if (w <= 0x10 || (rx && w == 0x14)) { /* base, length, head, SRRCTL */
            if (live)
                sim_fault(p, "%s queue %d: ring register 0x%05x changed while the queue is enabled",
                      rx ? "rx" : "tx", q, reg);
            else if (w == 0x10)
                r->head = val;
            else
                sim_reg_set(p, reg, val);
        } else {
            sim_reg_set(p, reg, val);
        }
    } else {
        sim_reg_set(p, reg, val);
    }
out:
    pthread_mutex_unlock(&c->lock);
}
