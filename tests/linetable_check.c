// SPDX-License-Identifier: GPL-2.0 OR BSD-3-Clause
/*
 * Decode every offset of a dump written by tests/check_linetable.sh with user/runtime/python/linetable.c
 * and compare with the line CPython itself gave. Dump lines:
 *   V <minor>                           once, first
 *   C <firstlineno> x<table hex> <label> a code object and its raw line table
 *   O <byte offset> <line or -1>        an offset of the code object above
 * Also counts which line-table forms the tables used, so a pass shows what it covered.
 *
 * usage: linetable_check DUMP
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../user/runtime/python/linetable.h"

#define MAX_REPORTED 20

struct coverage {
	unsigned long forms[16];	/* 3.11+: entries per location code */
	unsigned long no_line;		/* 3.10: -128 entries */
	unsigned long empty;		/* <= 3.10: pairs with a zero bytecode delta */
	unsigned long backwards;	/* <= 3.10: negative line deltas */
};

static int hex_nibble(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decodes hex in place; returns the byte count or -1. */
static long unhex(char *s, size_t n)
{
	size_t i;

	if (n % 2)
		return -1;
	for (i = 0; i < n; i += 2) {
		int hi = hex_nibble(s[i]), lo = hex_nibble(s[i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		s[i / 2] = (char)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

static void count_forms(struct coverage *cov, int minor, const unsigned char *t, size_t len)
{
	size_t i;

	if (minor >= 11) {
		for (i = 0; i < len; i++)
			if (t[i] & 128)
				cov->forms[(t[i] >> 3) & 15]++;
		return;
	}
	for (i = 0; i + 1 < len; i += 2) {
		cov->empty += t[i] == 0;
		cov->no_line += minor == 10 && t[i + 1] == 0x80;
		cov->backwards += (signed char)t[i + 1] < 0 && t[i + 1] != 0x80;
	}
}

int main(int argc, char **argv)
{
	unsigned long codes = 0, offsets = 0, no_line = 0, bad = 0, lineno = 0;
	struct coverage cov = {0};
	char *line = NULL, *table = NULL, label[256] = "";
	size_t cap = 0;
	long table_len = -1;
	int minor = -1, firstlineno = 0, i;
	FILE *f;

	if (argc != 2) {
		fprintf(stderr, "usage: %s DUMP\n", argv[0]);
		return 2;
	}
	f = fopen(argv[1], "r");
	if (!f) {
		fprintf(stderr, "linetable_check: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	while (getline(&line, &cap, f) > 0) {
		unsigned int off;
		int want, got, pos = 0;

		lineno++;
		line[strcspn(line, "\n")] = '\0';
		if (sscanf(line, "V %d", &minor) == 1)
			continue;
		if (sscanf(line, "C %d x%n", &firstlineno, &pos) == 1 && pos) {
			size_t n = strcspn(line + pos, " ");

			free(table);
			table = strndup(line + pos, n);
			table_len = table ? unhex(table, n) : -1;
			snprintf(label, sizeof(label), "%s", line + pos + n + (line[pos + n] == ' '));
			if (table_len < 0 || minor < 0)
				goto malformed;
			count_forms(&cov, minor, (unsigned char *)table, (size_t)table_len);
			codes++;
			continue;
		}
		if (sscanf(line, "O %u %d", &off, &want) != 2 || table_len < 0)
			goto malformed;
		got = linetable__line(minor, firstlineno, (unsigned char *)table, (size_t)table_len,
				      off);
		offsets++;
		no_line += want == -1;
		if (got != want && ++bad <= MAX_REPORTED)
			printf("MISMATCH 3.%d %s: offset %u: decoded %d, CPython %d\n", minor, label,
			       off, got, want);
	}
	free(line);
	free(table);
	fclose(f);

	printf("3.%d: %lu code objects, %lu offsets (%lu without a line), %lu mismatches\n",
	       minor, codes, offsets, no_line, bad);
	if (minor >= 11) {
		printf("  location entries by code:");
		for (i = 0; i < 16; i++)
			printf(" %d:%lu", i, cov.forms[i]);
		printf("\n");
	} else {
		printf("  pairs: %lu zero-length, %lu backwards, %lu no-line (-128)\n", cov.empty,
		       cov.backwards, cov.no_line);
	}
	return bad || !offsets;

malformed:
	fprintf(stderr, "linetable_check: %s:%lu: malformed line\n", argv[1], lineno);
	free(line);
	free(table);
	fclose(f);
	return 2;
}
