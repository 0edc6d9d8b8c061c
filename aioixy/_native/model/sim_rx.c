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

static uint32_t sum16(const uint8_t *b, size_t n, uint32_t s)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    if (n & 1)
        s += (uint32_t)b[n - 1] << 8;
    return s;
}

static uint16_t fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)s;
}

/* Receive checksum offload as the 82599 reports it (7.1.6.2 status IPCS/L4CS, errors IPE/L4E,
 * packet type bits): IPv4 header checksum for every IPv4 frame; TCP/UDP checksum over IPv4
 * when the frame is not a fragment. A UDP checksum of 0 means "none" - and by an 82599 erratum
 * the device still flags L4E for it (Linux ixgbe_rx_checksum, __IXGBE_RX_CSUM_UDP_ZERO_ERR).
 * L4 checksums over IPv6 are not modelled (no L4CS). */
static void rx_checksum(const uint8_t *f, uint32_t len, uint32_t *status, uint32_t *ptype)
{
    *status = *ptype = 0;
    if (len < 34 || f[12] != 0x08 || f[13] != 0x00) {
        if (len >= 54 && f[12] == 0x86 && f[13] == 0xdd)
            *ptype = IXGBE_PKTTYPE_IPV6 | (f[20] == 6 ? IXGBE_PKTTYPE_TCP : f[20] == 17 ? IXGBE_PKTTYPE_UDP : 0);
        return;
    }
    const uint8_t *ip = f + 14;
    uint32_t ihl = (ip[0] & 15u) * 4u;
    if ((ip[0] >> 4) != 4 || ihl < 20 || 14 + ihl > len)
        return;
    *ptype = IXGBE_PKTTYPE_IPV4;
    *status |= IXGBE_RXD_STAT_IPCS;
    if (fold(sum16(ip, ihl, 0)) != 0xffff)
        *status |= IXGBE_RXD_ERR_IPE;
    bool frag = ((ip[6] & 0x3f) | ip[7]) != 0;
    uint32_t tot = (uint32_t)ip[2] << 8 | ip[3];
    if (frag || tot < ihl || 14 + tot > len || (ip[9] != 6 && ip[9] != 17))
        return;
    const uint8_t *l4 = ip + ihl;
    uint32_t l4len = tot - ihl;
    bool udp = ip[9] == 17;
    *ptype |= udp ? IXGBE_PKTTYPE_UDP : IXGBE_PKTTYPE_TCP;
    if (l4len < (udp ? 8u : 20u))
        return;
    *status |= IXGBE_RXD_STAT_L4CS;
    if (udp && l4[6] == 0 && l4[7] == 0) {
        *status |= IXGBE_RXD_ERR_L4E; /* the erratum */
        return;
    }
    uint32_t s = sum16(ip + 12, 8, 0) + ip[9] + l4len; /* pseudo header */
    if (fold(sum16(l4, l4len, s)) != 0xffff)
        *status |= IXGBE_RXD_ERR_L4E;
}

void sim_rx_no_descriptor(struct sim_port *p, int q, uint64_t frames)
{
    /* SRRCTL.DROP_EN: the queue drops and counts in QPRDC; otherwise the frame would wait in the
     * packet buffer, which then overflows: MPC */
    if (sim_reg(p, IXGBE_SRRCTL(q)) & IXGBE_SRRCTL_DROP_EN)
        p->qprdc[sim_rx_stat_index(p, q)] += frames;
    else
        p->mpc += frames;
}

int sim_rx_frame(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall)
{
    return sim_rx_frame_crc(p, f, len, may_stall, true);
}

int sim_rx_frame_crc(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall, bool crc_ok)
{
    if (!p->attached || !(sim_reg(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return RX_DROPPED; /* nobody listening: the frame is lost on the wire, uncounted */
    if (!(sim_reg(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN)) {
        p->last_arrival = sim_now_ns(); /* what the RXEN erratum is about */
        return RX_DROPPED;
    }
    if (!l2_accept(p, f))
        return RX_DONE;
    /* the size limit: MAXFRS.MFS with HLREG0.JUMBOEN, else 1518 bytes, CRC included. A longer
     * frame is dropped by the MAC, before any descriptor, and counted in ROC (it passed the
     * address filter and its CRC is good: ours always is) */
    uint32_t max = sim_reg(p, IXGBE_HLREG0) & IXGBE_HLREG0_JUMBOEN
                       ? (sim_reg(p, IXGBE_MAXFRS) & IXGBE_MAXFRS_MFS_MASK) >> IXGBE_MAXFRS_MFS_SHIFT
                       : IXGBE_FRAME_MAX_STD;
    if (len + 4u > max) {
        if (crc_ok)
            p->roc++;
        else
            p->crcerrs++;
        return RX_DROPPED;
    }
    /* a bad CRC: counted, and dropped unless FCTRL.SBP (store bad packets) asks for it to be
     * stored, marked RXE ("any MAC error", extended error bit 29 on the 82599) */
    if (!crc_ok) {
        p->crcerrs++;
        if (!(sim_reg(p, IXGBE_FCTRL) & IXGBE_FCTRL_SBP))
            return RX_DROPPED;
    }
    /* a good frame for us: GPRC/GORC count it even if it is then missed (DPDK: "gprc counts
     * missed packets"; Linux subtracts MPC from it) */
    if (crc_ok) { /* a stored bad frame (SBP) is not a good one */
        p->gprc++;
        p->gorc += len + 4u; /* the CRC was on the wire, stripped or not */
    }
    /* rx DMA hung (erratum), the security block stopped, or PCIe mastering disabled: nothing
     * leaves the packet buffer */
    if (p->rx_hung || (sim_reg(p, IXGBE_SECRXCTRL) & IXGBE_SECRXCTRL_RX_DIS) ||
        (sim_reg(p, IXGBE_CTRL) & IXGBE_CTRL_GIO_DIS)) {
        p->mpc++; /* nothing leaves the packet buffer: it overflows */
        return RX_DROPPED;
    }
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
        if (may_stall) {
            if (crc_ok) { /* PAUSE: the frame stays with the sender, it has not been received */
                p->gprc--;
                p->gorc -= len + 4u;
            } else {
                p->crcerrs--;
            }
            return RX_STALL;
        }
        sim_rx_no_descriptor(p, q, 1);
        return RX_DROPPED;
    }
    bool pcsd = sim_reg(p, IXGBE_RXCSUM) & IXGBE_RXCSUM_PCSD;
    uint32_t csum, ptype;
    rx_checksum(f, len, &csum, &ptype);
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
        d->wb.pkt_info = type | ptype;
        d->wb.rss_hash = pcsd ? hash : 0;
        d->wb.length = (uint16_t)chunk;
        d->wb.vlan = 0;
        /* a frame larger than one buffer: a chain of descriptors, EOP (and the status of the
         * whole frame) only on the last (7.1.6) */
        uint32_t st = IXGBE_RXD_STAT_DD |
                      (off == len ? IXGBE_RXD_STAT_EOP | csum | (crc_ok ? 0 : IXGBE_RXD_ERR_RXE) : 0);
        __atomic_store_n(&d->wb.status_error, st, __ATOMIC_RELEASE);
        r->head = (r->head + 1) & (r->n - 1);
    }
    sim_reg_set(p, IXGBE_RDH(q), r->head);
    sim_irq_queue_cause(p, q, true, sim_now_ns());
    int si = sim_rx_stat_index(p, q);
    p->qprc[si]++;
    /* QBRC: the bytes put in host memory, so the CRC only when it is not stripped */
    p->qbrc[si] += len + (sim_reg(p, IXGBE_HLREG0) & IXGBE_HLREG0_RXCRCSTRP ? 0u : 4u);
    return RX_DONE;
}
