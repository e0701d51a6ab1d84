"""A healthy loop, traced for its whole life (launch mode): no stalls, every iteration counted."""

from harness import brief, caused_stalls, check_lasted


def test_healthy_loop_counts_iterations(lab):
    """5. 20000 x `await asyncio.sleep(0)`: zero stalls, iterations within 5% of the target's."""
    out = lab.tmp_path / "loopstall.jsonl"
    target = lab.target("healthy_loop.py", "--iterations", 20000, start=False)
    run = lab.loopstall("--json", "--output", out, "--", *target.argv, output=out)
    rc = run.wait_exit(60)
    assert rc == 0, "loopstall exited %s once its command was done\n%s" % (rc, run.describe())
    assert any(t.startswith("loopstall: tracing") for t in run.stderr.text().splitlines()), \
        run.describe()
    target.wait_ready(5)  # written by the target long ago; gives its pid
    report = target.reports()
    assert len(report) == 1, "target did not finish: %s" % report
    selects = report[0]["selects"]
    assert selects >= 20000, report

    stalls = caused_stalls(run)
    assert stalls == [], "a healthy loop stalled:\n" + "\n".join(map(brief, stalls))
    all_stalls = run.of_kind("stall")  # caused_stalls() + the ones the scheduler made
    summaries = run.of_kind("summary")
    assert [s["pid"] for s in summaries] == [target.pid], summaries
    s = summaries[0]
    # The target counts its selector polls; loopstall counts iterations (poll return to next
    # poll), one fewer than the polls, which is far inside the 5%.
    assert abs(s["iterations"] - selects) <= 0.05 * selects, (
        "loopstall counted %d iterations, the target polled %d times" % (s["iterations"], selects))
    assert s["stalls"] == len(all_stalls) and s["lost_events"] == 0, s
    # max is exact: below the threshold, or the longest (runqueue) stall printed.
    if all_stalls:
        assert abs(s["busy_ms"]["max"] - max(ev["duration_ms"] for ev in all_stalls)) < 0.5, s
    else:
        assert s["busy_ms"]["max"] < 100, s
    assert s["busy_ms"]["p50"] <= s["busy_ms"]["p99"] <= s["busy_ms"]["max"], s
    assert run.stdout.text().strip() == "", "JSON went to stdout despite --output"


def test_wakeups_from_another_cpu_every_iteration_and_stall_counted(lab):
    """20000 wakeups of the loop's poll by a process on another CPU, a 120 ms time.sleep in
    every 1000th callback: every iteration counted (a wakeup that races the loop thread's
    switch-out into its poll is not seen; that iteration's start is inferred from the thread's
    CPU time, not dropped), and every sleep reported as a stall of its length."""
    out = lab.tmp_path / "loopstall.jsonl"
    target = lab.target("woken_loop.py", "--wakeups", 20000, "--stall-every", 1000,
                        "--stall-ms", 120, start=False)
    run = lab.loopstall("--json", "--output", out, "--", *target.argv, output=out)
    rc = run.wait_exit(120)
    assert rc == 0, "loopstall exited %s once its command was done\n%s" % (rc, run.describe())
    target.wait_ready(5)
    (report,) = target.reports()
    (summary,) = run.of_kind("summary", target.pid)
    # One fewer iteration than polls (the last poll entry ends the last one); the waker's
    # pid has no loop.
    assert abs(summary["iterations"] - (report["selects"] - 1)) <= 1, (summary, report)
    sleeps = [ev for ev in run.of_kind("stall", target.pid)
              if any(s["kind"] == "off_cpu" and s["reason"] == "sleep" for s in ev["stacks"])]
    assert len(sleeps) == report["stalls"] == 20, (report, [brief(ev) for ev in sleeps])
    for ev, ms in zip(sleeps, report["stall_ms"]):
        # The target's ms includes its own wait for a CPU after the sleep: so does the stall.
        check_lasted(ev, ms - ev["runqueue_ms"], ms + 15)
        assert ev["off_cpu_ms"] >= 0.95 * ms, (ms, brief(ev))
    (counters,) = run.of_kind("run_summary")
    print("wakeups missed (iterations inferred): %d" % counters["wakeups_missed"])
