// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Checks user/symbolize.c against this process, the running kernel and live Python processes.
 * Needs root (kallsyms addresses, /proc/PID/map_files); exits 77 (skipped) otherwise. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <elfutils/libdwfl.h>
#include <gelf.h>
#include <glob.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include "../user/procfs.h"
#include "../user/symbolize.h"
#include "check.h"

#define SYSTEM_PYTHON "/usr/bin/python3.11"
/* Longer than any run of this test, even under valgrind: the children are killed at the end. */
#define PYTHON_SLEEP "import time; time.sleep(60)"
/* Past symbolize.c's re-report interval. */
#define REPORT_WAIT_MS 1100
/* Page 0 is never mapped (vm.mmap_min_addr). */
#define UNMAPPED_ADDR 0x1000ULL

static const char *str__or_null(const char *str)
{
	return str ? str : "(null)";
}

static bool str__contains(const char *str, const char *part)
{
	return str && strstr(str, part);
}

static void time__sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static double time__now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* [start, end) of the mapping of file offset 0 of the first mapping whose name contains part. */
struct maps_find {
	const char *part;
	char *name;
	size_t name_size;
	__u64 start, end;
};

static int mapping__match(void *ctx, const struct proc_mapping *mapping)
{
	struct maps_find *find = ctx;

	if (mapping->offset || !strstr(mapping->path, find->part))
		return 0;
	snprintf(find->name, find->name_size, "%s", mapping->path);
	find->start = mapping->start;
	find->end = mapping->end;
	return 1;
}

static bool maps__find(pid_t pid, const char *part, char *name, size_t name_size, __u64 *start,
		       __u64 *end)
{
	struct maps_find find = { .part = part, .name = name, .name_size = name_size };

	bool found = procfs__each_mapping(pid, mapping__match, &find) > 0;

	*start = find.start;
	if (end)
		*end = find.end;
	return found;
}

/* Runtime address and size of function `name` of an ELF image whose file offset 0 is mapped at
 * start; .symtab first, else .dynsym. */
static bool elf__find_func(Elf *elf, const char *name, __u64 start, __u64 *addr, __u64 *size)
{
	static const GElf_Word types[] = { SHT_SYMTAB, SHT_DYNSYM };
	GElf_Addr load_vaddr = 0;
	size_t nr_phdrs, i, j, t;
	Elf_Scn *scn;
	GElf_Shdr shdr;
	GElf_Phdr phdr;
	GElf_Sym sym;
	Elf_Data *data;
	const char *sym_name;

	if (!elf || elf_getphdrnum(elf, &nr_phdrs))
		return false;
	for (i = 0; i < nr_phdrs; i++) {
		if (gelf_getphdr(elf, i, &phdr) && phdr.p_type == PT_LOAD && !phdr.p_offset) {
			load_vaddr = phdr.p_vaddr;
			break;
		}
	}
	for (t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
			if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != types[t] || !shdr.sh_entsize)
				continue;
			data = elf_getdata(scn, NULL);
			for (j = 0; data && j < shdr.sh_size / shdr.sh_entsize; j++) {
				if (!gelf_getsym(data, j, &sym) || GELF_ST_TYPE(sym.st_info) != STT_FUNC ||
				    !sym.st_value)
					continue;
				sym_name = elf_strptr(elf, shdr.sh_link, sym.st_name);
				if (!sym_name || strcmp(sym_name, name))
					continue;
				*addr = start + sym.st_value - load_vaddr;
				*size = sym.st_size;
				return true;
			}
		}
	}
	return false;
}

static bool elf__find_func_in_file(const char *path, const char *name, __u64 start, __u64 *addr,
				   __u64 *size)
{
	bool found;
	Elf *elf;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	found = elf__find_func(elf, name, start, addr, size);
	elf_end(elf);
	close(fd);
	return found;
}

static void test__kernel(struct syms *syms)
{
	unsigned long long addr, sched = 0, next = 0;
	char line[1024], type, name[512];
	bool listed = false;
	const char *symbol;
	__u64 offset, mid;
	FILE *file;

	file = fopen("/proc/kallsyms", "r");
	CHECK(file, "open /proc/kallsyms: %s", strerror(errno));
	if (!file)
		return;
	while (fgets(line, sizeof(line), file)) {
		if (sscanf(line, "%llx %c %511s", &addr, &type, name) != 3)
			continue;
		if (!listed && (type == 'T' || type == 't') && !strcmp(name, "schedule")) {
			listed = true;
			sched = addr;
		}
	}
	/* The symbol after schedule bounds an offset that stays inside it. */
	rewind(file);
	while (sched && fgets(line, sizeof(line), file)) {
		if (sscanf(line, "%llx", &addr) == 1 && addr > sched && (!next || addr < next))
			next = addr;
	}
	fclose(file);
	CHECK(listed, "no schedule in /proc/kallsyms");
	if (listed && !sched)
		check__skip(true, "kernel: /proc/kallsyms shows zero addresses (needs CAP_SYSLOG)");
	if (!sched)
		return;

	offset = 1;
	symbol = syms__kernel(syms, sched, &offset);
	CHECK(symbol && !strcmp(symbol, "schedule") && offset == 0,
	      "kernel 0x%llx: got %s+%llu, want schedule+0", sched, str__or_null(symbol),
	      (unsigned long long)offset);

	mid = next ? (next - sched) / 2 : 0x10;
	if (mid > 0x10)
		mid = 0x10;
	symbol = syms__kernel(syms, sched + mid, &offset);
	CHECK(symbol && !strcmp(symbol, "schedule") && offset == mid,
	      "kernel 0x%llx: got %s+%llu, want schedule+%llu", sched + mid, str__or_null(symbol),
	      (unsigned long long)offset, (unsigned long long)mid);

	symbol = syms__kernel(syms, UNMAPPED_ADDR, &offset);
	CHECK(!symbol && offset == 0, "kernel 0x%llx: got %s+%llu, want none+0", UNMAPPED_ADDR,
	      str__or_null(symbol), (unsigned long long)offset);
}

static void test__self(struct syms *syms)
{
	struct user_sym sym;
	void *libc, *fn;
	__u64 addr;
	int err;

	/* From libc itself: dlsym(RTLD_DEFAULT) could return a sanitizer's interceptor. */
	libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	fn = libc ? dlsym(libc, "nanosleep") : NULL;
	CHECK(fn, "dlsym(libc.so.6, nanosleep): %s", dlerror());
	if (libc)
		dlclose(libc);
	if (!fn)
		return;
	addr = (__u64)(unsigned long)fn;

	err = syms__user(syms, getpid(), addr, &sym);
	CHECK(!err && str__contains(sym.symbol, "nanosleep") && str__contains(sym.module, "libc") &&
		      sym.offset == 0,
	      "self nanosleep 0x%llx: err %d, got %s+%llu in %s, want *nanosleep*+0 in *libc*",
	      (unsigned long long)addr, err, str__or_null(sym.symbol),
	      (unsigned long long)sym.offset, str__or_null(sym.module));

	err = syms__user(syms, getpid(), addr + 4, &sym);
	CHECK(!err && str__contains(sym.symbol, "nanosleep") && sym.offset == 4,
	      "self nanosleep+4: err %d, got %s+%llu", err, str__or_null(sym.symbol),
	      (unsigned long long)sym.offset);

	err = syms__user(syms, getpid(), UNMAPPED_ADDR, &sym);
	CHECK(err == -ENOENT && !sym.symbol && !sym.module,
	      "self 0x%llx: err %d, got %s in %s, want -ENOENT", UNMAPPED_ADDR, err,
	      str__or_null(sym.symbol), str__or_null(sym.module));
}

/*
 * Symbols of every shape symbolize.c's sorted table must answer for exactly as libdwfl would, or
 * leave to it: nested, aliased (global, weak, local), overlapping, sizeless labels inside and
 * outside sized symbols, and a gap with no symbol. test__symtab checks every byte of the region.
 */
__asm__(".text\n"
	".p2align 6\n"
	".globl symtab_shapes_start\n"
	"symtab_shapes_start:\n" /* a global label, outside any sized symbol */
	".globl st_outer\n .type st_outer,@function\n"
	"st_outer:\n .fill 16,1,0x90\n"
	".type st_inner,@function\n"
	"st_inner:\n .fill 16,1,0x90\n .size st_inner,16\n"
	".fill 8,1,0x90\n"
	".globl st_label_in\n"
	"st_label_in:\n .fill 24,1,0x90\n .size st_outer,64\n"
	".globl st_alias_global\n .type st_alias_global,@function\n"
	".weak st_alias_weak\n .type st_alias_weak,@function\n"
	".type st_alias_local,@function\n"
	"st_alias_global:\nst_alias_weak:\nst_alias_local:\n .fill 32,1,0x90\n"
	".size st_alias_global,32\n .size st_alias_weak,32\n .size st_alias_local,32\n"
	".type st_overlap_a,@function\n"
	"st_overlap_a:\n .fill 16,1,0x90\n"
	".type st_overlap_b,@function\n"
	"st_overlap_b:\n .fill 16,1,0x90\n .size st_overlap_a,32\n"
	".fill 16,1,0x90\n .size st_overlap_b,32\n"
	".type st_local_label,@notype\n"
	"st_local_label:\n .fill 16,1,0x90\n" /* a gap: only a local label */
	".type st_alias_short,@function\n .type st_alias_long,@function\n"
	"st_alias_short:\nst_alias_long:\n .fill 16,1,0x90\n .size st_alias_short,16\n"
	".fill 16,1,0x90\n .size st_alias_long,32\n"
	".fill 16,1,0x90\n" /* a gap with no symbol at all */
	".globl st_last\n .type st_last,@function\n"
	"st_last:\n .fill 16,1,0x90\n .size st_last,16\n"
	".globl symtab_shapes_end\n"
	"symtab_shapes_end:\n .fill 16,1,0x90\n");
extern const char symtab_shapes_start[], symtab_shapes_end[];

/* libdwfl's own answer for addr in this process: the reference the sorted table must match. */
static const char *dwfl__addrinfo(Dwfl *dwfl, __u64 addr, GElf_Off *offset)
{
	Dwfl_Module *mod = dwfl_addrmodule(dwfl, addr);
	GElf_Sym sym;

	return mod ? dwfl_module_addrinfo(mod, addr, offset, &sym, NULL, NULL, NULL) : NULL;
}

static void test__symtab(struct syms *syms)
{
	static const Dwfl_Callbacks callbacks = { .find_elf = dwfl_linux_proc_find_elf,
						  .find_debuginfo = dwfl_standard_find_debuginfo };
	__u64 start = (unsigned long)symtab_shapes_start, end = (unsigned long)symtab_shapes_end;
	const char *want;
	struct user_sym sym;
	GElf_Off want_offset;
	int err, mismatches = 0;
	Dwfl *dwfl;
	__u64 addr;

	dwfl = dwfl_begin(&callbacks);
	CHECK(dwfl && !dwfl_linux_proc_report(dwfl, getpid()) && !dwfl_report_end(dwfl, NULL, NULL),
	      "libdwfl cannot report this process");
	if (!dwfl)
		return;
	for (addr = start; addr <= end + 8; addr++) {
		want_offset = 0;
		want = dwfl__addrinfo(dwfl, addr, &want_offset);
		err = syms__user(syms, getpid(), addr, &sym);
		if (!err && !want ? !sym.symbol :
		    !err && sym.symbol && !strcmp(sym.symbol, want) && sym.offset == want_offset)
			continue;
		if (mismatches++ < 8)
			CHECK(false, "symtab_shapes+%llu: got %s+%llu (err %d), libdwfl says %s+%llu",
			      (unsigned long long)(addr - start), str__or_null(sym.symbol),
			      (unsigned long long)sym.offset, err, str__or_null(want),
			      (unsigned long long)want_offset);
	}
	CHECK(!mismatches, "%d addresses of the symbol shapes differ from libdwfl", mismatches);
	dwfl_end(dwfl);
}

/* Anonymous memory (JIT code) right after two adjacent file mappings: libdwfl 0.188's
 * dwfl_addrmodule attributes it to the second file. */
static void test__anonymous(struct syms *syms)
{
	const char *files[] = { "/etc/passwd", "/proc/self/exe" };
	long page = sysconf(_SC_PAGESIZE);
	struct user_sym sym;
	char *area;
	__u64 addr;
	int fd, err;
	size_t i;

	area = mmap(NULL, 3 * page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(area != MAP_FAILED, "mmap: %s", strerror(errno));
	if (area == MAP_FAILED)
		return;
	for (i = 0; i < 2; i++) {
		fd = open(files[i], O_RDONLY | O_CLOEXEC);
		CHECK(fd >= 0 && mmap(area + i * page, page, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd,
				      0) != MAP_FAILED,
		      "map %s: %s", files[i], strerror(errno));
		if (fd >= 0)
			close(fd);
	}
	/* a fresh report sees the new mappings */
	syms__forget_pid(syms, getpid());
	addr = (__u64)(unsigned long)(area + 2 * page + 0x10);
	err = syms__user(syms, getpid(), addr, &sym);
	CHECK(err == -ENOENT && !sym.symbol && !sym.module,
	      "self anonymous 0x%llx: err %d, got %s in %s, want -ENOENT",
	      (unsigned long long)addr, err, str__or_null(sym.symbol), str__or_null(sym.module));
	munmap(area, 3 * page);
}

static void test__vdso(struct syms *syms)
{
	__u64 start = 0, end = 0, addr, size;
	char name[64], *image = NULL;
	struct user_sym sym;
	bool found = false;
	Elf *elf = NULL;
	int err;

	if (maps__find(getpid(), "[vdso]", name, sizeof(name), &start, &end))
		image = malloc(end - start);
	if (image) {
		memcpy(image, (void *)(unsigned long)start, end - start);
		elf = elf_memory(image, end - start);
		found = elf__find_func(elf, "__vdso_clock_gettime", start, &addr, &size);
	}
	elf_end(elf);
	free(image);
	if (!found) {
		check__skip(true, "vdso: no [vdso] with __vdso_clock_gettime in this process");
		return;
	}
	err = syms__user(syms, getpid(), addr, &sym);
	CHECK(!err && str__contains(sym.symbol, "clock_gettime") && sym.offset == 0 &&
		      sym.module && !strcmp(sym.module, "[vdso]"),
	      "vdso 0x%llx: err %d, got %s+%llu in %s, want *clock_gettime*+0 in [vdso]",
	      (unsigned long long)addr, err, str__or_null(sym.symbol),
	      (unsigned long long)sym.offset, str__or_null(sym.module));
}

/* A dlopen'ed library is found by a re-report, at most once per interval; names handed out stay
 * valid after a re-report dropped the module they came from. */
static void test__dlopen(struct syms *syms)
{
	const char *lib = "libcrypt.so.1", *held;
	char saved[256];
	struct user_sym sym;
	void *handle, *fn;
	double reported;
	int err;

	handle = dlopen(lib, RTLD_NOW | RTLD_NOLOAD);
	if (handle) {
		dlclose(handle);
		check__skip(true, "dlopen: %s already loaded", lib);
		return;
	}
	syms__forget_pid(syms, getpid());
	reported = time__now_s();
	err = syms__user(syms, getpid(), UNMAPPED_ADDR, &sym);
	CHECK(err == -ENOENT, "self 0x%llx: err %d, want -ENOENT", UNMAPPED_ADDR, err);

	handle = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		check__skip(false, "dlopen: %s", dlerror());
		return;
	}
	fn = dlsym(handle, "crypt_r");
	CHECK(fn, "dlsym(%s, crypt_r): %s", lib, dlerror());
	if (!fn)
		goto out;

	err = syms__user(syms, getpid(), (__u64)(unsigned long)fn, &sym);
	if (time__now_s() - reported < 0.5)
		CHECK(err == -ENOENT, "dlopen: err %d, got %s right after a report, want -ENOENT",
		      err, str__or_null(sym.symbol));
	time__sleep_ms(REPORT_WAIT_MS);
	err = syms__user(syms, getpid(), (__u64)(unsigned long)fn, &sym);
	CHECK(!err && str__contains(sym.symbol, "crypt") && str__contains(sym.module, "libcrypt"),
	      "dlopen crypt_r: err %d, got %s in %s", err, str__or_null(sym.symbol),
	      str__or_null(sym.module));
	if (err || !sym.symbol)
		goto out;

	held = sym.symbol;
	snprintf(saved, sizeof(saved), "%s", held);
	dlclose(handle);
	handle = NULL;
	time__sleep_ms(REPORT_WAIT_MS);
	err = syms__user(syms, getpid(), UNMAPPED_ADDR, &sym);
	CHECK(err == -ENOENT, "self 0x%llx after dlclose: err %d, want -ENOENT", UNMAPPED_ADDR, err);
	/* ASan flags this read if the name died with the module. */
	CHECK(!strcmp(held, saved), "name of a dlclose'd module changed: %s, was %s", held, saved);
out:
	if (handle)
		dlclose(handle);
}

static pid_t child__spawn(const char *path, char *const envp[])
{
	char *const argv[] = { (char *)path, "-c", PYTHON_SLEEP, NULL };
	pid_t pid;
	int err;

	err = posix_spawn(&pid, path, NULL, NULL, argv, envp);
	CHECK(!err, "spawn %s: %s", path, strerror(err));
	return err ? -1 : pid;
}

/* Waits until the child has mapped a file whose path contains part, and libc: the executable is
 * mapped before exec finishes (auxv still empty, libdwfl then fails), libc only after. */
static bool child__wait_module(pid_t pid, const char *part, char *name, size_t name_size,
			       __u64 *start)
{
	char libc[4096];
	__u64 libc_start;
	int i;

	for (i = 0; i < 200; i++) {
		if (maps__find(pid, "/libc.so", libc, sizeof(libc), &libc_start, NULL) &&
		    maps__find(pid, part, name, name_size, start, NULL))
			return true;
		time__sleep_ms(25);
	}
	CHECK(false, "pid %d never mapped %s", pid, part);
	return false;
}

static bool child__is_zombie(pid_t pid)
{
	char path[64], line[512], *paren = NULL;
	FILE *file;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	file = fopen(path, "r");
	if (!file)
		return false;
	/* comm may hold spaces and parentheses: the state follows the last ')' */
	if (fgets(line, sizeof(line), file))
		paren = strrchr(line, ')');
	fclose(file);
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

/* Resolves `func` (from elf_path's symbol tables) in a child whose maps show a module containing
 * module_part; checks the name, the offset inside it, and the module name. */
static bool child__check_func(struct syms *syms, pid_t pid, const char *module_part,
			      const char *elf_path, const char *func, const char *want_module)
{
	char module[4096];
	__u64 start, addr, size, mid;
	struct user_sym sym;
	int err;

	if (!child__wait_module(pid, module_part, module, sizeof(module), &start))
		return false;
	if (!elf__find_func_in_file(elf_path ? elf_path : module, func, start, &addr, &size)) {
		CHECK(false, "no function %s in %s", func, elf_path ? elf_path : module);
		return false;
	}
	err = syms__user(syms, pid, addr, &sym);
	CHECK(!err && sym.symbol && !strcmp(sym.symbol, func) && sym.offset == 0 && sym.module &&
		      !strcmp(sym.module, want_module ? want_module : module),
	      "pid %d 0x%llx: err %d, got %s+%llu in %s, want %s+0 in %s", pid,
	      (unsigned long long)addr, err, str__or_null(sym.symbol),
	      (unsigned long long)sym.offset, str__or_null(sym.module), func,
	      want_module ? want_module : module);
	mid = size / 2;
	err = syms__user(syms, pid, addr + mid, &sym);
	CHECK(!err && sym.symbol && !strcmp(sym.symbol, func) && sym.offset == mid,
	      "pid %d %s+%llu: err %d, got %s+%llu", pid, func, (unsigned long long)mid, err,
	      str__or_null(sym.symbol), (unsigned long long)sym.offset);
	return !err;
}

/* Debian's python3.11: a non-PIE executable stripped down to .dynsym. Also checks what happens
 * once the process is gone. */
static void test__system_python(struct syms *syms)
{
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	char module[4096];
	__u64 start, addr, size;
	struct user_sym sym;
	pid_t pid;
	int err, i;

	if (access(SYSTEM_PYTHON, X_OK)) {
		check__skip(false, "system python: no %s", SYSTEM_PYTHON);
		return;
	}
	pid = child__spawn(SYSTEM_PYTHON, envp);
	if (pid < 0)
		return;
	if (!child__check_func(syms, pid, SYSTEM_PYTHON, NULL, "Py_Initialize", NULL)) {
		child__kill(pid);
		return;
	}
	maps__find(pid, SYSTEM_PYTHON, module, sizeof(module), &start, NULL);
	elf__find_func_in_file(SYSTEM_PYTHON, "Py_Initialize", start, &addr, &size);

	/* The ELF header is in no function; non-PIE, so ELF addresses are runtime addresses. */
	err = syms__user(syms, pid, start, &sym);
	CHECK(!err && !sym.symbol && sym.module && !strcmp(sym.module, SYSTEM_PYTHON) &&
		      sym.offset == start,
	      "pid %d 0x%llx: err %d, got %s+0x%llx in %s, want no symbol, 0x%llx in %s", pid,
	      (unsigned long long)start, err, str__or_null(sym.symbol),
	      (unsigned long long)sym.offset, str__or_null(sym.module),
	      (unsigned long long)start, SYSTEM_PYTHON);

	/* A zombie's maps read empty: a re-report then must not drop what was known. */
	kill(pid, SIGKILL);
	for (i = 0; i < 200 && !child__is_zombie(pid); i++)
		time__sleep_ms(10);
	CHECK(child__is_zombie(pid), "pid %d: not a zombie after SIGKILL", pid);
	time__sleep_ms(REPORT_WAIT_MS);
	err = syms__user(syms, pid, UNMAPPED_ADDR, &sym);
	CHECK(err == -ENOENT, "exited pid %d 0x%llx: err %d, want -ENOENT", pid, UNMAPPED_ADDR,
	      err);
	err = syms__user(syms, pid, addr, &sym);
	CHECK(!err && sym.symbol && !strcmp(sym.symbol, "Py_Initialize"),
	      "exited pid %d Py_Initialize: err %d, got %s, want it still cached", pid, err,
	      str__or_null(sym.symbol));

	waitpid(pid, NULL, 0);
	syms__forget_pid(syms, pid);
	err = syms__user(syms, pid, addr, &sym);
	CHECK(err < 0 && !sym.symbol && !sym.module,
	      "forgotten exited pid %d: err %d, got %s, want an error", pid, err,
	      str__or_null(sym.symbol));
	syms__forget_pid(syms, pid);
}

/* The executable was replaced since it was mapped: maps says "(deleted)". */
static void test__deleted_python(struct syms *syms)
{
	char *envp[] = { "PATH=/usr/bin:/bin", "PYTHONHOME=/usr", NULL };
	char dir[] = "/tmp/symbolize_test.XXXXXX", path[64], want[96], cmd[256];
	__u64 start, end;
	pid_t pid = -1;
	int fd;

	if (access(SYSTEM_PYTHON, X_OK)) {
		check__skip(false, "deleted python: no %s", SYSTEM_PYTHON);
		return;
	}
	/* Deleted files are read through /proc/PID/map_files: CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE. */
	if (!maps__find(getpid(), "/", want, sizeof(want), &start, &end))
		return;
	snprintf(path, sizeof(path), "/proc/self/map_files/%llx-%llx", (unsigned long long)start,
		 (unsigned long long)end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		check__skip(true, "deleted python: %s: %s", path, strerror(errno));
		return;
	}
	close(fd);

	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/python3", dir);
	snprintf(cmd, sizeof(cmd), "cp %s %s", SYSTEM_PYTHON, path);
	if (system(cmd)) {
		CHECK(false, "%s failed", cmd);
		goto out;
	}
	pid = child__spawn(path, envp);
	if (pid < 0)
		goto out;
	if (!child__wait_module(pid, path, want, sizeof(want), &start))
		goto out;
	unlink(path);
	snprintf(want, sizeof(want), "%s (deleted)", path);
	child__check_func(syms, pid, path, SYSTEM_PYTHON, "Py_Initialize", want);
out:
	if (pid > 0) {
		child__kill(pid);
		syms__forget_pid(syms, pid);
	}
	unlink(path);
	rmdir(dir);
}

/* pyenv's libpython keeps its full .symtab: time_sleep is a static function, not in .dynsym. */
static void test__pyenv_python(struct syms *syms)
{
	char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	char root[256], pattern[512], python[512], *lib_dir;
	glob_t libs;
	pid_t pid;

	pyenv__root(root, sizeof(root));
	snprintf(pattern, sizeof(pattern), "%s/versions/3.*/lib/libpython3.*.so.1.0", root);
	if (glob(pattern, 0, NULL, &libs) || !libs.gl_pathc) {
		check__skip(false, "pyenv python: nothing matches %s", pattern);
		globfree(&libs);
		return;
	}
	/* .../versions/3.X/lib/libpython3.X.so.1.0 -> .../versions/3.X/bin/python3 */
	snprintf(python, sizeof(python), "%s", libs.gl_pathv[libs.gl_pathc - 1]);
	globfree(&libs);
	lib_dir = strrchr(python, '/') - strlen("/lib");
	snprintf(lib_dir, sizeof(python) - (size_t)(lib_dir - python), "/bin/python3");

	pid = child__spawn(python, envp);
	if (pid < 0)
		return;
	child__check_func(syms, pid, "/libpython3", NULL, "time_sleep", NULL);
	child__kill(pid);
	syms__forget_pid(syms, pid);
}

int main(void)
{
	struct syms *syms;

	if (geteuid()) {
		printf("SKIP symbolize_test: needs root (kallsyms addresses, /proc/PID/map_files)\n");
		return check__skip_code();
	}
	elf_version(EV_CURRENT);
	syms = syms__new();
	if (!syms) {
		fprintf(stderr, "FAIL syms__new: %s\n", strerror(errno));
		return 1;
	}
	test__kernel(syms);
	test__self(syms);
	test__symtab(syms);
	test__anonymous(syms);
	test__vdso(syms);
	test__dlopen(syms);
	test__system_python(syms);
	test__deleted_python(syms);
	test__pyenv_python(syms);
	syms__free(syms);
	return check__exit("symbolize_test");
}
