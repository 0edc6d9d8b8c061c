/* Drives a device's fast path on one thread, with no poller, so valgrind (callgrind) can count
 * the instructions each packet costs. Usage: ipp MODE PACKETS [BATCH]
 *   null-rx   null device rx_batch + free_bulk
 *   pair-txrx pair end a tx_batch -> end b rx_batch -> free_bulk
 *   ixgbe-txrx the ixgbe driver on the 82599 model: port 0 tx_batch -> cable -> port 1
 *             rx_batch -> free_bulk. The model's own thread does the device's work; the
 *             benchmark counts only the driver's functions (callgrind --toggle-collect), and
 *             waits for the model outside them so no empty polls are counted.
 *   virtio-txrx ADDR_A ADDR_B [OPTIONS]  (inside the test VM) the VirtIO driver: tx_batch on
 *             NIC A, QEMU's hub carries the frames to NIC B, rx_batch there. Sleeps (outside
 *             the driver's functions) after each tx so one rx call collects the whole batch.
 *             OPTIONS are the driver options of both ends (e.g. "ring=packed").
 *   ring      SPSC ring enqueue + dequeue of the same batch (the hand-off to Python)
 * bench/bench_instructions.py runs it twice with different packet counts and divides the
 * difference, so set-up costs cancel out. */
#include "device.h"
#include "ixgbe_regs.h"
#include "ring.h"
#include "sim82599.h"

#include <time.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A batch of fresh 60-byte frames from dev's pool, all accepted by its tx. */
static bool send_fresh(struct aioixy_dev *dev, struct aioixy_pkt_buf **bufs, uint32_t batch)
{
    if (aioixy_mempool_alloc_bulk(dev->pools[0], bufs, batch) != batch)
        return false;
    for (uint32_t i = 0; i < batch; i++)
        bufs[i]->len = 60;
    return dev->ops->tx_batch(dev, 0, bufs, batch) == batch;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1];
    uint64_t packets = strtoull(argv[2], NULL, 10);
    uint32_t batch = argc > 3 ? (uint32_t)atoi(argv[3]) : 64;
    struct aioixy_dev_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.rx_queues = cfg.tx_queues = 1;
    cfg.pool_bufs = 4096;
    cfg.flow_control = true;
    struct aioixy_pkt_buf *bufs[AIOIXY_MAX_BATCH];
    uint64_t done = 0;
    if (strcmp(mode, "null-rx") == 0) {
        struct aioixy_dev *d;
        if (aioixy_dev_open("null", &cfg, &d))
            return 1;
        while (done < packets) {
            uint32_t n = d->ops->rx_batch(d, 0, bufs, batch);
            aioixy_mempool_free_bulk(bufs, n);
            done += n;
        }
        d->ops->close(d);
    } else if (strcmp(mode, "pair-txrx") == 0) {
        struct aioixy_dev *a, *b;
        if (aioixy_dev_open("pair:ipp:a", &cfg, &a) || aioixy_dev_open("pair:ipp:b", &cfg, &b))
            return 1;
        while (done < packets) {
            if (!send_fresh(a, bufs, batch))
                return 1;
            uint32_t n = b->ops->rx_batch(b, 0, bufs, batch);
            aioixy_mempool_free_bulk(bufs, n);
            done += n;
        }
        a->ops->close(a);
        b->ops->close(b);
    } else if (strcmp(mode, "ixgbe-txrx") == 0) {
        struct aioixy_dev *a, *b;
        cfg.promisc = true;
        cfg.rx_descs = cfg.tx_descs = 512;
        if (aioixy_dev_open("sim-82599:ipp:0", &cfg, &a) || aioixy_dev_open("sim-82599:ipp:1", &cfg, &b)) {
            fprintf(stderr, "%s\n", aioixy_last_error());
            return 1;
        }
        struct sim_port *rxp = aioixy_sim_find("ipp", 1);
        uint32_t rdh = aioixy_sim_mmio_read(rxp, IXGBE_RDH(0));
        while (done < packets) {
            if (!send_fresh(a, bufs, batch))
                return 1;
            /* until the model delivered the whole batch into port 1's ring */
            uint32_t want = (rdh + batch) & 511u;
            while ((rdh = aioixy_sim_mmio_read(rxp, IXGBE_RDH(0))) != want)
                nanosleep(&(struct timespec){0, 1000}, NULL);
            uint32_t n = b->ops->rx_batch(b, 0, bufs, batch);
            if (n != batch)
                return 1;
            aioixy_mempool_free_bulk(bufs, n);
            done += n;
        }
        a->ops->close(a);
        b->ops->close(b);
    } else if (strcmp(mode, "virtio-txrx") == 0 && argc > 5) {
        struct aioixy_dev *a, *b;
        cfg.promisc = true;
        cfg.options = argc > 6 ? argv[6] : "";
        if (aioixy_dev_open(argv[4], &cfg, &a) || aioixy_dev_open(argv[5], &cfg, &b)) {
            fprintf(stderr, "%s\n", aioixy_last_error());
            return 1;
        }
        while (done < packets) {
            if (!send_fresh(a, bufs, batch))
                return 1;
            uint32_t got = 0;
            for (int tries = 0; got < batch && tries < 2000; tries++) {
                nanosleep(&(struct timespec){0, 2000000}, NULL);
                uint32_t n = b->ops->rx_batch(b, 0, bufs, batch - got);
                aioixy_mempool_free_bulk(bufs, n);
                got += n;
            }
            if (got != batch) {
                fprintf(stderr, "virtio: %u of %u frames arrived\n", got, batch);
                return 1;
            }
            done += got;
        }
        a->ops->close(a);
        b->ops->close(b);
    } else if (strcmp(mode, "ring") == 0) {
        struct aioixy_ring *r = aioixy_ring_create(1024);
        for (uint32_t i = 0; i < batch; i++)
            bufs[i] = (void *)(uintptr_t)(i + 1);
        while (done < packets) {
            uint32_t n = aioixy_ring_enqueue_burst(r, (void **)bufs, batch);
            done += aioixy_ring_dequeue_burst(r, (void **)bufs, n);
        }
        aioixy_ring_free(r);
    } else {
        return 2;
    }
    printf("%s %lu\n", mode, (unsigned long)done);
    return 0;
}
