// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* CPython code objects, read from a target's memory through a reader (fuzzed in tests/fuzz). */
#include <stdlib.h>
#include <string.h>
#include "pycode.h"
#include "utf8.h"
#include "caches.h"

/* Bounds on what a hostile or corrupt target can make us read or keep. */
#define MAX_NAME_CHARS 512
#define MAX_LINETABLE_BYTES (256 * 1024)
#define CODE_HEADER_BYTES 256

/* Append code point cp as UTF-8 if it fits; false when out is full. */
static bool utf8__put(char *out, size_t size, size_t *len, __u32 cp)
{
	char buf[4];
	size_t n = utf8__encode(cp, buf);

	if (*len + n >= size)
		return false;
	memcpy(out + *len, buf, n);
	*len += n;
	return true;
}

char *pycode__str(const struct pycode_reader *reader, __u64 addr)
{
	const struct python_offsets *off = reader->offsets;
	unsigned char raw[MAX_NAME_CHARS * 4];
	char text[MAX_NAME_CHARS * 4 + 1];
	__u32 state = 0, kind, cp;
	__u64 length = 0, header, i;
	size_t len = 0;

	if (reader->read(reader->ctx, addr + off->unicode_length, &length, sizeof(length)) ||
	    reader->read(reader->ctx, addr + off->unicode_state, &state, sizeof(state)))
		return NULL;
	kind = state >> off->unicode_kind_shift & 7;
	/* Code objects' names are always compact; a legacy (non-compact) str would keep its
	 * characters elsewhere. */
	if (!(state >> off->unicode_compact_shift & 1) || (kind != 1 && kind != 2 && kind != 4))
		return NULL;
	if (length > MAX_NAME_CHARS)
		length = MAX_NAME_CHARS;
	header = state >> off->unicode_ascii_shift & 1 ? off->unicode_ascii_size
						     : off->unicode_compact_size;
	if (length && reader->read(reader->ctx, addr + header, raw, length * kind))
		return NULL;
	for (i = 0; i < length; i++) {
		if (kind == 1)
			cp = raw[i];
		else if (kind == 2)
			cp = (__u32)raw[2 * i] | (__u32)raw[2 * i + 1] << 8;
		else
			memcpy(&cp, raw + 4 * i, sizeof(cp));
		if (!utf8__put(text, sizeof(text), &len, cp))
			break;
	}
	text[len] = '\0';
	return strdup(text);
}

/* A bytes object's contents, malloc'd; NULL if unreadable or unreasonably large. */
static unsigned char *pycode__bytes(const struct pycode_reader *reader, __u64 addr, size_t *len)
{
	const struct python_offsets *off = reader->offsets;
	unsigned char *data;
	__s64 size = 0;

	if (reader->read(reader->ctx, addr + off->bytes_size, &size, sizeof(size)) || size < 0 ||
	    size > MAX_LINETABLE_BYTES)
		return NULL;
	data = malloc(size ? size : 1);
	if (!data)
		return NULL;
	if (size && reader->read(reader->ctx, addr + off->bytes_sval, data, size)) {
		free(data);
		return NULL;
	}
	*len = size;
	return data;
}

static __u64 header__u64(const unsigned char *header, __u16 offset)
{
	__u64 value = 0;

	if (offset != PY_NONE16 && offset + sizeof(value) <= CODE_HEADER_BYTES)
		memcpy(&value, header + offset, sizeof(value));
	return value;
}

static int header__int(const unsigned char *header, __u16 offset)
{
	int value = 0;

	if (offset != PY_NONE16 && offset + sizeof(value) <= CODE_HEADER_BYTES)
		memcpy(&value, header + offset, sizeof(value));
	return value;
}

/* The pointers to the name, file and line table objects, mixed: a new code object at the same
 * address has new ones (its line table, at least, is its own object). */
static __u64 header__stamp(const struct python_offsets *off, const unsigned char *header)
{
	return header__u64(header, off->code_name) ^ header__u64(header, off->code_filename) * 31 ^
	       header__u64(header, off->code_linetable) * 1009 ^
	       (__u64)header__int(header, off->code_firstlineno);
}

/*
 * A live object's ob_refcnt: 1 to 2^32-1. 3.12+ immortal objects keep 0x3fffffff in the low
 * 32 bits, which Py_INCREF saturates without carrying; 3.11's deep-frozen code objects start
 * at 999999999. A freed pymalloc block holds the pool's free-list pointer (an mmap'd arena
 * address, above 4 GiB on x86-64) or NULL there; glibc's tcache and bins also overwrite
 * ob_type, which is checked apart.
 */
static bool header__live(const unsigned char *header)
{
	__u64 refcnt = header__u64(header, 0);

	return refcnt && refcnt < 1ULL << 32;
}

/* The fingerprint bpf/python.bpf.h records for the code object of this header: see
 * struct py_frame.name_fingerprint. */
static int header__fingerprint(const struct pycode_reader *reader, const unsigned char *header,
			       __u32 *fingerprint, __u32 *unhashed)
{
	__u64 name = header__u64(header, reader->offsets->code_name);
	__s64 hash;

	if (!name || reader->read(reader->ctx, name + reader->offsets->unicode_hash, &hash,
				  sizeof(hash)))
		return -1;
	*unhashed = (__u32)name;
	*fingerprint = hash != -1 ? (__u32)hash : (__u32)name;
	return 0;
}

/* Whether header is that of a live code object with the pointers code was read with. */
static bool header__unchanged(const struct pycode_reader *reader, const unsigned char *header,
			      const struct code_info *code)
{
	__u64 type;

	memcpy(&type, header + sizeof(__u64), sizeof(type));
	return (!reader->code_type || type == reader->code_type) && header__live(header) &&
	       header__stamp(reader->offsets, header) == code->stamp;
}

bool pycode__unchanged(const struct pycode_reader *reader, const struct code_info *code)
{
	unsigned char header[CODE_HEADER_BYTES];

	return code->valid && !reader->read(reader->ctx, code->addr, header, sizeof(header)) &&
	       header__unchanged(reader, header, code);
}

/*
 * The pointers alone miss a freed code object whose address, name, file and line table
 * addresses all went to a new one (LIFO allocators): the name's hash tells them apart.
 */
bool pycode__same(const struct pycode_reader *reader, const struct code_info *code)
{
	unsigned char header[CODE_HEADER_BYTES];
	__u32 fingerprint, unhashed;

	if (!code->valid || reader->read(reader->ctx, code->addr, header, sizeof(header)))
		return false;
	return header__unchanged(reader, header, code) &&
	       !header__fingerprint(reader, header, &fingerprint, &unhashed) &&
	       fingerprint == code->fingerprint && unhashed == code->fingerprint_unhashed;
}

bool pycode__walked(const struct code_info *code, __u32 name_fingerprint)
{
	if (!code->valid)
		return false;
	/* Once the object is freed its name's address may hold another unhashed name: only the
	 * hash still tells. */
	if (!code->live)
		return code->name_hashed && name_fingerprint == code->fingerprint;
	/* The second: the walk ran before co_name's hash was first computed. */
	return name_fingerprint == code->fingerprint ||
	       name_fingerprint == code->fingerprint_unhashed;
}

/* Read a code object. ob_type must be PyCode_Type: anything else is not a code object (a stale
 * or garbage frame), and marks the stack truncated. */
void pycode__read(const struct pycode_reader *reader, struct code_info *code)
{
	const struct python_offsets *off = reader->offsets;
	unsigned char header[CODE_HEADER_BYTES];
	__u64 type;

	if (reader->read(reader->ctx, code->addr, header, sizeof(header)))
		return;
	memcpy(&type, header + sizeof(__u64), sizeof(type)); /* PyObject: ob_refcnt, ob_type */
	if (reader->code_type && type != reader->code_type)
		return;
	if (!header__live(header) ||
	    header__fingerprint(reader, header, &code->fingerprint, &code->fingerprint_unhashed)) {
		code->freed = true;
		return;
	}
	code->name_hashed = code->fingerprint != code->fingerprint_unhashed;
	code->stamp = header__stamp(off, header);
	code->function = pycode__str(reader, header__u64(header, off->code_name));
	code->file = pycode__str(reader, header__u64(header, off->code_filename));
	if (off->code_qualname != PY_NONE16)
		code->qualname = pycode__str(reader, header__u64(header, off->code_qualname));
	code->firstlineno = header__int(header, off->code_firstlineno);
	code->firsttraceable = header__int(header, off->code_firsttraceable);
	code->flags = (__u32)header__int(header, off->code_flags);
	code->linetable = pycode__bytes(reader, header__u64(header, off->code_linetable),
					&code->linetable_len);
	code->valid = code->function && code->file && code->linetable;
	code->live = code->valid;
	/* Freed while being read: its strings may be another object's. */
	if (code->valid && !pycode__same(reader, code)) {
		code->valid = code->live = false;
		code->freed = true;
	}
}

CACHE_COUNT(code_count, "python_code_objects")

struct code_info *pycode__new(__u64 addr)
{
	struct code_info *code = calloc(1, sizeof(*code));

	if (!code)
		return NULL;
	cache_count__add(&code_count, 1);
	code->addr = addr;
	return code;
}

void pycode__free(struct code_info *code)
{
	cache_count__add(&code_count, -1);
	free(code->function);
	free(code->qualname);
	free(code->file);
	free(code->linetable);
	free(code);
}

