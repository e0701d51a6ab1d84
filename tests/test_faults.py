"""Faults around the traced processes and loopstall itself: nothing crashes, hangs or stays behind.

Each test starts real processes (targets/fault_*.py) and checks values, not only exit codes:

  1  loopstall SIGKILLed while attached (mid-stall): its BPF programs, maps and links are
     released, nothing is pinned or left in tracefs, the target's loop keeps iterating
  2  the target exits (os._exit from a thread) in the middle of a stall: summary, exit 0
  3  the target execs into another Python program: the same pid is still traced, the post-exec
     stalls carry the new program's frames, file and comm (also into another CPython version)
  4  pid reuse (forced with /proc/sys/kernel/ns_last_pid): --all traces the second process as
     a new one, with its own name, frames and summary
  5  thousands of short-lived threads, a third of them event loops: loopstall stays up and
     small, reports the main loop's stalls with its tid, counts the short loops' iterations;
     the loop keeps its Python frames when its thread has other thread states (5b: an idle
     subinterpreter; 5c: attaching while the loop starts threads)
  6  ring-buffer overflow (--ring-buffer 4, thousands of stalls a second): lost events are
     counted and said, the in-kernel stall count stays exact; a process that exits while the
     buffer is full still gets its summary
  7  code objects created and freed under the frame reader, deep recursion: no crash, every
     Python frame has a function and a file; 7b: a frame's function and file come from the
     same code object
  8  hostile process and thread names (quotes, backslashes, control characters, bytes that are
     not UTF-8): every line is valid UTF-8 JSON and the names round-trip
  9  a consumer that stops reading stdout, then Ctrl-C: no event is dropped or cut

Run: /usr/bin/python3 -m pytest tests/test_faults.py -v   (as root, after building loopstall)
"""

import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import pytest

import harness
from test_boundaries import target_libc
from harness import (DEBIAN_PYTHON, STOP_TIMEOUT_S, TARGETS, TIMEOUT_S, brief, caused_stalls,
                     check_300ms_sleep, check_lasted, check_stall_shape, libc_path, starved,
                     wait_until)
from test_stalls import interpreters, pyenv_python

SETTLE_S = 10.0  # how long a stall event may take to arrive after the loop polls again
WARMUP_S = 0.6  # loopstall maps a loop thread to its PyThreadState after the thread's first poll
RELEASE_S = 15.0  # the kernel frees BPF objects asynchronously (RCU, workqueues) after close


# --- helpers ---------------------------------------------------------------------------------

def marker_lines(script):
    """{name: line number} of the `# LINE:name` comments in tests/targets/<script>."""
    lines = {}
    with open(TARGETS / script) as f:
        for number, text in enumerate(f, 1):
            for name in re.findall(r"#.*\bLINE:(\w+)\s*$", text):
                lines[name] = number
    return lines


def py_frames(stack):
    return [(f["function"], f["file"], f["line"]) for f in stack.get("python") or []]


def check_python_frames(ev):
    """docs/json.md: a frame has a non-empty function and file, a positive line or null."""
    for s in ev["stacks"]:
        if "python" not in s:
            continue
        assert isinstance(s["python"], list) and isinstance(s.get("truncated"), bool), brief(ev)
        for f in s["python"]:
            assert isinstance(f.get("function"), str) and f["function"], (f, brief(ev))
            assert isinstance(f.get("file"), str) and f["file"], (f, brief(ev))
            assert f.get("qualname") is None or isinstance(f["qualname"], str), f
            line = f.get("line")
            assert line is None or (isinstance(line, int) and not isinstance(line, bool)
                                    and line > 0), (f, brief(ev))


def check_event(ev):
    """Shape of a stall/stall_progress event; GIL stacks (newer than the harness) set aside."""
    check_python_frames(ev)
    check_stall_shape(dict(ev, stacks=[s for s in ev["stacks"] if s.get("reason") != "gil"]))


def stop(run):
    time.sleep(0.3)  # room for a wrong extra event to show up
    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())


def one_summary(run, pid):
    summaries = run.of_kind("summary", pid)
    assert len(summaries) == 1, "want one summary for pid %d, got %s\n%s" % (
        pid, summaries, run.describe())
    return summaries[0]


def wait_events(run, pred, n, timeout=SETTLE_S):
    """Until n events satisfy pred (or timeout, or loopstall exited); returns them."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in run.events() if pred(e)]
        if len(found) >= n or time.monotonic() > deadline or run.proc.poll() is not None:
            return found
        time.sleep(0.05)


def in_file(ev, path, function):
    """True if one of the event's stacks has a Python frame `function` in file `path`."""
    return any(f[0] == function and f[1] == path for s in ev["stacks"] for f in py_frames(s))


def vm_hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/%d/status" % pid)


# --- 1. SIGKILL of loopstall while attached -----------------------------------------------------

# Programs of bpf/loopstall.bpf.c as the kernel names them (BPF_OBJ_NAME_LEN: 15 characters).
LOOPSTALL_PROGS = {"sched_switch", "sched_waking", "on_cpu_sample", "sched_process_e",
                   "sched_process_f"}
# The epoll entry alone bounds iterations (no exit program, design.md "Iteration boundary").
BOUNDARY_PROGS = {"syscalls": {"epoll_wait_ente"},
                  "loop-func": {"loop_func_enter", "loop_func_exit"}}


def bpf_fds(pid):
    """IDs of the BPF programs, maps and links process pid holds fds of (from fdinfo)."""
    ids = {"prog": set(), "map": set(), "link": set()}
    fdinfo = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(fdinfo):
        try:
            with open(os.path.join(fdinfo, fd)) as f:
                text = f.read()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        # A link's fdinfo names its program too: count that under "link" only.
        if "link_id" in fields:
            ids["link"].add(int(fields["link_id"]))
        elif "prog_id" in fields:
            ids["prog"].add(int(fields["prog_id"]))
        elif "map_id" in fields:
            ids["map"].add(int(fields["map_id"]))
    return ids


def bpftool_objects(kind):
    """{id: name} of every BPF object of kind (prog, map, link) in the kernel now."""
    out = subprocess.run(["bpftool", kind, "show", "--json"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, "bpftool %s show: %s" % (kind, out.stderr)
    objects = json.loads(out.stdout or "[]")
    return {o["id"]: o.get("name") or o.get("type") for o in objects}


def bpffs_tree():
    found = set()
    for root, dirs, files in os.walk("/sys/fs/bpf"):
        found.update(os.path.join(root, n) for n in dirs + files)
    return found


def probe_events():
    """kprobe/uprobe definitions in tracefs: legacy (non-PMU) probes would show up here."""
    found = {}
    for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        for name in ("kprobe_events", "uprobe_events"):
            try:
                with open(os.path.join(base, name)) as f:
                    found[os.path.join(base, name)] = f.read()
            except OSError:
                pass
    return found



@pytest.mark.parametrize("boundary", ["syscalls", "loop-func"])
def test_sigkill_leaves_nothing_attached(lab, boundary):
    """1. SIGKILL while a stall is in progress: every BPF program, map and link loopstall held
    is released, /sys/fs/bpf and tracefs probe lists are unchanged, and the target's loop still
    iterates afterwards (its tick count grows) and exits normally."""
    if not shutil.which("bpftool"):
        pytest.skip(harness.missing("bpftool (Debian package bpftool) to list the kernel's BPF "
                                    "objects"))
    bpffs_before, probes_before = bpffs_tree(), probe_events()
    target = lab.target("fault_loop.py", "--actions", "count,sleep,count,count", "--ms", 3000)
    info = target.wait_ready()
    extra = ["--loop-func", "%s:epoll_wait" % target_libc(info["pid"])] \
        if boundary == "loop-func" else []
    run = lab.loopstall("--json", "-p", info["pid"], *extra)
    run.wait_tracing()
    ours = bpf_fds(run.proc.pid)
    progs = bpftool_objects("prog")
    names = {progs.get(i) for i in ours["prog"]}
    assert ours["prog"] and ours["map"] and ours["link"], (
        "found no BPF fds in /proc/%d/fdinfo: %s" % (run.proc.pid, ours))
    want = LOOPSTALL_PROGS | BOUNDARY_PROGS[boundary]
    assert want <= {n[:15] for n in names if n}, (
        "loopstall's fds do not hold its programs: %s" % sorted(map(str, names)))

    before = target.trigger()  # count
    # A 3 s stall: loopstall is killed inside it, with an iteration open and stacks pending.
    (target.ctl / "go").touch()
    line = run.stdout.wait_for(lambda t: '"stall_progress"' in t, TIMEOUT_S)
    assert line, "no stall_progress during the 3 s stall\n" + run.describe()
    run.proc.kill()
    assert run.proc.wait(10) == -9, run.describe()

    def released():
        live = {kind: set(bpftool_objects(kind)) & ours[kind] for kind in ours}
        return live if any(live.values()) else None

    deadline = time.monotonic() + RELEASE_S
    while released() and time.monotonic() < deadline:
        time.sleep(0.5)
    left = released()
    assert not left, "BPF objects of the SIGKILLed loopstall still loaded after %.0f s: %s " \
        "(programs: %s)" % (RELEASE_S, left, [progs.get(i) for i in (left or {}).get("prog", ())])
    assert bpffs_tree() == bpffs_before, "/sys/fs/bpf changed: %s" % (
        bpffs_tree() ^ bpffs_before)
    assert probe_events() == probes_before, "tracefs probe events changed:\n%s\n->\n%s" % (
        probes_before, probe_events())

    wait_until(lambda: len(target.reports()) >= 2, TIMEOUT_S, "the 3 s sleep to end")
    time.sleep(1.0)
    after = target.trigger()  # count
    # Ticks every 5 ms: in the second of idling after the sleep alone, about 200 of them.
    assert after["ticks"] - before["ticks"] >= 40, (before, after)
    assert target.trigger()["ticks"] > after["ticks"]
    assert target.wait_exit(30) == 0, target.output()


# --- 2. target exits in the middle of a stall ----------------------------------------------------

def test_target_dies_mid_stall(lab):
    """2. The target's loop sleeps 6 s; 1.5 s in, another thread os._exit(0)s the process.
    loopstall prints the stall_progress it had, the summary, and exits 0 within a few seconds."""
    target = lab.target("fault_loop.py", "--actions", "die", "--ms", 1500)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-p", info["pid"])
    run.wait_tracing()
    target.trigger()
    assert target.wait_exit(30) == 0, target.output()
    died = time.monotonic()
    rc = run.wait_exit(30)
    took = time.monotonic() - died
    assert rc == 0, "loopstall exited %s after its target died\n%s" % (rc, run.describe())
    assert took <= 5.0, "loopstall took %.1f s to notice its target was gone" % took
    pid, tid = info["pid"], info["loop_tids"][0]
    progress = run.of_kind("stall_progress", pid)
    assert progress, "no stall_progress in the 1.5 s before the process died\n" + run.describe()
    for ev in progress:
        check_event(ev)
        assert ev["tid"] == tid, brief(ev)
        check_lasted(ev, 900, 3000)
    summary = one_summary(run, pid)
    assert summary["iterations"] > 0, summary
    assert summary["stalls"] == len(run.of_kind("stall", pid)), summary
    assert [e["event"] for e in run.events()][-2:] == ["summary", "run_summary"], run.describe()


# --- 3. exec into another program ---------------------------------------------------------------

def exec_pythons():
    other = pyenv_python(12)
    return [pytest.param(DEBIAN_PYTHON, id="same-python"),
            pytest.param(other, id="into-pyenv-3.12", marks=() if other else pytest.mark.skip(
                reason=harness.missing("pyenv CPython 3.12")))]


@pytest.mark.parametrize("new_python", exec_pythons())
def test_exec_into_another_program(lab, new_python):
    """3. fault_loop.py stalls once, then execs (from inside its loop) into fault_second.py run by
    a python named `loopexec2` (a symlink, so the kernel's comm changes); that program stalls
    twice. The same pid stays traced: the post-exec stalls have fault_second.py's frames and the
    comm `loopexec2`, the summary is the new program's name."""
    link = lab.tmp_path / "loopexec2"
    link.symlink_to(new_python)
    second_ctl = lab.tmp_path / "second"
    target = lab.target("fault_loop.py", "--actions", "sleep,exec", "--ms", 300, "--exec",
                        str(link), str(TARGETS / "fault_second.py"), "--ctl", str(second_ctl),
                        "--count", 3, "--ms", 400)
    info = target.wait_ready()
    pid = info["pid"]
    run = lab.loopstall("--json", "-p", pid)
    run.wait_tracing()
    time.sleep(WARMUP_S)
    target.trigger()
    wait_events(run, lambda e: e["event"] == "stall" and not starved(e), 1)
    exec_report = target.trigger()
    second = harness.Target(second_ctl, str(link), "fault_second.py", [])
    second.info = second.wait_ready()
    assert second.pid == pid, "the exec'd program runs as pid %d, not %d" % (second.pid, pid)
    assert second.info["comm"] == "loopexec2", second.info
    time.sleep(WARMUP_S)
    reports = []
    for n in (1, 2):
        reports.append(second.trigger())
        wait_events(run, lambda e: e["event"] == "stall" and not starved(e), 1 + n)
    assert run.proc.poll() is None, "loopstall ended after the exec\n" + run.describe()
    stop(run)

    stalls = caused_stalls(run, pid)
    assert len(stalls) == 3, "1 stall before and 2 after the exec, got:\n%s" % (
        "\n".join(map(brief, stalls)) or "none")
    old_path, new_path = str(TARGETS / "fault_loop.py"), str(TARGETS / "fault_second.py")
    new_line = marker_lines("fault_second.py")["second_sleep"]
    for ev in stalls:
        check_event(ev)
        assert ev["tid"] == pid, brief(ev)
    before, after = stalls[0], stalls[1:]
    check_300ms_sleep(before)
    assert in_file(before, old_path, "blocking_sleep"), "pre-exec stall: " + brief(before)
    assert before["comm"] == "python3", brief(before)
    for ev in after:
        check_lasted(ev, 340, 460)
        assert ev["comm"] == "loopexec2", "post-exec stall with comm %r, the process is now " \
            "loopexec2: %s" % (ev["comm"], brief(ev))
        top = ev["stacks"][0]
        assert top["reason"] == "sleep", brief(ev)
        got = py_frames(top)
        assert got, "post-exec stall without Python frames (the new interpreter was not " \
            "recognized): " + brief(ev)
        assert got[0] == ("second_program_sleep", new_path, new_line), (
            "innermost frame %s, want second_program_sleep at %s:%d\n%s" % (
                got[0], new_path, new_line, brief(ev)))
        assert not any(f[1] == old_path for f in got), "pre-exec frames after exec: %s" % got
    assert exec_report["start"] < after[0]["_arrival"]
    summary = one_summary(run, pid)
    assert summary["comm"] == "loopexec2", summary
    assert summary["stalls"] == len(run.of_kind("stall", pid)), summary


# --- 4. pid reuse --------------------------------------------------------------------------------

def start_with_pid(lab, pid, script, *args, name, tries=50):
    """Start a target as pid `pid` by setting /proc/sys/kernel/ns_last_pid just before the fork.

    Other processes on the host may take the pid first: start again (a bounded number of times).
    """
    for attempt in range(tries):
        t = lab.target(script, *args, name="%s-try%d-" % (name, attempt), start=False)
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError as e:
            pytest.skip("cannot set /proc/sys/kernel/ns_last_pid: %s" % e)
        t.start()
        if t.proc.pid == pid:
            return t
        t.kill()
        time.sleep(0.05)
    pytest.skip("could not get pid %d in %d tries (a busy host took it first)" % (pid, tries))


def test_pid_reused_is_a_new_process(lab):
    """4. --all: process A (fault_loop.py) stalls and exits; process B (fault_second.py) is
    started with A's pid and stalls. B is a new process: its stall has its own name and Python
    frames, and it gets its own summary counting only its own stall."""
    tag = "%04x" % (os.getpid() & 0xffff)
    name_a, name_b = "fltreuA" + tag, "fltreuB" + tag
    run = lab.loopstall("--all", "--json", "--comm", "^fltreu[AB]" + tag)
    run.wait_tracing()
    a = lab.target("fault_loop.py", "--comm", name_a, "--actions", "sleep", "--ms", 300,
                   name="a")
    pid = a.wait_ready()["pid"]
    time.sleep(WARMUP_S)
    a.trigger()
    assert a.wait_exit(30) == 0, a.output()
    line = run.stdout.wait_for(
        lambda t: '"summary"' in t and json.loads(t).get("pid") == pid, SETTLE_S)
    assert line, "no summary for A (pid %d) after it exited\n%s" % (pid, run.describe())

    b = start_with_pid(lab, pid, "fault_second.py", "--comm", name_b, "--count", 1, "--ms", 400,
                       name="b")
    b.wait_ready()
    time.sleep(WARMUP_S)
    b.trigger()
    assert b.wait_exit(30) == 0, b.output()
    # B's summary comes at B's exit, not at loopstall's.
    early = wait_events(run, lambda e: e["event"] == "summary" and e["pid"] == pid, 2)
    assert len(early) == 2, "no summary at B's exit:\n" + run.describe()
    stop(run)

    stalls = caused_stalls(run, pid)
    assert [ev["comm"] for ev in stalls] == [name_a, name_b], "\n".join(map(brief, stalls))
    sa, sb = stalls
    for ev in stalls:
        check_event(ev)
    assert in_file(sa, str(TARGETS / "fault_loop.py"), "blocking_sleep"), brief(sa)
    check_lasted(sb, 340, 460)
    got = py_frames(sb["stacks"][0])
    assert got and got[0][:2] == ("second_program_sleep", str(TARGETS / "fault_second.py")), (
        "B's stall has frames %s (A's program was fault_loop.py)\n%s" % (got[:3], brief(sb)))
    summaries = run.of_kind("summary", pid)
    assert [s["comm"] for s in summaries] == [name_a, name_b], summaries
    assert [s["stalls"] for s in summaries] == [1, 1], (
        "each process's summary counts its own stall only: %s" % summaries)
    assert all(s["iterations"] > 0 for s in summaries), summaries


# --- 5. thousands of threads ---------------------------------------------------------------------

MAX_HWM_MIB = 100


def sleep_stacks(ev, min_ms):
    """The event's off-CPU time.sleep stacks of at least min_ms (kernel facts, no Python)."""
    return [s for s in ev["stacks"] if s["kind"] == "off_cpu" and s.get("reason") == "sleep"
            and s["ms"] >= min_ms]


def test_thread_churn(lab):
    """5. 3000 short-lived threads (1000 of them running their own asyncio loop) come and go while
    the main loop stalls 4 times: loopstall stays up, its peak RSS stays under 100 MiB, every
    sleep stall names the main loop's tid, and the short loops' iterations are counted.

    The stalls are told apart by kernel facts (a >= 250 ms off-CPU sleep), not by Python frames:
    attaching while the loop starts threads can cost the main loop its frames, a separate bug
    (test_python_frames_despite_other_thread_states)."""
    total = 3000
    target = lab.target("fault_threads.py", "--threads", total, "--batch", 10, "--pause-ms", 10,
                        "--loop-every", 3, "--ms", 300, "--count", 5)
    info = target.wait_ready()
    pid, main_tid = info["pid"], info["loop_tids"][0]
    run = lab.loopstall("--json", "-t", 200, "-p", pid)
    run.wait_tracing()
    churn = target.ctl / "churn.json"
    reports = []
    for _ in range(3):
        reports.append(target.trigger(timeout=120))
        time.sleep(1.0)
    wait_until(churn.exists, 300, "the target to finish its %d threads" % total)
    churned = json.loads(churn.read_text())
    reports.append(target.trigger(timeout=120))
    wait_events(run, lambda e: e["event"] == "stall" and e["duration_ms"] >= 250
                and sleep_stacks(e, 250), 4)
    assert run.proc.poll() is None, "loopstall ended during the thread churn\n" + run.describe()
    hwm = vm_hwm_kib(run.proc.pid)
    stop(run)
    assert target.proc.poll() is None, "target died while traced:\n" + target.output()

    assert churned["threads"] == total and churned["finished"] == total, churned
    mid = [r for r in reports if 0 < r["spawned"] < total]
    assert mid, "no stall while threads were churning (spawned at each: %s)" % (
        [r["spawned"] for r in reports])
    if len(mid) < 2:
        warnings.warn("only %d of the stalls happened while threads were churning: %s"
                      % (len(mid), [r["spawned"] for r in reports]))
    assert hwm < MAX_HWM_MIB * 1024, "loopstall's peak RSS %.1f MiB (>= %d MiB) after %d " \
        "threads" % (hwm / 1024.0, MAX_HWM_MIB, churned["threads"])
    stalls = run.of_kind("stall", pid)
    for ev in stalls + run.of_kind("stall_progress", pid):
        check_event(ev)
    sleeps = [ev for ev in stalls if sleep_stacks(ev, 250)]
    assert len(sleeps) == 4, "4 sleeps triggered, %d stalls with a >= 250 ms sleep:\n%s" % (
        len(sleeps), "\n".join(map(brief, stalls)))
    for ev in sleeps:
        assert ev["tid"] == main_tid, "sleep stall with tid %d, the main loop is %d: %s" % (
            ev["tid"], main_tid, brief(ev))
        check_lasted(ev, 270, 600)
        assert sleep_stacks(ev, 250)[0]["syscall"] == "clock_nanosleep", brief(ev)
    summary = one_summary(run, pid)
    # Every short loop traced from the first stall on completes >= 2 iterations (asyncio.run:
    # its two sleeps, then shutting down).
    loops_after = (total - reports[0]["spawned"]) // 3
    assert summary["iterations"] >= 2 * loops_after, (summary, loops_after, churned)
    assert summary["lost_events"] == 0, summary
    assert "not tracked" not in run.stderr.text(), run.stderr.text()


def subinterp_pythons():
    params = []
    for minor in (8, 12, 13):
        python = pyenv_python(minor)
        params.append(pytest.param(python, id="pyenv-3.%d" % minor, marks=() if python else
                                   pytest.mark.skip(reason=harness.missing(
                                       "pyenv CPython 3.%d" % minor))))
    params.append(pytest.param(DEBIAN_PYTHON, id="debian-python3"))
    return params


@pytest.mark.parametrize("python", subinterp_pythons())
def test_python_frames_despite_other_thread_states(lab, python):
    """5b. The main thread also owns an idle subinterpreter's PyThreadState (same thread ids,
    no frame): the loop's stall must still have its Python frames, from the thread state that
    runs the loop. Same root as frames lost when attaching while the loop starts threads (<= 3.11
    gives a thread state being started its creator's ids until the new thread runs)."""
    target = lab.target("fault_subinterp.py", "--ms", 300, "--count", 3, python=python)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-p", info["pid"])
    run.wait_tracing()
    time.sleep(WARMUP_S)
    for n in (1, 2):
        target.trigger()
        wait_events(run, lambda e: e["event"] == "stall" and not starved(e), n)
    stop(run)
    stalls = caused_stalls(run, info["pid"])
    assert len(stalls) == 2, "\n".join(map(brief, stalls)) or "no stall"
    path, line = str(TARGETS / "fault_subinterp.py"), marker_lines("fault_subinterp.py")["sub_sleep"]
    for ev in stalls:
        check_event(ev)
        top = ev["stacks"][0]
        assert top["reason"] == "sleep", brief(ev)
        got = py_frames(top)
        assert got, "no Python frames for the main loop's time.sleep stall (the thread also " \
            "has a subinterpreter's thread state): %s" % brief(ev)
        assert got[0] == ("subinterp_loop_sleep", path, line), (got[:3], brief(ev))


def test_python_frames_when_attached_while_threads_start(lab):
    """5c. Attach, one 300 ms sleep, detach, four times, to a loop that starts 10 threads every
    2 ms, and 12 more in the stalled callback right before its sleep (the only starts in that
    iteration, so they do not fill its 16 stack slots): each time the sleep's own stack has the
    main loop's Python frames, and no walk met a PyThreadState that was not its thread's.

    Two causes of misses, each caught here: (1) on <= 3.11 a thread being started has a
    PyThreadState at the head of the list with its creator's ids and no frame; mapping the loop
    thread to it at attach made every walk a mismatch until the next look-up (a quarter to half
    of the rounds attach while one exists). (2) The thread starts' lock and GIL waits used up
    the walks of the iteration before its sleep (every round). (3) Under load (about a round in
    20 with both CPUs busy), the thread list read at attach changed under the walk: following
    an exited thread's freed state ended it before the main thread's, left unmapped for the 1 s
    retry (no frames); or the tstate of a thread just started read as the loop thread's, and
    was published before the loop thread's own (mismatches)."""
    rounds = 4
    target = lab.target("fault_threads.py", "--threads", 10 ** 7, "--batch", 10, "--pause-ms", 2,
                        "--loop-every", 3, "--ms", 300, "--count", rounds + 1,
                        "--starts-before-sleep", 12)
    info = target.wait_ready()
    path = str(TARGETS / "fault_threads.py")
    missing = []
    for n in range(rounds):
        run = lab.loopstall("--json", "-t", 250, "-p", info["pid"])
        run.wait_tracing()
        time.sleep(WARMUP_S)
        report = target.trigger(timeout=120)
        assert report["starts_before_sleep"] == 12, report
        found = wait_events(run, lambda e: e["event"] == "stall" and sleep_stacks(e, 250), 1)
        stop(run)
        assert found, "round %d: no sleep stall\n%s" % (n + 1, run.describe())
        ev = found[0]
        check_event(ev)
        assert ev["tid"] == info["loop_tids"][0], brief(ev)
        (sleep,) = sleep_stacks(ev, 250)
        mismatches = run_summary(run)["py_thread_mismatch"]
        if "main_loop_sleep" not in [f[0] for f in py_frames(sleep) if f[1] == path] or \
                mismatches:
            missing.append("round %d (attached with %d threads started, %d PyThreadState "
                           "mismatches): %s" % (n + 1, report["spawned"], mismatches,
                                                brief(ev)[:400]))
    assert not missing, "%d of %d rounds with PyThreadState mismatches or a sleep stack without " \
        "the main loop's Python frames:\n%s" % (len(missing), rounds, "\n".join(missing))


# --- 6. ring-buffer overflow ---------------------------------------------------------------------

COUNTERS = ["lost_events", "stack_errors", "stacks_evicted", "thread_table_full", "process_table_full",
            "wakeups_missed", "processes_filtered", "processes_over_limit", "py_walks_skipped",
            "py_thread_mismatch", "js_walks_skipped"]


def lost_line(run):
    m = re.search(r"loopstall: (\d+) events? lost", run.stderr.text())
    return int(m.group(1)) if m else None


def run_summary(run):
    """The one run_summary record (docs/json.md): every counter, an int >= 0 (the userspace
    cache sizes beside them, `caches`, are test_export's)."""
    found = run.of_kind("run_summary")
    assert len(found) == 1, "want one run_summary, got %s\n%s" % (found, run.describe())
    counters = dict(found[0])
    del counters["event"], counters["_arrival"]  # the harness adds _arrival
    assert isinstance(counters.pop("caches"), dict), counters
    assert sorted(counters) == sorted(COUNTERS), counters
    assert all(isinstance(v, int) and v >= 0 for v in counters.values()), counters
    return counters


def said_lines(run):
    """{text: count} of the end-of-run counter lines on stderr ("loopstall: N text")."""
    return {m.group(2): int(m.group(1)) for m in re.finditer(
        r"^loopstall: (\d+) (.*)$", run.stderr.text(), re.M)}


def test_ring_buffer_overflow_counts_stay_right(lab):
    """6. --ring-buffer 4 and -t 0.05 against 3 s of iterations that each busy-wait 0.1 ms:
    events are lost, the summary and a stderr line say how many, and the stall count kept in
    the kernel equals the events printed plus the events lost."""
    target = lab.target("fault_flood.py", "--busy-us", 100, "--seconds", 3, "--count", 2)
    info = target.wait_ready()
    pid = info["pid"]
    run = lab.loopstall("--json", "-t", 0.05, "--ring-buffer", 4, "-p", pid)
    run.wait_tracing()
    report = target.trigger(timeout=120)
    time.sleep(2.0)  # the loop idles again: let loopstall drain what it has
    assert run.proc.poll() is None, "loopstall ended during the flood\n" + run.describe()
    stop(run)
    assert target.proc.poll() is None, target.output()

    summary = one_summary(run, pid)
    printed = run.of_kind("stall", pid)
    for ev in printed[:200]:
        check_event(ev)
        assert ev["duration_ms"] >= 0.05, brief(ev)
    lost = summary["lost_events"]
    assert lost > 0, "no events lost with a 4 KB ring buffer and %d stalls: %s" % (
        summary["stalls"], summary)
    said = lost_line(run)
    assert said is not None and said >= lost, (
        "stderr does not say how many events were lost (summary: %d):\n%s" % (
            lost, run.stderr.text()))
    # The host-wide count: every record kind, so at least this process's stall events.
    assert run_summary(run)["lost_events"] == said, (run_summary(run), said)
    # Every stall the kernel counted was either printed or lost. Idle iterations after the
    # last drain may still add a few to the counter (-t 0.05 catches a slow idle one).
    counted = len(printed) + lost
    assert counted <= summary["stalls"] <= counted + 5 + summary["stalls"] // 1000, (
        "kernel counted %d stalls; %d printed + %d lost = %d" % (
            summary["stalls"], len(printed), lost, counted))
    # Each flood callback ran in its own iteration, busy >= 0.1 ms: all of them are stalls.
    assert summary["stalls"] >= 0.95 * report["runs"], (summary, report)
    assert summary["iterations"] >= report["runs"], (summary, report)


def test_duration_ends_the_run_during_a_flood(lab):
    """6a. -d 2 while the loop floods stall events (every iteration busy 0.1 ms at -t 0.05,
    into a large ring buffer): loopstall stops after 2 s of tracing and exits 0 with its
    summary, not when the flood ends 8 s later. (libbpf's poll returns only once the ring is
    empty: loopstall hands control back every RECORDS_PER_POLL records, for when its reader
    is slower than the flood.)"""
    target = lab.target("fault_flood.py", "--busy-us", 100, "--seconds", 10, "--count", 2)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-t", 0.05, "--ring-buffer", 65536, "-d", 2, "-p",
                        info["pid"])
    run.wait_tracing()
    (target.ctl / "go").touch()
    traced = time.monotonic()
    rc = run.wait_exit(30)
    took = time.monotonic() - traced
    assert rc == 0, run.describe()
    assert took < 7, "loopstall -d 2 exited %.1f s after tracing began, the flood lasts 10 s" % (
        took)
    assert one_summary(run, info["pid"])["stalls"] > 0, run.describe()


@pytest.mark.parametrize("mode", ["attach", "all"])
def test_exit_while_ring_buffer_full(lab, mode):
    """6b. The flood ends with os._exit() while the 4 KB ring buffer is still full: the
    process's exit record may be dropped, yet loopstall must still print its summary, with its
    name, and (-p) exit 0 or (--all) print it without waiting for loopstall's own exit."""
    tag = "%04x" % (os.getpid() & 0xffff)
    name = "fltflood" + tag
    args = ["--json", "-t", 0.05, "--ring-buffer", 4]
    if mode == "all":
        run = lab.loopstall("--all", "--comm", "^" + name, *args)
        run.wait_tracing()
    target = lab.target("fault_flood.py", "--comm", name, "--busy-us", 100, "--seconds", 2,
                        "--exit-after-flood")
    pid = target.wait_ready()["pid"]
    if mode == "attach":
        run = lab.loopstall("-p", pid, *args)
        run.wait_tracing()
    (target.ctl / "go").touch()
    assert target.wait_exit(60) == 0, target.output()
    if mode == "attach":
        rc = run.wait_exit(SETTLE_S)
        assert rc == 0, run.describe()
    else:
        wait_events(run, lambda e: e["event"] == "summary" and e["pid"] == pid, 1)
        summaries = run.of_kind("summary", pid)
        stop(run)
        assert summaries, "no summary for pid %d within %.0f s of its exit (its exit record " \
            "was lost: %s)\n%s" % (pid, SETTLE_S, lost_line(run), run.describe())
    summary = one_summary(run, pid)
    assert summary["comm"] == name, "summary with comm %r, the process was %s: %s" % (
        summary["comm"], name, summary)
    assert summary["stalls"] > 0, summary


def test_walk_budget_skips_are_counted(lab):
    """6c. Each triggered iteration sleeps 40 times: the BPF walker reads the Python stack at
    the first 16 switch-outs only (its per-iteration budget) and counts the others: at least 24
    per iteration, in the run_summary record and said on stderr; the tables did not fill."""
    naps, budget, triggers = 40, 16, 2
    target = lab.target("stall_target.py", "--action", "naps", "--ms", 400,
                        "--count", triggers)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("--json", "-p", pid)
    run.wait_tracing()
    time.sleep(WARMUP_S)
    reports = [target.trigger() for _ in range(triggers)]
    assert all(r["naps"] == naps for r in reports), reports
    wait_events(run, lambda e: e["event"] == "stall" and e["pid"] == pid, triggers)
    stop(run)
    stalls = [ev for ev in run.of_kind("stall", pid) if ev["duration_ms"] >= 300]
    assert len(stalls) == triggers, "\n".join(map(brief, run.of_kind("stall", pid)))
    for ev in stalls:
        check_event(ev)
        # The walks within the budget still name the sleeping function.
        assert any(f[0] == "act_naps" for s in ev["stacks"] for f in py_frames(s)), brief(ev)
    counters = run_summary(run)
    assert counters["py_walks_skipped"] >= triggers * (naps - budget), counters
    assert counters["thread_table_full"] == counters["process_table_full"] == 0, counters
    said = said_lines(run)
    skipped = [n for text, n in said.items() if text.startswith("Python stack walks skipped")]
    assert skipped == [counters["py_walks_skipped"]], run.stderr.text()
    # Only the non-zero counters get a line.
    assert not [text for text in said if "table" in text], run.stderr.text()


# --- 7. code objects freed under the reader ------------------------------------------------------

def churn_run(lab, python, actions):
    """Attach to fault_codechurn.py, run `actions` 400 ms churn stalls, stop. Returns
    (run, target info, stall and stall_progress events)."""
    target = lab.target("fault_codechurn.py", "--ms", 400, "--depth", 150,
                        "--count", actions + 1, python=python)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-p", info["pid"])
    run.wait_tracing()
    time.sleep(WARMUP_S)
    for n in range(1, actions + 1):
        target.trigger()
        wait_events(run, lambda e: e["event"] == "stall" and e["pid"] == info["pid"], n)
    assert run.proc.poll() is None, "loopstall ended\n" + run.describe()
    stop(run)
    assert target.proc.poll() is None, "target died while traced:\n" + target.output()
    events = run.of_kind("stall", info["pid"]) + run.of_kind("stall_progress", info["pid"])
    return run, info, events


def churn_frames(events):
    """(function, file, line, event) of every frame in a generated file <churn-K>."""
    out = []
    for ev in events:
        for s in ev["stacks"]:
            for function, path, line in py_frames(s):
                if re.fullmatch(r"<churn-\d+>", path):
                    out.append((function, path, line, ev))
    return out


@pytest.mark.parametrize("python", interpreters())
def test_code_objects_churn_under_reader(lab, python):
    """7. Three 400 ms stalls, each compiling, recursing 150 deep into and freeing hundreds of
    functions while another thread does the same: loopstall and the target survive, stalls have
    Python frames, every frame has a non-empty function and file (and a positive or null line).
    A stall whose code objects were all freed before it ended may have none (a known gap: frames
    are resolved when the iteration ends), so not every stall is required to."""
    run, info, events = churn_run(lab, python, 3)
    stalls = [e for e in events if e["event"] == "stall"]
    assert len(stalls) >= 3, "\n".join(map(brief, events)) or "no stall"
    for ev in events:
        check_event(ev)
    with_frames = [ev for ev in stalls if any(s.get("python") for s in ev["stacks"])]
    assert with_frames, "no stall with Python frames: " + "\n".join(map(brief, stalls))
    assert churn_frames(events), "no frame of a generated function in any stack"
    # Recursion 150 deep, walks stop at --py-depth 64: the deep stacks say they are cut.
    assert any(s.get("truncated") for ev in events for s in ev["stacks"]), \
        "no stack marked truncated with 150 frames and --py-depth 64"


@pytest.mark.parametrize("python", [p for p in interpreters()
                                    if p.id in ("pyenv-3.8", "pyenv-3.12", "debian-python3")])
def test_freed_code_objects_not_mixed(lab, python):
    """7b. A frame's function and file come from one code object: a generated churn_K lives in
    file <churn-K> only. A code object freed before loopstall resolved the stall (their memory
    and their name strings reused by other functions) must not yield one function's name with
    another's file. Nor one that is wholly another function: the loop thread only runs its own
    churn_K, so a background thread's one on its stacks is another code object read at a reused
    address. A frame that cannot be resolved any more is named "<freed code object>"."""
    run, info, events = churn_run(lab, python, 6)
    frames = churn_frames(events)
    assert frames, "no frame of a generated function in any stack"
    mixed = [(f, p, ln) for f, p, ln, _ in frames if f != "churn_" + p[len("<churn-"):-1]]
    assert not mixed, "%d of %d frames of generated functions name one function and another's " \
        "file, e.g. %s" % (len(mixed), len(frames), sorted(set(mixed))[:5])
    for f, p, ln, _ in frames:
        assert ln is None or 1 <= ln <= info["template_lines"], (f, p, ln)
    assert all(ev["tid"] != info["bg_tid"] for ev in events), "a stall of the background thread"
    foreign = [(f, p) for f, p, _, _ in frames if int(p[len("<churn-"):-1]) >= info["bg_first"]]
    assert not foreign, "%d of %d frames of the loop thread name a function only the background " \
        "thread runs, e.g. %s" % (len(foreign), len(frames), sorted(set(foreign))[:5])


# --- 8. hostile names ----------------------------------------------------------------------------

NAMES = {
    # 15 bytes at most (the kernel keeps that many): JSON specials and control characters.
    "specials": (b'q"\\\x01\t\x1b[\x7f}{,\x08/', b'\\"\x1f\r:"]\x02x\\'),
    # Cut by the kernel in the middle of a UTF-8 sequence; bytes that are never UTF-8.
    "not-utf8": (("\u00e9" * 8).encode(), b"\xff\xfe\"x\\\xc3"),
}


def decoded_lines(path):
    """Every line of loopstall's output as JSON, decoded strictly (RFC 8259: UTF-8)."""
    events = []
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise AssertionError("loopstall wrote a line that is not UTF-8 (%s): %r" % (e, raw))
        try:
            events.append(json.loads(text))
        except ValueError as e:
            raise AssertionError("not a JSON line (%s): %r" % (e, raw))
    return events


def expected_name(kernel_bytes):
    """What a comm must read as: exact when it is UTF-8; else its valid parts in order."""
    try:
        return kernel_bytes.decode("utf-8"), True
    except UnicodeDecodeError:
        return kernel_bytes.decode("utf-8", errors="ignore"), False


def same_name(got, want, exact):
    if exact:
        return got == want
    # A replacement character or an escape per bad byte is fine, dropping good ones is not.
    kept = "".join(c for c in got if c in want)
    return kept == want


@pytest.mark.parametrize("names", sorted(NAMES))
def test_hostile_names(lab, names):
    """8. Process and thread names with quotes, backslashes, control characters (and, second
    case, bytes that are not UTF-8): every output line is UTF-8 JSON, stall events carry the
    stalling thread's name and the summary the process's."""
    process_name, thread_name = NAMES[names]
    target = lab.target("fault_names.py", "--process-name", process_name.hex(),
                        "--thread-name", thread_name.hex(), "--actions", "main,thread,main")
    info = target.wait_ready()
    pid = info["pid"]
    out = lab.tmp_path / "out.jsonl"
    run = lab.loopstall("--json", "-o", out, "-p", pid, output=out)
    run.wait_tracing()
    time.sleep(WARMUP_S)
    reports = [target.trigger(), target.trigger()]
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and len(
            [e for e in decoded_lines(out) if e["event"] == "stall"]) < 2:
        time.sleep(0.1)
    stop(run)

    events = decoded_lines(out)
    proc_want, proc_exact = expected_name(bytes.fromhex(info["process_comm_hex"]))
    thread_want, thread_exact = expected_name(bytes.fromhex(info["thread_comm_hex"]))
    stalls = [e for e in events if e["event"] == "stall" and e["pid"] == pid
              and not starved(e)]
    by_tid = {e["tid"]: e for e in stalls}
    assert set(by_tid) == {info["main_tid"], info["thread_tid"]} and len(stalls) == 2, (
        "want one stall of each loop thread %s, got %s" % (
            [info["main_tid"], info["thread_tid"]], [brief(e) for e in stalls]))
    main_ev, thread_ev = by_tid[info["main_tid"]], by_tid[info["thread_tid"]]
    assert same_name(main_ev["comm"], proc_want, proc_exact), (main_ev["comm"], proc_want)
    assert same_name(thread_ev["comm"], thread_want, thread_exact), (
        thread_ev["comm"], thread_want)
    for ev in stalls:
        check_event(dict(ev, _arrival=None))
        check_300ms_sleep(ev)
    summaries = [e for e in events if e["event"] == "summary" and e["pid"] == pid]
    assert len(summaries) == 1, summaries
    assert same_name(summaries[0]["comm"], proc_want, proc_exact), (
        summaries[0]["comm"], proc_want)
    assert reports[0]["tid"] == info["main_tid"] and reports[1]["tid"] == info["thread_tid"]


# --- 8b. hostile files and frame names: loopstall reads, prints and waits only as it should -----

NOBODY = 65534
OTHER_UID = 4242  # owns a file nobody may read
OWN_LINE = 3  # of own.py: the target's own readable source, whose line must show
OWN_SOURCE = "# a module\n\nOWN_SOURCE_LINE_SHOWN = 1\n"
HOSTILE_MS = 300.0
# Frame names a terminal would act on, not UTF-8 (a lone surrogate: CPython keeps it as bytes
# that are not UTF-8), and long; with what the text output must show of each instead.
HOSTILE_NAMES = [
    ("clear\x1b[2J\x1b[H", "clear\\x1b[2J\\x1b[H"),
    ("title\x1b]0;pwned\x07", "title\\x1b]0;pwned\\x07"),
    ("cr\roverwrite\x7f", "cr\\x0doverwrite\\x7f"),
    ("bad\udcffutf8", "bad\\x"),
    ("long" + "\x1b" * 10240, "long\\x1b\\x1b"),
]


def hostile_dir(lab, scripts=("hostile_files.py", "ctl.py")):
    """A directory nobody can reach (pytest's tmp_path is root's alone) with the target
    program, its control directory and the files it names. Removed after the test."""
    base = Path(tempfile.mkdtemp(prefix="loopstall-hostile-"))
    lab.cleanups.append(lambda: shutil.rmtree(base, ignore_errors=True))
    os.chmod(base, 0o755)
    for script in scripts:
        shutil.copy(TARGETS / script, base / script)
    return base


def owned_file(path, text, uid, mode):
    path.write_text(text)
    os.chown(path, uid, uid)
    os.chmod(path, mode)


AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups"]


def nobody_target(lab, base, argv):
    """argv (its program in base) as nobody, with base/ctl as its control directory."""
    ctl = base / "ctl"
    target = harness.Target(ctl, DEBIAN_PYTHON, "hostile_files.py", [])
    os.chown(ctl, NOBODY, NOBODY)
    lab.targets.append(target)
    target.argv = AS_NOBODY + list(argv) + ["--ctl", str(ctl)]
    return target.start()


def hostile_target(lab, base, frames):
    """hostile_files.py as nobody, stalling under frames."""
    (base / "frames.json").write_text(json.dumps(frames))
    return nobody_target(lab, base, [DEBIAN_PYTHON, str(base / "hostile_files.py"), "--frames",
                                     str(base / "frames.json"), "--ms", str(HOSTILE_MS)])


def no_control_bytes(text_bytes):
    bad = sorted({b for b in text_bytes if (b < 0x20 and b != 0x0a) or b == 0x7f})
    assert not bad, "control bytes %s in the text output" % [hex(b) for b in bad]
    text_bytes.decode("utf-8")  # strict: raises on anything that is not UTF-8


def test_hostile_files_and_names(lab):
    """8b. A target running as nobody stalls under frames whose co_filename is a root-only
    file, /etc/shadow, another user's file, /proc/self/environ (loopstall's own, with a marker
    in it), a FIFO, /dev/zero, /dev/stdin, a 1 GB file without a newline, and its own source;
    and whose names hold ESC, BEL, CR, DEL, bytes that are not UTF-8 and 10 kB. Text and JSON
    runs at once: no line of any of those files is printed, the own file's line is, every
    stall is reported, the text has no control byte and is UTF-8, the JSON names round-trip,
    the JSON run honours -d within 1 s and the text run SIGINT; RSS stays small."""
    base = hostile_dir(lab)
    owned_file(base / "own.py", OWN_SOURCE, NOBODY, 0o600)
    owned_file(base / "secret.txt", "ROOT_ONLY_SECRET_LINE\n", 0, 0o600)
    owned_file(base / "other.txt", "OTHER_USER_SECRET_LINE\n", OTHER_UID, 0o600)
    os.mkfifo(base / "fifo", 0o666)
    with open(base / "big", "wb") as f:
        f.truncate(1 << 30)
    with open("/etc/shadow") as f:
        shadow_line = f.readline().strip()
    env_marker = "ENVIRON_SECRET_%d" % os.getpid()
    files = [str(base / "secret.txt"), "/etc/shadow", str(base / "other.txt"),
             "/proc/self/environ", str(base / "fifo"), "/dev/zero", "/dev/stdin",
             str(base / "big")]
    frames = [{"file": f, "line": 1, "name": "f%d" % i, "qualname": "q%d" % i}
              for i, f in enumerate(files)]
    frames += [{"file": "/x/%s.py" % name, "line": 1, "name": name, "qualname": "Q." + name}
               for name, _ in HOSTILE_NAMES]
    frames.append({"file": str(base / "own.py"), "line": OWN_LINE, "name": "own",
                   "qualname": "own"})
    target = hostile_target(lab, base, frames)
    pid = target.wait_ready()["pid"]
    text_out = lab.tmp_path / "out.txt"
    os.environ["LOOPSTALL_TEST_MARKER"] = env_marker
    try:
        text = lab.loopstall("-o", text_out, "-p", pid)
        duration = 6
        js = lab.loopstall("--json", "-d", duration, "-p", pid)
    finally:
        del os.environ["LOOPSTALL_TEST_MARKER"]
    text.wait_tracing()
    js_tracing = js.stderr.wait_for(lambda t: t.startswith("loopstall: tracing"), TIMEOUT_S)
    assert js_tracing, js.describe()
    tracing_at = [a for a, t in js.stderr.lines if t.startswith("loopstall: tracing")][0]
    time.sleep(WARMUP_S)
    for _ in range(2):
        target.trigger()
    wait_events(js, lambda e: e["event"] == "stall" and e["pid"] == pid, 2)
    hwm = vm_hwm_kib(text.proc.pid)
    assert js.wait_exit(STOP_TIMEOUT_S) == 0, js.describe()
    summary_at = [e["_arrival"] for e in js.events() if e["event"] == "summary"]
    sigint_at = time.monotonic()
    stop(text)
    stopped_in = time.monotonic() - sigint_at

    raw = text_out.read_bytes()
    no_control_bytes(raw)
    shown = raw.decode()
    for secret in ("ROOT_ONLY_SECRET_LINE", "OTHER_USER_SECRET_LINE", shadow_line, env_marker):
        assert secret not in shown, "%r printed:\n%s" % (secret, shown)
    stall_headers = [l for l in shown.splitlines() if l.startswith(tuple("0123456789"))
                     and " STALL " in l and " pid %d " % pid in l]
    assert len(stall_headers) == 2, "want 2 stalls in the text output:\n%s" % shown
    # Every stack through own.py shows its line: the sleep's, and an on-CPU sample's if one
    # met the stall on its way into the sleep.
    blocks = re.split(r"^(?=\d)", shown, flags=re.M)
    for block in [b for b in blocks if " STALL " in b.split("\n", 1)[0]]:
        assert block.count('own.py", line %d' % OWN_LINE) == block.count(
            "OWN_SOURCE_LINE_SHOWN = 1") >= 1, (
            "the target's own source line is not shown under each of its frames:\n%s" % block)
    for _, escaped in HOSTILE_NAMES:
        assert escaped in shown, "%r not in the text output:\n%s" % (escaped, shown)
    assert hwm < 200 * 1024, "loopstall's peak RSS %.1f MiB" % (hwm / 1024.0)

    stalls = [e for e in js.events() if e["event"] == "stall" and e["pid"] == pid]
    assert len(stalls) == 2, [brief(e) for e in stalls]
    assert summary_at and summary_at[0] - tracing_at <= duration + 1.0, (
        "-d %d: the summary came %.2f s after tracing began" % (
            duration, summary_at[0] - tracing_at))
    assert stopped_in <= STOP_TIMEOUT_S
    for ev in stalls:
        check_event(dict(ev, _arrival=None))
        py = [s["python"] for s in ev["stacks"] if s.get("python")]
        assert py, brief(ev)
        got = {f["function"]: f for f in py[0]}
        for name, _ in HOSTILE_NAMES:
            fn = [g for g in got if g[:3] == name[:3]]
            assert fn, "no frame %r in %s" % (name[:12], sorted(g[:12] for g in got))
            frame = got[fn[0]]
            if "\udcff" in name:
                assert same_name(frame["function"], name.replace("\udcff", ""), False), frame
                continue
            # Names are read up to a bound (hundreds of characters): a prefix of the name.
            assert len(frame["function"]) >= 100 or frame["function"] == name, frame
            assert name.startswith(frame["function"]), frame
            assert ("Q." + name).startswith(frame["qualname"]), frame
            assert ("/x/%s.py" % name).startswith(frame["file"]), frame


def test_hostile_files_in_own_root(lab):
    """8b. The target in a root of its own (pivot_root, as containers have), as nobody: its
    symlinks that lead out of its root, absolute and by "..", to a file anyone may read on the
    host, are resolved inside its root: the host file's line is never printed, the line of the
    root's own file the ".." form lands on is, and so is its own source's. Its /usr is an
    overlay with FIFOs wherever a debugger looks for the .gnu_debuglink files of its python
    and libc: the stall is still reported, its native frames symbolized."""
    base = hostile_dir(lab)
    root = base / "root"
    for d in ("usr", "tmp", "ctl", "app"):
        (root / d).mkdir(parents=True)
    for link in ("lib", "lib64", "bin"):
        if os.path.islink("/" + link):
            os.symlink(os.readlink("/" + link), root / link)
    (base / "ctl").mkdir()
    owned_file(base / "outside.txt", "OUTSIDE_THE_ROOT_LINE\n", 0, 0o644)
    owned_file(root / "outside.txt", "INSIDE_THE_ROOT_LINE\n", 0, 0o644)
    owned_file(root / "app" / "own.py", OWN_SOURCE, NOBODY, 0o600)
    os.symlink(str(base / "outside.txt"), root / "tmp" / "abs")
    os.symlink("../../outside.txt", root / "tmp" / "up")  # on the host: base/outside.txt
    for script in ("hostile_files.py", "ctl.py"):
        shutil.copy(TARGETS / script, root / "app" / script)
    frames = [{"file": "/tmp/abs", "line": 1, "name": "abs", "qualname": "abs"},
              {"file": "/tmp/up", "line": 1, "name": "up", "qualname": "up"},
              {"file": "/app/own.py", "line": OWN_LINE, "name": "own", "qualname": "own"}]
    (root / "app" / "frames.json").write_text(json.dumps(frames))
    # A private mount namespace whose root is `root` (pivot_root, as container runtimes do),
    # the host's /usr inside, the control directory at its own path inside too; then nobody
    # (the same process all along: its pid is the target's).
    (root / "old").mkdir()
    (root / "proc").mkdir()
    (root / str(base / "ctl").lstrip("/")).mkdir(parents=True)
    for d in ("upper", "work"):
        (base / d).mkdir()
    for binary in (os.path.realpath(DEBIAN_PYTHON), libc_path(os.getpid())):
        for fifo in debuglink_places(binary):
            (base / "upper" / fifo).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(base / "upper" / fifo)
    shell = ("mount --bind {root} {root} && mount -t overlay overlay -o lowerdir=/usr,"
             "upperdir={base}/upper,workdir={base}/work {root}/usr && "
             "mount --bind {ctl} {root}{ctl} && cd {root} && pivot_root . old && "
             "mount -t proc proc /proc && umount -l /old && "
             "exec setpriv --reuid={u} --regid={u} --clear-groups {py} /app/hostile_files.py "
             "--ctl {ctl} --frames /app/frames.json --ms {ms}").format(
                 root=root, base=base, ctl=base / "ctl", u=NOBODY, py=DEBIAN_PYTHON,
                 ms=HOSTILE_MS)
    target = harness.Target(base / "ctl", DEBIAN_PYTHON, "hostile_files.py", [])
    os.chown(base / "ctl", NOBODY, NOBODY)
    target.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
    lab.targets.append(target)
    target.start()
    pid = target.wait_ready()["pid"]
    out = lab.tmp_path / "out.txt"
    run = lab.loopstall("-o", out, "-p", pid)
    run.wait_tracing()
    time.sleep(WARMUP_S)
    target.trigger()
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline and b"own.py" not in out.read_bytes():
        time.sleep(0.1)
    stop(run)
    shown = out.read_bytes().decode()
    assert "OUTSIDE_THE_ROOT_LINE" not in shown, shown
    assert "INSIDE_THE_ROOT_LINE" in shown, shown
    assert "OWN_SOURCE_LINE_SHOWN = 1" in shown, shown
    assert "clock_nanosleep+" in shown, shown


def debuglink_places(binary):
    """Where GDB and libdwfl look for the .gnu_debuglink file of /usr/<...>/binary, relative
    to /usr: next to it, in .debug/ there, under /usr/lib/debug."""
    dump = subprocess.run(["readelf", "--string-dump=.gnu_debuglink", binary],
                          capture_output=True, text=True).stdout
    names = re.findall(r"\]\s+(\S+\.debug)\s*$", dump, re.M)
    if not names:
        return []
    rel = os.path.dirname(os.path.relpath(binary, "/usr"))
    return [os.path.join(rel, names[0]), os.path.join(rel, ".debug", names[0]),
            os.path.join("lib/debug/usr", rel, names[0])]


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="no `node` on PATH (Debian package nodejs)")
def test_perf_map_symlink_not_followed(lab):
    """8b. A Node process as nobody whose /tmp/perf-PID.map is a symlink to a root-only file
    in perf map format: loopstall does not read it (no name of it in any frame); once the
    process replaces it with a map of its own, that one is read (names its JIT code)."""
    base = hostile_dir(lab, ("node_http.js", "node_ctl.js"))
    # One entry over all of user space: whatever JIT code the stall runs, it names it.
    entry = "1000 7ffffffff000 %s\n"
    owned_file(base / "secret.map", entry % "LEAKED_PERF_SYMBOL", 0, 0o600)
    target = nobody_target(lab, base, [NODE, str(base / "node_http.js")])
    info = target.wait_ready()
    perf_map = Path("/tmp/perf-%d.map" % info["pid"])
    lab.cleanups.append(lambda: perf_map.unlink(missing_ok=True))
    os.symlink(base / "secret.map", perf_map)
    os.lchown(perf_map, NOBODY, NOBODY)  # as if the target had made it
    run = lab.loopstall("--json", "-p", info["pid"])
    run.wait_tracing()
    time.sleep(WARMUP_S)

    def spin_stalls(n):
        conn = http.client.HTTPConnection("127.0.0.1", info["port"], timeout=TIMEOUT_S)
        conn.request("GET", "/spin?ms=300")
        assert conn.getresponse().status == 200
        conn.close()
        return wait_events(run, lambda e: e["event"] == "stall" and e["duration_ms"] >= 250, n)

    leaked = spin_stalls(1)
    perf_map.unlink()
    owned_file(perf_map, entry % "OWN_PERF_SYMBOL", NOBODY, 0o644)
    time.sleep(1.2)  # a map not found is looked for again after a second
    own = spin_stalls(len(leaked) + 1)[len(leaked):]
    stop(run)
    events = [e for e in run.events() if e["event"] == "stall"]
    assert leaked and own, [brief(e) for e in events]
    assert not any("LEAKED_PERF_SYMBOL" in json.dumps(e) for e in run.events()), [
        brief(e) for e in events]
    symbols = [u["symbol"] for e in own for s in e["stacks"] for u in s["user"]]
    assert "OWN_PERF_SYMBOL" in symbols, "the target's own perf map was not read: %s" % symbols


MEMORY_WARNING = "its memory did not answer a read"


def test_hostile_memory_fuse(lab):
    """8c. A target (nobody, serving its own FUSE mount) whose code object's co_filename points
    into a mapped FUSE file it never answers reads of: loopstall's read of that name waits for
    ever. Two runs at once, with another Python loop traced too: each says once, naming the
    pid, that its memory did not answer; the other loop's stalls keep their Python frames; the
    target's later stalls are still reported (without frames: its reads fail fast while the
    first is pending); the -d run's summary comes within 1 s of its deadline and the SIGINT
    run's within 1 s of the signal; RSS stays small; both exit 0 once the target is gone
    (which ends the read: its FUSE connection aborts)."""
    base = hostile_dir(lab, ("hostile_memory.py", "ctl.py"))
    ctl = base / "ctl"
    ctl.mkdir()
    os.chown(ctl, NOBODY, NOBODY)
    target = harness.Target(ctl, DEBIAN_PYTHON, "hostile_memory.py", [])
    target.argv = [DEBIAN_PYTHON, str(base / "hostile_memory.py"), "--ctl", str(ctl),
                   "--uid", str(NOBODY), "--actions", "poisoned,plain,plain,plain", "--ms",
                   str(HOSTILE_MS)]
    lab.targets.append(target)
    target.start()
    pid = target.wait_ready()["pid"]
    # One action more than triggered: both stay up until the test ends them.
    other = lab.target("fault_loop.py", "--actions", "sleep,sleep,sleep", "--ms", HOSTILE_MS)
    other_pid = other.wait_ready()["pid"]
    duration = 6
    timed = lab.loopstall("--json", "-d", duration, "-p", pid, "-p", other_pid)
    stopped = lab.loopstall("--json", "-p", pid, "-p", other_pid)
    for run in (timed, stopped):
        run.wait_tracing()
    tracing_at = [a for a, t in timed.stderr.lines if t.startswith("loopstall: tracing")][0]
    time.sleep(WARMUP_S)

    def stalls(run, of):
        return [e for e in run.events() if e["event"] == "stall" and e["pid"] == of]

    target.trigger()
    for run in (timed, stopped):
        wait_until(lambda: MEMORY_WARNING in run.stderr.text(), TIMEOUT_S, "the warning")
    for n in (1, 2):
        other.trigger()
        target.trigger()
        for run in (timed, stopped):
            wait_events(run, lambda e: e["event"] == "stall" and e["pid"] == other_pid, n)
            wait_events(run, lambda e: e["event"] == "stall" and e["pid"] == pid, n + 1)
    hwm = vm_hwm_kib(stopped.proc.pid)
    sigint_at = time.monotonic()
    stopped.proc.send_signal(signal.SIGINT)
    for run in (timed, stopped):
        wait_until(lambda: any(e["event"] == "run_summary" for e in run.events()),
                   duration + TIMEOUT_S, "the run summary")
    target.kill()
    for run in (timed, stopped):
        assert run.wait_exit(STOP_TIMEOUT_S) == 0, run.describe()

    summary_at = [e["_arrival"] for e in timed.events() if e["event"] == "run_summary"][0]
    assert summary_at - tracing_at <= duration + 1.0, (
        "-d %d: the summary came %.2f s after tracing began" % (duration, summary_at - tracing_at))
    sigint_summary = [e["_arrival"] for e in stopped.events() if e["event"] == "run_summary"][0]
    assert sigint_summary - sigint_at <= 1.0, "the summary came %.2f s after SIGINT" % (
        sigint_summary - sigint_at)
    assert hwm < 200 * 1024, "loopstall's peak RSS %.1f MiB" % (hwm / 1024.0)
    for run in (timed, stopped):
        warnings = [t for _, t in run.stderr.lines if MEMORY_WARNING in t]
        assert len(warnings) == 1 and warnings[0].startswith("loopstall: pid %d: " % pid), (
            run.describe())
        own = stalls(run, pid)
        assert len(own) == 3, [brief(e) for e in own]
        assert not any("poisoned_stall" in json.dumps(e) for e in own), [brief(e) for e in own]
        others = stalls(run, other_pid)
        assert len(others) == 2, [brief(e) for e in others]
        for ev in others:
            check_event(dict(ev, _arrival=None))
            assert any(s.get("python") for s in ev["stacks"]), brief(ev)


# --- 9. a reader that does not keep up ----------------------------------------------------------

F_SETPIPE_SZ = 1031


def test_sigint_while_stdout_pipe_is_full(lab):
    """9. loopstall --json | a consumer that stops reading (a 4 KB pipe, full): 4 stalls, then
    Ctrl-C, then the consumer reads again. Every stall is still printed, as whole JSON lines,
    before the summary: a write interrupted by the signal must not drop or cut an event."""
    target = lab.target("fault_loop.py", "--actions", "sleep,sleep,sleep,sleep,count",
                        "--ms", 150)
    info = target.wait_ready()
    read_end, write_end = os.pipe()
    try:
        import fcntl
        fcntl.fcntl(write_end, F_SETPIPE_SZ, 4096)
    except OSError as e:
        os.close(read_end)
        os.close(write_end)
        pytest.skip("cannot shrink the pipe (F_SETPIPE_SZ): %s" % e)
    err_path = lab.tmp_path / "loopstall.err"
    with open(err_path, "wb") as err:
        proc = subprocess.Popen([harness.LOOPSTALL, "--json", "-p", str(info["pid"])],
                                stdin=subprocess.DEVNULL, stdout=write_end, stderr=err)
    os.close(write_end)
    try:
        wait_until(lambda: b"loopstall: tracing" in err_path.read_bytes(), TIMEOUT_S,
                   "loopstall: tracing")
        time.sleep(WARMUP_S)
        for _ in range(4):
            target.trigger()
        time.sleep(1.5)  # the events are due; loopstall blocks writing them into the full pipe
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        with os.fdopen(read_end, "rb") as pipe:
            raw = pipe.read()
        rc = proc.wait(STOP_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    harness.check_no_sanitizer_report(err_path.read_text(errors="replace"))
    assert rc == 0, "loopstall exited %s:\n%s" % (rc, err_path.read_text(errors="replace"))
    events, bad = [], []
    for line in raw.split(b"\n"):
        if line.strip():
            try:
                events.append(json.loads(line.decode("utf-8")))
            except ValueError:
                bad.append(line)
    assert not bad, "%d line(s) cut or glued together, e.g. %r ... %r" % (
        len(bad), bad[0][:120], bad[0][-200:])
    summary = [e for e in events if e["event"] == "summary"]
    stalls = [e for e in events if e["event"] == "stall"]
    assert len(summary) == 1, events
    assert summary[0]["lost_events"] == 0, summary
    assert len(stalls) == summary[0]["stalls"] >= 4, (
        "the kernel counted %d stalls, %d stall lines were printed (none lost in the ring "
        "buffer): events dropped while writing to stdout" % (summary[0]["stalls"], len(stalls)))
