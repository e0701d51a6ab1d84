// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Checks user/runtime/python/python_debug.c against a live pyenv CPython 3.13: the offsets read from its
 * _Py_DebugOffsets must equal the generated static 3.13 row, and damaged bytes (cookie,
 * version, length, values) must be refused with *offsets left as it was.
 * Needs root (process_vm_readv on the child, whatever ptrace_scope says) and a pyenv 3.13;
 * exits 77 (skipped) without either.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include "procfs.h"
#include "python_offsets.h"
#include "python_debug.h"
#include "check.h"

#define MINOR 13
/* Prints its hexversion once initialized, then holds still; killed at the end. */
#define PYTHON_SCRIPT "import sys, time; print('ready', sys.hexversion, flush=True); time.sleep(60)"
#define READY_TIMEOUT_MS 10000
/* Mutation rounds of the hostile-bytes check: a second or so, also under ASan. */
#define MUTATIONS 200000

/* The newest pyenv 3.13.N, skipping free-threaded (3.13.0t) and other suffixed builds. */
static bool python__find(char *path, size_t size)
{
	char root[256], pattern[4096];
	int best = -1, patch, end;
	glob_t g;
	size_t i;

	pyenv__root(root, sizeof(root));
	snprintf(pattern, sizeof(pattern), "%s/versions/3.%d.*/bin/python3", root, MINOR);
	if (glob(pattern, 0, NULL, &g))
		return false;
	for (i = 0; i < g.gl_pathc; i++) {
		const char *dir = strstr(g.gl_pathv[i], "/versions/");

		end = 0;
		if (!dir || sscanf(dir, "/versions/3.13.%d%n", &patch, &end) != 1 ||
		    strcmp(dir + end, "/bin/python3") || patch <= best)
			continue;
		best = patch;
		snprintf(path, size, "%s", g.gl_pathv[i]);
	}
	globfree(&g);
	return best >= 0;
}

/* Start the interpreter and wait until it said it is initialized; its hexversion in *hex. */
static pid_t python__start(const char *python, unsigned long *hex)
{
	struct pollfd pfd = { .events = POLLIN };
	char buf[128];
	size_t got = 0;
	ssize_t n;
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		/* Dies with the test even if the test crashes before killing it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fds[1], STDOUT_FILENO);
		execl(python, python, "-c", PYTHON_SCRIPT, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	pfd.fd = fds[0];
	while (pid > 0 && got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		if (poll(&pfd, 1, READY_TIMEOUT_MS) <= 0 ||
		    (n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) <= 0)
			break;
		got += n;
	}
	close(fds[0]);
	buf[got] = 0;
	if (pid > 0 && sscanf(buf, "ready %lu", hex) != 1) {
		fprintf(stderr, "FAIL %s did not start: %s\n", python, got ? buf : "no output");
		child__kill(pid);
		return -1;
	}
	return pid;
}

/* st_value of `name` in the ELF file and the address its file offset 0 is linked at. */
static int elf__symbol(const char *path, const char *name, GElf_Addr *value, GElf_Addr *base)
{
	bool found = false, load = false;
	Elf_Scn *scn = NULL;
	size_t i, n, phnum;
	GElf_Shdr shdr;
	GElf_Phdr phdr;
	GElf_Sym sym;
	Elf_Data *data;
	const char *s;
	Elf *elf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf_version(EV_CURRENT);
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_getphdrnum(elf, &phnum))
		goto out;
	for (i = 0; i < phnum && !load; i++) {
		if (gelf_getphdr(elf, i, &phdr) && phdr.p_type == PT_LOAD) {
			*base = phdr.p_vaddr - phdr.p_offset;
			load = true;
		}
	}
	/* .dynsym first: Debian's stripped python3 keeps _PyRuntime only there. */
	while (load && !found && (scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) ||
		    (shdr.sh_type != SHT_DYNSYM && shdr.sh_type != SHT_SYMTAB) ||
		    !shdr.sh_entsize || !(data = elf_getdata(scn, NULL)))
			continue;
		n = shdr.sh_size / shdr.sh_entsize;
		for (i = 0; i < n && !found; i++) {
			if (!gelf_getsym(data, i, &sym) || sym.st_shndx == SHN_UNDEF)
				continue;
			s = elf_strptr(elf, shdr.sh_link, sym.st_name);
			if (s && !strcmp(s, name)) {
				*value = sym.st_value;
				found = true;
			}
		}
	}
out:
	if (elf)
		elf_end(elf);
	close(fd);
	return found ? 0 : -ENOENT;
}

/*
 * &_PyRuntime in pid: from libpython3.13's symbol table (pyenv builds) or else the
 * executable's (static builds), plus where the file's offset 0 is mapped.
 */
struct runtime_files {
	char exe[4096], lib[4096];
	unsigned long exe_start, lib_start;
};

static int mapping__runtime_file(void *ctx, const struct proc_mapping *mapping)
{
	struct runtime_files *files = ctx;

	if (mapping->offset || !mapping->path[0])
		return 0;
	if (!files->lib_start && strstr(mapping->path, "/libpython3.13")) {
		files->lib_start = mapping->start;
		snprintf(files->lib, sizeof(files->lib), "%s", mapping->path);
	} else if (!files->exe_start && !strcmp(mapping->path, files->exe)) {
		files->exe_start = mapping->start;
	}
	return 0;
}

static int runtime__find(pid_t pid, unsigned long *addr)
{
	struct runtime_files files = {};
	char exe_path[64];
	GElf_Addr value, base;
	ssize_t n;
	int err;

	snprintf(exe_path, sizeof(exe_path), "/proc/%d/exe", pid);
	n = readlink(exe_path, files.exe, sizeof(files.exe) - 1);
	files.exe[n > 0 ? n : 0] = 0;
	err = procfs__each_mapping(pid, mapping__runtime_file, &files);
	if (err < 0)
		return err;
	if (files.lib_start && !elf__symbol(files.lib, "_PyRuntime", &value, &base)) {
		*addr = files.lib_start + (value - base);
		return 0;
	}
	if (files.exe_start && !elf__symbol(files.exe, "_PyRuntime", &value, &base)) {
		*addr = files.exe_start + (value - base);
		return 0;
	}
	return -ENOENT;
}

static int remote__read(pid_t pid, unsigned long addr, void *buf, size_t len)
{
	struct iovec local = { .iov_base = buf, .iov_len = len };
	struct iovec remote = { .iov_base = (void *)addr, .iov_len = len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -EFAULT;
}

static __u64 field__get(const struct python_offsets *offsets, const struct python_debug_field *f)
{
	const unsigned char *src = (const unsigned char *)offsets + f->offset;
	__u8 u8;
	__u16 u16;
	__u32 u32;

	switch (f->width) {
	case 1:
		memcpy(&u8, src, 1);
		return u8;
	case 2:
		memcpy(&u16, src, 2);
		return u16;
	default:
		memcpy(&u32, src, 4);
		return u32;
	}
}

static void field__poke(struct python_offsets *offsets, const struct python_debug_field *f,
			__u64 value)
{
	unsigned char *dst = (unsigned char *)offsets + f->offset;
	__u8 u8 = value;
	__u16 u16 = value;
	__u32 u32 = value;

	memcpy(dst, f->width == 1 ? (void *)&u8 : f->width == 2 ? (void *)&u16 : (void *)&u32,
	       f->width);
}

static __u64 word__get(const unsigned char *buf, size_t pos)
{
	__u64 v;

	memcpy(&v, buf + pos, sizeof(v));
	return v;
}

static void word__set(unsigned char *buf, size_t pos, __u64 v)
{
	memcpy(buf + pos, &v, sizeof(v));
}

/* python_debug__apply(minor, buf, len) on a copy of `row` must fail with `want`, untouched. */
static void expect_refused(const char *what, int minor, const unsigned char *buf, size_t len,
			   const struct python_offsets *row, int want)
{
	struct python_offsets offsets;
	int err;

	memcpy(&offsets, row, sizeof(offsets));
	err = python_debug__apply(minor, buf, len, &offsets, NULL);
	CHECK(err == want, "%s: got %d, want %d", what, err, want);
	CHECK(!memcmp(&offsets, row, sizeof(offsets)), "%s: *offsets changed", what);
}

static void expect_applied(const char *what, const unsigned char *buf, size_t len,
			   const struct python_offsets *row, struct python_offsets *out)
{
	int err;

	memcpy(out, row, sizeof(*out));
	err = python_debug__apply(MINOR, buf, len, out, NULL);
	CHECK(err == 0, "%s: got %d, want 0", what, err);
}

/* The interpreter's own bytes must give exactly the generated row. */
static void check_live(const struct python_debug_layout *layout, const unsigned char *live,
		       const struct python_offsets *row, unsigned long hexversion)
{
	struct python_offsets offsets;
	const struct python_debug_field *f;
	__u16 i;
	int err;

	CHECK(word__get(live, layout->version_offset) == hexversion,
	      "version word 0x%llx, sys.hexversion 0x%lx",
	      (unsigned long long)word__get(live, layout->version_offset), hexversion);
	/* Poison the covered fields first, so equality shows they were written, not kept. */
	memcpy(&offsets, row, sizeof(offsets));
	for (i = 0; i < layout->nr_fields; i++)
		field__poke(&offsets, &layout->fields[i],
			    (1ULL << (8 * layout->fields[i].width)) - 2);
	err = python_debug__apply(MINOR, live, layout->size, &offsets, NULL);
	CHECK(err == 0, "live _Py_DebugOffsets: python_debug__apply returned %d", err);
	for (i = 0; i < layout->nr_fields; i++) {
		f = &layout->fields[i];
		CHECK(field__get(&offsets, f) == field__get(row, f),
		      "%s (from %s): %llu, static row %llu", f->name, f->debug_name,
		      (unsigned long long)field__get(&offsets, f),
		      (unsigned long long)field__get(row, f));
		CHECK(field__get(row, f) != (1ULL << (8 * f->width)) - 1,
		      "%s is covered by _Py_DebugOffsets but absent from the 3.%d row", f->name,
		      MINOR);
	}
	CHECK(!memcmp(&offsets, row, sizeof(offsets)),
	      "fields _Py_DebugOffsets does not cover changed");
	printf("live: %u fields from _Py_DebugOffsets equal the static 3.%d row\n",
	       layout->nr_fields, MINOR);
}

static void check_refusals(const struct python_debug_layout *layout, const unsigned char *live,
			   const struct python_offsets *row)
{
	const size_t size = layout->size, ver = layout->version_offset;
	const __u64 version = word__get(live, ver);
	unsigned char *buf = malloc(size);
	struct python_offsets offsets;
	const struct python_debug_field *f;
	char what[256];
	__u64 v;
	__u16 i;

	if (!buf) {
		CHECK(0, "out of memory");
		return;
	}
#define RESET() memcpy(buf, live, size)
	RESET();
	buf[layout->cookie_offset] ^= 0x20;
	expect_refused("corrupted cookie", MINOR, buf, size, row, -EINVAL);
	RESET();
	memset(buf + layout->cookie_offset, 0, sizeof(layout->cookie));
	expect_refused("zeroed cookie", MINOR, buf, size, row, -EINVAL);

	RESET();
	word__set(buf, ver, (version & ~0xff0000ULL) | (MINOR - 1) << 16);
	expect_refused("version 3.12", MINOR, buf, size, row, -EINVAL);
	word__set(buf, ver, (version & ~0xff000000ULL) | 4ULL << 24);
	expect_refused("version 4.13", MINOR, buf, size, row, -EINVAL);
	word__set(buf, ver, version | 1ULL << 32);
	expect_refused("version with high bits", MINOR, buf, size, row, -EINVAL);
	word__set(buf, ver, (version & ~0xf0ULL) | 0x30);
	expect_refused("release level 3", MINOR, buf, size, row, -EINVAL);
	word__set(buf, ver, (version & ~0xf0ULL) | 0xc0);
	expect_refused("release candidate", MINOR, buf, size, row, -ENOTSUP);
	word__set(buf, ver, (version & ~0xf0ULL) | 0xa0);
	expect_refused("alpha", MINOR, buf, size, row, -ENOTSUP);
	/* Another patch release of the same minor is what this is for. */
	word__set(buf, ver, (version & ~0xff00ULL) | 0x0900);
	expect_applied("patch release 3.13.9", buf, size, row, &offsets);
	CHECK(!memcmp(&offsets, row, sizeof(offsets)), "patch release 3.13.9: different offsets");

	RESET();
	word__set(buf, layout->free_threaded_offset, 1);
	expect_refused("free-threaded build", MINOR, buf, size, row, -ENOTSUP);
	word__set(buf, layout->free_threaded_offset, 2);
	expect_refused("free_threaded 2", MINOR, buf, size, row, -EINVAL);

	RESET();
	expect_refused("truncated by one byte", MINOR, buf, size - 1, row, -EINVAL);
	expect_refused("truncated to the header", MINOR, buf, 24, row, -EINVAL);
	expect_refused("empty", MINOR, buf, 0, row, -EINVAL);
	expect_refused("NULL bytes", MINOR, NULL, size, row, -EINVAL);
	expect_refused("minor without a table", MINOR - 1, buf, size, row, -ENOTSUP);
	CHECK(python_debug__size(MINOR - 1) == 0, "python_debug__size(12) = %zu, want 0",
	      python_debug__size(MINOR - 1));
	expect_refused("3.12 row given for 3.13", MINOR, buf, size,
		       python_offsets__find(3, MINOR - 1), -EINVAL);

	for (i = 0; i < layout->nr_fields; i++) {
		f = &layout->fields[i];
		RESET();
		v = word__get(buf, f->debug);
		word__set(buf, f->debug, 1ULL << 40);
		snprintf(what, sizeof(what), "%s = 2^40", f->debug_name);
		expect_refused(what, MINOR, buf, size, row, -EINVAL);
		word__set(buf, f->debug, ~0ULL);
		snprintf(what, sizeof(what), "%s = ~0", f->debug_name);
		expect_refused(what, MINOR, buf, size, row, -EINVAL);
		word__set(buf, f->debug, (1ULL << 20) + (f->debug_base != PY_NONE16 ?
							word__get(buf, f->debug_base) : 0));
		snprintf(what, sizeof(what), "%s = 1 MiB past its base", f->debug_name);
		expect_refused(what, MINOR, buf, size, row, -EINVAL);
		if (f->width < 4) {
			/* All ones is PY_NONE*, one more does not fit. */
			__u64 none = (1ULL << (8 * f->width)) - 1, base = 0;

			if (f->debug_base != PY_NONE16)
				base = word__get(buf, f->debug_base);
			word__set(buf, f->debug, base + none);
			snprintf(what, sizeof(what), "%s = PY_NONE%d", f->debug_name, 8 * f->width);
			expect_refused(what, MINOR, buf, size, row, -EINVAL);
			word__set(buf, f->debug, base + none + 1);
			snprintf(what, sizeof(what), "%s = 2^%d", f->debug_name, 8 * f->width);
			expect_refused(what, MINOR, buf, size, row, -EINVAL);
			/* Inside a struct that big: the value is then as good as any. */
			word__set(buf, f->debug_size, base + none);
			word__set(buf, f->debug, base + none - 1);
			snprintf(what, sizeof(what), "%s = largest fitting value", f->debug_name);
			expect_applied(what, buf, size, row, &offsets);
			CHECK(field__get(&offsets, f) == none - 1, "%s: got %llu", what,
			      (unsigned long long)field__get(&offsets, f));
			word__set(buf, f->debug_size, v);
		}
		/* What a table read through another version's layout tends to give. */
		RESET();
		word__set(buf, f->debug_size, v);
		snprintf(what, sizeof(what), "%s at its struct's size", f->debug_name);
		expect_refused(what, MINOR, buf, size, row, -EINVAL);
		word__set(buf, f->debug_size, 0);
		snprintf(what, sizeof(what), "%s in a struct of size 0", f->debug_name);
		expect_refused(what, MINOR, buf, size, row, -EINVAL);
		RESET();
		if (f->debug_base != PY_NONE16) {
			word__set(buf, f->debug, v);
			word__set(buf, f->debug_base, v + 1);
			snprintf(what, sizeof(what), "%s below %s", f->debug_name,
				 f->debug_base_name);
			expect_refused(what, MINOR, buf, size, row, -EINVAL);
			/* Two huge words whose difference looks like a fine offset. */
			word__set(buf, f->debug_base, 1ULL << 62);
			word__set(buf, f->debug, (1ULL << 62) + field__get(row, f));
			snprintf(what, sizeof(what), "%s and %s both huge", f->debug_name,
				 f->debug_base_name);
			expect_refused(what, MINOR, buf, size, row, -EINVAL);
		}
	}
#undef RESET
	free(buf);
}

/* xorshift64: deterministic, so a failing round can be replayed. */
static unsigned long long rand64(unsigned long long *state)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state;
}

/*
 * Random damage (bytes anywhere, words in the covered positions): a refusal leaves *offsets
 * untouched, an acceptance changes only covered fields, each to a value that fits. Under
 * -DSANITIZE=ON this also shows nothing is read past len.
 */
static void check_mutations(const struct python_debug_layout *layout, const unsigned char *live,
			    const struct python_offsets *row)
{
	unsigned long long state = 0x9e3779b97f4a7c15ULL, accepted = 0, refused = 0;
	const size_t size = layout->size;
	unsigned char *buf = malloc(size);
	struct python_offsets offsets, expect;
	const struct python_debug_field *f;
	size_t len;
	int round, k, err;
	__u16 i;

	for (round = 0; buf && round < MUTATIONS; round++) {
		memcpy(buf, live, size);
		for (k = rand64(&state) % 4; k >= 0; k--) {
			/* One draw each, in order: calls in one expression are unordered. */
			__u64 kind = rand64(&state), where = rand64(&state), what = rand64(&state);

			if (kind % 2)
				buf[where % size] = what;
			else
				word__set(buf, layout->fields[where % layout->nr_fields].debug,
					  kind % 3 ? what % 0x20000 : what);
		}
		/* Exactly len bytes on the heap, so ASan sees any read past them. */
		len = rand64(&state) % 16 ? size : rand64(&state) % (size + 1);
		memcpy(&offsets, row, sizeof(offsets));
		{
			unsigned char *exact = malloc(len ? len : 1);

			if (!exact)
				break;
			memcpy(exact, buf, len);
			err = python_debug__apply(MINOR, exact, len, &offsets, NULL);
			free(exact);
		}
		if (err) {
			refused++;
			CHECK(!memcmp(&offsets, row, sizeof(offsets)), "round %d: refused (%d) but "
			      "*offsets changed", round, err);
			continue;
		}
		accepted++;
		memcpy(&expect, row, sizeof(expect));
		for (i = 0; i < layout->nr_fields; i++) {
			f = &layout->fields[i];
			CHECK(field__get(&offsets, f) < (1ULL << (8 * f->width)) - 1 &&
			      field__get(&offsets, f) < (1ULL << 20),
			      "round %d: %s accepted as %llu", round, f->name,
			      (unsigned long long)field__get(&offsets, f));
			field__poke(&expect, f, field__get(&offsets, f));
		}
		CHECK(!memcmp(&offsets, &expect, sizeof(offsets)),
		      "round %d: a field _Py_DebugOffsets does not cover changed", round);
	}
	free(buf);
	CHECK(accepted && refused, "mutations: %llu accepted, %llu refused: not both kinds",
	      accepted, refused);
	printf("mutations: %llu accepted, %llu refused\n", accepted, refused);
}

int main(void)
{
	const struct python_debug_layout *layout = python_debug_layout__find(3, MINOR);
	const struct python_offsets *row = python_offsets__find(3, MINOR);
	unsigned long runtime = 0, hexversion = 0;
	unsigned char *live = NULL;
	char python[4096];
	size_t size;
	pid_t pid;
	int err;

	if (geteuid()) {
		fprintf(stderr, "SKIP: needs root to read another process's memory\n");
		return check__skip_code();
	}
	if (!python__find(python, sizeof(python))) {
		fprintf(stderr, "SKIP: no pyenv CPython 3.%d (pyenv install 3.%d)\n", MINOR, MINOR);
		return check__skip_code();
	}
	if (!layout || !row) {
		fprintf(stderr, "FAIL user/runtime/python/python_offsets.h has no 3.%d %s: rerun "
				"tools/gen-python-offsets\n", MINOR,
			row ? "_Py_DebugOffsets table" : "row");
		return 1;
	}
	size = python_debug__size(MINOR);
	CHECK(size == layout->size && size > 0, "python_debug__size(%d) = %zu", MINOR, size);

	pid = python__start(python, &hexversion);
	if (pid < 0)
		return 1;
	live = malloc(size);
	err = live ? runtime__find(pid, &runtime) : -ENOMEM;
	if (err)
		CHECK(0, "pid %d (%s): no _PyRuntime: %s", pid, python, strerror(-err));
	else if ((err = remote__read(pid, runtime, live, size)))
		CHECK(0, "pid %d: reading %zu bytes at _PyRuntime 0x%lx: %s", pid, size, runtime,
		      strerror(-err));
	child__kill(pid);
	if (!err) {
		printf("%s (0x%lx): _PyRuntime at 0x%lx, %zu bytes of _Py_DebugOffsets\n", python,
		       hexversion, runtime, size);
		check_live(layout, live, row, hexversion);
		check_refusals(layout, live, row);
		check_mutations(layout, live, row);
	}
	free(live);
	return check__exit("python_debug_test");
}
