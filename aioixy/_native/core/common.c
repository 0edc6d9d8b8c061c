#include "common.h"

#include <stdarg.h>
#include <stdio.h>

/* Errors are per thread: a poller failing must not clobber the message Python is reading. */
static _Thread_local char err_msg[512];
static _Thread_local int err_code;

int aioixy_set_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
    va_end(ap);
    err_code = code;
    return -code;
}

const char *aioixy_last_error(void) { return err_msg; }
int aioixy_last_errcode(void) { return err_code; }

void aioixy_clear_error(void)
{
    err_msg[0] = '\0';
    err_code = 0;
}
