// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for user/runtime/node/v8heap.c: the SharedFunctionInfo, ScopeInfo, Script and String
 * reader, whose every byte comes from the traced process. The input is a memory image of the
 * "target" mapped at IMAGE_BASE; tagged pointers in it may point anywhere. The metadata is
 * node v20.20.2's (V8 11.3); the input's first byte picks the v8_layouts.h row (each V8's
 * ScopeInfo layout) and whether function_data is exported (V8 12 does not); the
 * SharedFunctionInfo is tagged IMAGE_BASE + 8 + 1.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iuser -Ibpf \
 *         -o fuzz_v8heap tests/fuzz/fuzz_v8heap.c user/runtime/node/v8heap.c user/utf8.c
 *   ./fuzz_v8heap -max_total_time=60 -timeout=1
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "v8heap.h"

#define IMAGE_BASE 0x10000ULL

struct image {
	const uint8_t *data;
	size_t size;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* v8dbg_* values of node v20.20.2 (x86_64). */
static const struct v8_meta node20 = {
	.major = 11, .minor = 3, .tagged_size = 8, .pointer_size = 8,
	.heap_object_tag = 1, .heap_object_tag_mask = 3, .smi_tag_mask = 1, .smi_shift_size = 31,
	.fp_function = -16, .heap_object_map = 0, .map_instance_type = 12,
	.type_js_function = 2066, .function_shared = 24,
	.type_shared = 262, .shared_function_data = 8, .shared_name_or_scope_info = 16,
	.shared_script = 32, .type_scope_info = 261,
	.type_uncompiled_first = 220, .type_uncompiled_last = 223, .uncompiled_start_position = 16,
	.type_script = 167, .script_name = 16, .script_source = 8, .script_line_ends = 56,
	.type_fixed_array = 175, .fixed_array_length = 8, .fixed_array_data = 16,
	.first_nonstring_type = 128, .string_encoding_mask = 8, .string_representation_mask = 7,
	.one_byte_string_tag = 8, .seq_string_tag = 0, .cons_string_tag = 1,
	.sliced_string_tag = 3, .thin_string_tag = 5, .external_string_tag = 2,
	.string_length = 12, .seq_one_byte_chars = 16, .seq_two_byte_chars = 16,
	.cons_first = 16, .cons_second = 24, .thin_actual = 16, .sliced_parent = 16,
	.sliced_offset = 24,
};

static int image__read(void *ctx, __u64 addr, void *buf, size_t len)
{
	const struct image *image = ctx;

	if (addr < IMAGE_BASE || addr - IMAGE_BASE > image->size ||
	    len > image->size - (addr - IMAGE_BASE))
		return -1;
	memcpy(buf, image->data + (addr - IMAGE_BASE), len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct v8_meta meta = node20;
	struct v8_shared shared;
	struct v8_script script;
	struct v8_reader reader;
	struct image image;
	int line, column;
	uint8_t *copy;

	meta.layout = &v8_layouts[(size ? data[0] : 0) % (sizeof(v8_layouts) / sizeof(v8_layouts[0]))];
	if (size && data[0] & 0x80)
		meta.shared_function_data = V8META_MISSING;
	/* An exact-size copy: ASan reports any read past the image. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	image.data = copy;
	image.size = size;
	reader = (struct v8_reader){ .read = image__read, .ctx = &image, .meta = &meta };
	v8heap__read_shared(&reader, IMAGE_BASE + 8 + 1, &shared);
	v8heap__same_shared(&reader, IMAGE_BASE + 8 + 1, &shared);
	v8heap__read_script(&reader, shared.valid && shared.script ? shared.script
								 : IMAGE_BASE + 16 + 1, &script);
	if (script.valid)
		v8heap__position(&script, shared.start_position, &line, &column);
	v8heap__free_script(&script);
	v8heap__free_shared(&shared);
	free(copy);
	return 0;
}
