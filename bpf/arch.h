/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Everything architecture-specific the BPF side reads from a task: its syscall and arguments
 * from the saved user registers, and its thread pointer. Only x86_64 is supported today; arm64
 * goes here (regs->syscallno, orig_x0, thread.uw.tp_value).
 */
#ifndef ARCH_H
#define ARCH_H

#include "syscall_nr.h"

#define ENOSYS 38

#if defined(__TARGET_ARCH_x86)
#define SYSCALL_ARG0(regs) BPF_CORE_READ(regs, di)
#define SYSCALL_ARG1(regs) BPF_CORE_READ(regs, si)
#define SYSCALL_ARG2(regs) BPF_CORE_READ(regs, dx)
/* The thread pointer: glibc's struct pthread, i.e. pthread_self(). */
#define TASK_TLS_BASE(task) BPF_CORE_READ(task, thread.fsbase)

/* The frame and stack pointers of saved user registers (bpf_task_pt_regs). */
#define REGS_FP(regs) BPF_CORE_READ(regs, bp)
#define REGS_SP(regs) BPF_CORE_READ(regs, sp)

/*
 * Whether a perf_event sample hit user mode: the privilege level in the saved cs. Read as the
 * whole 8-byte slot: a perf_event program may only load its context a long at a time, and
 * kernels before FRED (6.9) declare cs an unsigned long, later ones a u16 in a union.
 */
static __always_inline bool sample__in_user_mode(struct bpf_perf_event_data *ctx)
{
	return (*(__u64 *)&ctx->regs.cs & 3) == 3;
}

/* The frame and stack pointers of a perf_event sample's registers (user mode only). */
static __always_inline __u64 sample__fp(struct bpf_perf_event_data *ctx)
{
	return ctx->regs.bp;
}

static __always_inline __u64 sample__sp(struct bpf_perf_event_data *ctx)
{
	return ctx->regs.sp;
}

/*
 * The syscall a task is blocked in, -1 if it is not in one. orig_ax alone cannot tell: exceptions
 * store their error code there (a page fault's is >= 0). But syscall entry pre-loads ax with
 * -ENOSYS and only overwrites it with the return value, so both together mean "inside a syscall".
 */
static __always_inline __s32 syscall__current(struct pt_regs *regs)
{
	long orig_ax = BPF_CORE_READ(regs, orig_ax);

	if (orig_ax < 0 || (long)BPF_CORE_READ(regs, ax) != -ENOSYS)
		return -1;
	return (__s32)orig_ax;
}
#else
#error "loopstall: syscall argument access is only written for x86_64 so far"
#endif

#endif /* ARCH_H */
