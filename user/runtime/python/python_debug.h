/* SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause */
/*
 * CPython 3.13+ offsets from the running interpreter itself: _Py_DebugOffsets, the first
 * member of _PyRuntime, holds the build's own struct offsets. Reading them instead of trusting
 * the table generated from one build means a new patch release needs no code change.
 *
 * Use: read python_debug__size(minor) bytes at &_PyRuntime, fill a struct python_offsets with
 * python_offsets__find(3, minor) (it supplies what _Py_DebugOffsets lacks: code_flags,
 * code_firsttraceable, runtime_gil, gil_cond..., the unicode shifts), then call
 * python_debug__apply() on it. On failure keep the static row or give up on the process.
 */
#ifndef __LOOPSTALL_PYTHON_DEBUG_H
#define __LOOPSTALL_PYTHON_DEBUG_H

#include <stddef.h>

struct python_offsets;

/*
 * Bytes to read from the start of _PyRuntime for CPython 3.minor; 0 if it has no table. A
 * minor newer than every layout known is read through the newest one.
 */
size_t python_debug__size(int minor);
/* The static row to start from for 3.minor: its own, or the newest one's for a newer minor. */
const struct python_offsets *python_debug__row(int minor);

/*
 * Overwrite the fields of *offsets that the target's _Py_DebugOffsets covers, `debug` being
 * the `len` bytes read from the start of its _PyRuntime and *offsets the static row of the
 * same minor. The bytes come from the target and are checked, never trusted: the cookie, the
 * length, the version's major.minor, and every value against the width of its field and a
 * sane bound. *offsets changes only when the whole set is valid.
 *
 * Every value must also lie below the size of its struct, which _Py_DebugOffsets gives too.
 *
 * Returns 0; -EINVAL for bytes that are not a plausible _Py_DebugOffsets of 3.minor, or an
 * *offsets of another version; -ENOTSUP for a minor without a table, a free-threaded build
 * (another object layout) or a pre-release (whose _Py_DebugOffsets layout may differ). On
 * failure *why (if not NULL) says what did not check out, for the one warning.
 */
int python_debug__apply(int minor, const unsigned char *debug, size_t len,
			struct python_offsets *offsets, const char **why);

#endif /* __LOOPSTALL_PYTHON_DEBUG_H */
