// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * CPython 3.13+ offsets read from the interpreter's own _Py_DebugOffsets. The bytes come from
 * the target's memory, which the target controls (or which may not be a _PyRuntime at all
 * when a symbol lookup went wrong): everything is checked before anything is used, nothing
 * past `len` is read, and *offsets is only written once every value passed.
 */
#include <errno.h>
#include <string.h>
#include "python_offsets.h"
#include "python_debug.h"
#include "util.h"

/*
 * No offset or size loopstall takes from _Py_DebugOffsets comes near this: the largest is
 * inside PyInterpreterState (threads.head at 7344 in 3.13), and the BPF walker reads each
 * field a few bytes at a time. Anything above it is garbage, not a bigger struct.
 */
#define MAX_DEBUG_VALUE (1ULL << 20)

/* PY_RELEASE_LEVEL in the low byte of PY_VERSION_HEX (patchlevel.h). */
#define PY_RELEASE_LEVEL_ALPHA 0xa
#define PY_RELEASE_LEVEL_GAMMA 0xc	/* release candidate */
#define PY_RELEASE_LEVEL_FINAL 0xf

static __u64 debug__u64(const unsigned char *debug, size_t pos)
{
	__u64 value;

	/* The caller's buffer need not be 8-byte aligned. */
	memcpy(&value, debug + pos, sizeof(value));
	return value;
}

/* The generated table is checked by its generator; still never read past the layout's size. */
static int layout__word_ok(const struct python_debug_layout *layout, size_t pos)
{
	return pos + sizeof(__u64) <= layout->size;
}

static int field__value(const struct python_debug_layout *layout,
			const struct python_debug_field *field, const unsigned char *debug,
			__u64 *out)
{
	__u64 value, base = 0, size;

	if (!layout__word_ok(layout, field->debug) || !layout__word_ok(layout, field->debug_size) ||
	    field->offset + field->width > sizeof(struct python_offsets))
		return -EINVAL;
	value = debug__u64(debug, field->debug);
	/* Every member lies inside its struct, whose size heads the member's section: what a
	 * table read through the wrong layout (a newer version's) rarely gets right. */
	size = debug__u64(debug, field->debug_size);
	if (!size || size > MAX_DEBUG_VALUE || value >= size)
		return -EINVAL;
	if (field->debug_base != PY_NONE16) {
		if (!layout__word_ok(layout, field->debug_base))
			return -EINVAL;
		base = debug__u64(debug, field->debug_base);
		/* Bound both before subtracting: two huge words can have a plausible difference. */
		if (base >= MAX_DEBUG_VALUE || value < base)
			return -EINVAL;
	}
	if (value >= MAX_DEBUG_VALUE)
		return -EINVAL;
	value -= base;
	/*
	 * All ones in the field's width is PY_NONE*, "this version has no such field", which
	 * would make the walker skip the field instead of reading it: not a valid value either.
	 */
	switch (field->width) {
	case 1:
	case 2:
	case 4:
		if (value >= (1ULL << (8 * field->width)) - 1)
			return -EINVAL;
		break;
	default:
		return -EINVAL;
	}
	*out = value;
	return 0;
}

static void field__set(struct python_offsets *offsets, const struct python_debug_field *field,
		       __u64 value)
{
	unsigned char *dst = (unsigned char *)offsets + field->offset;
	__u8 u8 = value;
	__u16 u16 = value;
	__u32 u32 = value;

	/* Through memcpy: the table addresses fields by offsetof(), not by name. */
	if (field->width == 1)
		memcpy(dst, &u8, sizeof(u8));
	else if (field->width == 2)
		memcpy(dst, &u16, sizeof(u16));
	else
		memcpy(dst, &u32, sizeof(u32));
}

/* 0 if PY_VERSION_HEX `version` is a final release of 3.minor. */
static int version__check(int minor, __u64 version)
{
	unsigned int level = version >> 4 & 0xf;

	if (version >> 32 || (version >> 24 & 0xff) != 3 || (int)(version >> 16 & 0xff) != minor)
		return -EINVAL;
	if (level == PY_RELEASE_LEVEL_FINAL)
		return 0;
	/*
	 * _Py_DebugOffsets is only fixed from the final release on: 3.13.0b4 and 3.13.0rc2 added
	 * members in the middle, so a pre-release's bytes are not at this table's positions.
	 */
	if (level >= PY_RELEASE_LEVEL_ALPHA && level <= PY_RELEASE_LEVEL_GAMMA)
		return -ENOTSUP;
	return -EINVAL;
}

/*
 * The layout to read 3.minor's table with: its own, or for a minor newer than any we have
 * headers of, the newest one. CPython keeps _Py_DebugOffsets stable enough for its own
 * remote debuggers; whether a newer table really reads this way is checked value by value
 * here, and against the live process by the caller.
 */
static const struct python_debug_layout *layout__for(int minor)
{
	const struct python_debug_layout *layout = python_debug_layout__find(3, minor), *newest;
	size_t nr = ARRAY_SIZE(python_debug_layouts);

	if (layout || !nr)
		return layout;
	newest = &python_debug_layouts[nr - 1];
	return minor > newest->minor ? newest : NULL;
}

size_t python_debug__size(int minor)
{
	const struct python_debug_layout *layout = layout__for(minor);

	return layout ? layout->size : 0;
}

const struct python_offsets *python_debug__row(int minor)
{
	const struct python_debug_layout *layout = layout__for(minor);

	return python_offsets__find(3, layout ? layout->minor : minor);
}

static int debug__refuse(const char **why, const char *what, int err)
{
	if (why)
		*why = what;
	return err;
}

int python_debug__apply(int minor, const unsigned char *debug, size_t len,
			struct python_offsets *offsets, const char **why)
{
	const struct python_debug_layout *layout = layout__for(minor);
	struct python_offsets out;
	__u64 free_threaded, value;
	__u16 i;
	int err;

	if (!layout)
		return debug__refuse(why, "no _Py_DebugOffsets layout for this version", -ENOTSUP);
	/* The fields _Py_DebugOffsets lacks come from *offsets: they must be the layout's. */
	if (!offsets || offsets->major != layout->major || offsets->minor != layout->minor)
		return debug__refuse(why, "no offsets row for this version", -EINVAL);
	if (!debug || len < layout->size || !layout__word_ok(layout, layout->version_offset) ||
	    !layout__word_ok(layout, layout->free_threaded_offset) ||
	    layout->cookie_offset + sizeof(layout->cookie) > layout->size)
		return debug__refuse(why, "_Py_DebugOffsets unreadable", -EINVAL);
	if (memcmp(debug + layout->cookie_offset, layout->cookie, sizeof(layout->cookie)))
		return debug__refuse(why, "its cookie is not \"xdebugpy\"", -EINVAL);
	err = version__check(minor, debug__u64(debug, layout->version_offset));
	if (err == -ENOTSUP)
		return debug__refuse(why, "a pre-release, whose _Py_DebugOffsets may differ", err);
	if (err)
		return debug__refuse(why, "its version is not the interpreter's Py_Version", err);
	/*
	 * A --disable-gil build (python3.13t) has a bigger object header and per-object locks:
	 * its offsets would be right, but the walker's other assumptions (the unicode state
	 * shifts, the GIL) would not.
	 */
	free_threaded = debug__u64(debug, layout->free_threaded_offset);
	if (free_threaded > 1)
		return debug__refuse(why, "free_threaded is neither 0 nor 1", -EINVAL);
	if (free_threaded)
		return debug__refuse(why, "a free-threaded build (another object layout)", -ENOTSUP);

	memcpy(&out, offsets, sizeof(out));
	for (i = 0; i < layout->nr_fields; i++) {
		err = field__value(layout, &layout->fields[i], debug, &value);
		if (err)
			return debug__refuse(why, layout->fields[i].debug_name, err);
		field__set(&out, &layout->fields[i], value);
	}
	memcpy(offsets, &out, sizeof(out));
	return 0;
}
