// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <search.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <elf.h>
#include <elfutils/libdwfl.h>
#include "clock.h"
#include "compare.h"
#include "procfs.h"
#include "remote.h"
#include "symbolize.h"
#include "targetfs.h"
#include "util.h"
#include "caches.h"

/* Bounds how often a process running code outside any module (JIT, anonymous executable memory)
 * makes us re-read its /proc/PID/maps; it is also how long code dlopen'ed right after a report
 * stays unresolved. */
#define REPORT_INTERVAL_NS 1000000000ULL

#define DELETED_SUFFIX " (deleted)"

struct ksym {
	__u64 addr;
	size_t name; /* offset in syms->kstrs: the arena moves while it grows */
};

/* libdwfl 0.188's dwfl_addrmodule can return the module just below an address in a gap between
 * modules (JIT code, or a library dlopen'ed there since the report): look modules up ourselves. */
struct module_range {
	__u64 low, high;
	Dwfl_Module *mod;
	struct symtab *symtab; /* NULL until the first lookup in the module, or if it has none */
};

/* dwfl_module_addrinfo scans the whole symbol table per address: 80-160 ms per stall on a node
 * binary's ~150k symbols. A symtab is that table's sized symbols sorted by address, built once
 * per binary (its build-id and symbol count: processes of one binary share it) and binary
 * searched. It answers only where libdwfl's choice is plain (one symbol, or aliases of one
 * range, hold the address, no label sits on it); elsewhere the caller asks libdwfl. */
struct symtab_entry {
	__u64 start, end; /* in the ELF file's own addresses */
	__u64 cover;      /* highest end among this entry and every one before it */
	__u32 index;      /* what dwfl_module_getsym_info takes */
	bool ambiguous;   /* nested in or overlapping another symbol: libdwfl decides */
};

struct symtab {
	unsigned char *build_id;
	int build_id_len, nr_syms;
	size_t refs; /* processes holding it */
	struct symtab_entry *entries;
	size_t nr_entries;
	__u64 *labels; /* sorted starts of sizeless symbols */
	size_t nr_labels;
};

struct pid_syms {
	pid_t pid;
	int root_fd; /* the process's "/": its maps paths are relative to it */
	/* Where its root is in ours when we can reach it (a chroot), else NULL: see own_path. */
	char *root_prefix;
	Dwfl *dwfl;  /* NULL after libdwfl failed mid-report, until the next report */
	struct module_range *ranges; /* sorted by low */
	size_t nr_ranges, ranges_cap;
	__u64 reported_ns;
	/* A file was not opened for a passing reason: libdwfl remembers a module's failure for
	 * good, so the next lookup after REPORT_INTERVAL_NS starts it afresh (see
	 * pid_syms__opened). */
	bool files_missed;
	/* Changes when a report finds another set of modules than the one before (a dlopen). */
	__u64 generation, modules_hash;
	/* Every string handed out, copied: a re-report frees the Dwfl_Module of a dlclose'd
	 * library and its strings with it, while callers hold names until syms__forget_pid. */
	void *names;
	struct syms *syms;
	void *symtabs; /* tsearch tree of the struct symtab this process holds a reference to */
};

struct syms {
	struct ksym *ksyms;
	size_t nr_ksyms;
	char *kstrs;
	bool ksyms_loaded;
	void *pids; /* tsearch tree of struct pid_syms */
	void *symtabs; /* tsearch tree of struct symtab, by build-id and symbol count */
};

static bool str__has_suffix(const char *str, const char *suffix)
{
	size_t len = strlen(str), suffix_len = strlen(suffix);

	return len >= suffix_len && !strcmp(str + len - suffix_len, suffix);
}

static int ksym__cmp(const void *a, const void *b)
{
	const struct ksym *left = a, *right = b;

	if (left->addr != right->addr)
		return left->addr < right->addr ? -1 : 1;
	/* Names are appended in file order: among aliases, the one kallsyms lists first wins. */
	return left->name < right->name ? -1 : left->name > right->name;
}

static bool ksym__is_text(char type)
{
	return type == 't' || type == 'T' || type == 'w' || type == 'W';
}

static int syms__load_kernel(struct syms *syms)
{
	size_t nr = 0, cap = 0, strs_len = 0, strs_cap = 0, line_cap = 0, i, kept;
	struct ksym *ksyms = NULL, *new_ksyms;
	char *strs = NULL, *line = NULL, *new_strs, *end, *name;
	size_t name_len;
	__u64 addr;
	FILE *file;
	int err = 0;

	file = fopen("/proc/kallsyms", "re");
	if (!file)
		return -errno;
	/* "ADDR TYPE NAME" with an optional "\t[MODULE]" after it */
	while (getline(&line, &line_cap, file) > 0) {
		addr = strtoull(line, &end, 16);
		if (end == line || end[0] != ' ' || !end[1] || end[2] != ' ')
			continue;
		/* Without CAP_SYSLOG every address reads as 0. */
		if (!addr || !ksym__is_text(end[1]))
			continue;
		name = end + 3;
		name_len = strcspn(name, " \t\n");
		if (!name_len)
			continue;
		new_ksyms = array__grow(ksyms, &cap, nr + 1, sizeof(*ksyms), 65536);
		if (!new_ksyms) {
			err = -ENOMEM;
			goto cleanup;
		}
		ksyms = new_ksyms;
		new_strs = array__grow(strs, &strs_cap, strs_len + name_len + 1, 1, 1 << 20);
		if (!new_strs) {
			err = -ENOMEM;
			goto cleanup;
		}
		strs = new_strs;
		ksyms[nr].addr = addr;
		ksyms[nr].name = strs_len;
		memcpy(strs + strs_len, name, name_len);
		strs[strs_len + name_len] = '\0';
		strs_len += name_len + 1;
		nr++;
	}
	if (ferror(file)) {
		err = -EIO;
		goto cleanup;
	}

	if (nr)
		qsort(ksyms, nr, sizeof(*ksyms), ksym__cmp);
	/* One name per address keeps the lookup a plain binary search. */
	for (i = 0, kept = 0; i < nr; i++)
		if (!kept || ksyms[i].addr != ksyms[kept - 1].addr)
			ksyms[kept++] = ksyms[i];
	syms->ksyms = ksyms;
	syms->nr_ksyms = kept;
	syms->kstrs = strs;
	ksyms = NULL;
	strs = NULL;

cleanup:
	free(line);
	free(ksyms);
	free(strs);
	fclose(file);
	return err;
}

const char *syms__kernel(struct syms *syms, __u64 addr, __u64 *offset)
{
	size_t lo = 0, hi, mid;
	const struct ksym *ksym;

	if (!syms->ksyms_loaded) {
		syms->ksyms_loaded = true;
		/* On failure there is simply no kernel symbol; the caller checks privileges. */
		syms__load_kernel(syms);
	}
	/* lo ends as the number of symbols starting at or below addr */
	hi = syms->nr_ksyms;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (syms->ksyms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	ksym = lo ? &syms->ksyms[lo - 1] : NULL;
	if (offset)
		*offset = ksym ? addr - ksym->addr : 0;
	return ksym ? syms->kstrs + ksym->name : NULL;
}

/* A file replaced or removed since it was mapped (a package upgrade under a running service) is
 * still reachable through /proc/PID/map_files/START-END (needs CAP_SYS_ADMIN or
 * CAP_CHECKPOINT_RESTORE). */
static int pid_syms__open_deleted(const struct pid_syms *ps, Dwarf_Addr base, char **file_name)
{
	char dir_path[64], prefix[32];
	struct dirent *ent;
	struct stat st;
	int fd = -1, prefix_len;
	DIR *dir;

	snprintf(dir_path, sizeof(dir_path), "/proc/%d/map_files", ps->pid);
	prefix_len = snprintf(prefix, sizeof(prefix), "%" PRIx64 "-", base);
	dir = opendir(dir_path);
	if (!dir)
		return -1;
	while ((ent = readdir(dir))) {
		if (strncmp(ent->d_name, prefix, prefix_len))
			continue;
		if (!fstatat(dirfd(dir), ent->d_name, &st, 0) && S_ISREG(st.st_mode))
			fd = openat(dirfd(dir), ent->d_name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && asprintf(file_name, "%s/%s", dir_path, ent->d_name) < 0)
			*file_name = NULL;
		break;
	}
	closedir(dir);
	return fd;
}

/*
 * A maps path as the process sees it. /proc/PID/maps names files relative to our root: under a
 * chroot whose directory we can reach, that is the chroot's path plus the process's own (a
 * pivot_root'ed container's root is out of our reach, and its paths come out as its own).
 */
static const char *pid_syms__own_path(const struct pid_syms *ps, const char *name)
{
	size_t len = ps->root_prefix ? strlen(ps->root_prefix) : 0;

	if (len && !strncmp(name, ps->root_prefix, len) && name[len] == '/')
		return name + len;
	return name;
}

/*
 * fd from targetfs, for libdwfl. -ETIMEDOUT and -EBUSY are targetfs's time budget running out
 * (a slow file system, or a loaded machine where its thread waited for a CPU): not the file's
 * fate, unlike the other errors. Such a miss is asked again (see syms__pid()).
 */
static int pid_syms__opened(struct pid_syms *ps, int fd)
{
	if (targetfs__missed(fd))
		ps->files_missed = true;
	return fd;
}

/*
 * The vDSO is the kernel's: every process of one ABI maps the same image. libdwfl would read the
 * target's whole from /proc/PID/mem, behind its mmap lock and with no bound in time; instead its
 * ELF header is read (remote.c: bounded) and, when it is loopstall's own vDSO's, loopstall's
 * image serves, copied once (libelf may write to what elf_memory() is given). Another ABI's
 * vDSO (a 32-bit process) is left unsymbolized.
 */
static Elf *vdso__elf(pid_t pid, Dwarf_Addr base)
{
	static void *image;
	static size_t image_size;
	const Elf64_Ehdr *own = (const Elf64_Ehdr *)getauxval(AT_SYSINFO_EHDR);
	Elf64_Ehdr theirs;

	if (!own || remote__read(pid, base, &theirs, sizeof(theirs)) ||
	    memcmp(own, &theirs, sizeof(theirs)))
		return NULL;
	if (!image) {
		image_size = own->e_shoff + (size_t)own->e_shnum * own->e_shentsize;
		image = malloc(image_size);
		if (!image)
			return NULL;
		memcpy(image, own, image_size);
	}
	return elf_memory(image, image_size);
}

/*
 * libdwfl 0.188's dwfl_linux_proc_find_elf opens the maps path in our own mount namespace: for a
 * process in a container that is another file, or the host's copy of the same path, silently
 * giving wrong symbols. Open exactly the mapped file instead (map_files: whatever namespace,
 * chroot or path replacement), else the path inside the process's root, both through targetfs
 * with the process's own rights. Only once the process is gone (stacks are often resolved
 * after it exited) does its root held open since its first report serve.
 */
static int module__find_elf(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
			    char **file_name, Elf **elfp)
{
	struct pid_syms *ps = *userdata;
	const char *own = pid_syms__own_path(ps, name);
	struct stat st;
	int fd;

	/* "[vdso: PID]" */
	if (name[0] != '/') {
		*elfp = vdso__elf(ps->pid, base);
		return -1;
	}
	fd = pid_syms__opened(ps, targetfs__open_mapped(ps->pid, base, &st));
	if (fd < 0 && !str__has_suffix(name, DELETED_SUFFIX))
		fd = pid_syms__opened(ps, targetfs__open(ps->pid, own, &st));
	if ((fd == -ESRCH || fd == -ENOENT) && str__has_suffix(name, DELETED_SUFFIX))
		return pid_syms__open_deleted(ps, base, file_name);
	/* Gone: its root, held open, still has its files, but a FIFO there would block an open and
	 * a device's may act: never opened blocking, checked after. (Not on -ENOENT: the same
	 * path, opened here rather than by targetfs, would differ only by following an absolute
	 * symlink out of its root.) */
	if (fd == -ESRCH) {
		if (fstatat(ps->root_fd, own + 1, &st, 0) || !S_ISREG(st.st_mode))
			return -1;
		fd = openat(ps->root_fd, own + 1, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
			close(fd);
			return -1;
		}
	}
	if (fd < 0)
		return -1;
	/* libdwfl keeps it as the module's file name (the debuglink search is ours). */
	if (asprintf(file_name, "/proc/%d/root%s", ps->pid, own) < 0)
		*file_name = NULL;
	return fd;
}

/* GDB's places for a debuglink name: next to the binary, in .debug/ there, under
 * /usr/lib/debug; all inside the process's root, opened as it could. */
static int pid_syms__open_debuglink(struct pid_syms *ps, const char *own,
				    const char *debuglink, char **debuginfo_file_name)
{
	static const char *const places[] = { "%.*s/%s", "%.*s/.debug/%s", "/usr/lib/debug%.*s/%s" };
	const char *slash = strrchr(own, '/');
	int dir_len = (int)(slash - own), fd = -1;
	char path[PATH_MAX];
	struct stat st;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(places) && fd < 0; i++) {
		if (snprintf(path, sizeof(path), places[i], dir_len, own, debuglink) >=
		    (int)sizeof(path))
			continue;
		fd = pid_syms__opened(ps, targetfs__open(ps->pid, path, &st));
	}
	if (fd >= 0 && asprintf(debuginfo_file_name, "/proc/%d/root%s", ps->pid, path) < 0)
		*debuginfo_file_name = NULL;
	return fd < 0 ? -1 : fd;
}

/*
 * Debug files of binaries without .symtab: first by build id under the process's own
 * /usr/lib/debug (a container's debug packages), then by build id under the host's, then by
 * the binary's .gnu_debuglink name next to it, in the process's root. Not libdwfl's own search:
 * it opens the debuglink name (the target's to choose) with plain open() under
 * /proc/PID/root, which follows absolute symlinks out of that root and blocks on a FIFO.
 */
static int module__find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
				  Dwarf_Addr base, const char *file_name,
				  const char *debuglink_file, GElf_Word debuglink_crc,
				  char **debuginfo_file_name)
{
	struct pid_syms *ps = *userdata;
	const unsigned char *id;
	char path[128 + 2 * 64];
	GElf_Addr vaddr;
	struct stat st;
	int len, i, at, fd;

	len = dwfl_module_build_id(mod, &id, &vaddr);
	if (len >= 2 && len <= 64) {
		at = snprintf(path, sizeof(path), "/usr/lib/debug/.build-id/%02x/", id[0]);
		for (i = 1; i < len; i++)
			at += snprintf(path + at, sizeof(path) - at, "%02x", id[i]);
		snprintf(path + at, sizeof(path) - at, ".debug");
		fd = pid_syms__opened(ps, targetfs__open(ps->pid, path, &st));
		if (fd >= 0) {
			if (asprintf(debuginfo_file_name, "/proc/%d/root%s", ps->pid, path) < 0)
				*debuginfo_file_name = NULL;
			return fd;
		}
	}
	fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
					  debuglink_crc, debuginfo_file_name);
	if (fd >= 0 || !debuglink_file || strchr(debuglink_file, '/') || modname[0] != '/')
		return fd;
	return pid_syms__open_debuglink(ps, pid_syms__own_path(ps, modname), debuglink_file,
					debuginfo_file_name);
}

static const Dwfl_Callbacks proc_callbacks = {
	.find_elf = module__find_elf,
	.find_debuginfo = module__find_debuginfo,
};

static int module_range__cmp(const void *a, const void *b)
{
	const struct module_range *left = a, *right = b;

	return left->low < right->low ? -1 : left->low > right->low;
}

static int module__index(Dwfl_Module *mod, void **userdata, const char *name, Dwarf_Addr base,
			 void *arg)
{
	struct pid_syms *ps = arg;
	struct module_range *ranges;
	Dwarf_Addr end;

	(void)name;
	/* find_elf gets the module's userdata, not the Dwfl: this is how it finds the pid. */
	*userdata = ps;
	ranges = array__grow(ps->ranges, &ps->ranges_cap, ps->nr_ranges + 1, sizeof(*ranges), 64);
	if (!ranges)
		return DWARF_CB_ABORT;
	ps->ranges = ranges;
	dwfl_module_info(mod, NULL, NULL, &end, NULL, NULL, NULL, NULL);
	ps->ranges[ps->nr_ranges++] = (struct module_range){ .low = base, .high = end, .mod = mod };
	return DWARF_CB_OK;
}

static int module__keep(Dwfl_Module *mod, void *userdata, const char *name, Dwarf_Addr base,
			void *arg)
{
	Dwarf_Addr end;

	(void)userdata;
	dwfl_module_info(mod, NULL, NULL, &end, NULL, NULL, NULL, NULL);
	/* Reporting a module again while it is being removed keeps it. */
	return dwfl_report_module(arg, name, base, end) ? 0 : -1;
}

static int mapping__found(void *ctx, const struct proc_mapping *mapping)
{
	return 1;
}

/* dwfl_linux_proc_report fails on a process that is gone (its auxv reads empty), but one exiting
 * between its reads of auxv and maps yields an empty report that "succeeded". */
static bool pid__has_mappings(pid_t pid)
{
	return procfs__each_mapping(pid, mapping__found, NULL) > 0;
}

/* FNV-1a over the sorted module ranges: a module mapped or unmapped changes it. */
static void pid_syms__count_change(struct pid_syms *ps)
{
	__u64 hash = 0xcbf29ce484222325ULL;
	size_t i;

	for (i = 0; i < ps->nr_ranges; i++)
		hash = ((hash ^ ps->ranges[i].low) * 0x100000001b3ULL ^ ps->ranges[i].high) *
		       0x100000001b3ULL;
	if (!ps->generation || hash != ps->modules_hash)
		ps->generation++;
	ps->modules_hash = hash;
}

/*
 * dwfl_linux_proc_report reads /proc/PID/maps, which waits for the target's mmap lock: run by
 * remote.h's reader thread within its budget. Left behind, the job keeps the Dwfl (reported
 * into, never used again here) and ends it once the report returns.
 */
struct report_job {
	struct remote_job base;
	Dwfl *dwfl;
};

static int report_job__run(struct remote_job *job)
{
	/* An errno, or -1 for a libdwfl error (an unparsable maps line, no memory). */
	return dwfl_linux_proc_report(((struct report_job *)job)->dwfl, job->pid);
}

static void report_job__release(struct remote_job *job)
{
	Dwfl *dwfl = ((struct report_job *)job)->dwfl;

	dwfl_report_end(dwfl, NULL, NULL);
	dwfl_end(dwfl);
	free(job);
}

/* report_job__run's result, -EBUSY (not run: ps->dwfl is still ours) or -ETIMEDOUT (ps->dwfl
 * is the reader thread's now). */
static int report_job__run_bounded(struct pid_syms *ps)
{
	struct report_job *job = calloc(1, sizeof(*job));
	int err;

	if (!job)
		return -ENOMEM;
	*job = (struct report_job){ .base = { .pid = ps->pid, .run = report_job__run,
					      .release = report_job__release },
				    .dwfl = ps->dwfl };
	err = remote__run(&job->base);
	if (err != -ETIMEDOUT)
		free(job);
	return err;
}

static int pid_syms__report(struct pid_syms *ps)
{
	int err;

	ps->reported_ns = clock__ns();
	if (!ps->dwfl) {
		ps->dwfl = dwfl_begin(&proc_callbacks);
		if (!ps->dwfl)
			return -ENOMEM;
	}
	dwfl_report_begin(ps->dwfl);
	err = report_job__run_bounded(ps);
	if (err == -ETIMEDOUT) {
		/* The Dwfl is the reader thread's now: reported again later, into a new one. */
		ps->dwfl = NULL;
		ps->nr_ranges = 0;
		return err;
	}
	if (!err && !pid__has_mappings(ps->pid))
		err = ESRCH;
	/* Stacks are often symbolized after the process exited: a failed re-report keeps what
	 * was known rather than dropping every module. */
	if (dwfl_report_end(ps->dwfl, err ? module__keep : NULL, ps->dwfl)) {
		/* libdwfl forbids using a Dwfl after a failed report_end. */
		dwfl_end(ps->dwfl);
		ps->dwfl = NULL;
		ps->nr_ranges = 0;
		return -ENOMEM;
	}
	ps->nr_ranges = 0;
	if (dwfl_getmodules(ps->dwfl, module__index, ps, 0)) {
		ps->nr_ranges = 0;
		return -ENOMEM;
	}
	qsort(ps->ranges, ps->nr_ranges, sizeof(*ps->ranges), module_range__cmp);
	pid_syms__count_change(ps);
	if (err == ENOENT)
		return -ESRCH;
	return err > 0 ? -err : err == -1 ? -EIO : err;
}

/* libdwfl's preference among symbols holding an address: global, then weak, then other
 * non-local bindings (found in the same pass as globals), then local. */
static int symbol__rank(const GElf_Sym *sym)
{
	switch (GELF_ST_BIND(sym->st_info)) {
	case STB_LOCAL:
		return 0;
	case STB_GLOBAL:
		return 3;
	case STB_WEAK:
		return 2;
	default:
		return 1;
	}
}

struct symtab_candidate {
	struct symtab_entry entry;
	int rank;
};

/* By start, aliases of one range together with libdwfl's pick among them first. */
static int symtab_candidate__cmp(const void *a, const void *b)
{
	const struct symtab_candidate *left = a, *right = b;

	if (left->entry.start != right->entry.start)
		return left->entry.start < right->entry.start ? -1 : 1;
	if (left->entry.end != right->entry.end)
		return left->entry.end < right->entry.end ? -1 : 1;
	if (left->rank != right->rank)
		return left->rank > right->rank ? -1 : 1;
	return left->entry.index < right->entry.index ? -1 : left->entry.index > right->entry.index;
}

static int symtab__cmp(const void *a, const void *b)
{
	const struct symtab *left = a, *right = b;

	if (left->nr_syms != right->nr_syms)
		return left->nr_syms < right->nr_syms ? -1 : 1;
	if (left->build_id_len != right->build_id_len)
		return left->build_id_len < right->build_id_len ? -1 : 1;
	return memcmp(left->build_id, right->build_id, left->build_id_len);
}

static int symtab__ptr_cmp(const void *a, const void *b)
{
	return a < b ? -1 : a > b;
}

CACHE_COUNT(symtab_count, "symbol_tables")
CACHE_COUNT(pid_syms_count, "process_symbols")

static void symtab__free(struct symtab *tab)
{
	cache_count__add(&symtab_count, -1);
	free(tab->build_id);
	free(tab->entries);
	free(tab->labels);
	free(tab);
}

/* Keeps libdwfl's filter (named, defined, not a section, file or TLS symbol): sized symbols
 * become candidates, sizeless ones labels. */
static int symtab__collect(struct symtab *tab, Dwfl_Module *mod, Dwarf_Addr bias,
			   struct symtab_candidate **candidates, size_t *nr)
{
	struct symtab_candidate *c;
	const char *name;
	GElf_Addr addr;
	GElf_Sym sym;
	int i, type;

	*candidates = calloc(tab->nr_syms, sizeof(**candidates));
	tab->labels = calloc(tab->nr_syms, sizeof(*tab->labels));
	if (!*candidates || !tab->labels)
		return -ENOMEM;
	for (i = 1; i < tab->nr_syms; i++) {
		name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
		type = GELF_ST_TYPE(sym.st_info);
		if (!name || !name[0] || sym.st_shndx == SHN_UNDEF || type == STT_SECTION ||
		    type == STT_FILE || type == STT_TLS)
			continue;
		if (!sym.st_size) {
			tab->labels[tab->nr_labels++] = addr - bias;
			continue;
		}
		c = &(*candidates)[(*nr)++];
		c->entry = (struct symtab_entry){ .start = addr - bias,
						  .end = addr - bias + sym.st_size, .index = i };
		c->rank = symbol__rank(&sym);
	}
	return 0;
}

/* One entry per start: libdwfl's pick among aliases, ambiguous where ranges differ or nest. */
static void symtab__index(struct symtab *tab, const struct symtab_candidate *candidates,
			  size_t nr)
{
	struct symtab_entry *last = NULL;
	__u64 cover = 0;
	size_t i;

	for (i = 0; i < nr; i++) {
		if (last && last->start == candidates[i].entry.start) {
			last->ambiguous |= last->end != candidates[i].entry.end;
			if (candidates[i].entry.end > last->cover)
				last->cover = cover = candidates[i].entry.end;
			continue;
		}
		last = &tab->entries[tab->nr_entries++];
		*last = candidates[i].entry;
		last->ambiguous = cover > last->start;
		if (last->end > cover)
			cover = last->end;
		last->cover = cover;
	}
}

static struct symtab *symtab__build(Dwfl_Module *mod, const unsigned char *build_id,
				    int build_id_len, int nr_syms)
{
	struct symtab_candidate *candidates = NULL;
	struct symtab *tab;
	Dwarf_Addr bias;
	size_t nr = 0;

	tab = calloc(1, sizeof(*tab));
	if (!tab)
		return NULL;
	cache_count__add(&symtab_count, 1);
	tab->build_id_len = build_id_len;
	tab->nr_syms = nr_syms;
	tab->build_id = malloc(build_id_len);
	if (!tab->build_id || !dwfl_module_getelf(mod, &bias) ||
	    symtab__collect(tab, mod, bias, &candidates, &nr))
		goto err_out;
	qsort(candidates, nr, sizeof(*candidates), symtab_candidate__cmp);
	qsort(tab->labels, tab->nr_labels, sizeof(*tab->labels), u64__cmp);
	tab->entries = calloc(nr ? nr : 1, sizeof(*tab->entries));
	if (!tab->entries)
		goto err_out;
	symtab__index(tab, candidates, nr);
	memcpy(tab->build_id, build_id, build_id_len);
	free(candidates);
	return tab;

err_out:
	free(candidates);
	symtab__free(tab);
	return NULL;
}

/* The shared table of mod's binary, built at its first use; the process holds a reference
 * until syms__forget_pid. NULL without a build-id to share it by, or without memory. */
static struct symtab *pid_syms__symtab(struct pid_syms *ps, Dwfl_Module *mod)
{
	struct symtab key = {}, *tab, **node;
	const unsigned char *id;
	GElf_Addr vaddr;

	key.build_id_len = dwfl_module_build_id(mod, &id, &vaddr);
	key.nr_syms = dwfl_module_getsymtab(mod);
	if (key.build_id_len <= 0 || key.nr_syms <= 1)
		return NULL;
	key.build_id = (unsigned char *)id;
	node = tfind(&key, &ps->syms->symtabs, symtab__cmp);
	if (node) {
		tab = *node;
	} else {
		tab = symtab__build(mod, id, key.build_id_len, key.nr_syms);
		if (!tab)
			return NULL;
		if (!tsearch(tab, &ps->syms->symtabs, symtab__cmp)) {
			symtab__free(tab);
			return NULL;
		}
	}
	if (tfind(tab, &ps->symtabs, symtab__ptr_cmp))
		return tab;
	if (!tsearch(tab, &ps->symtabs, symtab__ptr_cmp)) {
		if (!tab->refs) {
			tdelete(tab, &ps->syms->symtabs, symtab__cmp);
			symtab__free(tab);
		}
		return NULL;
	}
	tab->refs++;
	return tab;
}

static void pid_syms__release_symtabs(struct pid_syms *ps)
{
	struct symtab *tab;

	while (ps->symtabs) {
		tab = *(struct symtab **)ps->symtabs;
		tdelete(tab, &ps->symtabs, symtab__ptr_cmp);
		if (--tab->refs)
			continue;
		tdelete(tab, &ps->syms->symtabs, symtab__cmp);
		symtab__free(tab);
	}
}

/* How many entries start at or below addr. */
static size_t symtab__entries_upto(const struct symtab *tab, __u64 addr)
{
	size_t lo = 0, hi = tab->nr_entries, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (tab->entries[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* How many labels are at or below addr. */
static size_t symtab__labels_upto(const struct symtab *tab, __u64 addr)
{
	size_t lo = 0, hi = tab->nr_labels, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (tab->labels[mid] <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* 1 with *index the symbol libdwfl would pick for addr (in the ELF file's addresses), 0 if it
 * would find none, -1 if only libdwfl can tell. */
static int symtab__lookup(const struct symtab *tab, __u64 addr, __u32 *index)
{
	size_t entries = symtab__entries_upto(tab, addr), labels = symtab__labels_upto(tab, addr);
	const struct symtab_entry *entry = entries ? &tab->entries[entries - 1] : NULL;
	__u64 label = labels ? tab->labels[labels - 1] : 0;

	if (entry && addr < entry->end) {
		/* A global label right on addr hides local symbols from libdwfl. */
		if (entry->ambiguous || (labels && label == addr))
			return -1;
		*index = entry->index;
		return 1;
	}
	if (entry && addr < entry->cover)
		return -1;
	/* libdwfl falls back to the closest label not inside a sized symbol. */
	if (labels && (!entry || label >= entry->cover))
		return -1;
	return 0;
}

static int pid_syms__cmp(const void *a, const void *b)
{
	const struct pid_syms *left = a, *right = b;

	return left->pid < right->pid ? -1 : left->pid > right->pid;
}

static void pid_syms__free(void *ptr)
{
	struct pid_syms *ps = ptr;

	cache_count__add(&pid_syms_count, -1);
	pid_syms__release_symtabs(ps);
	dwfl_end(ps->dwfl);
	free(ps->ranges);
	if (ps->root_fd >= 0)
		close(ps->root_fd);
	free(ps->root_prefix);
	tdestroy(ps->names, free);
	free(ps);
}

static struct pid_syms *pid_syms__new(struct syms *syms, pid_t pid, int *err)
{
	char path[64], root[PATH_MAX];
	struct pid_syms *ps;
	ssize_t len;

	ps = calloc(1, sizeof(*ps));
	if (!ps) {
		*err = -ENOMEM;
		return NULL;
	}
	cache_count__add(&pid_syms_count, 1);
	ps->pid = pid;
	ps->syms = syms;
	/* Held open so a process that exits after its first report still has its files read
	 * from its own root (libdwfl opens them lazily, at the first lookup in each). */
	snprintf(path, sizeof(path), "/proc/%d/root", pid);
	ps->root_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (ps->root_fd < 0) {
		*err = errno == ENOENT ? -ESRCH : -errno;
		goto err_out;
	}
	len = readlink(path, root, sizeof(root) - 1);
	if (len > 1 && root[0] == '/') {
		root[len] = '\0';
		ps->root_prefix = strdup(root);
	}
	*err = pid_syms__report(ps);
	if (*err)
		goto err_out;
	return ps;

err_out:
	pid_syms__free(ps);
	return NULL;
}

static const char *pid_syms__intern(struct pid_syms *ps, const char *str)
{
	char **node, *copy;

	node = tfind(str, &ps->names, str__cmp);
	if (node)
		return *node;
	copy = strdup(str);
	if (!copy)
		return NULL;
	node = tsearch(copy, &ps->names, str__cmp);
	if (!node) {
		free(copy);
		return NULL;
	}
	return *node;
}

/* libdwfl names versioned .dynsym entries "clock_nanosleep@GLIBC_2.2.5" (or "@@"); a reader
 * knows the function as clock_nanosleep. */
static const char *pid_syms__intern_unversioned(struct pid_syms *ps, const char *symbol)
{
	const char *at = strchr(symbol, '@');
	char name[256];

	if (!at || at == symbol || (size_t)(at - symbol) >= sizeof(name))
		return pid_syms__intern(ps, symbol);
	memcpy(name, symbol, at - symbol);
	name[at - symbol] = '\0';
	return pid_syms__intern(ps, name);
}

static struct module_range *pid_syms__find_range(const struct pid_syms *ps, __u64 addr)
{
	size_t lo = 0, hi = ps->nr_ranges, mid;

	/* lo ends as the number of modules starting at or below addr */
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (ps->ranges[mid].low <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo && addr < ps->ranges[lo - 1].high ? &ps->ranges[lo - 1] : NULL;
}

/* Valid until the next report. */
static struct module_range *pid_syms__range(struct pid_syms *ps, __u64 addr)
{
	struct module_range *range = pid_syms__find_range(ps, addr);

	/* A dlopen since the last report maps code we don't know about yet. */
	if (!range && clock__ns() - ps->reported_ns >= REPORT_INTERVAL_NS) {
		pid_syms__report(ps);
		range = pid_syms__find_range(ps, addr);
	}
	return range;
}

/* dwfl_module_addrinfo's answer (the symbol's name, *offset from it to addr), through the
 * binary's symtab where it can tell. */
static const char *pid_syms__addrinfo(struct pid_syms *ps, struct module_range *range,
				      __u64 addr, GElf_Off *offset)
{
	Dwarf_Addr bias;
	GElf_Addr start;
	const char *name;
	GElf_Sym sym;
	__u32 index;

	if (!range->symtab)
		range->symtab = pid_syms__symtab(ps, range->mod);
	if (range->symtab && dwfl_module_getelf(range->mod, &bias)) {
		switch (symtab__lookup(range->symtab, addr - bias, &index)) {
		case 0:
			return NULL;
		case 1:
			name = dwfl_module_getsym_info(range->mod, index, &sym, &start, NULL, NULL,
						       NULL);
			if (name && start <= addr && addr - start < sym.st_size) {
				*offset = addr - start;
				return name;
			}
		}
	}
	return dwfl_module_addrinfo(range->mod, addr, offset, &sym, NULL, NULL, NULL);
}

static struct pid_syms *syms__pid(struct syms *syms, pid_t pid, int *err)
{
	struct pid_syms key = { .pid = pid }, *ps, **node;

	node = tfind(&key, &syms->pids, pid_syms__cmp);
	ps = node ? *node : NULL;
	/* Files missed for a passing reason: a new Dwfl, as libdwfl would not open them again.
	 * Only while the process lives: a new report of a gone one would know nothing. */
	if (ps && ps->files_missed && clock__ns() - ps->reported_ns >= REPORT_INTERVAL_NS &&
	    pid__has_mappings(pid)) {
		dwfl_end(ps->dwfl);
		ps->dwfl = NULL;
		ps->nr_ranges = 0;
		ps->files_missed = false;
		pid_syms__report(ps);
		/* The same modules, but more of them read: a change to syms__refresh()'s callers. */
		ps->generation++;
	}
	if (ps)
		return ps;
	ps = pid_syms__new(syms, pid, err);
	if (!ps)
		return NULL;
	if (!tsearch(ps, &syms->pids, pid_syms__cmp)) {
		pid_syms__free(ps);
		*err = -ENOMEM;
		return NULL;
	}
	return ps;
}

struct symbol_search {
	const char *name;
	__u64 addr;
	const char *module;
};

static int module__find_symbol(Dwfl_Module *mod, void **userdata, const char *module_name,
			       Dwarf_Addr base, void *arg)
{
	struct symbol_search *search = arg;
	GElf_Addr addr;
	GElf_Sym sym;
	const char *name;
	int i, nr = dwfl_module_getsymtab(mod);

	for (i = 1; i < nr; i++) {
		name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
		if (name && sym.st_shndx != SHN_UNDEF && !strcmp(name, search->name)) {
			search->addr = addr;
			search->module = module_name;
			return DWARF_CB_ABORT;
		}
	}
	return DWARF_CB_OK;
}

/* Visit every module of pid's Dwfl with fn. Returns the pid's symbols, or NULL with *err set
 * (-ENOENT when it has no Dwfl). */
static struct pid_syms *syms__visit_modules(struct syms *syms, pid_t pid,
					    int (*fn)(Dwfl_Module *, void **, const char *,
						      Dwarf_Addr, void *),
					    void *arg, int *err)
{
	struct pid_syms *ps = syms__pid(syms, pid, err);

	if (ps && !ps->dwfl) {
		*err = -ENOENT;
		return NULL;
	}
	if (ps)
		dwfl_getmodules(ps->dwfl, fn, arg, 0);
	return ps;
}

int syms__find_symbol(struct syms *syms, pid_t pid, const char *name, __u64 *addr,
		      const char **module)
{
	struct symbol_search search = { .name = name };
	struct pid_syms *ps;
	int err = 0;

	ps = syms__visit_modules(syms, pid, module__find_symbol, &search, &err);
	if (!ps)
		return err;
	if (!search.module)
		return ps->files_missed ? -EAGAIN : -ENOENT;
	*addr = search.addr;
	if (module)
		*module = pid_syms__intern(ps, pid_syms__own_path(ps, search.module));
	return 0;
}

struct section_search {
	const char *name;
	__u64 addr, size;
	bool found;
};

static int module__find_section(Dwfl_Module *mod, void **userdata, const char *module_name,
				Dwarf_Addr base, void *arg)
{
	struct section_search *search = arg;
	size_t shstrndx;
	Dwarf_Addr bias;
	Elf_Scn *scn = NULL;
	GElf_Shdr shdr;
	const char *name;
	Elf *elf;

	elf = dwfl_module_getelf(mod, &bias);
	if (!elf || elf_getshdrstrndx(elf, &shstrndx))
		return DWARF_CB_OK;
	while ((scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &shdr) || !(shdr.sh_flags & SHF_ALLOC))
			continue;
		name = elf_strptr(elf, shstrndx, shdr.sh_name);
		if (name && !strcmp(name, search->name)) {
			search->addr = shdr.sh_addr + bias;
			search->size = shdr.sh_size;
			search->found = true;
			return DWARF_CB_ABORT;
		}
	}
	return DWARF_CB_OK;
}

int syms__find_section(struct syms *syms, pid_t pid, const char *name, __u64 *addr,
		       __u64 *size)
{
	struct section_search search = { .name = name };
	struct pid_syms *ps;
	int err = 0;

	ps = syms__visit_modules(syms, pid, module__find_section, &search, &err);
	if (!ps)
		return err;
	if (!search.found)
		return -ENOENT;
	*addr = search.addr;
	*size = search.size;
	return 0;
}

int syms__refresh(struct syms *syms, pid_t pid, __u64 *generation)
{
	struct pid_syms *ps;
	int err = 0;

	ps = syms__pid(syms, pid, &err);
	if (!ps)
		return err;
	if (clock__ns() - ps->reported_ns >= REPORT_INTERVAL_NS)
		pid_syms__report(ps);
	if (!ps->dwfl || ps->generation == *generation)
		return 0;
	*generation = ps->generation;
	return 1;
}

#define MAX_EXTRA_SYMBOLS 8

struct symbol_walk {
	const char *prefix;
	const char *const *extra;
	syms_symbol_fn fn;
	void *ctx;
	bool found;
};

/* Index of name among the walk's extra names, -1 if it is not one. */
static int symbol__extra(const struct symbol_walk *walk, const char *name)
{
	int i;

	for (i = 0; walk->extra && walk->extra[i] && i < MAX_EXTRA_SYMBOLS; i++)
		if (!strcmp(name, walk->extra[i]))
			return i;
	return -1;
}

static int module__each_symbol(Dwfl_Module *mod, void **userdata, const char *module_name,
			       Dwarf_Addr base, void *arg)
{
	struct symbol_walk *walk = arg;
	__u64 extra_addr[MAX_EXTRA_SYMBOLS] = {};
	bool stop = false;
	GElf_Addr addr;
	GElf_Sym sym;
	const char *name;
	int i, extra, nr = dwfl_module_getsymtab(mod);

	for (i = 1; i < nr && !stop; i++) {
		name = dwfl_module_getsym_info(mod, i, &sym, &addr, NULL, NULL, NULL);
		if (!name || sym.st_shndx == SHN_UNDEF)
			continue;
		/* Extra names only count in the module that has the prefixed ones: kept for
		 * after the scan. */
		extra = symbol__extra(walk, name);
		if (extra >= 0)
			extra_addr[extra] = addr;
		if (extra < 0 && !strncmp(name, walk->prefix, strlen(walk->prefix))) {
			walk->found = true;
			stop = walk->fn(walk->ctx, name, addr) != 0;
		}
	}
	if (!walk->found)
		return DWARF_CB_OK;
	for (i = 0; !stop && walk->extra && walk->extra[i] && i < MAX_EXTRA_SYMBOLS; i++)
		if (extra_addr[i])
			stop = walk->fn(walk->ctx, walk->extra[i], extra_addr[i]) != 0;
	return DWARF_CB_ABORT;
}

int syms__each_symbol(struct syms *syms, pid_t pid, const char *prefix,
		      const char *const *extra, syms_symbol_fn fn, void *ctx)
{
	struct symbol_walk walk = { .prefix = prefix, .extra = extra, .fn = fn, .ctx = ctx };
	struct pid_syms *ps;
	int err = 0;

	ps = syms__visit_modules(syms, pid, module__each_symbol, &walk, &err);
	if (!ps)
		return err;
	return walk.found ? 0 : ps->files_missed ? -EAGAIN : -ENOENT;
}

int syms__user(struct syms *syms, pid_t pid, __u64 addr, struct user_sym *out)
{
	const char *module, *symbol;
	Dwarf_Addr start, bias;
	struct module_range *range;
	struct pid_syms *ps;
	Dwfl_Module *mod;
	GElf_Off offset;
	int err = 0;

	memset(out, 0, sizeof(*out));
	ps = syms__pid(syms, pid, &err);
	if (!ps)
		return err;

	range = pid_syms__range(ps, addr);
	if (!range)
		return -ENOENT;
	mod = range->mod;
	module = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
	/* libdwfl names it "[vdso: PID]"; maps says "[vdso]". */
	module = module[0] == '[' ? "[vdso]" : pid_syms__intern(ps, pid_syms__own_path(ps, module));
	if (!module)
		return -ENOMEM;

	symbol = pid_syms__addrinfo(ps, range, addr, &offset);
	if (symbol && symbol[0]) {
		symbol = pid_syms__intern_unversioned(ps, symbol);
		if (!symbol)
			return -ENOMEM;
		out->symbol = symbol;
		out->offset = offset;
	} else {
		out->offset = addr - (dwfl_module_getelf(mod, &bias) ? bias : start);
	}
	out->module = module;
	return 0;
}

void syms__forget_pid(struct syms *syms, pid_t pid)
{
	struct pid_syms key = { .pid = pid }, **node, *ps;

	node = tfind(&key, &syms->pids, pid_syms__cmp);
	if (!node)
		return;
	ps = *node;
	tdelete(ps, &syms->pids, pid_syms__cmp);
	pid_syms__free(ps);
}

struct syms *syms__new(void)
{
	return calloc(1, sizeof(struct syms));
}

void syms__free(struct syms *syms)
{
	if (!syms)
		return;
	tdestroy(syms->pids, pid_syms__free);
	free(syms->ksyms);
	free(syms->kstrs);
	free(syms);
}
