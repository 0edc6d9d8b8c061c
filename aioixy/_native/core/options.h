/* Driver options: the "key=value,key=value" strings of aioixy_dev_config.options (and of a
 * device name's tail, as in "null:size=128").
 *
 * Every driver declares the keys it understands (struct aioixy_driver.options); the registry
 * refuses an option string with any other key, a key given twice, an empty key or an
 * over-long value before the driver is opened, so a misspelt option ("sise=1000") is an error,
 * never silently ignored. Numbers are read with aioixy_opt_u64: decimal digits only, checked
 * for overflow and range before they are narrowed.
 */
#ifndef AIOIXY_OPTIONS_H
#define AIOIXY_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest value an option may have: drivers copy values into buffers of this size + 1. */
#define AIOIXY_OPT_VALUE_MAX 95

/* 0 if every key in `options` is one of `known` (NULL-terminated; NULL = the driver takes no
 * options), appears once and has a value of at most AIOIXY_OPT_VALUE_MAX characters;
 * otherwise -AIOIXY_EINVAL with a message naming `who`, the key and the known ones. */
int aioixy_opt_check(const char *options, const char *const *known, const char *who);

/* Look up "key" in a "k=v,k=v" option string; copies the value (an empty string for a bare
 * "key"). Returns true if present. A value longer than val_len - 1 is cut: pass a buffer of
 * AIOIXY_OPT_VALUE_MAX + 1 bytes for strings aioixy_opt_check has passed. */
bool aioixy_opt_get(const char *options, const char *key, char *val, size_t val_len);

/* Read "key" as a decimal integer in lo..hi into *out: 0 if absent (*out untouched), 1 if
 * read, -AIOIXY_EINVAL (message naming `who`, key and range) if it is not such a number. */
int aioixy_opt_u64(const char *options, const char *key, uint64_t lo, uint64_t hi, uint64_t *out,
                   const char *who);

#endif
