// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for user/runtime/node/jsmap.c: the perf-map parser. /tmp/perf-PID.map is
 * written by the traced process, so every byte is hostile. The input is written as this
 * process's own perf map in two appends (byte 0 says where the first ends), each followed by a
 * refresh, the way V8 appends while loopstall reads; lookups at the addresses the input names
 * touch every string handed out. Seed: tests/fuzz/corpus/jsmap (perf maps node wrote).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsmap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile size_t sink;

static void jsmap__touch(struct jsmap *jsmap, __u64 addr)
{
	struct jsmap_sym sym;

	if (jsmap__lookup(jsmap, getpid(), addr, &sym))
		return;
	sink += strlen(sym.name) + (sym.file ? strlen(sym.file) : 0) + strlen(sym.map_path);
}

/* Look up the start, the middle and the byte past the end of every "START SIZE" line. */
static void jsmap__touch_all(struct jsmap *jsmap, const uint8_t *data, size_t size)
{
	char line[128];
	unsigned long long start, len;
	size_t i = 0, n;

	jsmap__touch(jsmap, 0);
	jsmap__touch(jsmap, ~0ULL);
	while (i < size) {
		for (n = 0; i + n < size && data[i + n] != '\n' && n < sizeof(line) - 1; n++)
			line[n] = (char)data[i + n];
		line[n] = '\0';
		i += n + 1;
		if (sscanf(line, "%llx %llx", &start, &len) == 2) {
			jsmap__touch(jsmap, start);
			jsmap__touch(jsmap, start + len / 2);
			jsmap__touch(jsmap, start + len);
		}
	}
}

static int file__append(const char *path, const uint8_t *data, size_t size, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | flags, 0600);
	ssize_t n = 0;

	if (fd < 0)
		return -1;
	while (size && n >= 0) {
		n = write(fd, data, size);
		if (n > 0) {
			data += n;
			size -= (size_t)n;
		}
	}
	close(fd);
	return n < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	struct jsmap *jsmap;
	size_t cut;

	if (!size)
		return 0;
	if (!path[0])
		snprintf(path, sizeof(path), "/tmp/perf-%d.map", getpid());
	cut = 1 + (size - 1) * data[0] / 255;
	jsmap = jsmap__new();
	if (!jsmap)
		return 0;
	if (!file__append(path, data + 1, cut - 1, O_TRUNC)) {
		jsmap__refresh(jsmap, getpid());
		jsmap__touch_all(jsmap, data + 1, cut - 1);
		if (!file__append(path, data + cut, size - cut, O_APPEND)) {
			jsmap__refresh(jsmap, getpid());
			jsmap__touch_all(jsmap, data + 1, size - 1);
		}
	}
	jsmap__free(jsmap);
	unlink(path);
	return 0;
}
