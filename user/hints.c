// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include "hints.h"
#include "loopstall.h"
#include "util.h"

#define PYTHON "python"
#define NODE "js"
#define REASON(r) (1u << (r))
#define BLOCKING (REASON(REASON_NET) | REASON(REASON_DISK) | REASON(REASON_OTHER) | \
		  REASON(REASON_LOCK) | REASON(REASON_SLEEP))
/* Where a loop waits for the network: the socket call itself, or CPython's poll() with a
 * timeout before it. */
#define NET_SYSCALLS "recv*|send*|read|write|readv|writev|connect|accept*|poll|ppoll|select|pselect6"
/* The interpreter's own code: on-CPU time there is Python code running. */
#define PYTHON_INTERPRETER "python*|libpython*"
/* What every program calls into (the clock, memcpy): the caller's module is the one that
 * computes. */
#define SYSTEM_MODULES "libc.so*|libc-*|[[]vdso]|ld-linux*|libm.so*|libpthread*"
/* A source line is the call: the first so many characters say which. */
#define CALL_MAX_CHARS 100

/*
 * First match wins: the specific (a framework, a library) before the generic (any sleep, any
 * socket). docs/hints.md gives each rule's reasoning and the source of its remedy.
 */
const struct hint_rule hint_rules[] = {
	{ .id = "py-background-task-async", .runtime = PYTHON,
	  .file = "*/starlette/background.py", .coroutine = true,
	  .text = "{function} ({where}) is an `async def` BackgroundTasks task that blocks the loop "
		  "({call}): declare it with plain `def`, so Starlette runs it in its threadpool" },
	{ .id = "py-subprocess", .runtime = PYTHON, .kind = HINT_OFF_CPU,
	  .file = "*/subprocess.py",
	  .text = "{call} in {function} ({where}) waits for a child process on the loop: use "
		  "`await asyncio.create_subprocess_exec(...)` and `await proc.communicate()`" },
	{ .id = "py-botocore", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/botocore/*|*/boto3/*",
	  .text = "{call} in {function} ({where}) is a synchronous AWS call (botocore): use "
		  "aiobotocore/aioboto3, or `await asyncio.to_thread(...)`" },
	{ .id = "py-requests", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/requests/*|*/urllib3/*",
	  .text = "{call} in {function} ({where}) is a synchronous HTTP request (requests/urllib3): "
		  "use an async client (httpx.AsyncClient, aiohttp), or "
		  "`await asyncio.to_thread(...)`" },
	{ .id = "py-urllib", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/http/client.py|*/urllib/request.py",
	  .text = "{call} in {function} ({where}) is a synchronous HTTP request (urllib/http.client): "
		  "use an async client (httpx.AsyncClient, aiohttp), or "
		  "`await asyncio.to_thread(...)`" },
	{ .id = "py-psycopg2", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/psycopg2/*", .module = "libpq.so*|_psycopg*.so",
	  .text = "{call} in {function} ({where}) is a synchronous PostgreSQL query (psycopg2): use "
		  "psycopg 3's AsyncConnection or asyncpg, or `await asyncio.to_thread(...)`" },
	{ .id = "py-mysql", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/pymysql/*|*/MySQLdb/*", .module = "libmysqlclient.so*|libmariadb.so*",
	  .text = "{call} in {function} ({where}) is a synchronous MySQL query: use aiomysql or "
		  "asyncmy, or `await asyncio.to_thread(...)`" },
	{ .id = "py-redis", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = BLOCKING,
	  .file = "*/redis/client.py|*/redis/connection.py|*/redis/commands/*",
	  .text = "{call} in {function} ({where}) is a synchronous Redis command (redis-py): use "
		  "`redis.asyncio` and await it" },
	{ .id = "py-queue", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = REASON(REASON_LOCK),
	  .file = "*/queue.py",
	  .text = "{call} in {function} ({where}) waits on a queue.Queue on the loop: use "
		  "asyncio.Queue between coroutines, or `await asyncio.to_thread(q.get)` to hand "
		  "results from threads" },
	{ .id = "py-thread-lock", .runtime = PYTHON, .kind = HINT_OFF_CPU,
	  .reasons = REASON(REASON_LOCK),
	  .text = "{call} in {function} ({where}) waits for a threading lock another thread holds: "
		  "never block on a thread's lock on the loop; use asyncio.Lock between coroutines, "
		  "or `await asyncio.to_thread(...)` for the locked section" },
	{ .id = "py-sleep-in-coroutine", .runtime = PYTHON, .kind = HINT_OFF_CPU,
	  .reasons = REASON(REASON_SLEEP), .coroutine = true,
	  .text = "{call} in {function} ({where}) sleeps on the loop: use `await asyncio.sleep(...)`; "
		  "a FastAPI route that must block can be a plain `def` (FastAPI runs it in its "
		  "threadpool)" },
	/* Not in a coroutine: a callback the loop runs (call_soon, call_later, a protocol's
	 * data_received) sleeps just the same. */
	{ .id = "py-sleep-in-callback", .runtime = PYTHON, .kind = HINT_OFF_CPU,
	  .reasons = REASON(REASON_SLEEP),
	  .text = "{call} in {function} ({where}) sleeps in a callback on the loop: schedule what "
		  "follows with `loop.call_later(delay, ...)` instead, or run the blocking part in a "
		  "thread (`loop.run_in_executor(None, ...)`)" },
	{ .id = "py-socket", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = REASON(REASON_NET),
	  .syscalls = NET_SYSCALLS,
	  .text = "{call} in {function} ({where}) waits on a blocking socket: use asyncio streams "
		  "(`await asyncio.open_connection(...)`) or the client's asyncio version, or "
		  "`await asyncio.to_thread(...)`" },
	{ .id = "py-file-io", .runtime = PYTHON, .kind = HINT_OFF_CPU, .reasons = REASON(REASON_DISK),
	  .text = "{call} in {function} ({where}) waits for file or disk I/O on the loop: "
		  "`await asyncio.to_thread(...)` it (or use aiofiles)" },
	{ .id = "py-gil-starvation", .runtime = PYTHON, .kind = HINT_OFF_CPU,
	  .reasons = REASON(REASON_GIL),
	  .text = "the loop waited for the GIL in {function} ({where}) while {holder} held it"
		  "{holder_frame}: "
		  "CPU-bound Python in a thread starves the loop; run that work in a process "
		  "(ProcessPoolExecutor), not a thread" },
	{ .id = "py-cpu-extension", .runtime = PYTHON, .kind = HINT_ON_CPU,
	  .not_innermost = PYTHON_INTERPRETER,
	  .text = "{call} in {function} ({where}) runs C code ({library}) on the loop: "
		  "`await asyncio.to_thread(...)` runs it in parallel if the library releases the GIL "
		  "(hashlib and zlib do on large buffers); if it holds the GIL, use a "
		  "ProcessPoolExecutor" },
	{ .id = "py-cpu-python", .runtime = PYTHON, .kind = HINT_ON_CPU,
	  .text = "{function} ({where}) runs Python code on the CPU for the whole stall: move it to "
		  "a ProcessPoolExecutor (`await loop.run_in_executor(pool, ...)`); a thread would "
		  "still hold the GIL the loop needs" },

	{ .id = "node-child-process-sync", .runtime = NODE,
	  .file = "node:child_process", .function = "execSync|execFileSync|spawnSync",
	  .text = "{call} in {function} ({where}) waits for a child process on the loop: use "
		  "child_process.execFile/spawn with a callback (or util.promisify)" },
	{ .id = "node-crypto-sync", .runtime = NODE,
	  .file = "node:internal/crypto/*|node:crypto",
	  .function = "pbkdf2Sync|scryptSync|randomBytes|randomFillSync|generateKeyPairSync|hkdfSync",
	  .text = "{call} in {function} ({where}) runs crypto on the loop: use the callback form "
		  "(crypto.pbkdf2, crypto.scrypt, crypto.randomBytes with a callback): it runs in "
		  "libuv's threadpool" },
	{ .id = "node-zlib-sync", .runtime = NODE,
	  .file = "node:zlib", .function = "*Sync|syncBufferWrapper|zlibBufferSync",
	  .text = "{call} in {function} ({where}) compresses on the loop: use the callback or stream "
		  "form (zlib.gzip, zlib.createGzip): it runs in libuv's threadpool" },
	{ .id = "node-fs-sync", .runtime = NODE,
	  .file = "node:fs|node:internal/fs/*", .function = "*Sync",
	  .text = "{call} in {function} ({where}) does file I/O on the loop: use fs.promises "
		  "(`await fs.promises.readFile(...)`) or the callback form" },
	{ .id = "node-json", .runtime = NODE, .kind = HINT_ON_CPU,
	  .file = "", .function = "parse|stringify",
	  .text = "JSON.{call} in {function} ({where}) of a large value holds the loop: cap the "
		  "body size, parse in a worker_thread, or use a streaming parser" },
	{ .id = "node-regexp", .runtime = NODE, .kind = HINT_ON_CPU,
	  .file = "", .function = "test|exec|match|matchAll|replace|replaceAll|search|split",
	  .symbol = "*RegExp*|*Irregexp*",
	  .text = "a regular expression ({call}) in {function} ({where}) backtracks on the loop: "
		  "rewrite it without nested quantifiers (catastrophic backtracking), bound the "
		  "input's length, or run it in a worker_thread" },
	{ .id = "node-atomics-wait", .runtime = NODE, .kind = HINT_OFF_CPU,
	  .reasons = REASON(REASON_LOCK), .syscalls = "futex",
	  .text = "{function} ({where}) waits in futex on the loop thread (Atomics.wait): use "
		  "`await Atomics.waitAsync(...).value` on the main thread" },
};

const int nr_hint_rules = ARRAY_SIZE(hint_rules);

/* Whether text matches one of pattern's '|'-separated globs; a NULL text is "". */
static bool pattern__match(const char *pattern, const char *text)
{
	char glob[256];
	const char *end;
	size_t len;

	if (!text)
		text = "";
	for (;;) {
		end = strchr(pattern, '|');
		len = end ? (size_t)(end - pattern) : strlen(pattern);
		if (len < sizeof(glob)) {
			memcpy(glob, pattern, len);
			glob[len] = '\0';
			if (!fnmatch(glob, text, 0))
				return true;
		}
		if (!end)
			return false;
		pattern = end + 1;
	}
}

static const char *path__base(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : path;
}

/* The frame the rule's library is seen in, or -1; nr_frames when only a native module or
 * symbol matched. */
static int rule__library(const struct hint_rule *rule, const struct hint_stack *stack)
{
	int i;

	if (rule->file || rule->function)
		for (i = 0; i < stack->nr_frames; i++)
			if ((!rule->file || pattern__match(rule->file, stack->frames[i].file)) &&
			    (!rule->function || pattern__match(rule->function, stack->frames[i].function)))
				return i;
	for (i = 0; rule->module && i < stack->nr_natives; i++)
		if (pattern__match(rule->module, path__base(stack->natives[i].module)))
			return stack->nr_frames;
	for (i = 0; rule->symbol && i < stack->nr_natives; i++)
		if (stack->natives[i].symbol && pattern__match(rule->symbol, stack->natives[i].symbol))
			return stack->nr_frames;
	return -1;
}

static bool stack__has_coroutine(const struct hint_stack *stack)
{
	int i;

	for (i = 0; i < stack->nr_frames; i++)
		if (stack->frames[i].coroutine)
			return true;
	return false;
}

/* The file name of the innermost native module that is not the system's, NULL if none. */
static const char *stack__innermost_module(const struct hint_stack *stack)
{
	const char *base;
	int i;

	for (i = 0; i < stack->nr_natives; i++) {
		base = path__base(stack->natives[i].module);
		if (!base)
			return NULL;
		if (!pattern__match(SYSTEM_MODULES, base))
			return base;
	}
	return NULL;
}

const struct hint_rule *hint__match(const struct hint_stack *stack)
{
	const struct hint_rule *rule;
	const char *native;
	int i;

	for (i = 0; i < nr_hint_rules; i++) {
		rule = &hint_rules[i];
		if (!stack->runtime || strcmp(rule->runtime, stack->runtime) || (rule->kind && rule->kind != stack->kind) ||
		    (rule->reasons && !(rule->reasons & REASON(stack->reason))) ||
		    (rule->syscalls && (!stack->syscall || !pattern__match(rule->syscalls, stack->syscall))))
			continue;
		if ((rule->file || rule->function || rule->module || rule->symbol) &&
		    rule__library(rule, stack) < 0)
			continue;
		if (rule->not_innermost && (!(native = stack__innermost_module(stack)) ||
					    pattern__match(rule->not_innermost, native)))
			continue;
		if (rule->coroutine && !stack__has_coroutine(stack))
			continue;
		return rule;
	}
	return NULL;
}

int hint__app_frame(const struct hint_stack *stack)
{
	int i;

	for (i = 0; i < stack->nr_frames; i++)
		if (stack->frames[i].in_app)
			return i;
	/* "<unknown>" (a freed code object), "<frozen ...>", "<string>": no file to change. */
	for (i = 0; i < stack->nr_frames; i++)
		if (stack->frames[i].file && stack->frames[i].file[0] && stack->frames[i].file[0] != '<')
			return i;
	return -1;
}

/* Length of a Python source line without its comment (a '#' outside string quotes) and the
 * blanks before it. */
static size_t source__code_len(const char *source)
{
	size_t len = 0, i;
	char quote = 0;

	for (i = 0; source[i]; i++) {
		if (quote && source[i] == '\\' && source[i + 1])
			i++;
		else if (quote && source[i] == quote)
			quote = 0;
		else if (!quote && (source[i] == '\'' || source[i] == '"'))
			quote = source[i];
		else if (!quote && source[i] == '#')
			break;
		if (source[i] != ' ' && source[i] != '\t')
			len = i + 1;
	}
	return len;
}

/* The concrete call: the application's source line; else the function it called (the frame
 * inside it); else the innermost frame; else the syscall. */
static void hint__call(const struct hint_stack *stack, int app, char *buf, size_t size)
{
	size_t len = stack->source ? source__code_len(stack->source) : 0;

	if (len)
		snprintf(buf, size, "`%.*s%s`", (int)(len < CALL_MAX_CHARS ? len : CALL_MAX_CHARS),
			 stack->source, len > CALL_MAX_CHARS ? "..." : "");
	else if (app > 0)
		snprintf(buf, size, "%s()", stack->frames[app - 1].function);
	else if (app < 0 && stack->nr_frames)
		snprintf(buf, size, "%s()", stack->frames[0].function);
	else if (stack->syscall)
		snprintf(buf, size, "%s()", stack->syscall);
	else
		snprintf(buf, size, "the call");
}

static void hint__running(const struct hint_frame *frame, char *buf, size_t size)
{
	if (frame->line > 0)
		snprintf(buf, size, ", running %s (%s:%d)", frame->function, frame->file ?: "?",
			 frame->line);
	else
		snprintf(buf, size, ", running %s (%s)", frame->function, frame->file ?: "?");
}

void hint__format(const struct hint_rule *rule, const struct hint_stack *stack, char *buf,
		  size_t size)
{
	int app = hint__app_frame(stack);
	const struct hint_frame *frame = app >= 0 ? &stack->frames[app] : NULL;
	char value[320];
	const char *text, *end;
	size_t len = 0, add;

	buf[0] = '\0';
	for (text = rule->text; *text && len + 1 < size; text = end) {
		end = NULL;
		value[0] = '\0';
		if (*text == '{')
			end = strchr(text, '}');
		if (!end) {
			end = strchr(text + 1, '{');
			if (!end)
				end = text + strlen(text);
			add = end - text;
			if (add > size - 1 - len)
				add = size - 1 - len;
			memcpy(buf + len, text, add);
			len += add;
			buf[len] = '\0';
			continue;
		}
		end++;
		if (!strncmp(text, "{function}", end - text))
			snprintf(value, sizeof(value), "%s", frame ? frame->function : "the loop's callback");
		else if (!strncmp(text, "{where}", end - text) && frame && frame->line > 0)
			snprintf(value, sizeof(value), "%s:%d", frame->file ? frame->file : "?", frame->line);
		else if (!strncmp(text, "{where}", end - text))
			snprintf(value, sizeof(value), "%s", frame && frame->file ? frame->file : "?");
		else if (!strncmp(text, "{call}", end - text))
			hint__call(stack, app, value, sizeof(value));
		else if (!strncmp(text, "{library}", end - text))
			snprintf(value, sizeof(value), "%s",
				 stack__innermost_module(stack) ?: "a native library");
		else if (!strncmp(text, "{holder}", end - text))
			snprintf(value, sizeof(value), "%s", stack->holder ? stack->holder : "another thread");
		else if (!strncmp(text, "{holder_frame}", end - text) && stack->holder_frame)
			hint__running(stack->holder_frame, value, sizeof(value));
		len += snprintf(buf + len, size - len, "%s", value);
		if (len >= size)
			len = size - 1;
	}
}
