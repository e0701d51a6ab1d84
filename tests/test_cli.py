"""The command line: launch and attach modes, -d, signals, several pids, and every error case.

Errors must be one line on stderr starting `loopstall: `, exit 2 for a bad command line and 1 for
a runtime error, never a crash (negative exit code) or a libbpf dump.
"""

import os
import signal
import socket
import subprocess
import time

import pytest

from harness import (DEBIAN_PYTHON, LOOPSTALL, brief, caused_stalls, check_300ms_sleep, run_loopstall,
                     wait_until)


def idle_target(lab, count=1):
    """A target idling in its asyncio loop (polls every 20 ms) until triggered `count` times."""
    target = lab.target("stall_target.py", "--count", count)
    target.wait_ready()
    return target


def process_state(pid):
    """The state letter of /proc/PID/stat (Z: a zombie), None once the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def one_summary(run, pid):
    summaries = run.of_kind("summary", pid)
    assert len(summaries) == 1, "want one summary for pid %d:\n%s" % (pid, run.describe())
    return summaries[0]


def test_launch_mode(lab):
    """loopstall -- CMD: starts CMD, traces it, exits 0 with its summary when CMD exits."""
    out = lab.tmp_path / "out.jsonl"
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 1,
                        start=False)
    run = lab.loopstall("--json", "-o", out, "--", *target.argv, output=out)
    run.wait_tracing()
    target.wait_ready()
    target.trigger()
    rc = run.wait_exit(30)
    assert rc == 0, run.describe()
    stalls = caused_stalls(run)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall"
    assert stalls[0]["pid"] == target.pid, brief(stalls[0])
    check_300ms_sleep(stalls[0])
    summary = one_summary(run, target.pid)
    assert summary["stalls"] == len(run.of_kind("stall")), summary
    assert [e["event"] for e in run.events()][-2:] == ["summary", "run_summary"]


def test_attach_target_exits_mid_trace(lab):
    """-p PID and the target exits: loopstall prints the summary and exits 0 by itself."""
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 1)
    target.wait_ready()
    run = lab.loopstall("--json", "-p", target.pid)
    run.wait_tracing()
    target.trigger()
    assert target.wait_exit(30) == 0, target.output()
    rc = run.wait_exit(10)  # "within a few seconds" of the target's exit
    assert rc == 0, run.describe()
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall"
    check_300ms_sleep(stalls[0])
    assert one_summary(run, target.pid)["stalls"] == len(run.of_kind("stall", target.pid))


def test_duration_exits_by_itself(lab):
    """-d 2: traces for 2 s, then prints the summary and exits 0."""
    target = idle_target(lab)
    started = time.monotonic()
    run = lab.loopstall("--json", "-d", 2, "-p", target.pid)
    run.wait_tracing()
    tracing_at = time.monotonic()
    rc = run.wait_exit(30)
    ended = time.monotonic()
    assert rc == 0, run.describe()
    assert ended - started >= 1.9, "exited after %.2f s with -d 2" % (ended - started)
    assert ended - tracing_at <= 12, "exited %.1f s after tracing began, with -d 2" % (
        ended - tracing_at)
    summary = one_summary(run, target.pid)
    # The idle loop polls every 20 ms: ~100 iterations in 2 s.
    assert summary["iterations"] >= 25, summary
    assert caused_stalls(run) == [], "an idle loop stalled"
    assert target.proc.poll() is None, "the target did not survive the detach"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_detaches_with_summary(lab, sig):
    target = idle_target(lab)
    run = lab.loopstall("--json", "-p", target.pid)
    run.wait_tracing()
    time.sleep(0.5)
    run.proc.send_signal(sig)
    assert run.wait_exit(30) == 0, run.describe()
    assert one_summary(run, target.pid)["iterations"] >= 5
    # Detached, not killed: the target's loop still runs and finishes its action.
    target.trigger()
    assert target.wait_exit(30) == 0


def test_several_pids(lab):
    """-p A -p B: one summary per traced process."""
    a, b = idle_target(lab, count=2), idle_target(lab)
    run = lab.loopstall("--json", "-p", a.pid, "-p", b.pid)
    run.wait_tracing()
    a.trigger()  # a 300 ms sleep in A only
    time.sleep(0.5)
    assert run.stop() == 0, run.describe()
    assert sorted(s["pid"] for s in run.of_kind("summary")) == sorted([a.pid, b.pid])
    assert [ev["pid"] for ev in caused_stalls(run)] == [a.pid]
    for pid in a.pid, b.pid:
        assert one_summary(run, pid)["stalls"] == len(run.of_kind("stall", pid))


def test_same_pid_twice_traced_once(lab):
    """-p A -p A: A is traced once: one stall event per stall, one summary."""
    a = idle_target(lab)
    run = lab.loopstall("--json", "-p", a.pid, "-p", a.pid)
    run.wait_tracing()
    a.trigger()
    assert a.wait_exit(30) == 0, a.output()
    assert run.wait_exit(30) == 0, run.describe()
    assert [ev["pid"] for ev in caused_stalls(run)] == [a.pid], run.describe()
    one_summary(run, a.pid)


@pytest.mark.parametrize("option", ["-o", "--folded"])
def test_unwritable_output_stops_with_error(lab, option):
    """-o /dev/full or --folded /dev/full: the first report that cannot be written (disk full)
    stops loopstall with one line naming the file and exit 1, instead of tracing on and losing
    every report."""
    target = idle_target(lab, count=2)
    run = lab.loopstall("--json", option, "/dev/full", "-p", target.pid)
    run.wait_tracing()
    target.trigger()
    assert run.wait_exit(30) == 1, run.describe()
    said = [l for l in run.stderr.text().splitlines() if "/dev/full" in l]
    assert len(said) == 1 and said[0].startswith("loopstall: cannot write /dev/full"), (
        run.stderr.text())
    # Detached, not killed: the target goes on.
    target.trigger()
    assert target.wait_exit(30) == 0, target.output()


def test_launch_mode_ends_command_when_stopped(lab):
    """loopstall -- CMD, stopped by SIGINT while CMD still runs: CMD is ended too (README:
    "the command is ended when loopstall stops"), and its summary is written."""
    out = lab.tmp_path / "out.jsonl"
    target = lab.target("stall_target.py", "--count", 1, start=False)
    run = lab.loopstall("--json", "-o", out, "--", *target.argv, output=out)
    run.wait_tracing()
    pid = target.wait_ready()["pid"]
    run.proc.send_signal(signal.SIGINT)
    assert run.wait_exit(30) == 0, run.describe()
    # Gone, or a zombie its parent has not reaped yet.
    wait_until(lambda: process_state(pid) in (None, "Z"), 10,
               "the launched command (pid %d) to end with loopstall" % pid)
    one_summary(run, pid)


def test_fractional_threshold_accepted(lab):
    target = idle_target(lab)
    run = lab.loopstall("--json", "-t", 0.5, "-d", 1, "-p", target.pid)
    assert run.wait_exit(30) == 0, run.describe()
    one_summary(run, target.pid)


# --- errors ----------------------------------------------------------------------------------

def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


def check_error(result, code, words):
    err = result.stderr
    lines = err.strip().splitlines()
    assert result.returncode == code, "exit %d, want %d; stderr:\n%s" % (
        result.returncode, code, err)
    assert len(lines) == 1, "stderr is not one line:\n%s" % err
    assert lines[0].startswith("loopstall: "), lines[0]
    if words:
        assert words.lower() in lines[0].lower(), "%r does not mention %r" % (lines[0], words)


ERRORS = [
    # id, arguments ({pid} = an idle asyncio target), exit code, words in the message
    ("no-such-pid", ["-p", "{free}"], 1, "no such process"),
    ("kernel-thread", ["-p", "2"], 1, "kernel thread"),
    ("threshold-abc", ["-t", "abc", "-p", "{pid}"], 2, "threshold"),
    ("threshold-zero", ["-t", "0", "-p", "{pid}"], 2, "threshold"),
    ("threshold-negative", ["-t", "-5", "-p", "{pid}"], 2, "threshold"),
    ("loop-func-no-file", ["--loop-func", "/nonexistent:foo", "-p", "{pid}"], 1, "/nonexistent"),
    ("loop-func-no-symbol", ["--loop-func", "/usr/bin/python3.11:no_such_symbol_xyz",
                             "-p", "{pid}"], 1, "no_such_symbol_xyz"),
    ("no-target", ["--json"], 2, ""),
    ("ring-buffer-not-power-of-two", ["--ring-buffer", "6", "-p", "{pid}"], 2, "ring buffer"),
    ("ring-buffer-too-small", ["--ring-buffer", "2", "-p", "{pid}"], 2, "ring buffer"),
    ("ring-buffer-zero", ["--ring-buffer", "0", "-p", "{pid}"], 2, "ring buffer"),
    ("ring-buffer-fraction", ["--ring-buffer", "4.5", "-p", "{pid}"], 2, "ring buffer"),
    ("ring-buffer-huge", ["--ring-buffer", "99999999999", "-p", "{pid}"], 2, "ring buffer"),
    ("ring-buffer-word", ["--ring-buffer", "big", "-p", "{pid}"], 2, "ring buffer"),
    ("zombie", ["-p", "{zombie}"], 1, "zombie"),
    # Not in the list of named cases, but the same contract: a bad command line, one line.
    ("unknown-option", ["--no-such-option", "-p", "{pid}"], 2, "no-such-option"),
]


@pytest.mark.parametrize("args,code,words", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_error(lab, args, code, words):
    if "no_such_symbol_xyz" in words and not os.path.exists("/usr/bin/python3.11"):
        pytest.skip("/usr/bin/python3.11 missing")
    pid = idle_target(lab).pid if any("{pid}" in a for a in args) else None
    zombie = None
    if any("{zombie}" in a for a in args):
        # Exits at once and is not reaped until after the check: a zombie.
        zombie = subprocess.Popen(["/bin/true"])
        wait_until(lambda: process_state(zombie.pid) == "Z", 10,
                   "pid %d to be a zombie" % zombie.pid)
    args = [a.format(pid=pid, free=free_pid(), zombie=zombie and zombie.pid) for a in args]
    try:
        check_error(run_loopstall(args), code, words)
    finally:
        if zombie:
            zombie.wait()


def test_error_without_privileges(lab):
    """As user nobody (no capabilities): a one-line error naming CAP_BPF."""
    drop = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    # The target belongs to nobody too, so the missing capability is the only problem.
    victim = subprocess.Popen(drop + [DEBIAN_PYTHON, "-c", "import time; time.sleep(120)"],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        if victim.poll() is not None:
            pytest.skip("cannot run a process as nobody: %s" % victim.stderr.read())
        result = run_loopstall(["-p", victim.pid], prefix=drop)
        if "setpriv" in result.stderr and "Permission denied" in result.stderr:
            pytest.skip("user nobody cannot execute %s: %s" % (LOOPSTALL, result.stderr.strip()))
        check_error(result, 1, "CAP_BPF")
    finally:
        victim.kill()
        victim.wait(10)


def test_privileges_dropped_after_load(lab):
    """Once attached, loopstall keeps only what reading targets needs: CAP_SYS_PTRACE and
    CAP_CHECKPOINT_RESTORE effective; CAP_SETUID and CAP_SETGID permitted but not effective
    (targetfs' thread raises them to take a target's credentials); not CAP_DAC_READ_SEARCH
    (files are read as the target could); nothing inheritable; and it can never regain more
    (no_new_privs)."""
    effective = (1 << 19) | (1 << 40)  # CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE
    dormant = (1 << 7) | (1 << 6)  # CAP_SETUID, CAP_SETGID
    target = idle_target(lab)
    with socket.socket() as s:  # a free port for the exporter, whose thread is checked too
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lab.loopstall("--json", "-p", target.pid, "--prometheus", "127.0.0.1:%d" % port)
    run.wait_tracing()

    def excess():
        """What each live thread holds beyond the above, and the threads seen."""
        found, seen = [], []
        for tid in os.listdir("/proc/%d/task" % run.proc.pid):
            try:
                with open("/proc/%d/task/%s/status" % (run.proc.pid, tid)) as f:
                    status = dict((k, v.strip()) for k, _, v in
                                  (line.partition(":") for line in f))
            except (FileNotFoundError, ProcessLookupError):
                continue  # a reader thread that retired since the listing
            seen.append(tid)
            what = "thread %s (%s)" % (tid, status["Name"])
            # Capabilities are per thread: every one of loopstall's threads must drop them.
            found += ["%s: %s = %s" % (what, field, status[field])
                      for field in ("CapPrm", "CapBnd", "CapEff")
                      if int(status[field], 16) & ~(effective | dormant)]
            if int(status["CapInh"], 16) or status["NoNewPrivs"] != "1":
                found.append("%s: CapInh %s, NoNewPrivs %s" % (what, status["CapInh"],
                                                               status["NoNewPrivs"]))
            if tid == str(run.proc.pid) and (int(status["CapPrm"], 16) != effective | dormant or
                                             int(status["CapEff"], 16) != effective):
                found.append("%s: CapPrm %s, CapEff %s" % (what, status["CapPrm"],
                                                           status["CapEff"]))
        return found, seen

    # The reader threads that read targets during the attach, before the drop, are told to
    # retire at the drop (remote__reset, targetfs__reset) and exit as soon as they are idle.
    try:
        wait_until(lambda: not excess()[0], 5.0, "the attach's reader threads to retire")
    except AssertionError:
        pass
    found, seen = excess()
    assert not found, "\n".join(found)
    assert len(seen) >= 2, "no exporter thread: %s" % seen
    assert run.stop() == 0, run.describe()
    assert len(run.of_kind("summary", target.pid)) == 1
