// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* V8 heap objects read from a target's memory through a reader (fuzzed in tests/fuzz). */
#include <stdlib.h>
#include <string.h>
#include "utf8.h"
#include "util.h"
#include "v8heap.h"

/* Bounds on what a hostile or corrupt target can make us read or keep. */
#define MAX_NAME_UNITS 512
#define MAX_SOURCE_UNITS (4U << 20) /* line ends are counted in the first 4 Mi characters */
#define MAX_LINES (1U << 20)
#define MAX_STRING_DEPTH 32 /* cons/thin/sliced strings nested in each other */
#define MAX_SCOPE_LOCALS (1 << 16)
#define CHUNK_UNITS 4096

/* UTF-16 code units being gathered from a string's pieces. */
struct units {
	__u16 *buf;
	size_t len, max;
};

static bool heap__is_object(const struct v8_meta *meta, __u64 value)
{
	return (value & meta->heap_object_tag_mask) == (__u64)meta->heap_object_tag;
}

static bool heap__is_smi(const struct v8_meta *meta, __u64 value)
{
	return (value & meta->smi_tag_mask) == 0;
}

/* A 64-bit Smi keeps its value in the upper half (v8meta checks the shift is 31 + 1). */
static __s64 heap__smi(__u64 value)
{
	return (__s64)value >> 32;
}

static int heap__read(const struct v8_reader *reader, __u64 object, long offset, void *buf,
		      size_t len)
{
	if (!heap__is_object(reader->meta, object) || offset < 0)
		return -1;
	return reader->read(reader->ctx, object - reader->meta->heap_object_tag + offset, buf, len);
}

static __u64 heap__word(const struct v8_reader *reader, __u64 object, long offset)
{
	__u64 value = 0;

	heap__read(reader, object, offset, &value, sizeof(value));
	return value;
}

/* The object's instance type, -1 if it is not a readable heap object. */
static int heap__type(const struct v8_reader *reader, __u64 object)
{
	__u64 map = heap__word(reader, object, reader->meta->heap_object_map);
	__u16 type;

	if (!heap__is_object(reader->meta, map) ||
	    heap__read(reader, map, reader->meta->map_instance_type, &type, sizeof(type)))
		return -1;
	return type;
}

/* ---- strings ------------------------------------------------------------------------------ */

/* Characters [from, from + count) stored flat at chars (an address in the target). */
static bool chars__append(const struct v8_reader *reader, __u64 chars, bool one_byte, __u32 from,
			  __u32 count, struct units *out)
{
	unsigned char chunk[CHUNK_UNITS * 2];
	unsigned int width = one_byte ? 1 : 2;
	__u32 done, n, i;

	for (done = 0; done < count; done += n) {
		n = count - done < CHUNK_UNITS ? count - done : CHUNK_UNITS;
		if (reader->read(reader->ctx, chars + (__u64)(from + done) * width, chunk, n * width))
			return false;
		for (i = 0; i < n; i++)
			out->buf[out->len++] = one_byte ? chunk[i]
							: (__u16)(chunk[2 * i] | chunk[2 * i + 1] << 8);
	}
	return true;
}

/* Append characters [from, from + count) of a String to out, as far as out has room. */
static bool string__append(const struct v8_reader *reader, __u64 str, __u32 from, __u32 count,
			   struct units *out, int depth)
{
	const struct v8_meta *meta = reader->meta;
	int type = heap__type(reader, str), representation;
	__s32 length = 0;
	__u32 first_len, part;
	__u64 first, offset;
	bool one_byte;

	if (type < 0 || type >= meta->first_nonstring_type || depth > MAX_STRING_DEPTH ||
	    heap__read(reader, str, meta->string_length, &length, sizeof(length)) || length < 0 ||
	    from > (__u32)length)
		return false;
	if (count > (__u32)length - from)
		count = (__u32)length - from;
	if (count > out->max - out->len)
		count = out->max - out->len;
	if (!count)
		return true;
	representation = type & meta->string_representation_mask;
	one_byte = (type & meta->string_encoding_mask) == meta->one_byte_string_tag;
	if (representation == meta->seq_string_tag)
		return chars__append(reader, str - meta->heap_object_tag +
						     (one_byte ? meta->seq_one_byte_chars
							       : meta->seq_two_byte_chars),
				     one_byte, from, count, out);
	if (representation == meta->external_string_tag &&
	    !(type & meta->layout->uncached_external_mask))
		return chars__append(reader, heap__word(reader, str, meta->layout->external_data),
				     one_byte, from, count, out);
	if (representation == meta->thin_string_tag)
		return string__append(reader, heap__word(reader, str, meta->thin_actual), from,
				      count, out, depth + 1);
	if (representation == meta->sliced_string_tag) {
		offset = heap__word(reader, str, meta->sliced_offset);
		if (!heap__is_smi(meta, offset) || heap__smi(offset) < 0 ||
		    heap__smi(offset) > (__s64)(1U << 30))
			return false;
		return string__append(reader, heap__word(reader, str, meta->sliced_parent),
				      from + (__u32)heap__smi(offset), count, out, depth + 1);
	}
	if (representation == meta->cons_string_tag) {
		first = heap__word(reader, str, meta->cons_first);
		if (heap__read(reader, first, meta->string_length, &length, sizeof(length)) ||
		    length < 0)
			return false;
		first_len = (__u32)length;
		if (from < first_len) {
			part = first_len - from < count ? first_len - from : count;
			if (!string__append(reader, first, from, part, out, depth + 1))
				return false;
			from += part;
			count -= part;
		}
		return !count || string__append(reader, heap__word(reader, str, meta->cons_second),
						from - first_len, count, out, depth + 1);
	}
	/* Uncached external strings keep their characters behind a C++ object: not followed. */
	return false;
}

/* UTF-16 to a malloc'd UTF-8 string; a lone surrogate becomes U+FFFD. */
static char *units__utf8(const __u16 *units, size_t nr)
{
	char *text = malloc(nr * 3 + 1);
	size_t i, len = 0;
	__u32 cp;

	if (!text)
		return NULL;
	for (i = 0; i < nr; i++) {
		cp = units[i];
		if (cp >= 0xd800 && cp < 0xdc00 && i + 1 < nr && units[i + 1] >= 0xdc00 &&
		    units[i + 1] < 0xe000)
			cp = 0x10000 + ((cp - 0xd800) << 10) + (units[++i] - 0xdc00);
		else if (cp >= 0xd800 && cp < 0xe000)
			cp = 0xfffd;
		len += utf8__encode(cp, text + len);
	}
	text[len] = '\0';
	return text;
}

/* A String as a malloc'd UTF-8 string (its first MAX_NAME_UNITS characters), NULL if it is
 * not a string we can read. */
static char *heap__string(const struct v8_reader *reader, __u64 str)
{
	__u16 units[MAX_NAME_UNITS];
	struct units out = { .buf = units, .max = MAX_NAME_UNITS };

	if (!string__append(reader, str, 0, MAX_NAME_UNITS, &out, 0))
		return NULL;
	return units__utf8(units, out.len);
}

static bool heap__is_string(const struct v8_reader *reader, __u64 value)
{
	int type = heap__type(reader, value);

	return type >= 0 && type < reader->meta->first_nonstring_type;
}

/* ---- SharedFunctionInfo ------------------------------------------------------------------- */

/* Tagged slot i of an object laid out as an array of tagged values (ScopeInfo). */
static __u64 heap__slot(const struct v8_reader *reader, __u64 object, long slot)
{
	return heap__word(reader, object, slot * reader->meta->tagged_size);
}

/*
 * A compiled function's name and start position live in its ScopeInfo, after a variable number
 * of slots that its flags and local count say (see struct v8_layout). Whatever does not have
 * the expected kind where the layout puts it leaves the function unnamed, never misnamed.
 */
static void scope_info__read(const struct v8_reader *reader, __u64 info, struct v8_shared *out,
			     __u64 *name, __u64 *inferred)
{
	const struct v8_layout *layout = reader->meta->layout;
	__u64 flags_raw = heap__slot(reader, info, 1), count_raw, start = 0; /* set on every path */
	__s64 flags, count;
	long slot;
	unsigned int scope_type;

	count_raw = heap__slot(reader, info, layout->scope_header_slots);
	if (!heap__is_smi(reader->meta, count_raw))
		return;
	if (layout->scope_flags_raw)
		flags = flags_raw >> 32 ? -1 : (__s64)flags_raw;
	else
		flags = heap__is_smi(reader->meta, flags_raw) ? heap__smi(flags_raw) : -1;
	if (flags < 0)
		return;
	count = heap__smi(count_raw);
	if (count < 0 || count > MAX_SCOPE_LOCALS)
		return;
	scope_type = flags >> layout->scope_type_shift & ((1U << layout->scope_type_bits) - 1);
	slot = 1 + layout->scope_header_slots;
	if (layout->scope_position_first) {
		/* V8 >= 13: every scope's position, then a module's variable count */
		start = heap__slot(reader, info, slot);
		slot += 2 + (scope_type == layout->scope_module);
	}
	slot += count < layout->max_inlined_local_names ? count : 1; /* context local names */
	slot += count;						      /* their infos */
	slot += flags >> layout->saved_class_variable_bit & 1;
	if (flags >> layout->function_variable_shift & 3) {
		*name = heap__slot(reader, info, slot);
		slot += 2; /* name, context or stack slot index */
	}
	if (flags >> layout->inferred_name_bit & 1)
		*inferred = heap__slot(reader, info, slot++);
	if (!layout->scope_position_first) {
		if (scope_type != layout->scope_function && scope_type != layout->scope_eval &&
		    scope_type != layout->scope_module && scope_type != layout->scope_script)
			return;
		start = heap__slot(reader, info, slot);
	}
	if (heap__is_smi(reader->meta, start) && heap__smi(start) >= 0 &&
	    heap__smi(start) < (1LL << 31))
		out->start_position = (int)heap__smi(start);
}

void v8heap__read_shared(const struct v8_reader *reader, __u64 shared, struct v8_shared *out)
{
	const struct v8_meta *meta = reader->meta;
	__u64 name_or_scope, script, data, name = 0, inferred = 0;
	__s32 start;
	int type;

	memset(out, 0, sizeof(*out));
	out->start_position = -1;
	if (heap__type(reader, shared) != meta->type_shared)
		return;
	name_or_scope = heap__word(reader, shared, meta->shared_name_or_scope_info);
	script = heap__word(reader, shared, meta->shared_script);
	data = meta->shared_function_data == V8META_MISSING ? 0 :
	       heap__word(reader, shared, meta->shared_function_data);
	out->stamp[0] = name_or_scope;
	out->stamp[1] = script;
	type = heap__type(reader, name_or_scope);
	if (type == meta->type_scope_info) {
		scope_info__read(reader, name_or_scope, out, &name, &inferred);
	} else if (type >= 0 && type < meta->first_nonstring_type) {
		/* Not compiled yet: the name itself, the position in its UncompiledData. */
		name = name_or_scope;
		type = heap__type(reader, data);
		if (type >= meta->type_uncompiled_first && type <= meta->type_uncompiled_last &&
		    !heap__read(reader, data, meta->uncompiled_start_position, &start,
				sizeof(start)) && start >= 0)
			out->start_position = start;
	} else if (!heap__is_smi(meta, name_or_scope)) {
		return; /* a Smi is V8's "no shared name" sentinel */
	}
	/* V8 names a function by its own name, else by the one the parser inferred from where it
	 * was assigned ("obj.method = function () {}"), as in stack traces. */
	out->name = heap__is_string(reader, name) ? heap__string(reader, name) : NULL;
	if ((!out->name || !out->name[0]) && heap__is_string(reader, inferred)) {
		free(out->name);
		out->name = heap__string(reader, inferred);
	}
	if (!out->name)
		out->name = strdup("");
	if (!out->name)
		return;
	out->script = heap__type(reader, script) == meta->type_script ? script : 0;
	out->valid = true;
}

bool v8heap__same_shared(const struct v8_reader *reader, __u64 shared, const struct v8_shared *s)
{
	const struct v8_meta *meta = reader->meta;

	return heap__type(reader, shared) == meta->type_shared &&
	       heap__word(reader, shared, meta->shared_name_or_scope_info) == s->stamp[0] &&
	       heap__word(reader, shared, meta->shared_script) == s->stamp[1];
}

/* ---- Script --------------------------------------------------------------------------------- */

/* The Script's own line_ends FixedArray of Smis, once V8 has computed it (stack traces do). */
static bool script__line_ends_array(const struct v8_reader *reader, __u64 array,
				    struct v8_script *out)
{
	const struct v8_meta *meta = reader->meta;
	__u64 length = heap__word(reader, array, meta->fixed_array_length);
	__u64 chunk[512];
	size_t i, nr, n = 0;
	__s64 value;

	if (heap__type(reader, array) != meta->type_fixed_array || !heap__is_smi(meta, length) ||
	    heap__smi(length) <= 0 || heap__smi(length) > MAX_LINES)
		return false;
	nr = (size_t)heap__smi(length);
	out->line_ends = malloc(nr * sizeof(*out->line_ends));
	if (!out->line_ends)
		return false;
	for (i = 0; i < nr; i++) {
		if (i % 512 == 0) {
			n = nr - i < 512 ? nr - i : 512;
			if (heap__read(reader, array, meta->fixed_array_data + (long)i * 8, chunk,
				       n * sizeof(chunk[0])))
				break;
		}
		value = heap__smi(chunk[i % 512]);
		if (!heap__is_smi(meta, chunk[i % 512]) || value < (i ? out->line_ends[i - 1] : -1) ||
		    value >= (1LL << 31))
			break;
		out->line_ends[i] = (int)value;
	}
	out->nr_lines = i;
	return i == nr;
}

/* Otherwise the line ends are where the source has its newlines (as V8 counts them). */
static bool script__line_ends_source(const struct v8_reader *reader, __u64 source,
				     struct v8_script *out)
{
	struct units text = { .max = MAX_SOURCE_UNITS };
	size_t i, nr = 0, cap = 0;
	int *grown;

	text.buf = malloc(MAX_SOURCE_UNITS * sizeof(*text.buf));
	if (!text.buf || !string__append(reader, source, 0, MAX_SOURCE_UNITS, &text, 0)) {
		free(text.buf);
		return false;
	}
	for (i = 0; i <= text.len; i++) {
		if (i < text.len && text.buf[i] != '\n')
			continue;
		grown = nr < MAX_LINES ? array__grow(out->line_ends, &cap, nr + 1, sizeof(*grown),
						     256) : NULL;
		if (!grown)
			break;
		out->line_ends = grown;
		out->line_ends[nr++] = (int)i;
	}
	free(text.buf);
	out->nr_lines = nr;
	return nr > 0;
}

void v8heap__read_script(const struct v8_reader *reader, __u64 script, struct v8_script *out)
{
	const struct v8_meta *meta = reader->meta;
	__u64 name, source;

	memset(out, 0, sizeof(*out));
	if (heap__type(reader, script) != meta->type_script)
		return;
	name = heap__word(reader, script, meta->script_name);
	source = heap__word(reader, script, meta->script_source);
	out->stamp = source;
	out->name = heap__is_string(reader, name) ? heap__string(reader, name) : NULL;
	if (!script__line_ends_array(reader, heap__word(reader, script, meta->script_line_ends),
				     out)) {
		free(out->line_ends);
		out->line_ends = NULL;
		out->nr_lines = 0;
		if (!script__line_ends_source(reader, source, out)) {
			free(out->line_ends);
			out->line_ends = NULL;
			out->nr_lines = 0;
		}
	}
	out->valid = true;
}

bool v8heap__same_script(const struct v8_reader *reader, __u64 script, const struct v8_script *s)
{
	return heap__type(reader, script) == reader->meta->type_script &&
	       heap__word(reader, script, reader->meta->script_source) == s->stamp;
}

bool v8heap__position(const struct v8_script *script, int position, int *line, int *column)
{
	size_t low = 0, high = script->nr_lines, mid;

	if (position < 0 || !script->nr_lines || position > script->line_ends[script->nr_lines - 1])
		return false;
	/* The first line whose end is at or after the position. */
	while (low < high) {
		mid = low + (high - low) / 2;
		if (script->line_ends[mid] < position)
			low = mid + 1;
		else
			high = mid;
	}
	*line = (int)low + 1;
	*column = position - (low ? script->line_ends[low - 1] + 1 : 0) + 1;
	return true;
}

void v8heap__free_shared(struct v8_shared *shared)
{
	free(shared->name);
	shared->name = NULL;
}

void v8heap__free_script(struct v8_script *script)
{
	free(script->name);
	free(script->line_ends);
	script->name = NULL;
	script->line_ends = NULL;
}
