"""Stall detection, end to end: a real Python loop blocks in one known way, loopstall must say so.

Each test attaches (-p) to a target that is already idling in its event loop, waits for
`loopstall: tracing`, triggers a known number of known stalls, stops loopstall with SIGINT and
checks the values of the JSON events. Timing tolerances are wide on purpose (2 noisy cores).
"""

import collections
import datetime
import os
import subprocess
import time

import pytest

from harness import (DEBIAN_PYTHON, brief, caused_stalls, check_300ms_sleep, check_lasted,
                     check_stall_shape, fs_type, kernel_symbols, missing, pyenv_python,
                     pyenv_root, python_version, starved)

SETTLE_S = 10.0  # how long a stall event may take to arrive after the loop polls again






def interpreters():
    params = []
    for minor in range(8, 14):
        python = pyenv_python(minor)
        marks = () if python else pytest.mark.skip(
            reason=missing("pyenv CPython 3.%d under %s/versions" % (minor, pyenv_root())))
        params.append(pytest.param(python, id="pyenv-3.%d" % minor, marks=marks))
    marks = () if os.access(DEBIAN_PYTHON, os.X_OK) else pytest.mark.skip(
        reason=missing(DEBIAN_PYTHON))
    params.append(pytest.param(DEBIAN_PYTHON, id="debian-python3", marks=marks))
    return params


def sleep_expectations(python):
    """What a time.sleep() stall looks like from the kernel, per CPython version.

    CPython 3.11 made time.sleep() use clock_nanosleep(); before, it used select(), which glibc
    2.35+ issues as the pselect6 system call (both end in core_sys_select/do_select).
    """
    if python_version(python) >= (3, 11):
        return {"clock_nanosleep"}, {"do_nanosleep", "hrtimer_nanosleep", "common_nsleep"}
    return {"select", "pselect6"}, {"do_select", "core_sys_select"}


def attach_and_trigger(lab, target, triggers, *loopstall_args):
    """Attach to a ready target, trigger `triggers` actions, stop loopstall.

    Returns (loopstall run, target reports). The target is started with one action more than
    triggered, so it is still alive, idling in its loop, when loopstall is stopped.
    """
    info = target.wait_ready()
    run = lab.loopstall("--json", "-p", info["pid"], *loopstall_args)
    run.wait_tracing()
    reports = [target.trigger() for _ in range(triggers)]
    # The stall event is due when the loop is back in its poll call; give it time to arrive.
    deadline = time.monotonic() + SETTLE_S
    while (len([e for e in run.of_kind("stall", info["pid"]) if not starved(e)]) < triggers
           and time.monotonic() < deadline and run.proc.poll() is None):
        time.sleep(0.05)
    time.sleep(0.3)  # room for a wrong extra event to show up
    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())
    assert target.proc.poll() is None, "target died while traced:\n" + target.output()
    return run, reports


def check_summary(run, pid):
    """The one summary of pid; its stall count matches the stall events printed."""
    summaries = run.of_kind("summary", pid)
    assert len(summaries) == 1, "want one summary for pid %d, got %s" % (pid, summaries)
    s = summaries[0]
    assert s["stalls"] == len(run.of_kind("stall", pid)), s
    assert s["iterations"] > 0, s
    assert s["lost_events"] == 0, s
    return s


def check_sleep_stall(ev, pid, tid, syscalls, kernel_names):
    """One time.sleep(0.3) stall of the loop thread tid."""
    check_stall_shape(ev)
    assert ev["pid"] == pid and ev["tid"] == tid, brief(ev)
    check_300ms_sleep(ev)
    assert ev["off_cpu_ms"] > 0.8 * ev["duration_ms"], brief(ev)
    assert ev["stacks"], "stall without stacks: " + brief(ev)
    top = ev["stacks"][0]
    assert top["kind"] == "off_cpu", brief(ev)
    assert top["reason"] == "sleep", brief(ev)
    assert top["syscall"] in syscalls, "syscall %r, want one of %s\n%s" % (
        top["syscall"], sorted(syscalls), brief(ev))
    frames = kernel_symbols(top)
    assert kernel_names & set(frames), "kernel frames %s show none of %s" % (
        frames, sorted(kernel_names))
    # The innermost user frame is the libc wrapper of the sleeping system call.
    assert top["user"] and "libc" in (top["user"][0].get("module") or ""), (
        "innermost user frame not in libc: %s" % top["user"][:3])


def check_live(ev, report):
    """Stall events are printed as they happen, not buffered until loopstall exits."""
    assert ev["_arrival"] - report["end"] < 8.0, (  # buffered events would take > SETTLE_S
        "stall event read %.1f s after the stall ended" % (ev["_arrival"] - report["end"]))


def check_began_at(ev, report):
    """`time` is when the stalled iteration began: just before the action started, or as much
    later as the thread then waited for a CPU."""
    began = datetime.datetime.strptime(ev["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()
    assert -0.1 <= report["wall_start"] - began <= 0.1 + ev["runqueue_ms"] / 1000.0, (
        "stall time %s is %.3f s away from the action's start" % (
            ev["time"], report["wall_start"] - began))


@pytest.mark.parametrize("python", interpreters())
def test_time_sleep_in_coroutine(lab, python):
    """1. time.sleep(0.3) in a coroutine: one 300 ms off-CPU 'sleep' stall per sleep."""
    syscalls, kernel_names = sleep_expectations(python)
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 3,
                        python=python)
    run, reports = attach_and_trigger(lab, target, 2)
    pid, tid = target.pid, target.info["loop_tids"][0]
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 2, "2 sleeps triggered, got %d stalls:\n%s" % (
        len(stalls), "\n".join(map(brief, stalls)))
    for ev, report in zip(stalls, reports):
        check_sleep_stall(ev, pid, tid, syscalls, kernel_names)
        check_began_at(ev, report)
        check_live(ev, report)
    check_summary(run, pid)


def test_long_wait_after_a_burst_of_short_ones(lab):
    """1c. Twelve 1 ms sleeps from twelve different Python stacks, then a 300 ms sleep, in one
    iteration: more distinct waits than the iteration's stack slots. The long one, the cause of
    the stall, keeps its stack with its Python frames; short ones give up their slots."""
    target = lab.target("stall_target.py", "--action", "burst", "--ms", 300, "--count", 2)
    run, reports = attach_and_trigger(lab, target, 1)
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls))
    ev = stalls[0]
    long_waits = [st for st in ev["stacks"] if st["kind"] == "off_cpu" and st["ms"] >= 250]
    assert len(long_waits) == 1, brief(ev)
    innermost = (long_waits[0].get("python") or [{}])[0]
    assert innermost.get("function") == "act_burst", long_waits[0].get("python")
    assert ev["untracked_ms"] < 50, brief(ev)


@pytest.mark.parametrize("loop", ["uvloop", "trio"])
def test_time_sleep_other_loops(lab, loop):
    """8. The same time.sleep(0.3) stall on uvloop (libuv) and trio loops (Debian python3), with
    its Python frames (act_sleep innermost) and its task: the target's `async def main`, which
    trio's scheduler runs as asyncio's does."""
    if subprocess.run([DEBIAN_PYTHON, "-c", "import " + loop], capture_output=True).returncode:
        pytest.skip(missing("%s module of %s (Debian package python3-%s)" % (loop, DEBIAN_PYTHON,
                                                                              loop)))
    syscalls, kernel_names = sleep_expectations(DEBIAN_PYTHON)
    target = lab.target("stall_target.py", "--loop", loop, "--action", "sleep", "--ms", 300,
                        "--count", 3)
    run, reports = attach_and_trigger(lab, target, 2)
    assert target.info["loop"] == loop
    pid, tid = target.pid, target.info["loop_tids"][0]
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 2, "2 sleeps triggered on %s, got %d stalls:\n%s" % (
        loop, len(stalls), "\n".join(map(brief, stalls)))
    runner = "run_trio" if loop == "trio" else "run_asyncio"
    for ev, report in zip(stalls, reports):
        check_sleep_stall(ev, pid, tid, syscalls, kernel_names)
        check_began_at(ev, report)
        check_live(ev, report)
        frames = ev["stacks"][0].get("python") or []
        assert frames and frames[0]["function"] == "act_sleep" and \
            frames[0]["file"].endswith("stall_target.py"), brief(ev)
        assert (ev["task"] or {}).get("coroutine") == runner + ".<locals>.main", (ev["task"],
                                                                                   brief(ev))
    check_summary(run, pid)


def test_cpu_bound_coroutine(lab):
    """2. A pure-Python busy loop of 300 ms CPU time: an on-CPU stall with on-CPU stacks."""
    target = lab.target("stall_target.py", "--action", "busy", "--ms", 300, "--count", 2)
    run, reports = attach_and_trigger(lab, target, 1)
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall"
    ev, cpu_ms = stalls[0], reports[0]["cpu_ms"]
    check_stall_shape(ev)
    assert ev["tid"] == target.info["loop_tids"][0], brief(ev)
    assert 255 <= ev["duration_ms"] <= reports[0]["ms"] * 1.15 + 50, (reports[0], brief(ev))
    # The CPU time the thread measured itself, within 15%.
    assert abs(ev["on_cpu_ms"] - cpu_ms) <= 0.15 * cpu_ms + 5, (cpu_ms, brief(ev))
    # On-CPU dominates. On an overloaded machine the thread also waits for a CPU; that wait is
    # runqueue_ms, not the loop's doing, so it is left out of the share.
    assert ev["on_cpu_ms"] > 0.9 * (ev["duration_ms"] - ev["runqueue_ms"]), brief(ev)
    assert ev["off_cpu_ms"] < 0.1 * ev["duration_ms"], brief(ev)
    on_cpu = [s for s in ev["stacks"] if s["kind"] == "on_cpu"]
    assert on_cpu, "no on_cpu stack: " + brief(ev)
    # A stack captured when the thread was preempted before any sample has 0 samples (its ms
    # is the CPU time up to then, docs/design.md); the sampler's own stacks must be there too.
    assert any(s["samples"] > 0 for s in on_cpu), brief(ev)
    # A hot loop has few distinct (Python) stacks, so the listed on-CPU stacks must account for
    # most of the on-CPU time (samples x period), not a fraction of the samples.
    sampled = sum(s["ms"] for s in on_cpu)
    assert sampled >= 0.5 * ev["on_cpu_ms"], (
        "on-CPU stacks hold %.1f ms (%d samples) of %.1f ms on CPU\n%s" % (
            sampled, sum(s["samples"] for s in on_cpu), ev["on_cpu_ms"], brief(ev)))
    check_summary(run, target.pid)


def test_blocking_socket_recv(lab):
    """3. socket.recv() on a TCP peer that answers after 200 ms: a ~200 ms 'net' stall."""
    target = lab.target("stall_target.py", "--action", "recv", "--ms", 200, "--count", 3)
    run, reports = attach_and_trigger(lab, target, 2)
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 2, "\n".join(map(brief, stalls)) or "no stall"
    for ev in stalls:
        check_stall_shape(ev)
        assert ev["tid"] == target.info["loop_tids"][0], brief(ev)
        check_lasted(ev, 170, 260)
        by_reason = collections.Counter()
        for s in ev["stacks"]:
            if s["kind"] == "off_cpu":
                by_reason[s["reason"]] += s["ms"]
        assert by_reason and by_reason.most_common(1)[0][0] == "net", (
            "off-CPU ms by reason %s\n%s" % (dict(by_reason), brief(ev)))
        top = ev["stacks"][0]
        assert top["kind"] == "off_cpu" and top["reason"] == "net", brief(ev)
        assert (top["syscall"] or "").startswith("recv"), brief(ev)
    check_summary(run, target.pid)


def test_fsync_in_coroutine(lab):
    """4. Writing 32 MB and fsync() in a coroutine (-t 1): a stall blocked on the disk."""
    work = "/var/tmp"
    if fs_type(work) in ("tmpfs", "ramfs"):
        pytest.skip("%s is %s, not a disk: fsync would not wait" % (work, fs_type(work)))
    target = lab.target("stall_target.py", "--action", "fsync", "--mb", 32, "--dir", work,
                        "--count", 2)
    run, reports = attach_and_trigger(lab, target, 1, "-t", 1)
    stalls = run.of_kind("stall", target.pid)
    assert stalls, "no stall at -t 1 for a %.0f ms write+fsync" % reports[0]["ms"]
    for ev in stalls:
        check_stall_shape(ev)
        assert ev["tid"] == target.info["loop_tids"][0], brief(ev)
    # The fsync itself is a wait of reason disk (the syscall names it too, but a wrong reason
    # with the right syscall is the bug this catches).
    disk = [ev for ev in stalls if any(s.get("reason") == "disk" for s in ev["stacks"])]
    assert disk, "no stall with a 'disk' stack among:\n" + "\n".join(map(brief, stalls))
    # The action took reports[0]["ms"] in the target, its fsync reports[0]["fsync_ms"]: the stall
    # that holds it lasts at least the fsync, and no longer than the action plus noise.
    longest = max(ev["duration_ms"] for ev in disk)
    assert reports[0]["fsync_ms"] * 0.95 - 1 <= longest <= reports[0]["ms"] * 1.15 + 50, (
        longest, reports[0])


def test_stall_progress_before_stall_ends(lab):
    """6. A 3 s time.sleep: stall_progress arrives while the loop is still stuck."""
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 3000, "--count", 2)
    run, reports = attach_and_trigger(lab, target, 1, "-t", 100)
    pid = target.pid
    ended = reports[0]["end"]  # CLOCK_MONOTONIC, like the arrival stamps
    progress = run.of_kind("stall_progress", pid)
    early = [ev for ev in progress if ev["_arrival"] < ended]
    assert early, "no stall_progress read before the sleep ended (%d progress events, " \
        "arrivals %s, sleep ended at %.3f)" % (len(progress), [e["_arrival"] for e in progress],
                                               ended)
    for ev in progress:
        check_stall_shape(ev)
        assert ev["tid"] == target.info["loop_tids"][0], brief(ev)
        assert 100 <= ev["duration_ms"] <= 3000, brief(ev)
    # docs/json.md: the first when the iteration has run max(threshold, 1 s), then at most once
    # per that interval: here about 1 s and 2 s into the 3 s sleep.
    interval = max(100, 1000)
    assert progress[0]["duration_ms"] >= 0.9 * interval, brief(progress[0])
    for before, after in zip(progress, progress[1:]):
        assert after["duration_ms"] - before["duration_ms"] >= 0.9 * interval, (
            "stall_progress more often than every %d ms: %.1f then %.1f" % (
                interval, before["duration_ms"], after["duration_ms"]))
    assert len(progress) <= 3000 // interval + 1, len(progress)
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no final stall"
    final = stalls[0]
    check_stall_shape(final)
    check_lasted(final, 2550, 3450)
    assert final["stacks"][0]["reason"] == "sleep", brief(final)
    assert all(ev["_arrival"] <= final["_arrival"] for ev in progress)
    assert all(ev["duration_ms"] <= final["duration_ms"] for ev in progress)


def test_two_loops_only_blocking_thread(lab):
    """7. Two asyncio loops in two threads, one blocks: stalls name only the blocking tid."""
    target = lab.target("two_loops.py", "--ms", 300, "--count", 3)
    run, reports = attach_and_trigger(lab, target, 2)
    blocking, healthy = target.info["blocking_tid"], target.info["healthy_tid"]
    assert blocking != healthy
    stalls = caused_stalls(run, target.pid)
    tids = [ev["tid"] for ev in stalls]
    assert healthy not in tids, "a stall names the healthy loop thread %d: %s" % (healthy, tids)
    assert tids == [blocking, blocking], "want 2 stalls of tid %d, got tids %s" % (blocking, tids)
    for ev in stalls:
        check_stall_shape(ev)
        check_300ms_sleep(ev)
        assert ev["stacks"][0]["reason"] == "sleep", brief(ev)
    summary = check_summary(run, target.pid)
    # Both loops iterate: the healthy one every 10 ms, the blocker's poll every 20 ms.
    assert summary["iterations"] >= 50, summary
