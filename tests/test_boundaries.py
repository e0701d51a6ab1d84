"""Iteration boundaries other than the default epoll syscalls: --loop-func and --poll-syscalls."""

import pytest

from harness import check_300ms_sleep, libc_path
from test_stalls import attach_and_trigger, check_summary


def target_libc(pid):
    path = libc_path(pid)
    if not path:
        pytest.skip("target %d maps no libc" % pid)
    return path


def check_sleep_stalls(run, pid, count):
    stalls = run.of_kind("stall", pid)
    assert len(stalls) == count, "want %d stalls, got %s" % (count, stalls)
    for ev in stalls:
        check_300ms_sleep(ev)
        assert ev["off_cpu_ms"] > 0.8 * ev["duration_ms"], ev
        assert ev["stacks"][0]["reason"] == "sleep", ev["stacks"][0]
    check_summary(run, pid)


def test_loop_func_attach(lab):
    """A uprobe pair on libc's epoll_wait bounds the iterations instead of the syscalls."""
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 3)
    info = target.wait_ready()
    func = "%s:epoll_wait" % target_libc(info["pid"])
    run, _ = attach_and_trigger(lab, target, 2, "--loop-func", func)
    check_sleep_stalls(run, info["pid"], 2)


def test_loop_func_launch(lab):
    """Launch mode: the uprobes are attached to the command before it execs."""
    probe = lab.target("stall_target.py", "--count", 1)
    func = "%s:epoll_wait" % target_libc(probe.wait_ready()["pid"])
    out = lab.tmp_path / "out.jsonl"
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 2,
                        start=False)
    run = lab.loopstall("--json", "-o", out, "--loop-func", func, "--", *target.argv, output=out)
    run.wait_tracing()
    target.wait_ready()
    target.trigger()
    target.trigger()
    assert run.wait_exit(30) == 0, run.describe()
    check_sleep_stalls(run, target.pid, 2)


def test_poll_loop_needs_opt_in(lab):
    """poll() is not a boundary by default (blocking code calls it inside callbacks); a loop
    built on it is measured once --poll-syscalls names it."""
    target = lab.target("stall_target.py", "--loop", "asyncio-poll", "--action", "sleep",
                        "--ms", 300, "--count", 3)
    run, _ = attach_and_trigger(lab, target, 1)
    pid = target.wait_ready()["pid"]
    assert run.of_kind("stall", pid) == [], run.of_kind("stall", pid)
    summary = run.of_kind("summary", pid)
    assert summary and summary[0]["iterations"] == 0, summary

    run, _ = attach_and_trigger(lab, target, 1, "--poll-syscalls", "epoll,poll")
    check_sleep_stalls(run, pid, 1)
