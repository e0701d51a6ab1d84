/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
#ifndef IN_APP_H
#define IN_APP_H

/*
 * Sentry's "in_app": a frame of the application's own code, not of the runtime's standard
 * library nor of an installed package. What a person changes to fix a stall is there.
 */
#include <stdbool.h>
#include <stddef.h>

/* The standard library directory of a CPython whose interpreter (executable or libpython) is at
 * module, e.g. /usr/bin/python3.11 -> /usr/lib/python3.11/: in buf, 0; -1 if not a CPython path.
 * The path is the process's own, so it holds inside containers too. */
int in_app__python_stdlib(const char *module, int minor, char *buf, size_t size);
/* stdlib: the process's standard library directory, "" when unknown. */
bool in_app__python(const char *file, const char *stdlib);
bool in_app__js(const char *file);
/* The package a frame's file belongs to, for a person: the installed package (site-packages,
 * dist-packages, node_modules), the standard library's module (asyncio), "node" for node's
 * internals, else the file's directory name. */
void in_app__package(const char *file, char *buf, size_t size);

#endif
