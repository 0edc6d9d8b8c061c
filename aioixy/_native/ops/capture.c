/* Capture files written a batch per call (see capture.h). */
#include "capture.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCAP_MAGIC_US 0xa1b2c3d4u
#define PCAPNG_SHB 0x0a0d0d0au
#define PCAPNG_IDB 1u
#define PCAPNG_EPB 6u
#define PCAPNG_BOM 0x1a2b3c4du
#define LINKTYPE_ETHERNET 1u
#define EPB_HDR 28u
/* how long a record already begun may wait for a blocked reader before the write fails */
#define PARTIAL_WAIT_MS 5000

static inline void put_u16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static int fail(struct aioixy_capture *c, int err, const char *what)
{
    c->err = err;
    return aioixy_set_error(AIOIXY_EIO, "capture: %s: %s", what, strerror(err));
}

/* Cut a regular file back to `good` bytes after a failed write (a pipe cannot be). */
static void cut_back(struct aioixy_capture *c, uint64_t good)
{
    struct stat st;
    if (c->file_bytes != good && fstat(c->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        if (ftruncate(c->fd, (off_t)good) == 0 && lseek(c->fd, (off_t)good, SEEK_SET) >= 0)
            c->file_bytes = good;
    }
}

static bool wait_writable(int fd, int *waited_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if (*waited_ms >= PARTIAL_WAIT_MS)
        return false;
    if (poll(&p, 1, 100) == 0)
        *waited_ms += 100;
    return true;
}

/* Write iov[0..cnt), records ending at byte offsets rec_end[0..nrec). Returns the bytes written;
 * *stop is set when the output would block at a record boundary (the rest is not written).
 * -errno on failure. *written: the bytes that did go, either way. */
static int64_t put(struct aioixy_capture *c, struct iovec *iov, uint32_t cnt,
                   const uint64_t *rec_end, uint32_t nrec, bool *stop, uint64_t *written)
{
    uint32_t i = 0, r = 0;
    uint64_t done = 0;
    int waited = 0;
    *written = 0;
    while (i < cnt) {
        int segs = (int)(cnt - i < IOV_MAX ? cnt - i : IOV_MAX);
        ssize_t w = writev(c->fd, iov + i, segs);
        if (w < 0) {
            int e = errno;
            if (e == EINTR)
                continue;
            if (e == EAGAIN || e == EWOULDBLOCK) {
                while (r < nrec && rec_end[r] < done)
                    r++;
                if (done == 0 || (r < nrec && rec_end[r] == done)) {
                    *stop = true;
                    *written = done;
                    return (int64_t)done;
                }
                if (wait_writable(c->fd, &waited))
                    continue;
                e = ETIMEDOUT;
            }
            *written = done;
            return -e;
        }
        c->file_bytes += (uint64_t)w;
        done += (uint64_t)w;
        size_t left = (size_t)w;
        while (i < cnt && left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            i++;
        }
        if (left) {
            iov[i].iov_base = (uint8_t *)iov[i].iov_base + left;
            iov[i].iov_len -= left;
        }
    }
    *written = done;
    return (int64_t)done;
}

int aioixy_capture_begin(struct aioixy_capture *c)
{
    if (c->snaplen == 0 || c->snaplen > AIOIXY_CAP_MAX_SNAPLEN || c->format > AIOIXY_CAP_PCAPNG)
        return aioixy_set_error(AIOIXY_EINVAL, "capture: snaplen %u or format %u out of range",
                                c->snaplen, c->format);
    uint8_t h[64] = {0};
    uint32_t len;
    if (c->format == AIOIXY_CAP_PCAP) {
        put_u32(h, PCAP_MAGIC_US);
        put_u16(h + 4, 2);
        put_u16(h + 6, 4);
        put_u32(h + 16, c->snaplen);
        put_u32(h + 20, LINKTYPE_ETHERNET);
        len = 24;
    } else {
        put_u32(h, PCAPNG_SHB);
        put_u32(h + 4, 28);
        put_u32(h + 8, PCAPNG_BOM);
        put_u16(h + 12, 1);                  /* version 1.0 */
        memset(h + 16, 0xff, 8);             /* section length unknown */
        put_u32(h + 24, 28);
        uint8_t *idb = h + 28;
        put_u32(idb, PCAPNG_IDB);
        put_u32(idb + 4, 32);
        put_u16(idb + 8, LINKTYPE_ETHERNET);
        put_u32(idb + 12, c->snaplen);
        put_u16(idb + 16, 9);                /* if_tsresol */
        put_u16(idb + 18, 1);
        idb[20] = 9;                         /* 10^-9: nanoseconds */
        put_u32(idb + 28, 32);               /* (opt_endofopt at 24 is zeros) */
        len = 60;
    }
    c->file_bytes = 0;
    c->err = 0;
    struct iovec v = {.iov_base = h, .iov_len = len};
    uint64_t end = len, written;
    bool stop = false;
    int64_t r;
    /* the header is one record: at its start a blocked reader means waiting, not dropping */
    int waited = 0;
    while ((r = put(c, &v, 1, &end, 1, &stop, &written)) == 0 && stop &&
           wait_writable(c->fd, &waited))
        stop = false;
    if (r < 0)
        return fail(c, (int)-r, "writing the file header");
    if (r == 0)
        return fail(c, ETIMEDOUT, "writing the file header");
    return 0;
}

int32_t aioixy_capture_write(struct aioixy_capture *c, struct aioixy_pkt_buf *const *bufs,
                             uint32_t n, uint64_t ts_ns)
{
    if (c->snaplen == 0 || c->snaplen > AIOIXY_CAP_MAX_SNAPLEN || c->format > AIOIXY_CAP_PCAPNG)
        return aioixy_set_error(AIOIXY_EINVAL, "capture: not set up (snaplen %u, format %u)",
                                c->snaplen, c->format);
    const bool ng = c->format == AIOIXY_CAP_PCAPNG;
    const uint32_t sec = (uint32_t)(ts_ns / 1000000000u);
    const uint32_t usec = (uint32_t)(ts_ns % 1000000000u / 1000u);
    int32_t total = 0;
    uint32_t i = 0;
    while (i < n) {
        uint32_t k = 0, niov = 0;
        uint8_t *st = c->staging, *seg = st; /* seg: start of the staging run not yet in an iovec */
        uint64_t pos = 0;
        for (; i < n && k < AIOIXY_CAP_CHUNK; i++) {
            const struct aioixy_pkt_buf *b = bufs[i];
            if (!b)
                continue;
            uint32_t cap = b->len < c->snaplen ? b->len : c->snaplen;
            uint32_t pad = ng ? (4 - cap % 4) % 4 : 0;
            uint32_t hlen = ng ? EPB_HDR : 16, blk = hlen + cap + pad + (ng ? 4 : 0);
            if (ng) {
                put_u32(st, PCAPNG_EPB);
                put_u32(st + 4, blk);
                put_u32(st + 8, 0);
                put_u32(st + 12, (uint32_t)(ts_ns >> 32));
                put_u32(st + 16, (uint32_t)ts_ns);
                put_u32(st + 20, cap);
                put_u32(st + 24, b->len);
            } else {
                put_u32(st, sec);
                put_u32(st + 4, usec);
                put_u32(st + 8, cap);
                put_u32(st + 12, b->len);
            }
            st += hlen;
            if (cap <= AIOIXY_CAP_COPY_MAX) {
                memcpy(st, b->data, cap);
                st += cap;
            } else { /* the staging run so far, then the payload from its own buffer */
                c->iov[niov++] = (struct iovec){seg, (size_t)(st - seg)};
                c->iov[niov++] = (struct iovec){(void *)b->data, cap};
                seg = st;
            }
            if (ng) {
                memset(st, 0, pad);
                put_u32(st + pad, blk);
                st += pad + 4;
            }
            pos += blk;
            c->rec_end[k] = pos;
            c->rec_orig[k] = b->len;
            k++;
        }
        if (!k)
            break;
        if (st > seg)
            c->iov[niov++] = (struct iovec){seg, (size_t)(st - seg)};
        uint64_t start = c->file_bytes, written;
        bool stop = false;
        int64_t r = put(c, c->iov, niov, c->rec_end, k, &stop, &written);
        uint32_t done = 0;
        while (done < k && c->rec_end[done] <= written)
            done++;
        for (uint32_t j = 0; j < done; j++)
            c->bytes += c->rec_orig[j];
        c->packets += done;
        total += (int32_t)done;
        if (r < 0) { /* the records written whole stay; the one cut short goes */
            cut_back(c, start + (done ? c->rec_end[done - 1] : 0));
            return fail(c, (int)-r, "writing packets");
        }
        if (stop) {
            uint32_t rest = k - done;
            for (; i < n; i++)
                rest += bufs[i] != NULL;
            c->dropped += rest;
            return total;
        }
    }
    return total;
}
