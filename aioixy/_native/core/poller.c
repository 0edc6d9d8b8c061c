#include "poller.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

/* A poller asleep with nothing timed to wait for still wakes this often, as a safety net
 * against a device that fails to signal. The native tests build with -1 (no timeout), so that
 * a lost wake-up hangs there and fails instead of hiding behind this net. */
#ifndef AIOIXY_POLL_SLEEP_TIMEOUT_MS
#define AIOIXY_POLL_SLEEP_TIMEOUT_MS 100
#endif

struct aioixy_poller {
    struct aioixy_doorbell bell;
    _Atomic uint32_t changed AIOIXY_CACHE_ALIGNED; /* a new member list is waiting */
    /* the thread's own copy of the members, and its ppoll array */
    struct {
        uint32_t n;
        struct port_queue *m[AIOIXY_POLLER_MAX_MEMBERS];
        struct pollfd pfd[AIOIXY_POLLER_MAX_MEMBERS + 1];
        uint32_t who[AIOIXY_POLLER_MAX_MEMBERS + 1]; /* the member of each pfd entry */
    } run AIOIXY_CACHE_ALIGNED;
    /* under lock: the wanted members and the hand-over to the thread */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t nwant;
    struct port_queue *want[AIOIXY_POLLER_MAX_MEMBERS];
    uint64_t gen, applied;
    bool stop;
    /* set at create */
    _Atomic uint32_t refs;
    struct aioixy_poller_config cfg;
    pthread_t thread;
};

void aioixy_doorbell_ring(struct aioixy_doorbell *bell)
{
    /* The RMW pairs with the exchange in poller_sleep(): RMWs on one location are totally
     * ordered, so either this one follows the announcement (and writes the eventfd) or the
     * poller's exchange reads it and so sees the work published before it. A busy poller never
     * announces: a busy producer pays one uncontended RMW and no syscall. */
    if (aioixy_likely(!atomic_fetch_or_explicit(&bell->sleeping, 0, memory_order_acq_rel)))
        return;
    if (atomic_exchange_explicit(&bell->sleeping, 0, memory_order_acq_rel) == 0)
        return;
    uint64_t one = 1;
    ssize_t rc = write(bell->fd, &one, sizeof(one));
    (void)rc; /* EAGAIN only if the counter is saturated: the poller is awake anyway */
}

static void kick_always(struct aioixy_poller *p)
{
    uint64_t one = 1;
    ssize_t rc = write(p->bell.fd, &one, sizeof(one));
    (void)rc;
}

/* At the top of a round: take the new member list. True if the thread is to end. */
static bool take_changes(struct aioixy_poller *p)
{
    pthread_mutex_lock(&p->lock);
    atomic_store_explicit(&p->changed, 0, memory_order_relaxed);
    memcpy(p->run.m, p->want, p->nwant * sizeof(p->want[0]));
    p->run.n = p->nwant;
    p->applied = p->gen;
    bool stop = p->stop;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return stop;
}

/* Under lock: hand the wanted list to the thread and wait until it runs with it. */
static void publish_locked(struct aioixy_poller *p)
{
    uint64_t mine = ++p->gen;
    atomic_store_explicit(&p->changed, 1, memory_order_release);
    kick_always(p); /* stays readable until the thread reads it: no lost wake-up */
    while (p->applied < mine)
        pthread_cond_wait(&p->cond, &p->lock);
}

/* Announce the sleep, ask the members, sleep in ppoll(). Returns true if the sleep timed out
 * (the back-off may grow), false if something woke it or a member had work. */
static bool poller_sleep(struct aioixy_poller *p, bool timed, uint32_t sleep_us)
{
    atomic_exchange_explicit(&p->bell.sleeping, 1, memory_order_acq_rel);
    struct pollfd *pfd = p->run.pfd;
    nfds_t nfd = 1;
    pfd[0] = (struct pollfd){.fd = p->bell.fd, .events = POLLIN};
    for (uint32_t i = 0; i < p->run.n; i++) {
        pfd[nfd].fd = -1;
        if (aioixy_queue_sleep_check(p->run.m[i], &pfd[nfd], &timed)) {
            atomic_store_explicit(&p->bell.sleeping, 0, memory_order_relaxed);
            return false;
        }
        if (pfd[nfd].fd >= 0)
            p->run.who[nfd++] = i;
    }
    struct timespec ts, *tp = NULL;
    if (timed && p->run.n) {
        ts = (struct timespec){.tv_sec = sleep_us / 1000000u, .tv_nsec = (long)(sleep_us % 1000000u) * 1000};
        tp = &ts;
    } else if (AIOIXY_POLL_SLEEP_TIMEOUT_MS >= 0 && p->run.n) {
        ts = (struct timespec){.tv_sec = AIOIXY_POLL_SLEEP_TIMEOUT_MS / 1000,
                               .tv_nsec = (long)(AIOIXY_POLL_SLEEP_TIMEOUT_MS % 1000) * 1000000L};
        tp = &ts;
    }
    int n = ppoll(pfd, nfd, tp, NULL);
    atomic_store_explicit(&p->bell.sleeping, 0, memory_order_relaxed);
    if (n > 0 && (pfd[0].revents & POLLIN)) {
        uint64_t v;
        ssize_t rc = read(p->bell.fd, &v, sizeof(v));
        (void)rc; /* EAGAIN: the counter was simply 0 */
    }
    for (uint32_t i = 0; i < p->run.n; i++)
        aioixy_queue_count_sleep(p->run.m[i]);
    bool error = false;
    for (nfds_t j = 1; n > 0 && j < nfd; j++)
        if (pfd[j].revents & (POLLERR | POLLHUP | POLLNVAL)) {
            /* reported at once, every time, until someone clears it (a socket keeps ENETDOWN
             * after a link down/up): the device clears it */
            aioixy_queue_poll_error(p->run.m[p->run.who[j]]);
            error = true;
        }
    if (error) { /* and should it stay, a pause: sleeps, never a spinning core */
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 1000000};
        nanosleep(&pause, NULL);
    }
    return n == 0;
}

static void *poller_main(void *arg)
{
    struct aioixy_poller *p = arg;
    const struct aioixy_poller_config *cfg = &p->cfg;
    const uint32_t min_us = cfg->idle_sleep_min_us ? cfg->idle_sleep_min_us : 1;
    uint32_t sleep_us = min_us, idle = 0;
    /* the default 50 us timer slack would turn every short back-off sleep into a long one */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    for (;;) {
        if (atomic_load_explicit(&p->changed, memory_order_acquire) && take_changes(p))
            return NULL;
        int r = 0;
        for (uint32_t i = 0; i < p->run.n; i++)
            r |= aioixy_queue_round(p->run.m[i]);
        if (r & ROUND_WORK) {
            idle = 0;
            sleep_us = min_us;
            continue;
        }
        bool blocked = r & (ROUND_BLOCKED | ROUND_TX_BLOCKED);
        if (blocked)
            sleep_us = min_us; /* waiting for the other side: keep the back-off short */
        idle++;
        if (idle <= cfg->idle_spin && p->run.n)
            continue;
        if ((idle <= cfg->idle_spin + cfg->idle_pause || cfg->idle_sleep_max_us == 0) && p->run.n) {
            aioixy_cpu_relax();
            continue;
        }
        if (poller_sleep(p, blocked, sleep_us) && !blocked)
            sleep_us = sleep_us * 2 > cfg->idle_sleep_max_us ? cfg->idle_sleep_max_us : sleep_us * 2;
    }
}

int aioixy_poller_create(const struct aioixy_poller_config *cfg, const char *name,
                         struct aioixy_poller **out)
{
    *out = NULL;
    if (cfg->idle_sleep_max_us && cfg->idle_sleep_min_us > cfg->idle_sleep_max_us)
        return aioixy_set_error(AIOIXY_EINVAL, "idle sleep min %u us > max %u us",
                                cfg->idle_sleep_min_us, cfg->idle_sleep_max_us);
    if (cfg->cpu < -1 || cfg->cpu >= CPU_SETSIZE)
        return aioixy_set_error(AIOIXY_EINVAL, "cpu=%d is not a CPU number", cfg->cpu);
    struct aioixy_poller *p = aligned_alloc(AIOIXY_CACHE_LINE, (sizeof(*p) + 63) & ~(size_t)63);
    if (!p)
        return aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    atomic_init(&p->refs, 1);
    p->bell.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->bell.fd < 0) {
        int e = errno;
        free(p);
        return aioixy_set_error(AIOIXY_EIO, "eventfd failed: %s", strerror(e));
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (cfg->cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cfg->cpu, &set);
        pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
    }
    int e = pthread_create(&p->thread, &attr, poller_main, p);
    pthread_attr_destroy(&attr);
    if (e) {
        close(p->bell.fd);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        free(p);
        return aioixy_set_error(AIOIXY_EIO, "cannot start poller thread %s: %s", name, strerror(e));
    }
    pthread_setname_np(p->thread, name);
    *out = p;
    return 0;
}

void aioixy_poller_ref(struct aioixy_poller *p)
{
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

void aioixy_poller_unref(struct aioixy_poller *p)
{
    if (!p || atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    publish_locked(p);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
    close(p->bell.fd);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

int aioixy_poller_attach(struct aioixy_poller *p, struct port_queue *const *qs, uint32_t n)
{
    pthread_mutex_lock(&p->lock);
    if (p->nwant + n > AIOIXY_POLLER_MAX_MEMBERS) {
        uint32_t have = p->nwant;
        pthread_mutex_unlock(&p->lock);
        return aioixy_set_error(AIOIXY_EBUSY, "poll group full: it serves %u queues, %u more "
                                "would pass its limit of %d", have, n, AIOIXY_POLLER_MAX_MEMBERS);
    }
    memcpy(p->want + p->nwant, qs, n * sizeof(qs[0]));
    p->nwant += n;
    publish_locked(p);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

void aioixy_poller_detach(struct aioixy_poller *p, struct port_queue *const *qs, uint32_t n)
{
    pthread_mutex_lock(&p->lock);
    uint32_t k = 0;
    for (uint32_t i = 0; i < p->nwant; i++) {
        bool gone = false;
        for (uint32_t j = 0; j < n && !gone; j++)
            gone = p->want[i] == qs[j];
        if (!gone)
            p->want[k++] = p->want[i];
    }
    p->nwant = k;
    publish_locked(p);
    pthread_mutex_unlock(&p->lock);
}

struct aioixy_doorbell *aioixy_poller_bell(struct aioixy_poller *p) { return &p->bell; }

uint32_t aioixy_poller_members(struct aioixy_poller *p)
{
    pthread_mutex_lock(&p->lock);
    uint32_t n = p->nwant;
    pthread_mutex_unlock(&p->lock);
    return n;
}

bool aioixy_poller_busy(const struct aioixy_poller *p) { return p->cfg.idle_sleep_max_us == 0; }
