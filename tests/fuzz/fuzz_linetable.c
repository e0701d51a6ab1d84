// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * libFuzzer target for user/runtime/python/linetable.c, whose input is read from the traced process.
 * Input: 1 byte minor selector, 4 bytes firstlineno, 4 bytes offset, then the table, copied
 * into a buffer of exactly its size so that ASan reports any read past it.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *         -o fuzz_linetable tests/fuzz/fuzz_linetable.c user/runtime/python/linetable.c
 *   ./fuzz_linetable -max_total_time=60 -timeout=1
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../user/runtime/python/linetable.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned int offset;
	unsigned char *table;
	int firstlineno, minor;

	if (size < 9)
		return 0;
	/* 7..14: the six supported versions and one unsupported on each side. */
	minor = 7 + data[0] % 8;
	memcpy(&firstlineno, data + 1, sizeof(firstlineno));
	memcpy(&offset, data + 5, sizeof(offset));
	size -= 9;
	table = malloc(size ? size : 1);
	if (!table)
		return 0;
	memcpy(table, data + 9, size);
	/* The offset is often garbage in the wild; make small ones, inside the table, common too. */
	linetable__line(minor, firstlineno, table, size, offset);
	linetable__line(minor, firstlineno, table, size, offset % (4 * size + 2));
	free(table);
	return 0;
}
