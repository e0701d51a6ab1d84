/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef V8META_H
#define V8META_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>
#include "symbolize.h"
#include "v8_layouts.h"

/*
 * The facts about one V8 build that loopstall uses, from its v8dbg_* post-mortem metadata (ints
 * exported by node for debuggers like llnode) and, for what that lacks, the row of
 * v8_layouts.h for its version. Offsets are from an object's start (the tagged pointer minus
 * heap_object_tag); types are Map::instance_type values.
 */
/* The value of a field the metadata lacks; only optional ones are left so. */
#define V8META_MISSING (-0x7fffffff)

struct v8_meta {
	__u64 anchor; /* address of a v8dbg_ symbol: in the module V8 was linked into */
	int major, minor;
	const struct v8_layout *layout;
	/* tagging */
	int tagged_size, pointer_size;
	int heap_object_tag, heap_object_tag_mask;
	int smi_tag_mask, smi_shift_size;
	/* frames */
	int fp_function, fp_frame_type;
	int frametype_internal, frametype_entry, frametype_construct_entry;
	/* HeapObject, Map */
	int heap_object_map, map_instance_type;
	/* JSFunction, SharedFunctionInfo */
	int type_js_function, function_shared;
	int type_shared, shared_name_or_scope_info, shared_script;
	int shared_function_data; /* optional */
	int type_scope_info;
	int type_uncompiled_first, type_uncompiled_last, uncompiled_start_position;
	/* Script, FixedArray */
	int type_script, script_name, script_source, script_line_ends;
	int type_fixed_array, fixed_array_length, fixed_array_data;
	/* String */
	int first_nonstring_type, string_encoding_mask, string_representation_mask;
	int one_byte_string_tag, seq_string_tag, cons_string_tag, sliced_string_tag,
	    thin_string_tag, external_string_tag;
	int string_length, seq_one_byte_chars, seq_two_byte_chars;
	int cons_first, cons_second, thin_actual, sliced_parent, sliced_offset;
};

/*
 * Read the metadata of the V8 in process pid. 0 when usable; -ENOENT when the process has no V8
 * metadata (not node, or node built without it); -EAGAIN when its files could not all be read
 * for now (targetfs's time budget: ask again after TARGETFS_RETRY_NS); another -errno with a one-line reason in
 * `why` when it has some but loopstall cannot use it (unknown version, pointer compression,
 * a missing field).
 */
/* Forget which mapped files were found to export V8's metadata. */
void v8meta__free_cache(void);

int v8meta__read(struct syms *syms, pid_t pid, struct v8_meta *meta, char *why, size_t size);

/* The steps of v8meta__read, each symbol's value coming from the target (tests/fuzz): every
 * field missing; the field a symbol name fills (v8dbg_*, V8's version), NULL for any other name;
 * whether the fields read make a V8 the walker can read, with the reason in `why` if not. */
void v8meta__reset(struct v8_meta *meta);
int *v8meta__field(struct v8_meta *meta, const char *name);
int v8meta__check(struct v8_meta *meta, char *why, size_t size);

#endif
