// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Each rule of user/hints.c on the stack of the mistake it is for (frames as loopstall reports
 * them for real targets: tests/test_reports.py makes the same mistakes end to end), the stacks
 * that must not match it, and docs/hints.md documenting every rule id (argv[1]: the doc).
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "../user/hints.h"
#include "loopstall.h"
#include "check.h"

#define APP "/srv/app.py"
#define LIB "/usr/lib/python3/dist-packages"
#define STDLIB "/usr/lib/python3.11"
#define PY_BIN "/usr/bin/python3.11"
#define NODE_BIN "/usr/bin/node"
#define MAX_FRAMES 8

struct hint_case {
	const char *name;
	struct hint_stack stack;
	struct hint_frame frames[MAX_FRAMES]; /* up to the first with no function */
	struct hint_native natives[MAX_FRAMES];
	const char *id;       /* NULL: no rule may match */
	const char *texts[3]; /* what the text must name */
};

#define OFF(reason_, syscall_) .kind = HINT_OFF_CPU, .reason = (reason_), .syscall = (syscall_)
#define APP_FRAME(fn, line_) { (fn), APP, (line_), true, false }
#define ROUTE(fn, line_) { (fn), APP, (line_), true, true }
#define LIB_FRAME(fn, file_) { (fn), (file_), 10, false, false }
#define NODE_APP(fn) { (fn), "/srv/server.js", 12, true, false }
#define NODE_LIB(fn, file_) { (fn), (file_), 5, false, false }
#define UVICORN { "RequestResponseCycle.run_asgi", LIB "/uvicorn/protocols/http/httptools_impl.py", \
		  401, false, true }

static struct hint_case cases[] = {
	{ "time.sleep in an async route",
	  { "python", OFF(REASON_SLEEP, "clock_nanosleep"), .source = "time.sleep(0.3)" },
	  { ROUTE("blocking_sleep", 42), UVICORN },
	  { { "/usr/lib/x86_64-linux-gnu/libc.so.6", "clock_nanosleep" } },
	  "py-sleep-in-coroutine", { "`time.sleep(0.3)`", "blocking_sleep (" APP ":42)",
				     "await asyncio.sleep" } },
	{ "time.sleep in a callback (no coroutine on the stack)",
	  { "python", OFF(REASON_SLEEP, "clock_nanosleep"), .source = "time.sleep(0.2)" },
	  { APP_FRAME("tick", 7), LIB_FRAME("Handle._run", STDLIB "/asyncio/events.py") }, {},
	  "py-sleep-in-callback", { "`time.sleep(0.2)`", "tick (" APP ":7)", "loop.call_later" } },
	{ "requests.get",
	  { "python", OFF(REASON_NET, "poll"), .source = "requests.get(URL, timeout=5)" },
	  { LIB_FRAME("SocketIO.readinto", STDLIB "/socket.py"),
	    LIB_FRAME("HTTPConnectionPool.urlopen", LIB "/urllib3/connectionpool.py"),
	    LIB_FRAME("get", LIB "/requests/api.py"), ROUTE("fetch_profile", 57), UVICORN },
	  {}, "py-requests", { "`requests.get(URL, timeout=5)`", "fetch_profile", "httpx.AsyncClient" } },
	{ "urllib.request.urlopen",
	  { "python", OFF(REASON_NET, "poll") },
	  { LIB_FRAME("SocketIO.readinto", STDLIB "/socket.py"),
	    LIB_FRAME("HTTPResponse.begin", STDLIB "/http/client.py"),
	    LIB_FRAME("urlopen", STDLIB "/urllib/request.py"), ROUTE("blocking_http", 60) },
	  {}, "py-urllib", { "urlopen()", "blocking_http (" APP ":60)", "to_thread" } },
	{ "boto3 over urllib3: botocore, not requests",
	  { "python", OFF(REASON_NET, "read") },
	  { LIB_FRAME("HTTPConnectionPool.urlopen", LIB "/urllib3/connectionpool.py"),
	    LIB_FRAME("Endpoint._send", LIB "/botocore/endpoint.py"),
	    LIB_FRAME("ClientCreator._create_api_method.<locals>._api_call", LIB "/botocore/client.py"),
	    ROUTE("upload", 12) },
	  {}, "py-botocore", { "_api_call()", "upload", "aiobotocore" } },
	{ "psycopg2: a C call, seen in the native modules",
	  { "python", OFF(REASON_NET, "poll") },
	  { ROUTE("list_orders", 30) },
	  { { "/usr/lib/x86_64-linux-gnu/libc.so.6", "poll" },
	    { "/usr/lib/x86_64-linux-gnu/libpq.so.5", "pqSocketCheck" } },
	  "py-psycopg2", { "list_orders", "AsyncConnection", "asyncpg" } },
	{ "pymysql",
	  { "python", OFF(REASON_NET, "recvfrom") },
	  { LIB_FRAME("Connection._read_bytes", LIB "/pymysql/connections.py"), ROUTE("users", 8) },
	  {}, "py-mysql", { "_read_bytes()", "aiomysql" } },
	{ "redis-py",
	  { "python", OFF(REASON_NET, "recvfrom") },
	  { LIB_FRAME("SocketBuffer._read_from_socket", LIB "/redis/connection.py"),
	    LIB_FRAME("Redis.execute_command", LIB "/redis/client.py"), ROUTE("cached", 9) },
	  {}, "py-redis", { "cached", "redis.asyncio" } },
	{ "a plain blocking socket (a redis-style client of its own)",
	  { "python", OFF(REASON_NET, "recvfrom"), .source = "reply = sock.recv(4096)" },
	  { APP_FRAME("KV.get", 20), ROUTE("lookup", 31) },
	  {}, "py-socket", { "`reply = sock.recv(4096)`", "KV.get (" APP ":20)", "open_connection" } },
	{ "file I/O",
	  { "python", OFF(REASON_DISK, "fsync"), .source = "os.fsync(f.fileno())" },
	  { ROUTE("save", 14) },
	  {}, "py-file-io", { "`os.fsync(f.fileno())`", "save", "to_thread" } },
	{ "threading.Lock held by a thread",
	  { "python", OFF(REASON_LOCK, "futex"), .source = "with STATE_LOCK:  # see 'notes' \"#1\"" },
	  { ROUTE("read_state", 77), UVICORN },
	  {}, "py-thread-lock", { "`with STATE_LOCK:`", "read_state", "asyncio.Lock" } },
	{ "queue.Queue.get",
	  { "python", OFF(REASON_LOCK, "futex") },
	  { LIB_FRAME("Condition.wait", STDLIB "/threading.py"),
	    LIB_FRAME("Queue.get", STDLIB "/queue.py"), ROUTE("next_job", 3) },
	  {}, "py-queue", { "Queue.get()", "next_job", "asyncio.Queue" } },
	{ "subprocess.run",
	  { "python", OFF(REASON_OTHER, "wait4"), .source = "subprocess.run([\"sleep\", \"0.3\"])" },
	  { LIB_FRAME("Popen._try_wait", STDLIB "/subprocess.py"),
	    LIB_FRAME("run", STDLIB "/subprocess.py"), ROUTE("convert", 21) },
	  {}, "py-subprocess", { "subprocess.run", "convert", "create_subprocess_exec" } },
	{ "subprocess.run of a sleeping child: its sleep is not the loop's",
	  { "python", OFF(REASON_SLEEP, "clock_nanosleep") },
	  { LIB_FRAME("run", STDLIB "/subprocess.py"), ROUTE("convert", 21) },
	  {}, "py-subprocess", { "run()" } },
	{ "async def BackgroundTasks task with time.sleep",
	  { "python", OFF(REASON_SLEEP, "clock_nanosleep"), .source = "time.sleep(0.3)" },
	  { ROUTE("send_report", 90),
	    { "BackgroundTask.__call__", LIB "/starlette/background.py", 28, false, true },
	    { "BackgroundTasks.__call__", LIB "/starlette/background.py", 43, false, true } },
	  {}, "py-background-task-async", { "send_report", "plain `def`", "`time.sleep(0.3)`" } },
	{ "GIL starvation by a spinning thread",
	  { "python", OFF(REASON_GIL, "futex"), .holder = "tid 4243 (spinner)" },
	  { ROUTE("handler", 5) },
	  {}, "py-gil-starvation", { "tid 4243 (spinner)", "handler", "ProcessPoolExecutor" } },
	{ "GIL starvation by a thread whose frame is known",
	  { "python", OFF(REASON_GIL, "futex"), .holder = "thread 1234 (spin_worker)",
	    .holder_frame = &(struct hint_frame){ "spin_forever", "/srv/worker.py", 42, true, false } },
	  { ROUTE("handler", 5) },
	  {}, "py-gil-starvation", { "while thread 1234 (spin_worker) held it, running spin_forever "
				     "(/srv/worker.py:42): ", "handler" } },
	{ "hashlib on a large buffer: C code on the CPU",
	  { "python", .kind = HINT_ON_CPU, .source = "hashlib.sha256(blob).hexdigest()" },
	  { ROUTE("checksum", 40) },
	  { { "/usr/lib/x86_64-linux-gnu/libcrypto.so.3", "sha256_block_data_order_avx2" },
	    { PY_BIN, "_PyEval_EvalFrameDefault" } },
	  "py-cpu-extension", { "libcrypto.so.3", "checksum", "`hashlib.sha256(blob).hexdigest()`" } },
	{ "a pure-Python loop",
	  { "python", .kind = HINT_ON_CPU, .source = "x = (x * 31 + 7) % 1000003" },
	  { ROUTE("blocking_cpu", 50) },
	  { { "[vdso]", "__vdso_clock_gettime" }, { PY_BIN, "_PyEval_EvalFrameDefault" } },
	  "py-cpu-python", { "blocking_cpu (" APP ":50)", "ProcessPoolExecutor" } },
	{ "a pure-Python loop sampled in libc, unwound no further",
	  { "python", .kind = HINT_ON_CPU },
	  { ROUTE("blocking_cpu", 50) },
	  { { "/usr/lib/x86_64-linux-gnu/libc.so.6", "__memmove_avx_unaligned_erms" } },
	  "py-cpu-python", {} },
	{ "a pure-Python loop in a shared libpython",
	  { "python", .kind = HINT_ON_CPU },
	  { ROUTE("blocking_cpu", 50) },
	  { { "/opt/python/lib/libpython3.12.so.1.0", "_PyEval_EvalFrameDefault" } },
	  "py-cpu-python", {} },

	{ "execSync",
	  { "js", OFF(REASON_OTHER, "epoll_wait") },
	  { NODE_LIB("spawn", NULL), NODE_LIB("spawnSync", "node:internal/child_process"),
	    NODE_LIB("spawnSync", "node:child_process"), NODE_LIB("execSync", "node:child_process"),
	    NODE_APP("handleExec") },
	  {}, "node-child-process-sync", { "execSync()", "handleExec", "execFile" } },
	{ "pbkdf2Sync",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_LIB("pbkdf2Sync", "node:internal/crypto/pbkdf2"), NODE_APP("hashPassword") },
	  {}, "node-crypto-sync", { "pbkdf2Sync()", "hashPassword", "crypto.pbkdf2" } },
	{ "zlib.gzipSync",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_LIB("processChunkSync", "node:zlib"), NODE_LIB("zlibBufferSync", "node:zlib"),
	    NODE_LIB("syncBufferWrapper", "node:zlib"), NODE_APP("compress") },
	  {}, "node-zlib-sync", { "compress", "zlib.gzip" } },
	{ "fs.readFileSync",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_LIB("readSync", "node:fs"), NODE_LIB("tryReadSync", "node:fs"),
	    NODE_LIB("readFileSync", "node:fs"), NODE_APP("readBig") },
	  {}, "node-fs-sync", { "readFileSync()", "readBig", "fs.promises" } },
	{ "JSON.parse",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_LIB("parse", NULL), NODE_APP("parseBody") },
	  { { NODE_BIN, "_ZN2v88internal17Builtin_JsonParseEiPmPNS0_7IsolateE" } },
	  "node-json", { "JSON.parse()", "parseBody", "worker_thread" } },
	{ "a catastrophic regular expression",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_LIB("test", NULL), NODE_APP("matchRegex") },
	  { { NODE_BIN, "_ZN2v88internal19IrregexpInterpreter13MatchInternal" } },
	  "node-regexp", { "test()", "matchRegex", "backtrack" } },
	{ "Atomics.wait on the main thread",
	  { "js", OFF(REASON_LOCK, "futex") },
	  { NODE_APP("waitForWorker") },
	  {}, "node-atomics-wait", { "waitForWorker", "Atomics.waitAsync" } },
	{ "no application frame: the innermost frame with a real file is named, not a freed one",
	  { "python", .kind = HINT_ON_CPU },
	  { { "<freed code object>", "<unknown>", -1, false, false },
	    LIB_FRAME("Session.request", LIB "/requests/sessions.py") },
	  { { PY_BIN, "_PyEval_EvalFrameDefault" } },
	  "py-cpu-python", { "Session.request (" LIB "/requests/sessions.py:10)" } },
	{ "a JavaScript loop: no rule (no library call to change)",
	  { "js", .kind = HINT_ON_CPU },
	  { NODE_APP("spinFor") }, {}, NULL, {} },
	{ "a builtin named parse under Python is C code, never a Node rule",
	  { "python", .kind = HINT_ON_CPU },
	  { LIB_FRAME("parse", NULL) }, { { NODE_BIN, NULL } }, "py-cpu-extension", {} },
};

static void case__check(struct hint_case *c)
{
	const struct hint_rule *rule;
	char text[512];
	int i;

	for (c->stack.nr_frames = 0; c->stack.nr_frames < MAX_FRAMES &&
	     c->frames[c->stack.nr_frames].function; c->stack.nr_frames++)
		;
	for (c->stack.nr_natives = 0; c->stack.nr_natives < MAX_FRAMES &&
	     c->natives[c->stack.nr_natives].module; c->stack.nr_natives++)
		;
	c->stack.frames = c->frames;
	c->stack.natives = c->natives;
	rule = hint__match(&c->stack);
	if (!c->id) {
		CHECK(!rule, "%s: matched %s, expected no rule", c->name, rule ? rule->id : "");
		return;
	}
	CHECK(rule && !strcmp(rule->id, c->id), "%s: matched %s, expected %s", c->name,
	      rule ? rule->id : "no rule", c->id);
	if (!rule)
		return;
	hint__format(rule, &c->stack, text, sizeof(text));
	for (i = 0; i < 3 && c->texts[i]; i++)
		CHECK(strstr(text, c->texts[i]), "%s: text lacks \"%s\": %s", c->name, c->texts[i], text);
	CHECK(!strchr(text, '{'), "%s: unexpanded template: %s", c->name, text);
}

/* Every rule has a case here and a section in the docs. */
static void rules__check_covered(const char *doc_path)
{
	char doc[65536], heading[128];
	size_t len = 0;
	FILE *file = doc_path ? fopen(doc_path, "r") : NULL;
	int i, j;

	if (file) {
		len = fread(doc, 1, sizeof(doc) - 1, file);
		fclose(file);
	}
	doc[len] = '\0';
	CHECK(len, "cannot read the rules' documentation (argv[1]: docs/hints.md)");
	for (i = 0; i < nr_hint_rules; i++) {
		for (j = 0; j < (int)(sizeof(cases) / sizeof(cases[0])); j++)
			if (cases[j].id && !strcmp(cases[j].id, hint_rules[i].id))
				break;
		CHECK(j < (int)(sizeof(cases) / sizeof(cases[0])), "rule %s has no test case",
		      hint_rules[i].id);
		snprintf(heading, sizeof(heading), "### `%s`", hint_rules[i].id);
		CHECK(!len || strstr(doc, heading), "rule %s is not documented (%s)", hint_rules[i].id,
		      heading);
		for (j = 0; j < i; j++)
			CHECK(strcmp(hint_rules[i].id, hint_rules[j].id), "rule id %s twice",
			      hint_rules[i].id);
	}
}

/* A template cut at the buffer's end stays terminated. */
static void format__check_bounds(void)
{
	char small[16];

	cases[0].stack.frames = cases[0].frames;
	hint__format(&hint_rules[0], &cases[0].stack, small, sizeof(small));
	CHECK(strlen(small) == sizeof(small) - 1, "cut text is %zu bytes", strlen(small));
}

int main(int argc, char **argv)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		case__check(&cases[i]);
	rules__check_covered(argc > 1 ? argv[1] : NULL);
	format__check_bounds();
	return check__exit("hints");
}
