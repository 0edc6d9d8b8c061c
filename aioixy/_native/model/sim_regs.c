/* sim-82599 register file: reset and its timers, register transactions (what the driver's
 * read32/write32 hooks reach), and the checks a queue enable must pass. */
#include "sim_internal.h"
#include "sim82599.h"

#include <pthread.h>
#include <string.h>

/* ------------------------------------------------------------------ reset and timers */

/* The link mode a board's EEPROM loads into AUTOC/AUTOC2, by medium (the modes Linux's
 * ixgbe_get_media_type_82599 / ixgbe_get_link_capabilities_82599 associate with each id). */
static void eeprom_link_mode(enum sim_medium m, uint32_t *autoc, uint32_t *autoc2)
{
    *autoc2 = 0;
    switch (m) {
    case MEDIUM_SFP:
        *autoc = IXGBE_AUTOC_LMS_10G_SERIAL;
        *autoc2 = IXGBE_AUTOC2_10G_SFI;
        break;
    case MEDIUM_KX4: case MEDIUM_KR: case MEDIUM_BACKPLANE:
        *autoc = IXGBE_AUTOC_LMS_KX4_KX_KR | IXGBE_AUTOC_10G_KX4;
        break;
    case MEDIUM_CX4:
        *autoc = IXGBE_AUTOC_LMS_10G_PARALLEL | IXGBE_AUTOC_10G_CX4;
        break;
    case MEDIUM_XAUI: case MEDIUM_BASET: /* 10GBASE-T: XAUI to the external PHY */
    default:
        *autoc = IXGBE_AUTOC_LMS_10G_PARALLEL | IXGBE_AUTOC_10G_XAUI;
        break;
    }
}

/* Does the link mode in AUTOC/AUTOC2 reach the medium? 0 = no link, else the link-up delay.
 * (8.2.3.22.19: LMS 001b 10G parallel uses AUTOC.10G_PMA_PMD (XAUI/KX4/CX4), 011b 10G serial
 * uses AUTOC2.10G_PMA_PMD_SERIAL (KR/SFI), 100b/110b auto-negotiate over the backplane.) */
static uint64_t link_delay(struct sim_port *p)
{
    uint32_t autoc = sim_reg(p, IXGBE_AUTOC), autoc2 = sim_reg(p, IXGBE_AUTOC2);
    if (autoc2 & IXGBE_AUTOC2_LINK_DISABLE_MASK)
        return 0;
    uint32_t lms = autoc & IXGBE_AUTOC_LMS_MASK, pma = autoc & IXGBE_AUTOC_10G_PMA_PMD_MASK;
    uint32_t serial = autoc2 & IXGBE_AUTOC2_10G_PMA_PMD_SERIAL_MASK;
    bool an = lms == IXGBE_AUTOC_LMS_KX4_KX_KR || lms == (6u << 13) || lms == (7u << 13);
    switch (p->card->medium) {
    case MEDIUM_SFP:
        return lms == IXGBE_AUTOC_LMS_10G_SERIAL && serial == IXGBE_AUTOC2_10G_SFI ? SIM_LINK_NOAN_NS : 0;
    case MEDIUM_KX4:
        if (an)
            return SIM_LINK_NS;
        return lms == IXGBE_AUTOC_LMS_10G_PARALLEL && pma == IXGBE_AUTOC_10G_KX4 ? SIM_LINK_NOAN_NS : 0;
    case MEDIUM_KR:
        if (an)
            return SIM_LINK_NS;
        return lms == IXGBE_AUTOC_LMS_10G_SERIAL && serial == IXGBE_AUTOC2_10G_KR ? SIM_LINK_NOAN_NS : 0;
    case MEDIUM_BACKPLANE:
        return an ? SIM_LINK_NS : 0;
    case MEDIUM_CX4:
        return lms == IXGBE_AUTOC_LMS_10G_PARALLEL && pma == IXGBE_AUTOC_10G_CX4 ? SIM_LINK_NOAN_NS : 0;
    case MEDIUM_XAUI:
    case MEDIUM_BASET:
    default:
        return lms == IXGBE_AUTOC_LMS_10G_PARALLEL && pma == IXGBE_AUTOC_10G_XAUI ? SIM_LINK_NOAN_NS : 0;
    }
}

void sim_port_defaults(struct sim_port *p)
{
    memset(p->regs, 0, IXGBE_BAR0_SIZE);
    memset(p->rx, 0, sizeof(p->rx));
    memset(p->tx, 0, sizeof(p->tx));
    p->gprc = p->gptc = p->gorc = p->gotc = p->mpc = 0;
    memset(p->qprc, 0, sizeof(p->qprc));
    memset(p->qptc, 0, sizeof(p->qptc));
    memset(p->qbrc, 0, sizeof(p->qbrc));
    memset(p->qprdc, 0, sizeof(p->qprdc));
    memset(p->qbrch_latch, 0, sizeof(p->qbrch_latch));
    p->gorch_latch = p->gotch_latch = 0;
    p->link_at = 0;
    p->secrx_rdy_at = 0;
    p->gio_clear_at = 0;
    p->roc = p->crcerrs = 0;
    p->rx_hung = false;
    sim_irq_reset(p);
    /* the MAC address the EEPROM would load */
    sim_reg_set(p, IXGBE_RAL(0), (uint32_t)p->mac[0] | (uint32_t)p->mac[1] << 8 |
                                 (uint32_t)p->mac[2] << 16 | (uint32_t)p->mac[3] << 24);
    sim_reg_set(p, IXGBE_RAH(0), (uint32_t)p->mac[4] | (uint32_t)p->mac[5] << 8 | IXGBE_RAH_AV);
    uint32_t autoc, autoc2;
    eeprom_link_mode(p->card->medium, &autoc, &autoc2);
    if (p->card->eeprom_lms >= 0) /* an EEPROM image with another link mode (option lms=) */
        autoc = (autoc & ~IXGBE_AUTOC_LMS_MASK) | (uint32_t)p->card->eeprom_lms << IXGBE_AUTOC_LMS_SHIFT;
    sim_reg_set(p, IXGBE_AUTOC, autoc);
    sim_reg_set(p, IXGBE_AUTOC2, autoc2);
    /* reset values the checks below depend on */
    sim_reg_set(p, IXGBE_STATUS, IXGBE_STATUS_GIO); /* bus mastering on */
    sim_reg_set(p, IXGBE_RDRXCTL, SIM_RDRXCTL_RSCFRSTSIZE_RESET);
    sim_reg_set(p, IXGBE_MAXFRS, SIM_MAXFRS_RESET);
    for (uint32_t q = 0; q < SIM_QUEUES; q++) {
        sim_reg_set(p, IXGBE_SRRCTL(q), 2u); /* BSIZEPKT 2 KiB, legacy descriptors */
        /* bit 12 resets to 1 and must be cleared (ixy, Snabb; datasheet 4.6.7); the relaxed
         * ordering bits come up set (Linux ixgbe_start_hw_gen2 clears them) */
        sim_reg_set(p, IXGBE_DCA_RXCTRL(q), IXGBE_DCA_RXCTRL_DESC_RRO_EN | IXGBE_DCA_RXCTRL_RSVD12 |
                                                IXGBE_DCA_RXCTRL_DATA_WRO_EN | IXGBE_DCA_RXCTRL_HEAD_WRO_EN);
        sim_reg_set(p, IXGBE_DCA_TXCTRL(q), (1u << 9) | IXGBE_DCA_TXCTRL_DESC_WRO_EN | (1u << 13));
    }
    /* one packet buffer owning all of the memory: 512 KB rx, 160 KB tx, threshold 150 KB */
    sim_reg_set(p, IXGBE_RXPBSIZE(0), IXGBE_RXPBSIZE_512KB);
    sim_reg_set(p, IXGBE_TXPBSIZE(0), IXGBE_TXPBSIZE_160KB);
    sim_reg_set(p, IXGBE_TXPBTHRESH(0), IXGBE_TXPBSIZE_160KB / 1024u - IXGBE_TX_MAX_FRAME_KB);
    sim_reg_set(p, IXGBE_RTTDCS, IXGBE_RTTDCS_ARBDIS);
}

void sim_advance(struct sim_port *p, uint64_t now)
{
    if (p->reset_until && now >= p->reset_until) {
        p->reset_until = 0;
        /* the reset is over: CTRL back to its default, GIO_DIS included */
        sim_reg_set(p, IXGBE_CTRL, sim_reg(p, IXGBE_CTRL) & ~(IXGBE_CTRL_RST_MASK | IXGBE_CTRL_GIO_DIS));
        p->autoread_at = now + SIM_AUTOREAD_NS;
    }
    if (p->autoread_at && now >= p->autoread_at) {
        p->autoread_at = 0;
        sim_reg_set(p, IXGBE_EEC, sim_reg(p, IXGBE_EEC) | IXGBE_EEC_ARD);
        sim_reg_set(p, IXGBE_RDRXCTL, sim_reg(p, IXGBE_RDRXCTL) | IXGBE_RDRXCTL_DMAIDONE);
    }
    if (p->gio_clear_at && p->gio_clear_at != SIM_NEVER && now >= p->gio_clear_at) {
        p->gio_clear_at = 0;
        sim_reg_set(p, IXGBE_STATUS, sim_reg(p, IXGBE_STATUS) & ~IXGBE_STATUS_GIO);
    }
    if (p->link_at && now >= p->link_at) {
        p->link_at = 0;
        sim_reg_set(p, IXGBE_LINKS, IXGBE_LINKS_UP | IXGBE_LINKS_SPEED_10G);
    }
    for (int q = 0; q < SIM_QUEUES; q++) {
        if (p->rx[q].latch_at && now >= p->rx[q].latch_at) {
            p->rx[q].latch_at = 0;
            p->rx[q].enabled = p->rx[q].ran = true;
            p->rx[q].flushed = false;
        }
        if (p->tx[q].latch_at && now >= p->tx[q].latch_at) {
            p->tx[q].latch_at = 0;
            p->tx[q].enabled = p->tx[q].ran = true;
            p->tx[q].flushed = false;
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
           reg == IXGBE_ROC || reg == IXGBE_CRCERRS ||
           reg == IXGBE_GOTCL || reg == IXGBE_GOTCH || (reg >= IXGBE_MPC(0) && reg <= IXGBE_MPC(7)) ||
           (ring_reg(reg, 0x01000, &q, &w) && w >= 0x30 && w <= 0x38) ||
           (ring_reg(reg, IXGBE_QPRDC(0), &q, &w) && w == 0) || (ring_reg(reg, 0x06000, &q, &w) && w == 0x30);
}

static uint32_t take32(uint64_t *c)
{
    uint64_t v = *c;
    *c = 0;
    return v > 0xffffffffu ? 0xffffffffu : (uint32_t)v;
}

/* The 82598-compatible addresses the 82599 still decodes for its first 16 queues and receive
 * addresses (Linux and ixy program SRRCTL, DCA_RXCTRL and RAL/RAH there): one register, two
 * addresses, so the model stores it once, under the 82599 address. */
static uint32_t canonical_reg(uint32_t reg)
{
    if (reg >= IXGBE_SRRCTL_82598(0) && reg < IXGBE_SRRCTL_82598(SIM_QUEUES))
        return IXGBE_SRRCTL((reg - IXGBE_SRRCTL_82598(0)) / 4u);
    if (reg >= IXGBE_DCA_RXCTRL_82598(0) && reg < IXGBE_DCA_RXCTRL_82598(SIM_QUEUES))
        return IXGBE_DCA_RXCTRL((reg - IXGBE_DCA_RXCTRL_82598(0)) / 4u);
    if (reg >= IXGBE_RAL_82598(0) && reg < IXGBE_RAL_82598(16))
        return IXGBE_RAL(0) + (reg - IXGBE_RAL_82598(0));
    return reg;
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
    reg = canonical_reg(reg);
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
        else if (reg == IXGBE_ROC) v = take32(&p->roc);
        else if (reg == IXGBE_CRCERRS) v = take32(&p->crcerrs);
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
        else if (ring_reg(reg, IXGBE_QPRDC(0), &q, &w)) v = take32(&p->qprdc[q]);
        else if (ring_reg(reg, 0x01000, &q, &w) && w == 0x30) v = take32(&p->qprc[q]);
        else if (ring_reg(reg, 0x01000, &q, &w) && w == 0x34) {
            uint64_t o = p->qbrc[q];
            p->qbrc[q] = 0;
            v = (uint32_t)o;
            p->qbrch_latch[q] = (uint32_t)(o >> 32) & 0xf;
        } else if (ring_reg(reg, 0x01000, &q, &w) && w == 0x38) {
            v = p->qbrch_latch[q];
            p->qbrch_latch[q] = 0;
        }
        else if (ring_reg(reg, 0x06000, &q, &w)) v = take32(&p->qptc[q]);
        goto out;
    }
    if (sim_irq_read(p, reg, &v))
        goto out;
    v = sim_reg(p, reg);
    if (reg == IXGBE_SECRXSTAT) {
        v = p->secrx_rdy_at && now >= p->secrx_rdy_at ? IXGBE_SECRXSTAT_SECRX_RDY : 0;
    } else if (ring_reg(reg, 0x01000, &q, &w)) {
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
        uint32_t bsize = srrctl & IXGBE_SRRCTL_BSIZEPKT_MASK;
        if (!bsize || bsize > IXGBE_SRRCTL_BSIZEPKT_MAX) {
            sim_fault(p, "rx queue %d: SRRCTL.BSIZEPKT is %u; valid sizes are 1..16 KiB (bits 4:0, "
                      "datasheet 8.2.3.8.7)", q, bsize);
            return false;
        }
        if (srrctl & (7u << 5)) {
            sim_fault(p, "rx queue %d: SRRCTL 0x%08x sets reserved bits 7:5 (BSIZEPACKET is bits "
                      "4:0; a mask of 0x7F reaches into them)", q, srrctl);
            return false;
        }
        uint32_t dca = sim_reg(p, IXGBE_DCA_RXCTRL(q));
        if (dca & IXGBE_DCA_RXCTRL_RSVD12) {
            sim_fault(p, "rx queue %d enabled with DCA_RXCTRL bit 12 set (reserved, resets to 1, must "
                      "be 0: datasheet 4.6.7; ixy and Snabb clear it)", q);
            return false;
        }
        if (dca & (IXGBE_DCA_RXCTRL_DATA_WRO_EN | IXGBE_DCA_RXCTRL_HEAD_WRO_EN)) {
            sim_fault(p, "rx queue %d enabled with relaxed ordering of data/header writes "
                      "(DCA_RXCTRL 0x%08x): the write-back may overtake the data (Linux "
                      "ixgbe_start_hw_gen2 clears these bits)", q, dca);
            return false;
        }
    } else if (!(sim_reg(p, IXGBE_DMATXCTL) & IXGBE_DMATXCTL_TE)) {
        sim_fault(p, "tx queue %d enabled while DMATXCTL.TE is 0 (transmit DMA must be enabled first)", q);
        return false;
    } else if (sim_reg(p, IXGBE_DCA_TXCTRL(q)) & IXGBE_DCA_TXCTRL_DESC_WRO_EN) {
        sim_fault(p, "tx queue %d enabled with relaxed ordering of descriptor write-backs "
                  "(DCA_TXCTRL.DESC_WRO_EN; Linux ixgbe_start_hw_gen2 clears it)", q);
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

/* CTRL.RST with DMA possibly in flight: Linux stops the adapter first (ixgbe_stop_adapter_generic:
 * receive off, queues disabled) and disables PCIe mastering, waiting for STATUS.GIO to clear
 * (ixgbe_disable_pcie_master; datasheet 5.2.5.3.2). A reset without that can hang the device. */
static void check_quiesced(struct sim_port *p)
{
    if (p->double_reset_due) {
        /* the second of the two resets master disable asks for when STATUS.GIO stays set:
         * the first one already stopped everything, bus mastering is back on by design */
        p->double_reset_due = false;
        return;
    }
    int rxq = -1, txq = -1, unflushed = -1;
    for (int q = 0; q < SIM_QUEUES; q++) {
        if (rxq < 0 && (p->rx[q].enabled || p->rx[q].latch_at))
            rxq = q;
        if (txq < 0 && (p->tx[q].enabled || p->tx[q].latch_at))
            txq = q;
        if (unflushed < 0 && ((p->rx[q].ran && !p->rx[q].flushed) || (p->tx[q].ran && !p->tx[q].flushed)))
            unflushed = q;
    }
    if (unflushed >= 0 && rxq < 0 && txq < 0)
        sim_fault(p, "CTRL.RST after queue %d was stopped without RXDCTL/TXDCTL.SWFLSH: descriptor "
                  "write-backs it still held may be lost (Linux ixgbe_stop_adapter_generic writes "
                  "SWFLSH with every queue disable)", unflushed);
    if (sim_reg(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN)
        sim_fault(p, "CTRL.RST with receive still enabled (RXCTRL.RXEN): stop the adapter first "
                  "(datasheet 5.2.5.3.2, Linux ixgbe_stop_adapter_generic)");
    if (rxq >= 0 || txq >= 0)
        sim_fault(p, "CTRL.RST with DMA queues still enabled (first rx %d, first tx %d): disable them "
                  "first (datasheet 5.2.5.3.2)", rxq, txq);
    if ((sim_reg(p, IXGBE_STATUS) & IXGBE_STATUS_GIO) && (sim_reg(p, IXGBE_CTRL) & IXGBE_CTRL_GIO_DIS))
        /* master disable was asked for but requests are still pending: the way out is two
         * resets in a row (datasheet 5.2.5.3.2 and the 82599 specification update's "Master
         * Disable Flow"; Linux sets IXGBE_FLAGS_DOUBLE_RESET_REQUIRED) */
        p->double_reset_due = true;
    else if (sim_reg(p, IXGBE_STATUS) & IXGBE_STATUS_GIO)
        sim_fault(p, "CTRL.RST without PCIe master disable (CTRL.GIO_DIS, then STATUS.GIO clear): "
                  "DMA may be in flight (datasheet 5.2.5.3.2, Linux ixgbe_disable_pcie_master)");
}

/* RXEN 0 -> 1. 82599 erratum: enabling the rx unit while frames arrive can hang the rx DMA,
 * unless the rx security block is stopped first (Linux ixgbe_enable_rx_dma_82599: SECRXCTRL.
 * RX_DIS, poll SECRXSTAT.SECRX_RDY, RXEN, clear RX_DIS). The model's hang: the rx engine takes
 * no frame until the next reset, every one counted as missed. */
static void check_rx_enable(struct sim_port *p, uint64_t now)
{
    bool stopped = (sim_reg(p, IXGBE_SECRXCTRL) & IXGBE_SECRXCTRL_RX_DIS) && p->secrx_rdy_at &&
                   now >= p->secrx_rdy_at;
    if (!stopped && sim_under_traffic(p, now)) {
        sim_fault(p, "RXCTRL.RXEN set while frames arrive without stopping the rx security block "
                  "first (SECRXCTRL.RX_DIS, SECRXSTAT.SECRX_RDY): 82599 erratum, the rx DMA hangs");
        p->rx_hung = true;
    }
    uint32_t rdrxctl = sim_reg(p, IXGBE_RDRXCTL);
    uint32_t need = IXGBE_RDRXCTL_RSCACKC | IXGBE_RDRXCTL_FCOE_WRFIX;
    if ((rdrxctl & need) != need || (rdrxctl & IXGBE_RDRXCTL_RSCFRSTSIZE))
        sim_fault(p, "RXCTRL.RXEN with RDRXCTL 0x%08x: the 82599 needs RSCACKC (bit 25) and FCOE_WRFIX "
                  "(bit 26) set and RSCFRSTSIZE (bits 21:17) cleared (Linux ixgbe_setup_rdrxctl: "
                  "\"hardware requires some bits to be set by default\")", rdrxctl);
    uint32_t total = 0;
    for (int i = 0; i < 8; i++)
        total += (sim_reg(p, IXGBE_RXPBSIZE(i)) >> 10) & 0x3ffu;
    if (total > 512 || !((sim_reg(p, IXGBE_RXPBSIZE(0)) >> 10) & 0x3ffu))
        sim_fault(p, "rx packet buffers: %u KB in all (RXPBSIZE), buffer 0 %u KB: the 82599 has 512 "
                  "KB and traffic class 0 needs a buffer", total,
                  (sim_reg(p, IXGBE_RXPBSIZE(0)) >> 10) & 0x3ffu);
}

/* DMATXCTL.TE 0 -> 1: the tx packet buffers must fit the 160 KB, and each threshold leave room
 * for the largest frame (TXPBTHRESH = size in KB - 10, Linux ixgbe_set_rxpba and DPDK), or the
 * tx data DMA stops fetching once the threshold can never be met. */
static void check_tx_buffers(struct sim_port *p)
{
    uint32_t total = 0;
    for (int i = 0; i < 8; i++) {
        uint32_t kb = (sim_reg(p, IXGBE_TXPBSIZE(i)) >> 10) & 0x3ffu;
        uint32_t thresh = sim_reg(p, IXGBE_TXPBTHRESH(i)) & 0x3ffu;
        total += kb;
        if (kb && thresh + IXGBE_TX_MAX_FRAME_KB > kb)
            sim_fault(p, "TXPBTHRESH(%d) = %u KB but TXPBSIZE(%d) is %u KB: the threshold must leave "
                      "room for the largest frame (size - %u KB)", i, thresh, i, kb, IXGBE_TX_MAX_FRAME_KB);
    }
    if (total > 160 || !((sim_reg(p, IXGBE_TXPBSIZE(0)) >> 10) & 0x3ffu))
        sim_fault(p, "tx packet buffers: %u KB in all (TXPBSIZE): the 82599 has 160 KB and buffer 0 "
                  "needs some", total);
}

/* CTRL.GIO_DIS: no new DMA requests. STATUS.GIO clears once none is pending: at once by
 * default (no DMA of the model outlives a register access), later or never with option gio=,
 * as when flow control or a link down keeps requests pending on a card. */
static void master_disable(struct sim_port *p, uint32_t val, uint64_t now)
{
    uint32_t status = sim_reg(p, IXGBE_STATUS);
    if (!(val & IXGBE_CTRL_GIO_DIS)) {
        p->gio_clear_at = 0;
        sim_reg_set(p, IXGBE_STATUS, status | IXGBE_STATUS_GIO);
        return;
    }
    if (p->gio_clear_at || !(status & IXGBE_STATUS_GIO))
        return; /* already on its way */
    uint64_t ns = p->card->gio_ns;
    if (ns == 0)
        sim_reg_set(p, IXGBE_STATUS, status & ~IXGBE_STATUS_GIO);
    else
        p->gio_clear_at = ns == SIM_NEVER ? SIM_NEVER : now + ns;
}

/* CTRL.RST (device reset) or CTRL.LRST (link reset, which resets everything too): registers to
 * their defaults after the stop-sequence checks. RST keeps a link that is up; LRST takes it
 * down, and with the link up it may reset the PHY under manageability, which is why Linux
 * (ixgbe_reset_hw_82599) uses RST when the link is up and LRST only when it is down. */
static void device_reset(struct sim_port *p, uint32_t val, uint64_t now)
{
    uint32_t links = sim_reg(p, IXGBE_LINKS);
    bool up = links & IXGBE_LINKS_UP;
    if ((val & IXGBE_CTRL_LRST) && up)
        sim_fault(p, "CTRL.LNK_RST with the link up: it may reset the PHY while manageability uses "
                  "it; reset with CTRL.RST while the link is up (Linux ixgbe_reset_hw_82599)");
    check_quiesced(p);
    bool due = p->double_reset_due;
    sim_port_defaults(p);
    p->double_reset_due = due;
    if (!(val & IXGBE_CTRL_LRST) && up)
        sim_reg_set(p, IXGBE_LINKS, links);
    p->reset_until = now + SIM_RESET_NS;
    sim_reg_set(p, IXGBE_CTRL, val);
}

bool sim_under_traffic(struct sim_port *p, uint64_t now)
{
    if (!(sim_reg(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return false;
    struct sim_card *c = p->card;
    if (c->wire == WIRE_GEN && (!c->gen_count || p->gen_sent < c->gen_count))
        return true;
    return p->last_arrival && now - p->last_arrival < SIM_ARRIVAL_NS;
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
    reg = canonical_reg(reg);
    if (sim_in_reset(p, now)) {
        sim_fault(p, "register 0x%05x written %.0f us after CTRL.RST; the datasheet asks for at least "
              "1 ms before any access", reg, (double)(now - (p->reset_until - SIM_RESET_NS)) / 1e3);
        goto out;
    }
    sim_advance(p, now);
    if (p->double_reset_due && reg != IXGBE_CTRL) {
        sim_fault(p, "register 0x%05x written after one CTRL.RST while STATUS.GIO had not cleared: "
                  "master disable that does not complete needs two resets in a row (datasheet "
                  "5.2.5.3.2; Linux ixgbe_disable_pcie_master / ixgbe_reset_hw_82599)", reg);
        p->double_reset_due = false;
    }
    int q;
    uint32_t w;
    if (reg == IXGBE_CTRL) {
        master_disable(p, val, now);
        if (val & IXGBE_CTRL_RST_MASK)
            device_reset(p, val, now);
        else
            sim_reg_set(p, IXGBE_CTRL, val);
    } else if (reg == IXGBE_AUTOC) {
        sim_reg_set(p, reg, val & ~IXGBE_AUTOC_AN_RESTART);
        if (val & IXGBE_AUTOC_AN_RESTART) {
            /* link setup restarts (its state machine leaves state 0, ANLP1.AN_STATE); it
             * completes only in a mode the medium supports */
            sim_reg_set(p, IXGBE_ANLP1, 1u << 16);
            sim_reg_set(p, IXGBE_LINKS, 0);
            uint64_t delay = link_delay(p);
            p->link_at = delay ? now + delay : 0;
        }
    } else if (reg == IXGBE_AUTOC2) {
        sim_reg_set(p, reg, val);
        if (val & IXGBE_AUTOC2_LINK_DISABLE_MASK) {
            sim_reg_set(p, IXGBE_LINKS, 0);
            p->link_at = 0;
        }
    } else if (reg == IXGBE_SECRXCTRL) {
        sim_reg_set(p, reg, val);
        if (!(val & IXGBE_SECRXCTRL_RX_DIS))
            p->secrx_rdy_at = 0;
        else if (!p->secrx_rdy_at) /* option secrx=: later, or never */
            p->secrx_rdy_at = p->card->secrx_ns == SIM_NEVER ? SIM_NEVER : now + p->card->secrx_ns;
    } else if (reg == IXGBE_RXCTRL) {
        if ((val & IXGBE_RXCTRL_RXEN) && !(sim_reg(p, reg) & IXGBE_RXCTRL_RXEN))
            check_rx_enable(p, now);
        sim_reg_set(p, reg, val);
    } else if (reg == IXGBE_DMATXCTL) {
        if ((val & IXGBE_DMATXCTL_TE) && !(sim_reg(p, reg) & IXGBE_DMATXCTL_TE))
            check_tx_buffers(p);
        sim_reg_set(p, reg, val);
    } else if (sim_irq_write(p, reg, val, now)) {
        /* interrupt registers: sim_irq.c */
    } else if (is_stat(reg) || reg == IXGBE_LINKS || reg == IXGBE_STATUS || reg == IXGBE_SECRXSTAT) {
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
            /* SWFLSH with the queue off: what it still held is written back */
            if (!(val & en_bit) && (val & IXGBE_RXDCTL_SWFLSH))
                r->flushed = true;
        } else if (w == 0x00 || w == 0x04 || w == 0x08 || w == 0x10 || (rx && w == 0x14)) {
            /* base, length, head, SRRCTL */
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
