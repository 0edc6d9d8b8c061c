/* Poller threads (internal to the core): one thread serving a set of queues, its members, and
 * sleeping when none of them has work on something that wakes it.
 *
 * A poller is either private (port.c starts one per queue index of a port opened without a
 * group) or a poll group (aioixy_poll_group_create, shared by the queues of several ports, as
 * a DPDK lcore serves several ports). Either way each queue has exactly one poller, so its rx
 * ring keeps one producer and its tx ring one consumer, and the driver's rx_batch / tx_batch
 * for that queue are called from one thread.
 *
 * Membership changes come from other threads: the changer edits the wanted member list under
 * the poller's lock, raises `changed` and rings the kick eventfd unconditionally, then waits
 * until the poller has taken the new list at the top of a round. A member that has been
 * detached is therefore never touched again, and its port may drain and free it.
 *
 * Sleeping: after the idle policy's spinning, the poller announces its sleep on its doorbell
 * (device.h), then asks every member whether it has work or what to sleep on
 * (aioixy_queue_sleep_check), and sleeps in ppoll() on the kick eventfd plus the members' fds:
 * with no timeout (a safety net of AIOIXY_POLL_SLEEP_TIMEOUT_MS) when every member can signal,
 * with the back-off's timeout when one cannot (AIOIXY_POLL_TIMED) or is blocked. A kick or
 * device fd ends even a timed sleep at once.
 */
#ifndef AIOIXY_POLLER_H
#define AIOIXY_POLLER_H

#include "common.h"
#include "device.h"
#include "port.h"

#include <poll.h>

/* The most queues one poller serves (a group's members over all its ports). */
#define AIOIXY_POLLER_MAX_MEMBERS AIOIXY_POLL_GROUP_MAX_QUEUES

struct aioixy_poller_config {
    int cpu;                    /* CPU to pin the thread to, -1 = not pinned */
    uint32_t idle_spin;         /* empty rounds of pure busy polling */
    uint32_t idle_pause;        /* further empty rounds with cpu_relax */
    uint32_t idle_sleep_min_us; /* first timed sleep */
    uint32_t idle_sleep_max_us; /* timed sleep cap; 0 = never sleep (busy polling) */
};

struct aioixy_poller;
struct port_queue;

/* What one round of a member achieved (port.c). BLOCKED (rx ring full in PAUSE mode, or the
 * device refusing pending tx) is not idleness: the other side is about to make room without a
 * signal, so the poller keeps its sleeps short. */
enum { ROUND_IDLE = 0, ROUND_WORK = 1, ROUND_BLOCKED = 2, ROUND_TX_BLOCKED = 4 };

/* port.c: one rx + tx round of a member, ROUND_* bits */
int aioixy_queue_round(struct port_queue *q);
/* port.c: the poller announced its sleep; true if the member has work after all (do not
 * sleep); else fills *pfd when the member gives an fd (returns with pfd->fd >= 0), or sets
 * *timed when only a timed sleep notices its work */
bool aioixy_queue_sleep_check(struct port_queue *q, struct pollfd *pfd, bool *timed);
/* port.c: count one sleep in the member's stats (poller thread: the counter's one writer) */
void aioixy_queue_count_sleep(struct port_queue *q);
/* port.c: ppoll() reported POLLERR/POLLHUP/POLLNVAL on the fd the member gave (the device's
 * poll_error op clears and interprets it) */
void aioixy_queue_poll_error(struct port_queue *q);

/* name: the thread's name (15 characters at most). 0 or -AIOIXY_E*; the caller holds one
 * reference. */
int aioixy_poller_create(const struct aioixy_poller_config *cfg, const char *name,
                         struct aioixy_poller **out);
void aioixy_poller_ref(struct aioixy_poller *p);
/* The last reference stops and joins the thread (it has no members left by then). */
void aioixy_poller_unref(struct aioixy_poller *p);
/* Add / remove members; both return once the poller runs with the new set. attach fails
 * (-AIOIXY_EBUSY) if the poller would serve more than AIOIXY_POLLER_MAX_MEMBERS queues. */
int aioixy_poller_attach(struct aioixy_poller *p, struct port_queue *const *qs, uint32_t n);
void aioixy_poller_detach(struct aioixy_poller *p, struct port_queue *const *qs, uint32_t n);
struct aioixy_doorbell *aioixy_poller_bell(struct aioixy_poller *p);
uint32_t aioixy_poller_members(struct aioixy_poller *p);
bool aioixy_poller_busy(const struct aioixy_poller *p); /* never sleeps */

#endif
