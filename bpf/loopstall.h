/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types shared by the BPF programs and the userspace loader: plain __u32/__u64 only. */
#ifndef LOOPSTALL_H
#define LOOPSTALL_H

/* BPF code gets the kernel types from vmlinux.h; userspace from the uapi header. */
#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif
#include "python_abi.h"
#include "v8_abi.h"

#define TASK_COMM_LEN 16

/* Distinct stacks kept per loop iteration; the heaviest few are what a reader acts on. Time
 * beyond them is still counted (untracked_stack_ns), never dropped. */
#define MAX_STACK_SLOTS 16
/* Frames kept per stack: deep enough for a CPython eval loop under a framework. */
#define MAX_STACK_DEPTH 127

/* Python frames kept per stack (--py-depth caps it lower). */
#define MAX_PY_DEPTH 128
#define DEFAULT_PY_DEPTH 64

/* Busy-time histogram: HIST_SUB_BUCKETS linear sub-buckets per power of two of nanoseconds. */
#define HIST_SUB_BITS 2
#define HIST_SUB_BUCKETS (1 << HIST_SUB_BITS)
#define HIST_MAX_LOG2 40 /* 2^40 ns ~ 18 min: longer iterations land in the last bucket */
#define HIST_BUCKETS (HIST_MAX_LOG2 * HIST_SUB_BUCKETS)

/* Every ring-buffer record starts with its type, so a new kind never breaks the reader. */
enum record_type {
	RECORD_STALL = 1,
	RECORD_PROCESS_NEW,  /* a process to decide on: polled in --all mode, or forked by a traced one */
	RECORD_PROCESS_EXIT, /* the last thread of a traced process exited */
	RECORD_PROCESS_EXEC, /* a traced process exec'd: what was known of its memory is stale */
};

/* traced_pids values. */
enum trace_decision {
	TRACE_NO = 0,      /* seen and filtered out: never traced */
	TRACE_YES = 1,
	TRACE_PENDING = 2, /* announced to userspace, not traced until it decides */
};

/* Which syscalls mark the boundary of a loop iteration (--poll-syscalls). */
enum boundary_kind {
	BOUNDARY_EPOLL = 1 << 0,
	BOUNDARY_POLL = 1 << 1,
	BOUNDARY_SELECT = 1 << 2,
};

enum stack_kind {
	STACK_OFF_CPU = 0,
	STACK_ON_CPU = 1,
};

/* Why a thread was off-CPU, decided in BPF at switch-out from the syscall and its arguments. */
enum offcpu_reason {
	REASON_NONE = 0, /* on-CPU stack */
	REASON_SLEEP,
	REASON_NET,
	REASON_DISK,
	REASON_LOCK,
	REASON_OTHER,
	REASON_GIL, /* futex on the CPython GIL of the thread's interpreter */
};

/* Where the loop thread is between scheduler events. */
enum thread_run_state {
	RUN_ON_CPU = 0,
	RUN_BLOCKED,  /* switched out in a sleep/wait */
	RUN_RUNNABLE, /* preempted, or woken and waiting for a CPU */
};

struct stack_slot {
	__u64 kernel_stack_id; /* key in native_stacks, 0 when not captured */
	__u64 user_stack_id;
	__u64 ns;
	/* 16 bits each: the slots of a stall record are copied with one memcpy, which clang
	 * inlines for BPF only up to 1 KiB (64 bytes a slot). */
	__u16 kind;    /* enum stack_kind */
	__u16 reason;  /* enum offcpu_reason */
	__s32 syscall; /* syscall number the thread blocked in, -1 if none */
	__u32 samples; /* on-CPU samples */
	__u32 waker_tid; /* off-CPU: the thread of the same process that last woke it, or 0 */
	__u64 gil_holder; /* reason GIL: the holder's PyThreadState, 0 when unknown */
	__u64 py_stack_id; /* key in py_stacks, 0 when no Python frames were walked */
	__u64 js_stack_id; /* key in js_stacks, 0 when no JavaScript frames were walked */
};

/*
 * Per loop thread, keyed by tid. Written by the thread's own syscall and sampling events and by
 * the scheduler events that switch it; userspace reads it to report loops stuck in one iteration.
 */
struct loop_thread {
	__u32 pid;
	__u32 loop_fd;         /* the epoll fd whose waits bracket an iteration */
	__u32 in_loop_poll;    /* inside the poll call that bounds this thread's iterations */
	__u32 run_state;       /* enum thread_run_state */
	__u64 busy_start_ns;   /* 0 while the thread waits in its loop's poll */
	__u64 last_change_ns;  /* last switch-in, switch-out or wakeup */
	__u64 on_cpu_ns;
	__u64 off_cpu_ns;
	__u64 runqueue_ns;
	__u32 current_slot;    /* slot of the stack the thread blocked with, MAX_STACK_SLOTS if none */
	__u32 nr_slots;
	__u64 untracked_stack_ns; /* off-CPU or sampled time beyond MAX_STACK_SLOTS distinct stacks */
	__u64 tls_base;           /* pthread_self() of the thread: CPython <= 3.10 keys tstates by it */
	__u32 py_walks;           /* Python stack walks at switch-out in this iteration ... */
	__u32 py_wait_walks;      /* ... and those at lock and GIL waits, a budget of their own */
	struct stack_slot slots[MAX_STACK_SLOTS];
};

/* A kernel or user stack, innermost first; zero after the last frame. */
struct native_stack {
	__u64 ips[MAX_STACK_DEPTH];
};

struct py_frame {
	__u64 code;  /* PyCodeObject address */
	__u64 lasti; /* the frame's position field, raw: see enum py_lasti_mode */
	__u32 owner; /* _PyInterpreterFrame.owner (3.11+) */
	/*
	 * What the code object was at walk time, checked when userspace resolves the frame (the
	 * object may be freed by then, its address and strings reused): the low 32 bits of
	 * co_name's cached str hash, or of the co_name pointer while that hash is not computed
	 * (-1: 3.11/3.12 static strings such as "<module>", never freed).
	 */
	__u32 name_fingerprint;
};

struct py_stack {
	__u32 depth;
	__u32 truncated; /* the walk stopped early: depth limit or unreadable frame */
	struct py_frame frames[MAX_PY_DEPTH]; /* innermost first */
};

/* Per traced CPython process, keyed by pid: filled by userspace once the interpreter is known. */
struct python_proc {
	struct python_offsets offsets;
	__u64 gil_start; /* [gil_start, gil_end): the futex words of the interpreter's GIL */
	__u64 gil_end;
};

struct stall_record {
	__u32 type; /* enum record_type */
	__u32 pid;
	__u32 tid;
	__u32 nr_slots;
	char comm[TASK_COMM_LEN];
	__u64 start_ns; /* CLOCK_MONOTONIC */
	__u64 duration_ns;
	__u64 on_cpu_ns;
	__u64 off_cpu_ns;
	__u64 runqueue_ns;
	__u64 untracked_stack_ns;
	struct stack_slot slots[MAX_STACK_SLOTS];
};

struct process_record {
	__u32 type; /* RECORD_PROCESS_NEW, _EXIT or _EXEC */
	__u32 pid;
	__u32 parent_pid; /* NEW by fork: the traced parent; 0 when found polling */
	char comm[TASK_COMM_LEN];
};

/* Keys of process_stats: tid 0 holds the process's totals, tid N one loop thread's (--per-thread). */
struct stats_key {
	__u32 pid;
	__u32 tid;
};

/* Aggregated in the kernel, so healthy loops doing 100k iterations/s cost no events. */
struct process_stats {
	__u64 iterations;
	__u64 stalls;
	__u64 lost_events;
	__u64 max_busy_ns;
	__u64 busy_ns;           /* sum over all iterations */
	__u64 stall_ns;          /* busy time of the iterations that were stalls */
	__u64 stall_on_cpu_ns;   /* ... split as in the stall events */
	__u64 stall_off_cpu_ns;
	__u64 stall_runqueue_ns;
	__u64 busy_hist[HIST_BUCKETS];
};

#endif /* LOOPSTALL_H */
