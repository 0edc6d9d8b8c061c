/* sim-82599 transmit engine (datasheet 7.2) and the wire behind it: the other port, the same
 * port (loop), or a software peer device. */
#include "sim_internal.h"

#include <string.h>

static struct sim_port *peer_of(struct sim_port *p)
{
    struct sim_card *c = p->card;
    switch (c->wire) {
    case WIRE_CABLE: return c->peer ? NULL : &c->port[p->index ^ 1];
    case WIRE_LOOP: return p;
    default: return NULL; /* the generator swallows what it is sent */
    }
}

/* A frame from port 0 onto the cable to the peer device: into one of its buffers, then its tx. */
static int to_peer_dev(struct sim_card *c, const uint8_t *f, uint32_t len)
{
    struct aioixy_dev *d = c->peer;
    struct aioixy_pkt_buf *b = aioixy_mempool_alloc(d->pools[0]);
    if (!b)
        return c->flow_control ? RX_STALL : RX_DROPPED;
    if (len > aioixy_mempool_data_room(d->pools[0])) {
        aioixy_mempool_free(b);
        return RX_DROPPED; /* bigger than the far side's buffers: lost, like an MTU mismatch */
    }
    memcpy(b->data, f, len);
    b->len = len;
    if (d->ops->tx_batch(d, 0, &b, 1) == 1)
        return RX_DONE;
    aioixy_mempool_free(b);
    return c->flow_control ? RX_STALL : RX_DROPPED;
}

/* Frames from the peer device into port 0's receive engine. */
uint32_t sim_from_peer_dev(struct sim_card *c)
{
    struct sim_port *p = &c->port[0];
    if (!p->attached || !(sim_reg(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN) ||
        !(sim_reg(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return 0; /* nobody listening yet: leave the frames with the peer */
    if (c->pend_i == c->pend_n) {
        c->pend_i = 0;
        c->pend_n = c->peer->ops->rx_batch(c->peer, 0, c->pend, SIM_BUDGET);
    }
    uint32_t done = 0;
    while (c->pend_i < c->pend_n) {
        struct aioixy_pkt_buf *b = c->pend[c->pend_i];
        if (b->len >= 14 && sim_rx_frame(p, b->data, b->len, c->flow_control) == RX_STALL)
            break; /* PAUSE: keep it for the next round */
        aioixy_mempool_free(b);
        c->pend_i++;
        done++;
    }
    /* the peer's own tx completions (and, for the pair, its wire) need servicing too */
    c->peer->ops->tx_batch(c->peer, 0, NULL, 0);
    return done;
}

uint32_t sim_tx_queue(struct sim_port *p, int q)
{
    struct sim_ring *r = &p->tx[q];
    uint32_t tail = sim_reg(p, IXGBE_TDT(q));
    uint32_t hlreg0 = sim_reg(p, IXGBE_HLREG0);
    uint32_t frames = 0;
    while (r->head != tail && frames < SIM_BUDGET && r->enabled) {
        uint32_t start = r->head, h = r->head, len = 0;
        bool eop = false, bad = false;
        while (!eop) {
            if (h == tail)
                return frames; /* the rest of the frame is not there yet */
            union ixgbe_adv_tx_desc *d = (union ixgbe_adv_tx_desc *)(uintptr_t)(r->base + 16ull * h);
            uint64_t addr = d->read.buffer_addr;
            uint32_t cmd = d->read.cmd_type_len;
            uint32_t dlen = cmd & IXGBE_TXD_LEN_MASK;
            if (!(cmd & IXGBE_TXD_CMD_DEXT) || (cmd & IXGBE_TXD_DTYP_MASK) != IXGBE_TXD_DTYP_DATA) {
                sim_fault(p, "tx queue %d descriptor %u: not an advanced data descriptor (cmd_type_len "
                      "0x%08x); queue stopped", q, h, cmd);
                bad = true;
            } else if (dlen == 0 || len + dlen > SIM_FRAME_MAX) {
                sim_fault(p, "tx queue %d descriptor %u: length %u (frame so far %u); queue stopped",
                      q, h, dlen, len);
                bad = true;
            } else if (!sim_dma_ok(p, addr, dlen)) {
                sim_fault(p, "tx queue %d descriptor %u: buffer address 0x%llx (+%u) is outside DMA "
                      "memory; queue stopped", q, h, (unsigned long long)addr, dlen);
                bad = true;
            }
            if (bad) {
                r->enabled = false;
                return frames;
            }
            memcpy(p->frame + len, (const void *)(uintptr_t)addr, dlen);
            len += dlen;
            eop = cmd & IXGBE_TXD_CMD_EOP;
            h = (h + 1) & (r->n - 1);
        }
        if (len < IXGBE_TX_MIN_LEN) {
            /* Linux pads every frame to 17 bytes first (ixgbe_xmit_frame_ring: the minimum the
             * PAYLEN field supports); shorter ones are not defined, the model stops the queue */
            sim_fault(p, "tx queue %d descriptor %u: a %u-byte frame; the 82599 needs at least %u "
                      "bytes; queue stopped", q, start, len, IXGBE_TX_MIN_LEN);
            r->enabled = false;
            return frames;
        }
        if (len < 60 && (hlreg0 & IXGBE_HLREG0_TXPADEN)) {
            memset(p->frame + len, 0, 60 - len);
            len = 60;
        }
        struct sim_port *peer = peer_of(p);
        if (peer && len >= 14 &&
            sim_rx_frame(peer, p->frame, len, p->card->flow_control) == RX_STALL)
            return frames; /* PAUSE: try again next round, descriptors untouched */
        if (p->card->peer && p->index == 0 && to_peer_dev(p->card, p->frame, len) == RX_STALL)
            return frames;
        /* done: report status where asked */
        for (uint32_t k = start; k != h; k = (k + 1) & (r->n - 1)) {
            union ixgbe_adv_tx_desc *d = (union ixgbe_adv_tx_desc *)(uintptr_t)(r->base + 16ull * k);
            if (d->read.cmd_type_len & IXGBE_TXD_CMD_RS)
                __atomic_store_n(&d->wb.status, IXGBE_TXD_STAT_DD, __ATOMIC_RELEASE);
        }
        r->head = h;
        sim_reg_set(p, IXGBE_TDH(q), h);
        sim_irq_queue_cause(p, q, false, sim_now_ns());
        p->gptc++;
        p->gotc += len + 4u;
        p->qptc[q]++;
        frames++;
    }
    return frames;
}

