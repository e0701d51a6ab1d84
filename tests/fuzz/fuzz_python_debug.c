// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for user/runtime/python/python_debug.c: the _Py_DebugOffsets reader, whose
 * bytes are read from the start of a traced CPython's _PyRuntime. Byte 0 picks the minor version
 * (3.13 plus byte 0 modulo 4: versions with a table and without); the rest are the bytes read.
 * A rejected table must leave the static row untouched; an accepted one is of that version.
 * Seed: tests/fuzz/corpus/python_debug (a real 3.13 _PyRuntime head, byte 0 = 0).
 */
#include <stdint.h>
#include <string.h>

#include "python_debug.h"
#include "python_offsets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct python_offsets *row;
	struct python_offsets offsets, before;
	const char *why;
	int minor;

	if (!size)
		return 0;
	minor = 13 + data[0] % 4;
	row = python_offsets__find(3, minor);
	if (!row) {
		/* A minor without a row: only the rejection paths. */
		memset(&offsets, 0, sizeof(offsets));
		python_debug__apply(minor, data + 1, size - 1, &offsets, NULL);
		return 0;
	}
	offsets = before = *row;
	why = NULL;
	if (python_debug__apply(minor, data + 1, size - 1, &offsets, &why)) {
		/* A rejected table leaves the row as it was, and says why for the warning. */
		if (memcmp(&offsets, &before, sizeof(offsets)) || !why || !why[0])
			__builtin_trap();
	} else if (offsets.major != 3 || offsets.minor != minor) {
		__builtin_trap();
	}
	return 0;
}
