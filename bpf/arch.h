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
