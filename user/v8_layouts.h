/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What V8's post-mortem metadata (v8dbg_*) does not say, per V8 version: JSFunction's instance
 * types and the layout of ScopeInfo, whose Torque flags and optional slots hold a compiled
 * function's name and source position (src/objects/scope-info.tq of that V8). The 11.3 row was
 * measured on node v20.20.2: `node --allow-natives-syntax` printed (%DebugPrint) a function, an
 * arrow function, a class, a function with 80 context locals and the builtin constructors, and
 * their maps and ScopeInfos were read back through /proc/PID/mem. No script regenerates it yet.
 */
#ifndef V8_LAYOUTS_H
#define V8_LAYOUTS_H

#include <linux/types.h>

struct v8_layout {
	int major, minor;
	/* JS_FUNCTION_TYPE and the subtypes after it (class, Array, Promise, RegExp and typed
	 * array constructors): how many instance types are JSFunctions. */
	__u16 js_function_types;
	/* ScopeInfo: tagged slots after the map: flags, parameter_count, context_local_count,
	 * then the variable part. */
	__u8 scope_header_slots;
	/* ScopeFlags bits */
	__u8 scope_type_shift, scope_type_bits;
	__u8 saved_class_variable_bit;
	__u8 function_variable_shift; /* 2 bits: VariableAllocationInfo, NONE = 0 */
	__u8 inferred_name_bit;
	/* ScopeType values that carry position_info */
	__u8 scope_eval, scope_function, scope_module, scope_script;
	/* kScopeInfoMaxInlinedLocalNamesSize: more context locals than this are named by one
	 * hash table slot instead of one slot each. */
	__u16 max_inlined_local_names;
	/* ExternalString: where V8 caches the resource's data pointer, and the instance type bit
	 * of the "uncached" external strings that have no such cache (node's builtin modules'
	 * sources are cached external one-byte strings). */
	__u8 external_data;
	__u8 uncached_external_mask;
};

static const struct v8_layout v8_layouts[] = {
	/* V8 11.3 (Node 20) */
	{ .major = 11, .minor = 3, .js_function_types = 16,
	  .scope_header_slots = 3, .scope_type_shift = 0, .scope_type_bits = 4,
	  .saved_class_variable_bit = 10, .function_variable_shift = 12, .inferred_name_bit = 14,
	  .scope_eval = 1, .scope_function = 2, .scope_module = 3, .scope_script = 4,
	  .max_inlined_local_names = 75, .external_data = 24, .uncached_external_mask = 0x10 },
};

static inline const struct v8_layout *v8_layout__find(int major, int minor)
{
	size_t i;

	for (i = 0; i < sizeof(v8_layouts) / sizeof(v8_layouts[0]); i++)
		if (v8_layouts[i].major == major && v8_layouts[i].minor == minor)
			return &v8_layouts[i];
	return NULL;
}

#endif
