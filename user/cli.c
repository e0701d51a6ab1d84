// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <argp.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "loopstall.h"
#include "python_abi.h"

#define EXIT_USAGE 2
#define DEFAULT_THRESHOLD_MS 100.0
#define DEFAULT_SAMPLE_HZ 99
#define MAX_SAMPLE_HZ 10000
#define MAX_THRESHOLD_MS (3600.0 * 1000)
#define MAX_DURATION_S (365.0 * 86400)
#define DEFAULT_MAX_PROCESSES 1024
#define MAX_MAX_PROCESSES 65536
/* A stall record is ~360 bytes: 1 MiB holds ~2900 stalls between two reads. */
#define DEFAULT_RING_BUFFER_KB 1024
#define MAX_RING_BUFFER_KB (1024 * 1024)

const char *argp_program_version = "loopstall " LOOPSTALL_VERSION;
const char *argp_program_bug_address = "https://github.com/loopstall/loopstall/issues";

static const char doc[] =
	"Find event-loop stalls in live processes: every loop iteration that ran longer than the "
	"threshold, split into on-CPU, off-CPU and runqueue time, with the stacks where it went.\n"
	"\n"
	"USAGE: loopstall [OPTIONS] -p PID [-p PID ...]\n"
	"       loopstall [OPTIONS] -- COMMAND [ARGS...]\n"
	"\n"
	"EXAMPLES:\n"
	"  loopstall -p 4242                 report stalls of 100 ms or more in process 4242\n"
	"  loopstall -t 20 --json -p 4242    stalls of 20 ms or more, as JSON Lines\n"
	"  loopstall -- python3 app.py       start app.py and trace it from its first instruction\n"
	"  loopstall --loop-func /usr/lib/libuv.so.1:uv__io_poll -p 4242\n";

enum {
	OPT_SAMPLE_HZ = 0x100,
	OPT_POLL_SYSCALLS,
	OPT_LOOP_FUNC,
	OPT_JSON,
	OPT_PY_DEPTH,
	OPT_ALL,
	OPT_COMM,
	OPT_EXCLUDE_COMM,
	OPT_CGROUP,
	OPT_MAX_PROCESSES,
	OPT_PROMETHEUS,
	OPT_PER_THREAD,
	OPT_HISTOGRAM,
	OPT_TOP,
	OPT_ALL_FRAMES,
	OPT_FOLDED,
	OPT_NO_FOLLOW_FORKS,
	OPT_RING_BUFFER,
};

static const struct argp_option options[] = {
	{ "pid", 'p', "PID", 0, "Trace process PID (repeatable)", 0 },
	{ "threshold", 't', "MS", 0, "Report iterations busy for at least MS milliseconds (default 100)", 0 },
	{ "duration", 'd', "SECONDS", 0, "Stop after SECONDS", 0 },
	{ "sample-hz", OPT_SAMPLE_HZ, "HZ", 0, "On-CPU stack sampling frequency (default 99)", 0 },
	{ "py-depth", OPT_PY_DEPTH, "N", 0, "Python frames walked per stack (default 64, at most 128)", 0 },
	{ "poll-syscalls", OPT_POLL_SYSCALLS, "LIST", 0,
	  "Syscalls that bound an iteration: comma-separated epoll,poll,select (default epoll)", 0 },
	{ "loop-func", OPT_LOOP_FUNC, "BINARY:SYMBOL", 0,
	  "Bound iterations by a uprobe on this poll function instead of syscalls", 0 },
	{ "json", OPT_JSON, NULL, 0, "Write JSON Lines (see docs/json.md)", 0 },
	{ "all-frames", OPT_ALL_FRAMES, NULL, 0,
	  "Text output: print every frame (runs of library frames are summed up in one line)", 0 },
	{ "output", 'o', "FILE", 0, "Write reports to FILE instead of stdout", 0 },
	{ "ring-buffer", OPT_RING_BUFFER, "KB", 0,
	  "Event ring buffer size, a power of two >= 4 (default 1024)", 0 },
	{ "verbose", 'v', NULL, 0,
	  "Show libbpf's warnings and whether --all traces each process it finds polling; "
	  "twice (-vv): libbpf's debug messages too", 0 },
	{ NULL, 0, NULL, 0, "Fleet mode and export:", 1 },
	{ "all", OPT_ALL, NULL, 0, "Trace every process on the host that runs an event loop", 1 },
	{ "comm", OPT_COMM, "REGEX", 0, "--all: only processes whose name matches REGEX", 1 },
	{ "exclude-comm", OPT_EXCLUDE_COMM, "REGEX", 0, "--all: skip processes whose name matches", 1 },
	{ "cgroup", OPT_CGROUP, "PATH", 0, "--all: only processes in this cgroup v2 subtree", 1 },
	{ "max-processes", OPT_MAX_PROCESSES, "N", 0, "Track at most N processes (default 1024)", 1 },
	{ "prometheus", OPT_PROMETHEUS, "[ADDR:]PORT", 0,
	  "Serve /metrics for Prometheus (ADDR defaults to 127.0.0.1)", 1 },
	{ "per-thread", OPT_PER_THREAD, NULL, 0, "Also keep busy-time histograms per loop thread", 1 },
	{ "histogram", OPT_HISTOGRAM, "SECONDS", OPTION_ARG_OPTIONAL,
	  "Print busy-time histograms at exit, or every SECONDS", 1 },
	{ "top", OPT_TOP, "SECONDS", OPTION_ARG_OPTIONAL,
	  "Print the table of blocking sites (heaviest first) on stderr at exit, or every SECONDS",
	  1 },
	{ "folded", OPT_FOLDED, "FILE", 0, "Write stall stacks in folded format (flame graphs)", 1 },
	{ "no-follow-forks", OPT_NO_FOLLOW_FORKS, NULL, 0,
	  "Do not trace processes forked by the traced ones", 1 },
	{},
};

/* One line and exit 2: argp_error() would add a "Try --help" line under every message. */
static void __attribute__((noreturn, format(printf, 1, 2))) usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "loopstall: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(EXIT_USAGE);
}

static double parse_positive(const char *what, const char *arg,
			     double max)
{
	char *end;
	double value;

	errno = 0;
	value = strtod(arg, &end);
	if (errno || end == arg || *end || !isfinite(value) || value <= 0 || value > max)
		usage_error("invalid %s '%s': expected a number > 0 and <= %g", what, arg, max);
	return value;
}

/* A whole number from 1 to max, in decimal: "4.5" or "1e3" is no size. */
static unsigned int parse_count(const char *what, const char *arg, unsigned int max)
{
	unsigned long value;
	char *end;

	errno = 0;
	value = strtoul(arg, &end, 10);
	if (errno || !isdigit((unsigned char)*arg) || *end || value < 1 || value > max)
		usage_error("invalid %s '%s': expected a whole number from 1 to %u", what, arg, max);
	return (unsigned int)value;
}

static unsigned int parse_boundaries(const char *arg)
{
	unsigned int kinds = 0;
	char *list = strdup(arg), *save = NULL, *name;

	if (!list)
		usage_error("--poll-syscalls: out of memory");
	for (name = strtok_r(list, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
		if (!strcmp(name, "epoll"))
			kinds |= BOUNDARY_EPOLL;
		else if (!strcmp(name, "poll"))
			kinds |= BOUNDARY_POLL;
		else if (!strcmp(name, "select"))
			kinds |= BOUNDARY_SELECT;
		else {
			free(list);
			usage_error("invalid --poll-syscalls '%s': expected epoll, poll or select",
				   arg);
		}
	}
	free(list);
	if (!kinds)
		usage_error("invalid --poll-syscalls '%s': empty list", arg);
	return kinds;
}

static void parse_loop_func(struct config *config, char *arg)
{
	char *colon = strrchr(arg, ':');

	if (!colon || colon == arg || !colon[1])
		usage_error("invalid --loop-func '%s': expected BINARY:SYMBOL", arg);
	*colon = '\0';
	config->loop_func_binary = arg;
	config->loop_func_symbol = colon + 1;
}

static regex_t *compile_regex(const char *option, const char *pattern, regex_t *old)
{
	regex_t *regex = old ? old : malloc(sizeof(*regex));
	char why[128];
	int err;

	if (!regex)
		usage_error("%s '%s': %s", option, pattern, strerror(errno));
	if (old)
		regfree(old);
	err = regcomp(regex, pattern, REG_EXTENDED | REG_NOSUB);
	if (err) {
		regerror(err, regex, why, sizeof(why));
		usage_error("invalid %s '%s': %s", option, pattern, why);
	}
	return regex;
}

static pid_t parse_pid(const char *arg)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(arg, &end, 10);
	if (errno || end == arg || *end || pid <= 0 || pid > INT_MAX)
		usage_error("invalid pid '%s'", arg);
	return (pid_t)pid;
}

static error_t parse_arg(int key, char *arg, struct argp_state *state)
{
	struct config *config = state->input;

	switch (key) {
	case ARGP_KEY_INIT:
		/* getopt already said what is wrong with an unknown option, on one line; argp's
		 * "Try --help" line after it goes nowhere. */
		state->err_stream = fopen("/dev/null", "w");
		if (!state->err_stream)
			state->err_stream = stderr;
		break;
	case ARGP_KEY_FINI:
		if (state->err_stream != stderr)
			fclose(state->err_stream);
		state->err_stream = stderr;
		break;
	case 'p':
		if (config->nr_pids >= MAX_TARGET_PIDS)
			usage_error("too many -p (at most %d)", MAX_TARGET_PIDS);
		config->pids[config->nr_pids++] = parse_pid(arg);
		break;
	case 't':
		config->threshold_ms = parse_positive("threshold", arg, MAX_THRESHOLD_MS);
		break;
	case 'd':
		config->duration_s = parse_positive("duration", arg, MAX_DURATION_S);
		break;
	case OPT_SAMPLE_HZ:
		config->sample_hz = (unsigned int)parse_positive("sample rate", arg, MAX_SAMPLE_HZ);
		if (!config->sample_hz)
			usage_error("invalid sample rate '%s': expected at least 1 Hz", arg);
		break;
	case OPT_PY_DEPTH:
		config->py_depth = (unsigned int)parse_positive("Python depth", arg, MAX_PY_DEPTH);
		if (!config->py_depth)
			usage_error("invalid Python depth '%s': expected at least 1", arg);
		break;
	case OPT_POLL_SYSCALLS:
		config->boundary_kinds = parse_boundaries(arg);
		break;
	case OPT_LOOP_FUNC:
		parse_loop_func(config, arg);
		break;
	case OPT_JSON:
		config->json = true;
		break;
	case 'o':
		config->output_path = arg;
		break;
	case 'v':
		config->verbose++;
		break;
	case OPT_ALL:
		config->all = true;
		break;
	case OPT_COMM:
		config->comm_regex = compile_regex("--comm", arg, config->comm_regex);
		break;
	case OPT_EXCLUDE_COMM:
		config->exclude_comm_regex = compile_regex("--exclude-comm", arg,
							   config->exclude_comm_regex);
		break;
	case OPT_CGROUP:
		config->cgroup = arg;
		break;
	case OPT_MAX_PROCESSES:
		config->max_processes = (int)parse_positive("process limit", arg, MAX_MAX_PROCESSES);
		if (config->max_processes < 1)
			usage_error("invalid process limit '%s': expected at least 1", arg);
		break;
	case OPT_PROMETHEUS:
		config->prometheus = arg;
		break;
	case OPT_PER_THREAD:
		config->per_thread = true;
		break;
	case OPT_HISTOGRAM:
		config->histogram_interval_s = arg ? parse_positive("histogram interval", arg,
								   MAX_DURATION_S) : 0;
		break;
	case OPT_ALL_FRAMES:
		config->all_frames = true;
		break;
	case OPT_TOP:
		config->top_interval_s = arg ? parse_positive("top interval", arg, MAX_DURATION_S) : 0;
		break;
	case OPT_FOLDED:
		config->folded_path = arg;
		break;
	case OPT_RING_BUFFER:
		config->ring_buffer_kb = parse_count("ring buffer size", arg, MAX_RING_BUFFER_KB);
		/* The kernel wants a power-of-two number of pages. */
		if (config->ring_buffer_kb < 4 ||
		    (config->ring_buffer_kb & (config->ring_buffer_kb - 1)))
			usage_error("invalid ring buffer size '%s': expected a power of two >= 4 (KB)",
				    arg);
		break;
	case OPT_NO_FOLLOW_FORKS:
		config->no_follow_forks = true;
		break;
	case ARGP_KEY_ARGS:
		config->command = state->argv + state->next;
		break;
	case ARGP_KEY_ARG:
		return ARGP_ERR_UNKNOWN;
	case ARGP_KEY_END:
		if (!config->nr_pids && !config->command && !config->all)
			usage_error("nothing to trace: give -p PID, --all or -- COMMAND");
		if (!!config->nr_pids + !!config->command + config->all > 1)
			usage_error("give one of -p PID, --all or -- COMMAND");
		if (!config->all && (config->comm_regex || config->exclude_comm_regex || config->cgroup))
			usage_error("--comm, --exclude-comm and --cgroup filter --all");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

void cli__parse(int argc, char **argv, struct config *config)
{
	static const struct argp argp = {
		.options = options,
		.parser = parse_arg,
		.args_doc = NULL,
		.doc = doc,
	};

	memset(config, 0, sizeof(*config));
	/* getopt names the program by argv[0]: the name, not the path it was run by. */
	argv[0] = "loopstall";
	config->threshold_ms = DEFAULT_THRESHOLD_MS;
	config->sample_hz = DEFAULT_SAMPLE_HZ;
	config->py_depth = DEFAULT_PY_DEPTH;
	config->max_processes = DEFAULT_MAX_PROCESSES;
	config->ring_buffer_kb = DEFAULT_RING_BUFFER_KB;
	config->histogram_interval_s = -1;
	config->top_interval_s = -1;
	config->boundary_kinds = BOUNDARY_EPOLL;
	argp_err_exit_status = EXIT_USAGE;
	argp_parse(&argp, argc, argv, 0, NULL, config);
}

static void regex__free(regex_t *regex)
{
	if (!regex)
		return;
	regfree(regex);
	free(regex);
}

void cli__free(struct config *config)
{
	regex__free(config->comm_regex);
	regex__free(config->exclude_comm_regex);
	config->comm_regex = config->exclude_comm_regex = NULL;
}
