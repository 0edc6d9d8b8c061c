/* sim-82599 traffic generator: the far end of wire=gen, numbered UDP frames at line rate. */
#include "sim_internal.h"

#include <string.h>

static uint16_t csum16(const uint8_t *b, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(b[i] << 8 | b[i + 1]);
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

/* Frame `seq` of the generator: UDP 10.0.x.y:(1024+flow) -> 10.1.0.1:9, flow = seq % flows,
 * sequence number (big-endian u64) at byte 42 like the null device. */
static uint32_t gen_frame(struct sim_port *p, uint64_t seq, uint8_t *f)
{
    struct sim_card *c = p->card;
    uint32_t len = c->gen_size;
    uint32_t flow = (uint32_t)(seq % c->gen_flows);
    memset(f, 0, len);
    memcpy(f, p->mac, 6);
    const uint8_t src[6] = {0x02, 0x47, 0x45, 0x4e, 0x00, 0x01};
    memcpy(f + 6, src, 6);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45;
    uint16_t tot = (uint16_t)(len - 14);
    ip[2] = (uint8_t)(tot >> 8);
    ip[3] = (uint8_t)tot;
    ip[8] = 64;
    ip[9] = 17;
    ip[12] = 10, ip[13] = 0, ip[14] = (uint8_t)(flow >> 8), ip[15] = (uint8_t)flow;
    ip[16] = 10, ip[17] = 1, ip[18] = 0, ip[19] = 1;
    uint16_t ck = csum16(ip, 20);
    ip[10] = (uint8_t)(ck >> 8);
    ip[11] = (uint8_t)ck;
    uint8_t *udp = ip + 20;
    uint16_t sport = (uint16_t)(1024 + flow), ulen = (uint16_t)(tot - 20);
    udp[0] = (uint8_t)(sport >> 8), udp[1] = (uint8_t)sport;
    udp[3] = 9;
    udp[4] = (uint8_t)(ulen >> 8), udp[5] = (uint8_t)ulen;
    for (int i = 0; i < 8; i++)
        f[42 + i] = (uint8_t)(seq >> (56 - 8 * i));
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
        p->mpc += due;
        p->gen_sent += due;
        p->gen_clock += due * ns_per_frame;
        return 0; /* cheap: let the thread back off */
    }
    uint32_t made = 0;
    while (made < SIM_BUDGET && made < due) {
        uint32_t len = gen_frame(p, p->gen_sent, p->frame);
        if (sim_rx_frame(p, p->frame, len, c->flow_control) == RX_STALL) {
            p->gen_clock = now; /* PAUSE: nothing accrues while the receiver pushes back */
            return made;
        }
        p->gen_sent++;
        made++;
    }
    p->gen_clock += made * ns_per_frame;
    return made;
}

