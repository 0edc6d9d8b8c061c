/* The device interface every driver implements (null, pair, virtio, ixgbe, the 82599 model).
 *
 * Threading contract (the poller layer guarantees it):
 *  - rx_batch(dev, q, ...) is only ever called by the poller thread of rx queue q;
 *  - tx_batch(dev, q, ...) only by the poller thread of tx queue q (which may be the same
 *    thread as rx queue q: one poller per queue index drives both directions; a poll group's
 *    thread also drives queues of other devices, one call at a time);
 *  - read_stats / link_status / set_promisc may be called from any other thread concurrently
 *    with the pollers: drivers protect whatever they share with a mutex (never on rx/tx);
 *  - close is called once, after every poller has been joined.
 * No heap allocation and no syscalls on rx_batch / tx_batch except device notifications
 * (e.g. a virtio queue notify or an MMIO tail write).
 */
#ifndef AIOIXY_DEVICE_H
#define AIOIXY_DEVICE_H

#include "common.h"
#include "dma.h"
#include "mempool.h"
#include "options.h"

/* Limits and defaults of the device options. These are the only copies: the port layer, the
 * drivers and Python's aioixy.config all read them (Python through the cdef). */
#define AIOIXY_MAX_QUEUES 16
#define AIOIXY_MAX_BATCH 512
#define AIOIXY_MAX_DESCS 65536u            /* rx_descs / tx_descs (0 = driver default) */
#define AIOIXY_MIN_POOL_BUFS 64u           /* a pool smaller than a batch or two is a mistake */
#define AIOIXY_DEFAULT_POOL_BUFS 4096u
/* The largest device ring a driver picks when rx_descs / tx_descs are 0 (pair's wire 1024, ixgbe
 * 512, legacy virtio the device's queue size, 256 under QEMU): what aioixy.config counts for
 * them when it sizes a pool from the rings. */
#define AIOIXY_DEFAULT_DESCS_MAX 1024u
#define AIOIXY_DEFAULT_LINK_TIMEOUT_MS 10000u

/* Open-time configuration, filled by the port layer from the Python options. */
/* One rule of a divert set (kernel ports; bus/divert.h): RuleSet semantics, IPv4 only. */
struct aioixy_divert_rule {
    uint32_t src, src_mask;    /* host order; mask 0: any source */
    uint32_t dst, dst_mask;
    int32_t proto;             /* -1: any */
    int32_t dport;             /* -1: any (needs proto 6 or 17 otherwise) */
    uint8_t allow;             /* 1: divert to the port, 0: leave to the kernel */
};
#define AIOIXY_DIVERT_MAX_RULES 256

struct aioixy_dev_config {
    uint16_t rx_queues;        /* >= 1 */
    uint16_t tx_queues;        /* >= 1 */
    uint32_t rx_descs;         /* device rx ring size (descriptors); 0 = driver default */
    uint32_t tx_descs;         /* device tx ring size; 0 = driver default */
    uint32_t pool_bufs;        /* buffers per queue mempool; 0 = AIOIXY_DEFAULT_POOL_BUFS */
    uint32_t buf_size;         /* buffer size, power of two; 0 = AIOIXY_DEFAULT_BUF_SIZE (a driver
                                * may raise it to what its hardware needs: see port_info) */
    uint32_t link_timeout_ms;  /* how long open() waits for link (hardware); 0 = the default */
    bool force;                /* take a NIC even though its interface is up with addresses */
    bool promisc;              /* start in promiscuous mode */
    bool vfio;                 /* prefer VFIO: whenever the device has an IOMMU group */
    /* software devices */
    uint32_t pkt_size;         /* null: generated frame size (AIOIXY_FRAME_MIN..data room), 0 = min */
    bool flow_control;         /* pair: a full wire pushes back on the sender instead of dropping */
    /* kernel ports */
    bool tx_only;              /* the port never receives (rx=False): take nothing from the
                                * interface (xdp: attaches no program at all) */
    bool fix_checksums;        /* xdp: complete partial TCP/UDP checksums on rx (bus/kframe.h) */
    bool divert;               /* take only what divert_rules allow (xdp:, packet:) */
    const struct aioixy_divert_rule *divert_rules; /* read at open only */
    uint32_t divert_count;
    bool divert_default;       /* the verdict when no rule matches (and for non-IPv4 frames) */
    /* free-form "key=value,key=value" driver options (e.g. "rate=1000" or model wiring) */
    const char *options;
};

#define AIOIXY_STATS_EXTRA 12
struct aioixy_stat_extra {
    char name[32];
    uint64_t value;
};

struct aioixy_dev_stats {
    /* cumulative since open; hardware counters where the device has them */
    uint64_t rx_packets, rx_bytes;
    uint64_t tx_packets, tx_bytes;
    uint64_t rx_missed;   /* dropped by the device for lack of rx descriptors / buffers */
    uint64_t rx_errors;
    uint64_t tx_errors;
    uint64_t rx_csum_errors; /* delivered with a bad IPv4 or TCP/UDP checksum (see rx_flags) */
    /* kernel-backed ports: the AF_XDP socket runs zero-copy (the NIC DMAs into our buffers) */
    bool zero_copy;
    /* driver-specific counters by name (e.g. AF_XDP's XDP_STATISTICS), shown as a dict */
    uint32_t num_extra;
    struct aioixy_stat_extra extra[AIOIXY_STATS_EXTRA];
};

struct aioixy_link {
    bool up;
    uint32_t speed_mbps;  /* 0 when unknown / down */
};

struct aioixy_dev;

struct aioixy_dev_ops {
    const char *driver; /* "null", "pair", "virtio", "ixgbe", ... */
    /* Receive up to n packets into bufs (the driver refills its ring from its rx mempool).
     * Ownership of the returned buffers passes to the caller. Returns the count (0..n). */
    uint32_t (*rx_batch)(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n);
    /* Queue up to n packets for transmit; returns how many were accepted (a prefix of bufs).
     * Accepted buffers belong to the driver, which frees them (to their home pools) once sent.
     * Also reclaims completed transmissions. Called with n == 0 just to reclaim. */
    uint32_t (*tx_batch)(struct aioixy_dev *dev, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n);
    void (*read_stats)(struct aioixy_dev *dev, struct aioixy_dev_stats *out);
    void (*link_status)(struct aioixy_dev *dev, struct aioixy_link *out);
    int (*set_promisc)(struct aioixy_dev *dev, bool on);   /* 0 or -AIOIXY_E* */
    /* Optional: what queue q's poller may sleep on. Called by that poller, on its thread, each
     * time it has been idle long enough to sleep, after it announced the sleep on its doorbell
     * (so a device that rings the doorbell and re-checks its rx source here loses no wake-up).
     * Return an fd to sleep on in poll() and set *events (POLLIN for received packets; add
     * POLLOUT whenever tx_batch last refused packets for lack of room, or the poller would only
     * notice room on its 100 ms safety timeout), or one of the AIOIXY_POLL_* answers below.
     * The driver may do its pre-sleep work here (e.g. a wake-up syscall the kernel asked for).
     * Python enqueuing tx rings the doorbell whatever the device. NULL: AIOIXY_POLL_TIMED. */
    int (*poll_fd)(struct aioixy_dev *dev, uint16_t q, short *events);
    /* Optional, with poll_fd: poll() reported POLLERR/POLLHUP/POLLNVAL on that fd (queue q's
     * poller, on its thread). Clear what can be cleared (a socket's pending error) and find out
     * what it means (the link went down; the interface is gone: aioixy_dev_set_gone). The
     * poller then pauses 1 ms, so even an error that stays never makes it spin. */
    void (*poll_error)(struct aioixy_dev *dev, uint16_t q);
    /* Optional. Called in a forked child (which has none of the pollers) for a device its
     * parent has open: close the child's copies of the device's kernel objects (sockets, their
     * mappings), which would otherwise keep them alive after the parent closed the port (a
     * reopen in the parent: busy until the child exits). Only close()/munmap(): no lock, no
     * free, no state the parent shares (pools, rings in shared memory). */
    void (*forget_after_fork)(struct aioixy_dev *dev);
    /* Stop the device, return every buffer it holds to its pool, release its pools
     * (aioixy_dev_release_pools) and free dev itself. */
    void (*close)(struct aioixy_dev *dev);
};

/* What poll_fd may answer besides an fd. */
#define AIOIXY_POLL_TIMED (-1)    /* nothing will signal: take the timed back-off */
#define AIOIXY_POLL_DOORBELL (-2) /* no rx work now; the device rings dev->doorbell[q] when some
                                   * arrives (e.g. pair: the peer's tx rings it) */
#define AIOIXY_POLL_RX_READY (-3) /* rx work is there now: do not sleep */

/* A poller thread's doorbell: its kick eventfd and the word it announces its sleep with. Who
 * gives the poller work (Python enqueuing tx, a pair peer putting frames on the wire) rings it
 * after publishing the work; the ring costs one RMW and writes the eventfd only if the poller
 * announced a sleep (the protocol of port.c). One doorbell per poller, shared by every queue it
 * serves (a poll group serves several ports). */
struct aioixy_doorbell {
    _Atomic uint32_t sleeping AIOIXY_CACHE_ALIGNED;
    int fd;
};
void aioixy_doorbell_ring(struct aioixy_doorbell *bell);

struct aioixy_dev {
    const struct aioixy_dev_ops *ops;
    char name[96];            /* what the user passed to open */
    char driver[16];
    uint16_t num_rx_queues, num_tx_queues;
    uint8_t mac[6];
    bool promisc;
    struct aioixy_dma_ctx dma;
    /* What tx_batch may be given, checked by the port layer when Python enqueues (so a bad
     * packet is refused in the caller's hands, never written to a descriptor): lengths in
     * [min_tx_len, max_tx_len] and buffers from pools this device can DMA from
     * (aioixy_mempool_dma_reachable with `dma`); with tx_own_pools, only from its own pools.
     * Set by the driver's open; 0 means "no limit of its own" (1 and the buffer size). */
    uint32_t min_tx_len;
    _Atomic uint32_t max_tx_len; /* a driver may lower or raise it later (the MTU changed) */
    bool tx_own_pools;
    /* Set once (aioixy_dev_set_gone), from any thread, when the device disappeared under the
     * port (a kernel interface deleted or moved away): the port layer then refuses tx with
     * -AIOIXY_EGONE and `gone_msg`, drops what is queued (counted in tx_errors) and wakes
     * whoever waits. Nothing ever clears it: a re-created interface is another device. */
    _Atomic int gone; /* 0; 1 while the first caller writes gone_msg; 2 once it is set */
    /* rx queues of the device that a port on all its queues would take but this one leaves to
     * someone else (an xdp: port on fewer queues than its interface has: frames on the others
     * go to the kernel). 0 when the port takes them all or names the queue it wants. */
    uint16_t rx_queues_left;
    char gone_msg[192];
    /* one pool per queue index (max(rx, tx) queues), created by the driver with
     * aioixy_dev_create_pools() once its DMA context is ready */
    uint16_t num_pools;
    struct aioixy_mempool *pools[AIOIXY_MAX_QUEUES];
    /* The doorbell of the poller serving queue q, set by the port layer after open and before
     * that poller runs; it outlives the device (the port releases its pollers after close).
     * NULL until set: a driver then has nobody to wake. */
    struct aioixy_doorbell *_Atomic doorbell[AIOIXY_MAX_QUEUES];
};

/* Open a device by name: "null", "null:<opts>", "pair:<name>:<end>", a PCI address
 * "0000:01:00.0" (driver chosen from vendor/device ids), "sim-82599:<...>".
 * On success *out is a fully initialized device (link may still be coming up). */
int aioixy_dev_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out);

/* Driver registration. Each driver file registers itself at load time with
 * AIOIXY_REGISTER_DRIVER(var), so the registry needs no list of drivers and a driver that is not
 * compiled in simply is not there. A driver matches either by name prefix (software devices and
 * models: "null", "pair:", "sim-82599:") or by PCI vendor/device id (real NICs). */
struct aioixy_pci_id {
    uint16_t vendor, device;
};

struct aioixy_driver {
    const char *name;                     /* "virtio", "ixgbe", "null", ... */
    const char *prefix;                   /* name prefix it claims, or NULL */
    const struct aioixy_pci_id *pci_ids;  /* terminated by {0, 0}, or NULL */
    int (*open)(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out);
    /* the keys of cfg->options it understands, NULL-terminated (NULL: it takes none); the
     * registry refuses any other key before calling open (options.h) */
    const char *const *options;
    /* a device in process memory (null, pair): its ports may share the process's default poll
     * group (port.h) since none of them needs a core of its own to reach line rate */
    bool in_memory;
    struct aioixy_driver *next;           /* registry-private */
};

void aioixy_register_driver(struct aioixy_driver *drv);
/* Does `name` open an in_memory device? (false for unknown names: open reports those) */
bool aioixy_device_in_memory(const char *name);
/* Entry i of the PCI ids all built-in drivers claim (the one list anyone should read, e.g. the
 * Python device listing); false once i is past the end. */
bool aioixy_driver_pci_id(uint32_t i, uint16_t *vendor, uint16_t *device, const char **driver);
#define AIOIXY_REGISTER_DRIVER(drv) \
    __attribute__((constructor)) static void aioixy_register_##drv(void) { aioixy_register_driver(&(drv)); }

/* Helpers for drivers */
int aioixy_dev_create_pools(struct aioixy_dev *dev, const struct aioixy_dev_config *cfg);
/* Mark the device gone (see `gone`) with a message saying why; only the first call counts. */
void aioixy_dev_set_gone(struct aioixy_dev *dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline bool aioixy_dev_is_gone(const struct aioixy_dev *dev)
{
    /* acquire: whoever sees 2 also sees gone_msg */
    return atomic_load_explicit(&((struct aioixy_dev *)dev)->gone, memory_order_acquire) == 2;
}
void aioixy_dev_release_pools(struct aioixy_dev *dev);

#endif
