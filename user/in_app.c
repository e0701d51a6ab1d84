// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include "in_app.h"

int in_app__python_stdlib(const char *module, int minor, char *buf, size_t size)
{
	const char *slash = module ? strrchr(module, '/') : NULL;
	size_t dir;

	/* <prefix>/bin/python3.X or <prefix>/lib/libpython3.X.so...: the prefix is two up. */
	if (!slash || slash == module)
		return -1;
	for (dir = slash - module; dir > 0 && module[dir - 1] != '/'; dir--)
		;
	if (!dir || (strncmp(module + dir, "bin/", 4) && strncmp(module + dir, "lib/", 4) &&
		     strncmp(module + dir, "lib64/", 6)))
		return -1;
	return snprintf(buf, size, "%.*slib/python3.%d/", (int)dir, module, minor) < (int)size ? 0 : -1;
}

bool in_app__python(const char *file, const char *stdlib)
{
	/* "<frozen importlib._bootstrap>", "<string>": the runtime's or generated code. */
	if (!file || file[0] != '/')
		return false;
	if (strstr(file, "/site-packages/") || strstr(file, "/dist-packages/"))
		return false;
	if (stdlib && stdlib[0])
		return strncmp(file, stdlib, strlen(stdlib)) != 0;
	/* Interpreter not known: its standard library is lib/python3.X under some prefix. */
	return fnmatch("*/lib/python3.[0-9]*/*", file, 0) != 0;
}

bool in_app__js(const char *file)
{
	return file && file[0] && strncmp(file, "node:", 5) && !strstr(file, "/node_modules/");
}

/* The path component after marker in file, NULL if there is none. */
static const char *path__after(const char *file, const char *marker)
{
	const char *at = strstr(file, marker);

	return at ? at + strlen(marker) : NULL;
}

void in_app__package(const char *file, char *buf, size_t size)
{
	const char *start, *end;

	if (!file || !file[0]) {
		snprintf(buf, size, "builtins");
		return;
	}
	if (file[0] == '<') { /* "<frozen importlib._bootstrap>", "<string>" */
		snprintf(buf, size, "%s", file);
		return;
	}
	if (!strncmp(file, "node:", 5)) {
		snprintf(buf, size, "node");
		return;
	}
	start = path__after(file, "/site-packages/");
	if (!start)
		start = path__after(file, "/dist-packages/");
	if (!start)
		start = path__after(file, "/node_modules/");
	if (!start && (start = strstr(file, "/lib/python3.")))
		start = strchr(start + strlen("/lib/python3."), '/');
	if (start && *start == '/')
		start++;
	if (!start) {
		/* The file's own directory. */
		end = strrchr(file, '/');
		for (start = end; start && start > file && start[-1] != '/'; start--)
			;
		if (!start || start == end)
			start = file;
	}
	/* A scoped npm package is two components (@scope/name). */
	end = strchr(start[0] == '@' && strchr(start, '/') ? strchr(start, '/') + 1 : start, '/');
	if (!end)
		end = start + strcspn(start, ".");
	snprintf(buf, size, "%.*s", (int)(end - start), start);
}
