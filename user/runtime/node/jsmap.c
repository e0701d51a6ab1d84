// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#define _GNU_SOURCE
#include <errno.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include "clock.h"
#include "jsmap.h"
#include "targetfs.h"
#include "targets.h"
#include "util.h"
#include "caches.h"

/* A perf map only grows: V8 never logs code that was freed, and a long-running service's map
 * reaches hundreds of MB. These bound what one process costs us; past them the oldest entries
 * go (the newest code is what runs now). */
#define MAX_ENTRIES (1U << 20)
#define MAX_NAME_BYTES (64U << 20)
/* Unread data beyond this at one refresh: skip to its last part, counted in `skipped`. */
#define MAX_BACKLOG (64U << 20)
/* Longer lines are skipped: V8 writes a name and a script path, not kilobytes. */
#define MAX_LINE 4096
#define READ_CHUNK (256U << 10)
#define RETRY_NS 1000000000ULL

struct code_entry {
	__u64 start, end;
	__u64 seq;   /* line number in the map: a later line for an address wins */
	__u32 str;   /* offset in names: "function\0file\0" (js) or "raw name\0" */
	__u32 bytes; /* of str, for the name budget */
	__s32 line, column;
	bool js, has_file;
	bool live; /* owns an address (set by the sweep) */
};

struct segment {
	__u64 start, end;
	__u32 entry;
};

struct pid_map {
	pid_t pid;
	char map_path[48];   /* as the process sees it: its pid in its own pid namespace */
	bool seen;	     /* the file was found once: identity below is valid */
	dev_t dev;
	ino_t ino;
	off_t offset;	     /* bytes consumed */
	bool skipping;	     /* offset is inside a line not kept: skip to its end */
	__u64 retry_ns;	     /* no map: look again after this */
	__u64 next_seq;
	struct code_entry *entries; /* sorted by (start, seq) */
	size_t nr_entries, entries_cap;
	struct segment *segments; /* sorted, disjoint: who owns each address */
	size_t nr_segments, segments_cap;
	char *names;
	size_t names_len, names_cap, names_live;
	__u64 skipped; /* lines not kept: malformed, too long, over the limits */
};

struct jsmap {
	void *pids; /* tsearch tree of struct pid_map */
};

/* ---- names ---------------------------------------------------------------------------- */

static const char *const js_kinds[] = { "JS:", "LazyCompile:", "Function:", "Script:", "Eval:" };

/* Where a script name may start, after the space that ends the function name: function names
 * contain spaces ("get total", computed keys), and so do script paths ("/srv/my app/x.js"). */
static bool script__starts(const char *text)
{
	static const char *const prefixes[] = { "/", "node:", "file:", "http:", "https:", "data:",
						"webpack:", "evalmachine.", "[", "." };
	size_t i;

	for (i = 0; i < ARRAY_SIZE(prefixes); i++)
		if (!strncmp(text, prefixes[i], strlen(prefixes[i])))
			return true;
	return false;
}

/* A trailing ":N" of text[0..*len): its value, and *len shortened past it; -1 if none. */
static int number__strip(const char *text, size_t *len)
{
	size_t end = *len, start = end;
	long value = 0;

	while (start > 0 && text[start - 1] >= '0' && text[start - 1] <= '9' && end - start < 9)
		start--;
	if (start == end || start == 0 || text[start - 1] != ':')
		return -1;
	for (size_t i = start; i < end; i++)
		value = value * 10 + (text[i] - '0');
	*len = start - 1;
	return (int)value;
}

/*
 * V8's CodeEventLogger names code "<kind>:<tier><function> <script>:<line>:<column>", tier ~
 * ignition, ^ sparkplug, + maglev, * turbofan (V8 11, Node 20: kinds JS: and Eval:; older V8s
 * wrote LazyCompile:, Function:, Script:, some without the column). An empty function is
 * anonymous; an empty script is eval'd code ("JS:~evald :1:15"). Other kinds (Builtin:, Stub:,
 * BytecodeHandler:, RegExp:, and other runtimes' maps) are not JavaScript functions.
 */
bool jsmap__parse_name(const char *name, char *buf, size_t size, const char **function,
		       const char **file, int *line, int *column)
{
	const char *rest = NULL, *split = NULL, *fn, *p;
	size_t i, len, fn_len, file_len;
	int last, first;

	*function = *file = NULL;
	*line = *column = -1;
	for (i = 0; i < ARRAY_SIZE(js_kinds) && !rest; i++)
		if (!strncmp(name, js_kinds[i], strlen(js_kinds[i])))
			rest = name + strlen(js_kinds[i]);
	if (!rest)
		return false;
	if (*rest && strchr("~^+*", *rest))
		rest++;
	len = strlen(rest);
	last = number__strip(rest, &len);
	first = last >= 0 ? number__strip(rest, &len) : -1;
	if (first >= 0) {
		*line = first;
		*column = last;
	} else {
		*line = last;
	}
	if (*line >= 0) {
		/* "function script": the first space followed by what starts a script name, or
		 * else the last space; a trailing space is an empty (eval) script. */
		for (p = rest; p < rest + len && !split; p++)
			if (*p == ' ' && (p + 1 == rest + len || script__starts(p + 1)))
				split = p;
		for (p = rest + len; p > rest && !split; p--)
			if (p[-1] == ' ')
				split = p - 1;
	}
	fn_len = split ? (size_t)(split - rest) : len;
	file_len = split ? len - fn_len - 1 : 0;
	fn = fn_len ? rest : "(anonymous)";
	fn_len = fn_len ? fn_len : strlen(fn);
	if (fn_len + file_len + 2 > size)
		return false;
	memcpy(buf, fn, fn_len);
	buf[fn_len] = '\0';
	*function = buf;
	if (file_len) {
		memcpy(buf + fn_len + 1, split + 1, file_len);
		buf[fn_len + 1 + file_len] = '\0';
		*file = buf + fn_len + 1;
	}
	return true;
}

/* ---- one process's map -------------------------------------------------------------------- */

static int pid_map__cmp(const void *a, const void *b)
{
	const struct pid_map *left = a, *right = b;

	return left->pid < right->pid ? -1 : left->pid > right->pid;
}

static void pid_map__reset(struct pid_map *pm)
{
	pm->offset = 0;
	pm->skipping = false;
	pm->nr_entries = pm->nr_segments = 0;
	pm->names_len = pm->names_live = 0;
	pm->seen = false;
}

CACHE_COUNT(pid_map_count, "perf_maps")

static void pid_map__free(void *ptr)
{
	struct pid_map *pm = ptr;

	cache_count__add(&pid_map_count, -1);
	free(pm->entries);
	free(pm->segments);
	free(pm->names);
	free(pm);
}

static struct pid_map *pid_map__new(pid_t pid)
{
	struct pid_map *pm = calloc(1, sizeof(*pm));
	pid_t nspid;

	if (!pm)
		return NULL;
	cache_count__add(&pid_map_count, 1);
	pm->pid = pid;
	/* Named by the pid the process knows itself by. */
	nspid = task__ns_tid(pid, pid, NULL);
	snprintf(pm->map_path, sizeof(pm->map_path), "/tmp/perf-%d.map", nspid ? nspid : pid);
	return pm;
}

static int names__add(struct pid_map *pm, const char *a, size_t a_len, const char *b,
		      size_t b_len, __u32 *offset)
{
	size_t need = a_len + 1 + (b ? b_len + 1 : 0);
	char *names;

	/* Live names stay under MAX_NAME_BYTES; dead ones are compacted away before the arena
	 * reaches twice that, so offsets fit in 32 bits. */
	names = array__grow(pm->names, &pm->names_cap, pm->names_len + need, 1, 1U << 16);
	if (!names)
		return -ENOMEM;
	pm->names = names;
	*offset = (__u32)pm->names_len;
	memcpy(pm->names + pm->names_len, a, a_len);
	pm->names[pm->names_len + a_len] = '\0';
	if (b) {
		memcpy(pm->names + pm->names_len + a_len + 1, b, b_len);
		pm->names[pm->names_len + need - 1] = '\0';
	}
	pm->names_len += need;
	return 0;
}

/* One "START SIZE name" line, without its newline. */
static int pid_map__add_line(struct pid_map *pm, char *line, size_t len)
{
	const char *function, *file;
	char *end, *name, parsed[MAX_LINE + 16];
	unsigned long long start, size;
	struct code_entry *entry;
	int err;

	line[len] = '\0';
	errno = 0;
	start = strtoull(line, &end, 16);
	if (errno || end == line || *end != ' ')
		return -EINVAL;
	name = end + 1;
	size = strtoull(name, &end, 16);
	if (errno || end == name || *end != ' ' || !size || start + size < start)
		return -EINVAL;
	name = end + 1;
	if (!*name)
		return -EINVAL;
	entry = array__grow(pm->entries, &pm->entries_cap, pm->nr_entries + 1, sizeof(*entry), 1024);
	if (!entry)
		return -ENOMEM;
	pm->entries = entry;
	entry = &pm->entries[pm->nr_entries];
	memset(entry, 0, sizeof(*entry));
	entry->start = start;
	entry->end = start + size;
	entry->seq = pm->next_seq++;
	entry->js = jsmap__parse_name(name, parsed, sizeof(parsed), &function, &file, &entry->line,
				      &entry->column);
	if (entry->js) {
		entry->has_file = file != NULL;
		err = names__add(pm, function, strlen(function), file ? file : "",
				 file ? strlen(file) : 0, &entry->str);
	} else {
		entry->line = entry->column = -1;
		err = names__add(pm, name, strlen(name), NULL, 0, &entry->str);
	}
	if (err)
		return err;
	entry->bytes = (__u32)(pm->names_len - entry->str);
	pm->names_live += entry->bytes;
	pm->nr_entries++;
	return 0;
}

static int entry__cmp_start(const void *a, const void *b)
{
	const struct code_entry *left = a, *right = b;

	if (left->start != right->start)
		return left->start < right->start ? -1 : 1;
	return left->seq < right->seq ? -1 : left->seq > right->seq;
}

static int entry__cmp_seq_desc(const void *a, const void *b)
{
	const struct code_entry *left = a, *right = b;

	return left->seq < right->seq ? 1 : left->seq > right->seq ? -1 : 0;
}

/* Max-heap of entry indices by seq: the newest entry covering the sweep position on top. */
struct heap {
	__u32 *items;
	size_t nr;
};

static void heap__push(struct heap *heap, const struct code_entry *entries, __u32 index)
{
	size_t i = heap->nr++, parent;

	while (i && entries[heap->items[parent = (i - 1) / 2]].seq < entries[index].seq) {
		heap->items[i] = heap->items[parent];
		i = parent;
	}
	heap->items[i] = index;
}

static void heap__pop(struct heap *heap, const struct code_entry *entries)
{
	__u32 last = heap->items[--heap->nr];
	size_t i = 0, child;

	while ((child = 2 * i + 1) < heap->nr) {
		if (child + 1 < heap->nr &&
		    entries[heap->items[child + 1]].seq > entries[heap->items[child]].seq)
			child++;
		if (entries[heap->items[child]].seq <= entries[last].seq)
			break;
		heap->items[i] = heap->items[child];
		i = child;
	}
	if (heap->nr)
		heap->items[i] = last;
}

static int segments__add(struct pid_map *pm, __u64 start, __u64 end, __u32 entry)
{
	struct segment *last = pm->nr_segments ? &pm->segments[pm->nr_segments - 1] : NULL;

	if (last && last->entry == entry && last->end == start) {
		last->end = end;
		return 0;
	}
	last = array__grow(pm->segments, &pm->segments_cap, pm->nr_segments + 1, sizeof(*last),
			   1024);
	if (!last)
		return -ENOMEM;
	pm->segments = last;
	pm->segments[pm->nr_segments++] = (struct segment){ start, end, entry };
	return 0;
}

/*
 * Who owns each address: the newest entry covering it. A sweep over the entries sorted by
 * start, with the entries covering the position in a max-heap by seq (ended ones dropped when
 * they surface). Entries owning no address are dead for good (newer lines cover them and later
 * ones only cover more): they are dropped.
 */
static int pid_map__sweep(struct pid_map *pm)
{
	struct code_entry *entries = pm->entries;
	struct heap heap = {};
	__u64 pos = 0, next;
	size_t i = 0, kept = 0;
	__u32 *renumber;
	int err = 0;

	pm->nr_segments = 0;
	if (!pm->nr_entries)
		return 0;
	heap.items = malloc(pm->nr_entries * sizeof(*heap.items));
	if (!heap.items)
		return -ENOMEM;
	for (i = 0; i < pm->nr_entries; i++)
		entries[i].live = false;
	pos = entries[0].start;
	i = 0;
	while (!err) {
		while (i < pm->nr_entries && entries[i].start <= pos)
			heap__push(&heap, entries, (__u32)i++);
		while (heap.nr && entries[heap.items[0]].end <= pos)
			heap__pop(&heap, entries);
		if (!heap.nr) {
			if (i == pm->nr_entries)
				break;
			pos = entries[i].start;
			continue;
		}
		next = entries[heap.items[0]].end;
		if (i < pm->nr_entries && entries[i].start < next)
			next = entries[i].start;
		entries[heap.items[0]].live = true;
		err = segments__add(pm, pos, next, heap.items[0]);
		pos = next;
	}
	free(heap.items);
	if (err)
		return err;
	/* Drop the dead, keeping the order; segments follow their entries' new places. */
	renumber = malloc(pm->nr_entries * sizeof(*renumber));
	if (!renumber)
		return -ENOMEM;
	pm->names_live = 0;
	for (i = 0; i < pm->nr_entries; i++) {
		if (!entries[i].live)
			continue;
		renumber[i] = (__u32)kept;
		pm->names_live += entries[i].bytes;
		entries[kept++] = entries[i];
	}
	for (i = 0; i < pm->nr_segments; i++)
		pm->segments[i].entry = renumber[pm->segments[i].entry];
	free(renumber);
	pm->nr_entries = kept;
	return 0;
}

/* Over a limit, only the newest entries that fit stay. */
static int pid_map__limit(struct pid_map *pm)
{
	struct code_entry *by_seq;
	size_t i, kept = 0, bytes = 0;
	__u64 oldest;

	if (pm->nr_entries <= MAX_ENTRIES && pm->names_live <= MAX_NAME_BYTES)
		return 0;
	by_seq = malloc(pm->nr_entries * sizeof(*by_seq));
	if (!by_seq)
		return -ENOMEM;
	memcpy(by_seq, pm->entries, pm->nr_entries * sizeof(*by_seq));
	qsort(by_seq, pm->nr_entries, sizeof(*by_seq), entry__cmp_seq_desc);
	for (i = 0; i < pm->nr_entries && i < MAX_ENTRIES; i++) {
		if (bytes + by_seq[i].bytes > MAX_NAME_BYTES)
			break;
		bytes += by_seq[i].bytes;
	}
	oldest = i ? by_seq[i - 1].seq : ~0ULL;
	free(by_seq);
	for (i = 0; i < pm->nr_entries; i++)
		if (pm->entries[i].seq >= oldest)
			pm->entries[kept++] = pm->entries[i];
		else
			pm->skipped++;
	pm->nr_entries = kept;
	return pid_map__sweep(pm);
}

/* Dead names take room until the arena is copied: when they outweigh the live ones. */
static int pid_map__compact_names(struct pid_map *pm)
{
	char *names;
	size_t i, len = 0;

	if (pm->names_len < (1U << 20) || pm->names_len < 2 * pm->names_live)
		return 0;
	names = malloc(pm->names_live ? pm->names_live : 1);
	if (!names)
		return -ENOMEM;
	for (i = 0; i < pm->nr_entries; i++) {
		memcpy(names + len, pm->names + pm->entries[i].str, pm->entries[i].bytes);
		pm->entries[i].str = (__u32)len;
		len += pm->entries[i].bytes;
	}
	free(pm->names);
	pm->names = names;
	pm->names_len = pm->names_cap = len;
	return 0;
}

/* The entries from `old` on are new, in file order: sort them, merge them into the rest. */
static int pid_map__merge(struct pid_map *pm, size_t old)
{
	size_t nr_new = pm->nr_entries - old, a = 0, b = 0, out = 0;
	struct code_entry *merged;

	if (!nr_new)
		return 0;
	qsort(pm->entries + old, nr_new, sizeof(*pm->entries), entry__cmp_start);
	if (old) {
		merged = malloc(pm->nr_entries * sizeof(*merged));
		if (!merged)
			return -ENOMEM;
		while (a < old || b < nr_new) {
			if (b == nr_new ||
			    (a < old && entry__cmp_start(&pm->entries[a], &pm->entries[old + b]) <= 0))
				merged[out++] = pm->entries[a++];
			else
				merged[out++] = pm->entries[old + b++];
		}
		memcpy(pm->entries, merged, out * sizeof(*merged));
		free(merged);
	}
	return pid_map__sweep(pm);
}

/* Complete lines of [offset, size): a torn last line (V8 mid-write) waits for the next time. */
static int pid_map__read(struct pid_map *pm, int fd, off_t size)
{
	char *buf, *line, *nl;
	size_t have = 0, used;
	ssize_t n;
	int err = 0;

	if (size - pm->offset > (off_t)MAX_BACKLOG) {
		/* Lines before the cut are lost; the first after it is partial, skipped below. */
		pm->offset = size - MAX_BACKLOG;
		pm->skipping = true;
		pm->skipped++;
	}
	buf = malloc(READ_CHUNK + MAX_LINE);
	if (!buf)
		return -ENOMEM;
	while (pm->offset + (off_t)have < size) {
		n = pread(fd, buf + have, READ_CHUNK, pm->offset + (off_t)have);
		if (n <= 0) {
			err = n < 0 ? -errno : 0;
			break;
		}
		have += (size_t)n;
		used = 0;
		while ((nl = memchr(buf + used, '\n', have - used))) {
			line = buf + used;
			used = (size_t)(nl - buf) + 1;
			if (pm->skipping) {
				pm->skipping = false;
				continue;
			}
			err = (size_t)(nl - line) > MAX_LINE ? -E2BIG :
				pid_map__add_line(pm, line, (size_t)(nl - line));
			if (err == -ENOMEM)
				break;
			pm->skipped += err != 0;
			err = 0;
		}
		if (err)
			break;
		pm->offset += (off_t)used;
		have -= used;
		memmove(buf, buf + used, have);
		if (have > MAX_LINE) {
			/* A line too long to keep: consume it up to its end, whenever that comes. */
			pm->offset += (off_t)have;
			have = 0;
			pm->skipping = true;
			pm->skipped++;
		}
	}
	free(buf);
	return err;
}

/* ---- interface ------------------------------------------------------------------------- */

struct jsmap *jsmap__new(void)
{
	return calloc(1, sizeof(struct jsmap));
}

void jsmap__free(struct jsmap *jsmap)
{
	if (!jsmap)
		return;
	tdestroy(jsmap->pids, pid_map__free);
	free(jsmap);
}

static struct pid_map *jsmap__pid(struct jsmap *jsmap, pid_t pid, bool create)
{
	struct pid_map key = { .pid = pid }, *pm, **node;

	node = tfind(&key, &jsmap->pids, pid_map__cmp);
	if (node || !create)
		return node ? *node : NULL;
	pm = pid_map__new(pid);
	if (!pm)
		return NULL;
	if (!tsearch(pm, &jsmap->pids, pid_map__cmp)) {
		pid_map__free(pm);
		return NULL;
	}
	return pm;
}

int jsmap__refresh(struct jsmap *jsmap, pid_t pid)
{
	struct pid_map *pm;
	struct stat st;
	size_t old;
	__u64 now = clock__ns();
	int fd, err;

	if (!jsmap)
		return -EINVAL;
	pm = jsmap__pid(jsmap, pid, true);
	if (!pm)
		return -ENOMEM;
	if (!pm->seen && now < pm->retry_ns)
		return -ENOENT;
	/* The target owns the file: it must not make us read another one (a symlink to a file
	 * only root may read, a FIFO), so it is opened as the process itself could. Only while it
	 * lives: once it has exited, what was read stays. */
	fd = targetfs__open(pm->pid, pm->map_path, &st);
	if (fd < 0) {
		/* Gone (exited, or deleted): what was read stays, for stalls still coming in. */
		pm->retry_ns = now + RETRY_NS;
		return pm->seen ? 0 : fd;
	}
	/* Another file (an exec'd V8 truncates with "w+"), or rewritten: start again. */
	if (pm->seen && (st.st_dev != pm->dev || st.st_ino != pm->ino || st.st_size < pm->offset))
		pid_map__reset(pm);
	pm->seen = true;
	pm->dev = st.st_dev;
	pm->ino = st.st_ino;
	old = pm->nr_entries;
	err = st.st_size > pm->offset ? pid_map__read(pm, fd, st.st_size) : 0;
	close(fd);
	if (!err)
		err = pid_map__merge(pm, old);
	if (!err)
		err = pid_map__limit(pm);
	if (!err)
		err = pid_map__compact_names(pm);
	if (err) /* no memory: forget it all rather than keep half-sorted entries */
		pid_map__reset(pm);
	return err;
}

int jsmap__lookup(struct jsmap *jsmap, pid_t pid, __u64 addr, struct jsmap_sym *out)
{
	struct pid_map *pm = jsmap ? jsmap__pid(jsmap, pid, false) : NULL;
	const struct code_entry *entry;
	size_t lo = 0, hi, mid;

	memset(out, 0, sizeof(*out));
	if (!pm || !pm->nr_segments)
		return -ENOENT;
	hi = pm->nr_segments;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (pm->segments[mid].start <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo || addr >= pm->segments[lo - 1].end)
		return -ENOENT;
	entry = &pm->entries[pm->segments[lo - 1].entry];
	out->js = entry->js;
	out->name = pm->names + entry->str;
	if (entry->js && entry->has_file)
		out->file = out->name + strlen(out->name) + 1;
	out->line = entry->line;
	out->column = entry->column;
	out->map_path = pm->map_path;
	out->offset = addr - entry->start;
	return 0;
}

void jsmap__forget_pid(struct jsmap *jsmap, pid_t pid)
{
	struct pid_map key = { .pid = pid }, **node, *pm;

	if (!jsmap)
		return;
	node = tfind(&key, &jsmap->pids, pid_map__cmp);
	if (!node)
		return;
	pm = *node;
	tdelete(&key, &jsmap->pids, pid_map__cmp);
	pid_map__free(pm);
}
