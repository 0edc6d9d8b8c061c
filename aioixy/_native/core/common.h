/* Shared definitions for the aioixy native core.
 *
 * Everything in aioixy/_native is C11 and must build with -Wall -Wextra -Werror.
 * Error reporting: functions return 0 / a positive count on success and a negative
 * AIOIXY_E* code on failure, after recording a human-readable message with
 * aioixy_set_error(); Python turns (code, message) into a specific exception.
 */
#ifndef AIOIXY_COMMON_H
#define AIOIXY_COMMON_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AIOIXY_CACHE_LINE 64
#define AIOIXY_CACHE_ALIGNED __attribute__((aligned(AIOIXY_CACHE_LINE)))

#define aioixy_likely(x) __builtin_expect(!!(x), 1)
#define aioixy_unlikely(x) __builtin_expect(!!(x), 0)

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define aioixy_cpu_relax() _mm_pause()
#else
#define aioixy_cpu_relax() atomic_signal_fence(memory_order_seq_cst)
#endif

/* Order descriptor writes in DMA memory before the doorbell (MMIO tail write) that tells the
 * device to read them. ThreadSanitizer does not model fences; under it the only doorbell that
 * runs is the 82599 model's, which is a mutex-protected release store and orders by itself. */
#if defined(__SANITIZE_THREAD__)
#define aioixy_dma_wmb() atomic_signal_fence(memory_order_seq_cst)
#else
#define aioixy_dma_wmb() atomic_thread_fence(memory_order_release)
#endif

/* Add to a counter that only one thread writes while others may read it (a poller's or a
 * driver queue's statistics): a relaxed load and store, no locked read-modify-write on the fast
 * path. Readers see each value whole but may see it a little late. */
static inline void aioixy_counter_add(_Atomic uint64_t *c, uint64_t v)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v, memory_order_relaxed);
}

/* Error codes (negated when returned). Python maps each to an exception class. */
enum aioixy_err {
    AIOIXY_OK = 0,
    AIOIXY_EINVAL = 1,      /* bad option / argument */
    AIOIXY_ENODEV = 2,      /* unknown device, no such PCI address, unsupported ids */
    AIOIXY_EBUSY = 3,       /* device busy: in use, or carries host traffic (needs force) */
    AIOIXY_ENOHUGE = 4,     /* no (or not enough) hugepages reserved */
    AIOIXY_EPERM = 5,       /* not permitted: not root / missing capability */
    AIOIXY_ENOMEM = 6,      /* out of memory (heap or DMA) */
    AIOIXY_EIO = 7,         /* I/O error talking to the device or sysfs */
    AIOIXY_ETIMEDOUT = 8,   /* device did not respond in time (reset, link, queue enable) */
    AIOIXY_EDEVICE = 9,     /* device reported/was caught in an error state (e.g. model fault) */
    AIOIXY_EGONE = 10,      /* the device disappeared under an open port (interface deleted) */
};

/* Record an error for the calling thread and return -code (so callers can
 * `return aioixy_set_error(AIOIXY_EINVAL, "...")`). Thread-local storage. */
int aioixy_set_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last error message / code recorded on this thread ("" / 0 if none). */
const char *aioixy_last_error(void);
int aioixy_last_errcode(void);
void aioixy_clear_error(void);

#endif
