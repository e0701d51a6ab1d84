/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Types shared by the BPF programs and the userspace loader: plain __u32/__u64 only. */
#ifndef LOOPSTALL_H
#define LOOPSTALL_H

#include "abi_types.h"

#define TASK_COMM_LEN 16

/* Distinct stacks kept per loop iteration; the heaviest few are what a reader acts on. Time
 * beyond them is still counted (untracked_stack_ns), never dropped. */
#define MAX_STACK_SLOTS 16
/* Frames kept per stack: deep enough for a CPython eval loop under a framework. */
#define MAX_STACK_DEPTH 127

/* Busy-time histogram: HIST_SUB_BUCKETS linear sub-buckets per power of two of nanoseconds. */
#define HIST_SUB_BITS 2
#define HIST_SUB_BUCKETS (1 << HIST_SUB_BITS)
#define HIST_MAX_LOG2 40 /* 2^40 ns ~ 18 min: longer iterations land in the last bucket */
#define HIST_BUCKETS (HIST_MAX_LOG2 * HIST_SUB_BUCKETS)

/* PID_MAX_LIMIT on 64-bit: the bitmaps indexed by pid or tid cover every id, whatever
 * kernel.pid_max becomes while loopstall runs. */
#define PID_SPACE (4 << 20)
#define PID_WORDS (PID_SPACE / 64)
/* The word and bit of an id in such a bitmap. Ids are below PID_SPACE; the mask is for the BPF
 * verifier (a larger id would only alias, and each bitmap's set bit only costs a lookup). */
#define ID_WORD(id) (((id) / 64) & (PID_WORDS - 1))
#define ID_BIT(id) (1ULL << ((id) % 64))

/* The loop thread table: LOOP_THREADS entries of an array map, each free or a thread's, whose
 * tid is in the same index of loop_thread_tids (global data). A thread's entry is one of
 * LOOP_THREAD_PROBES from its home: found by loads, where a hash map hashes and walks a bucket
 * on every event of the thread. */
#define LOOP_THREADS 16384
#define LOOP_THREAD_PROBES 8

/* Multiplicative hashing: a process's consecutive tids land far apart, not in one run of
 * entries that would fill a later thread's probes. */
static inline __u32 loop_thread__index(__u32 tid, __u32 probe)
{
	return (tid * 2654435761u + probe) & (LOOP_THREADS - 1);
}

/* The index of tid's entry among the owner tids (loop_thread_tids), LOOP_THREADS if none. */
static inline __u32 loop_thread__find(const volatile __u32 *tids, __u32 tid)
{
	__u32 probe, index;

	for (probe = 0; probe < LOOP_THREAD_PROBES; probe++) {
		index = loop_thread__index(tid, probe);
		if (tids[index] == tid)
			return index;
	}
	return LOOP_THREADS;
}

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

/* Where the loop thread is between the events loopstall sees of it. Running and waiting for a
 * CPU are one state: the kernel's own run delay of the task tells them apart (see
 * thread__account()), so no switch-in needs to be seen. */
enum thread_run_state {
	RUN_ACTIVE = 0, /* running or runnable, not blocked since the last event */
	RUN_BLOCKED,    /* switched out in a sleep/wait, not woken yet */
	RUN_WOKEN,      /* woken: being enqueued, then runnable or running */
	/* Boundary at the poll entry alone (see poll__enter()): */
	RUN_IDLE,       /* blocked in its loop's poll: between iterations, busy_start_ns 0 */
	RUN_WOKEN_IDLE, /* woken out of it: an iteration began at the wakeup, but its wait for a
			 * CPU until the next event is still the idle loop's */
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
	__u64 last_change_ns;  /* last event seen: iteration start, switch-out or wakeup */
	/* The task's own scheduler accounts at last_change_ns: run delay (as in
	 * /proc/PID/task/TID/schedstat), CPU time, context switches (voluntary + involuntary). */
	__u64 seen_run_delay_ns;
	__u64 seen_cpu_ns;
	__u64 seen_switches;
	__u64 on_cpu_ns;
	__u64 off_cpu_ns;
	__u64 runqueue_ns;
	__u32 current_slot;    /* slot of the stack the thread blocked with, MAX_STACK_SLOTS if none */
	__u32 nr_slots;
	__u64 untracked_stack_ns; /* off-CPU or sampled time beyond MAX_STACK_SLOTS distinct stacks */
	__u64 tls_base;           /* pthread_self() of the thread: CPython <= 3.10 keys tstates by it */
	__u64 idle_cpu_ns;        /* RUN_IDLE: the task's CPU time when it went to sleep in its poll */
	__u32 py_walks;           /* Python stack walks at switch-out in this iteration ... */
	__u32 py_wait_walks;      /* ... and those at lock and GIL waits, a budget of their own */
	struct stack_slot slots[MAX_STACK_SLOTS];
	/* The thread's share of its process_stats (iterations, busy_ns, max_busy_ns, busy_hist),
	 * written only by the thread itself: no shared atomic per iteration. Folded into
	 * process_stats when the thread exits or execs; userspace adds the live threads'. */
	__u64 iterations;
	__u64 busy_ns;
	__u64 max_busy_ns;
	__u64 busy_hist[HIST_BUCKETS];
};

/* A kernel or user stack, innermost first; zero after the last frame. */
struct native_stack {
	__u64 ips[MAX_STACK_DEPTH];
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
	/* What the stall delayed, read when it ended: the loop's ready fds and, for listening
	 * sockets among them, the connections in their accept queues. */
	__u32 waiting_known; /* 0: the loop's poll is no epoll instance loopstall knows */
	__u32 ready_fds;
	__u32 connections;
	__u32 pad;
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

/* Aggregated in the kernel, so healthy loops doing 100k iterations/s cost no events. The
 * iteration fields hold exited threads' counts only: a live thread keeps its own in its
 * loop_thread, which userspace adds (stats__read()). */
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
	__u64 waiting_connections; /* summed over the stalls' ends: see stall_record */
	__u64 waiting_ready_fds;
	__u64 busy_hist[HIST_BUCKETS];
};

#endif /* LOOPSTALL_H */
