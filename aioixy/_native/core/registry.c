#include "device.h"

#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Written only by constructors at load time (single-threaded), read afterwards. */
static struct aioixy_driver *drivers;

void aioixy_register_driver(struct aioixy_driver *drv)
{
    drv->next = drivers;
    drivers = drv;
}

bool aioixy_driver_pci_id(uint32_t i, uint16_t *vendor, uint16_t *device, const char **driver)
{
    for (const struct aioixy_driver *d = drivers; d; d = d->next)
        for (const struct aioixy_pci_id *id = d->pci_ids; id && id->vendor; id++)
            if (i-- == 0) {
                *vendor = id->vendor;
                *device = id->device;
                *driver = d->name;
                return true;
            }
    return false;
}

/* "DDDD:BB:DD.F" or "BB:DD.F" -> canonical "dddd:bb:dd.f"; false if it is not a PCI address. */
static bool parse_pci_addr(const char *name, char *out, size_t out_len)
{
    unsigned dom = 0, bus, dev, fn;
    char tail;
    if (sscanf(name, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) == 4) {
        /* full form */
    } else if (dom = 0, sscanf(name, "%x:%x.%x%c", &bus, &dev, &fn, &tail) == 3) {
        /* short form */
    } else {
        return false;
    }
    for (const char *c = name; *c; c++)
        if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
            return false;
    if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
        return false;
    snprintf(out, out_len, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
    return true;
}

static bool read_hex_file(const char *path, unsigned *val)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fscanf(f, "%x", val) == 1;
    fclose(f);
    return ok;
}

static void list_drivers(char *buf, size_t len)
{
    buf[0] = '\0';
    for (struct aioixy_driver *d = drivers; d; d = d->next) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", used ? ", " : "", d->name);
    }
}

static int validate(const struct aioixy_dev_config *cfg)
{
    if (cfg->rx_queues < 1 || cfg->rx_queues > AIOIXY_MAX_QUEUES)
        return aioixy_set_error(AIOIXY_EINVAL, "rx_queues=%u: must be 1..%d", cfg->rx_queues,
                                AIOIXY_MAX_QUEUES);
    if (cfg->tx_queues < 1 || cfg->tx_queues > AIOIXY_MAX_QUEUES)
        return aioixy_set_error(AIOIXY_EINVAL, "tx_queues=%u: must be 1..%d", cfg->tx_queues,
                                AIOIXY_MAX_QUEUES);
    uint32_t bs = cfg->buf_size ? cfg->buf_size : AIOIXY_DEFAULT_BUF_SIZE;
    if (bs < AIOIXY_MIN_BUF_SIZE || bs > AIOIXY_MAX_BUF_SIZE || (bs & (bs - 1)))
        return aioixy_set_error(AIOIXY_EINVAL, "buf_size=%u: must be a power of two in %u..%u", bs,
                                AIOIXY_MIN_BUF_SIZE, AIOIXY_MAX_BUF_SIZE);
    if (cfg->pool_bufs && (cfg->pool_bufs < AIOIXY_MIN_POOL_BUFS || cfg->pool_bufs > AIOIXY_MAX_POOL_BUFS))
        return aioixy_set_error(AIOIXY_EINVAL, "pool_size=%u: must be %u..%u buffers", cfg->pool_bufs,
                                AIOIXY_MIN_POOL_BUFS, AIOIXY_MAX_POOL_BUFS);
    if (cfg->rx_descs > AIOIXY_MAX_DESCS || cfg->tx_descs > AIOIXY_MAX_DESCS)
        return aioixy_set_error(AIOIXY_EINVAL, "rx_descs=%u, tx_descs=%u: must be at most %u",
                                cfg->rx_descs, cfg->tx_descs, AIOIXY_MAX_DESCS);
    return 0;
}

/* Limits a driver left at 0 get the generic ones: no frame is shorter than one byte. */
static int finish_open(int rc, struct aioixy_dev **out)
{
    if (rc == 0 && *out) {
        if (!(*out)->min_tx_len)
            (*out)->min_tx_len = 1;
        if (!(*out)->max_tx_len)
            (*out)->max_tx_len = UINT32_MAX;
    }
    return rc;
}

/* Every driver is opened through here: its options are checked against the keys it declares. */
static int open_with(const struct aioixy_driver *d, const char *name,
                     const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    int rc = aioixy_opt_check(cfg->options, d->options, d->name);
    return rc ? rc : d->open(name, cfg, out);
}

/* The driver claiming `name` by prefix: "null" claims "null" and "null:..."; "pair:" claims
 * "pair:..." */
static struct aioixy_driver *by_prefix(const char *name)
{
    for (struct aioixy_driver *d = drivers; d; d = d->next) {
        if (!d->prefix)
            continue;
        size_t pl = strlen(d->prefix);
        if (strncmp(name, d->prefix, pl) == 0 &&
            (name[pl] == '\0' || name[pl] == ':' || d->prefix[pl - 1] == ':'))
            return d;
    }
    return NULL;
}

bool aioixy_device_in_memory(const char *name)
{
    const struct aioixy_driver *d = name ? by_prefix(name) : NULL;
    return d && d->in_memory;
}

int aioixy_dev_open(const char *name, const struct aioixy_dev_config *cfg, struct aioixy_dev **out)
{
    *out = NULL;
    aioixy_clear_error();
    if (!name || !*name)
        return aioixy_set_error(AIOIXY_ENODEV, "empty device name");
    if (strlen(name) >= sizeof((*out)->name))
        return aioixy_set_error(AIOIXY_EINVAL, "device name '%.40s...' is longer than %zu characters",
                                name, sizeof((*out)->name) - 1);
    int rc = validate(cfg);
    if (rc)
        return rc;
    struct aioixy_driver *named = by_prefix(name);
    if (named)
        return finish_open(open_with(named, name, cfg, out), out);
    char addr[32];
    char known[256];
    list_drivers(known, sizeof(known));
    if (!parse_pci_addr(name, addr, sizeof(addr)))
        return aioixy_set_error(AIOIXY_ENODEV,
                                "unknown device '%s': expected 'null', 'pair:NAME:a|b', "
                                "'sim-82599:...', 'packet:IFACE', 'xdp:IFACE' or a PCI address like "
                                "0000:01:00.0 "
                                "(drivers built in: %s)", name, known);
    char path[128];
    unsigned vendor, device, klass = 0;
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/vendor", addr);
    if (!read_hex_file(path, &vendor))
        return aioixy_set_error(AIOIXY_ENODEV, "no PCI device at %s (%s does not exist)", addr, path);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/device", addr);
    if (!read_hex_file(path, &device))
        return aioixy_set_error(AIOIXY_EIO, "cannot read the device id of %s", addr);
    snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/class", addr);
    (void)read_hex_file(path, &klass);
    for (struct aioixy_driver *d = drivers; d; d = d->next)
        for (const struct aioixy_pci_id *id = d->pci_ids; id && id->vendor; id++)
            if (id->vendor == vendor && id->device == device)
                return finish_open(open_with(d, addr, cfg, out), out);
    return aioixy_set_error(AIOIXY_ENODEV,
                            "PCI device %s (%04x:%04x, class %06x) is not supported: no aioixy "
                            "driver for it (drivers built in: %s)", addr, vendor, device, klass, known);
}

int aioixy_dev_create_pools(struct aioixy_dev *dev, const struct aioixy_dev_config *cfg)
{
    uint16_t n = cfg->rx_queues > cfg->tx_queues ? cfg->rx_queues : cfg->tx_queues;
    uint32_t bufs = cfg->pool_bufs ? cfg->pool_bufs : AIOIXY_DEFAULT_POOL_BUFS;
    for (uint16_t q = 0; q < n; q++) {
        dev->pools[q] = aioixy_mempool_create(&dev->dma, bufs, cfg->buf_size);
        if (!dev->pools[q]) {
            int rc = -aioixy_last_errcode();
            aioixy_dev_release_pools(dev);
            return rc;
        }
        dev->num_pools = q + 1;
    }
    return 0;
}

void aioixy_dev_release_pools(struct aioixy_dev *dev)
{
    for (uint16_t q = 0; q < dev->num_pools; q++) {
        aioixy_mempool_release(dev->pools[q]);
        dev->pools[q] = NULL;
    }
    dev->num_pools = 0;
}

void aioixy_dev_set_gone(struct aioixy_dev *dev, const char *fmt, ...)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong_explicit(&dev->gone, &expect, 1, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return; /* another queue's poller (or a control call) said it first */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dev->gone_msg, sizeof(dev->gone_msg), fmt, ap);
    va_end(ap);
    atomic_store_explicit(&dev->gone, 2, memory_order_release);
}
