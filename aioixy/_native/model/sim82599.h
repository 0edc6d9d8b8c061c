/* sim-82599: the behavioural 82599 model (model/sim_*.c). Besides the device it registers
 * ("sim-82599:CARD:PORT"), it offers a raw register interface so tests can play a *broken*
 * driver and check that the model catches each mistake. */
#ifndef AIOIXY_SIM82599_H
#define AIOIXY_SIM82599_H

#include "common.h"

#include <stddef.h>

struct sim_port;

/* Take port `port` (0/1) of card `card` (created with `options` on first use); NULL + error. */
struct sim_port *aioixy_sim_attach(const char *card, int port, const char *options, bool flow_control);
void aioixy_sim_detach(struct sim_port *p);
/* One register transaction, as a PCIe read/write request reaches the device. */
uint32_t aioixy_sim_mmio_read(struct sim_port *p, uint32_t reg);
void aioixy_sim_mmio_write(struct sim_port *p, uint32_t reg, uint32_t val);
struct sim_port *aioixy_sim_find(const char *card, int port);
int aioixy_sim_faults(const char *card, char *buf, size_t len);
uint64_t aioixy_sim_total_faults(void);
uint64_t aioixy_sim_generated(struct sim_port *p);
/* MSI-X: vector `vector`'s message writes eventfd `fd` (-1: no target), as VFIO's MSI-X
 * trigger does; messages sent and held back by EITR so far (the latter for all vectors). */
int aioixy_sim_msix_attach(struct sim_port *p, uint32_t vector, int fd);
void aioixy_sim_irq_counts(struct sim_port *p, uint32_t vector, uint64_t *sent, uint64_t *throttled);
uint32_t aioixy_toeplitz(const uint8_t key[40], const uint8_t *in, size_t len);

#endif
