/* sim-82599 traffic generator: the far end of wire=gen, numbered UDP frames at line rate. */
#include "frames.h"
#include "sim_internal.h"

#include <string.h>

/* Frame `seq` of the generator, in the numbered test frame format (frames.h): UDP
 * 10.0.x.y:(1024+flow) -> 10.1.0.1:9, flow = seq % flows, zero filler after the number. */
static uint32_t gen_frame(struct sim_port *p, uint64_t seq, uint8_t *f)
{
    struct sim_card *c = p->card;
    uint32_t len = c->gen_size;
    uint32_t flow = (uint32_t)(seq % c->gen_flows);
    struct aioixy_frame_addrs a = {
        .src_mac = {0x02, 0x47, 0x45, 0x4e, 0x00, 0x01},
        .src_ip = {10, 0, (uint8_t)(flow >> 8), (uint8_t)flow},
        .dst_ip = {10, 1, 0, 1},
        .src_port = (uint16_t)(1024 + flow),
        .dst_port = 9,
    };
    memcpy(a.dst_mac, p->mac, 6);
    aioixy_frame_headers(f, len, &a);
    aioixy_frame_set_seq(f, seq);
    memset(f + AIOIXY_FRAME_SEQ_OFFSET + AIOIXY_FRAME_SEQ_LEN, 0,
           len - AIOIXY_FRAME_SEQ_OFFSET - AIOIXY_FRAME_SEQ_LEN);
    return len;
}

bool sim_rx_rings_full(struct sim_port *p)
{
    bool any = false;
    for (int q = 0; q < SIM_QUEUES; q++) {
        if (!p->rx[q].enabled)
            continue;
        any = true;
        if (sim_ring_free(p, q))
            return false;
    }
    return any;
}

/* The generator sends at 10 Gb/s line rate: (size + 4 CRC + 8 preamble + 12 gap) byte times of
 * 0.8 ns each. While every rx ring is full (and nothing pushes back) the frames due are lost on
 * the wire in one go, counted as missed, without building them: that is what would happen on a
 * real link, and it keeps the model thread from burning a core on frames nobody can take. */
uint32_t sim_generate(struct sim_port *p, uint64_t now)
{
    struct sim_card *c = p->card;
    uint64_t ns_per_frame = ((uint64_t)c->gen_size + 24u) * 8u / 10u;
    if (!p->gen_clock || now - p->gen_clock > 10000000ull)
        p->gen_clock = now; /* first round, or after a long pause: no burst of backlog */
    uint64_t due = (now - p->gen_clock) / ns_per_frame;
    if (c->gen_count && due > c->gen_count - p->gen_sent)
        due = c->gen_count - p->gen_sent;
    if (!due)
        return 0;
    if (!(sim_reg(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN)) {
        p->gen_clock = now; /* the receiver is not running yet: wait for it */
        return 0;
    }
    if (!c->flow_control && sim_rx_rings_full(p)) {
        /* as if each had gone through the receive engine: good frames, no descriptor; the bad
         * ones (crcerr=N: sequence numbers N-1, 2N-1, ...) counted as CRC errors */
        uint64_t bad = c->gen_crcerr ? (p->gen_sent + due) / c->gen_crcerr - p->gen_sent / c->gen_crcerr : 0;
        p->crcerrs += bad;
        p->gprc += due - bad;
        p->gorc += (due - bad) * (c->gen_size + 4u);
        sim_rx_no_descriptor(p, 0, due - bad);
        p->gen_sent += due;
        p->gen_clock += due * ns_per_frame;
        return 0; /* cheap: let the thread back off */
    }
    uint32_t made = 0;
    while (made < SIM_BUDGET && made < due) {
        uint32_t len = gen_frame(p, p->gen_sent, p->frame);
        bool crc_ok = !c->gen_crcerr || p->gen_sent % c->gen_crcerr != c->gen_crcerr - 1;
        if (sim_rx_frame_crc(p, p->frame, len, c->flow_control, crc_ok) == RX_STALL) {
            p->gen_clock = now; /* PAUSE: nothing accrues while the receiver pushes back */
            return made;
        }
        p->gen_sent++;
        made++;
    }
    p->gen_clock += made * ns_per_frame;
    return made;
}

