/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef CACHES_H
#define CACHES_H

/*
 * The number of entries in each of loopstall's userspace caches (code objects, symbol tables,
 * perf maps, ...), so that a long run can show they stay bounded: exported as
 * loopstall_cache_entries{cache="NAME"} and in the JSON run_summary's "caches". A module that
 * keeps a cache declares its count with CACHE_COUNT and moves it where it allocates and frees an
 * entry; the counts are atomic (the exporter thread reads them while the main thread works).
 */

struct cache_count {
	const char *name; /* the label value and JSON key */
	long entries;
	struct cache_count *next;
};

void caches__register(struct cache_count *count);
/* The counts, by name; NULL-terminated by next. */
const struct cache_count *caches__first(void);

#define CACHE_COUNT(var, label)                                                         \
	static struct cache_count var = { .name = label };                              \
	static void __attribute__((constructor)) var##__register(void)                 \
	{                                                                              \
		caches__register(&var);                                                \
	}

static inline void cache_count__add(struct cache_count *count, long delta)
{
	__atomic_add_fetch(&count->entries, delta, __ATOMIC_RELAXED);
}

static inline long cache_count__get(const struct cache_count *count)
{
	return __atomic_load_n(&count->entries, __ATOMIC_RELAXED);
}

#endif
