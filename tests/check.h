/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* What the C tests share: failed checks counted rather than fatal, ctest's skip code, the pyenv
 * root, and their child interpreters. Header-only: each test is one executable. */
#ifndef TESTS_CHECK_H
#define TESTS_CHECK_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>

/* ctest's SKIP_RETURN_CODE (CMakeLists.txt). */
#define SKIP 77

static int failures;

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			failures++;                                               \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);     \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
		}                                                                 \
	} while (0)

/*
 * A part of a test that cannot run: "SKIP <why>". A skip is only for a prerequisite that is not
 * installed; when it is (installed: the test's own design failed, e.g. a library it needs
 * unloaded is loaded already), or in CI (CI=true, set by .ci/run), it is a failure.
 */
static inline bool check__in_ci(void)
{
	const char *ci = getenv("CI");

	return ci && !strcmp(ci, "true");
}

/* The exit code of a whole test that cannot run: ctest's skip, a failure in CI. */
static inline int check__skip_code(void)
{
	return check__in_ci() ? 1 : SKIP;
}

static inline void __attribute__((format(printf, 2, 3))) check__skip(bool installed,
								     const char *fmt, ...)
{
	va_list ap;

	printf("SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (installed || check__in_ci()) {
		failures++;
		fprintf(stderr, "FAIL: skipped %s\n",
			installed ? "although its prerequisite is installed" : "in CI (CI=true)");
	}
}

/* The exit code of a test named name, after one line saying how it went. */
static inline int check__exit(const char *name)
{
	if (failures) {
		fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
		return 1;
	}
	printf("%s: all checks passed\n", name);
	return 0;
}

/* $PYENV_ROOT, else ~/.pyenv (root's when HOME is unset). */
static inline void pyenv__root(char *root, size_t size)
{
	const char *env = getenv("PYENV_ROOT"), *home = getenv("HOME");

	if (env && *env)
		snprintf(root, size, "%s", env);
	else
		snprintf(root, size, "%s/.pyenv", home && *home ? home : "/root");
}

static inline void child__kill(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

#endif /* TESTS_CHECK_H */
