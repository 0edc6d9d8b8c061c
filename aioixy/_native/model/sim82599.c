/* sim-82599: a behavioural model of the Intel 82599, so the unchanged ixgbe driver runs (and is
 * tested) without the card.
 *
 * What is modelled, each from the datasheet's description of the register or engine:
 *  - the register file of each port (a 128 KiB BAR0 in a shared memfd mapping), reached through
 *    read/write transactions (see ixgbe.h for why);
 *  - CTRL.RST: registers back to their defaults, the bit self-clears after 1 ms; any access in
 *    that millisecond is a fault (4.6.3.2); EEC.ARD and RDRXCTL.DMAIDONE come up afterwards;
 *  - AUTOC.AN_RESTART (self-clearing) brings the link up a few ms later: LINKS.UP, 10 Gb/s;
 *  - RXDCTL/TXDCTL.ENABLE latch 100 us after the write, and only if the ring registers make
 *    sense at that moment; RDH/TDH move as descriptors are processed;
 *  - transmit: advanced data descriptors from TDH to TDT, gathered until EOP, padded to 60
 *    bytes (HLREG0.TXPADEN), DD written back when RS is set;
 *  - receive: L2 filter (RAL/RAH(0), FCTRL.BAM/UPE/MPE), RSS (Toeplitz hash over the fields
 *    MRQC enables, 128-entry RETA), advanced one-buffer descriptors written back with DD, EOP,
 *    length, RSS type and hash (RXCSUM.PCSD), frames larger than a buffer split over several;
 *  - statistics: GPRC, GPTC, GORC, GOTC (octets include the 4-byte CRC), MPC, QPRC, QPTC, all
 *    clear on read, the high octet halves latched by reading the low halves;
 *  - the wire: the two ports of a card cabled together (wire=cable, the default), a port cabled
 *    to itself (wire=loop), or a port facing a traffic generator (wire=gen: numbered UDP frames
 *    over `flows` flows, `count` of them or forever, at line rate). With flow_control the
 *    receiving side pushes back (802.3x PAUSE) instead of dropping when its ring is full.
 * What is caught (a fault is recorded, the offending action is refused, tests fail):
 *    descriptor or ring addresses outside DMA memory, a tail beyond the ring, a queue enabled
 *    before its ring registers (or tx queues before DMATXCTL.TE), ring registers changed while
 *    the queue runs, register access during reset, unknown descriptor types, bad lengths.
 * DMA: IOVA = virtual address; an address is valid only inside a live DMA_ANON region.
 * One model thread per card does the engines' work; it holds the card lock per round.
 */
#include "sim82599.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SIM_PORTS 2
#define SIM_QUEUES 16
#define RESET_NS 1000000ull     /* 1 ms */
#define AUTOREAD_NS 2000000ull  /* EEPROM auto-read + DMA init after reset */
#define LATCH_NS 100000ull      /* queue enable */
#define LINK_NS 5000000ull      /* auto-negotiation */
#define MAX_FAULTS 32
#define FRAME_MAX 16384u
#define BUDGET 64u

enum wire { WIRE_CABLE, WIRE_LOOP, WIRE_GEN };

struct sim_ring {
    bool enabled;
    uint64_t latch_at; /* enable pending until then (0 = none) */
    uint64_t base;
    uint32_t n;
    uint32_t head;
};

struct sim_port {
    struct sim_card *card;
    int index;
    uint32_t *regs; /* this port's BAR0 inside the card's memfd mapping */
    bool attached;
    uint64_t reset_until, autoread_at, link_at;
    struct sim_ring rx[SIM_QUEUES], tx[SIM_QUEUES];
    /* clear-on-read counters (written by the model thread under the card lock) */
    uint64_t gprc, gptc, gorc, gotc, mpc, qprc[SIM_QUEUES], qptc[SIM_QUEUES];
    uint32_t gorch_latch, gotch_latch;
    struct aioixy_dma_window win;
    uint8_t mac[6];
    uint64_t gen_sent;
    uint64_t gen_clock; /* line-rate pacing of the generator: time up to which frames were due */
    uint8_t frame[FRAME_MAX]; /* tx gather buffer */
};

struct sim_card {
    char name[64];
    int refs;
    pthread_mutex_t lock;
    pthread_t thread;
    _Atomic bool stop;
    void *regmap;
    size_t regmap_len;
    int memfd;
    enum wire wire;
    bool flow_control;
    uint32_t gen_flows, gen_size;
    uint64_t gen_count; /* 0 = forever */
    char options[128];
    /* peer=DEVICE: port 0's cable goes to a software device the model drives through the
     * device interface (only the model thread calls its rx/tx, as the contract requires) */
    struct aioixy_dev *peer;
    struct aioixy_pkt_buf *pend[BUDGET]; /* received from the peer, not yet taken by port 0 */
    uint32_t pend_n, pend_i;
    struct sim_port port[SIM_PORTS];
    uint32_t nfaults;
    char faults[MAX_FAULTS][240];
    struct sim_card *next;
};

static pthread_mutex_t cards_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_card *cards;
static _Atomic uint64_t total_faults;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t reg_get(struct sim_port *p, uint32_t reg)
{
    return __atomic_load_n(&p->regs[reg / 4], __ATOMIC_ACQUIRE);
}

static inline void reg_set(struct sim_port *p, uint32_t reg, uint32_t v)
{
    __atomic_store_n(&p->regs[reg / 4], v, __ATOMIC_RELEASE);
}

__attribute__((format(printf, 2, 3))) static void fault(struct sim_port *p, const char *fmt, ...)
{
    struct sim_card *c = p->card;
    atomic_fetch_add_explicit(&total_faults, 1, memory_order_relaxed);
    if (c->nfaults >= MAX_FAULTS) {
        c->nfaults++;
        return;
    }
    char *dst = c->faults[c->nfaults++];
    char prefix[96];
    snprintf(prefix, sizeof(prefix), "sim-82599:%s:%d: ", c->name, p->index);
    int k = snprintf(dst, sizeof(c->faults[0]), "%s", prefix);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst + k, sizeof(c->faults[0]) - (size_t)k, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ reset and timers */

static void port_defaults(struct sim_port *p)
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
    reg_set(p, IXGBE_RAL(0), (uint32_t)p->mac[0] | (uint32_t)p->mac[1] << 8 |
                                 (uint32_t)p->mac[2] << 16 | (uint32_t)p->mac[3] << 24);
    reg_set(p, IXGBE_RAH(0), (uint32_t)p->mac[4] | (uint32_t)p->mac[5] << 8 | IXGBE_RAH_AV);
    /* datasheet reset values the driver relies on reading back */
    reg_set(p, IXGBE_AUTOC, IXGBE_AUTOC_LMS_10G_SERIAL | (1u << 7));
    reg_set(p, IXGBE_SRRCTL(0), 2u); /* BSIZEPKT 2 KiB, legacy descriptors */
    for (uint32_t q = 1; q < SIM_QUEUES; q++)
        reg_set(p, IXGBE_SRRCTL(q), 2u);
    reg_set(p, IXGBE_RTTDCS, IXGBE_RTTDCS_ARBDIS);
}

static void advance(struct sim_port *p, uint64_t now)
{
    if (p->reset_until && now >= p->reset_until) {
        p->reset_until = 0;
        reg_set(p, IXGBE_CTRL, reg_get(p, IXGBE_CTRL) & ~IXGBE_CTRL_RST_MASK);
        p->autoread_at = now + AUTOREAD_NS;
    }
    if (p->autoread_at && now >= p->autoread_at) {
        p->autoread_at = 0;
        reg_set(p, IXGBE_EEC, reg_get(p, IXGBE_EEC) | IXGBE_EEC_ARD);
        reg_set(p, IXGBE_RDRXCTL, reg_get(p, IXGBE_RDRXCTL) | IXGBE_RDRXCTL_DMAIDONE);
    }
    if (p->link_at && now >= p->link_at) {
        p->link_at = 0;
        reg_set(p, IXGBE_LINKS, IXGBE_LINKS_UP | IXGBE_LINKS_SPEED_10G);
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

static bool in_reset(struct sim_port *p, uint64_t now)
{
    return p->reset_until && now < p->reset_until;
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
    uint64_t now = now_ns();
    uint32_t v = 0;
    if (reg >= IXGBE_BAR0_SIZE || (reg & 3)) {
        fault(p, "read of register 0x%05x: outside BAR0 or not 4-byte aligned", reg);
        goto out;
    }
    if (in_reset(p, now)) {
        fault(p, "register 0x%05x read %.0f us after CTRL.RST; the datasheet asks for at least "
              "1 ms before any access", reg, (double)(now - (p->reset_until - RESET_NS)) / 1e3);
        v = reg_get(p, reg);
        goto out;
    }
    advance(p, now);
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
    v = reg_get(p, reg);
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

static bool dma_ok(struct sim_port *p, uint64_t addr, uint64_t len)
{
    return addr && aioixy_dma_anon_lookup(addr, len ? len : 1, &p->win);
}

/* The checks a queue enable must pass (4.6.7 / 4.6.8: ring registers first, then ENABLE). */
static bool ring_valid(struct sim_port *p, bool rx, int q, struct sim_ring *r)
{
    uint32_t b = rx ? 0x01000u : 0x06000u;
    const char *dir = rx ? "rx" : "tx";
    uint64_t base = (uint64_t)reg_get(p, b + 0x40u * q + 4) << 32 | reg_get(p, b + 0x40u * q);
    uint32_t len = reg_get(p, b + 0x40u * q + 8);
    if (!base || !len) {
        fault(p, "%s queue %d enabled before its ring registers were set (base 0x%llx, length %u)",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if ((base & 127) || (len & 127) || len > 65536u * 16u) {
        fault(p, "%s queue %d: ring base 0x%llx / length %u must be 128-byte multiples",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if (!dma_ok(p, base, len)) {
        fault(p, "%s queue %d: descriptor ring at 0x%llx (+%u bytes) is outside DMA memory",
              dir, q, (unsigned long long)base, len);
        return false;
    }
    if (rx) {
        uint32_t srrctl = reg_get(p, IXGBE_SRRCTL(q));
        if ((srrctl & IXGBE_SRRCTL_DESCTYPE_MASK) != IXGBE_SRRCTL_DESCTYPE_ADV_ONEBUF) {
            fault(p, "rx queue %d: SRRCTL.DESCTYPE %u; the model implements advanced one-buffer "
                  "descriptors only", q, (srrctl >> 25) & 7);
            return false;
        }
        if (!(srrctl & IXGBE_SRRCTL_BSIZEPKT_MASK)) {
            fault(p, "rx queue %d: SRRCTL.BSIZEPKT is 0", q);
            return false;
        }
    } else if (!(reg_get(p, IXGBE_DMATXCTL) & IXGBE_DMATXCTL_TE)) {
        fault(p, "tx queue %d enabled while DMATXCTL.TE is 0 (transmit DMA must be enabled first)", q);
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
    uint32_t n = r->n ? r->n : reg_get(p, reg - 0x18 + 0x08) / 16u;
    if (n == 0 || val >= n) {
        fault(p, "%s queue %d: tail %u written beyond the ring (%u descriptors)", rx ? "rx" : "tx",
              q, val, n);
        return;
    }
    reg_set(p, reg, val);
}

void aioixy_sim_mmio_write(struct sim_port *p, uint32_t reg, uint32_t val)
{
    struct sim_card *c = p->card;
    pthread_mutex_lock(&c->lock);
    uint64_t now = now_ns();
    if (reg >= IXGBE_BAR0_SIZE || (reg & 3)) {
        fault(p, "write of register 0x%05x: outside BAR0 or not 4-byte aligned", reg);
        goto out;
    }
    if (in_reset(p, now)) {
        fault(p, "register 0x%05x written %.0f us after CTRL.RST; the datasheet asks for at least "
              "1 ms before any access", reg, (double)(now - (p->reset_until - RESET_NS)) / 1e3);
        goto out;
    }
    advance(p, now);
    int q;
    uint32_t w;
    if (reg == IXGBE_CTRL) {
        if (val & IXGBE_CTRL_RST) {
            port_defaults(p);
            p->reset_until = now + RESET_NS;
            reg_set(p, IXGBE_CTRL, val);
        } else {
            if (val & IXGBE_CTRL_LRST) {
                reg_set(p, IXGBE_LINKS, 0);
                p->link_at = 0;
            }
            reg_set(p, IXGBE_CTRL, val & ~IXGBE_CTRL_LRST);
        }
    } else if (reg == IXGBE_AUTOC) {
        reg_set(p, reg, val & ~IXGBE_AUTOC_AN_RESTART);
        if (val & IXGBE_AUTOC_AN_RESTART) {
            reg_set(p, IXGBE_LINKS, 0);
            p->link_at = now + LINK_NS;
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
            reg_set(p, reg, val);
            if ((val & en_bit) && !live) {
                if (ring_valid(p, rx, q, r))
                    r->latch_at = now + LATCH_NS;
            } else if (!(val & en_bit) && live) {
                r->enabled = false;
                r->latch_at = 0;
            }
        } else if (w <= 0x10 || (rx && w == 0x14)) { /* base, length, head, SRRCTL */
            if (live)
                fault(p, "%s queue %d: ring register 0x%05x changed while the queue is enabled",
                      rx ? "rx" : "tx", q, reg);
            else if (w == 0x10)
                r->head = val;
            else
                reg_set(p, reg, val);
        } else {
            reg_set(p, reg, val);
        }
    } else {
        reg_set(p, reg, val);
    }
out:
    pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------------ RSS */

/* Toeplitz hash (datasheet 7.1.2.8.1): for every set bit of the input, XOR in the 32 key bits
 * starting at that bit position. */
uint32_t aioixy_toeplitz(const uint8_t key[40], const uint8_t *in, size_t len)
{
    uint32_t h = 0;
    uint32_t window = (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 | (uint32_t)key[2] << 8 | key[3];
    for (size_t i = 0; i < len; i++) {
        uint8_t next = i + 4 < 40 ? key[i + 4] : 0;
        for (int b = 7; b >= 0; b--) {
            if (in[i] & (1u << b))
                h ^= window;
            window = (window << 1) | ((next >> b) & 1u);
        }
    }
    return h;
}

/* Which fields MRQC asks for in this frame; returns the RSS type (0 = none). */
static uint32_t rss_input(struct sim_port *p, const uint8_t *f, uint32_t len, uint8_t *in, size_t *n)
{
    uint32_t mrqc = reg_get(p, IXGBE_MRQC);
    if (len < 14)
        return 0;
    uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
    if (et == 0x0800 && len >= 34 && (f[14] >> 4) == 4) {
        uint32_t ihl = (f[14] & 15u) * 4u;
        bool frag = ((f[20] & 0x3f) | f[21]) != 0;
        uint8_t proto = f[23];
        memcpy(in, f + 26, 8);
        if (!frag && 14 + ihl + 4 <= len) {
            if (proto == 6 && (mrqc & IXGBE_MRQC_TCPIPV4)) {
                memcpy(in + 8, f + 14 + ihl, 4);
                *n = 12;
                return IXGBE_RSSTYPE_TCPV4;
            }
            if (proto == 17 && (mrqc & IXGBE_MRQC_UDPIPV4)) {
                memcpy(in + 8, f + 14 + ihl, 4);
                *n = 12;
                return IXGBE_RSSTYPE_UDPV4;
            }
        }
        if (mrqc & IXGBE_MRQC_IPV4) {
            *n = 8;
            return IXGBE_RSSTYPE_IPV4;
        }
    } else if (et == 0x86dd && len >= 54) {
        uint8_t nh = f[20];
        memcpy(in, f + 22, 32);
        if (len >= 58) {
            if (nh == 6 && (mrqc & IXGBE_MRQC_TCPIPV6)) {
                memcpy(in + 32, f + 54, 4);
                *n = 36;
                return IXGBE_RSSTYPE_TCPV6;
            }
            if (nh == 17 && (mrqc & IXGBE_MRQC_UDPIPV6)) {
                memcpy(in + 32, f + 54, 4);
                *n = 36;
                return IXGBE_RSSTYPE_UDPV6;
            }
        }
        if (mrqc & IXGBE_MRQC_IPV6) {
            *n = 32;
            return IXGBE_RSSTYPE_IPV6;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ receive engine */

enum { RX_DONE, RX_DROPPED, RX_STALL };

static bool l2_accept(struct sim_port *p, const uint8_t *f)
{
    uint32_t fctrl = reg_get(p, IXGBE_FCTRL);
    if (fctrl & IXGBE_FCTRL_UPE)
        return true;
    static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    if (memcmp(f, bcast, 6) == 0)
        return fctrl & IXGBE_FCTRL_BAM;
    if (f[0] & 1)
        return fctrl & IXGBE_FCTRL_MPE;
    uint32_t ral = reg_get(p, IXGBE_RAL(0)), rah = reg_get(p, IXGBE_RAH(0));
    if (!(rah & IXGBE_RAH_AV))
        return false;
    uint8_t mac[6] = {(uint8_t)ral, (uint8_t)(ral >> 8), (uint8_t)(ral >> 16), (uint8_t)(ral >> 24),
                      (uint8_t)rah, (uint8_t)(rah >> 8)};
    return memcmp(f, mac, 6) == 0;
}

static uint32_t ring_free(struct sim_port *p, int q)
{
    struct sim_ring *r = &p->rx[q];
    uint32_t tail = reg_get(p, IXGBE_RDT(q));
    return (tail - r->head) & (r->n - 1);
}

static int rx_frame(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall)
{
    if (!p->attached || !(reg_get(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN) ||
        !(reg_get(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return RX_DROPPED; /* nobody listening: the frame is lost on the wire, uncounted */
    if (!l2_accept(p, f))
        return RX_DONE;
    uint8_t in[36];
    size_t n = 0;
    uint32_t hash = 0, type = 0;
    int q = 0;
    if ((reg_get(p, IXGBE_MRQC) & IXGBE_MRQC_MRQE_MASK) == IXGBE_MRQC_RSSEN) {
        type = rss_input(p, f, len, in, &n);
        if (type) {
            uint8_t key[40];
            for (int i = 0; i < 10; i++) {
                uint32_t k = reg_get(p, IXGBE_RSSRK(i));
                key[4 * i] = (uint8_t)k;
                key[4 * i + 1] = (uint8_t)(k >> 8);
                key[4 * i + 2] = (uint8_t)(k >> 16);
                key[4 * i + 3] = (uint8_t)(k >> 24);
            }
            hash = aioixy_toeplitz(key, in, n);
            uint32_t idx = hash & 127u;
            q = (int)((reg_get(p, IXGBE_RETA(idx / 4)) >> (8 * (idx % 4))) & 0xfu);
        }
    }
    struct sim_ring *r = &p->rx[q];
    if (!r->enabled) {
        p->mpc++;
        return RX_DROPPED;
    }
    uint32_t bsize = (reg_get(p, IXGBE_SRRCTL(q)) & IXGBE_SRRCTL_BSIZEPKT_MASK) * 1024u;
    uint32_t need = (len + bsize - 1) / bsize;
    if (ring_free(p, q) < need) {
        if (may_stall)
            return RX_STALL;
        p->mpc++;
        return RX_DROPPED;
    }
    bool pcsd = reg_get(p, IXGBE_RXCSUM) & IXGBE_RXCSUM_PCSD;
    uint32_t off = 0;
    for (uint32_t k = 0; k < need; k++) {
        union ixgbe_adv_rx_desc *d = (union ixgbe_adv_rx_desc *)(uintptr_t)(r->base + 16ull * r->head);
        uint64_t addr = __atomic_load_n(&d->read.pkt_addr, __ATOMIC_ACQUIRE);
        uint32_t chunk = len - off < bsize ? len - off : bsize;
        if (!dma_ok(p, addr, chunk)) {
            fault(p, "rx queue %d descriptor %u: buffer address 0x%llx (+%u) is outside DMA memory; "
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
    reg_set(p, IXGBE_RDH(q), r->head);
    p->gprc++;
    p->gorc += len + 4u; /* the CRC was on the wire, stripped or not */
    p->qprc[q]++;
    return RX_DONE;
}

/* ------------------------------------------------------------------ transmit engine */

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
static uint32_t from_peer_dev(struct sim_card *c)
{
    struct sim_port *p = &c->port[0];
    if (!p->attached || !(reg_get(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN) ||
        !(reg_get(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
        return 0; /* nobody listening yet: leave the frames with the peer */
    if (c->pend_i == c->pend_n) {
        c->pend_i = 0;
        c->pend_n = c->peer->ops->rx_batch(c->peer, 0, c->pend, BUDGET);
    }
    uint32_t done = 0;
    while (c->pend_i < c->pend_n) {
        struct aioixy_pkt_buf *b = c->pend[c->pend_i];
        if (b->len >= 14 && rx_frame(p, b->data, b->len, c->flow_control) == RX_STALL)
            break; /* PAUSE: keep it for the next round */
        aioixy_mempool_free(b);
        c->pend_i++;
        done++;
    }
    /* the peer's own tx completions (and, for the pair, its wire) need servicing too */
    c->peer->ops->tx_batch(c->peer, 0, NULL, 0);
    return done;
}

static uint32_t tx_queue(struct sim_port *p, int q)
{
    struct sim_ring *r = &p->tx[q];
    uint32_t tail = reg_get(p, IXGBE_TDT(q));
    uint32_t hlreg0 = reg_get(p, IXGBE_HLREG0);
    uint32_t frames = 0;
    while (r->head != tail && frames < BUDGET && r->enabled) {
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
                fault(p, "tx queue %d descriptor %u: not an advanced data descriptor (cmd_type_len "
                      "0x%08x); queue stopped", q, h, cmd);
                bad = true;
            } else if (dlen == 0 || len + dlen > FRAME_MAX) {
                fault(p, "tx queue %d descriptor %u: length %u (frame so far %u); queue stopped",
                      q, h, dlen, len);
                bad = true;
            } else if (!dma_ok(p, addr, dlen)) {
                fault(p, "tx queue %d descriptor %u: buffer address 0x%llx (+%u) is outside DMA "
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
        if (len < 60 && (hlreg0 & IXGBE_HLREG0_TXPADEN)) {
            memset(p->frame + len, 0, 60 - len);
            len = 60;
        }
        struct sim_port *peer = peer_of(p);
        if (peer && len >= 14 &&
            rx_frame(peer, p->frame, len, p->card->flow_control) == RX_STALL)
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
        reg_set(p, IXGBE_TDH(q), h);
        p->gptc++;
        p->gotc += len + 4u;
        p->qptc[q]++;
        frames++;
    }
    return frames;
}

/* ------------------------------------------------------------------ traffic generator */

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

static bool rx_rings_full(struct sim_port *p)
{
    bool any = false;
    for (int q = 0; q < SIM_QUEUES; q++) {
        if (!p->rx[q].enabled)
            continue;
        any = true;
        if (ring_free(p, q))
            return false;
    }
    return any;
}

/* The generator sends at 10 Gb/s line rate: (size + 4 CRC + 8 preamble + 12 gap) byte times of
 * 0.8 ns each. While every rx ring is full (and nothing pushes back) the frames due are lost on
 * the wire in one go, counted as missed, without building them: that is what would happen on a
 * real link, and it keeps the model thread from burning a core on frames nobody can take. */
static uint32_t generate(struct sim_port *p, uint64_t now)
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
    if (!(reg_get(p, IXGBE_RXCTRL) & IXGBE_RXCTRL_RXEN)) {
        p->gen_clock = now; /* the receiver is not running yet: wait for it */
        return 0;
    }
    if (!c->flow_control && rx_rings_full(p)) {
        p->mpc += due;
        p->gen_sent += due;
        p->gen_clock += due * ns_per_frame;
        return 0; /* cheap: let the thread back off */
    }
    uint32_t made = 0;
    while (made < BUDGET && made < due) {
        uint32_t len = gen_frame(p, p->gen_sent, p->frame);
        if (rx_frame(p, p->frame, len, c->flow_control) == RX_STALL) {
            p->gen_clock = now; /* PAUSE: nothing accrues while the receiver pushes back */
            return made;
        }
        p->gen_sent++;
        made++;
    }
    p->gen_clock += made * ns_per_frame;
    return made;
}

/* ------------------------------------------------------------------ model thread */

static void *card_thread(void *arg)
{
    struct sim_card *c = arg;
    unsigned idle = 0;
    while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
        uint32_t work = 0;
        pthread_mutex_lock(&c->lock);
        uint64_t now = now_ns();
        for (int i = 0; i < SIM_PORTS; i++) {
            struct sim_port *p = &c->port[i];
            if (!p->attached || in_reset(p, now))
                continue;
            advance(p, now);
            for (int q = 0; q < SIM_QUEUES; q++)
                if (p->tx[q].enabled)
                    work += tx_queue(p, q);
            if (i == 0 && c->peer)
                work += from_peer_dev(c);
            if (c->wire == WIRE_GEN && (reg_get(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
                work += generate(p, now);
        }
        pthread_mutex_unlock(&c->lock);
        if (work) {
            idle = 0;
            continue;
        }
        /* idle: spin briefly, then sleep longer and longer (up to 200 us) */
        if (++idle < 64) {
            aioixy_cpu_relax();
        } else {
            unsigned us = idle < 1000 ? 20 : 200;
            struct timespec ts = {0, (long)us * 1000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------ cards */

static int parse_options(struct sim_card *c, const char *options, bool flow_control)
{
    char v[64];
    c->wire = WIRE_CABLE;
    c->gen_flows = 1;
    c->gen_size = 60;
    c->gen_count = 0;
    c->flow_control = flow_control;
    if (aioixy_opt_get(options, "wire", v, sizeof(v))) {
        if (strcmp(v, "cable") == 0) c->wire = WIRE_CABLE;
        else if (strcmp(v, "loop") == 0) c->wire = WIRE_LOOP;
        else if (strcmp(v, "gen") == 0) c->wire = WIRE_GEN;
        else return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: wire=%s: expected cable, loop or gen", v);
    }
    if (aioixy_opt_get(options, "flows", v, sizeof(v))) {
        long n = strtol(v, NULL, 10);
        if (n < 1 || n > 65536)
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: flows=%s: expected 1..65536", v);
        c->gen_flows = (uint32_t)n;
    }
    if (aioixy_opt_get(options, "size", v, sizeof(v))) {
        long n = strtol(v, NULL, 10);
        if (n < 60 || n > 1514)
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: size=%s: expected 60..1514", v);
        c->gen_size = (uint32_t)n;
    }
    if (aioixy_opt_get(options, "count", v, sizeof(v))) {
        long long n = strtoll(v, NULL, 10);
        if (n < 1)
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: count=%s: expected a positive number", v);
        c->gen_count = (uint64_t)n;
    }
    if (aioixy_opt_get(options, "peer", v, sizeof(v))) {
        if (c->wire != WIRE_CABLE)
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: peer=%s needs wire=cable (port 0's "
                                    "cable goes to the peer)", v);
        if (strncmp(v, "sim-82599:", 10) == 0)
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: peer=%s: a peer is a software device "
                                    "(null, pair:NAME:END); two model ports are cabled with "
                                    "wire=cable", v);
        struct aioixy_dev_config pc;
        memset(&pc, 0, sizeof(pc));
        pc.rx_queues = pc.tx_queues = 1;
        pc.pool_bufs = 1024;
        pc.flow_control = flow_control;
        int rc = aioixy_dev_open(v, &pc, &c->peer);
        if (rc) {
            char why[200];
            snprintf(why, sizeof(why), "%s", aioixy_last_error());
            return aioixy_set_error(-rc, "sim-82599: peer=%s: %s", v, why);
        }
    }
    snprintf(c->options, sizeof(c->options), "%s", options ? options : "");
    return 0;
}

static void card_free(struct sim_card *c)
{
    if (c->peer) {
        for (uint32_t i = c->pend_i; i < c->pend_n; i++)
            aioixy_mempool_free(c->pend[i]);
        c->peer->ops->close(c->peer);
    }
    if (c->regmap)
        munmap(c->regmap, c->regmap_len);
    if (c->memfd >= 0)
        close(c->memfd);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

/* Find or create card `name`; takes a reference. Caller holds cards_lock. */
static int card_get(const char *name, const char *options, bool flow_control, struct sim_card **out)
{
    for (struct sim_card *c = cards; c; c = c->next) {
        if (strcmp(c->name, name) == 0) {
            if (options && *options && strcmp(options, c->options) != 0)
                return aioixy_set_error(AIOIXY_EINVAL, "sim-82599:%s already exists with options "
                                        "'%s' (asked for '%s'): options apply to the whole card",
                                        name, c->options, options);
            c->refs++;
            *out = c;
            return 0;
        }
    }
    struct sim_card *c = calloc(1, sizeof(*c));
    if (!c)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    c->memfd = -1;
    pthread_mutex_init(&c->lock, NULL);
    snprintf(c->name, sizeof(c->name), "%s", name);
    int rc = parse_options(c, options, flow_control);
    if (rc) {
        card_free(c);
        return rc;
    }
    c->regmap_len = (size_t)IXGBE_BAR0_SIZE * SIM_PORTS;
    c->memfd = memfd_create("sim-82599-bar0", MFD_CLOEXEC);
    if (c->memfd < 0 || ftruncate(c->memfd, (off_t)c->regmap_len) != 0) {
        rc = aioixy_set_error(AIOIXY_ENOMEM, "sim-82599: memfd for the register file: %s", strerror(errno));
        card_free(c);
        return rc;
    }
    c->regmap = mmap(NULL, c->regmap_len, PROT_READ | PROT_WRITE, MAP_SHARED, c->memfd, 0);
    if (c->regmap == MAP_FAILED) {
        c->regmap = NULL;
        rc = aioixy_set_error(AIOIXY_ENOMEM, "sim-82599: mmap of the register file: %s", strerror(errno));
        card_free(c);
        return rc;
    }
    uint32_t h = 2166136261u; /* FNV-1a of the card name: a stable, distinct MAC per card */
    for (const char *s = name; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    for (int i = 0; i < SIM_PORTS; i++) {
        struct sim_port *p = &c->port[i];
        p->card = c;
        p->index = i;
        p->regs = (uint32_t *)((uint8_t *)c->regmap + (size_t)IXGBE_BAR0_SIZE * i);
        const uint8_t mac[6] = {0x02, 0x82, 0x59, (uint8_t)(h >> 16), (uint8_t)(h >> 8),
                                (uint8_t)((h & 0xf0) | (uint32_t)i)};
        memcpy(p->mac, mac, 6);
        port_defaults(p);
        /* power-on: the EEPROM has been read and DMA initialized */
        reg_set(p, IXGBE_EEC, IXGBE_EEC_ARD);
        reg_set(p, IXGBE_RDRXCTL, IXGBE_RDRXCTL_DMAIDONE);
    }
    c->refs = 1;
    if (pthread_create(&c->thread, NULL, card_thread, c) != 0) {
        card_free(c);
        return aioixy_set_error(AIOIXY_ENOMEM, "sim-82599: cannot start the model thread");
    }
    c->next = cards;
    cards = c;
    *out = c;
    return 0;
}

static void card_put(struct sim_card *c)
{
    pthread_mutex_lock(&cards_lock);
    bool last = --c->refs == 0;
    if (last) {
        for (struct sim_card **pp = &cards; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
    }
    pthread_mutex_unlock(&cards_lock);
    if (!last)
        return;
    atomic_store_explicit(&c->stop, true, memory_order_release);
    pthread_join(c->thread, NULL);
    card_free(c);
}

struct sim_port *aioixy_sim_attach(const char *card, int port, const char *options, bool flow_control)
{
    aioixy_clear_error();
    if (port < 0 || port >= SIM_PORTS) {
        aioixy_set_error(AIOIXY_ENODEV, "sim-82599:%s:%d: the model has ports 0 and 1", card, port);
        return NULL;
    }
    if (!*card || strlen(card) >= 64) {
        aioixy_set_error(AIOIXY_ENODEV, "sim-82599: card name must be 1..63 characters");
        return NULL;
    }
    pthread_mutex_lock(&cards_lock);
    struct sim_card *c = NULL;
    int rc = card_get(card, options, flow_control, &c);
    if (rc) {
        pthread_mutex_unlock(&cards_lock);
        return NULL;
    }
    struct sim_port *p = &c->port[port];
    pthread_mutex_lock(&c->lock);
    bool busy = p->attached;
    p->attached = true;
    pthread_mutex_unlock(&c->lock);
    pthread_mutex_unlock(&cards_lock);
    if (busy) {
        card_put(c);
        aioixy_set_error(AIOIXY_EBUSY, "sim-82599:%s:%d is already open", card, port);
        return NULL;
    }
    return p;
}

void aioixy_sim_detach(struct sim_port *p)
{
    struct sim_card *c = p->card;
    pthread_mutex_lock(&c->lock);
    p->attached = false;
    /* what a power cycle of the function would do: nothing runs until the next driver */
    for (int q = 0; q < SIM_QUEUES; q++) {
        p->rx[q].enabled = p->tx[q].enabled = false;
        p->rx[q].latch_at = p->tx[q].latch_at = 0;
    }
    pthread_mutex_unlock(&c->lock);
    card_put(c);
}

/* Faults recorded on `card` ("" = all cards), newline-separated into buf; returns the count. */
int aioixy_sim_faults(const char *card, char *buf, size_t len)
{
    int count = 0;
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    pthread_mutex_lock(&cards_lock);
    for (struct sim_card *c = cards; c; c = c->next) {
        if (*card && strcmp(card, c->name) != 0)
            continue;
        pthread_mutex_lock(&c->lock);
        for (uint32_t i = 0; i < c->nfaults && i < MAX_FAULTS; i++) {
            if (len > used + 1)
                used += (size_t)snprintf(buf + used, len - used, "%s\n", c->faults[i]);
            if (used >= len)
                used = len - 1;
        }
        count += (int)c->nfaults;
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_unlock(&cards_lock);
    return count;
}

/* Every fault any card ever recorded in this process (cards come and go; this does not). */
uint64_t aioixy_sim_total_faults(void)
{
    return atomic_load_explicit(&total_faults, memory_order_relaxed);
}

/* A port of a live card, without attaching (for benchmarks that watch the model's registers
 * while the driver owns the port). NULL if there is no such card. */
struct sim_port *aioixy_sim_find(const char *card, int port)
{
    struct sim_port *p = NULL;
    pthread_mutex_lock(&cards_lock);
    for (struct sim_card *c = cards; c; c = c->next)
        if (strcmp(c->name, card) == 0 && port >= 0 && port < SIM_PORTS)
            p = &c->port[port];
    pthread_mutex_unlock(&cards_lock);
    return p;
}

/* Model counters a test may compare with the driver's view (not clear-on-read). */
uint64_t aioixy_sim_generated(struct sim_port *p)
{
    pthread_mutex_lock(&p->card->lock);
    uint64_t v = p->gen_sent;
    pthread_mutex_unlock(&p->card->lock);
    return v;
}

/* ------------------------------------------------------------------ the device */

static void sim_release(void *arg)
{
    aioixy_sim_detach(arg);
}

static int sim_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    /* sim-82599:CARD:PORT */
    const char *rest = name + strlen("sim-82599:");
    const char *colon = strrchr(rest, ':');
    char card[64];
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == rest || (size_t)(colon - rest) >= sizeof(card) || !end || *end || end == colon + 1)
        return aioixy_set_error(AIOIXY_ENODEV, "'%s': expected sim-82599:CARD:PORT, e.g. "
                                "sim-82599:lab:0 (PORT 0 or 1)", name);
    memcpy(card, rest, (size_t)(colon - rest));
    card[colon - rest] = '\0';
    struct sim_port *p = aioixy_sim_attach(card, (int)port, cfg->options, cfg->flow_control);
    if (!p)
        return -aioixy_last_errcode();
    struct sim_card *c = p->card;
    pthread_mutex_lock(&c->lock);
    uint32_t before = c->nfaults;
    pthread_mutex_unlock(&c->lock);
    struct ixgbe_backing back = {
        .mmio = {.base = (volatile uint8_t *)p->regs, .model = p},
        .dma = {.kind = DMA_ANON, .vfio_container_fd = -1},
        .release = sim_release,
        .arg = p,
    };
    /* keep the card alive across the attach so its fault log can be read afterwards */
    pthread_mutex_lock(&cards_lock);
    c->refs++;
    pthread_mutex_unlock(&cards_lock);
    int rc = aioixy_ixgbe_attach(name, &back, cfg, out);
    pthread_mutex_lock(&c->lock);
    uint32_t after = c->nfaults;
    char first[240] = "";
    if (after > before && before < MAX_FAULTS)
        snprintf(first, sizeof(first), "%s", c->faults[before]);
    pthread_mutex_unlock(&c->lock);
    if (rc == 0 && after > before) {
        (*out)->ops->close(*out);
        *out = NULL;
        rc = aioixy_set_error(AIOIXY_EDEVICE, "the 82599 model caught %u driver mistake(s) during "
                              "initialization; first: %s", after - before, first);
    }
    card_put(c);
    return rc;
}

static struct aioixy_driver sim_driver = {
    .name = "sim-82599",
    .prefix = "sim-82599:",
    .open = sim_open,
};
AIOIXY_REGISTER_DRIVER(sim_driver)
