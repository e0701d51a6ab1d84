// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* V8's post-mortem metadata: the v8dbg_* ints node exports, read from the running process. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <search.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include "procfs.h"
#include "remote.h"
#include "targetfs.h"
#include "util.h"
#include "v8meta.h"

#define V8DBG_PREFIX "v8dbg_"
#define VERSION_MAJOR "_ZN2v88internal7Version6major_E"
#define VERSION_MINOR "_ZN2v88internal7Version6minor_E"

/*
 * A name ending in "__" is a class field of any type: V8 12 spells types as C++ does
 * (class_SharedFunctionInfo__name_or_scope_info__Tagged_Object_), V8 13 renamed some
 * (__Tagged_NameOrScopeInfoT_). A field V8 renamed has its older name second.
 */
struct v8dbg_field {
	const char *name; /* without the v8dbg_ prefix */
	const char *older;
	size_t offset;    /* in struct v8_meta */
	bool optional;    /* V8META_MISSING is a value the reader checks */
};

#define FIELD(name, member) { name, NULL, offsetof(struct v8_meta, member), false }
#define RENAMED(name, older, member) { name, older, offsetof(struct v8_meta, member), false }
#define OPTIONAL(name, member) { name, NULL, offsetof(struct v8_meta, member), true }

/* Every one but the optional ones is needed: a V8 that lacks one is not one whose frames we
 * know how to read. */
static const struct v8dbg_field fields[] = {
	FIELD("TaggedSize", tagged_size),
	FIELD("SystemPointerSize", pointer_size),
	FIELD("HeapObjectTag", heap_object_tag),
	FIELD("HeapObjectTagMask", heap_object_tag_mask),
	FIELD("SmiTagMask", smi_tag_mask),
	FIELD("SmiShiftSize", smi_shift_size),
	FIELD("off_fp_function", fp_function),
	FIELD("off_fp_context_or_frame_type", fp_frame_type),
	FIELD("frametype_InternalFrame", frametype_internal),
	FIELD("frametype_EntryFrame", frametype_entry),
	FIELD("frametype_ConstructEntryFrame", frametype_construct_entry),
	FIELD("class_HeapObject__map__Map", heap_object_map),
	FIELD("class_Map__instance_type__uint16_t", map_instance_type),
	FIELD("type_JSFunction__JS_FUNCTION_TYPE", type_js_function),
	FIELD("class_JSFunction__shared__SharedFunctionInfo", function_shared),
	FIELD("type_SharedFunctionInfo__SHARED_FUNCTION_INFO_TYPE", type_shared),
	/* V8 12 split it into a trusted and an untrusted field and exports neither: only a
	 * function that was never compiled needs it, for its start position, and a function on
	 * the stack has been compiled. */
	OPTIONAL("class_SharedFunctionInfo__function_data__", shared_function_data),
	FIELD("class_SharedFunctionInfo__name_or_scope_info__", shared_name_or_scope_info),
	/* V8 12 moved debug info to a side table */
	RENAMED("class_SharedFunctionInfo__script__", "class_SharedFunctionInfo__script_or_debug_info__",
		shared_script),
	FIELD("type_ScopeInfo__SCOPE_INFO_TYPE", type_scope_info),
	/* The four UncompiledData types are consecutive: the outer two bound them. */
	FIELD("type_UncompiledDataWithPreparseData__UNCOMPILED_DATA_WITH_PREPARSE_DATA_TYPE",
	      type_uncompiled_first),
	FIELD("type_UncompiledDataWithoutPreparseDataWithJob__"
	      "UNCOMPILED_DATA_WITHOUT_PREPARSE_DATA_WITH_JOB_TYPE", type_uncompiled_last),
	FIELD("class_UncompiledData__start_position__int32_t", uncompiled_start_position),
	FIELD("type_Script__SCRIPT_TYPE", type_script),
	FIELD("class_Script__name__Object", script_name),
	FIELD("class_Script__source__Object", script_source),
	FIELD("class_Script__line_ends__Object", script_line_ends),
	FIELD("type_FixedArray__FIXED_ARRAY_TYPE", type_fixed_array),
	FIELD("class_FixedArrayBase__length__SMI", fixed_array_length),
	FIELD("class_FixedArray__data__uintptr_t", fixed_array_data),
	FIELD("FirstNonstringType", first_nonstring_type),
	FIELD("StringEncodingMask", string_encoding_mask),
	FIELD("StringRepresentationMask", string_representation_mask),
	FIELD("OneByteStringTag", one_byte_string_tag),
	FIELD("SeqStringTag", seq_string_tag),
	FIELD("ConsStringTag", cons_string_tag),
	FIELD("SlicedStringTag", sliced_string_tag),
	FIELD("ThinStringTag", thin_string_tag),
	FIELD("ExternalStringTag", external_string_tag),
	FIELD("class_String__length__int32_t", string_length),
	FIELD("class_SeqOneByteString__chars__char", seq_one_byte_chars),
	FIELD("class_SeqTwoByteString__chars__char", seq_two_byte_chars),
	FIELD("class_ConsString__first__String", cons_first),
	FIELD("class_ConsString__second__String", cons_second),
	FIELD("class_ThinString__actual__String", thin_actual),
	FIELD("class_SlicedString__parent__String", sliced_parent),
	FIELD("class_SlicedString__offset__SMI", sliced_offset),
};

/* Whether a v8dbg_ name (without the prefix) is `want`, or of its class field if it ends in "__". */
static bool field__is(const char *want, const char *name)
{
	size_t len;

	if (!want)
		return false;
	len = strlen(want);
	if (len > 2 && !strcmp(want + len - 2, "__"))
		return !strncmp(name, want, len) && !strstr(name + len, "__");
	return !strcmp(name, want);
}

struct meta_read {
	pid_t pid;
	struct v8_meta *meta;
	int err;
};

/*
 * Values are read from the process, not the file: the zero-valued ones are in .bss, which only
 * exists in memory (zeroed at load, never written: V8 only defines them).
 */
int *v8meta__field(struct v8_meta *meta, const char *name)
{
	size_t i;

	if (!strcmp(name, VERSION_MAJOR) || !strcmp(name, VERSION_MINOR))
		return !strcmp(name, VERSION_MAJOR) ? &meta->major : &meta->minor;
	if (strncmp(name, V8DBG_PREFIX, strlen(V8DBG_PREFIX)))
		return NULL;
	name += strlen(V8DBG_PREFIX);
	for (i = 0; i < ARRAY_SIZE(fields); i++)
		if (field__is(fields[i].name, name) || field__is(fields[i].older, name))
			return (int *)((char *)meta + fields[i].offset);
	return NULL;
}

void v8meta__reset(struct v8_meta *meta)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fields); i++)
		*(int *)((char *)meta + fields[i].offset) = V8META_MISSING;
	meta->major = meta->minor = V8META_MISSING;
	meta->layout = NULL;
	meta->anchor = 0;
}

static int meta__symbol(void *ctx, const char *name, __u64 addr)
{
	struct meta_read *read = ctx;
	int value, *field;

	read->meta->anchor = addr;
	field = v8meta__field(read->meta, name);
	if (!field)
		return 0;
	if (remote__read(read->pid, addr, &value, sizeof(value))) {
		read->err = -EFAULT;
		return 1;
	}
	*field = value;
	return 0;
}

static const char *meta__missing(const struct v8_meta *meta)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(fields); i++)
		if (!fields[i].optional &&
		    *(const int *)((const char *)meta + fields[i].offset) == V8META_MISSING)
			return fields[i].name;
	return NULL;
}

/* "11.3, 12.4, ...": the V8 versions v8_layouts.h has a row for. */
static const char *layouts__list(void)
{
	static char list[16 * ARRAY_SIZE(v8_layouts) + 1];
	size_t i, len = 0;

	for (i = 0; i < ARRAY_SIZE(v8_layouts) && len < sizeof(list); i++)
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%d.%d", i ? ", " : "",
					v8_layouts[i].major, v8_layouts[i].minor);
	return list;
}

int v8meta__check(struct v8_meta *meta, char *why, size_t size)
{
	const int types[] = {
		meta->type_js_function, meta->type_shared, meta->type_scope_info,
		meta->type_uncompiled_first, meta->type_uncompiled_last, meta->type_script,
		meta->type_fixed_array, meta->first_nonstring_type,
	};
	const char *missing = meta__missing(meta);
	size_t i;

	if (missing) {
		snprintf(why, size, "its V8 metadata lacks v8dbg_%s", missing);
		return -ENOTSUP;
	}
	if (meta->major == V8META_MISSING || meta->minor == V8META_MISSING) {
		snprintf(why, size, "its V8 version is unknown (no symbol table)");
		return -ENOTSUP;
	}
	meta->layout = v8_layout__find(meta->major, meta->minor);
	if (!meta->layout) {
		snprintf(why, size, "V8 %d.%d is not supported (%s are)", meta->major, meta->minor,
			 layouts__list());
		return -ENOTSUP;
	}
	/* Map::instance_type is 16 bits: the walker's tables store types so, and arithmetic on
	 * them (the last JSFunction type, the UncompiledData span) cannot overflow. */
	for (i = 0; i < ARRAY_SIZE(types); i++) {
		if (types[i] < 0 || types[i] > UINT16_MAX) {
			snprintf(why, size, "its V8 metadata has an instance type out of range (%d)",
				 types[i]);
			return -ENOTSUP;
		}
	}
	if (meta->type_uncompiled_last - meta->type_uncompiled_first != 3) {
		snprintf(why, size, "its V8 metadata has unexpected UncompiledData types");
		return -ENOTSUP;
	}
	/* The walker reads both slots with the frame record (struct fp_frame). */
	if (meta->fp_function != -16 || meta->fp_frame_type != -8) {
		snprintf(why, size, "its V8 frames have an unknown layout (function at fp%+d)",
			 meta->fp_function);
		return -ENOTSUP;
	}
	/* Compressed pointers are 32-bit offsets from a cage base the walker does not know. */
	if (meta->tagged_size != meta->pointer_size || meta->pointer_size != 8) {
		snprintf(why, size, "its V8 uses pointer compression (tagged size %d)",
			 meta->tagged_size);
		return -ENOTSUP;
	}
	/* A 64-bit Smi keeps its value in the upper half; other shifts are 32-bit builds. */
	if (meta->smi_shift_size != 31 || meta->smi_tag_mask != 1 || meta->heap_object_tag_mask <= 0 ||
	    meta->heap_object_tag & ~meta->heap_object_tag_mask) {
		snprintf(why, size, "its V8 tags values in an unknown way");
		return -ENOTSUP;
	}
	return 0;
}

/* Whether each mapped file (by device and inode) exports V8's metadata, decided once: a host
 * of Python processes maps the same few files. */
struct mapped_file {
	dev_t dev;
	ino_t ino;
	bool has_v8dbg;
};

static void *mapped_files; /* tsearch tree of struct mapped_file */

static int mapped_file__cmp(const void *a, const void *b)
{
	const struct mapped_file *left = a, *right = b;

	if (left->dev != right->dev)
		return left->dev < right->dev ? -1 : 1;
	return left->ino < right->ino ? -1 : left->ino > right->ino;
}

static bool elf__exports_v8dbg(int fd)
{
	size_t prefix_len = strlen(V8DBG_PREFIX);
	bool found = false;
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	GElf_Sym sym;
	Elf_Data *data;
	const char *name;
	size_t i;
	Elf *elf;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return false;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	while (elf && !found && (scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_DYNSYM || !shdr.sh_entsize)
			continue;
		data = elf_getdata(scn, NULL);
		for (i = 0; data && !found && i < shdr.sh_size / shdr.sh_entsize; i++) {
			name = gelf_getsym(data, (int)i, &sym) ?
			       elf_strptr(elf, shdr.sh_link, sym.st_name) : NULL;
			found = name && !strncmp(name, V8DBG_PREFIX, prefix_len);
		}
	}
	elf_end(elf);
	return found;
}

struct v8dbg_look {
	pid_t pid;
	bool missed; /* a file not opened for lack of time: no answer yet */
};

/* The file of an executable mapping of pid exports v8dbg_ symbols. Decided once per file, by
 * the device and inode maps gives; opened as the process could, the very file mapped (see
 * targetfs__open_mapped), not the path it names. */
static int mapping__has_v8dbg(void *ctx, const struct proc_mapping *mapping)
{
	struct v8dbg_look *look = ctx;
	pid_t pid = look->pid;
	struct mapped_file key, *file, **node;
	struct stat st;
	int fd;

	if (mapping->perms[2] != 'x' || !mapping->inode)
		return 0;
	key = (struct mapped_file){ .dev = makedev(mapping->major, mapping->minor),
				    .ino = mapping->inode };
	node = tfind(&key, &mapped_files, mapped_file__cmp);
	if (node)
		return (*node)->has_v8dbg;
	fd = targetfs__open_mapped(pid, mapping->start, &st);
	if (fd < 0) {
		look->missed |= targetfs__missed(fd);
		return 0; /* not cached: the next look may be allowed */
	}
	key.has_v8dbg = elf__exports_v8dbg(fd);
	close(fd);
	file = malloc(sizeof(*file));
	if (file) {
		*file = key;
		if (!tsearch(file, &mapped_files, mapped_file__cmp))
			free(file);
	}
	return key.has_v8dbg;
}

/* 0 when some executable mapping of pid is a file with V8's metadata, -ENOENT when none is,
 * -EAGAIN when none that could be read is but some could not be read for now. Cheap, unlike
 * walking every module's symbol table, which --all would do for every process on the host. */
static int process__maps_v8dbg(pid_t pid)
{
	struct v8dbg_look look = { .pid = pid };

	if (procfs__each_mapping(pid, mapping__has_v8dbg, &look) > 0)
		return 0;
	return look.missed ? -EAGAIN : -ENOENT;
}

void v8meta__free_cache(void)
{
	tdestroy(mapped_files, free);
	mapped_files = NULL;
}

int v8meta__read(struct syms *syms, pid_t pid, struct v8_meta *meta, char *why, size_t size)
{
	static const char *const version[] = { VERSION_MAJOR, VERSION_MINOR, NULL };
	struct meta_read read = { .pid = pid, .meta = meta };
	int err;

	v8meta__reset(meta);
	err = process__maps_v8dbg(pid);
	if (err)
		return err;
	err = syms__each_symbol(syms, pid, V8DBG_PREFIX, version, meta__symbol, &read);
	if (err)
		return err;
	if (read.err) {
		snprintf(why, size, "its V8 metadata is unreadable");
		return read.err;
	}
	return v8meta__check(meta, why, size);
}
