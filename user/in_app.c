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
