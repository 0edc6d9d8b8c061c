#include "bpf.h"
#include "divert.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef XDP_FLAGS_REPLACE
#define XDP_FLAGS_REPLACE (1U << 4)
#endif

#define MAP_NAME_PREFIX "aioixy_" /* older maps: "aioixy_<pid>", PID namespace unknown */
#define MAP_NAME_OWNER "ax"        /* "ax<pid>_<pid namespace inode>", both base 36 */
#define XSKMAP_ENTRIES 256 /* rx queue indexes 0..255; a frame on a higher queue is passed */

struct aioixy_xdp_prog {
    struct aioixy_xdp_prog *next;
    int ifindex;
    unsigned refs;
    int map_fd, prog_fd, link_fd; /* link_fd < 0: attached through netlink */
    uint32_t mode_flag;           /* XDP_FLAGS_DRV_MODE or XDP_FLAGS_SKB_MODE */
    uint32_t queues_bound[XSKMAP_ENTRIES / 32];
    struct bpf_insn *divert_insns; /* the divert program it runs (NULL: the plain one) */
    uint32_t divert_len;
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct aioixy_xdp_prog *registry;

/* fork(): a child would keep copies of every map, program and link fd, and with them the
 * attachment and the sockets in the map, after the parent closed its ports (the parent's
 * reopen: busy until the child exits). The child closes its copies and forgets the registry
 * (the entries' memory is the child's copy, leaked on purpose: nothing is freed in a child).
 * The lock is held across fork so the child never sees a half-updated list. */
static void fork_prepare(void) { pthread_mutex_lock(&registry_lock); }
static void fork_parent(void) { pthread_mutex_unlock(&registry_lock); }
static void fork_child(void)
{
    for (struct aioixy_xdp_prog *p = registry; p; p = p->next) {
        int fds[3] = {p->link_fd, p->prog_fd, p->map_fd};
        for (int i = 0; i < 3; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        p->link_fd = p->prog_fd = p->map_fd = -1;
    }
    registry = NULL;
    pthread_mutex_unlock(&registry_lock);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

static uint64_t ptr64(const void *p) { return (uint64_t)(uintptr_t)p; }

/* ---- maps and programs ---- */

static void base36(uint64_t v, char *out)
{
    char tmp[16];
    int n = 0;
    do {
        tmp[n++] = "0123456789abcdefghijklmnopqrstuvwxyz"[v % 36];
        v /= 36;
    } while (v && n < 15);
    for (int i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
}

/* This process's PID namespace (the inode of /proc/self/ns/pid), 0 if unknown. */
static uint64_t pidns_inode(void)
{
    struct stat st;
    return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino & 0xffffffffu : 0;
}

static int create_xskmap(void)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_XSKMAP;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = XSKMAP_ENTRIES;
    /* the owner's pid in the name lets a later process tell a stale attachment from a live one */
    /* a pid means something only in its PID namespace: name that too (15 characters fit
     * "ax" + a pid <= 2^22 + "_" + a 32-bit inode, in base 36) */
    char pid36[16], ns36[16];
    base36((uint64_t)getpid(), pid36);
    base36(pidns_inode(), ns36);
    snprintf(a.map_name, sizeof(a.map_name), MAP_NAME_OWNER "%.5s_%.7s", pid36, ns36);
    int fd = (int)sys_bpf(BPF_MAP_CREATE, &a);
    if (fd < 0) {
        int e = errno;
        if (e == EPERM)
            return aioixy_set_error(AIOIXY_EPERM, "creating an XSKMAP needs root (CAP_BPF and "
                                    "CAP_NET_ADMIN): %s", strerror(e));
        return aioixy_set_error(AIOIXY_ENODEV, "this kernel cannot create an XSKMAP (AF_XDP "
                                "support missing?): %s", strerror(e));
    }
    return fd;
}

/* The whole XDP program, hand-assembled:
 *   r2 = ctx->rx_queue_index
 *   r1 = &xskmap
 *   r3 = XDP_PASS            (bpf_redirect_map's fallback action when the slot is empty)
 *   return bpf_redirect_map(r1, r2, r3)
 */
static int load_program(int map_fd, const struct bpf_insn *divert_insns, uint32_t divert_len)
{
    struct bpf_insn plain[] = {
        {.code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1,
         .off = (int16_t)offsetof(struct xdp_md, rx_queue_index)},
        {.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD,
         .imm = map_fd},
        {.code = 0}, /* upper half of the 64-bit immediate */
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static char log[4096];
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insns = divert_insns ? ptr64(divert_insns) : ptr64(plain);
    a.insn_cnt = divert_insns ? divert_len : sizeof(plain) / sizeof(plain[0]);
    a.license = ptr64("Dual MIT/GPL");
    snprintf(a.prog_name, sizeof(a.prog_name), "%s", AIOIXY_XDP_PROG_NAME);
    int fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0)
        return fd;
    /* load again with the verifier log only to explain the failure */
    int e = errno;
    a.log_buf = ptr64(log);
    a.log_size = sizeof(log);
    a.log_level = 1;
    log[0] = 0;
    fd = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (fd >= 0) /* cannot normally happen; take it */
        return fd;
    if (e == EPERM)
        return aioixy_set_error(AIOIXY_EPERM, "loading an XDP program needs root (CAP_BPF and "
                                "CAP_NET_ADMIN): %s", strerror(e));
    return aioixy_set_error(AIOIXY_ENODEV, "the kernel refused the XDP program: %s%s%.300s",
                            strerror(e), log[0] ? "; verifier: " : "", log);
}

static int prog_fd_by_id(uint32_t id)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_id = id;
    return (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
}

static int obj_info(int fd, void *info, uint32_t len)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.info.bpf_fd = (uint32_t)fd;
    a.info.info_len = len;
    a.info.info = ptr64(info);
    return (int)sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

/* Name of program `fd` and the pid in the name of its first map (0 if none / not ours). */
static int prog_identity(int fd, char *name, size_t len, int *owner_pid, uint64_t *owner_ns)
{
    uint32_t map_id = 0;
    struct bpf_prog_info pi;
    memset(&pi, 0, sizeof(pi));
    pi.nr_map_ids = 1;
    pi.map_ids = ptr64(&map_id);
    *owner_pid = 0;
    *owner_ns = 0;
    if (obj_info(fd, &pi, sizeof(pi)) != 0)
        return aioixy_set_error(AIOIXY_EIO, "cannot read BPF program info: %s", strerror(errno));
    snprintf(name, len, "%.*s", (int)sizeof(pi.name), pi.name);
    if (!map_id)
        return 0;
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_id = map_id;
    int mfd = (int)sys_bpf(BPF_MAP_GET_FD_BY_ID, &a);
    if (mfd < 0)
        return 0;
    struct bpf_map_info mi;
    memset(&mi, 0, sizeof(mi));
    if (obj_info(mfd, &mi, sizeof(mi)) == 0) {
        char *us = strchr(mi.name, '_');
        if (strncmp(mi.name, MAP_NAME_PREFIX, strlen(MAP_NAME_PREFIX)) == 0) {
            *owner_pid = atoi(mi.name + strlen(MAP_NAME_PREFIX)); /* namespace unknown */
        } else if (strncmp(mi.name, MAP_NAME_OWNER, strlen(MAP_NAME_OWNER)) == 0 && us) {
            *us = 0;
            *owner_pid = (int)strtol(mi.name + strlen(MAP_NAME_OWNER), NULL, 36);
            *owner_ns = strtoull(us + 1, NULL, 36);
        }
    }
    close(mfd);
    return 0;
}

int aioixy_bpf_prog_name(uint32_t prog_id, char *name, size_t len)
{
    name[0] = 0;
    int fd = prog_fd_by_id(prog_id);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return aioixy_set_error(errno == EPERM ? AIOIXY_EPERM : AIOIXY_EIO,
                                "cannot open BPF program %u: %s", prog_id, strerror(errno));
    }
    int pid;
    uint64_t ns;
    int rc = prog_identity(fd, name, len, &pid, &ns);
    close(fd);
    return rc;
}

/* ---- rtnetlink ---- */

struct nl_req {
    struct nlmsghdr nh;
    struct ifinfomsg ifi;
    char attrs[64];
};

static struct rtattr *nl_add(struct nl_req *r, int type, const void *data, size_t len)
{
    struct rtattr *rta = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->nh.nlmsg_len));
    rta->rta_type = (unsigned short)type;
    rta->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(rta), data, len);
    r->nh.nlmsg_len = NLMSG_ALIGN(r->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
    return rta;
}

/* Send one request and read the reply into buf; returns the reply length, or -errno. An ACK
 * (nlmsgerr with error 0) returns 0. */
static int nl_talk(struct nl_req *r, char *buf, size_t cap)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0)
        return -errno;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    r->nh.nlmsg_seq = 1;
    int rc;
    if (sendto(fd, r, r->nh.nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            goto out;
        }
        struct nlmsghdr *nh = (struct nlmsghdr *)buf;
        if (!NLMSG_OK(nh, (size_t)n)) {
            rc = -EPROTO;
            goto out;
        }
        if (nh->nlmsg_type == NLMSG_ERROR) {
            struct nlmsgerr *err = NLMSG_DATA(nh);
            rc = err->error; /* 0 = ACK, else -errno */
            goto out;
        }
        rc = (int)n;
        goto out;
    }
out:
    close(fd);
    return rc;
}

int aioixy_xdp_query(int ifindex, struct aioixy_xdp_query *out)
{
    memset(out, 0, sizeof(*out));
    struct nl_req r;
    memset(&r, 0, sizeof(r));
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
    r.nh.nlmsg_type = RTM_GETLINK;
    r.nh.nlmsg_flags = NLM_F_REQUEST;
    r.ifi.ifi_family = AF_UNSPEC;
    r.ifi.ifi_index = ifindex;
    uint32_t mask = RTEXT_FILTER_SKIP_STATS;
    nl_add(&r, IFLA_EXT_MASK, &mask, sizeof(mask));
    static _Thread_local char buf[32768];
    int n = nl_talk(&r, buf, sizeof(buf));
    if (n < 0)
        return aioixy_set_error(n == -ENODEV ? AIOIXY_ENODEV : AIOIXY_EIO,
                                "netlink query of interface %d failed: %s", ifindex, strerror(-n));
    struct nlmsghdr *nh = (struct nlmsghdr *)buf;
    if (nh->nlmsg_type != RTM_NEWLINK)
        return aioixy_set_error(AIOIXY_EIO, "unexpected netlink reply %u", nh->nlmsg_type);
    struct ifinfomsg *ifi = NLMSG_DATA(nh);
    int len = (int)nh->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
    for (struct rtattr *a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if ((a->rta_type & NLA_TYPE_MASK) != IFLA_XDP)
            continue;
        int nlen = (int)RTA_PAYLOAD(a);
        for (struct rtattr *x = RTA_DATA(a); RTA_OK(x, nlen); x = RTA_NEXT(x, nlen)) {
            uint32_t v = 0;
            if (RTA_PAYLOAD(x) >= 4)
                memcpy(&v, RTA_DATA(x), 4);
            switch (x->rta_type) {
            case IFLA_XDP_DRV_PROG_ID: out->drv_prog_id = v; break;
            case IFLA_XDP_SKB_PROG_ID: out->skb_prog_id = v; break;
            case IFLA_XDP_HW_PROG_ID: out->hw_prog_id = v; break;
            default: break;
            }
        }
    }
    return 0;
}

/* Attach prog_fd (or detach with -1) through netlink. `expected_fd` >= 0 makes it a replace of
 * exactly that program (the kernel refuses if something else is there). Returns 0 or -errno. */
static int nl_set_xdp(int ifindex, int prog_fd, uint32_t flags, int expected_fd)
{
    struct nl_req r;
    memset(&r, 0, sizeof(r));
    r.nh.nlmsg_len = NLMSG_LENGTH(sizeof(r.ifi));
    r.nh.nlmsg_type = RTM_SETLINK;
    r.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    r.ifi.ifi_family = AF_UNSPEC;
    r.ifi.ifi_index = ifindex;
    struct rtattr *nest = nl_add(&r, IFLA_XDP | NLA_F_NESTED, NULL, 0);
    nl_add(&r, IFLA_XDP_FD, &prog_fd, sizeof(prog_fd));
    if (expected_fd >= 0) {
        flags |= XDP_FLAGS_REPLACE;
        nl_add(&r, IFLA_XDP_EXPECTED_FD, &expected_fd, sizeof(expected_fd));
    }
    nl_add(&r, IFLA_XDP_FLAGS, &flags, sizeof(flags));
    nest->rta_len = (unsigned short)((char *)&r + r.nh.nlmsg_len - (char *)nest);
    char buf[1024];
    return nl_talk(&r, buf, sizeof(buf));
}

static int link_create(int prog_fd, int ifindex, uint32_t flags)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.link_create.prog_fd = (uint32_t)prog_fd;
    a.link_create.target_ifindex = (uint32_t)ifindex;
    a.link_create.attach_type = BPF_XDP;
    a.link_create.flags = flags;
    int fd = (int)sys_bpf(BPF_LINK_CREATE, &a);
    return fd < 0 ? -errno : fd;
}

static bool pid_alive(int pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Make room for our program: remove stale aioixy programs (their process is gone), refuse a
 * live one's, and someone else's unless forced. */
static int clear_interface(int ifindex, const char *ifname, bool force)
{
    struct aioixy_xdp_query q;
    int rc = aioixy_xdp_query(ifindex, &q);
    if (rc)
        return rc;
    if (q.hw_prog_id)
        return aioixy_set_error(AIOIXY_EBUSY, "%s has an XDP program offloaded to the NIC "
                                "(id %u); aioixy will not touch it", ifname, q.hw_prog_id);
    const struct { uint32_t id, flag; const char *mode; } slots[] = {
        {q.drv_prog_id, XDP_FLAGS_DRV_MODE, "native"},
        {q.skb_prog_id, XDP_FLAGS_SKB_MODE, "generic"},
    };
    for (size_t i = 0; i < 2; i++) {
        if (!slots[i].id)
            continue;
        int fd = prog_fd_by_id(slots[i].id);
        if (fd < 0) {
            if (errno == ENOENT)
                continue; /* detached meanwhile */
            return aioixy_set_error(errno == EPERM ? AIOIXY_EPERM : AIOIXY_EIO,
                                    "cannot inspect the XDP program on %s: %s", ifname, strerror(errno));
        }
        char name[32];
        int pid = 0;
        uint64_t ns = 0, my_ns = pidns_inode();
        rc = prog_identity(fd, name, sizeof(name), &pid, &ns);
        if (rc) {
            close(fd);
            return rc;
        }
        bool ours = strcmp(name, AIOIXY_XDP_PROG_NAME) == 0 && pid > 0;
        /* kill(pid, 0) means something only for a pid of our own PID namespace: an owner in
         * another one (a container, `unshare --pid`) may be alive under another number, so its
         * program is never judged stale here */
        if (ours && (!ns || !my_ns || ns != my_ns) && !force) {
            close(fd);
            return aioixy_set_error(AIOIXY_EBUSY, "%s has the XDP program (id %u, %s mode) of aioixy "
                                    "process %d of %s: aioixy cannot tell whether it still runs. "
                                    "If it does not, remove the program ('ip link set dev %s xdp "
                                    "off') or open with force=True", ifname, slots[i].id,
                                    slots[i].mode, pid, ns ? "another PID namespace" :
                                    "an unknown PID namespace (an older aioixy)", ifname);
        }
        if (ours && ns == my_ns && pid != getpid() && pid_alive(pid)) {
            close(fd);
            return aioixy_set_error(AIOIXY_EBUSY, "%s is in use by aioixy process %d (its XDP "
                                    "program, id %u, is attached in %s mode)", ifname, pid,
                                    slots[i].id, slots[i].mode);
        }
        if (!ours && !force) {
            close(fd);
            return aioixy_set_error(AIOIXY_EBUSY, "%s already runs another XDP program ('%s', id %u, "
                                    "%s mode); refusing to replace it (force=True would)", ifname,
                                    name, slots[i].id, slots[i].mode);
        }
        /* stale (its process died) or forced: remove exactly this program */
        int e = nl_set_xdp(ifindex, -1, slots[i].flag, fd);
        close(fd);
        if (e == -EBUSY)
            return aioixy_set_error(AIOIXY_EBUSY, "the XDP program on %s (id %u, '%s') is held by a "
                                    "bpf_link of a live process and cannot be replaced", ifname,
                                    slots[i].id, name);
        if (e < 0 && e != -EEXIST)
            return aioixy_set_error(AIOIXY_EIO, "cannot remove the stale XDP program %u from %s: %s",
                                    slots[i].id, ifname, strerror(-e));
    }
    return 0;
}

static int attach(struct aioixy_xdp_prog *p, const char *ifname, enum aioixy_xdp_mode mode,
                  enum aioixy_xdp_attach how)
{
    uint32_t modes[2];
    int nmodes = 0;
    if (mode != AIOIXY_XDP_GENERIC)
        modes[nmodes++] = XDP_FLAGS_DRV_MODE;
    if (mode != AIOIXY_XDP_NATIVE)
        modes[nmodes++] = XDP_FLAGS_SKB_MODE;
    int err = 0;
    if (how != AIOIXY_ATTACH_NETLINK) {
        for (int i = 0; i < nmodes; i++) {
            int fd = link_create(p->prog_fd, p->ifindex, modes[i]);
            if (fd >= 0) {
                p->link_fd = fd;
                p->mode_flag = modes[i];
                return 0;
            }
            err = -fd;
            if (err == EBUSY || err == EEXIST)
                break;
        }
    }
    if (how != AIOIXY_ATTACH_LINK && err != EBUSY && err != EEXIST) {
        for (int i = 0; i < nmodes; i++) {
            int e = nl_set_xdp(p->ifindex, p->prog_fd, modes[i] | XDP_FLAGS_UPDATE_IF_NOEXIST, -1);
            if (e == 0) {
                p->link_fd = -1;
                p->mode_flag = modes[i];
                return 0;
            }
            err = -e;
            if (err == EBUSY || err == EEXIST)
                break;
        }
    }
    if (err == EBUSY || err == EEXIST)
        return aioixy_set_error(AIOIXY_EBUSY, "another XDP program was attached to %s meanwhile: %s",
                                ifname, strerror(err));
    if (err == EPERM)
        return aioixy_set_error(AIOIXY_EPERM, "attaching XDP to %s needs root: %s", ifname, strerror(err));
    return aioixy_set_error(AIOIXY_ENODEV, "%s does not support XDP in %s mode: %s", ifname,
                            mode == AIOIXY_XDP_NATIVE ? "native" :
                            mode == AIOIXY_XDP_GENERIC ? "generic" : "native or generic",
                            strerror(err));
}

static void destroy(struct aioixy_xdp_prog *p)
{
    if (p->link_fd >= 0)
        close(p->link_fd); /* the link's last reference: the kernel detaches */
    else if (p->mode_flag)
        nl_set_xdp(p->ifindex, -1, p->mode_flag, p->prog_fd); /* only if it is still ours */
    if (p->prog_fd >= 0)
        close(p->prog_fd);
    if (p->map_fd >= 0)
        close(p->map_fd);
    free(p->divert_insns);
    free(p);
}

/* The divert program for d on map_fd, in a fresh allocation (*len instructions). */
static struct bpf_insn *divert_program(const struct aioixy_divert *d, int map_fd, uint32_t *len)
{
    struct bpf_insn *insns = malloc(sizeof(*insns) * AIOIXY_DIVERT_EBPF_MAX);
    if (insns)
        *len = aioixy_divert_ebpf(d, map_fd, XDP_PASS, insns);
    return insns;
}

int aioixy_xdp_acquire(int ifindex, const char *ifname, enum aioixy_xdp_mode mode,
                       enum aioixy_xdp_attach how, bool force, const struct aioixy_divert *divert,
                       struct aioixy_xdp_prog **out)
{
    *out = NULL;
    pthread_mutex_lock(&registry_lock);
    for (struct aioixy_xdp_prog *p = registry; p; p = p->next) {
        if (p->ifindex == ifindex) {
            /* one program per interface: ports sharing it must want the same diversion */
            bool same = !divert && !p->divert_insns;
            if (divert && p->divert_insns) {
                uint32_t len = 0;
                struct bpf_insn *want = divert_program(divert, p->map_fd, &len);
                same = want && len == p->divert_len &&
                       memcmp(want, p->divert_insns, len * sizeof(*want)) == 0;
                free(want);
            }
            if (!same) {
                pthread_mutex_unlock(&registry_lock);
                return aioixy_set_error(AIOIXY_EBUSY, "%s already has this process's XDP program "
                                        "with %s: ports of one process on one interface share "
                                        "it, so they must divert the same rules", ifname,
                                        p->divert_insns ? "divert rules" : "no divert rules");
            }
            bool want_native = mode == AIOIXY_XDP_NATIVE, want_generic = mode == AIOIXY_XDP_GENERIC;
            if ((want_native && p->mode_flag != XDP_FLAGS_DRV_MODE) ||
                (want_generic && p->mode_flag != XDP_FLAGS_SKB_MODE)) {
                pthread_mutex_unlock(&registry_lock);
                return aioixy_set_error(AIOIXY_EBUSY, "%s already has this process's XDP program "
                                        "in %s mode", ifname, aioixy_xdp_mode_name(p));
            }
            p->refs++;
            *out = p;
            pthread_mutex_unlock(&registry_lock);
            return 0;
        }
    }
    struct aioixy_xdp_prog *p = calloc(1, sizeof(*p));
    int rc;
    if (!p) {
        rc = aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
        goto fail;
    }
    p->ifindex = ifindex;
    p->refs = 1;
    p->map_fd = p->prog_fd = p->link_fd = -1;
    if ((rc = clear_interface(ifindex, ifname, force)) != 0)
        goto fail;
    if ((p->map_fd = rc = create_xskmap()) < 0)
        goto fail;
    if (divert && !(p->divert_insns = divert_program(divert, p->map_fd, &p->divert_len))) {
        rc = aioixy_set_error(AIOIXY_ENOMEM, "out of memory");
        goto fail;
    }
    if ((p->prog_fd = rc = load_program(p->map_fd, p->divert_insns, p->divert_len)) < 0)
        goto fail;
    if ((rc = attach(p, ifname, mode, how)) != 0)
        goto fail;
    p->next = registry;
    registry = p;
    *out = p;
    pthread_mutex_unlock(&registry_lock);
    return 0;
fail:
    if (p)
        destroy(p);
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

int aioixy_xdp_bind_queue(struct aioixy_xdp_prog *p, uint32_t queue, int xsk_fd)
{
    if (queue >= XSKMAP_ENTRIES)
        return aioixy_set_error(AIOIXY_EINVAL, "queue %u: AF_XDP queues must be below %d", queue,
                                XSKMAP_ENTRIES);
    pthread_mutex_lock(&registry_lock);
    if (p->queues_bound[queue / 32] & (1u << (queue % 32))) {
        pthread_mutex_unlock(&registry_lock);
        return aioixy_set_error(AIOIXY_EBUSY, "rx queue %u already has an AF_XDP socket in this "
                                "process", queue);
    }
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    uint32_t key = queue, val = (uint32_t)xsk_fd;
    a.map_fd = (uint32_t)p->map_fd;
    a.key = ptr64(&key);
    a.value = ptr64(&val);
    a.flags = BPF_ANY;
    int rc = 0;
    if (sys_bpf(BPF_MAP_UPDATE_ELEM, &a) != 0)
        rc = aioixy_set_error(AIOIXY_EIO, "cannot put the AF_XDP socket of queue %u into the XSKMAP: %s",
                              queue, strerror(errno));
    else
        p->queues_bound[queue / 32] |= 1u << (queue % 32);
    pthread_mutex_unlock(&registry_lock);
    return rc;
}

void aioixy_xdp_unbind_queue(struct aioixy_xdp_prog *p, uint32_t queue)
{
    if (queue >= XSKMAP_ENTRIES)
        return;
    pthread_mutex_lock(&registry_lock);
    if (p->queues_bound[queue / 32] & (1u << (queue % 32))) {
        union bpf_attr a;
        memset(&a, 0, sizeof(a));
        uint32_t key = queue;
        a.map_fd = (uint32_t)p->map_fd;
        a.key = ptr64(&key);
        sys_bpf(BPF_MAP_DELETE_ELEM, &a); /* closing the socket removes it as well */
        p->queues_bound[queue / 32] &= ~(1u << (queue % 32));
    }
    pthread_mutex_unlock(&registry_lock);
}

void aioixy_xdp_release(struct aioixy_xdp_prog *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&registry_lock);
    if (--p->refs) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    for (struct aioixy_xdp_prog **pp = &registry; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    destroy(p);
    pthread_mutex_unlock(&registry_lock);
}

const char *aioixy_xdp_mode_name(const struct aioixy_xdp_prog *p)
{
    return p->mode_flag == XDP_FLAGS_DRV_MODE ? "native" : "generic";
}

bool aioixy_xdp_is_link(const struct aioixy_xdp_prog *p) { return p->link_fd >= 0; }

int aioixy_xdp_attach_verdict(int ifindex, int action, const char *name, bool native)
{
    struct bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = action},
        {.code = BPF_JMP | BPF_EXIT},
    };
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insns = ptr64(insns);
    a.insn_cnt = 2;
    a.license = ptr64("Dual MIT/GPL");
    snprintf(a.prog_name, sizeof(a.prog_name), "%s", name);
    int prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (prog < 0)
        return aioixy_set_error(errno == EPERM ? AIOIXY_EPERM : AIOIXY_ENODEV,
                                "cannot load an XDP program: %s", strerror(errno));
    int link = link_create(prog, ifindex, native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
    close(prog); /* the link holds the program */
    if (link < 0)
        return aioixy_set_error(-link == EBUSY || -link == EEXIST ? AIOIXY_EBUSY : AIOIXY_ENODEV,
                                "cannot attach an XDP program to interface %d: %s", ifindex,
                                strerror(-link));
    return link;
}
