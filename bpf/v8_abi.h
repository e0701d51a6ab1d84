/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * V8 internals that the BPF frame walker and userspace both need. Userspace reads them from the
 * v8dbg_* post-mortem metadata that node exports (user/runtime/node/v8meta.c), per process.
 */
#ifndef __LOOPSTALL_V8_H
#define __LOOPSTALL_V8_H

#include "abi_types.h"

/* JavaScript functions kept per stack, innermost first. */
#define MAX_JS_DEPTH 64
/* Frames (native and JavaScript) followed along the frame-pointer chain per walk. */
#define MAX_FP_FRAMES 128
/* Words above the stack pointer searched for a saved frame pointer (at most MAX_JS_DEPTH). */
#define SP_SCAN_WORDS 64

/*
 * Per traced V8 process, keyed by pid. A frame is a JavaScript frame when the slot under its
 * frame type slot (v8dbg_off_fp_function: fp - 16) holds a tagged pointer (low bits
 * heap_object_tag under heap_object_tag_mask) to an object whose map has an instance type in
 * [js_function_first, js_function_last].
 */
struct v8_proc {
	__u16 map_instance_type; /* v8dbg_class_Map__instance_type__uint16_t */
	__u16 js_function_first; /* v8dbg_type_JSFunction__JS_FUNCTION_TYPE */
	__u16 js_function_last;  /* the last JSFunction subtype (class constructors...): a table */
	__u16 heap_object_map;   /* v8dbg_class_HeapObject__map__Map */
	__u16 function_shared;   /* v8dbg_class_JSFunction__shared__SharedFunctionInfo */
	__u16 native_context_type; /* a table */
	__u8 heap_object_tag;
	__u8 heap_object_tag_mask;
	/* Frame type markers (v8dbg_frametype_*, encoded as the table says) of internal and
	 * JSEntry frames, and where JSEntry frames save c_entry_fp. */
	__s16 entry_c_entry_fp;
	__u64 internal_marker;
	__u64 entry_marker;
	__u64 construct_entry_marker;
	/* The executable code of the module V8 is in: return addresses into it mark the frames
	 * that called into libc (see fp__from_sp()). */
	__u64 code_start;
	__u64 code_end;
};

/* The SharedFunctionInfo of each JavaScript frame: a JSFunction is a per-closure object that
 * the young-generation GC moves within milliseconds; its SharedFunctionInfo lives in old
 * space and is what names the function. */
struct js_stack {
	__u32 depth;
	__u32 truncated; /* the walk stopped early: depth limit */
	__u64 shared[MAX_JS_DEPTH]; /* tagged SharedFunctionInfo pointers, innermost first */
};

#endif /* __LOOPSTALL_V8_H */
