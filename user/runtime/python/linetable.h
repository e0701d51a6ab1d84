/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
#ifndef __LOOPSTALL_LINETABLE_H
#define __LOOPSTALL_LINETABLE_H

#include <stddef.h>

/*
 * Source line of the instruction at byte offset `offset` of a CPython 3.<minor> code object,
 * decoded from the raw bytes of its line table (co_lnotab for 3.8/3.9, co_linetable from
 * 3.10) and its co_firstlineno, as that version's PyCode_Addr2Line() computes it.
 *
 * Returns -1 if the instruction has no line, if the table does not cover the offset (3.10+;
 * 3.8/3.9 give every offset past the table the last line, as CPython does), or if minor is not
 * 8..13. The table may be read from another process: it is never read past len, and the
 * work is O(len).
 */
int linetable__line(int minor, int firstlineno, const unsigned char *table, size_t len,
		    unsigned int offset);

#endif /* __LOOPSTALL_LINETABLE_H */
