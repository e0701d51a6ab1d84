/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * V8 frame walker: follows the frame-pointer chain of the current thread's user stack and keeps
 * the SharedFunctionInfo of every JavaScript frame on it. V8 always keeps a frame-pointer chain
 * through its own frames (interpreted, baseline and optimized code, builtins); native frames in
 * between are followed while they keep rbp as a frame pointer, and glibc code that does not
 * touch rbp is skipped over. Names and lines are resolved in userspace (user/runtime/node/v8.c).
 */
#ifndef V8_BPF_H
#define V8_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "loopstall.h"
#include "read_user.h"
#include "v8_abi.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024); /* resized by userspace */
	__type(key, __u32);        /* pid */
	__type(value, struct v8_proc);
} v8_procs SEC(".maps");

/* Walked stacks by content hash; LRU so that old stacks make room without userspace help. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096); /* resized by userspace */
	__type(key, __u64);
	__type(value, struct js_stack);
} js_stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct js_stack);
} js_scratch SEC(".maps");

/* Walks at switch-out per iteration and thread: a loop that blocks often must not pay a walk per
 * switch (as max_py_walks_per_iteration for Python). The sampler has its own rate. */
const volatile __u32 max_js_walks_per_iteration = 16;

struct js_budget {
	__u64 busy_start_ns; /* the iteration the count is for */
	__u32 walks;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384); /* resized by userspace */
	__type(key, __u32);         /* tid */
	__type(value, struct js_budget);
} js_budgets SEC(".maps");

__u64 js_walks_skipped = 0;

/*
 * The words around a frame pointer that the walk reads at once. V8's frames keep the JSFunction
 * and, under the saved frame pointer, the context or a frame type marker (v8dbg_off_fp_function
 * and _context_or_frame_type, checked by userspace); in native frames they are any data.
 */
struct fp_frame {
	__u64 function;  /* [fp - 16]; JSEntry frames keep their context here */
	__u64 type;      /* [fp - 8]: a context, or a frame type marker */
	__u64 caller_fp; /* [fp] */
	__u64 ret;       /* [fp + 8] */
};

static __always_inline bool v8__is_heap_object(const struct v8_proc *proc, __u64 value)
{
	return (value & proc->heap_object_tag_mask) == proc->heap_object_tag;
}

/* The instance type of the heap object at tagged pointer value, or -1. */
static __always_inline int v8__instance_type(const struct v8_proc *proc, __u64 value)
{
	__u16 type = 0;
	__u64 map;

	if (!v8__is_heap_object(proc, value))
		return -1;
	map = read_user_u64(value - proc->heap_object_tag + proc->heap_object_map);
	if (!v8__is_heap_object(proc, map) ||
	    bpf_probe_read_user(&type, sizeof(type),
				(void *)(map - proc->heap_object_tag + proc->map_instance_type)))
		return -1;
	return type;
}

/* Whether a frame's function slot holds a JSFunction: a heap object whose map says so. */
static __always_inline bool v8__is_js_function(const struct v8_proc *proc, __u64 slot)
{
	int type = v8__instance_type(proc, slot);

	return type >= proc->js_function_first && type <= proc->js_function_last;
}

/*
 * Whether the frame at fp is V8's outermost JSEntry: below it are only the native frames that
 * first entered JavaScript (uv_run's callback, main), so the walk is done. JSEntry saves the
 * isolate's c_entry_fp, the frame of the last exit from JavaScript to C++: an inner entry (C++
 * called from JavaScript calling back) saves that exit, the outermost one 0. A native frame
 * whose data look like that must also hold a NativeContext where JSEntry keeps the context it
 * entered (node enters through the API, in a native context): a wrong stop would lose frames,
 * a missed one only costs the rest of the walk.
 */
static __always_inline bool v8__outermost_entry(const struct v8_proc *proc, __u64 fp,
						const struct fp_frame *frame)
{
	if (frame->type != proc->entry_marker && frame->type != proc->construct_entry_marker)
		return false;
	return !read_user_u64(fp + proc->entry_c_entry_fp) &&
	       v8__instance_type(proc, frame->function) == proc->native_context_type;
}

/*
 * Walk from frame pointer fp into *stack; returns a content hash, 0 if no JS frame was seen. The
 * depth is kept in the map value, not in a register: read back, it is a number the verifier does
 * not know, so the states of one iteration do not multiply by every depth reached so far.
 */
static __always_inline __u64 v8__walk(const struct v8_proc *proc, __u64 fp,
				      struct js_stack *stack)
{
	__u64 hash = 14695981039346656037ULL; /* FNV-1a offset basis */
	struct fp_frame frame;
	__u64 shared;
	__u32 i, depth;

	stack->depth = 0;
	stack->truncated = 0;
	for (i = 0; i < MAX_FP_FRAMES; i++) {
		if (!fp || fp & 7 || bpf_probe_read_user(&frame, sizeof(frame), (void *)(fp - 16)))
			break;
		/* The JSEntryTrampoline's internal frame holds the function it calls, which has
		 * a frame of its own above: counted once. */
		if (frame.type != proc->internal_marker &&
		    v8__is_js_function(proc, frame.function)) {
			depth = stack->depth;
			if (depth >= MAX_JS_DEPTH) {
				stack->truncated = 1;
				break;
			}
			shared = read_user_u64(frame.function - proc->heap_object_tag +
					       proc->function_shared);
			stack->shared[depth & (MAX_JS_DEPTH - 1)] = shared;
			stack->depth = depth + 1;
			hash = (hash ^ shared) * 1099511628211ULL;
		} else if (v8__outermost_entry(proc, fp, &frame)) {
			break;
		}
		/* The stack grows down: a caller's frame is above its callee's. Anything else is
		 * a register used for data, or the end of the chain. */
		if (!frame.ret || frame.caller_fp <= fp)
			break;
		fp = frame.caller_fp;
	}
	return stack->depth ? hash | 1 : 0;
}

/* How far above the stack pointer a frame pointer may point: one thread's stack. */
#define MAX_FRAME_SPAN (8U << 20)

static __always_inline bool fp__plausible(__u64 fp, __u64 below)
{
	return fp > below && fp - below < MAX_FRAME_SPAN && !(fp & 7);
}

/*
 * Where the frame-pointer chain continues when rbp is not part of it: glibc is built without
 * frame pointers, and its syscall wrappers (epoll_pwait, futex waits, read) use rbp for data.
 * They save the caller's rbp on entry, next to the return address into the caller, so the
 * chain's head is the word above the stack pointer that points up the stack and is followed
 * by a return address into V8's module (libuv and V8 are). A spilled pointer argument is
 * followed by another argument, not by a code address; libc frames calling each other return
 * into libc; a frame record continues up the stack (node 22's futex wait path leaves a stack
 * address and a code address next to each other below the real one, pointing at a dead
 * frame). The words are read into the scratch stack, which the walk overwrites afterwards.
 */
static __always_inline __u64 fp__from_sp(const struct v8_proc *proc, __u64 sp,
					 struct js_stack *scratch)
{
	__u64 word, next;
	__u32 i;

	if (bpf_probe_read_user(scratch->shared, SP_SCAN_WORDS * sizeof(__u64), (void *)sp))
		return 0;
	for (i = 0; i + 1 < SP_SCAN_WORDS; i++) {
		word = scratch->shared[i & (MAX_JS_DEPTH - 1)];
		next = scratch->shared[(i + 1) & (MAX_JS_DEPTH - 1)];
		if (fp__plausible(word, sp + i * 8) && next >= proc->code_start &&
		    next < proc->code_end && fp__plausible(read_user_u64(word), word))
			return word;
	}
	return 0;
}

/*
 * The JavaScript stack under the user registers' frame and stack pointers, stored in js_stacks;
 * its id, or 0. A global function, so that the verifier checks its loop once, on its own:
 * inlined, each path through the walk multiplies with each path through the CPython walk of
 * the same program, and the product exceeds the verifier's budget.
 */
__noinline __u64 v8__capture(__u32 pid, __u64 fp, __u64 sp)
{
	struct v8_proc *proc;
	struct js_stack *stack;
	__u32 zero = 0;
	__u64 id;

	proc = bpf_map_lookup_elem(&v8_procs, &pid);
	if (!proc)
		return 0;
	stack = bpf_map_lookup_elem(&js_scratch, &zero);
	if (!stack)
		return 0;
	id = fp__plausible(fp, sp - 8) ? v8__walk(proc, fp, stack) : 0;
	if (!id) {
		fp = fp__from_sp(proc, sp, stack);
		id = fp ? v8__walk(proc, fp, stack) : 0;
	}
	if (id)
		bpf_map_update_elem(&js_stacks, &id, stack, BPF_NOEXIST);
	return id;
}

/* Whether a switch-out of this thread of a V8 process may walk its frames in this iteration;
 * threads of other processes are not V8's (one lookup, no budget entry). */
static __always_inline bool v8__switch_walk_allowed(__u32 pid, __u32 tid, __u64 busy_start_ns)
{
	struct js_budget *budget, fresh = { .busy_start_ns = busy_start_ns, .walks = 1 };

	if (!bpf_map_lookup_elem(&v8_procs, &pid))
		return false;
	budget = bpf_map_lookup_elem(&js_budgets, &tid);
	if (!budget || budget->busy_start_ns != busy_start_ns) {
		bpf_map_update_elem(&js_budgets, &tid, &fresh, BPF_ANY);
		return true;
	}
	if (budget->walks >= max_js_walks_per_iteration) {
		__sync_fetch_and_add(&js_walks_skipped, 1);
		return false;
	}
	budget->walks++;
	return true;
}

#endif /* V8_BPF_H */
