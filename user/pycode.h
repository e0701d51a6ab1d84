/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef PYCODE_H
#define PYCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>
#include "python.h"

#define CO_COROUTINE 0x0080

/* Reads len bytes of the target's memory at addr; 0 when all were read. */
typedef int (*pycode_read_fn)(void *ctx, __u64 addr, void *buf, size_t len);

struct pycode_reader {
	pycode_read_fn read;
	void *ctx;
	const struct python_offsets *offsets;
	__u64 code_type; /* &PyCode_Type; 0: not checked */
};

/* What loopstall keeps of a code object. */
struct code_info {
	__u64 addr;
	bool valid; /* false: not a readable code object; the stack is cut there */
	char *function;
	char *qualname;
	char *file;
	int firstlineno;
	int firsttraceable;
	__u32 flags;
	unsigned char *linetable;
	size_t linetable_len;
	__u64 stamp; /* what identifies this code object at this address (see pycode__same) */
};

/*
 * Read the code object at code->addr. Everything comes from memory the target controls: reads
 * are bounded (names, line tables), strings are re-encoded as UTF-8, and anything that does not
 * look like a code object leaves code->valid false.
 */
void pycode__read(const struct pycode_reader *reader, struct code_info *code);
/*
 * Whether the code object at code->addr is still the one read: code objects never change, but
 * a freed one's address is reused (exec, generated functions, reloads). One small read per
 * check, never the names or line table again.
 */
bool pycode__same(const struct pycode_reader *reader, const struct code_info *code);
/* Free a code_info allocated with malloc/calloc, and what it holds. */
void pycode__free(struct code_info *code);

#endif
