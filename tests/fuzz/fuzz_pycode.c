// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for user/runtime/python/pycode.c: the code-object reader, whose every byte comes from the
 * traced process. The input is a memory image of the "target" mapped at IMAGE_BASE; pointers in
 * it may point anywhere (into the image, outside it, at the end of it). Byte 0 picks the CPython
 * version whose offsets interpret it; the code object is at IMAGE_BASE + 8.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iuser -Ibpf \
 *         -o fuzz_pycode tests/fuzz/fuzz_pycode.c user/runtime/python/pycode.c user/runtime/python/linetable.c user/utf8.c
 *   ./fuzz_pycode -max_total_time=60 -timeout=1
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "linetable.h"
#include "pycode.h"
#include "python_offsets.h"

#define IMAGE_BASE 0x10000ULL

struct image {
	const uint8_t *data;
	size_t size;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	size_t nr_versions = sizeof(python_offsets_table) / sizeof(python_offsets_table[0]);
	const struct python_offsets *offsets;
	struct code_info *code;
	struct image image;
	uint8_t *copy;

	if (size < 1)
		return 0;
	offsets = &python_offsets_table[data[0] % nr_versions];
	/* An exact-size copy: ASan reports any read past the image. */
	copy = malloc(size);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	image.data = copy;
	image.size = size;
	code = calloc(1, sizeof(*code));
	if (code) {
		code->addr = IMAGE_BASE + 8;
		pycode__read(&(struct pycode_reader){ .read = image__read, .ctx = &image,
						       .offsets = offsets }, code);
		if (code->valid)
			linetable__line(offsets->minor, code->firstlineno, code->linetable,
					code->linetable_len, (unsigned int)size);
		pycode__free(code);
	}
	free(copy);
	return 0;
}
