"""Plumbing for the end-to-end tests: start targets and loopstall, read what they say.

Every wait here is bounded (TIMEOUT_S by default) so a broken binary fails a test, never hangs
the suite. Times are CLOCK_MONOTONIC (time.monotonic()), the clock the targets report in too.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

from container import Container

REPO = Path(__file__).resolve().parent.parent
TARGETS = Path(__file__).resolve().parent / "targets"
LOOPSTALL = os.environ.get("LOOPSTALL", str(REPO / "build" / "loopstall"))
DEBIAN_PYTHON = "/usr/bin/python3"
# In CI (.ci/run exports CI=true) a test whose prerequisite is missing fails instead of being
# skipped (conftest.py): a machine that lost pyenv or node must not turn the suite green.
CI = os.environ.get("CI") == "true"
MISSING = "missing prerequisite: "


def missing(what):
    """The skip reason for a test that cannot run because `what` is not installed."""
    return MISSING + what

# A sanitized loopstall (tools/test's second pass, build-asan) starts and stops a few times
# slower: that pass sets LOOPSTALL_TIMEOUT_SCALE to stretch the harness's own waits. Waits that
# are the thing a test asserts ("exits within 5 s") are never scaled.
TIMEOUT_SCALE = float(os.environ.get("LOOPSTALL_TIMEOUT_SCALE") or 1.0)
TIMEOUT_S = 60.0 * TIMEOUT_SCALE  # attach, target start, exit: generous for a loaded 2-core machine
STOP_TIMEOUT_S = 30.0 * TIMEOUT_SCALE

# What AddressSanitizer, LeakSanitizer and UndefinedBehaviorSanitizer print on stderr. A report
# fails the test even when the test does not look at the exit code (abort_on_error makes it
# SIGABRT) or at stderr: see Loopstall.finish() and sanitizer_report().
SANITIZER_REPORT = re.compile(
    r"^.*(?:==\d+==ERROR: \w+Sanitizer|\w+Sanitizer:DEADLYSIGNAL|Sanitizer has encountered a"
    r" fatal error|: runtime error: |SUMMARY: \w+Sanitizer)", re.M)


def sanitizer_report(stderr):
    """The sanitizer report in a stderr text (from its first line), or None."""
    m = SANITIZER_REPORT.search(stderr or "")
    return stderr[m.start():] if m else None


def check_no_sanitizer_report(stderr, what="loopstall"):
    report = sanitizer_report(stderr)
    if report:
        raise AssertionError("%s: sanitizer report on stderr:\n%s" % (what, report))


class LineReader(threading.Thread):
    """Reads a pipe line by line in the background, stamping each line's arrival time."""

    def __init__(self, stream, name):
        super().__init__(name=name, daemon=True)
        self.stream = stream
        self.lines = []  # [(monotonic arrival, text)]
        self.eof = False
        self.cond = threading.Condition()
        self.start()

    def run(self):
        for raw in iter(self.stream.readline, b""):
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))
                self.cond.notify_all()
        with self.cond:
            self.eof = True
            self.cond.notify_all()

    def wait_for(self, pred, timeout):
        """The first line (text) for which pred(text) is true, or None on timeout/EOF."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self.cond:
            while True:
                for _, text in self.lines[seen:]:
                    if pred(text):
                        return text
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self.eof or left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    def text(self):
        with self.cond:
            return "\n".join(t for _, t in self.lines)

    def join_eof(self, timeout):
        self.join(timeout)


def wait_until(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None


class Target:
    """One target program from tests/targets/, driven through its control directory.

    In attach mode the test starts it (start()); in launch mode loopstall starts it and the test
    only uses the control directory (ctl_only()).
    """

    def __init__(self, ctl_dir, python, script, args):
        self.ctl = Path(ctl_dir)
        self.ctl.mkdir(parents=True, exist_ok=True)
        self.argv = [python, str(TARGETS / script), "--ctl", str(self.ctl)] + [str(a) for a in args]
        self.proc = None
        self.info = None

    def start(self):
        self.out = open(self.ctl / "target.out", "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.out,
                                     stderr=subprocess.STDOUT)
        return self

    def output(self):
        try:
            return (self.ctl / "target.out").read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=TIMEOUT_S):
        def ready():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("target exited (%s) before it was ready:\n%s"
                                     % (self.proc.returncode, self.output()))
            try:
                return json.loads((self.ctl / "ready").read_text())
            except (OSError, ValueError):
                return None
        self.info = wait_until(ready, timeout, "target %s to be ready" % self.argv[1])
        return self.info

    @property
    def pid(self):
        return self.info["pid"]

    def reports(self):
        try:
            text = (self.ctl / "report.jsonl").read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def trigger(self, timeout=TIMEOUT_S):
        """Ask for one action and wait until the target reports it done; returns the report."""
        n = len(self.reports()) + 1
        (self.ctl / "go").touch()

        def done():
            if self.proc is not None and self.proc.poll() is not None and len(self.reports()) < n:
                raise AssertionError("target exited (%s) during action %d:\n%s"
                                     % (self.proc.returncode, n, self.output()))
            reports = self.reports()
            return reports[n - 1] if len(reports) >= n else None
        return wait_until(done, timeout, "target to report action %d" % n)

    def host_tid(self, tid):
        """Our id of a thread the target names (in loop_tids, its reports): the same here."""
        return tid

    def record_tids(self):
        """Remember the tids of threads that host_tid() may be asked about once they exited."""

    def wait_exit(self, timeout=TIMEOUT_S):
        if self.proc is not None:
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError("target %s did not exit within %.0f s"
                                     % (self.argv[1], timeout)) from None
        wait_until(lambda: not self.alive(), timeout, "target pid %d to exit" % self.pid)
        return None

    def alive(self):
        if self.info is None:
            return False
        cmdline = proc_cmdline(self.pid)
        return cmdline is not None and str(self.ctl) in cmdline

    def kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(10)
        elif self.alive():  # started by loopstall (launch mode) and left behind
            os.kill(self.pid, signal.SIGKILL)


class ContainerTarget(Target):
    """A target from tests/targets/ in a container of its own (tests/container.py).

    Its scripts are copied to /srv/targets inside, its control directory is bound at the same
    path, and `pid` is the process's pid on the host (what loopstall attaches to), while what
    it writes to the control directory (pid, loop_tids) is in its own PID namespace.
    """

    INSIDE = "/srv/targets"

    def __init__(self, ctl_dir, python, script, args, root, kind="overlay", files=None,
                 flags=()):
        super().__init__(ctl_dir, python, script, args)
        self.argv[1:2] = [str(f) for f in flags] + ["%s/%s" % (self.INSIDE, script)]
        self.container = Container(root, self.argv, files=dict(files or {}, **{
            self.INSIDE: TARGETS}), binds=[self.ctl], kind=kind)

    def start(self):
        self.out = open(self.ctl / "target.out", "wb")
        self.container.stdout = self.out
        self.container.start()
        self.proc = self.container.proc
        return self

    def launch_command(self):
        """What loopstall's launch mode runs (`loopstall -- COMMAND`) to start this target;
        then launched_by(loopstall's pid)."""
        return self.container.launch_command()

    def launched_by(self, pid):
        self.container.launched_by(pid)
        return self

    @property
    def pid(self):
        return self.container.pid

    def alive(self):
        return self.container.poll() is None

    def host_tid(self, tid):
        return self.container.host_tid(tid)

    def record_tids(self):
        self.container.record_tids()

    def kill(self):
        self.container.kill()


class Loopstall:
    """One run of the loopstall binary."""

    def __init__(self, args, output=None, prefix=()):
        self.argv = list(prefix) + [LOOPSTALL] + [str(a) for a in args]
        self.output = Path(output) if output else None
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.stdout = LineReader(self.proc.stdout, "loopstall-stdout")
        self.stderr = LineReader(self.proc.stderr, "loopstall-stderr")
        self.returncode = None

    def describe(self):
        return ("command: %s\nexit: %s\nstderr:\n%s\nstdout (last 20 lines):\n%s"
                % (" ".join(self.argv), self.proc.poll(), self.stderr.text(),
                   "\n".join(self.stdout.text().splitlines()[-20:])))

    def wait_tracing(self, timeout=TIMEOUT_S):
        line = self.stderr.wait_for(lambda t: t.startswith("loopstall: tracing"), timeout)
        if line is None:
            raise AssertionError("no 'loopstall: tracing' line within %.0f s\n%s"
                                 % (timeout, self.describe()))
        return line

    def wait_exit(self, timeout=STOP_TIMEOUT_S):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError("loopstall did not exit within %.0f s\n%s"
                                 % (timeout, self.describe())) from None
        self.stdout.join_eof(10)
        self.stderr.join_eof(10)
        return self.returncode

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGINT, as a user's Ctrl-C; loopstall must print its summaries and exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def finish(self, timeout=STOP_TIMEOUT_S):
        """End a run the test left running with one SIGINT, not SIGKILL, so that a sanitized
        build gets to its exit-time checks (LeakSanitizer); SIGKILL only if it does not stop.
        The exit code is not checked here: the test said what it expects, this is cleanup."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.stdout.join_eof(10)
        self.stderr.join_eof(10)

    def sanitizer_report(self):
        return sanitizer_report(self.stderr.text())

    def events(self):
        """Parsed JSON events, each with '_arrival' (monotonic) when read from stdout."""
        if self.output is not None:
            text = self.output.read_text() if self.output.exists() else ""
            stamped = [(None, t) for t in text.splitlines()]
        else:
            with self.stdout.cond:
                stamped = list(self.stdout.lines)
        events = []
        for arrival, text in stamped:
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError:
                raise AssertionError("not a JSON line in loopstall output: %r\n%s"
                                     % (text, self.describe()))
            assert isinstance(event, dict) and "event" in event, text
            event["_arrival"] = arrival
            events.append(event)
        return events

    def of_kind(self, kind, pid=None):
        return [e for e in self.events()
                if e["event"] == kind and (pid is None or e.get("pid") == pid)]


def run_loopstall(args, timeout=15.0, prefix=()):
    """Run loopstall to completion (error cases); returns CompletedProcess with text output."""
    timeout *= TIMEOUT_SCALE
    try:
        result = subprocess.run(list(prefix) + [LOOPSTALL] + [str(a) for a in args],
                                stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        check_no_sanitizer_report(result.stderr, "loopstall %s" % " ".join(map(str, args)))
        return result
    except subprocess.TimeoutExpired as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise AssertionError("loopstall %s did not exit within %.0f s; stderr:\n%s"
                             % (" ".join(map(str, args)), timeout, stderr or "")) from None


# --- checks on event values --------------------------------------------------------------

STALL_FIELDS = {"time": str, "pid": int, "tid": int, "comm": str, "duration_ms": (int, float),
                "on_cpu_ms": (int, float), "off_cpu_ms": (int, float),
                "runqueue_ms": (int, float), "stacks": list}


def check_stall_shape(ev):
    """The docs/json.md contract for one stall / stall_progress event."""
    for field, typ in STALL_FIELDS.items():
        assert field in ev, "%s event without %r: %s" % (ev["event"], field, ev)
        assert isinstance(ev[field], typ) and not isinstance(ev[field], bool), (field, ev)
    assert ev["time"].endswith("Z") and "T" in ev["time"], ev["time"]
    parts = ev["on_cpu_ms"] + ev["off_cpu_ms"] + ev["runqueue_ms"]
    assert abs(parts - ev["duration_ms"]) <= max(1.0, 0.02 * ev["duration_ms"]), (
        "on_cpu_ms + off_cpu_ms + runqueue_ms = %.3f != duration_ms %.3f" % (
            parts, ev["duration_ms"]))
    ms = [s["ms"] for s in ev["stacks"]]
    assert ms == sorted(ms, reverse=True), "stacks not sorted by ms descending: %s" % ms
    on_cpu_stacks = sum(s["ms"] for s in ev["stacks"] if s["kind"] == "on_cpu")
    # Each ms is rounded to 3 decimals.
    assert on_cpu_stacks <= ev["on_cpu_ms"] + 0.001 * len(ev["stacks"]), (
        "on-CPU stacks claim %.3f ms of a stall's %.3f ms on a CPU" % (
            on_cpu_stacks, ev["on_cpu_ms"]))
    for s in ev["stacks"]:
        assert s["kind"] in ("off_cpu", "on_cpu"), s
        assert isinstance(s.get("kernel"), list) and isinstance(s.get("user"), list), s
        if s["kind"] == "off_cpu":
            assert s.get("reason") in ("sleep", "net", "disk", "lock", "gil", "other"), s


def starved(ev, threshold_ms=100.0):
    """A stall the scheduler made: without its runqueue time it would not reach the threshold.

    On an overloaded machine (2 cores and a parallel build) a healthy loop can wait hundreds of
    milliseconds for a CPU. loopstall is right to report that, but the test target did not
    cause it, so counts of the stalls a test triggered leave these out (with a warning).
    runqueue_ms is the growth of the thread's own schedstat run delay (tests/test_split.py
    holds it to that), so only a delay the scheduler really imposed is subtracted.
    """
    return ev["duration_ms"] - ev["runqueue_ms"] < threshold_ms


def caused_stalls(run, pid=None, threshold_ms=100.0):
    """The stall events of pid that were not starved(); warns about the others."""
    stalls = run.of_kind("stall", pid)
    ignored = [ev for ev in stalls if starved(ev, threshold_ms)]
    if ignored:
        warnings.warn("ignored %d stall(s) spent mostly in the runqueue (machine overloaded): %s"
                      % (len(ignored), "; ".join(brief(ev) for ev in ignored)))
    for ev in ignored:
        check_stall_shape(ev)
    return [ev for ev in stalls if not starved(ev, threshold_ms)]


def check_lasted(ev, low_ms, high_ms):
    """The stall lasted low_ms to high_ms, plus however long its thread waited for a CPU: on a
    shared, loaded machine that runqueue time is the machine's doing, not the target's, and
    loopstall measures it (tests/test_split.py holds runqueue_ms to the scheduler's count)."""
    assert low_ms <= ev["duration_ms"] - ev["runqueue_ms"] <= high_ms, (
        "the stall lasted %.1f ms, %.1f of them in the runqueue: want %g to %g ms besides\n%s"
        % (ev["duration_ms"], ev["runqueue_ms"], low_ms, high_ms, brief(ev)))


def check_300ms_sleep(ev):
    """The stalled iteration is one 300 ms sleep and the little around it. The upper bound
    leaves room for a shared VM's steal time (a late timer, a slow wake-up) and still refuses
    two iterations counted as one (600 ms) or a boundary off by a poll."""
    check_lasted(ev, 255, 400)


def check_on_cpu_at_least(ev, cpu_ms, share=0.85):
    """A CPU-bound stretch of cpu_ms of thread CPU time shows as on-CPU time, however long the
    thread also waited for a CPU (that is runqueue_ms)."""
    assert ev["on_cpu_ms"] >= share * cpu_ms, (
        "on-CPU %.1f ms for %.0f ms of CPU time (runqueue %.1f ms)\n%s"
        % (ev["on_cpu_ms"], cpu_ms, ev["runqueue_ms"], brief(ev)))


def kernel_symbols(stack):
    return [f.get("symbol") or "" for f in stack["kernel"]]


def brief(ev):
    """A one-event summary for assertion messages (stacks trimmed)."""
    stacks = [{k: (v[:8] if k in ("kernel", "user") else v) for k, v in s.items()}
              for s in ev.get("stacks", [])[:3]]
    short = {k: v for k, v in ev.items() if k not in ("stacks", "_arrival")}
    short["stacks"] = stacks
    return json.dumps(short)


def python_version(python):
    out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return tuple(int(x) for x in out.strip().split("."))


def fs_type(path):
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True,
                          timeout=10, check=True).stdout.strip()


if sys.version_info < (3, 7):
    raise SystemExit("the tests need Python 3.7+ (run them with /usr/bin/python3 -m pytest)")


def pyenv_root():
    root = os.environ.get("PYENV_ROOT")
    if not root:
        try:
            root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            root = ""
    return root or os.path.expanduser("~/.pyenv")


def pyenv_python(minor):
    """The newest pyenv CPython 3.<minor>.*, or None."""
    pattern = os.path.join(pyenv_root(), "versions", "3.%d.*" % minor, "bin", "python3.%d" % minor)
    found = [p for p in glob.glob(pattern) if os.access(p, os.X_OK)]
    version = lambda p: [int(x) for x in re.findall(r"\d+", p.split("/versions/")[1])[:3]]
    return max(found, key=version) if found else None


def libc_path(pid):
    """The libc a process really maps (its path differs between distributions); None if none."""
    with open("/proc/%d/maps" % pid) as maps:
        for line in maps:
            path = line.split()[-1]
            if "/libc.so" in path or "/libc-" in path:
                return path
    return None
