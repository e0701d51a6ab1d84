"""The on-CPU / off-CPU / runqueue split of a stall against the scheduler's own accounts.

The target reads its loop thread's /proc/thread-self/schedstat before and after each action
(CPU time and run delay, the time it waited runnable for a CPU): loopstall's on_cpu_ms and
runqueue_ms must match those, not only add up to the duration. Each case runs several stalls
in a row: a misaccounted transition is intermittent.
"""

import datetime
import os
import statistics
import subprocess
import time

import pytest

from harness import DEBIAN_PYTHON, brief, caused_stalls, check_stall_shape

STALLS = 4
SETTLE_S = 10.0
# The action is measured inside the stalled iteration; the iteration also runs the loop's own
# code around it (a few ms of CPU, and a preemption more or less under a hog).
SLACK_MS = 8.0


def pin(pid, cpu):
    """Every thread of pid onto one CPU (sched_setaffinity is per thread)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), {cpu})


def one_cpu():
    return max(os.sched_getaffinity(0))


class Hog:
    """A pure CPU hog (SCHED_OTHER) pinned to one CPU."""

    def __init__(self, cpu):
        self.proc = subprocess.Popen(["taskset", "-c", str(cpu), DEBIAN_PYTHON, "-c",
                                      "while True: pass"])

    def stop(self):
        self.proc.kill()
        self.proc.wait(10)


def began(ev):
    return datetime.datetime.strptime(ev["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def near(measured, expected, what, ev, report, above=0.0):
    """measured within 15% (and SLACK_MS) of expected, or up to `above` more."""
    slack = 0.15 * expected + SLACK_MS
    assert -slack <= measured - expected <= slack + above, (
        "%s %.1f ms, the scheduler says %.1f ms\nstall: %s\ntarget: %s"
        % (what, measured, expected, brief(ev), report))


def stalls_for(lab, target, cpu=None, options=()):
    """Attach, trigger STALLS actions, return [(stall event, target report)] in order."""
    info = target.wait_ready()
    if cpu is not None:
        pin(info["pid"], cpu)
    run = lab.loopstall("--json", "-p", info["pid"], *options)
    run.wait_tracing()
    reports = [target.trigger() for _ in range(STALLS)]
    deadline = time.monotonic() + SETTLE_S
    while len(run.of_kind("stall", info["pid"])) < STALLS and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.stop() == 0, run.describe()
    stalls = run.of_kind("stall", info["pid"])
    # A stall is matched to the action it contains: the one that began just before it.
    pairs = []
    for report in reports:
        found = [ev for ev in stalls if 0 <= report["wall_start"] - began(ev) <= 0.1]
        assert len(found) == 1, "action %s: stalls %s" % (report, [brief(e) for e in stalls])
        check_stall_shape(found[0])
        pairs.append((found[0], report))
    return pairs


@pytest.mark.parametrize("hog", [True, False], ids=["hog", "alone"])
def test_busy_split_matches_schedstat(lab, hog):
    """A loop thread spinning 300 ms of its own CPU time, pinned to one CPU, with a CPU hog on
    that CPU (runqueue ~ half the stall) or without: on-CPU is the thread's CPU time, runqueue
    its run delay, each within 15%."""
    cpu = one_cpu()
    target = lab.target("stall_target.py", "--action", "busy", "--ms", 300,
                        "--count", STALLS + 1)
    hogs = [Hog(cpu)] if hog else []
    try:
        pairs = stalls_for(lab, target, cpu)
    finally:
        for h in hogs:
            h.stop()
    for ev, report in pairs:
        near(ev["on_cpu_ms"], report["sched_cpu_ms"], "on-CPU", ev, report,
             above=report["host_steal_ms"])  # steal: on a CPU for loopstall, not for schedstat
        near(ev["runqueue_ms"], report["run_delay_ms"], "runqueue", ev, report)
        assert ev["off_cpu_ms"] <= SLACK_MS, brief(ev)
        if hog:
            assert report["run_delay_ms"] >= 50, "the hog did not share the CPU: %s" % report


def test_preempted_busy_stall_has_its_stack(lab):
    """A 300 ms pure-Python spin sharing its CPU with a hog, sampled at 1 Hz (so the samples
    all but never land on it, as 99 Hz samples can miss a thread that runs half the time): its
    preemptions show where it ran, an on-CPU stack with act_busy's frame holding its CPU time."""
    cpu = one_cpu()
    target = lab.target("stall_target.py", "--action", "busy", "--ms", 300,
                        "--count", STALLS + 1)
    hog = Hog(cpu)
    try:
        pairs = stalls_for(lab, target, cpu, ("--sample-hz", 1))
    finally:
        hog.stop()
    for ev, report in pairs:
        assert report["run_delay_ms"] >= 50, "the hog did not share the CPU: %s" % report
        on_cpu = [s for s in ev["stacks"] if s["kind"] == "on_cpu"]
        assert on_cpu and any(f["function"] == "act_busy" for f in on_cpu[0]["python"]), (
            brief(ev))
        # The first preemption after the sampling point (half the threshold) holds the CPU
        # time so far (about half of the 50 ms then, under the hog); later ones add nothing.
        # A sample that does land adds its period, a second.
        if on_cpu[0]["samples"] == 0:
            assert 5 <= on_cpu[0]["ms"] <= ev["on_cpu_ms"], brief(ev)
        assert on_cpu[0]["user"], brief(ev)


def test_futex_pingpong_invents_no_runqueue(lab):
    """Inside a stall the loop thread and a helper thread hand a token back and forth through a
    threading.Condition: thousands of futex sleeps, each woken (often from the other CPU) while
    the sleeper may still be switching out. The runqueue time is the run delay the scheduler
    counted, not more; on-CPU is the thread's CPU time."""
    target = lab.target("stall_target.py", "--action", "pingpong", "--ms", 300,
                        "--count", STALLS + 1)
    for ev, report in stalls_for(lab, target):
        assert ev["duration_ms"] >= 100, brief(ev)
        near(ev["on_cpu_ms"], report["sched_cpu_ms"], "on-CPU", ev, report,
             above=report["host_steal_ms"])  # steal: on a CPU for loopstall, not for schedstat
        near(ev["runqueue_ms"], report["run_delay_ms"], "runqueue", ev, report)


def launched_wake_loop(lab, cpu, *args):
    """wake_loop.py pinned to cpu, launched by loopstall for its whole life; (summary, report,
    run). SCHED_BATCH: its wakeups never preempt what runs on the CPU, so behind a hog each one
    waits for the hog's slice to end."""
    out = lab.tmp_path / "loopstall.jsonl"
    target = lab.target("wake_loop.py", *args, start=False)
    run = lab.loopstall("--json", "--output", out, "--", "taskset", "-c", str(cpu),
                        "chrt", "--batch", "0", *target.argv, output=out)
    assert run.wait_exit(60) == 0, run.describe()
    target.wait_ready(5)
    reports = target.reports()
    assert len(reports) == 1, "target did not finish: %s" % reports
    summaries = run.of_kind("summary", target.pid)
    assert len(summaries) == 1, run.describe()
    return summaries[0], reports[0], run


def test_woken_poll_waits_for_cpu_off_the_iteration(lab):
    """Each iteration begins with a wakeup out of a blocked epoll_wait, after which the loop
    thread waits for its CPU behind a hog, then runs a 2 ms callback. The wait belongs to the
    idle loop: the busy time of the iterations is the callbacks' own wall time, not the wait
    too, and no stall comes of it; every iteration is counted."""
    cpu = one_cpu()
    hog = Hog(cpu)
    try:
        s, report, run = launched_wake_loop(lab, cpu, "--iterations", 150, "--sleep-ms", 10,
                                            "--callback-ms", 2)
    finally:
        hog.stop()
    callbacks = report["callbacks"]
    callback_ms = statistics.median(report["callback_ms"])
    waits_ms = report["sleep_run_delay_ms"] / callbacks
    assert waits_ms >= 1.0, "the hog did not delay the wakeups: %s" % report
    # The histogram's buckets are a quarter of a power of two wide.
    assert abs(s["busy_ms"]["p50"] - callback_ms) <= 0.25 * callback_ms + 0.3, (
        "median busy %.2f ms, median callback %.2f ms, wait for a CPU after each wakeup "
        "%.2f ms\n%s" % (s["busy_ms"]["p50"], callback_ms, waits_ms, s))
    long_callbacks = sum(ms >= 100 for ms in report["callback_ms"])
    stalls = caused_stalls(run, s["pid"])
    assert len(stalls) <= long_callbacks, "\n".join(map(brief, stalls))
    # The last callback's iteration never ends: the loop stops instead of polling again.
    assert callbacks - 1 <= s["iterations"] <= 1.05 * callbacks + 10, (s, callbacks)


def test_idle_loop_is_not_busy(lab):
    """A loop that only sleeps (every poll blocks, every wakeup goes straight back to the poll):
    its iterations take microseconds, not the sleeps."""
    s, report, run = launched_wake_loop(lab, one_cpu(), "--iterations", 200, "--sleep-ms", 5,
                                        "--callback-ms", 0)
    # Counted from the poll's return, each would be the 5 ms sleep; a preemption inside an
    # iteration on a loaded machine is busy time, hence the median.
    assert s["busy_ms"]["p50"] < 1.0, s
    assert caused_stalls(run, s["pid"]) == [], run.describe()
    assert 0.95 * 200 <= s["iterations"] <= 1.05 * 200 + 10, s
    (final,) = run.of_kind("run_summary")
    assert final["wakeups_missed"] <= 0.05 * 200, final
