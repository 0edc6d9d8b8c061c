/* sim-82599 internals shared by the model's files (not part of any interface):
 *   sim_regs.c   the register file: reset, timers, register transactions, queue enable checks
 *   sim_rx.c     receive engine: L2 filter, RSS queue choice, descriptor write-back
 *   sim_tx.c     transmit engine and the wire (cable, loop, peer device)
 *   sim_rss.c    Toeplitz hash and the fields MRQC selects
 *   sim_gen.c    the traffic generator at the far end of wire=gen
 *   sim_irq.c    interrupt causes, MSI-X vectors (IVAR), masks, EITR throttling
 *   sim_card.c   cards, ports, the model thread, the fault log, the "sim-82599:" device
 * Locking: everything below is touched with the card lock held (the model thread per round,
 * register transactions per access).
 */
#ifndef AIOIXY_SIM_INTERNAL_H
#define AIOIXY_SIM_INTERNAL_H

#include "sim_regs.h"
#include "device.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define SIM_PORTS 2
#define SIM_QUEUES 16
#define SIM_RESET_NS 1000000ull     /* 1 ms */
#define SIM_AUTOREAD_NS 2000000ull  /* EEPROM auto-read + DMA init after reset */
#define SIM_LATCH_NS 100000ull      /* queue enable */
#define SIM_LINK_NS 5000000ull      /* backplane auto-negotiation (KX4/KX/KR) */
#define SIM_LINK_NOAN_NS 500000ull  /* link modes without auto-negotiation: PHY lock only */
#define SIM_SECRX_NS 20000ull       /* SECRXSTAT.SECRX_RDY after SECRXCTRL.RX_DIS (option secrx=) */
#define SIM_NEVER UINT64_MAX        /* an option's "never" (secrx=never, gio=never) */
/* RDRXCTL.RSCFRSTSIZE after reset: non-zero, so a driver that does not clear it is seen (the
 * datasheet's exact reset value is not what matters here; Linux clears the field) */
#define SIM_RDRXCTL_RSCFRSTSIZE_RESET (0x8u << 17)
#define SIM_MAXFRS_RESET (1518u << 16) /* MFS: 1518 bytes until the driver sets it */
#define SIM_ARRIVAL_NS 2000000ull   /* a port is "under traffic" this long after a frame */
#define SIM_MAX_FAULTS 32
#define SIM_FRAME_MAX 16384u
#define SIM_BUDGET 64u

enum sim_wire { WIRE_CABLE, WIRE_LOOP, WIRE_GEN };
/* What the board puts behind the MAC, by PCI device id (sim_regs.c has the table). */
enum sim_medium { MEDIUM_SFP, MEDIUM_KX4, MEDIUM_KR, MEDIUM_BACKPLANE, MEDIUM_CX4, MEDIUM_XAUI,
                  MEDIUM_BASET };
enum sim_rx_result { RX_DONE, RX_DROPPED, RX_STALL };

struct sim_ring {
    bool enabled;
    bool ran, flushed;  /* enabled since the last reset; disabled with SWFLSH since then */
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
    uint64_t secrx_rdy_at;   /* SECRXCTRL.RX_DIS set: the security block is idle from then on */
    uint64_t gio_clear_at;   /* CTRL.GIO_DIS set: STATUS.GIO clears then (SIM_NEVER: stuck) */
    bool double_reset_due;   /* reset while STATUS.GIO was stuck: a second CTRL.RST must follow */
    uint64_t roc;            /* ROC: frames over the size limit, dropped by the MAC */
    uint64_t crcerrs;        /* CRCERRS: frames with a bad CRC */
    uint64_t last_arrival;   /* when a frame last reached the MAC (link up), for the errata */
    bool rx_hung;            /* RXEN set under traffic without the SECRX sequence (errata) */
    struct sim_ring rx[SIM_QUEUES], tx[SIM_QUEUES];
    /* MSI-X (sim_irq.c): vector v's message target (an eventfd, -1 none; not reset by CTRL.RST:
     * the MSI-X table lives in PCI space), when it last sent, causes held back by EITR */
    int msix_fd[SIM_QUEUES];
    uint64_t irq_sent_at[SIM_QUEUES];
    uint64_t irq_sent[SIM_QUEUES], irq_throttled;
    uint32_t irq_held;
    /* clear-on-read counters (written by the model thread under the card lock); the per-queue
     * ones are indexed by statistics counter (RQSMR maps rx queues to counters) */
    uint64_t gprc, gptc, gorc, gotc, mpc, qprc[SIM_QUEUES], qptc[SIM_QUEUES];
    uint64_t qbrc[SIM_QUEUES], qprdc[SIM_QUEUES];
    uint32_t gorch_latch, gotch_latch, qbrch_latch[SIM_QUEUES];
    struct aioixy_dma_window win;
    uint8_t mac[6];
    uint64_t gen_sent;
    uint64_t gen_clock; /* line-rate pacing of the generator: time up to which frames were due */
    uint8_t frame[SIM_FRAME_MAX]; /* tx gather buffer */
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
    enum sim_wire wire;
    uint16_t dev_id;         /* PCI device id the card plays (option id=), decides the medium */
    int eeprom_lms;          /* option lms=: the link mode the EEPROM loads (-1: the board's) */
    uint64_t secrx_ns;       /* option secrx=: SECRX_RDY this long after RX_DIS */
    uint64_t gio_ns;         /* option gio=: STATUS.GIO clears this long after GIO_DIS */
    enum sim_medium medium;
    bool flow_control;
    uint32_t gen_flows, gen_size;
    uint64_t gen_count; /* 0 = forever */
    uint32_t gen_crcerr; /* option crcerr=N: every Nth generated frame has a bad CRC (0 = none) */
    char options[128];
    /* peer=DEVICE: port 0's cable goes to a software device the model drives through the
     * device interface (only the model thread calls its rx/tx, as the contract requires) */
    struct aioixy_dev *peer;
    struct aioixy_pkt_buf *pend[SIM_BUDGET]; /* received from the peer, not yet taken by port 0 */
    uint32_t pend_n, pend_i;
    struct sim_port port[SIM_PORTS];
    uint32_t nfaults;
    char faults[SIM_MAX_FAULTS][240];
    struct sim_card *next;
};

static inline uint64_t sim_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint32_t sim_reg(struct sim_port *p, uint32_t reg)
{
    return __atomic_load_n(&p->regs[reg / 4], __ATOMIC_ACQUIRE);
}

static inline void sim_reg_set(struct sim_port *p, uint32_t reg, uint32_t v)
{
    __atomic_store_n(&p->regs[reg / 4], v, __ATOMIC_RELEASE);
}

static inline bool sim_in_reset(const struct sim_port *p, uint64_t now)
{
    return p->reset_until && now < p->reset_until;
}

/* Is [addr, addr+len) inside live DMA memory? (the model's stand-in for the IOMMU) */
static inline bool sim_dma_ok(struct sim_port *p, uint64_t addr, uint64_t len)
{
    return addr && aioixy_dma_anon_lookup(addr, len ? len : 1, &p->win);
}

/* sim_card.c */
__attribute__((format(printf, 2, 3))) void sim_fault(struct sim_port *p, const char *fmt, ...);
/* the medium of an 82599 device id, false for an id the model does not play */
bool sim_medium_of(uint16_t dev_id, enum sim_medium *out);
/* sim_regs.c */
void sim_port_defaults(struct sim_port *p);
void sim_advance(struct sim_port *p, uint64_t now);
bool sim_under_traffic(struct sim_port *p, uint64_t now);
/* the statistics counter rx queue q counts in (RQSMR) */
static inline int sim_rx_stat_index(struct sim_port *p, int q)
{
    return (int)((sim_reg(p, IXGBE_RQSMR((uint32_t)q / 4u)) >> (8u * ((uint32_t)q % 4u))) & 0xfu);
}
/* sim_rss.c: the rx queue for frame f by RSS (0 when RSS is off or the frame has no type);
 * *type and *hash are what the descriptor write-back reports */
int sim_rss_queue(struct sim_port *p, const uint8_t *f, uint32_t len, uint32_t *type, uint32_t *hash);
/* sim_rx.c */
int sim_rx_frame(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall);
/* the same for a frame whose CRC may be bad (crc_ok false): dropped and counted in CRCERRS, or
 * with FCTRL.SBP stored with RXE in its descriptor */
int sim_rx_frame_crc(struct sim_port *p, const uint8_t *f, uint32_t len, bool may_stall, bool crc_ok);
uint32_t sim_ring_free(struct sim_port *p, int q);
/* `frames` found rx queue q without a free descriptor: QPRDC with DROP_EN, else MPC */
void sim_rx_no_descriptor(struct sim_port *p, int q, uint64_t frames);
bool sim_rx_rings_full(struct sim_port *p);
/* sim_tx.c */
uint32_t sim_tx_queue(struct sim_port *p, int q);
uint32_t sim_from_peer_dev(struct sim_card *c);
/* sim_irq.c: a queue cause (rx or tx write-back), the held-back messages due by now, the
 * interrupt registers' transactions (false: not an interrupt register) */
void sim_irq_queue_cause(struct sim_port *p, int q, bool rx, uint64_t now);
void sim_irq_advance(struct sim_port *p, uint64_t now);
void sim_irq_reset(struct sim_port *p);
bool sim_irq_write(struct sim_port *p, uint32_t reg, uint32_t val, uint64_t now);
bool sim_irq_read(struct sim_port *p, uint32_t reg, uint32_t *v);
/* sim_gen.c */
uint32_t sim_generate(struct sim_port *p, uint64_t now);

#endif
