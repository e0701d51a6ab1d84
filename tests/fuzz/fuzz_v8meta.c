// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for user/runtime/node/v8meta.c: V8's metadata (v8dbg_* symbols and their
 * values), read from the traced node's symbol table and memory. The input is a list of
 * symbols: a NUL-terminated name and the 4-byte value read at it, as often as it fits. Whatever
 * the check accepts must be a layout the walker can read. Seed: tests/fuzz/corpus/v8meta (the
 * values of a Node 20 / V8 11.3 build).
 */
#include <stdint.h>
#include <string.h>

#include "v8meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char name[256], why[256];
	struct v8_meta meta;
	size_t i = 0, n;
	int value, *field;

	v8meta__reset(&meta);
	while (i < size) {
		for (n = 0; i + n < size && data[i + n] && n < sizeof(name) - 1; n++)
			name[n] = (char)data[i + n];
		name[n] = '\0';
		i += n + 1;
		if (i + sizeof(value) > size)
			break;
		memcpy(&value, data + i, sizeof(value));
		i += sizeof(value);
		field = v8meta__field(&meta, name);
		if (field)
			*field = value;
	}
	why[0] = '\0';
	if (v8meta__check(&meta, why, sizeof(why)) == 0) {
		if (!meta.layout || meta.pointer_size != 8 || meta.fp_function != -16 ||
		    meta.type_js_function < 0 || meta.type_js_function > UINT16_MAX)
			__builtin_trap();
	} else if (!why[0]) {
		__builtin_trap(); /* a refusal always says why */
	}
	return 0;
}
