/* Capture files written a batch per call: pcap and pcapng records of a whole batch go to the
 * file in one writev, so a capture costs no Python per packet. Record headers are built in the
 * writer's own staging area; a payload of up to AIOIXY_CAP_COPY_MAX bytes is copied there too,
 * right after its header (the kernel's cost is per iovec segment: for small frames one memcpy
 * is cheaper than a segment of its own), a longer one is handed over from its packet buffer.
 *
 * Formats: classic pcap with microsecond timestamps (what tcpdump -w writes) and pcapng (what
 * Wireshark and dumpcap write by default: one section, one Ethernet interface with nanosecond
 * timestamps, an Enhanced Packet Block per packet). Every write ends on a record boundary:
 * a short write is finished, and a failed one is cut back to the last whole record (regular
 * files), so the file stays readable whatever happens.
 *
 * Outputs that can block (a pipe to a slow reader) are written non-blocking: when the reader
 * is not keeping up at a record boundary, the rest of the batch is dropped and counted in
 * `dropped` -- the writer's own drops, apart from the port's rx drops -- rather than stalling
 * the event loop (a record already begun is finished first, so the stream stays whole).
 */
#ifndef AIOIXY_CAPTURE_H
#define AIOIXY_CAPTURE_H

#include "common.h"
#include "mempool.h"

#include <sys/uio.h>

enum aioixy_capture_format {
    AIOIXY_CAP_PCAP = 0,    /* libpcap, microseconds, LINKTYPE_ETHERNET */
    AIOIXY_CAP_PCAPNG = 1,  /* pcapng, if_tsresol 9 (nanoseconds), LINKTYPE_ETHERNET */
};

/* packets per writev: at most two iovecs each (staging, a long payload) fit IOV_MAX (1024) */
#define AIOIXY_CAP_CHUNK 256
#define AIOIXY_CAP_COPY_MAX 512   /* payloads up to this long are copied into the staging area */
#define AIOIXY_CAP_REC_MAX 40     /* header + padding + trailer of one record (pcapng: 28 + 3 + 4) */
#define AIOIXY_CAP_MAX_SNAPLEN 262144

struct aioixy_capture {
    int fd;                  /* the caller's; set by it, switched between files by it */
    uint32_t format;         /* enum aioixy_capture_format */
    uint32_t snaplen;        /* bytes kept per packet, 1..AIOIXY_CAP_MAX_SNAPLEN */
    bool nonblocking;        /* fd is O_NONBLOCK (a pipe): drop rather than wait */
    uint64_t file_bytes;     /* bytes in the current file (headers included) */
    uint64_t packets;        /* records written, every file */
    uint64_t bytes;          /* their original lengths */
    uint64_t dropped;        /* packets dropped because the output would block */
    int err;                 /* errno of the failure that stopped the last write, else 0 */
    uint8_t staging[AIOIXY_CAP_CHUNK * (AIOIXY_CAP_REC_MAX + AIOIXY_CAP_COPY_MAX)];
    uint64_t rec_end[AIOIXY_CAP_CHUNK];   /* where each record of a chunk ends (bytes) */
    uint32_t rec_orig[AIOIXY_CAP_CHUNK];  /* its original length */
    struct iovec iov[2 * AIOIXY_CAP_CHUNK + 1];
};

/* Write the file header (pcap global header, or pcapng section header + interface block) at the
 * start of a new file: file_bytes restarts from it. Returns 0 or -AIOIXY_EIO (err set). */
int aioixy_capture_begin(struct aioixy_capture *c);

/* Write bufs[0..n) (NULL slots skipped) stamped ts_ns (ns since the epoch). Returns how many
 * records were written (the rest, if any, counted in `dropped`), or -AIOIXY_EIO with `err` set
 * and the file cut back to its last whole record, or -AIOIXY_EINVAL for a bad writer. */
int32_t aioixy_capture_write(struct aioixy_capture *c, struct aioixy_pkt_buf *const *bufs,
                             uint32_t n, uint64_t ts_ns);

#endif
