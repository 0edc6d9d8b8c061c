/* User-space driver for the Intel 82599 10 GbE controller (ixgbe family), written from the
 * 82599 datasheet: section 4.6.3 (initialization sequence), 4.6.7 (receive init), 4.6.8
 * (transmit init), 4.6.10 (multiple receive queues / RSS), 7.1 and 7.2 (descriptor rings).
 *
 * Shape of the driver:
 *  - polling by default; with option irq=msix each queue index gets an MSI-X vector (rx and tx
 *    causes of queue q -> vector q, IVAR), throttled by EITR (option itr=US), auto-cleared and
 *    auto-masked when sent (EIAC/EIAM), re-armed (EIMS) by poll_fd when the poller goes to
 *    sleep on the vector's eventfd (7.3: interrupts; 4.6.3.1 the enable sequence);
 *  - one advanced single-buffer rx descriptor ring and one advanced tx ring per queue, each
 *    driven by the poller thread of that queue index (no locks on the fast path);
 *  - rx: check DD of the next descriptors, hand their buffers up, put fresh buffers in their
 *    place, one RDT write per batch; tx: reclaim descriptors the device marked done (DD),
 *    fill new ones, one TDT write per batch;
 *  - N rx queues with RSS (Toeplitz hash over IPv4/IPv6 addresses and TCP/UDP ports, 128-entry
 *    redirection table spread round-robin over the queues);
 *  - statistics from the device's clear-on-read counters, accumulated under a mutex.
 * The same code drives a real card (BAR0 mmap'ed from sysfs or VFIO) and the sim-82599 model.
 */
#include "ixgbe.h"
#include "ixgbe_regs.h"
#include "pci_claim.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_DESCS 512u
_Static_assert(DEFAULT_DESCS <= AIOIXY_DEFAULT_DESCS_MAX, "pools are sized with the largest default");
#define MAX_DESCS 4096u
#define TX_CLEAN_MAX 256u
/* EITR default with irq=msix: 10 us, at most 100k interrupts a second per vector (Linux's
 * IXGBE_100K_ITR); ITR_INTERVAL counts 2 us units in bits 11:3, so 1022 us at most */
#define DEFAULT_ITR_US 10u
#define MAX_ITR_US 1022u

struct ixgbe_rxq {
    union ixgbe_adv_rx_desc *ring;
    struct aioixy_pkt_buf **bufs;
    uint32_t n;
    uint32_t next;   /* next descriptor to check for DD */
    uint32_t reg_tail;
    bool in_chain;   /* dropping the rest of a frame that spans descriptors (no EOP yet) */
    /* written by this queue's poller only, read by stats (relaxed) */
    uint64_t frame_errors, csum_errors;
    struct aioixy_mempool *pool;
    struct aioixy_dma_mem mem;
    struct aioixy_pkt_buf *fresh[AIOIXY_MAX_BATCH];
} AIOIXY_CACHE_ALIGNED;

struct ixgbe_txq {
    union ixgbe_adv_tx_desc *ring;
    struct aioixy_pkt_buf **bufs;
    uint32_t n;
    uint32_t tail;   /* next descriptor to fill */
    uint32_t clean;  /* oldest descriptor not yet reclaimed */
    uint32_t reg_tail;
    uint32_t max_len; /* longest frame a descriptor may carry (dev.max_tx_len) */
    uint64_t bad_len; /* frames refused for their length (poller writes, stats read) */
    struct aioixy_dma_mem mem;
    struct aioixy_pkt_buf *done[TX_CLEAN_MAX];
} AIOIXY_CACHE_ALIGNED;

struct ixgbe_dev {
    struct aioixy_dev dev;
    struct ixgbe_backing hw;
    pthread_mutex_t lock; /* stats accumulation, FCTRL read-modify-write */
    struct aioixy_dev_stats totals;
    struct ixgbe_rxq rxq[AIOIXY_MAX_QUEUES];
    struct ixgbe_txq txq[AIOIXY_MAX_QUEUES];
    /* irq=msix: one vector (and eventfd) per queue index; n_irq 0 = polling */
    uint32_t n_irq;
    bool irq_routed;
    int irq_fd[AIOIXY_MAX_QUEUES];
};

/* The Toeplitz key used by the RSS verification suite that NIC vendors publish; any 40 bytes
 * work, this one makes hashes comparable with published test vectors. */
static const uint8_t rss_key[40] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3,
    0x8f, 0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3,
    0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

static inline uint32_t rd(struct ixgbe_dev *d, uint32_t reg)
{
    return ixgbe_rd(&d->hw.mmio, reg);
}

static inline void wr(struct ixgbe_dev *d, uint32_t reg, uint32_t val)
{
    ixgbe_wr(&d->hw.mmio, reg, val);
}

static inline void set_bits(struct ixgbe_dev *d, uint32_t reg, uint32_t bits)
{
    wr(d, reg, rd(d, reg) | bits);
}

static inline void clear_bits(struct ixgbe_dev *d, uint32_t reg, uint32_t bits)
{
    wr(d, reg, rd(d, reg) & ~bits);
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Poll until (reg & mask) == want, every millisecond, for up to timeout_ms. */
static int wait_reg(struct ixgbe_dev *d, uint32_t reg, uint32_t mask, uint32_t want,
                    unsigned timeout_ms, const char *what)
{
    for (unsigned t = 0; t <= timeout_ms; t++) {
        if ((rd(d, reg) & mask) == want)
            return 0;
        sleep_ms(1);
    }
    return aioixy_set_error(AIOIXY_ETIMEDOUT, "ixgbe %s: timed out after %u ms waiting for %s "
                            "(register 0x%05x = 0x%08x)", d->dev.name, timeout_ms, what, reg,
                            rd(d, reg));
}

/* ---------------------------------------------------------------- fast path: receive */

static inline void count1(uint64_t *c)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

/* Checksum status of a good frame (7.1.6.2: IPCS/L4CS say what was checked, IPE/L4E what failed).
 * A UDP frame with L4E is "not checked": by an 82599 erratum a UDP checksum of 0 ("none")
 * is reported as an error, so the bit cannot be trusted for UDP (Linux ixgbe_rx_checksum does
 * the same). */
static inline uint32_t rx_csum_flags(const union ixgbe_adv_rx_desc *desc, uint32_t st)
{
    uint32_t f = 0;
    if (st & IXGBE_RXD_STAT_IPCS)
        f = AIOIXY_RX_IP_CSUM_CHECKED | (st & IXGBE_RXD_ERR_IPE ? AIOIXY_RX_IP_CSUM_BAD : 0);
    if (st & IXGBE_RXD_STAT_L4CS) {
        if (!(st & IXGBE_RXD_ERR_L4E))
            f |= AIOIXY_RX_L4_CSUM_CHECKED;
        else if (!(desc->wb.pkt_info & IXGBE_PKTTYPE_UDP))
            f |= AIOIXY_RX_L4_CSUM_CHECKED | AIOIXY_RX_L4_CSUM_BAD;
    }
    return f;
}

/* A descriptor that does not complete a good frame: its buffer goes back to the pool. A frame
 * spanning descriptors (no EOP) is dropped whole - head, middle and tail - and counted once. */
static void rx_discard(struct ixgbe_rxq *rq, bool *in_chain, uint32_t st, struct aioixy_pkt_buf *b)
{
    if (!(st & IXGBE_RXD_STAT_EOP)) {
        if (!*in_chain)
            count1(&rq->frame_errors);
        *in_chain = true;
    } else if (*in_chain) {
        *in_chain = false; /* the tail of a chain already counted */
    } else {
        count1(&rq->frame_errors); /* CRC, length, oversize, undersize or packet error */
    }
    aioixy_mempool_free(b);
}

static uint32_t ixgbe_rx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    struct ixgbe_rxq *rq = &d->rxq[q];
    uint32_t ready = 0, i = rq->next;
    /* how many completed descriptors are waiting (DD is written last by the device, so once
     * we see it the rest of the write-back is visible after the acquire) */
    while (ready < n) {
        uint32_t st = __atomic_load_n(&rq->ring[i].wb.status_error, __ATOMIC_ACQUIRE);
        if (!(st & IXGBE_RXD_STAT_DD))
            break;
        ready++;
        i = (i + 1) & (rq->n - 1);
    }
    if (!ready)
        return 0;
    /* every slot we empty gets a fresh buffer; when the pool is short we take fewer packets and
     * leave the rest to the device, which drops (and counts) once its ring runs full */
    while (ready && !aioixy_mempool_alloc_bulk(rq->pool, rq->fresh, ready))
        ready /= 2;
    if (!ready)
        return 0;
    uint32_t got = 0;
    bool in_chain = rq->in_chain;
    i = rq->next;
    for (uint32_t k = 0; k < ready; k++) {
        union ixgbe_adv_rx_desc *desc = &rq->ring[i];
        uint32_t st = desc->wb.status_error;
        struct aioixy_pkt_buf *b = rq->bufs[i];
        struct aioixy_pkt_buf *nb = rq->fresh[k];
        /* deliver: a whole frame (EOP, not the tail of a chain) without frame errors; IPE/L4E
         * are checksum status, not reasons to drop (Linux drops on the frame errors only) */
        if (aioixy_likely((st & (IXGBE_RXD_STAT_EOP | IXGBE_RXD_ERR_FRAME)) == IXGBE_RXD_STAT_EOP &&
                          !in_chain)) {
            b->len = desc->wb.length;
            uint32_t f = 0;
            if (st & (IXGBE_RXD_STAT_IPCS | IXGBE_RXD_STAT_L4CS)) {
                f = rx_csum_flags(desc, st);
                if (aioixy_unlikely(f & (AIOIXY_RX_IP_CSUM_BAD | AIOIXY_RX_L4_CSUM_BAD)))
                    count1(&rq->csum_errors);
            }
            b->rx_flags = f; /* always: the buffer may carry its previous packet's flags */
            bufs[got++] = b;
        } else {
            rx_discard(rq, &in_chain, st, b);
        }
        rq->bufs[i] = nb;
        desc->read.pkt_addr = aioixy_pkt_data_iova(nb);
        desc->read.hdr_addr = 0;
        i = (i + 1) & (rq->n - 1);
    }
    rq->next = i;
    rq->in_chain = in_chain;
    /* the descriptors must be in memory before the device may fetch them */
    aioixy_dma_wmb();
    wr(d, rq->reg_tail, (i - 1) & (rq->n - 1));
    return got;
}

/* ---------------------------------------------------------------- fast path: transmit */

static void tx_reclaim(struct ixgbe_txq *tq)
{
    uint32_t k = 0;
    while (tq->clean != tq->tail) {
        uint32_t st = __atomic_load_n(&tq->ring[tq->clean].wb.status, __ATOMIC_ACQUIRE);
        if (!(st & IXGBE_TXD_STAT_DD))
            break;
        tq->done[k++] = tq->bufs[tq->clean];
        tq->bufs[tq->clean] = NULL;
        tq->clean = (tq->clean + 1) & (tq->n - 1);
        if (k == TX_CLEAN_MAX) {
            aioixy_mempool_free_bulk(tq->done, k);
            k = 0;
        }
    }
    if (k)
        aioixy_mempool_free_bulk(tq->done, k);
}

static uint32_t ixgbe_tx(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    struct ixgbe_txq *tq = &d->txq[q];
    tx_reclaim(tq);
    /* one slot stays empty: tail == head means "ring empty" to the device */
    uint32_t space = (tq->clean - tq->tail - 1) & (tq->n - 1);
    uint32_t k = n < space ? n : space;
    uint32_t t = tq->tail, i = 0;
    /* locals: the descriptor stores below could alias these fields for the compiler */
    const uint32_t mask = tq->n - 1, room = tq->max_len - IXGBE_TX_MIN_LEN;
    while (i < k) {
        struct aioixy_pkt_buf *b = bufs[i++];
        /* never a descriptor the DMA cannot handle: under 17 bytes (the minimum Linux pads
         * to for the PAYLEN field) or beyond the largest frame (a buffer's own room bounds
         * its length already). The port layer refuses these at enqueue (dev.min/max_tx_len);
         * this is the driver's own guard. One unsigned compare covers both ends. */
        if (aioixy_unlikely(b->len - IXGBE_TX_MIN_LEN > room)) {
            count1(&tq->bad_len);
            aioixy_mempool_free(b); /* accepted and dropped: counted in tx_errors */
            if (k < n)
                k++; /* it took no slot: one more packet fits */
            continue;
        }
        union ixgbe_adv_tx_desc *desc = &tq->ring[t];
        tq->bufs[t] = b;
        desc->read.buffer_addr = aioixy_pkt_data_iova(b);
        desc->read.cmd_type_len = IXGBE_TXD_CMD_EOP | IXGBE_TXD_CMD_RS | IXGBE_TXD_CMD_IFCS |
                                  IXGBE_TXD_CMD_DEXT | IXGBE_TXD_DTYP_DATA | b->len;
        desc->read.olinfo_status = b->len << IXGBE_TXD_PAYLEN_SHIFT;
        t = (t + 1) & mask;
    }
    if (t != tq->tail) {
        tq->tail = t;
        aioixy_dma_wmb();
        wr(d, tq->reg_tail, t);
    }
    return i;
}

/* ---------------------------------------------------------------- control */

/* Fold the clear-on-read counters into the running totals. Caller holds d->lock.
 * rx: the per-queue counters, as DPDK does - GPRC would also count the frames the device then
 * missed (Linux subtracts MPC from it), QBRC counts the bytes put in host memory, without the
 * CRC while CRC stripping is on (nothing to subtract, nothing to wrap), and QPRDC counts the
 * frames a queue dropped for want of descriptors (SRRCTL.DROP_EN). All 16 statistics counters
 * are summed, so the queue-to-counter map (RQSMR) does not matter. */
static void harvest_stats(struct ixgbe_dev *d)
{
    struct aioixy_dev_stats *t = &d->totals;
    for (uint32_t i = 0; i < IXGBE_STAT_QUEUES; i++) {
        t->rx_packets += rd(d, IXGBE_QPRC(i));
        /* the low half first: reading it latches the high half */
        uint64_t lo = rd(d, IXGBE_QBRC_L(i));
        t->rx_bytes += lo | (uint64_t)(rd(d, IXGBE_QBRC_H(i)) & 0xf) << 32;
        t->rx_missed += rd(d, IXGBE_QPRDC(i));
    }
    for (int i = 0; i < 8; i++)
        t->rx_missed += rd(d, IXGBE_MPC(i));
    /* tx: GOTC counts the 4-byte CRC the device appends (IFCS); software counts frames without
     * it. GPTC is read first, so GOTC covers at least those frames and cannot go below 4*GPTC. */
    uint32_t gptc = rd(d, IXGBE_GPTC);
    t->tx_packets += gptc;
    uint64_t lo = rd(d, IXGBE_GOTCL);
    uint64_t gotc = lo | (uint64_t)(rd(d, IXGBE_GOTCH) & 0xf) << 32;
    t->tx_bytes += gotc >= 4ull * gptc ? gotc - 4ull * gptc : 0;
    /* frames the MAC dropped for exceeding the size limit (MAXFRS / JUMBOEN): receive errors */
    t->rx_errors += rd(d, IXGBE_ROC);
    t->rx_errors += rd(d, IXGBE_CRCERRS); /* bad CRC (Linux: rx_errors = crcerrs + rlec) */
    (void)rd(d, IXGBE_GPRC); /* clear-on-read: keep it from saturating, it is not used */
    (void)rd(d, IXGBE_GORCL);
    (void)rd(d, IXGBE_GORCH);
}

static void ixgbe_stats(struct aioixy_dev *dev, struct aioixy_dev_stats *out)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    pthread_mutex_lock(&d->lock);
    harvest_stats(d);
    *out = d->totals;
    pthread_mutex_unlock(&d->lock);
    /* the driver's own counters (each written by one poller) */
    for (uint16_t q = 0; q < dev->num_rx_queues; q++) {
        out->rx_errors += __atomic_load_n(&d->rxq[q].frame_errors, __ATOMIC_RELAXED);
        out->rx_csum_errors += __atomic_load_n(&d->rxq[q].csum_errors, __ATOMIC_RELAXED);
    }
    for (uint16_t q = 0; q < dev->num_tx_queues; q++)
        out->tx_errors += __atomic_load_n(&d->txq[q].bad_len, __ATOMIC_RELAXED);
}

static void ixgbe_link(struct aioixy_dev *dev, struct aioixy_link *out)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    uint32_t links = rd(d, IXGBE_LINKS);
    out->up = links & IXGBE_LINKS_UP;
    out->speed_mbps = 0;
    if (out->up) {
        switch (links & IXGBE_LINKS_SPEED_MASK) {
        case IXGBE_LINKS_SPEED_10G: out->speed_mbps = 10000; break;
        case IXGBE_LINKS_SPEED_1G: out->speed_mbps = 1000; break;
        case IXGBE_LINKS_SPEED_100M: out->speed_mbps = 100; break;
        default: break;
        }
    }
}

static int ixgbe_promisc(struct aioixy_dev *dev, bool on)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    pthread_mutex_lock(&d->lock);
    if (on)
        set_bits(d, IXGBE_FCTRL, IXGBE_FCTRL_UPE | IXGBE_FCTRL_MPE);
    else
        clear_bits(d, IXGBE_FCTRL, IXGBE_FCTRL_UPE | IXGBE_FCTRL_MPE);
    dev->promisc = on;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

/* Poll until (reg & mask) == want, every millisecond, for up to timeout_ms; no error. */
static bool poll_reg(struct ixgbe_dev *d, uint32_t reg, uint32_t mask, uint32_t want, unsigned timeout_ms)
{
    for (unsigned t = 0; t <= timeout_ms; t++) {
        if ((rd(d, reg) & mask) == want)
            return true;
        sleep_ms(1);
    }
    return false;
}

/* Quiesce all DMA before a reset, the stop sequence of Linux (ixgbe_stop_adapter_generic,
 * ixgbe_disable_pcie_master) and datasheet 5.2.5.3.2: receive off, interrupts masked and the
 * pending causes read away (EICR is clear-on-read), queued frames given time to leave, every
 * queue disabled with SWFLSH (descriptor write-backs it still holds are flushed), then PCIe
 * master disable (CTRL.GIO_DIS) and a wait until no request is pending (STATUS.GIO clear).
 * A reset with DMA in flight can hang the device or let it write into memory we are about
 * to free. Best effort: a stuck queue does not keep us from resetting. Returns whether
 * STATUS.GIO cleared; if it did not, the reset must be done twice. Queues beyond ours were
 * never enabled by this driver; a previous kernel driver stopped its own when it was unbound. */
static bool stop_dma(struct ixgbe_dev *d)
{
    clear_bits(d, IXGBE_RXCTRL, IXGBE_RXCTRL_RXEN);
    wr(d, IXGBE_EIMC, IXGBE_EIMC_ALL);
    (void)rd(d, IXGBE_EICR);
    for (uint16_t q = 0; q < AIOIXY_MAX_QUEUES; q++) {
        if (!(rd(d, IXGBE_TXDCTL(q)) & IXGBE_TXDCTL_ENABLE))
            continue;
        (void)poll_reg(d, IXGBE_TDH(q), 0xffffu, rd(d, IXGBE_TDT(q)) & 0xffffu, 100);
        wr(d, IXGBE_TXDCTL(q), IXGBE_TXDCTL_SWFLSH); /* disable, flush held write-backs */
    }
    for (uint16_t q = 0; q < AIOIXY_MAX_QUEUES; q++) {
        uint32_t rxdctl = rd(d, IXGBE_RXDCTL(q));
        if (rxdctl & IXGBE_RXDCTL_ENABLE)
            wr(d, IXGBE_RXDCTL(q), (rxdctl & ~IXGBE_RXDCTL_ENABLE) | IXGBE_RXDCTL_SWFLSH);
    }
    for (uint16_t q = 0; q < AIOIXY_MAX_QUEUES; q++) {
        (void)poll_reg(d, IXGBE_RXDCTL(q), IXGBE_RXDCTL_ENABLE, 0, 10);
        (void)poll_reg(d, IXGBE_TXDCTL(q), IXGBE_TXDCTL_ENABLE, 0, 10);
    }
    set_bits(d, IXGBE_CTRL, IXGBE_CTRL_GIO_DIS);
    return poll_reg(d, IXGBE_STATUS, IXGBE_STATUS_GIO, 0, IXGBE_GIO_DISABLE_MS);
}

/* Stop all DMA and reset the device, so it can no longer touch memory we free. The reset is
 * CTRL.RST while the link is up and CTRL.LNK_RST (which also resets the link) while it is
 * down: a link reset with the link up may reset the PHY while manageability firmware uses it
 * (Linux ixgbe_reset_hw_82599). When master disable did not complete, two resets in a row
 * (datasheet 5.2.5.3.2, 82599 specification update "Master Disable Flow"; Linux's
 * IXGBE_FLAGS_DOUBLE_RESET_REQUIRED), with a pause between them for pending events. */
static void device_reset(struct ixgbe_dev *d)
{
    bool quiet = stop_dma(d);
    for (int round = quiet ? 1 : 2; round > 0; round--) {
        uint32_t how = rd(d, IXGBE_LINKS) & IXGBE_LINKS_UP ? IXGBE_CTRL_RST : IXGBE_CTRL_LRST;
        wr(d, IXGBE_CTRL, rd(d, IXGBE_CTRL) | how);
        /* 4.6.3.2: wait at least 1 ms before touching any register again */
        sleep_ms(10);
        if (round > 1) {
            (void)poll_reg(d, IXGBE_CTRL, IXGBE_CTRL_RST_MASK, 0, 1000);
            sleep_ms(50);
        }
    }
}

static void free_queues(struct ixgbe_dev *d)
{
    for (uint16_t q = 0; q < AIOIXY_MAX_QUEUES; q++) {
        struct ixgbe_rxq *rq = &d->rxq[q];
        if (rq->bufs)
            for (uint32_t i = 0; i < rq->n; i++)
                if (rq->bufs[i])
                    aioixy_mempool_free(rq->bufs[i]);
        free(rq->bufs);
        aioixy_dma_free(&rq->mem);
        struct ixgbe_txq *tq = &d->txq[q];
        if (tq->bufs)
            for (uint32_t i = 0; i < tq->n; i++)
                if (tq->bufs[i])
                    aioixy_mempool_free(tq->bufs[i]);
        free(tq->bufs);
        aioixy_dma_free(&tq->mem);
    }
}

/* The poller of queue index q goes to sleep. Its vector was auto-masked when it last fired
 * (EIAM), so unmask it (EIMS is write-1-to-set: no read-modify-write, no lock between
 * pollers), then look at the next rx descriptor: a frame written back before the unmask is
 * seen here, one after it sends the message. A cause that came while masked stays in EICR
 * and is sent at the unmask (one early wake-up at most). */
static int ixgbe_poll_fd(struct aioixy_dev *dev, uint16_t q, short *events)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    if (!d->n_irq || q >= d->n_irq)
        return AIOIXY_POLL_TIMED;
    uint64_t v;
    ssize_t rc = read(d->irq_fd[q], &v, sizeof(v)); /* drain; EAGAIN when nothing came */
    (void)rc;
    wr(d, IXGBE_EIMS, 1u << q);
    if (q < dev->num_rx_queues) {
        struct ixgbe_rxq *rq = &d->rxq[q];
        if (__atomic_load_n(&rq->ring[rq->next].wb.status_error, __ATOMIC_ACQUIRE) & IXGBE_RXD_STAT_DD)
            return AIOIXY_POLL_RX_READY;
    }
    /* tx completions (every descriptor has RS) raise the same vector: room in a full ring
     * wakes the poller too, so POLLIN is all it needs */
    *events = POLLIN;
    return d->irq_fd[q];
}

/* Stop the interrupt routing and close the eventfds (after the device was reset: it sends
 * nothing any more). */
static void irq_release(struct ixgbe_dev *d)
{
    if (d->irq_routed && d->hw.irq_route)
        (void)d->hw.irq_route(d->hw.arg, 0, NULL);
    d->irq_routed = false;
    for (uint32_t v = 0; v < d->n_irq; v++)
        if (d->irq_fd[v] >= 0)
            close(d->irq_fd[v]);
    d->n_irq = 0;
}

static void ixgbe_close(struct aioixy_dev *dev)
{
    struct ixgbe_dev *d = (struct ixgbe_dev *)dev;
    device_reset(d);
    irq_release(d);
    free_queues(d);
    aioixy_dev_release_pools(dev);
    pthread_mutex_destroy(&d->lock);
    if (d->hw.release)
        d->hw.release(d->hw.arg);
    free(d);
}

static const struct aioixy_dev_ops ixgbe_ops = {
    .driver = "ixgbe",
    .rx_batch = ixgbe_rx,
    .tx_batch = ixgbe_tx,
    .read_stats = ixgbe_stats,
    .link_status = ixgbe_link,
    .set_promisc = ixgbe_promisc,
    .poll_fd = ixgbe_poll_fd,
    .close = ixgbe_close,
};

/* ---------------------------------------------------------------- initialization */

static int reset_and_wait(struct ixgbe_dev *d)
{
    int rc;
    /* 4.6.3.1: mask interrupts, reset, mask again (the reset unmasks them) */
    device_reset(d);
    if ((rc = wait_reg(d, IXGBE_CTRL, IXGBE_CTRL_RST_MASK, 0, 1000, "the device reset to finish")))
        return rc;
    wr(d, IXGBE_EIMC, IXGBE_EIMC_ALL);
    if ((rc = wait_reg(d, IXGBE_EEC, IXGBE_EEC_ARD, IXGBE_EEC_ARD, 1000, "EEPROM auto-read")))
        return rc;
    return wait_reg(d, IXGBE_RDRXCTL, IXGBE_RDRXCTL_DMAIDONE, IXGBE_RDRXCTL_DMAIDONE, 1000,
                    "DMA initialization");
}

/* The SFP+ boards (their 10 Gb/s link is SFI: 10G serial). */
static bool is_sfp_board(uint16_t device_id)
{
    switch (device_id) {
    case 0x10FB: case 0x1507: case 0x154D: case 0x1557: case 0x154A: case 0x1558:
        return true;
    default:
        return false;
    }
}

/* Restart the link pipeline the way Linux does it (ixgbe_reset_pipeline_82599): clear the
 * AUTOC2 link-disable bits, write AUTOC with LMS bit 2 toggled and AN_RESTART, wait (up to
 * 10 x 4 ms) for the link state machine to leave state 0 (ANLP1.AN_STATE), then write AUTOC
 * with the real link mode and AN_RESTART. The toggle makes the change of mode a full reset
 * of the link pipeline even when the value written equals the old one. */
static void reset_link_pipeline(struct ixgbe_dev *d, uint32_t autoc)
{
    uint32_t autoc2 = rd(d, IXGBE_AUTOC2);
    if (autoc2 & IXGBE_AUTOC2_LINK_DISABLE_MASK)
        wr(d, IXGBE_AUTOC2, autoc2 & ~IXGBE_AUTOC2_LINK_DISABLE_MASK);
    autoc |= IXGBE_AUTOC_AN_RESTART;
    wr(d, IXGBE_AUTOC, autoc ^ (4u << IXGBE_AUTOC_LMS_SHIFT));
    for (int i = 0; i < 10; i++) {
        sleep_ms(4);
        if (rd(d, IXGBE_ANLP1) & IXGBE_ANLP1_AN_STATE_MASK)
            break;
    }
    wr(d, IXGBE_AUTOC, autoc);
}

/* Link (4.6.4). An SFP+ board runs its 10 Gb/s link in 10G serial mode (SFI), whatever link
 * mode its EEPROM loaded into AUTOC.LMS: Linux forces it (ixgbe_setup_sfp_modules_82599 writes
 * orig_autoc | LMS_10G_SERIAL, ixgbe_setup_mac_link_82599 switches LMS to 10G serial for a
 * 10G SFI link). Every other board keeps the EEPROM's mode (KX4/KR auto-negotiation on
 * backplanes, parallel XAUI/CX4): forcing 10G serial there would leave it without link. */
static void setup_link(struct ixgbe_dev *d)
{
    uint32_t autoc = rd(d, IXGBE_AUTOC) & ~IXGBE_AUTOC_AN_RESTART;
    if (is_sfp_board(d->hw.device_id))
        autoc = (autoc & ~IXGBE_AUTOC_LMS_MASK) | IXGBE_AUTOC_LMS_10G_SERIAL;
    reset_link_pipeline(d, autoc);
}

static int ring_alloc(struct ixgbe_dev *d, uint32_t n, struct aioixy_dma_mem *mem, void **ring,
                      struct aioixy_pkt_buf ***bufs)
{
    int rc = aioixy_dma_alloc(&d->dev.dma, (size_t)n * 16u, true, mem);
    if (rc)
        return rc;
    /* all ones: a descriptor the device never wrote is not mistaken for a completed one
     * (DD set) until we write the read format into it */
    memset(mem->virt, 0xff, (size_t)n * 16u);
    *ring = mem->virt;
    *bufs = calloc(n, sizeof(**bufs));
    if (!*bufs)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    return 0;
}

static void setup_rss(struct ixgbe_dev *d, uint16_t nq)
{
    for (int i = 0; i < 10; i++)
        wr(d, IXGBE_RSSRK(i), (uint32_t)rss_key[4 * i] | (uint32_t)rss_key[4 * i + 1] << 8 |
                                  (uint32_t)rss_key[4 * i + 2] << 16 | (uint32_t)rss_key[4 * i + 3] << 24);
    for (uint32_t i = 0; i < 32; i++) {
        uint32_t v = 0;
        for (uint32_t j = 0; j < 4; j++)
            v |= ((4 * i + j) % nq) << (8 * j);
        wr(d, IXGBE_RETA(i), v);
    }
    /* the hash goes into the descriptor instead of the fragment checksum */
    set_bits(d, IXGBE_RXCSUM, IXGBE_RXCSUM_PCSD);
    wr(d, IXGBE_MRQC, IXGBE_MRQC_RSSEN | IXGBE_MRQC_TCPIPV4 | IXGBE_MRQC_IPV4 |
                          IXGBE_MRQC_TCPIPV6 | IXGBE_MRQC_IPV6 | IXGBE_MRQC_UDPIPV4 |
                          IXGBE_MRQC_UDPIPV6);
}

/* RXCTRL.RXEN may only be set while the rx security block is stopped: an 82599 erratum can hang
 * the rx DMA when the unit is enabled with frames arriving (Linux ixgbe_enable_rx_dma_82599:
 * SECRXCTRL.RX_DIS, wait for SECRXSTAT.SECRX_RDY, RXEN, clear RX_DIS). Should SECRX_RDY not come
 * within the 40 ms Linux and DPDK poll (IXGBE_MAX_SECRX_POLL), receive is enabled anyway, as
 * they do ("continuing with init"): a port that never receives would be worse than the risk. */
static void rx_enable(struct ixgbe_dev *d)
{
    set_bits(d, IXGBE_SECRXCTRL, IXGBE_SECRXCTRL_RX_DIS);
    if (!poll_reg(d, IXGBE_SECRXSTAT, IXGBE_SECRXSTAT_SECRX_RDY, IXGBE_SECRXSTAT_SECRX_RDY, 40))
        fprintf(stderr, "aioixy: ixgbe %s: the rx security block did not report idle "
                "(SECRXSTAT.SECRX_RDY) within 40 ms; enabling receive anyway, as Linux does\n",
                d->dev.name);
    set_bits(d, IXGBE_RXCTRL, IXGBE_RXCTRL_RXEN);
    clear_bits(d, IXGBE_SECRXCTRL, IXGBE_SECRXCTRL_RX_DIS);
}

/* RDRXCTL on the 82599 (Linux ixgbe_setup_rdrxctl: "hardware requires some bits to be set by
 * default"): RSCACKC and FCOE_WRFIX set, RSCFRSTSIZE cleared, and CRC stripping in the DMA as
 * in HLREG0. */
static void setup_rdrxctl(struct ixgbe_dev *d)
{
    uint32_t v = rd(d, IXGBE_RDRXCTL) & ~IXGBE_RDRXCTL_RSCFRSTSIZE;
    wr(d, IXGBE_RDRXCTL, v | IXGBE_RDRXCTL_RSCACKC | IXGBE_RDRXCTL_FCOE_WRFIX | IXGBE_RDRXCTL_CRCSTRIP);
}

/* The largest frame the MAC lets in: what one rx buffer holds (frames are received into one
 * buffer each), plus the CRC it strips, at most the 82599's 15.5 KiB. Beyond 1518 bytes that
 * takes HLREG0.JUMBOEN with MAXFRS.MFS (Linux ixgbe_set_rx_buffer_len sets both). A longer
 * frame is dropped by the MAC and counted in ROC (rx_errors) instead of reaching the host as
 * a descriptor chain the driver would have to drop. */
static void setup_max_frame(struct ixgbe_dev *d, uint32_t bsize_kb)
{
    uint32_t max = bsize_kb * 1024u + 4u;
    if (max > IXGBE_RX_MAX_FRAME)
        max = IXGBE_RX_MAX_FRAME;
    uint32_t maxfrs = rd(d, IXGBE_MAXFRS) & ~IXGBE_MAXFRS_MFS_MASK;
    wr(d, IXGBE_MAXFRS, maxfrs | max << IXGBE_MAXFRS_MFS_SHIFT);
    if (max > IXGBE_FRAME_MAX_STD)
        set_bits(d, IXGBE_HLREG0, IXGBE_HLREG0_JUMBOEN);
    else
        clear_bits(d, IXGBE_HLREG0, IXGBE_HLREG0_JUMBOEN);
}

static int init_rx(struct ixgbe_dev *d, const struct aioixy_dev_config *cfg)
{
    int rc;
    uint32_t n = cfg->rx_descs ? cfg->rx_descs : DEFAULT_DESCS;
    /* 4.6.7: receive stays off while the queues are set up */
    clear_bits(d, IXGBE_RXCTRL, IXGBE_RXCTRL_RXEN);
    /* one traffic class: all 512 KB of the rx packet buffer to buffer 0 (Linux
     * ixgbe_set_rxpba with one traffic class) */
    wr(d, IXGBE_RXPBSIZE(0), IXGBE_RXPBSIZE_512KB);
    for (int i = 1; i < 8; i++)
        wr(d, IXGBE_RXPBSIZE(i), 0);
    set_bits(d, IXGBE_HLREG0, IXGBE_HLREG0_RXCRCSTRP);
    setup_rdrxctl(d);
    set_bits(d, IXGBE_FCTRL, IXGBE_FCTRL_BAM);
    uint32_t room = aioixy_mempool_data_room(d->dev.pools[0]);
    uint32_t bsize = room / 1024u > IXGBE_SRRCTL_BSIZEPKT_MAX ? IXGBE_SRRCTL_BSIZEPKT_MAX : room / 1024u;
    setup_max_frame(d, bsize);
    for (uint16_t q = 0; q < d->dev.num_rx_queues; q++) {
        struct ixgbe_rxq *rq = &d->rxq[q];
        rq->n = n;
        rq->pool = d->dev.pools[q];
        rq->reg_tail = IXGBE_RDT(q);
        if ((rc = ring_alloc(d, n, &rq->mem, (void **)&rq->ring, &rq->bufs)))
            return rc;
        /* advanced one-buffer descriptors; a full queue drops rather than stalling the others */
        uint32_t srrctl = rd(d, IXGBE_SRRCTL(q));
        srrctl &= ~(IXGBE_SRRCTL_DESCTYPE_MASK | IXGBE_SRRCTL_BSIZEPKT_MASK);
        srrctl |= IXGBE_SRRCTL_DESCTYPE_ADV_ONEBUF | IXGBE_SRRCTL_DROP_EN | bsize;
        wr(d, IXGBE_SRRCTL(q), srrctl);
        wr(d, IXGBE_RDBAL(q), (uint32_t)rq->mem.iova);
        wr(d, IXGBE_RDBAH(q), (uint32_t)(rq->mem.iova >> 32));
        wr(d, IXGBE_RDLEN(q), n * 16u);
        wr(d, IXGBE_RDH(q), 0);
        wr(d, IXGBE_RDT(q), 0);
        /* bit 12 resets to 1 but must be 0 (4.6.7; ixy and Snabb clear it); no relaxed
         * ordering of data/header writes, which could let the write-back overtake the data
         * (Linux ixgbe_start_hw_gen2 clears both) */
        clear_bits(d, IXGBE_DCA_RXCTRL(q), IXGBE_DCA_RXCTRL_RSVD12 | IXGBE_DCA_RXCTRL_DATA_WRO_EN |
                                               IXGBE_DCA_RXCTRL_HEAD_WRO_EN);
    }
    set_bits(d, IXGBE_CTRL_EXT, IXGBE_CTRL_EXT_NS_DIS);
    if (d->dev.num_rx_queues > 1)
        setup_rss(d, d->dev.num_rx_queues);
    else
        wr(d, IXGBE_MRQC, 0);
    /* fill each ring, enable the queue, wait for it to latch, then hand the buffers over */
    for (uint16_t q = 0; q < d->dev.num_rx_queues; q++) {
        struct ixgbe_rxq *rq = &d->rxq[q];
        if (aioixy_mempool_alloc_bulk(rq->pool, rq->bufs, n) != n)
            return aioixy_set_error(AIOIXY_ENOMEM, "ixgbe %s: the rx pool (%u buffers) cannot fill "
                                    "a %u-descriptor ring", d->dev.name, aioixy_mempool_size(rq->pool), n);
        for (uint32_t i = 0; i < n; i++) {
            rq->ring[i].read.pkt_addr = aioixy_pkt_data_iova(rq->bufs[i]);
            rq->ring[i].read.hdr_addr = 0;
        }
        set_bits(d, IXGBE_RXDCTL(q), IXGBE_RXDCTL_ENABLE);
        if ((rc = wait_reg(d, IXGBE_RXDCTL(q), IXGBE_RXDCTL_ENABLE, IXGBE_RXDCTL_ENABLE, 1000,
                           "an rx queue to enable")))
            return rc;
        aioixy_dma_wmb();
        wr(d, IXGBE_RDT(q), n - 1);
    }
    rx_enable(d);
    return 0;
}

static int init_tx(struct ixgbe_dev *d, const struct aioixy_dev_config *cfg)
{
    int rc;
    uint32_t n = cfg->tx_descs ? cfg->tx_descs : DEFAULT_DESCS;
    /* 4.6.8: CRC insertion and padding of short frames in hardware */
    set_bits(d, IXGBE_HLREG0, IXGBE_HLREG0_TXCRCEN | IXGBE_HLREG0_TXPADEN);
    /* all 160 KB of the tx packet buffer to buffer 0, and its threshold: the size in KB less
     * the largest frame (Linux ixgbe_set_rxpba / DPDK: size/1024 - IXGBE_TXPKT_SIZE_MAX) */
    wr(d, IXGBE_TXPBSIZE(0), IXGBE_TXPBSIZE_160KB);
    wr(d, IXGBE_TXPBTHRESH(0), IXGBE_TXPBSIZE_160KB / 1024u - IXGBE_TX_MAX_FRAME_KB);
    for (int i = 1; i < 8; i++) {
        wr(d, IXGBE_TXPBSIZE(i), 0);
        wr(d, IXGBE_TXPBTHRESH(i), 0);
    }
    /* without DCB: maximum DMA request size, and the descriptor arbiter running */
    wr(d, IXGBE_DTXMXSZRQ, 0xffff);
    clear_bits(d, IXGBE_RTTDCS, IXGBE_RTTDCS_ARBDIS);
    for (uint16_t q = 0; q < d->dev.num_tx_queues; q++) {
        struct ixgbe_txq *tq = &d->txq[q];
        tq->n = n;
        tq->reg_tail = IXGBE_TDT(q);
        tq->max_len = d->dev.max_tx_len;
        if ((rc = ring_alloc(d, n, &tq->mem, (void **)&tq->ring, &tq->bufs)))
            return rc;
        memset(tq->ring, 0, (size_t)n * 16u);
        wr(d, IXGBE_TDBAL(q), (uint32_t)tq->mem.iova);
        wr(d, IXGBE_TDBAH(q), (uint32_t)(tq->mem.iova >> 32));
        wr(d, IXGBE_TDLEN(q), n * 16u);
        /* no relaxed ordering of descriptor write-backs (Linux ixgbe_start_hw_gen2) */
        clear_bits(d, IXGBE_DCA_TXCTRL(q), IXGBE_DCA_TXCTRL_DESC_WRO_EN);
        /* prefetch when fewer than 36 descriptors are cached, 8 at a time; write back each
         * RS descriptor at once (WTHRESH 0), which is what tx_reclaim relies on */
        wr(d, IXGBE_TXDCTL(q), IXGBE_TXDCTL_PTHRESH(36) | IXGBE_TXDCTL_HTHRESH(8) |
                                   IXGBE_TXDCTL_WTHRESH(0));
    }
    set_bits(d, IXGBE_DMATXCTL, IXGBE_DMATXCTL_TE);
    for (uint16_t q = 0; q < d->dev.num_tx_queues; q++) {
        wr(d, IXGBE_TDH(q), 0);
        wr(d, IXGBE_TDT(q), 0);
        set_bits(d, IXGBE_TXDCTL(q), IXGBE_TXDCTL_ENABLE);
        if ((rc = wait_reg(d, IXGBE_TXDCTL(q), IXGBE_TXDCTL_ENABLE, IXGBE_TXDCTL_ENABLE, 1000,
                           "a tx queue to enable")))
            return rc;
    }
    return 0;
}

/* The options irq=msix|poll and itr=US. Returns 0 (d->n_irq set when irq=msix) or an error. */
static int irq_options(struct ixgbe_dev *d, const char *options, uint32_t *itr_us)
{
    char v[AIOIXY_OPT_VALUE_MAX + 1];
    if (aioixy_opt_get(options, "irq", v, sizeof(v))) {
        if (strcmp(v, "msix") == 0)
            d->n_irq = d->dev.num_rx_queues > d->dev.num_tx_queues ? d->dev.num_rx_queues
                                                                   : d->dev.num_tx_queues;
        else if (strcmp(v, "poll") != 0)
            return aioixy_set_error(AIOIXY_EINVAL, "ixgbe %s: irq=%s: expected irq=msix (sleep on "
                                    "MSI-X interrupts) or irq=poll (the default)", d->dev.name, v);
    }
    uint64_t us = DEFAULT_ITR_US;
    int rc = aioixy_opt_u64(options, "itr", 0, MAX_ITR_US, &us, "ixgbe");
    if (rc < 0)
        return rc;
    if (rc > 0 && !d->n_irq)
        return aioixy_set_error(AIOIXY_EINVAL, "ixgbe %s: itr= is the interrupt throttling "
                                "interval: it needs irq=msix", d->dev.name);
    *itr_us = (uint32_t)us;
    return 0;
}

/* 4.6.3.1 / 7.3.1.2 with MSI-X: eventfds routed to vectors 0..n-1 first (the message needs a
 * target before a cause may fire), then GPIE (MSI-X mode, auto-mask for MSI-X, PBA support),
 * IVAR (rx and tx causes of queue q to vector q), EITR, auto-clear and auto-mask of those
 * vectors, and EIMS last. */
static int setup_irq(struct ixgbe_dev *d, uint32_t itr_us)
{
    if (!d->hw.irq_route)
        return aioixy_set_error(AIOIXY_EINVAL, "ixgbe %s: irq=msix needs the device bound to "
                                "vfio-pci (open with vfio=True): sysfs access cannot receive "
                                "interrupts", d->dev.name);
    for (uint32_t v = 0; v < d->n_irq; v++) {
        d->irq_fd[v] = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->irq_fd[v] < 0) {
            int e = errno;
            d->n_irq = v; /* close what was made */
            return aioixy_set_error(AIOIXY_ENOMEM, "ixgbe %s: eventfd: %s", d->dev.name, strerror(e));
        }
    }
    int rc = d->hw.irq_route(d->hw.arg, d->n_irq, d->irq_fd);
    if (rc)
        return rc;
    d->irq_routed = true;
    wr(d, IXGBE_GPIE, rd(d, IXGBE_GPIE) | IXGBE_GPIE_MSIX_MODE | IXGBE_GPIE_EIAME |
                          IXGBE_GPIE_PBA_SUPPORT);
    for (uint32_t i = 0; i < (d->n_irq + 1) / 2; i++) {
        uint32_t ivar = 0;
        for (uint32_t k = 0; k < 2; k++) {
            uint32_t q = 2 * i + k;
            if (q < d->dev.num_rx_queues)
                ivar |= (q | IXGBE_IVAR_ALLOC_VAL) << (16u * k);
            if (q < d->dev.num_tx_queues)
                ivar |= (q | IXGBE_IVAR_ALLOC_VAL) << (16u * k + 8u);
        }
        wr(d, IXGBE_IVAR(i), ivar);
    }
    uint32_t mask = (1u << d->n_irq) - 1u;
    for (uint32_t v = 0; v < d->n_irq; v++)
        wr(d, IXGBE_EITR(v), ((itr_us / 2u) << 3) & IXGBE_EITR_ITR_MASK);
    wr(d, IXGBE_EIAC, mask);
    wr(d, IXGBE_EIAM, mask);
    wr(d, IXGBE_EIMS, mask);
    return 0;
}

int aioixy_ixgbe_attach(const char *name, const struct ixgbe_backing *backing,
                        const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    uint32_t rxd = cfg->rx_descs ? cfg->rx_descs : DEFAULT_DESCS;
    uint32_t txd = cfg->tx_descs ? cfg->tx_descs : DEFAULT_DESCS;
    if (rxd < 32 || rxd > MAX_DESCS || (rxd & (rxd - 1)) || txd < 32 || txd > MAX_DESCS || (txd & (txd - 1))) {
        if (backing->release)
            backing->release(backing->arg);
        return aioixy_set_error(AIOIXY_EINVAL, "ixgbe %s: rx_descs/tx_descs must be powers of two "
                                "in 32..%u (got %u/%u)", name, MAX_DESCS, rxd, txd);
    }
    struct ixgbe_dev *d = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*d) + 63) & ~(size_t)63);
    if (!d) {
        if (backing->release)
            backing->release(backing->arg);
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    }
    memset(d, 0, sizeof(*d));
    for (int v = 0; v < AIOIXY_MAX_QUEUES; v++)
        d->irq_fd[v] = -1;
    d->hw = *backing;
    pthread_mutex_init(&d->lock, NULL);
    d->dev.ops = &ixgbe_ops;
    snprintf(d->dev.name, sizeof(d->dev.name), "%s", name);
    snprintf(d->dev.driver, sizeof(d->dev.driver), "ixgbe");
    d->dev.num_rx_queues = cfg->rx_queues;
    d->dev.num_tx_queues = cfg->tx_queues;
    d->dev.dma = backing->dma;
    /* 82599 transmit without TSO: at least 17 bytes, at most 15.5 KiB per packet */
    d->dev.min_tx_len = IXGBE_TX_MIN_LEN;
    d->dev.max_tx_len = IXGBE_TX_MAX_LEN;

    struct aioixy_dev_config pcfg = *cfg;
    if (!pcfg.buf_size || pcfg.buf_size < IXGBE_MIN_BUF_SIZE)
        pcfg.buf_size = IXGBE_MIN_BUF_SIZE;
    if (!pcfg.pool_bufs)
        pcfg.pool_bufs = AIOIXY_DEFAULT_POOL_BUFS;
    if (pcfg.pool_bufs < rxd + 64) {
        ixgbe_close(&d->dev);
        return aioixy_set_error(AIOIXY_EINVAL, "ixgbe %s: pool_size=%u is too small for %u rx "
                                "descriptors (needs at least %u)", name, pcfg.pool_bufs, rxd, rxd + 64);
    }
    int rc;
    uint32_t itr_us = 0;
    if ((rc = irq_options(d, cfg->options, &itr_us))) {
        d->n_irq = 0;
        ixgbe_close(&d->dev);
        return rc;
    }
    if ((rc = aioixy_dev_create_pools(&d->dev, &pcfg)))
        goto fail;
    if ((rc = reset_and_wait(d)))
        goto fail;
    uint32_t ral = rd(d, IXGBE_RAL(0)), rah = rd(d, IXGBE_RAH(0));
    for (int i = 0; i < 4; i++)
        d->dev.mac[i] = (uint8_t)(ral >> (8 * i));
    d->dev.mac[4] = (uint8_t)rah;
    d->dev.mac[5] = (uint8_t)(rah >> 8);
    setup_link(d);
    pthread_mutex_lock(&d->lock);
    harvest_stats(d); /* clear whatever the counters held before us */
    memset(&d->totals, 0, sizeof(d->totals));
    pthread_mutex_unlock(&d->lock);
    if ((rc = init_rx(d, &pcfg)) || (rc = init_tx(d, &pcfg)))
        goto fail;
    if (d->n_irq && (rc = setup_irq(d, itr_us)))
        goto fail;
    ixgbe_promisc(&d->dev, cfg->promisc);
    /* wait for link, but a cable that is not plugged in is not an error: link() tells */
    unsigned timeout = cfg->link_timeout_ms ? cfg->link_timeout_ms : AIOIXY_DEFAULT_LINK_TIMEOUT_MS;
    for (unsigned t = 0; t < timeout; t += 10) {
        if (rd(d, IXGBE_LINKS) & IXGBE_LINKS_UP)
            break;
        sleep_ms(10);
    }
    *out = &d->dev;
    return 0;
fail:
    ixgbe_close(&d->dev);
    return rc;
}

/* ---------------------------------------------------------------- real hardware: PCI open */

static void pci_release(void *arg)
{
    struct aioixy_pci_claim *c = arg;
    aioixy_pci_unclaim(c);
    free(c);
}

static int pci_irq_route(void *arg, uint32_t n, const int *fds)
{
    struct aioixy_pci_claim *c = arg;
    if (n == 0) {
        aioixy_vfio_irq_disable(&c->vfio);
        return 0;
    }
    return aioixy_vfio_irq_enable(&c->vfio, n, fds);
}

static int ixgbe_pci_open(const char *addr, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    struct aioixy_pci_claim *c = calloc(1, sizeof(*c));
    if (!c)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    int rc = aioixy_pci_claim(addr, 0, IXGBE_BAR0_SIZE, cfg->vfio, cfg->force, c);
    if (rc) {
        free(c);
        return rc;
    }
    struct ixgbe_backing back = {
        .mmio = {.base = c->bar},
        .device_id = c->info.device,
        .dma = c->dma,
        .release = pci_release,
        /* interrupts reach user space through VFIO only */
        .irq_route = c->access == AIOIXY_PCI_VFIO ? pci_irq_route : NULL,
        .arg = c,
    };
    return aioixy_ixgbe_attach(addr, &back, cfg, out);
}

/* 82599 variants (vendor 8086), from the datasheet's device id table */
static const struct aioixy_pci_id ixgbe_ids[] = {
    {0x8086, 0x10F7}, /* KX4 */
    {0x8086, 0x1514}, /* KX4 mezzanine */
    {0x8086, 0x1517}, /* KR */
    {0x8086, 0x10F8}, /* combined backplane */
    {0x8086, 0x10F9}, /* CX4 */
    {0x8086, 0x10FB}, /* SFP+ (X520) */
    {0x8086, 0x10FC}, /* XAUI */
    {0x8086, 0x1507}, /* SFP+ EM */
    {0x8086, 0x154D}, /* SFP+ SF2 */
    {0x8086, 0x1557}, /* 82599EN SFP+ (single port) */
    {0x8086, 0x154A}, /* SFP+ SF QP (4-port) */
    {0x8086, 0x1558}, /* QSFP+ SF QP */
    /* not 0x151C (82599 T3 LOM, 10GBASE-T): its external copper PHY has to be brought up over
     * MDIO (Linux's ixgbe_phy / TN1010 setup), which this driver does not do; claiming it
     * would promise a link it cannot bring up (docs/ixgbe.md) */
    {0, 0},
};

static const char *const ixgbe_options[] = {"irq", "itr", NULL};

static struct aioixy_driver ixgbe_driver = {
    .name = "ixgbe",
    .pci_ids = ixgbe_ids,
    .open = ixgbe_pci_open,
    .options = ixgbe_options,
};
AIOIXY_REGISTER_DRIVER(ixgbe_driver)
