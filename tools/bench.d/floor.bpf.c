// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The floor of loopstall's boundary for tools/bench: programs on the same two syscall
 * tracepoints, attached the same way (libbpf), that do nothing but what any iteration timer
 * must do at the least.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile __u32 target_pid = 0;

/* Written so that the clock read cannot be optimized away. */
__u64 clock_sum = 0;

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int enter_empty(void *ctx)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int enter_clock(void *ctx)
{
	if (bpf_get_current_pid_tgid() >> 32 == target_pid)
		clock_sum += bpf_ktime_get_ns();
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int exit_empty(void *ctx)
{
	return 0;
}

/* What the scheduler events cost every task once any program is on them (loopstall's look a
 * task up in a bitmap and return, for all but loop threads). */
SEC("tp_btf/sched_switch")
int sched_switch_empty(void *ctx)
{
	return 0;
}

SEC("tp_btf/sched_waking")
int sched_waking_empty(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
