#include "divert.h"

#include <errno.h>
#include <linux/bpf.h>
#include <linux/filter.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int aioixy_divert_from_config(const struct aioixy_dev_config *cfg, struct aioixy_divert *out)
{
    out->rules = cfg->divert_rules;
    out->n = cfg->divert_count;
    out->default_allow = cfg->divert_default;
    if (out->n > AIOIXY_DIVERT_MAX_RULES)
        return aioixy_set_error(AIOIXY_EINVAL, "divert: %u rules; at most %d compile into the "
                                "kernel's filter", out->n, AIOIXY_DIVERT_MAX_RULES);
    if (out->n && !out->rules)
        return aioixy_set_error(AIOIXY_EINVAL, "divert: %u rules but no rule array", out->n);
    for (uint32_t i = 0; i < out->n; i++) {
        const struct aioixy_divert_rule *r = &out->rules[i];
        if (r->proto < -1 || r->proto > 255 || r->dport < -1 || r->dport > 65535 ||
            (r->dport >= 0 && r->proto != 6 && r->proto != 17) || r->allow > 1)
            return aioixy_set_error(AIOIXY_EINVAL, "divert rule %u: bad protocol %d / port %d",
                                    i, r->proto, r->dport);
    }
    return 0;
}

bool aioixy_divert_is_narrow(const struct aioixy_divert *d)
{
    if (d->default_allow)
        return false;
    for (uint32_t i = 0; i < d->n; i++) {
        const struct aioixy_divert_rule *r = &d->rules[i];
        if (r->allow && r->dport < 0 && !r->src_mask && !r->dst_mask)
            return false; /* e.g. "allow tcp": SSH would go too */
    }
    return true;
}

/* ---- eBPF (the XDP program) ---- */

enum { L_PASS, L_ALLOW, L_DEFAULT, L_RULES, L_HAVEP, L_FIXED, /* then one per rule */ };

struct emit {
    struct bpf_insn *out;
    uint32_t n;
    int32_t label[L_FIXED + AIOIXY_DIVERT_MAX_RULES + 1];
    struct { uint32_t at; int label; } fix[16 + 5 * AIOIXY_DIVERT_MAX_RULES]; /* <= 5 a rule */
    uint32_t nfix;
};

static void put(struct emit *e, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
    e->out[e->n++] = (struct bpf_insn){.code = code, .dst_reg = dst, .src_reg = src, .off = off,
                                       .imm = imm};
}

/* A jump to a label resolved at the end (forward only). */
static void jump(struct emit *e, uint8_t code, uint8_t dst, int32_t imm, int label)
{
    e->fix[e->nfix].at = e->n;
    e->fix[e->nfix++].label = label;
    put(e, code, dst, 0, 0, imm);
}

static void here(struct emit *e, int label) { e->label[label] = (int32_t)e->n; }

#define R0 BPF_REG_0
#define R1 BPF_REG_1
#define R2 BPF_REG_2
#define R3 BPF_REG_3
#define R4 BPF_REG_4
#define R5 BPF_REG_5
#define R6 BPF_REG_6
#define R7 BPF_REG_7
#define R8 BPF_REG_8
#define R9 BPF_REG_9
#define NO_PORT 0x10000 /* "no destination port": no dport rule (0..65535) matches it */

uint32_t aioixy_divert_ebpf(const struct aioixy_divert *d, int map_fd, int fallback,
                            struct bpf_insn *out)
{
    static _Thread_local struct emit e;
    memset(&e, 0, sizeof(e));
    e.out = out;
    /* r1 = ctx (kept), r2 = data, r3 = data_end; r7 src, r8 dst, r9 proto, r6 dport */
    put(&e, BPF_LDX | BPF_MEM | BPF_W, R2, R1, (int16_t)offsetof(struct xdp_md, data), 0);
    put(&e, BPF_LDX | BPF_MEM | BPF_W, R3, R1, (int16_t)offsetof(struct xdp_md, data_end), 0);
    put(&e, BPF_ALU64 | BPF_MOV | BPF_X, R4, R2, 0, 0);
    put(&e, BPF_ALU64 | BPF_ADD | BPF_K, R4, 0, 0, 34);
    jump(&e, BPF_JMP | BPF_JGT | BPF_X, R4, 0, L_DEFAULT); /* src_reg set below */
    e.out[e.n - 1].src_reg = R3;
    put(&e, BPF_LDX | BPF_MEM | BPF_H, R4, R2, 12, 0);
    put(&e, BPF_ALU | BPF_END | BPF_TO_BE, R4, 0, 0, 16); /* wire order -> its value */
    jump(&e, BPF_JMP | BPF_JNE | BPF_K, R4, 0x0800, L_DEFAULT);
    put(&e, BPF_LDX | BPF_MEM | BPF_W, R7, R2, 26, 0);
    put(&e, BPF_ALU | BPF_END | BPF_TO_BE, R7, 0, 0, 32);
    put(&e, BPF_LDX | BPF_MEM | BPF_W, R8, R2, 30, 0);
    put(&e, BPF_ALU | BPF_END | BPF_TO_BE, R8, 0, 0, 32);
    put(&e, BPF_LDX | BPF_MEM | BPF_B, R9, R2, 23, 0);
    put(&e, BPF_ALU64 | BPF_MOV | BPF_K, R6, 0, 0, NO_PORT);
    jump(&e, BPF_JMP | BPF_JEQ | BPF_K, R9, 6, L_HAVEP);
    jump(&e, BPF_JMP | BPF_JNE | BPF_K, R9, 17, L_RULES);
    here(&e, L_HAVEP);
    put(&e, BPF_LDX | BPF_MEM | BPF_B, R4, R2, 14, 0);
    put(&e, BPF_ALU64 | BPF_AND | BPF_K, R4, 0, 0, 15);
    put(&e, BPF_ALU64 | BPF_LSH | BPF_K, R4, 0, 0, 2);
    put(&e, BPF_ALU64 | BPF_MOV | BPF_X, R5, R2, 0, 0);
    put(&e, BPF_ALU64 | BPF_ADD | BPF_X, R5, R4, 0, 0); /* r5 = data + 4 * IHL */
    put(&e, BPF_ALU64 | BPF_MOV | BPF_X, R0, R5, 0, 0);
    put(&e, BPF_ALU64 | BPF_ADD | BPF_K, R0, 0, 0, 18);
    jump(&e, BPF_JMP | BPF_JGT | BPF_X, R0, 0, L_RULES); /* the port is not in the frame */
    e.out[e.n - 1].src_reg = R3;
    put(&e, BPF_LDX | BPF_MEM | BPF_H, R6, R5, 16, 0);
    put(&e, BPF_ALU | BPF_END | BPF_TO_BE, R6, 0, 0, 16);
    here(&e, L_RULES);
    for (uint32_t i = 0; i < d->n; i++) {
        const struct aioixy_divert_rule *r = &d->rules[i];
        int next = L_FIXED + (int)i;
        if (r->src_mask) { /* 32-bit ALU and compare: immediates are sign-extended in 64 bits */
            put(&e, BPF_ALU64 | BPF_MOV | BPF_X, R0, R7, 0, 0);
            put(&e, BPF_ALU | BPF_AND | BPF_K, R0, 0, 0, (int32_t)r->src_mask);
            jump(&e, BPF_JMP32 | BPF_JNE | BPF_K, R0, (int32_t)(r->src & r->src_mask), next);
        }
        if (r->dst_mask) {
            put(&e, BPF_ALU64 | BPF_MOV | BPF_X, R0, R8, 0, 0);
            put(&e, BPF_ALU | BPF_AND | BPF_K, R0, 0, 0, (int32_t)r->dst_mask);
            jump(&e, BPF_JMP32 | BPF_JNE | BPF_K, R0, (int32_t)(r->dst & r->dst_mask), next);
        }
        if (r->proto >= 0)
            jump(&e, BPF_JMP | BPF_JNE | BPF_K, R9, r->proto, next);
        if (r->dport >= 0)
            jump(&e, BPF_JMP | BPF_JNE | BPF_K, R6, r->dport, next);
        jump(&e, BPF_JMP | BPF_JA, 0, 0, r->allow ? L_ALLOW : L_PASS);
        here(&e, next);
    }
    here(&e, L_DEFAULT);
    jump(&e, BPF_JMP | BPF_JA, 0, 0, d->default_allow ? L_ALLOW : L_PASS);
    /* the verifier refuses unreachable code: emit each ending only if something jumps to it */
    bool to_pass = false, to_allow = false;
    for (uint32_t k = 0; k < e.nfix; k++) {
        to_pass |= e.fix[k].label == L_PASS;
        to_allow |= e.fix[k].label == L_ALLOW;
    }
    if (to_pass) {
        here(&e, L_PASS);
        put(&e, BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, XDP_PASS);
        put(&e, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
    if (!to_allow)
        goto resolve;
    here(&e, L_ALLOW);
    put(&e, BPF_LDX | BPF_MEM | BPF_W, R2, R1, (int16_t)offsetof(struct xdp_md, rx_queue_index), 0);
    put(&e, BPF_LD | BPF_DW | BPF_IMM, R1, BPF_PSEUDO_MAP_FD, 0, map_fd);
    put(&e, 0, 0, 0, 0, 0); /* upper half of the 64-bit immediate */
    put(&e, BPF_ALU64 | BPF_MOV | BPF_K, R3, 0, 0, fallback);
    put(&e, BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map);
    put(&e, BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
resolve:
    for (uint32_t k = 0; k < e.nfix; k++)
        e.out[e.fix[k].at].off = (int16_t)(e.label[e.fix[k].label] - (int32_t)e.fix[k].at - 1);
    return e.n;
}

/* ---- classic BPF (the packet: socket filter) ---- */

#define ACCEPT 0xffffffffu /* the whole frame */

static void cput(struct sock_filter *out, uint32_t *n, uint16_t code, uint8_t jt, uint8_t jf,
                 uint32_t k)
{
    out[(*n)++] = (struct sock_filter){.code = code, .jt = jt, .jf = jf, .k = k};
}

uint32_t aioixy_divert_cbpf(const struct aioixy_divert *d, struct sock_filter *out)
{
    uint32_t n = 0, deflt = d->default_allow ? ACCEPT : 0;
    /* a tag the kernel moved into metadata: Python sees it put back, and RuleSet calls a tagged
     * frame non-IPv4, so the default decides */
    cput(out, &n, BPF_LD | BPF_W | BPF_ABS, 0, 0, (uint32_t)(SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT));
    cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 0);              /* -> DEF */
    cput(out, &n, BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
    cput(out, &n, BPF_JMP | BPF_JGE | BPF_K, 0, 2, 34);             /* -> DEF */
    cput(out, &n, BPF_LD | BPF_H | BPF_ABS, 0, 0, 12);
    cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 0x0800);         /* -> past DEF */
    cput(out, &n, BPF_RET | BPF_K, 0, 0, deflt);                    /* DEF */
    cput(out, &n, BPF_LD | BPF_W | BPF_ABS, 0, 0, 26);
    cput(out, &n, BPF_ST, 0, 0, 0);
    cput(out, &n, BPF_LD | BPF_W | BPF_ABS, 0, 0, 30);
    cput(out, &n, BPF_ST, 0, 0, 1);
    cput(out, &n, BPF_LD | BPF_B | BPF_ABS, 0, 0, 23);
    cput(out, &n, BPF_ST, 0, 0, 2);
    cput(out, &n, BPF_LD | BPF_IMM, 0, 0, NO_PORT);
    cput(out, &n, BPF_ST, 0, 0, 3);
    cput(out, &n, BPF_LD | BPF_MEM, 0, 0, 2);
    cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 6);              /* -> HAVEP */
    cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, 11, 17);            /* -> RULES */
    cput(out, &n, BPF_LDX | BPF_B | BPF_MSH, 0, 0, 14);             /* HAVEP: X = 4 * IHL */
    cput(out, &n, BPF_MISC | BPF_TXA, 0, 0, 0);
    cput(out, &n, BPF_ALU | BPF_ADD | BPF_K, 0, 0, 18);
    cput(out, &n, BPF_MISC | BPF_TAX, 0, 0, 0);
    cput(out, &n, BPF_LD | BPF_W | BPF_LEN, 0, 0, 0);
    cput(out, &n, BPF_JMP | BPF_JGE | BPF_X, 0, 5, 0);              /* len < 18 + 4 * IHL -> RULES */
    cput(out, &n, BPF_MISC | BPF_TXA, 0, 0, 0);
    cput(out, &n, BPF_ALU | BPF_SUB | BPF_K, 0, 0, 18);
    cput(out, &n, BPF_MISC | BPF_TAX, 0, 0, 0);
    cput(out, &n, BPF_LD | BPF_H | BPF_IND, 0, 0, 16);
    cput(out, &n, BPF_ST, 0, 0, 3);
    /* RULES: each rule's tests jump over the rest of the rule (its return included) on a miss */
    for (uint32_t i = 0; i < d->n; i++) {
        const struct aioixy_divert_rule *r = &d->rules[i];
        uint32_t len = 1 + (r->src_mask ? 3 : 0) + (r->dst_mask ? 3 : 0) + (r->proto >= 0 ? 2 : 0) +
                       (r->dport >= 0 ? 2 : 0);
        uint32_t start = n;
#define MISS ((uint8_t)(start + len - n - 1)) /* from the test at n to just past the return */
        if (r->src_mask) {
            cput(out, &n, BPF_LD | BPF_MEM, 0, 0, 0);
            cput(out, &n, BPF_ALU | BPF_AND | BPF_K, 0, 0, r->src_mask);
            cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, MISS, r->src & r->src_mask);
        }
        if (r->dst_mask) {
            cput(out, &n, BPF_LD | BPF_MEM, 0, 0, 1);
            cput(out, &n, BPF_ALU | BPF_AND | BPF_K, 0, 0, r->dst_mask);
            cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, MISS, r->dst & r->dst_mask);
        }
        if (r->proto >= 0) {
            cput(out, &n, BPF_LD | BPF_MEM, 0, 0, 2);
            cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, MISS, (uint32_t)r->proto);
        }
        if (r->dport >= 0) {
            cput(out, &n, BPF_LD | BPF_MEM, 0, 0, 3);
            cput(out, &n, BPF_JMP | BPF_JEQ | BPF_K, 0, MISS, (uint32_t)r->dport);
        }
#undef MISS
        cput(out, &n, BPF_RET | BPF_K, 0, 0, r->allow ? ACCEPT : 0);
    }
    cput(out, &n, BPF_RET | BPF_K, 0, 0, deflt);
    return n;
}

/* ---- test run ---- */

static long sys_bpf(int cmd, union bpf_attr *attr)
{
    return syscall(__NR_bpf, cmd, attr, sizeof(*attr));
}

int aioixy_divert_test(const struct aioixy_divert_rule *rules, uint32_t n, bool default_allow,
                       const uint8_t *frame, uint32_t len)
{
    struct aioixy_dev_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.divert = true;
    cfg.divert_rules = rules;
    cfg.divert_count = n;
    cfg.divert_default = default_allow;
    struct aioixy_divert d;
    int rc = aioixy_divert_from_config(&cfg, &d);
    if (rc)
        return rc;
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_XSKMAP;
    a.key_size = a.value_size = 4;
    a.max_entries = 1;
    int map = (int)sys_bpf(BPF_MAP_CREATE, &a);
    if (map < 0)
        return aioixy_set_error(errno == EPERM ? AIOIXY_EPERM : AIOIXY_ENODEV,
                                "cannot create an XSKMAP: %s", strerror(errno));
    static _Thread_local struct bpf_insn insns[AIOIXY_DIVERT_EBPF_MAX];
    uint32_t ni = aioixy_divert_ebpf(&d, map, XDP_TX, insns);
    static _Thread_local char log[8192];
    log[0] = 0;
    memset(&a, 0, sizeof(a));
    a.prog_type = BPF_PROG_TYPE_XDP;
    a.insns = (uint64_t)(uintptr_t)insns;
    a.insn_cnt = ni;
    a.license = (uint64_t)(uintptr_t)"Dual MIT/GPL";
    int prog = (int)sys_bpf(BPF_PROG_LOAD, &a);
    if (prog < 0) { /* again with the log, to explain (a log too small would fail by itself) */
        int e = errno;
        a.log_buf = (uint64_t)(uintptr_t)log;
        a.log_size = sizeof(log);
        a.log_level = 1;
        int again = (int)sys_bpf(BPF_PROG_LOAD, &a);
        if (again >= 0)
            close(again);
        close(map);
        return aioixy_set_error(AIOIXY_ENODEV, "the verifier refused the divert program: %s: "
                                "%.600s", strerror(e), log);
    }
    static _Thread_local uint8_t buf[4096];
    if (len > sizeof(buf) || len < 14) {
        close(prog);
        close(map);
        return aioixy_set_error(AIOIXY_EINVAL, "test frames are 14..%zu bytes", sizeof(buf));
    }
    memcpy(buf, frame, len);
    memset(&a, 0, sizeof(a));
    a.test.prog_fd = (uint32_t)prog;
    a.test.data_in = (uint64_t)(uintptr_t)buf;
    a.test.data_size_in = len;
    a.test.repeat = 1;
    long r = sys_bpf(BPF_PROG_TEST_RUN, &a);
    int e = errno;
    close(prog);
    close(map);
    if (r != 0)
        return aioixy_set_error(AIOIXY_EIO, "BPF_PROG_TEST_RUN: %s", strerror(e));
    if (a.test.retval != XDP_TX && a.test.retval != XDP_PASS)
        return aioixy_set_error(AIOIXY_EIO, "the divert program returned %u", a.test.retval);
    return a.test.retval == XDP_TX;
}
