/* sim-82599 receive engine: the L2 filter, the queue choice (RSS), descriptor write-back
 * (datasheet 7.1), drops counted as missed when no descriptor is free. */
#include "sim_internal.h"

#include <string.h>

static bool l2_accept(struct sim_port *p, const uint8_t *f)
{
    uint32_t fctrl = sim_reg(p, IXGBE_FCTRL);
    if (fctrl & IXGBE_FCTRL_UPE)
        return true;
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (memcmp(f, bcast, 6) == 0)
        return fctrl & IXGBE_FCTRL_BAM;
    if (f[0] & 1)
        return fctrl & IXGBE_FCTRL_MPE;
    uint32_t ral = sim_reg(p, IXGBE_RAL(0)), rah = sim_reg(p, IXGBE_RAH(0));
    if (!(rah & IXGBE_RAH_AV))
        return false;
    uint8_t mac[6] = {(uint8_t)ral, (uint8_t)(ral >> 8), (uint8_t)(ral >> 16), (uint8_t)(ral >> 24),
                      (uint8_t)rah, (uint8_t)(rah >> 8)};
    return memcmp(f, mac, 6) == 0;
}

uint32_t sim_ring_free(struct sim_port *p, int q)
{
    struct sim_ring *r = &p->rx[q];
    uint32_t tail = sim_reg(p, IXGBE_RDT(q));
    return (tail - r->head) & (r->n - 1);
}

int sim_rx_frame(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall)
{
    if (!p->attached || !(sim_reg(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN) ||
        !(sim_reg(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return RX_DROPPED; /* nobody listening: the frame is lost on the wire, uncounted */
    if (!l2_accept(p, f))
        return RX_DONE;
    uint32_t hash, type;
    int q = sim_rss_queue(p, f, len, &type, &hash);
    struct sim_ring *r = &p->rx[q];
    if (!r->enabled) {
        p->mpc++;
        return RX_DROPPED;
    }
    uint32_t bsize = (sim_reg(p, IXGBE_SRRCTL(q)) & IXGBE_SRRCTL_BSIZEPKT_MASK) * 1024u;
    uint32_t need = (len + bsize - 1) / bsize;
    if (sim_ring_free(p, q) < need) {
        if (may_stall)
            return RX_STALL;
        p->mpc++;
        return RX_DROPPED;
    }
    bool pcsd = sim_reg(p, IXGBE_RXCSUM) & IXGBE_RXCSUM_PCSD;
    uint32_t off = 0;
    for (uint32_t k = 0; k < need; k++) {
        union ixgbe_adv_rx_desc *d = (union ixgbe_adv_rx_desc *)(uintptr_t)(r->base + 16ull * r->head);
        uint64_t addr = __atomic_load_n(&d->read.pkt_addr, __ATOMIC_ACQUIRE);
        uint32_t chunk = len - off < bsize ? len - off : bsize;
        if (!sim_dma_ok(p, addr, chunk)) {
            sim_fault(p, "rx queue %d descriptor %u: buffer address 0x%llx (+%u) is outside DMA memory; "
                  "queue stopped", q, r->head, (unsigned long long)addr, chunk);
            r->enabled = false;
            return RX_DROPPED;
        }
        memcpy((void *)(uintptr_t)addr, f + off, chunk);
        off += chunk;
        d->wb.pkt_info = type;
        d->wb.rss_hash = pcsd ? hash : 0;
        d->wb.length = (uint16_t)chunk;
        d->wb.vlan = 0;
        __atomic_store_n(&d->wb.status_error, IXGBE_RXD_STAT_DD | (off == len ? IXGBE_RXD_STAT_EOP : 0),
                         __ATOMIC_RELEASE);
        r->head = (r->head + 1) & (r->n - 1);
    }
    sim_reg_set(p, IXGBE_RDH(q), r->head);
    p->gprc++;
    p->gorc += len + 4u; /* the CRC was on the wire, stripped or not */
    p->qprc[q]++;
    return RX_DONE;
}

