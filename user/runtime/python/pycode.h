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
	/* Not this object any more: its ob_type is still PyCode_Type but its ob_refcnt is no live
	 * object's, or it changed while it was read. Nothing else is read. */
	bool freed;
	/* struct py_frame.name_fingerprint as the BPF walker would record it now, and the other
	 * value it may have recorded while co_name's hash was not computed yet. */
	__u32 fingerprint;
	__u32 fingerprint_unhashed;
	bool name_hashed; /* fingerprint is co_name's hash, not its address */
	/* Set by the cache: still the object at addr. A valid entry that is no longer (freed,
	 * nothing else there yet) still names the frames walked while it lived. */
	bool live;
};

/*
 * Read the code object at code->addr. Everything comes from memory the target controls: reads
 * are bounded (names, line tables), strings are re-encoded as UTF-8, and anything that does not
 * look like a code object leaves code->valid false.
 */
void pycode__read(const struct pycode_reader *reader, struct code_info *code);
/* A str object as a malloc'd UTF-8 string, NULL if it is not a readable compact str. */
char *pycode__str(const struct pycode_reader *reader, __u64 addr);
/*
 * Whether the code object at code->addr is still the one read: code objects never change, but
 * a freed one's address is reused (exec, generated functions, reloads): live (ob_type,
 * ob_refcnt), same pointers, same name hash. Two small reads, never the names or line table.
 */
bool pycode__same(const struct pycode_reader *reader, const struct code_info *code);
/*
 * pycode__same without the name's hash: one read. The pointers, ob_type and ob_refcnt are
 * those of the live object read, or of one at its address that reuses all of them; a frame's
 * fingerprint (pycode__walked) tells which.
 */
bool pycode__unchanged(const struct pycode_reader *reader, const struct code_info *code);
/*
 * Whether a frame the BPF walker saw with this fingerprint ran this code object, and not one
 * freed since whose address it reuses (another function's name and file).
 */
bool pycode__walked(const struct code_info *code, __u32 name_fingerprint);
/* Free a code_info allocated with malloc/calloc, and what it holds. */
/* An empty entry for the code object at addr (counted in the cache sizes), NULL if out of
 * memory; freed by pycode__free. */
struct code_info *pycode__new(__u64 addr);
void pycode__free(struct code_info *code);

#endif
