/* sim-82599: a behavioural model of the Intel 82599, so the unchanged ixgbe driver runs (and is
 * tested) without the card.
 *
 * What is modelled, each from the datasheet's description of the register or engine:
 *  - the register file of each port (a 128 KiB BAR0 in a shared memfd mapping), reached through
 *    read/write transactions (see ixgbe.h for why);
 *  - CTRL.RST: registers back to their defaults, the bit self-clears after 1 ms; any access in
 *    that millisecond is a fault (4.6.3.2); EEC.ARD and RDRXCTL.DMAIDONE come up afterwards;
 *  - the board (option id=, default 10FB): its EEPROM link mode in AUTOC/AUTOC2; AN_RESTART
 *    (self-clearing) brings the link up only in a mode the medium supports and while the
 *    AUTOC2 link-disable bits are clear (media per id as Linux ixgbe_get_media_type_82599);
 *  - reset only after the stop sequence: queues and RXEN off, queues stopped with SWFLSH,
 *    CTRL.GIO_DIS with STATUS.GIO clear - or, when GIO does not clear (option gio=MS|never),
 *    two resets in a row (datasheet 5.2.5.3.2, Linux ixgbe_stop_adapter_generic /
 *    ixgbe_disable_pcie_master); CTRL.RST keeps a link that is up, LNK_RST takes it down and
 *    is a fault with the link up (Linux ixgbe_reset_hw_82599);
 *  - the rx-enable erratum: RXEN under traffic without SECRXCTRL.RX_DIS + SECRXSTAT.SECRX_RDY
 *    hangs the rx DMA (Linux ixgbe_enable_rx_dma_82599); SECRX_RDY late or never (option
 *    secrx=MS|never); RDRXCTL must have RSCACKC/FCOE_WRFIX set, RSCFRSTSIZE clear at RXEN;
 *  - the EEPROM's link mode per board, or another (option lms=N); ANLP1.AN_STATE leaves 0 at
 *    AN_RESTART;
 *  - the size limit: frames over MAXFRS.MFS (HLREG0.JUMBOEN) or 1518 bytes dropped, in ROC;
 *    bad CRCs from the generator (option crcerr=N) dropped into CRCERRS, or stored with RXE
 *    under FCTRL.SBP;
 *  - the 82598-compatible register aliases (SRRCTL, DCA_RXCTRL, RAL/RAH of the first 16);
 *  - DCA_RXCTRL bit 12 (must be 0: ixy, Snabb) and the relaxed-ordering bits (Linux
 *    ixgbe_start_hw_gen2) come up set and must be cleared before a queue is enabled; packet
 *    buffer sizes and TXPBTHRESH checked at RXEN / DMATXCTL.TE (Linux ixgbe_set_rxpba);
 *  - RXDCTL/TXDCTL.ENABLE latch 100 us after the write, and only if the ring registers make
 *    sense at that moment; RDH/TDH move as descriptors are processed;
 *  - transmit: advanced data descriptors from TDH to TDT, gathered until EOP, padded to 60
 *    bytes (HLREG0.TXPADEN), DD written back when RS is set;
 *  - receive: L2 filter (RAL/RAH(0), FCTRL.BAM/UPE/MPE), RSS (Toeplitz hash over the fields
 *    MRQC enables, 128-entry RETA), advanced one-buffer descriptors written back with DD, EOP,
 *    length, RSS type and hash (RXCSUM.PCSD), packet type and checksum status (IPCS/IPE,
 *    L4CS/L4E, and L4E for UDP checksum 0: the erratum of Linux ixgbe_rx_checksum), frames
 *    larger than a buffer split over a descriptor chain with EOP on the last (7.1.6);
 *  - statistics: GPRC/GORC (good frames including missed ones: DPDK ixgbe_read_stats_registers,
 *    Linux subtracts MPC), GPTC, GOTC (octets include the 4-byte CRC), MPC, QPRC/QBRC/QPRDC per
 *    RQSMR statistics counter (QPRDC: no descriptor with SRRCTL.DROP_EN), QPTC, all clear on
 *    read, the high octet halves latched by reading the low halves;
 *  - the wire: the two ports of a card cabled together (wire=cable, the default), a port cabled
 *    to itself (wire=loop), or a port facing a traffic generator (wire=gen: numbered UDP frames
 *    over `flows` flows, `count` of them or forever, at line rate). With flow_control the
 *    receiving side pushes back (802.3x PAUSE) instead of dropping when its ring is full.
 * What is caught (a fault is recorded, the offending action is refused, tests fail):
 *    descriptor or ring addresses outside DMA memory, a tail beyond the ring, a queue enabled
 *    before its ring registers (or tx queues before DMATXCTL.TE), ring registers changed while
 *    the queue runs, register access during reset, unknown descriptor types, bad lengths
 *    (tx frames under 17 bytes: Linux ixgbe_xmit_frame_ring pads to 17), and the mistakes
 *    listed with the behaviours above.
 * DMA: IOVA = virtual address; an address is valid only inside a live DMA_ANON region.
 * One model thread per card does the engines' work; it holds the card lock per round.
 */
#include "sim_internal.h"
#include "frames.h"
#include "sim82599.h"
#include "ixgbe.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static pthread_mutex_t cards_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sim_card *cards;
static _Atomic uint64_t total_faults;

void sim_fault(struct sim_port *p, const char *fmt, ...)
{
    struct sim_card *c = p->card;
    atomic_fetch_add_explicit(&total_faults, 1, memory_order_relaxed);
    if (c->nfaults >= SIM_MAX_FAULTS) {
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

/* ------------------------------------------------------------------ model thread */

static void *card_thread(void *arg)
{
    struct sim_card *c = arg;
    unsigned idle = 0;
    while (!atomic_load_explicit(&c->stop, memory_order_acquire)) {
        uint32_t work = 0;
        pthread_mutex_lock(&c->lock);
        uint64_t now = sim_now_ns();
        for (int i = 0; i < SIM_PORTS; i++) {
            struct sim_port *p = &c->port[i];
            if (!p->attached || sim_in_reset(p, now))
                continue;
            sim_advance(p, now);
            if (p->irq_held)
                sim_irq_advance(p, now);
            /* CTRL.GIO_DIS: no new DMA requests, so no descriptor fetch either */
            if (!(sim_reg(p, IXGBE_CTRL) & IXGBE_CTRL_GIO_DIS))
                for (int q = 0; q < SIM_QUEUES; q++)
                    if (p->tx[q].enabled)
                        work += sim_tx_queue(p, q);
            if (i == 0 && c->peer)
                work += sim_from_peer_dev(c);
            if (c->wire == WIRE_GEN && (sim_reg(p, IXGBE_LINKS) & IXGBE_LINKS_UP))
                work += sim_generate(p, now);
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

/* the card options (the registry checks them for aioixy.open; parse_options again for
 * aioixy_sim_attach's direct callers, sim.RegisterAccess) */
static const char *const sim_options[] = {"wire", "flows", "size", "count", "peer", "id", "lms",
                                          "secrx", "gio", "crcerr",
                                          /* the driver's (ixgbe.c), passed on to it */
                                          "irq", "itr", NULL};

/* A delay option in milliseconds, or "never": how long the model makes a driver wait. */
static int delay_option(const char *options, const char *key, uint64_t dflt_ns, uint64_t *out)
{
    char v[AIOIXY_OPT_VALUE_MAX + 1];
    *out = dflt_ns;
    if (!aioixy_opt_get(options, key, v, sizeof(v)))
        return 0;
    if (strcmp(v, "never") == 0) {
        *out = SIM_NEVER;
        return 0;
    }
    uint64_t ms;
    int rc = aioixy_opt_u64(options, key, 0, 60000, &ms, "sim-82599");
    if (rc < 0)
        return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: %s=%s: expected milliseconds (0..60000) "
                                "or never", key, v);
    *out = ms * 1000000ull;
    return 0;
}

/* The 82599 device ids (those the driver claims) and what each board has behind the MAC, as
 * Linux's ixgbe_get_media_type_82599 sorts them. */
static const struct {
    uint16_t id;
    enum sim_medium medium;
} id_media[] = {
    {0x10F7, MEDIUM_KX4},  {0x1514, MEDIUM_KX4},  {0x1517, MEDIUM_KR},   {0x10F8, MEDIUM_BACKPLANE},
    {0x10F9, MEDIUM_CX4},  {0x10FB, MEDIUM_SFP},  {0x10FC, MEDIUM_XAUI}, {0x1507, MEDIUM_SFP},
    {0x154D, MEDIUM_SFP},  {0x1557, MEDIUM_SFP},  {0x154A, MEDIUM_SFP},  {0x1558, MEDIUM_SFP},
    /* no 151C (10GBASE-T): its external PHY needs a bring-up the driver does not do, so the
     * driver does not claim it (docs/ixgbe.md) and the model does not play it */
};

bool sim_medium_of(uint16_t dev_id, enum sim_medium *out)
{
    for (size_t i = 0; i < sizeof(id_media) / sizeof(id_media[0]); i++)
        if (id_media[i].id == dev_id) {
            *out = id_media[i].medium;
            return true;
        }
    return false;
}

static int parse_options(struct sim_card *c, const char *options, bool flow_control)
{
    char v[AIOIXY_OPT_VALUE_MAX + 1];
    int rc = aioixy_opt_check(options, sim_options, "sim-82599");
    if (rc)
        return rc;
    c->dev_id = 0x10FB; /* X520 SFP+ */
    c->medium = MEDIUM_SFP;
    if (aioixy_opt_get(options, "id", v, sizeof(v))) {
        char *end = NULL;
        unsigned long id = strtoul(v, &end, 16);
        if (!*v || *end || id > 0xffff || !sim_medium_of((uint16_t)id, &c->medium))
            return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: id=%s: expected an 82599 device id "
                                    "the driver claims (hex, e.g. 10FB SFP+, 10F7 KX4, 10F9 CX4; "
                                    "not 151C 10GBASE-T)", v);
        c->dev_id = (uint16_t)id;
    }
    uint64_t lms;
    c->eeprom_lms = -1;
    if ((rc = aioixy_opt_u64(options, "lms", 0, 7, &lms, "sim-82599")) < 0)
        return rc;
    if (rc)
        c->eeprom_lms = (int)lms;
    if ((rc = delay_option(options, "secrx", SIM_SECRX_NS, &c->secrx_ns)) ||
        (rc = delay_option(options, "gio", 0, &c->gio_ns)))
        return rc;
    c->wire = WIRE_CABLE;
    c->gen_flows = 1;
    c->gen_size = AIOIXY_FRAME_MIN;
    c->gen_count = 0;
    c->flow_control = flow_control;
    if (aioixy_opt_get(options, "wire", v, sizeof(v))) {
        if (strcmp(v, "cable") == 0) c->wire = WIRE_CABLE;
        else if (strcmp(v, "loop") == 0) c->wire = WIRE_LOOP;
        else if (strcmp(v, "gen") == 0) c->wire = WIRE_GEN;
        else return aioixy_set_error(AIOIXY_EINVAL, "sim-82599: wire=%s: expected cable, loop or gen", v);
    }
    uint64_t n;
    if ((rc = aioixy_opt_u64(options, "flows", 1, 65536, &n, "sim-82599")) < 0)
        return rc;
    if (rc)
        c->gen_flows = (uint32_t)n;
    /* up to jumbo size: beyond a buffer the model writes a descriptor chain */
    if ((rc = aioixy_opt_u64(options, "size", 60, 9018, &n, "sim-82599")) < 0)
        return rc;
    if (rc)
        c->gen_size = (uint32_t)n;
    if ((rc = aioixy_opt_u64(options, "count", 1, UINT64_MAX, &n, "sim-82599")) < 0)
        return rc;
    if (rc)
        c->gen_count = n;
    c->gen_crcerr = 0;
    if ((rc = aioixy_opt_u64(options, "crcerr", 2, 65536, &n, "sim-82599")) < 0)
        return rc;
    if (rc)
        c->gen_crcerr = (uint32_t)n;
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
        rc = aioixy_dev_open(v, &pc, &c->peer);
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
        for (int v = 0; v < SIM_QUEUES; v++)
            p->msix_fd[v] = -1;
        p->regs = (uint32_t *)((uint8_t *)c->regmap + (size_t)IXGBE_BAR0_SIZE * i);
        const uint8_t mac[6] = {0x02, 0x82, 0x59, (uint8_t)(h >> 16), (uint8_t)(h >> 8),
                                (uint8_t)((h & 0xf0) | (uint32_t)i)};
        memcpy(p->mac, mac, 6);
        sim_port_defaults(p);
        /* power-on: the EEPROM has been read and DMA initialized */
        sim_reg_set(p, IXGBE_EEC, IXGBE_EEC_ARD);
        sim_reg_set(p, IXGBE_RDRXCTL, IXGBE_RDRXCTL_DMAIDONE);
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
        p->msix_fd[q] = -1; /* the owner closes its eventfds after this */
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
        for (uint32_t i = 0; i < c->nfaults && i < SIM_MAX_FAULTS; i++) {
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

/* the register-access hooks the driver calls instead of touching BAR0 memory */
static uint32_t sim_hook_read(void *ctx, uint32_t reg)
{
    return aioixy_sim_mmio_read(ctx, reg);
}

static void sim_hook_write(void *ctx, uint32_t reg, uint32_t val)
{
    aioixy_sim_mmio_write(ctx, reg, val);
}

/* the MSI-X message targets of the driver's vectors (irq=msix) */
static int sim_irq_route(void *arg, uint32_t n, const int *fds)
{
    for (uint32_t v = 0; v < 16; v++) {
        int rc = aioixy_sim_msix_attach(arg, v, v < n ? fds[v] : -1);
        if (rc)
            return rc;
    }
    return n > 16 ? aioixy_set_error(AIOIXY_EINVAL, "sim-82599: %u MSI-X vectors (the model "
                                     "plays 16)", n) : 0;
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
        .mmio = {.read32 = sim_hook_read, .write32 = sim_hook_write, .ctx = p},
        .device_id = c->dev_id,
        .dma = {.kind = DMA_ANON, .vfio_container_fd = -1},
        .release = sim_release,
        .irq_route = sim_irq_route,
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
    if (after > before && before < SIM_MAX_FAULTS)
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
    .options = sim_options,
};
AIOIXY_REGISTER_DRIVER(sim_driver)
