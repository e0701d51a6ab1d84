// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * loopstall: measure each event-loop iteration of traced threads and report the ones that ran
 * too long, split into on-CPU, off-CPU and runqueue time, with the stacks where the time went.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "loopstall.h"
#include "arch.h"

/* Set by userspace before load. */
const volatile __u64 threshold_ns = 100000000;
/* The on-CPU sampler only records stacks once an iteration has run this long. */
const volatile __u64 sample_after_ns = 50000000;
/* Time one on-CPU sample stands for. */
const volatile __u64 sample_period_ns = 10101010;
/* --all: every process that polls is announced to userspace, which decides to trace it. */
const volatile bool trace_all = false;
/* Follow forks of traced processes (a launcher script, uvicorn --workers). */
const volatile bool follow_forks = true;
/* Also keep busy-time statistics per loop thread (--per-thread). */
const volatile bool per_thread_stats = false;
/* The loop poll's entry alone bounds iterations (epoll, no --loop-func): see poll__enter(). */
const volatile bool entry_boundary = false;

/* Sentinel loop_fd: the thread's loop fd is not known yet, or any poll call is a boundary. */
#define LOOP_FD_UNKNOWN ((__u32)-1)
#define LOOP_FD_ANY ((__u32)-2)
#define NO_SLOT MAX_STACK_SLOTS

#define TASK_RUNNING 0
#define TASK_UNINTERRUPTIBLE 0x2

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* resized by userspace */
	__type(key, __u32);        /* pid */
	__type(value, __u8);       /* enum trace_decision */
} traced_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LOOP_THREADS);
	__type(key, __u32); /* loop_thread__index() */
	__type(value, struct loop_thread);
} loop_threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* resized by userspace */
	__type(key, struct stats_key);
	__type(value, struct process_stats);
} process_stats SEC(".maps");

/*
 * Kernel and user stacks by content hash, as py_stacks and js_stacks. Not a stack-trace map: that
 * one keys a stack by the low bits of its hash and fails on a collision (-EEXIST, the first
 * expected after about the square root of its size in distinct stacks), and no BPF program can
 * delete from it; every new process brings new user stacks (ASLR), so it only fills. LRU:
 * stacks of short iterations, never reported, make room by themselves; a key is its content, so
 * a stall never reads another's stack, at worst none (stacks_evicted).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* resized by userspace */
	__type(key, __u64);
	__type(value, struct native_stack);
} native_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct native_stack);
} native_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024); /* resized by userspace */
} events SEC(".maps");

/* Zeroed templates: the values are too big to build on the 512-byte BPF stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loop_thread);
} thread_template SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct process_stats);
} stats_template SEC(".maps");

/* What was dropped, so nothing is lost silently; userspace reports these. */
__u64 lost_events = 0;
__u64 stack_errors = 0;
/* Counted by userspace: a reported stall's stack was evicted from native_stacks before it was read. */
__u64 stacks_evicted = 0;
__u64 thread_table_full = 0;
__u64 process_table_full = 0;
/* Iterations timed from the thread's CPU time: the wakeup out of the loop's poll that began
 * one was not seen (iteration__infer()). */
__u64 wakeups_missed = 0;

/*
 * Bitmaps in front of hash maps: the programs run for every task on the host, and a word of
 * global data is one load where a hash miss is a hashed bucket walk (dearest where every
 * kernel entry starts with a cold TLB). 512 KiB each (PID_WORDS).
 *
 * loop_tids: a bit per tid, set while the tid has a loop_threads entry.
 * pid_known_bits: a bit per pid, set before the pid gets a traced_pids entry (here when a
 * process is announced, by userspace when it decides on one, through libbpf's mmap of .bss)
 * and never cleared: a clear bit proves the pid has none, so a poll of a process loopstall does
 * not trace costs no hash miss (~50 ns of the entry program's run time, bpf_stats). A pid
 * reused after its entry went costs that lookup.
 */
__u64 loop_tids[PID_WORDS] = {};
__u64 pid_known_bits[PID_WORDS] = {};
/* Whose each loop_threads entry is, 0 if free (loopstall.h); claimed by compare-and-swap. */
__u32 loop_thread_tids[LOOP_THREADS] = {};

#include "python.bpf.h"
#include "v8.bpf.h"

static __always_inline bool id_bits__test(const __u64 *bits, __u32 id)
{
	return bits[ID_WORD(id)] & ID_BIT(id);
}

/* Atomic: other CPUs and userspace set bits of the same words. */
static __always_inline void id_bits__set(__u64 *bits, __u32 id)
{
	__sync_fetch_and_or(&bits[ID_WORD(id)], ID_BIT(id));
}

static __always_inline void id_bits__clear(__u64 *bits, __u32 id)
{
	__sync_fetch_and_and(&bits[ID_WORD(id)], ~ID_BIT(id));
}

static __always_inline bool pid__maybe_known(__u32 pid)
{
	return id_bits__test(pid_known_bits, pid);
}

static void process__announce(__u32 pid, __u32 parent_pid)
{
	__u8 pending = TRACE_PENDING;
	struct process_record *record;

	id_bits__set(pid_known_bits, pid);
	/* Announce each process once: the insert fails for one already seen. */
	if (bpf_map_update_elem(&traced_pids, &pid, &pending, BPF_NOEXIST)) {
		if (!bpf_map_lookup_elem(&traced_pids, &pid))
			__sync_fetch_and_add(&process_table_full, 1);
		return;
	}
	record = bpf_ringbuf_reserve(&events, sizeof(*record), 0);
	if (!record) {
		/* Undo, so the next poll announces it again. */
		bpf_map_delete_elem(&traced_pids, &pid);
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	record->type = RECORD_PROCESS_NEW;
	record->pid = pid;
	record->parent_pid = parent_pid;
	bpf_get_current_comm(record->comm, sizeof(record->comm));
	bpf_ringbuf_submit(record, 0);
}

/* The tid word of a loop_threads entry. The index is in range already; masked again for the
 * verifier, which loses its bound when the compiler spills it to the stack. */
static __always_inline __u32 *loop_thread__tid(__u32 index)
{
	return &loop_thread_tids[index & (LOOP_THREADS - 1)];
}

/* The loop thread tid, or NULL: known loop threads only, as cheaply as a miss can be. */
static __always_inline struct loop_thread *loop_thread__get(__u32 tid)
{
	__u32 index;

	if (!id_bits__test(loop_tids, tid))
		return NULL;
	index = loop_thread__find(loop_thread_tids, tid);
	return index < LOOP_THREADS ? bpf_map_lookup_elem(&loop_threads, &index) : NULL;
}

static __always_inline bool is_traced(__u32 pid)
{
	__u8 *decision = pid__maybe_known(pid) ? bpf_map_lookup_elem(&traced_pids, &pid) : NULL;

	if (decision)
		return *decision == TRACE_YES;
	if (trace_all)
		process__announce(pid, 0);
	return false;
}

static struct loop_thread *thread__create(__u32 tid, __u32 pid, __u32 loop_fd)
{
	__u32 zero = 0, probe, index = 0;
	struct loop_thread *template, *thread;

	template = bpf_map_lookup_elem(&thread_template, &zero);
	if (!template)
		return NULL;
	for (probe = 0; probe < LOOP_THREAD_PROBES; probe++) {
		index = loop_thread__index(tid, probe);
		if (!*loop_thread__tid(index) &&
		    !__sync_val_compare_and_swap(loop_thread__tid(index), 0, tid))
			break;
	}
	if (probe == LOOP_THREAD_PROBES) {
		__sync_fetch_and_add(&thread_table_full, 1);
		return NULL;
	}
	thread = bpf_map_lookup_elem(&loop_threads, &index);
	if (!thread || bpf_map_update_elem(&loop_threads, &index, template, BPF_ANY)) {
		*loop_thread__tid(index) = 0;
		return NULL;
	}
	id_bits__set(loop_tids, tid);
	thread->pid = pid;
	thread->tls_base = TASK_TLS_BASE(bpf_get_current_task_btf());
	thread->loop_fd = loop_fd;
	thread->current_slot = NO_SLOT;
	return thread;
}

static struct process_stats *stats__get(__u32 pid, __u32 tid)
{
	struct stats_key key = { .pid = pid, .tid = tid };
	struct process_stats *stats, *template;
	__u32 zero = 0;

	stats = bpf_map_lookup_elem(&process_stats, &key);
	if (stats)
		return stats;
	template = bpf_map_lookup_elem(&stats_template, &zero);
	if (!template)
		return NULL;
	bpf_map_update_elem(&process_stats, &key, template, BPF_NOEXIST);
	return bpf_map_lookup_elem(&process_stats, &key);
}

static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 shift, r;

	r = (v > 0xFFFFFFFF) << 5; v >>= r;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

/* Log-linear bucket: HIST_SUB_BUCKETS steps inside each power of two (see hist__bucket_low()). */
static __always_inline __u32 hist_bucket(__u64 ns)
{
	__u32 log2, sub;

	if (ns < HIST_SUB_BUCKETS)
		return ns;
	log2 = log2_u64(ns);
	if (log2 >= HIST_MAX_LOG2)
		return HIST_BUCKETS - 1;
	sub = (ns >> (log2 - HIST_SUB_BITS)) & (HIST_SUB_BUCKETS - 1);
	return (log2 - HIST_SUB_BITS + 1) * HIST_SUB_BUCKETS + sub;
}

/* bpf_ktime_get_ns() read on two CPUs can step back a little (the NMI-safe fast clock during a
 * timekeeper update): a span between events of one thread on different CPUs is never
 * negative, which unsigned arithmetic would turn into centuries. */
static __always_inline __u64 span_ns(__u64 from, __u64 to)
{
	return (__s64)(to - from) > 0 ? to - from : 0;
}

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

/* The scheduler's own accounts of a task: what /proc/PID/task/TID/schedstat shows, plus its
 * context switches. They move whether or not loopstall sees the events that move them. */
struct task_accounts {
	__u64 run_delay_ns;
	__u64 cpu_ns;
	__u64 switches;
};

/* task is a trusted BTF pointer (a tp_btf argument or bpf_get_current_task_btf()): plain loads,
 * where a BPF_CORE_READ is a helper call each, four per iteration (~50 ns of the entry
 * program's run time on the C loop of tools/bench). */
static __always_inline void task__accounts(struct task_struct *task, struct task_accounts *acc)
{
	acc->cpu_ns = task->se.sum_exec_runtime;
	/* Without CONFIG_SCHED_INFO no run delay is kept: waits for a CPU count as running. */
	acc->run_delay_ns = bpf_core_field_exists(task->sched_info) ? task->sched_info.run_delay : 0;
	acc->switches = task->nvcsw + task->nivcsw;
}

static __always_inline void thread__seen(struct loop_thread *thread, const struct task_accounts *acc,
					 __u64 now)
{
	thread->last_change_ns = now;
	thread->seen_run_delay_ns = acc->run_delay_ns;
	thread->seen_cpu_ns = acc->cpu_ns;
	thread->seen_switches = acc->switches;
}

/*
 * Charge the time since the last event seen of the thread (task) to on-CPU, runqueue and
 * off-CPU. `switched_out` is 1 when this event is the task's own switch-out (the kernel has
 * counted it already), else 0.
 *
 * Runqueue time is the growth of the task's run delay, which the kernel adds at every
 * switch-in: not seeing a switch-in (sched_switch does not fire for every task's switch-out
 * on every kernel, and a program can miss a run) cannot turn running into waiting. When the
 * thread was active and did not switch out in between, the rest of the span is on-CPU (the
 * wall time it held a CPU, stolen time included). After a block (the wakeup's own latency,
 * before the task is enqueued, is still the block's), or when more switches happened than
 * were seen, the task's CPU time is on-CPU and the rest is off-CPU; at an iteration's end that
 * CPU time lags by the time since the scheduler last updated it (at most one tick), which then
 * shows as off-CPU.
 */
static __always_inline void thread__account(struct loop_thread *thread, struct task_struct *task,
					    __u64 now, __u32 switched_out)
{
	__u64 last = thread->last_change_ns, span, queued, ran, off = 0;
	__u32 slot = thread->current_slot;
	struct task_accounts acc;

	/* Two CPUs can account one thread at once: its own switch-out, and a wakeup on another
	 * CPU that found it marked blocked (the mark of a wait whose wakeup came while the slow
	 * switch-out program still ran). Only the one that moves last_change_ns may charge the
	 * span since then, or the parts add up to more than the iteration (seen: 12.1 ms of
	 * parts in a 6.1 ms GIL-handoff stall). */
	if (__sync_val_compare_and_swap(&thread->last_change_ns, last, now) != last)
		return;
	span = span_ns(last, now);
	task__accounts(task, &acc);
	queued = min_u64(span_ns(thread->seen_run_delay_ns, acc.run_delay_ns), span);
	/* Woken out of the loop's poll: the wait for a CPU that followed is the idle loop's, and
	 * the iteration begins when the thread got its CPU. */
	if (thread->run_state == RUN_WOKEN_IDLE) {
		thread->busy_start_ns += queued;
		span -= queued;
		queued = 0;
		thread->run_state = RUN_ACTIVE;
	}
	if (thread->run_state == RUN_ACTIVE &&
	    acc.switches - thread->seen_switches == switched_out) {
		ran = span - queued;
	} else {
		ran = min_u64(span_ns(thread->seen_cpu_ns, acc.cpu_ns), span - queued);
		off = span - queued - ran;
	}
	thread__seen(thread, &acc, now);
	thread->on_cpu_ns += ran;
	thread->runqueue_ns += queued;
	if (!off)
		return;
	thread->off_cpu_ns += off;
	if (slot < MAX_STACK_SLOTS)
		thread->slots[slot].ns += off;
	else
		thread->untracked_stack_ns += off;
}

/* A new iteration from now; the thread's accounts were seen at now. */
static __always_inline void iteration__reset(struct loop_thread *thread, __u64 now)
{
	thread->busy_start_ns = now;
	thread->run_state = RUN_ACTIVE;
	thread->on_cpu_ns = 0;
	thread->off_cpu_ns = 0;
	thread->runqueue_ns = 0;
	thread->untracked_stack_ns = 0;
	thread->nr_slots = 0;
	thread->current_slot = NO_SLOT;
	thread->py_walks = 0;
	thread->py_wait_walks = 0;
}

static __always_inline void iteration__begin(struct loop_thread *thread, struct task_struct *task,
					     __u64 now)
{
	struct task_accounts acc;

	task__accounts(task, &acc);
	thread__seen(thread, &acc, now);
	iteration__reset(thread, now);
}

/*
 * The thread, marked idle in its poll, is running: the wakeup that began this iteration was not
 * seen (one that raced the switch-out marking it idle, see sched_switch). The iteration began
 * when the thread got a CPU after that wakeup, and it has not left the CPU since (its next
 * switch-out or poll entry is this event): it is the CPU time the thread used since it went to
 * sleep, all of it on CPU. The kernel's CPU time is exact at a switch-out and up to a scheduler
 * tick behind at a poll entry or a sample, and leaves out time stolen by the hypervisor or
 * spent in interrupts where those are accounted apart.
 */
static __always_inline void iteration__infer(struct loop_thread *thread, struct task_struct *task,
					     __u64 now)
{
	struct task_accounts acc;
	__u64 ran;

	task__accounts(task, &acc);
	ran = min_u64(span_ns(thread->idle_cpu_ns, acc.cpu_ns), now - 1);
	thread__seen(thread, &acc, now);
	iteration__reset(thread, now - ran);
	thread->on_cpu_ns = ran;
	__sync_fetch_and_add(&wakeups_missed, 1);
}

static void waiting__count(const struct loop_thread *thread, struct stall_record *record,
			   struct process_stats *stats);

static void stall__emit(struct loop_thread *thread, __u32 tid, __u64 start_ns, __u64 duration_ns,
			struct process_stats *stats)
{
	struct stall_record *record;

	record = bpf_ringbuf_reserve(&events, sizeof(*record), 0);
	if (!record) {
		__sync_fetch_and_add(&lost_events, 1);
		if (stats)
			__sync_fetch_and_add(&stats->lost_events, 1);
		return;
	}
	record->type = RECORD_STALL;
	record->pid = thread->pid;
	record->tid = tid;
	record->nr_slots = thread->nr_slots;
	bpf_get_current_comm(record->comm, sizeof(record->comm));
	record->start_ns = start_ns;
	record->duration_ns = duration_ns;
	record->on_cpu_ns = thread->on_cpu_ns;
	record->off_cpu_ns = thread->off_cpu_ns;
	record->runqueue_ns = thread->runqueue_ns;
	record->untracked_stack_ns = thread->untracked_stack_ns;
	__builtin_memcpy(record->slots, thread->slots, sizeof(record->slots));
	waiting__count(thread, record, stats);
	bpf_ringbuf_submit(record, 0);
}

/* Stall-only counters: atomic, since they run only when a stall ends. */
static void stats__count_stall(struct process_stats *stats, const struct loop_thread *thread,
			       __u64 duration_ns)
{
	if (!stats)
		return;
	__sync_fetch_and_add(&stats->stalls, 1);
	__sync_fetch_and_add(&stats->stall_ns, duration_ns);
	__sync_fetch_and_add(&stats->stall_on_cpu_ns, thread->on_cpu_ns);
	__sync_fetch_and_add(&stats->stall_off_cpu_ns, thread->off_cpu_ns);
	__sync_fetch_and_add(&stats->stall_runqueue_ns, thread->runqueue_ns);
}

static void iteration__end(struct loop_thread *thread, __u32 tid, __u64 now)
{
	__u64 start_ns, duration_ns;
	struct process_stats *stats;
	__u32 bucket;

	/* First: accounting may move the start past a wait for a CPU after a wakeup. */
	thread__account(thread, bpf_get_current_task_btf(), now, 0);
	start_ns = thread->busy_start_ns;
	duration_ns = span_ns(start_ns, now);
	thread->busy_start_ns = 0;
	/* The thread's own counters: plain adds, only this thread writes them. */
	bucket = hist_bucket(duration_ns);
	thread->iterations++;
	thread->busy_ns += duration_ns;
	if (bucket < HIST_BUCKETS)
		thread->busy_hist[bucket]++;
	if (duration_ns > thread->max_busy_ns)
		thread->max_busy_ns = duration_ns;
	if (duration_ns < threshold_ns)
		return;
	stats = stats__get(thread->pid, 0);
	stats__count_stall(stats, thread, duration_ns);
	if (per_thread_stats)
		stats__count_stall(stats__get(thread->pid, tid), thread, duration_ns);
	stall__emit(thread, tid, start_ns, duration_ns, stats);
}

/*
 * The thread enters a poll call: if it is its loop's poll, the busy period ends here.
 *
 * With entry_boundary, the next one begins here too, at the same clock read: one program and
 * one clock read per iteration of a loop that does not block. If the poll then blocks, its
 * switch-out marks the thread idle (sched_switch) and its wakeup begins the iteration
 * (sched_waking), less the wait for a CPU that follows (thread__account()). The poll's own
 * few microseconds, and a wakeup's latency until the task is enqueued, count as busy.
 */
static int poll__enter(__u32 fd)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct loop_thread *thread;
	__u64 now;

	/* A thread only gets an entry once its process is traced, and loses it when it exits or
	 * execs: known loop threads, the hot path, skip the traced_pids lookup. */
	thread = loop_thread__get(tid);
	if (!thread) {
		if (!is_traced(pid))
			return 0;
		thread = thread__create(tid, pid, fd);
		if (!thread)
			return 0;
	}
	if (thread->loop_fd == LOOP_FD_UNKNOWN)
		thread->loop_fd = fd;
	/* Another epoll fd polled inside a callback (a sync client's own loop) is part of the
	 * busy period, not its end. */
	if (fd != thread->loop_fd && fd != LOOP_FD_ANY)
		return 0;
	now = bpf_ktime_get_ns();
	if (!entry_boundary) {
		thread->in_loop_poll = 1;
		if (thread->busy_start_ns)
			iteration__end(thread, tid, now);
		return 0;
	}
	if (!thread->busy_start_ns && thread->run_state == RUN_IDLE)
		iteration__infer(thread, bpf_get_current_task_btf(), now);
	if (thread->busy_start_ns) {
		iteration__end(thread, tid, now);
		iteration__reset(thread, now);
		return 0;
	}
	iteration__begin(thread, bpf_get_current_task_btf(), now);
	return 0;
}

/* The thread returns from a poll call: if it was its loop's poll, a busy period begins. */
static int poll__exit(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 pid = pid_tgid >> 32, tid = (__u32)pid_tgid;
	struct loop_thread *thread;

	thread = loop_thread__get(tid);
	if (!thread) {
		if (!is_traced(pid))
			return 0;
		/* Attached while the thread waited in its poll: which fd it was is learnt at its
		 * next poll entry. */
		thread = thread__create(tid, pid, LOOP_FD_UNKNOWN);
		if (!thread)
			return 0;
	} else if (!thread->in_loop_poll) {
		return 0;
	}
	thread->in_loop_poll = 0;
	iteration__begin(thread, bpf_get_current_task_btf(), bpf_ktime_get_ns());
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int epoll_wait_enter(struct trace_event_raw_sys_enter *ctx)
{
	return poll__enter((__u32)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int epoll_pwait_enter(struct trace_event_raw_sys_enter *ctx)
{
	return poll__enter((__u32)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_enter_epoll_pwait2")
int epoll_pwait2_enter(struct trace_event_raw_sys_enter *ctx)
{
	return poll__enter((__u32)ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_epoll_wait")
int epoll_wait_exit(void *ctx)
{
	return poll__exit();
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait")
int epoll_pwait_exit(void *ctx)
{
	return poll__exit();
}

SEC("tracepoint/syscalls/sys_exit_epoll_pwait2")
int epoll_pwait2_exit(void *ctx)
{
	return poll__exit();
}

/* Opt-in boundaries (--poll-syscalls) for loops built on poll/select, e.g. GLib. */
SEC("tracepoint/syscalls/sys_enter_poll")
int poll_enter(void *ctx)
{
	return poll__enter(LOOP_FD_ANY);
}

SEC("tracepoint/syscalls/sys_enter_ppoll")
int ppoll_enter(void *ctx)
{
	return poll__enter(LOOP_FD_ANY);
}

SEC("tracepoint/syscalls/sys_enter_select")
int select_enter(void *ctx)
{
	return poll__enter(LOOP_FD_ANY);
}

SEC("tracepoint/syscalls/sys_enter_pselect6")
int pselect6_enter(void *ctx)
{
	return poll__enter(LOOP_FD_ANY);
}

SEC("tracepoint/syscalls/sys_exit_poll")
int poll_exit(void *ctx)
{
	return poll__exit();
}

SEC("tracepoint/syscalls/sys_exit_ppoll")
int ppoll_exit(void *ctx)
{
	return poll__exit();
}

SEC("tracepoint/syscalls/sys_exit_select")
int select_exit(void *ctx)
{
	return poll__exit();
}

SEC("tracepoint/syscalls/sys_exit_pselect6")
int pselect6_exit(void *ctx)
{
	return poll__exit();
}

/* --loop-func: a uprobe pair on a user-chosen poll function replaces the syscall boundary
 * (libbpf 1.1 has no BPF_UPROBE yet; BPF_KPROBE is the same for uprobes). */
SEC("uprobe")
int BPF_KPROBE(loop_func_enter)
{
	return poll__enter(LOOP_FD_ANY);
}

SEC("uretprobe")
int BPF_KRETPROBE(loop_func_exit)
{
	return poll__exit();
}

/* A slot thread__slot() returned, checked below MAX_STACK_SLOTS by the caller: clang 14 turns
 * that check into one on a copy of the register, which the verifier does not carry over to
 * the index; the mask behind a barrier is a range it sees. */
static __always_inline struct stack_slot *thread__slot_at(struct loop_thread *thread, __u32 slot)
{
	barrier_var(slot);
	return &thread->slots[slot & (MAX_STACK_SLOTS - 1)];
}

/* The off-CPU slot with the least time, NO_SLOT if there is none. A global function: the
 * verifier checks it once, not again in every state of sched_switch's walks. */
__noinline __u32 thread__lightest_wait(struct loop_thread *thread)
{
	__u32 i, lightest = NO_SLOT;
	__u64 lightest_ns = ~0ULL;

	if (!thread)
		return NO_SLOT;
	for (i = 0; i < MAX_STACK_SLOTS; i++) {
		if (i >= thread->nr_slots) /* slots beyond are a past iteration's */
			break;
		if (thread->slots[i].kind == STACK_OFF_CPU && thread->slots[i].ns < lightest_ns) {
			lightest = i;
			lightest_ns = thread->slots[i].ns;
		}
	}
	return lightest;
}

/*
 * The on-CPU slot of the samples under this JavaScript or Python stack, NO_SLOT if there is none
 * yet. They share a slot whatever native code they hit (crypto, JSON, the GC; the interpreter's
 * own C frames, which unwind to noise without frame pointers): the first sample's native stacks
 * stand for it, and its innermost frame says whether C code of a library was running.
 */
static __always_inline __u32 thread__lang_slot(struct loop_thread *thread, __u64 py_stack_id,
					       __u64 js_stack_id)
{
	struct stack_slot *slot;
	__u32 i;

	for (i = 0; i < MAX_STACK_SLOTS; i++) {
		if (i >= thread->nr_slots)
			break;
		slot = &thread->slots[i];
		if (slot->kind == STACK_ON_CPU && slot->js_stack_id == js_stack_id &&
		    slot->py_stack_id == py_stack_id)
			return i;
	}
	return NO_SLOT;
}

/* The Python stack of the last wait of this iteration kept with the same native stacks, reason
 * and syscall, 0 if none. A global function, checked once by the verifier. */
__noinline __u64 thread__earlier_py_stack(struct loop_thread *thread, __u64 kernel_stack_id,
					  __u64 user_stack_id, __u32 reason, __s32 syscall)
{
	struct stack_slot *slot;
	__u64 py_stack_id = 0;
	__u32 i;

	if (!thread)
		return 0;
	for (i = 0; i < MAX_STACK_SLOTS; i++) {
		if (i >= thread->nr_slots)
			break;
		slot = &thread->slots[i];
		if (slot->kind == STACK_OFF_CPU && slot->py_stack_id &&
		    slot->kernel_stack_id == kernel_stack_id && slot->user_stack_id == user_stack_id &&
		    slot->reason == reason && slot->syscall == syscall)
			py_stack_id = slot->py_stack_id;
	}
	return py_stack_id;
}

/* Find the slot for this stack in the iteration, or start one; NO_SLOT when all are taken. */
static __always_inline __u32 thread__slot(struct loop_thread *thread, __u64 kernel_stack_id,
					  __u64 user_stack_id,
					  __u64 py_stack_id, __u64 js_stack_id, __u32 kind,
					  __u32 reason, __s32 syscall)
{
	struct stack_slot *slot;
	__u32 i, same_kind = 0;

	for (i = 0; i < MAX_STACK_SLOTS; i++) {
		if (i >= thread->nr_slots)
			break;
		slot = &thread->slots[i];
		if (slot->kernel_stack_id == kernel_stack_id && slot->user_stack_id == user_stack_id &&
		    slot->py_stack_id == py_stack_id && slot->js_stack_id == js_stack_id &&
		    slot->kind == kind && slot->reason == reason && slot->syscall == syscall)
			return i;
		same_kind += slot->kind == kind;
	}
	/* Samples of a CPU-bound stretch must not take every slot before the iteration blocks
	 * on something (the blocking call is usually what matters): each kind gets half. */
	if (i < MAX_STACK_SLOTS && same_kind < MAX_STACK_SLOTS / 2) {
		thread->nr_slots = i + 1;
	} else {
		/* Full. A new wait may be the long one that stalls the loop, after a burst of short
		 * ones (lock hand-offs, small reads): it takes the lightest wait's slot, whose time
		 * becomes untracked. A new sample stands for one period: it is the untracked one. */
		if (kind != STACK_OFF_CPU)
			return NO_SLOT;
		i = thread__lightest_wait(thread);
		if (i >= MAX_STACK_SLOTS)
			return NO_SLOT;
		thread->untracked_stack_ns += thread->slots[i].ns;
	}
	slot = thread__slot_at(thread, i);
	slot->kernel_stack_id = kernel_stack_id;
	slot->user_stack_id = user_stack_id;
	slot->py_stack_id = py_stack_id;
	slot->js_stack_id = js_stack_id;
	slot->waker_tid = 0;
	slot->gil_holder = 0;
	slot->kind = kind;
	slot->reason = reason;
	slot->syscall = syscall;
	slot->ns = 0;
	slot->samples = 0;
	return i;
}

/* FNV-1a over the frames; 0 is kept for "no stack". A global function: verified once, not in
 * every state of its callers. The kernel zeroes the buffer after the last frame. */
__noinline __u64 stack__hash(const struct native_stack *stack)
{
	__u64 hash = 14695981039346656037ULL;
	__u32 i;

	if (!stack)
		return 0;
	for (i = 0; i < MAX_STACK_DEPTH && stack->ips[i]; i++)
		hash = (hash ^ stack->ips[i]) * 1099511628211ULL;
	return i ? hash | 1 : 0;
}

/* The current kernel or user stack, stored in native_stacks; its key, 0 if none was read. */
static __always_inline __u64 stack__capture(void *ctx, __u64 flags)
{
	struct native_stack *stack;
	__u32 zero = 0;
	__u64 id;

	stack = bpf_map_lookup_elem(&native_scratch, &zero);
	if (!stack)
		return 0;
	if (bpf_get_stack(ctx, stack->ips, sizeof(stack->ips), flags) < 0) {
		__sync_fetch_and_add(&stack_errors, 1);
		return 0;
	}
	id = stack__hash(stack);
	/* A lookup of a stack already kept marks it recently used; an iteration in progress may
	 * still hold its key. */
	if (!id || bpf_map_lookup_elem(&native_stacks, &id))
		return id;
	if (bpf_map_update_elem(&native_stacks, &id, stack, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&native_stacks, &id)) {
		__sync_fetch_and_add(&stack_errors, 1);
		return 0;
	}
	return id;
}

/* Older kernels named task_struct's state field `state` (renamed `__state` in 5.14). */
struct task_struct___pre514 {
	long state;
} __attribute__((preserve_access_index));

static __always_inline unsigned int task__state(struct task_struct *task)
{
	if (bpf_core_field_exists(task->__state))
		return BPF_CORE_READ(task, __state);
	return BPF_CORE_READ((struct task_struct___pre514 *)task, state);
}

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFIFO 0010000
#define S_IFREG 0100000
#define S_IFBLK 0060000

/* The open file behind fd of task, NULL if there is none. */
static struct file *task__file(struct task_struct *task, __s64 fd)
{
	struct file **fds;
	struct file *file;
	unsigned int max_fds;

	if (fd < 0)
		return NULL;
	max_fds = BPF_CORE_READ(task, files, fdt, max_fds);
	if (fd >= max_fds)
		return NULL;
	fds = BPF_CORE_READ(task, files, fdt, fd);
	if (bpf_core_read(&file, sizeof(file), &fds[fd]))
		return NULL;
	return file;
}

static __u32 fd__reason(struct task_struct *task, __s64 fd)
{
	struct file *file = task__file(task, fd);
	umode_t mode;

	if (!file)
		return REASON_OTHER;
	mode = BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT;
	if (mode == S_IFSOCK || mode == S_IFIFO)
		return REASON_NET;
	if (mode == S_IFREG || mode == S_IFBLK)
		return REASON_DISK;
	return REASON_OTHER;
}

/*
 * What the stall delayed, read once it ends (at the poll entry ending the busy period, never on
 * a healthy iteration): the loop's epoll instance's ready list (eventpoll.rdllist: the fds whose
 * events arrived while the loop was busy, plus level-triggered ones still pending) and, for each
 * listening socket among them, its accept queue (sk_ack_backlog). Read without the epoll lock:
 * a list changing under the walk gives a count that is off by what changed, and the walk is
 * bounded (WAITING_MAX_READY, the list's head, any unreadable node).
 */
#define WAITING_MAX_READY 256
#define TCP_LISTEN 10

static void waiting__count(const struct loop_thread *thread, struct stall_record *record,
			   struct process_stats *stats)
{
	struct file *loop_file, *file;
	struct list_head *head, *node;
	struct eventpoll *ep;
	struct epitem *epi;
	struct socket *sock;
	struct sock *sk;
	static const char epoll_name[] = "[eventpoll]";
	char name[sizeof(epoll_name)] = {};
	__u32 i;

	record->waiting_known = 0;
	record->ready_fds = 0;
	record->connections = 0;
	if (thread->loop_fd >= LOOP_FD_ANY)
		return;
	loop_file = task__file(bpf_get_current_task_btf(), thread->loop_fd);
	/* epoll_wait got this fd; it is an epoll instance unless the call is about to fail. */
	if (!loop_file ||
	    bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(loop_file, f_path.dentry,
									 d_name.name)) < 0)
		return;
	for (i = 0; i < sizeof(name); i++)
		if (name[i] != epoll_name[i])
			return;
	ep = BPF_CORE_READ(loop_file, private_data);
	if (!ep)
		return;
	head = &ep->rdllist;
	node = BPF_CORE_READ(ep, rdllist.next);
	for (i = 0; i < WAITING_MAX_READY && node && node != head; i++) {
		epi = (void *)node - bpf_core_field_offset(struct epitem, rdllink);
		record->ready_fds++;
		file = BPF_CORE_READ(epi, ffd.file);
		if (file && (BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) == S_IFSOCK) {
			sock = BPF_CORE_READ(file, private_data);
			sk = sock ? BPF_CORE_READ(sock, sk) : NULL;
			if (sk && BPF_CORE_READ(sk, __sk_common.skc_state) == TCP_LISTEN)
				record->connections += BPF_CORE_READ(sk, sk_ack_backlog);
		}
		node = BPF_CORE_READ(node, next);
	}
	record->waiting_known = 1;
	if (stats) {
		__sync_fetch_and_add(&stats->waiting_connections, record->connections);
		__sync_fetch_and_add(&stats->waiting_ready_fds, record->ready_fds);
	}
}

/* The first fd set in a select() fd_set, -1 when the set is empty or unreadable. */
static __s64 fdset__first(__u64 set_addr, __u64 nfds)
{
	__u64 bits = 0;

	if (!set_addr || bpf_probe_read_user(&bits, sizeof(bits), (void *)set_addr))
		return -1;
	if (nfds < 64)
		bits &= (1ULL << nfds) - 1;
	if (!bits)
		return -1;
	return log2_u64(bits & -bits);
}

/*
 * Why a thread went off-CPU, from the syscall it blocked in and its arguments. The switching-out
 * task is current, so its user memory (poll's pollfd array, select's fd_set) is readable.
 */
static __u32 offcpu__reason(struct task_struct *task, struct pt_regs *regs, __s32 syscall,
			    unsigned int state, __u32 pid)
{
	__u64 arg0 = SYSCALL_ARG0(regs), arg1 = SYSCALL_ARG1(regs);
	struct pollfd first = {};
	__s64 fd;

	switch (syscall) {
	case SYS_NANOSLEEP:
	case SYS_CLOCK_NANOSLEEP:
	case SYS_PAUSE:
		return REASON_SLEEP;
	case SYS_FUTEX:
		return python__is_gil(pid, arg0) ? REASON_GIL : REASON_LOCK;
	case SYS_FUTEX_WAITV:
	case SYS_FLOCK:
	case SYS_FCNTL:
		return REASON_LOCK;
	case SYS_FSYNC:
	case SYS_FDATASYNC:
	case SYS_SYNC:
	case SYS_SYNCFS:
	case SYS_SYNC_FILE_RANGE:
	case SYS_MSYNC:
		return REASON_DISK;
	case SYS_POLL:
	case SYS_PPOLL:
		/* CPython waits in poll() on a socket with a timeout before recv(); poll() on no
		 * fds is a sleep. */
		if (arg1 == 0)
			return REASON_SLEEP;
		if (bpf_probe_read_user(&first, sizeof(first), (void *)arg0))
			return REASON_OTHER;
		return fd__reason(task, first.fd);
	case SYS_SELECT:
	case SYS_PSELECT6:
		/* CPython <= 3.10 implements time.sleep() as select() on no fds. */
		fd = fdset__first(arg1, arg0);
		if (fd < 0)
			fd = fdset__first(SYSCALL_ARG2(regs), arg0);
		if (fd < 0)
			return arg0 == 0 || (!arg1 && !SYSCALL_ARG2(regs)) ? REASON_SLEEP : REASON_OTHER;
		return fd__reason(task, fd);
	}
	if (state & TASK_UNINTERRUPTIBLE)
		return REASON_DISK;
	if (syscall < 0 || !syscall__takes_fd(syscall))
		return REASON_OTHER;
	return fd__reason(task, (__s32)arg0);
}

static void thread__switch_out(void *ctx, struct loop_thread *thread, struct task_struct *prev,
			       bool preempt, __u64 now)
{
	struct pt_regs *regs;
	unsigned int state;
	__u64 kernel_stack_id, user_stack_id, py_stack_id, js_stack_id;
	bool preempted;
	__s32 syscall;
	__u32 reason, slot;

	thread__account(thread, prev, now, 1);
	state = task__state(prev);
	/* A preempted task may already have set a sleeping state before schedule(): it is still
	 * runnable. */
	preempted = preempt || state == TASK_RUNNING;
	if (preempted) {
		thread->run_state = RUN_ACTIVE;
		thread->current_slot = NO_SLOT;
		/* Preempted long into a busy period that has no stack yet: where it ran is the
		 * on-CPU stack a sample would take. On a loaded host a thread that shares its CPU
		 * can run 50 ms of a 100 ms stall and meet none of the samples. */
		if (thread->nr_slots || span_ns(thread->busy_start_ns, now) < sample_after_ns)
			return;
	}
	regs = (struct pt_regs *)bpf_task_pt_regs(prev);
	syscall = preempted ? -1 : syscall__current(regs);
	reason = preempted ? REASON_NONE : offcpu__reason(prev, regs, syscall, state, thread->pid);
	/* Preempted, the kernel stack is the preemption's own. */
	kernel_stack_id = preempted ? 0 : stack__capture(ctx, 0);
	user_stack_id = stack__capture(ctx, BPF_F_USER_STACK);
	/* Switch-out is the only moment the thread's frames are current: a time.sleep() at the
	 * start of a callback has used no time yet, so no sampler would see it. */
	py_stack_id = python__capture(thread, prev->pid, reason);
	/* Past the walk budget (dozens of GIL handoffs in one iteration), a wait at the same
	 * native stack stands for the code an earlier walk found there, so its time is not
	 * piled up under no code at all. */
	if (!py_stack_id && !preempted)
		py_stack_id = thread__earlier_py_stack(thread, kernel_stack_id, user_stack_id, reason,
						       syscall);
	js_stack_id = v8__switch_walk_allowed(thread->pid, prev->pid, thread->busy_start_ns) ?
		      v8__capture(thread->pid, REGS_FP(regs), REGS_SP(regs)) : 0;
	slot = thread__slot(thread, kernel_stack_id, user_stack_id, py_stack_id, js_stack_id,
			    preempted ? STACK_ON_CPU : STACK_OFF_CPU, reason, syscall);
	if (preempted) {
		/* The busy period's time on a CPU so far ran there, as far as anyone saw. */
		if (slot < MAX_STACK_SLOTS)
			thread__slot_at(thread, slot)->ns += thread->on_cpu_ns;
		return;
	}
	thread->run_state = RUN_BLOCKED;
	thread->current_slot = slot;
	if (reason == REASON_GIL && slot < MAX_STACK_SLOTS)
		thread__slot_at(thread, slot)->gil_holder = python__gil_holder(thread->pid);
}

/* Blocking in the loop's own poll (entry_boundary): the wait between two iterations. */
static __always_inline bool thread__blocks_in_poll(struct loop_thread *thread,
						   struct task_struct *prev, bool preempt)
{
	struct pt_regs *regs;
	__s32 syscall;

	if (preempt || task__state(prev) == TASK_RUNNING)
		return false;
	regs = (struct pt_regs *)bpf_task_pt_regs(prev);
	syscall = syscall__current(regs);
	return (syscall == SYS_EPOLL_WAIT || syscall == SYS_EPOLL_PWAIT ||
		syscall == SYS_EPOLL_PWAIT2) && (__u32)SYSCALL_ARG0(regs) == thread->loop_fd;
}

/* Only a loop thread's switch-out matters: its switch-in shows in its run delay (see
 * thread__account()). Other tasks' switches cost one array load (loop_tids) and no clock read. */
SEC("tp_btf/sched_switch")
int BPF_PROG(sched_switch, bool preempt, struct task_struct *prev, struct task_struct *next)
{
	__u32 prev_tid = prev->pid;
	struct loop_thread *thread;
	__u64 now;

	thread = loop_thread__get(prev_tid);
	if (!thread)
		return 0;
	if (!thread->busy_start_ns) {
		/* Marked idle in its poll, and leaving the CPU elsewhere (a rare event: the wakeup
		 * out of the poll was missed): its iteration is under way. */
		if (thread->run_state != RUN_IDLE || thread__blocks_in_poll(thread, prev, preempt))
			return 0;
		now = bpf_ktime_get_ns();
		iteration__infer(thread, prev, now);
	} else if (entry_boundary && thread__blocks_in_poll(thread, prev, preempt)) {
		/* Asleep in its poll: idle, no clock read. A wakeup that raced this switch-out
		 * (seen before it) is then missed, and the iteration's start is inferred from the
		 * CPU time the thread uses from here (iteration__infer()). Keeping that wakeup for
		 * this switch-out was tried: a wakeup that cancels the sleep before the task leaves
		 * the CPU looks the same, and the poll's next sleep then counted as busy (a false
		 * stall). */
		thread->busy_start_ns = 0;
		thread->run_state = RUN_IDLE;
		thread->idle_cpu_ns = prev->se.sum_exec_runtime;
		return 0;
	} else {
		now = bpf_ktime_get_ns();
	}
	thread__switch_out(ctx, thread, prev, preempt, now);
	return 0;
}

/* The wakeup ends a blocked thread's off-CPU time; what follows until it runs is its run
 * delay. A wakeup not seen leaves it to thread__account()'s CPU-time split, or, out of the
 * loop's poll, to iteration__infer(). */
SEC("tp_btf/sched_waking")
int BPF_PROG(sched_waking, struct task_struct *task)
{
	__u64 waker = bpf_get_current_pid_tgid();
	struct loop_thread *thread;
	__u32 tid = task->pid, slot;

	thread = loop_thread__get(tid);
	if (!thread)
		return 0;
	/* Out of the loop's poll: the next iteration begins. */
	if (thread->run_state == RUN_IDLE) {
		iteration__begin(thread, task, bpf_ktime_get_ns());
		thread->run_state = RUN_WOKEN_IDLE;
		return 0;
	}
	if (!thread->busy_start_ns)
		return 0;
	if (thread->run_state != RUN_BLOCKED)
		return 0;
	thread__account(thread, task, bpf_ktime_get_ns(), 0);
	/* A thread of the same process that wakes a GIL waiter is the one that dropped the GIL.
	 * Timer wakeups run in whatever task the interrupt hit: only keep same-process wakers. */
	slot = thread->current_slot;
	if (slot < MAX_STACK_SLOTS && waker >> 32 == thread->pid && (__u32)waker != tid)
		thread->slots[slot].waker_tid = (__u32)waker;
	thread->run_state = RUN_WOKEN;
	thread->current_slot = NO_SLOT;
	return 0;
}

SEC("perf_event")
int on_cpu_sample(struct bpf_perf_event_data *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	struct loop_thread *thread;
	__u64 kernel_stack_id = 0, user_stack_id = 0, py_stack_id, js_stack_id, now;
	bool in_user = sample__in_user_mode(ctx);
	struct task_struct *task;
	struct pt_regs *regs;
	__u32 slot;

	thread = loop_thread__get(tid);
	if (!thread)
		return 0;
	now = bpf_ktime_get_ns();
	/* Marked idle in its poll, and running its callbacks (not on its way to sleep: an NMI
	 * sample can land between the switch-out program and the switch): the wakeup was missed,
	 * and a callback that never blocks would be seen by nothing else. */
	if (!thread->busy_start_ns && thread->run_state == RUN_IDLE) {
		task = bpf_get_current_task_btf();
		if (task__state(task) == TASK_RUNNING)
			iteration__infer(thread, task, now);
	}
	if (!thread->busy_start_ns || now - thread->busy_start_ns < sample_after_ns)
		return 0;
	py_stack_id = python__capture(thread, tid, REASON_NONE);
	/* In the kernel (a syscall, a page fault) the user frames are the ones saved on entry. */
	if (in_user) {
		js_stack_id = v8__capture(thread->pid, sample__fp(ctx), sample__sp(ctx));
	} else {
		regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
		js_stack_id = v8__capture(thread->pid, REGS_FP(regs), REGS_SP(regs));
	}
	slot = py_stack_id || js_stack_id ? thread__lang_slot(thread, py_stack_id, js_stack_id)
					  : NO_SLOT;
	/* Native stacks are captured only for a sample that may start a slot: each capture takes
	 * an entry of native_stacks. A sample in user mode has no kernel stack: asking for one
	 * only fails. */
	if (slot >= MAX_STACK_SLOTS) {
		if (!in_user)
			kernel_stack_id = stack__capture(ctx, 0);
		user_stack_id = stack__capture(ctx, BPF_F_USER_STACK);
		slot = thread__slot(thread, kernel_stack_id, user_stack_id, py_stack_id,
				    js_stack_id, STACK_ON_CPU, REASON_NONE, -1);
	}
	if (slot >= MAX_STACK_SLOTS) {
		thread->untracked_stack_ns += sample_period_ns;
		return 0;
	}
	thread__slot_at(thread, slot)->ns += sample_period_ns;
	thread__slot_at(thread, slot)->samples++;
	return 0;
}

static __always_inline void counter__move(__u64 *from, __u64 *to, __u64 *also)
{
	__u64 value = *from;

	*from = 0;
	if (value && to)
		__sync_fetch_and_add(to, value);
	if (value && also)
		__sync_fetch_and_add(also, value);
}

static __always_inline void max__raise(__u64 *max, __u64 value)
{
	if (max && value > *max)
		*max = value;
}

/*
 * Move an exiting thread's counters into its process's stats (and its own, with
 * --per-thread, else NULL), each zeroed before it is added: userspace reads process_stats
 * before loop_threads, so it may miss a count for a moment (and never shows a counter going
 * back) but never counts it twice, in either series.
 */
static void stats__fold(struct process_stats *process, struct process_stats *own,
			struct loop_thread *thread)
{
	__u32 i;

	max__raise(process ? &process->max_busy_ns : NULL, thread->max_busy_ns);
	max__raise(own ? &own->max_busy_ns : NULL, thread->max_busy_ns);
	counter__move(&thread->iterations, process ? &process->iterations : NULL,
		      own ? &own->iterations : NULL);
	counter__move(&thread->busy_ns, process ? &process->busy_ns : NULL,
		      own ? &own->busy_ns : NULL);
	for (i = 0; i < HIST_BUCKETS; i++)
		counter__move(&thread->busy_hist[i], process ? &process->busy_hist[i] : NULL,
			      own ? &own->busy_hist[i] : NULL);
}

/* A thread that exits or execs is no longer the loop thread it was. Its tstate mapping goes
 * too: tids are reused (pid_max is often 32768), and a new thread must not inherit it. */
static __always_inline void thread__forget(__u32 tid)
{
	struct loop_thread *thread;
	__u32 index;

	bpf_map_delete_elem(&python_threads, &tid);
	if (!id_bits__test(loop_tids, tid))
		return;
	id_bits__clear(loop_tids, tid);
	/* One entry per tid: a thread gets one only when loop_thread__get() found none, and its
	 * bit is set after the entry is claimed and cleared before it is freed. */
	index = loop_thread__find(loop_thread_tids, tid);
	if (index >= LOOP_THREADS)
		return;
	thread = bpf_map_lookup_elem(&loop_threads, &index);
	if (thread && thread->iterations)
		stats__fold(stats__get(thread->pid, 0),
			    per_thread_stats ? stats__get(thread->pid, tid) : NULL, thread);
	/* Free only once folded: userspace adds the counters of entries with a tid. */
	*loop_thread__tid(index) = 0;
}

static void process__report(__u32 type, __u32 pid)
{
	struct process_record *record;

	record = bpf_ringbuf_reserve(&events, sizeof(*record), 0);
	if (!record) {
		__sync_fetch_and_add(&lost_events, 1);
		return;
	}
	record->type = type;
	record->pid = pid;
	record->parent_pid = 0;
	bpf_get_current_comm(record->comm, sizeof(record->comm));
	bpf_ringbuf_submit(record, 0);
}

/* Tell userspace when the last thread of a traced process exits, so its series can go. */
static void process__exited(struct task_struct *task)
{
	__u32 pid = task->tgid;
	__u8 *decision;

	decision = pid__maybe_known(pid) ? bpf_map_lookup_elem(&traced_pids, &pid) : NULL;
	/* do_exit() drops signal->live before this tracepoint on every kernel: zero means the
	 * whole thread group is gone. */
	if (!decision || BPF_CORE_READ(task, signal, live.counter) != 0)
		return;
	/* Processes --all filtered out are forgotten here, so their pids can be announced again
	 * when reused; traced ones once userspace has reported them. */
	if (*decision != TRACE_YES) {
		bpf_map_delete_elem(&traced_pids, &pid);
		return;
	}
	process__report(RECORD_PROCESS_EXIT, pid);
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(sched_process_exit, struct task_struct *task)
{
	thread__forget(task->pid);
	process__exited(task);
	return 0;
}

/* A traced process's child process (not a thread) is announced, to be traced too. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(sched_process_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 parent_pid = parent->tgid;
	__u8 *decision;

	if (!follow_forks || child->pid != child->tgid || !pid__maybe_known(parent_pid))
		return 0;
	decision = bpf_map_lookup_elem(&traced_pids, &parent_pid);
	if (decision && *decision == TRACE_YES)
		process__announce(child->pid, parent_pid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(sched_process_exec, struct task_struct *task, pid_t old_pid)
{
	__u32 pid = task->tgid;
	__u8 *decision;

	thread__forget(task->pid);
	decision = pid__maybe_known(pid) ? bpf_map_lookup_elem(&traced_pids, &pid) : NULL;
	if (decision && *decision == TRACE_YES)
		process__report(RECORD_PROCESS_EXEC, pid);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
