#include "options.h"

#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The entry of `options` starting at p: its key length, its whole length, its value (or NULL). */
struct opt_entry {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    const char *next;  /* the following entry, or NULL */
};

static void opt_split(const char *p, struct opt_entry *e)
{
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    const char *eq = memchr(p, '=', len);
    e->key = p;
    e->key_len = eq ? (size_t)(eq - p) : len;
    e->value = eq ? eq + 1 : NULL;
    e->value_len = eq ? len - e->key_len - 1 : 0;
    e->next = end ? end + 1 : NULL;
}

static void list_keys(const char *const *known, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; known && known[i]; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, len - used, "%s%s", i ? ", " : "", known[i]);
    }
}

int aioixy_opt_check(const char *options, const char *const *known, const char *who)
{
    if (!options || !*options)
        return 0;
    char keys[256];
    list_keys(known, keys, sizeof(keys));
    struct opt_entry e;
    for (const char *p = options; p; p = e.next) {
        opt_split(p, &e);
        if (e.key_len == 0)
            return aioixy_set_error(AIOIXY_EINVAL, "%s: empty option name in '%s' (expected "
                                    "key=value,key=value)", who, options);
        bool ok = false;
        for (size_t i = 0; known && known[i]; i++)
            if (strlen(known[i]) == e.key_len && strncmp(known[i], e.key, e.key_len) == 0)
                ok = true;
        if (!ok) {
            if (!known || !known[0])
                return aioixy_set_error(AIOIXY_EINVAL, "%s: takes no options (got '%.*s')", who,
                                        (int)e.key_len, e.key);
            return aioixy_set_error(AIOIXY_EINVAL, "%s: unknown option '%.*s' (known: %s)", who,
                                    (int)e.key_len, e.key, keys);
        }
        if (e.value_len > AIOIXY_OPT_VALUE_MAX)
            return aioixy_set_error(AIOIXY_EINVAL, "%s: the value of option '%.*s' is longer than "
                                    "%d characters", who, (int)e.key_len, e.key, AIOIXY_OPT_VALUE_MAX);
        struct opt_entry f;
        for (const char *q = e.next; q; q = f.next) {
            opt_split(q, &f);
            if (f.key_len == e.key_len && strncmp(f.key, e.key, e.key_len) == 0)
                return aioixy_set_error(AIOIXY_EINVAL, "%s: option '%.*s' is given twice", who,
                                        (int)e.key_len, e.key);
        }
    }
    return 0;
}

bool aioixy_opt_get(const char *options, const char *key, char *val, size_t val_len)
{
    if (!options || !*options || !val_len)
        return false;
    size_t klen = strlen(key);
    struct opt_entry e;
    for (const char *p = options; p; p = e.next) {
        opt_split(p, &e);
        if (e.key_len != klen || strncmp(e.key, key, klen) != 0)
            continue;
        size_t vlen = e.value ? e.value_len : 0; /* a bare "key" is a flag: empty value */
        if (vlen >= val_len)
            vlen = val_len - 1;
        if (vlen)
            memcpy(val, e.value, vlen);
        val[vlen] = '\0';
        return true;
    }
    return false;
}

int aioixy_opt_u64(const char *options, const char *key, uint64_t lo, uint64_t hi, uint64_t *out,
                   const char *who)
{
    char v[AIOIXY_OPT_VALUE_MAX + 1];
    if (!aioixy_opt_get(options, key, v, sizeof(v)))
        return 0;
    /* digits only: strtoull alone would take "-1" (as 2^64 - 1), " 5" and "0x10" */
    bool digits = v[0] != '\0';
    for (const char *c = v; *c; c++)
        if (*c < '0' || *c > '9')
            digits = false;
    errno = 0;
    char *end = v;
    unsigned long long n = digits ? strtoull(v, &end, 10) : 0;
    if (!digits || *end || errno == ERANGE || n < lo || n > hi)
        return aioixy_set_error(AIOIXY_EINVAL, "%s: %s='%s' is not a number in %llu..%llu", who,
                                key, v, (unsigned long long)lo, (unsigned long long)hi);
    *out = (uint64_t)n;
    return 1;
}
