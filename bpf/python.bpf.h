/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CPython frame walker: reads the interpreter's frame chain of the current thread, keeping the
 * code object address and raw position of each frame. Names and lines are resolved in userspace
 * (user/runtime/python/python.c), which reads the code objects once and caches them.
 */
#ifndef PYTHON_BPF_H
#define PYTHON_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "loopstall.h"
#include "python_abi.h"
#include "read_user.h"

/* Frames walked per stack: --py-depth, at most MAX_PY_DEPTH. */
const volatile __u32 py_depth = DEFAULT_PY_DEPTH;
/* Walks at switch-out per iteration: a loop that blocks often (GIL ping-pong) must not pay a
 * walk per switch. The sampler is bounded by its own rate and does not use this budget: a
 * CPU-bound stretch must not leave the blocking call that follows it without frames. Lock and
 * GIL waits (short handoffs that come by the dozen: each threading.Thread.start() is one or
 * two) have a budget of their own, so a storm of them cannot leave the sleep or read that
 * follows in the same iteration, usually what makes the stall, without frames. */
const volatile __u32 max_py_walks_per_iteration = 16;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* resized by userspace */
	__type(key, __u32);        /* pid */
	__type(value, struct python_proc);
} python_procs SEC(".maps");

/* tid -> its PyThreadState, found by userspace and verified here before each walk. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* resized by userspace */
	__type(key, __u32);
	__type(value, struct python_thread);
} python_threads SEC(".maps");

/* Loop threads whose mapped tstate was not theirs (or had no frame) at a walk: userspace looks
 * them up again at its next scan instead of at its periodic retry. When full, that retry
 * remains. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32); /* tid */
	__type(value, __u8);
} python_resync SEC(".maps");

/* Walked stacks by content hash; LRU so that old stacks make room without userspace help. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096); /* resized by userspace */
	__type(key, __u64);
	__type(value, struct py_stack);
} py_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_stack);
} py_scratch SEC(".maps");

__u64 py_walks_skipped = 0;
__u64 py_thread_mismatch = 0;

/*
 * The tstate userspace mapped to this tid must still belong to it: a thread that exited leaves
 * its tstate to be freed and reused. 3.11+ records the kernel tid; older versions only
 * pthread_self(), which is the thread pointer.
 */
static __always_inline bool tstate__owned_by(const struct python_offsets *off,
					     const struct python_thread *thread, __u64 tls_base)
{
	__u64 tstate = thread->tstate;

	if (off->tstate_native_thread_id != PY_NONE16)
		return read_user_u64(tstate + off->tstate_native_thread_id) == thread->ns_tid;
	return read_user_u64(tstate + off->tstate_thread_id) == tls_base;
}

static __always_inline __u64 tstate__current_frame(const struct python_offsets *off, __u64 tstate)
{
	__u64 frame = read_user_u64(tstate + off->tstate_frame);

	/* 3.11 and 3.12 reach the frame through the thread's _PyCFrame. */
	if (frame && off->cframe_current_frame != PY_NONE16)
		frame = read_user_u64(frame + off->cframe_current_frame);
	return frame;
}

/* Walk into *stack; returns a content hash of the frames, 0 if nothing was read. */
static __u64 python__walk(const struct python_offsets *off, __u64 frame, struct py_stack *stack)
{
	__u64 hash = 14695981039346656037ULL; /* FNV-1a offset basis */
	struct py_frame *out;
	__u32 i, depth = 0;
	__s64 name_hash;
	__u64 name;
	int lasti32;

	stack->truncated = 0;
	for (i = 0; i < MAX_PY_DEPTH; i++) {
		if (!frame)
			break;
		if (i >= py_depth) {
			stack->truncated = 1;
			break;
		}
		out = &stack->frames[i & (MAX_PY_DEPTH - 1)];
		out->owner = 0;
		if (bpf_probe_read_user(&out->code, sizeof(out->code), (void *)(frame + off->frame_code))) {
			stack->truncated = 1;
			break;
		}
		out->code &= ~(__u64)off->code_tag_mask;
		if (off->lasti_mode == PY_LASTI_POINTER) {
			out->lasti = read_user_u64(frame + off->frame_lasti);
		} else {
			lasti32 = 0;
			bpf_probe_read_user(&lasti32, sizeof(lasti32), (void *)(frame + off->frame_lasti));
			out->lasti = (__u64)(__s64)lasti32;
		}
		if (off->frame_owner != PY_NONE16)
			bpf_probe_read_user(&out->owner, 1, (void *)(frame + off->frame_owner));
		/* Two dependent reads, code->co_name->hash: what tells this code object from one
		 * allocated at its address before userspace resolves it. Not for 3.12+ shims. */
		out->name_fingerprint = 0;
		if (out->owner < off->frame_owner_shim) {
			name = read_user_u64(out->code + off->code_name);
			name_hash = -1;
			if (name)
				bpf_probe_read_user(&name_hash, sizeof(name_hash),
						    (void *)(name + off->unicode_hash));
			out->name_fingerprint = (__u32)(name_hash != -1 ? name_hash : name);
		}
		hash = (hash ^ out->code) * 1099511628211ULL;
		hash = (hash ^ out->lasti) * 1099511628211ULL;
		/* A stack of a new code object at a freed one's address is another stack. */
		hash = (hash ^ out->name_fingerprint) * 1099511628211ULL;
		depth = i + 1;
		frame = read_user_u64(frame + off->frame_previous);
	}
	stack->depth = depth;
	return depth ? hash | 1 : 0;
}

/*
 * The current thread's Python stack, stored in py_stacks; its id, or 0 if there is none.
 * reason: why the thread switches out (enum offcpu_reason), REASON_NONE for the sampler.
 */
static __u64 python__capture(struct loop_thread *thread, __u32 tid, __u32 reason)
{
	struct python_proc *proc;
	struct py_stack *stack;
	struct python_thread *mapped;
	__u64 frame, id;
	__u32 zero = 0, *walks = NULL;

	proc = bpf_map_lookup_elem(&python_procs, &thread->pid);
	if (!proc)
		return 0;
	mapped = bpf_map_lookup_elem(&python_threads, &tid);
	if (!mapped)
		return 0;
	if (reason == REASON_LOCK || reason == REASON_GIL)
		walks = &thread->py_wait_walks;
	else if (reason != REASON_NONE)
		walks = &thread->py_walks;
	if (walks && *walks >= max_py_walks_per_iteration) {
		__sync_fetch_and_add(&py_walks_skipped, 1);
		return 0;
	}
	if (!tstate__owned_by(&proc->offsets, mapped, thread->tls_base)) {
		__sync_fetch_and_add(&py_thread_mismatch, 1);
		bpf_map_update_elem(&python_resync, &tid, &(__u8){ 1 }, BPF_NOEXIST);
		return 0;
	}
	stack = bpf_map_lookup_elem(&py_scratch, &zero);
	if (!stack)
		return 0;
	if (walks)
		*walks += 1;
	frame = tstate__current_frame(&proc->offsets, mapped->tstate);
	/* A loop thread runs Python code: a tstate without a frame is one still being set up for
	 * another thread (on <= 3.11 it carries its creator's ids for a moment). */
	if (!frame)
		bpf_map_update_elem(&python_resync, &tid, &(__u8){ 1 }, BPF_NOEXIST);
	id = python__walk(&proc->offsets, frame, stack);
	stack->task = 0;
	if (proc->offsets.tstate_asyncio_task != PY_NONE32)
		stack->task = read_user_u64(mapped->tstate + proc->offsets.tstate_asyncio_task);
	/* The same frames in another task are another stack. */
	if (id && stack->task)
		id = ((id ^ stack->task) * 1099511628211ULL) | 1;
	if (id)
		bpf_map_update_elem(&py_stacks, &id, stack, BPF_NOEXIST);
	return id;
}

/* Whether a futex address is the GIL of the thread's interpreter. */
static __always_inline bool python__is_gil(__u32 pid, __u64 futex_addr)
{
	struct python_proc *proc = bpf_map_lookup_elem(&python_procs, &pid);

	return proc && futex_addr >= proc->gil_start && futex_addr < proc->gil_end;
}

/*
 * The PyThreadState that holds the GIL the thread now waits for: the GIL's last_holder. The
 * waker is not enough: from 3.12 a waiter often takes the GIL after its timed wait expires,
 * woken by a timer, not by the holder.
 */
static __always_inline __u64 python__gil_holder(__u32 pid)
{
	struct python_proc *proc = bpf_map_lookup_elem(&python_procs, &pid);

	if (!proc || !proc->gil_start || proc->offsets.gil_last_holder == PY_NONE16)
		return 0;
	return read_user_u64(proc->gil_start + proc->offsets.gil_last_holder);
}

#endif /* PYTHON_BPF_H */
