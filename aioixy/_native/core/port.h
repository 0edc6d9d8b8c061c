/* Ports, queues and poller threads: the native half of the asyncio hand-off.
 *
 * A port is an open device plus, for each queue index q, one poller thread that
 *   - pulls rx batches from the device and enqueues them on rx_ring[q] (to Python); if the ring
 *     is full the batch tail is dropped and counted in rx_dropped (a NIC does the same), unless
 *     the port was opened with overflow=PAUSE, in which case the poller only pulls as many
 *     packets as fit, leaving the rest to the device's own flow control;
 *   - dequeues tx_ring[q] (from Python) and hands the packets to the device; packets the device
 *     does not accept yet stay pending in the poller (backpressure reaches Python when
 *     tx_ring[q] fills up);
 *   - reclaims transmitted buffers (the driver's tx_batch does it);
 *   - wakes the event loop through the queue's eventfd ONLY when Python has announced that it
 *     is about to wait (aioixy_queue_prepare_wait). A busy consumer costs no syscalls.
 *
 * Wait protocol (Dekker style, ordered by read-modify-writes on the `waiting` word):
 *   consumer: exchange(waiting, bits); re-check the ring; if still nothing -> sleep on eventfd
 *   producer: publish to the ring; fetch_or(waiting, 0); if set: exchange(waiting, 0), write eventfd.
 *
 * Idle strategy (poller.h): busy poll while there is work; after `idle_spin` empty rounds spin
 * with cpu_relax for `idle_pause` rounds, then sleep on the doorbell and whatever the devices
 * signal with (kernel sockets, interrupt eventfds, a pair peer's ring), with a timeout doubling
 * from idle_sleep_min_us up to idle_sleep_max_us only when a device cannot signal. Any work
 * resets to busy polling.
 */
#ifndef AIOIXY_PORT_H
#define AIOIXY_PORT_H

#include "common.h"
#include "device.h"
#include "ring.h"

enum aioixy_overflow { AIOIXY_OVERFLOW_DROP = 0, AIOIXY_OVERFLOW_PAUSE = 1 };

/* Defaults and limits of the port options (aioixy_port_config_defaults sets the defaults;
 * Python's aioixy.config reads the same macros through the cdef). */
#define AIOIXY_DEFAULT_BATCH 64u
#define AIOIXY_DEFAULT_RING_SIZE 1024u
#define AIOIXY_MIN_RING_SIZE 2u
#define AIOIXY_MAX_RING_SIZE (1u << 20)
#define AIOIXY_DEFAULT_IDLE_SPIN 64u
#define AIOIXY_DEFAULT_IDLE_PAUSE 256u
#define AIOIXY_DEFAULT_IDLE_SLEEP_MIN_US 10u
#define AIOIXY_DEFAULT_IDLE_SLEEP_MAX_US 500u

struct aioixy_port_config {
    struct aioixy_dev_config dev;
    uint32_t batch_size;        /* packets per device call, 1..AIOIXY_MAX_BATCH */
    uint32_t rx_ring_size;      /* poller -> Python ring, power of two */
    uint32_t tx_ring_size;      /* Python -> poller ring, power of two */
    int overflow;               /* enum aioixy_overflow */
    uint32_t idle_spin;         /* empty rounds of pure busy polling */
    uint32_t idle_pause;        /* further empty rounds with cpu_relax */
    uint32_t idle_sleep_min_us; /* first sleep */
    uint32_t idle_sleep_max_us; /* sleep cap (0 = never sleep: pure busy polling) */
    int cpus[AIOIXY_MAX_QUEUES];/* CPU to pin queue q's poller to, -1 = not pinned */
    bool rx_enabled;            /* false: pollers never pull rx (tx-only ports) */
    /* a poll group to serve every queue of the port (its thread, its idle policy: the idle_*
     * fields and cpus above are then unused); NULL: one poller thread per queue index */
    struct aioixy_poller *poller;
};

/* Poll groups: one poller thread serving the queues of several ports, like a DPDK lcore. A
 * forwarder between two in-memory ports then runs one poller instead of one per port. Each
 * queue still has exactly one poller, so every ring keeps one producer and one consumer. The
 * thread starts at create and sleeps on its doorbell while it has no members. */
#define AIOIXY_POLL_GROUP_MAX_QUEUES 256
struct aioixy_poll_group_config {
    int cpu;                    /* CPU to pin the group's thread to, -1 = not pinned */
    uint32_t idle_spin, idle_pause, idle_sleep_min_us, idle_sleep_max_us; /* as for a port */
};
struct aioixy_poller;
/* 0 or -AIOIXY_E*; the caller holds one reference, each port opened into it another. */
int aioixy_poll_group_create(const struct aioixy_poll_group_config *cfg, struct aioixy_poller **out);
/* Drop the caller's reference; the thread ends when the last port in the group has closed. */
void aioixy_poll_group_release(struct aioixy_poller *group);
uint32_t aioixy_poll_group_queues(struct aioixy_poller *group); /* queues it serves now */
/* Does `name` open a device in process memory (null, pair: the default-group candidates)? */
bool aioixy_port_in_memory(const char *name);

/* Per-queue counters, maintained by the poller (single writer, relaxed atomics) and the
 * Python side (its own counters). */
struct aioixy_queue_stats {
    uint64_t rx_packets, rx_bytes;   /* delivered into rx_ring */
    uint64_t rx_dropped;             /* pulled from the device but rx_ring was full */
    uint64_t tx_packets, tx_bytes;   /* accepted by the device */
    uint64_t wakeups;                /* eventfd writes */
    uint64_t rx_batches, tx_batches; /* non-empty device calls */
    uint64_t idle_sleeps;            /* nanosleeps taken while idle */
    uint32_t rx_ring_used, tx_ring_used, tx_pending;
    uint32_t pool_free, pool_size;
};

struct aioixy_port;

/* Open the device and start one poller per queue index. 0 or -AIOIXY_E* (error message set). */
int aioixy_port_open(const char *device, const struct aioixy_port_config *cfg, struct aioixy_port **out);
/* Stop and join the pollers, return every buffer held in rings to its pool, close the device
 * and free the port. Buffers still held by Python stay valid (their pool outlives the port
 * until they are freed). */
void aioixy_port_close(struct aioixy_port *port);
/* In a forked child, for each port the parent had open: close the child's copies of the
 * device's kernel objects so they die with the parent's close, not with the child. The port
 * itself is left alone (never close it in the child). */
void aioixy_port_forget_after_fork(struct aioixy_port *port);
/* Close *handle's port after setting *handle to NULL in the same call: a caller interrupted
 * before it sees the handle still set and closes again; after, it sees NULL (never twice). */
void aioixy_port_close_at(struct aioixy_port **handle);
/* 0, or -AIOIXY_EGONE (message set) once the device disappeared under the port. */
int aioixy_port_fault(struct aioixy_port *port);

uint16_t aioixy_port_num_queues(const struct aioixy_port *port); /* max(rx, tx) */

/* What the driver really set up, which may differ from what was asked (ixgbe raises the buffer
 * size to the 4 KiB its receive descriptors need). The one way Python learns it. */
struct aioixy_port_info {
    char name[96];            /* what the port was opened with */
    char driver[16];
    uint8_t mac[6];
    bool promisc;
    uint16_t rx_queues, tx_queues;
    uint16_t num_queues;      /* max(rx, tx): one poller and one mempool per queue index */
    uint32_t buf_size;        /* bytes per buffer, header included */
    uint32_t data_room;       /* packet bytes a buffer holds: the largest alloc / Packet.length */
    uint32_t pool_size;       /* buffers per queue mempool */
    uint32_t min_tx_len, max_tx_len; /* frame lengths the device transmits */
    uint16_t rx_queues_left;  /* rx queues of the device this port leaves to others (kernel) */
};
void aioixy_port_info(struct aioixy_port *port, struct aioixy_port_info *out);

/* Python side, event-loop thread only (one consumer / producer per queue). */
uint32_t aioixy_rx_dequeue(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n);
/* Queues the longest prefix of bufs that fits the ring and that the device accepts (see
 * struct aioixy_dev: lengths, DMA reachability); returns its length. */
uint32_t aioixy_tx_enqueue(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n);
/* Ownership hand-over that a Python exception cannot split (a signal handler may raise right
 * after any native call returns, before the caller records what it gave away): the same as
 * aioixy_tx_enqueue, and every buffer the ring took is set to NULL in bufs[] by this same call,
 * so the array itself says what its holder still owns. */
uint32_t aioixy_tx_take(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs, uint32_t n);
/* The same for buffers held in several arrays: *slots[i] is the i-th buffer, NULLed if taken. */
uint32_t aioixy_tx_take_slots(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **const *slots,
                              uint32_t n);
/* Why aioixy_tx_enqueue stopped before `buf` (the first buffer it did not take): 0 if `buf`
 * is valid for this device (the ring was full), else -AIOIXY_EINVAL with the reason set (a
 * length outside [min_tx_len, max_tx_len], or memory the device cannot DMA from). */
/* Can `dst` transmit buffers from `src`'s queue-q pool without a copy? */
bool aioixy_port_reaches_pool_of(struct aioixy_port *dst, struct aioixy_port *src, uint16_t q);
int aioixy_tx_check(struct aioixy_port *port, uint16_t q, const struct aioixy_pkt_buf *buf);
/* Announce the intention to sleep until rx data (want_rx) and/or tx space (want_tx) is there.
 * Returns 1 if the condition is already true (do not sleep; the flag is withdrawn), else 0:
 * the poller will write the eventfd once it is. */
int aioixy_queue_prepare_wait(struct aioixy_port *port, uint16_t q, bool want_rx, bool want_tx);
/* Withdraw a wait announcement (e.g. the waiting coroutine was cancelled). */
void aioixy_queue_cancel_wait(struct aioixy_port *port, uint16_t q);
int aioixy_queue_eventfd(const struct aioixy_port *port, uint16_t q);

void aioixy_queue_stats(struct aioixy_port *port, uint16_t q, struct aioixy_queue_stats *out);
void aioixy_port_dev_stats(struct aioixy_port *port, struct aioixy_dev_stats *out);
void aioixy_port_link(struct aioixy_port *port, struct aioixy_link *out);
int aioixy_port_set_promisc(struct aioixy_port *port, bool on);

/* Fresh buffers from queue q's pool, each with len = `len` and zeroed data.
 * All-or-nothing: returns n or 0. */
uint32_t aioixy_port_alloc(struct aioixy_port *port, uint16_t q, struct aioixy_pkt_buf **bufs,
                           uint32_t n, uint32_t len);

/* Set the AIOIXY_DEFAULT_* values above into *cfg (no CPU pinning, rx enabled). */
void aioixy_port_config_defaults(struct aioixy_port_config *cfg);

#endif
