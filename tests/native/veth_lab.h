/* The veth pair a native smoke test makes for itself (xdp_smoke, packet_smoke): its two names,
 * a shell helper that says which command failed, and the removal registered with atexit (the
 * peer goes with it). A run killed before atexit leaves the pair to tests/kernel/netns.py's
 * sweep of stale test links. */
#ifndef AIOIXY_TEST_VETH_LAB_H
#define AIOIXY_TEST_VETH_LAB_H

#include <stdio.h>
#include <stdlib.h>

static char va[16], vb[16];
static const char *lab_tag = "smoke";

static void lab_cleanup(void)
{
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "ip link del %s 2>/dev/null", va);
    if (system(cmd)) { /* already gone */
    }
}

static int sh(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "%s: '%s' failed (%d)\n", lab_tag, cmd, rc);
    return rc;
}

#endif
