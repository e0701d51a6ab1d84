"""Fleet mode and the aggregate outputs: --all and its filters, fork following, the busy-time
histogram (JSON percentiles and --histogram bars) and --folded stacks.

The targets are tests/targets/fleet_mix.py processes, each under its own name (it writes
/proc/self/comm before its loop starts), so `--all --comm '^fleet<tag>'` sees only this test's
processes on a host full of other event loops. Tolerances are wide (2 noisy cores); counts are
exact where the target controls them.
"""

import json
import os
import re
import shlex
import subprocess
import time

import pytest

from harness import (TARGETS, TIMEOUT_S, brief, caused_stalls, check_lasted, check_stall_shape,
                     missing, starved, wait_until)
from test_export import free_port, http, wait_serving

SETTLE_S = 10.0  # how long an event may take to arrive after the loop polls again
SCRIPT = TARGETS / "fleet_mix.py"


def fleet(lab, comm, *args, start=True):
    """A fleet_mix.py target named comm (default: --mode sleep, 300 ms per trigger)."""
    return lab.target("fleet_mix.py", "--comm", comm, *args, name=comm, start=start)


def ready(*targets):
    for t in targets:
        t.wait_ready()


def trigger_all(*targets, timeout=TIMEOUT_S):
    """One action in every target at once; waits until each reported it. Returns the reports."""
    want = [len(t.reports()) + 1 for t in targets]
    for t in targets:
        (t.ctl / "go").touch()
    for t, n in zip(targets, want):
        def done(t=t, n=n):
            if t.proc is not None and t.proc.poll() is not None and len(t.reports()) < n:
                raise AssertionError("target %s exited (%s) during action %d:\n%s"
                                     % (t.ctl.name, t.proc.returncode, n, t.output()))
            return len(t.reports()) >= n
        wait_until(done, timeout, "target %s to report action %d" % (t.ctl.name, n))
    return [t.reports()[n - 1] for t, n in zip(targets, want)]


def wait_traced(run, url, *targets):
    """Wait until --all decided to trace each target: --all traces a loop that started after
    loopstall from the moment userspace applied the filters to it, and its pid's series in
    /metrics is the sign of that (they come with its first traced iteration)."""
    def traced():
        if run.proc.poll() is not None:
            raise AssertionError("loopstall exited\n" + run.describe())
        body = http(url, timeout=2)[2].decode()
        return all('pid="%d"' % t.pid in body for t in targets)
    wait_until(traced, TIMEOUT_S, "--all to trace %s" % [t.ctl.name for t in targets],
               interval=0.1)


def fleet_run(lab, *args):
    """loopstall --all -v with args and an exporter, tracing: (run, its /metrics url), the url
    for wait_traced(); -v for wait_decided()."""
    port = free_port()
    run = lab.loopstall("--all", "-v", "--json", *args, "--prometheus", "127.0.0.1:%d" % port)
    run.wait_tracing()
    return run, wait_serving(run, port)


def wait_decided(run, *targets):
    """Until -v said --all's decision on each target (it decides once, at its first poll):
    {pid: "traced" or "not traced, left out by FILTER"}. A process left out shows nothing
    only once it was decided on: a stall before that would prove nothing."""
    def decided():
        if run.proc.poll() is not None:
            raise AssertionError("loopstall exited\n" + run.describe())
        said = {int(m.group(1)): m.group(2) for m in re.finditer(
            r"^loopstall: pid (\d+) \(.*\) in cgroup .*: (traced|not traced, left out by \S+)$",
            run.stderr.text(), re.M)}
        return said if all(t.pid in said for t in targets) else None
    said = wait_until(decided, TIMEOUT_S, "--all to decide on %s" % [t.ctl.name for t in targets],
                      interval=0.1)
    return {t.pid: said[t.pid] for t in targets}


def left_out_by(flag):
    return "not traced, left out by " + flag


def wait_stalls(run, pid, n, timeout=SETTLE_S):
    """Until pid has n stall events the target caused (or timeout); returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        stalls = [e for e in run.of_kind("stall", pid) if not starved(e)]
        if len(stalls) >= n:
            return stalls
        time.sleep(0.05)
    return [e for e in run.of_kind("stall", pid) if not starved(e)]


def stop(run):
    time.sleep(0.3)  # room for a wrong extra event to show up
    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())


def one_summary(run, pid):
    summaries = run.of_kind("summary", pid)
    assert len(summaries) == 1, "want one summary for pid %d, got %s\n%s" % (
        pid, summaries, run.describe())
    return summaries[0]


def check_sleeps(stalls, pid, ms, n):
    """n stalls of pid, each a time.sleep(ms) in blocking_helper()."""
    assert len(stalls) == n, "want %d stalls of pid %d, got:\n%s" % (
        n, pid, "\n".join(map(brief, stalls)) or "none")
    for ev in stalls:
        check_stall_shape(ev)
        assert ev["pid"] == pid, brief(ev)
        check_lasted(ev, 0.95 * ms, 1.3 * ms)
        assert ev["stacks"] and ev["stacks"][0]["reason"] == "sleep", brief(ev)


def foreign_events(run, pids):
    """Events about processes that must not be traced."""
    return [e for e in run.events() if e.get("pid") in pids]


# --- 1. busy-time histogram: JSON percentiles and --histogram bars --------------------------

MIX = ("--mode", "mix", "--short", 1000, "--short-ms", 1, "--long", 10, "--long-ms", 200)


def run_mix(lab, *loopstall_args):
    """1000 iterations of 1 ms busy-wait and 10 of a 200 ms sleep, traced with -p from the
    start of the mix to the target's exit. Returns (run, target, mix report, exit report)."""
    target = fleet(lab, "fleetmix", *MIX)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-t", 100, "-p", info["pid"], *loopstall_args)
    run.wait_tracing()
    report = target.trigger()
    assert target.wait_exit(30) == 0, target.output()
    rc = run.wait_exit(SETTLE_S)  # the only target is gone: loopstall ends by itself
    assert rc == 0, "loopstall exited %s after its target\n%s" % (rc, run.describe())
    exit_report = target.reports()[-1]
    assert exit_report["action"] == "exit", target.reports()
    return run, target, report, exit_report


def test_summary_percentiles_of_known_mix(lab):
    """1000 x 1 ms + 10 x 200 ms: 10 stalls, p50 ~1 ms, max ~200 ms, iterations = polls."""
    run, target, mix, exit_report = run_mix(lab)
    pid = target.pid
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 10, "10 sleeps of 200 ms, got %d stalls:\n%s" % (
        len(stalls), "\n".join(map(brief, stalls)))
    for ev in stalls:
        check_stall_shape(ev)
        # A loaded host makes the woken sleeper wait for a CPU (seen: 403 ms, half of it
        # runqueue).
        check_lasted(ev, 170, 260)
        assert ev["off_cpu_ms"] > 0.8 * ev["duration_ms"], brief(ev)
    all_stalls = run.of_kind("stall", pid)

    s = one_summary(run, pid)
    assert s["comm"] == "fleetmix", s
    assert s["stalls"] == len(all_stalls), (s, len(all_stalls))
    assert s["lost_events"] == 0, s
    # Each `await asyncio.sleep(0)` is one selector poll. loopstall saw every poll of the mix
    # (it attached before) and cannot count more iterations than the target polled in all.
    mix_polls = mix["selects_after"] - mix["selects_before"]
    assert mix_polls >= 1010, mix
    assert max(1010, mix_polls - 1) <= s["iterations"] <= exit_report["selects"], (
        "iterations %d; the mix polled %d times, the target %d times in all"
        % (s["iterations"], mix_polls, exit_report["selects"]))
    busy = s["busy_ms"]
    # max is exact: the longest stall printed.
    assert abs(busy["max"] - max(ev["duration_ms"] for ev in all_stalls)) < 0.01, (busy, [
        ev["duration_ms"] for ev in all_stalls])
    longest = max(all_stalls, key=lambda ev: ev["duration_ms"])
    assert 140 <= busy["max"] <= 260 + longest["runqueue_ms"] or len(all_stalls) > len(stalls), busy
    # 1000 of the ~1030 iterations busy-wait 1 ms: the median is 1 ms within the histogram's
    # resolution (and the noise of 2 loaded cores).
    assert 0.5 <= busy["p50"] <= 3.0, busy
    assert busy["p50"] <= busy["p99"] <= busy["max"], busy


HIST_HEAD = re.compile(r"^pid (\d+) \((.*)\): loop iteration busy time$")
HIST_ROW = re.compile(r"^\s*(\d+) -> (\d+)\s+: (\d+)\s+\|([* ]*)\|$")
BAR_WIDTH = 40
USEC_NS = 1024  # the rows are powers of two of 1024 ns ("usecs")


def histograms(run):
    """The histogram blocks on stderr: [(arrival, pid, comm, [(low, high, count, stars)])]."""
    blocks = []
    with run.stderr.cond:
        lines = list(run.stderr.lines)
    for i, (arrival, text) in enumerate(lines):
        head = HIST_HEAD.match(text)
        if not head:
            continue
        assert i + 1 < len(lines) and re.match(r"^\s+usecs : count\s+distribution$",
                                               lines[i + 1][1]), lines[i:i + 2]
        rows = []
        for _, row in lines[i + 2:]:
            m = HIST_ROW.match(row)
            if not m:
                break
            low, high, count = int(m.group(1)), int(m.group(2)), int(m.group(3))
            rows.append((low, high, count, len(m.group(4).rstrip())))
        assert rows, "histogram without rows:\n" + "\n".join(t for _, t in lines[i:i + 4])
        blocks.append((arrival, int(head.group(1)), head.group(2), rows))
    return blocks


def row_of(rows, ms):
    units = ms * 1e6 / USEC_NS
    for row in rows:
        if row[0] <= units < row[1] + 1:
            return row
    return None


def test_histogram_bars_of_known_mix(lab):
    """--histogram: at exit, bars with ~1000 iterations in the 1 ms rows and the 10 stalls in
    the 128-256 ms row; the counts add up to the summary's iterations."""
    run, target, _, _ = run_mix(lab, "--histogram")
    pid = target.pid
    blocks = [b for b in histograms(run) if b[1] == pid]
    assert len(blocks) == 1, "want one histogram at exit for pid %d, got %d\n%s" % (
        pid, len(blocks), run.describe())
    _, _, comm, rows = blocks[0]
    assert comm == "fleetmix", comm
    s = one_summary(run, pid)
    counts = [r[2] for r in rows]
    assert sum(counts) == s["iterations"], (rows, s)
    lows = [r[0] for r in rows]
    assert lows == sorted(lows) and all(r[1] == 2 * r[0] - 1 for r in rows if r[0] > 1), rows
    # bcc's look: the fullest row has the full bar, the others in proportion.
    top = max(counts)
    for low, high, count, stars in rows:
        assert stars == count * BAR_WIDTH // top, (low, high, count, stars, top)

    # 1 ms = 977 "usecs": the 512-1023 row, or 1024-2047 with the loop's own overhead.
    one_ms = sum(count for low, _, count, _ in rows if low in (512, 1024))
    assert one_ms >= 600, "only %d of the 1000 1-ms iterations in the 1 ms rows:\n%s" % (
        one_ms, "\n".join(map(str, rows)))
    assert top in [count for low, _, count, _ in rows if low in (512, 1024)], rows

    # Above the threshold every iteration is a stall event: each row holds exactly the stalls
    # whose duration falls in it.
    stalls = run.of_kind("stall", pid)
    assert len(caused_stalls(run, pid)) == 10, "\n".join(map(brief, stalls))
    for low, high, count, _ in rows:
        if low * USEC_NS >= 100e6:
            inside = [ev for ev in stalls if row_of([(low, high)], ev["duration_ms"])]
            assert count == len(inside), "row %d -> %d: %d, stalls there: %s" % (
                low, high, count, [ev["duration_ms"] for ev in inside])
    row_200 = row_of(rows, 200.0)
    assert row_200 is not None and row_200[:2] == (131072, 262143), rows
    assert row_200[2] >= 10, rows


def test_histogram_every_interval(lab):
    """--histogram=1 -d 3.5: a histogram every second while tracing, cumulative, plus one at
    exit that matches the summary."""
    target = fleet(lab, "fleethist", "--count", 1)
    info = target.wait_ready()
    run = lab.loopstall("--json", "--histogram=1", "-d", 3.5, "-p", info["pid"])
    run.wait_tracing()
    rc = run.wait_exit(30)
    assert rc == 0, run.describe()
    blocks = [b for b in histograms(run) if b[1] == target.pid]
    assert len(blocks) >= 3, "want >= 3 histograms in 3.5 s at --histogram=1, got %d\n%s" % (
        len(blocks), run.describe())
    totals = [sum(r[2] for r in rows) for _, _, _, rows in blocks]
    assert totals == sorted(totals) and totals[0] > 0, totals
    assert totals[-1] == one_summary(run, target.pid)["iterations"], totals
    # Printed as time went by, not all at exit.
    arrivals = [b[0] for b in blocks]
    assert arrivals[-1] - arrivals[0] >= 1.5, arrivals


# --- 2. --all: new processes, non-pollers, exits, --comm / --exclude-comm / --cgroup -------

# --all sees every process of the host, and this file may run twice at once (or next to other
# users of fleet_mix.py): the names of one test's processes carry a tag of its own.
def names(*suffixes):
    tag = "%04x" % (os.getpid() & 0xffff)
    return ["%s%s%s" % (s[:5], tag, s[5:]) for s in suffixes]  # "fleetlate" -> "fleet1a2blate"


def test_all_traces_every_loop_and_filters_by_comm(lab):
    """--all --comm ^fleetT --exclude-comm ^fleetTskip: a loop running before and one started
    after loopstall are traced, with a summary as each exits while loopstall goes on; a process
    that never polls, one that polls once but never completes an iteration, one of another name
    and an excluded one produce nothing."""
    early_name, late_name, other_name, skip_name, idle_name, one_name = names(
        "fleetearly", "fleetlate", "otherloop", "fleetskip", "fleetidle", "fleetone")
    prefix = early_name[:9]
    early = fleet(lab, early_name, "--count", 2)
    early.wait_ready()
    run, url = fleet_run(lab, "--comm", "^" + prefix, "--exclude-comm", "^" + skip_name)
    late = fleet(lab, late_name, "--count", 2)
    other = fleet(lab, other_name, "--count", 3)
    skipped = fleet(lab, skip_name, "--count", 3)
    idle = fleet(lab, idle_name, "--mode", "noloop", "--count", 3)
    # Long enough to still be running when checked for readiness on a loaded machine.
    one = fleet(lab, one_name, "--mode", "onepoll", "--long-ms", 6000)
    ready(late, other, skipped, idle, one)
    # Else late's first stall may come before --all decided on it (seen under load).
    wait_traced(run, url, early, late)
    assert wait_decided(run, early, late, other, skipped) == {
        early.pid: "traced", late.pid: "traced", other.pid: left_out_by("--comm"),
        skipped.pid: left_out_by("--exclude-comm")}
    for _ in range(2):
        trigger_all(early, late, other, skipped, idle)
    for t in (other, skipped):
        assert [r["action"] for r in t.reports()] == ["sleep", "sleep"], t.reports()

    # early, late and one exit now: early's and late's summaries come then and there.
    for t in (early, late, one):
        assert t.wait_exit(30) == 0, t.output()
    for t in (early, late):
        line = run.stdout.wait_for(
            lambda text, pid=t.pid: '"summary"' in text and json.loads(text).get("pid") == pid,
            SETTLE_S)
        assert line, "no summary for pid %d (%s) after it exited\n%s" % (
            t.pid, t.ctl.name, run.describe())
    assert run.proc.poll() is None, "loopstall ended with processes it traced:\n" + \
        run.describe()
    stop(run)

    for t, comm in ((early, early_name), (late, late_name)):
        stalls = caused_stalls(run, t.pid)
        check_sleeps(stalls, t.pid, 300, 2)
        assert all(ev["comm"] == comm for ev in stalls), [ev["comm"] for ev in stalls]
        s = one_summary(run, t.pid)  # once: not again at loopstall's exit
        assert s["comm"] == comm and s["stalls"] == len(run.of_kind("stall", t.pid)), s
        assert s["iterations"] > 0 and s["lost_events"] == 0, s
    ignored = {other.pid: other_name, skipped.pid: skip_name, idle.pid: idle_name,
               one.pid: one_name}
    foreign = foreign_events(run, ignored)
    assert not foreign, "events of processes --all had to leave out (%s):\n%s" % (
        ignored, "\n".join(map(brief, foreign)))
    for ev in run.events():
        if ev["event"] == "run_summary":  # loopstall's own host-wide counters: no process
            continue
        assert ev["comm"].startswith(prefix) and not ev["comm"].startswith(skip_name), \
            "an event of a process the filters exclude: " + brief(ev)
    # Other loops of the host are left out too.
    (counters,) = run.of_kind("run_summary")
    assert counters["processes_filtered"] >= 2 and counters["processes_over_limit"] == 0, counters


def test_all_forked_children_go_through_filters(lab):
    """--all --comm ^fleetT: a traced loop starts two children (fork + exec) that name
    themselves fleetTkid and otherTkid: fleetTkid's stall is reported, otherTkid's is not."""
    parent_name, kid_name, other_name = names("fleetpar", "fleetkid", "otherkid")
    run, url = fleet_run(lab, "--comm", "^" + parent_name[:9])
    parent = fleet(lab, parent_name, "--count", 1, "--spawn", kid_name, "--spawn", other_name)
    parent.wait_ready()
    children = parent.trigger()["children"]
    kids = {}
    for name in (kid_name, other_name):
        kid = lab.target("fleet_mix.py", start=False, name=name)
        kid.ctl = parent.ctl / name  # where the parent started it
        kid.wait_ready()
        assert kid.pid == children[name], (kid.info, children)
        kids[name] = kid
    wait_traced(run, url, parent, kids[kid_name])
    assert wait_decided(run, *kids.values()) == {
        kids[kid_name].pid: "traced", kids[other_name].pid: left_out_by("--comm")}
    trigger_all(parent, *kids.values())
    assert parent.wait_exit(30) == 0, parent.output()
    kid, other = kids[kid_name].pid, kids[other_name].pid
    wait_stalls(run, kid, 1)
    stop(run)

    check_sleeps(caused_stalls(run, parent.pid), parent.pid, 300, 1)
    check_sleeps(caused_stalls(run, kid), kid, 300, 1)
    s = one_summary(run, kid)
    assert s["comm"] == kid_name, "summary comm %r, the process is named %s: %s" % (
        s["comm"], kid_name, s)
    foreign = foreign_events(run, {other})
    assert not foreign, "%s (pid %d) does not match --comm:\n%s" % (
        other_name, other, "\n".join(map(brief, foreign)))


def cgroup2_mount():
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) > 2 and fields[2] == "cgroup2":
                return fields[1]
    return None


@pytest.mark.parametrize("form", ["cgroup-path", "mount-dir"])
def test_all_cgroup_filter(lab, form):
    """--all --cgroup: of two loops with the same name only the one in the cgroup is traced.
    The filter is given as the cgroup path (/fleet-test-N) or as its directory where cgroup2
    is mounted (/sys/fs/cgroup/fleet-test-N on a pure cgroup v2 host)."""
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 file system mounted")
    name = "fleet-test-%d" % os.getpid()
    directory = os.path.join(mount, name)
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as e:
        pytest.skip("cannot create a cgroup under %s: %s" % (mount, e))
    in_name, out_name = names("fleetcgin", "fleetcgout")
    try:
        cgroup_filter = "/" + name if form == "cgroup-path" else directory
        run, url = fleet_run(lab, "--comm", "^" + in_name[:9], "--cgroup", cgroup_filter)
        inside = fleet(lab, in_name, "--count", 2, start=False)
        # Joins the cgroup before Python starts, so before it ever polls.
        inside.argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                       directory] + inside.argv
        inside.start()
        outside = fleet(lab, out_name, "--count", 2)
        ready(inside, outside)
        with open("/proc/%d/cgroup" % inside.pid) as f:
            assert "0::/%s\n" % name in f.read(), "target not in the test cgroup"
        wait_traced(run, url, inside)
        assert wait_decided(run, inside, outside) == {
            inside.pid: "traced", outside.pid: left_out_by("--cgroup")}
        trigger_all(inside, outside)
        wait_stalls(run, inside.pid, 1)
        stop(run)
        check_sleeps(caused_stalls(run, inside.pid), inside.pid, 300, 1)
        foreign = foreign_events(run, {outside.pid})
        assert not foreign, "the loop outside %s was traced:\n%s" % (
            cgroup_filter, "\n".join(map(brief, foreign)))
    finally:
        for t in lab.targets:
            t.kill()
        wait_until(lambda: not open(os.path.join(directory, "cgroup.procs")).read().strip(),
                   10, "the test cgroup to empty")
        os.rmdir(directory)


# Container runtimes' cgroup v2 layouts (paths from the cgroup2 root), {id} the 64-hex container
# id and {uid} the pod uid. systemd's slice names escape the uid's dashes as underscores.
CONTAINER_LAYOUTS = {
    "docker": "/system.slice/docker-{id}.scope",
    "docker-cgroupfs": "/docker/{id}",
    "containerd-k8s-systemd": "/kubepods.slice/kubepods-burstable.slice/"
                              "kubepods-burstable-pod{uid_}.slice/cri-containerd-{id}.scope",
    "containerd-k8s-cgroupfs": "/kubepods/burstable/pod{uid}/{id}",
    "crio": "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid_}.slice/"
            "crio-{id}.scope",
    "podman": "/machine.slice/libpod-{id}.scope",
}


def test_container_ids_from_runtime_cgroup_layouts(lab):
    """A loop in a cgroup laid out as docker, containerd under Kubernetes (systemd and cgroupfs
    drivers), CRI-O and podman lay theirs out: the cgroup and container_id labels on /metrics
    and the JSON fields of its stall and summary are the path and the container's id; a loop
    outside any container gets the empty label and null."""
    from test_export import family, parse_exposition
    mount = cgroup2_mount()
    if mount is None:
        pytest.skip("no cgroup2 file system mounted")
    created, targets, want = [], {}, {}
    run = None
    try:
        for n, (layout, template) in enumerate(sorted(CONTAINER_LAYOUTS.items())):
            uid = "%08x-%04x-4%03x-8%03x-%012x" % (os.getpid(), n, n, n, n)
            cid = "%016x" % os.getpid() + "%048x" % (0xc0ffee00 + n)
            path = template.format(id=cid, uid=uid, uid_=uid.replace("-", "_"))
            directory = mount
            for part in path.strip("/").split("/"):
                directory = os.path.join(directory, part)
                if not os.path.isdir(directory):
                    try:
                        os.mkdir(directory)
                    except OSError as e:
                        pytest.skip("cannot create cgroup %s: %s" % (directory, e))
                    created.append(directory)
            want[layout] = (path, cid, directory)
        (host_name,) = names("fleethost")
        comm = {layout: names("fleet%x" % n)[0] for n, layout in enumerate(sorted(want))}
        run, url = fleet_run(lab, "--comm", "^fleet%04x" % (os.getpid() & 0xffff))
        for layout, (_, _, directory) in sorted(want.items()):
            t = fleet(lab, comm[layout], "--count", 1, start=False)
            # Joins the cgroup before Python starts, so before it ever polls.
            t.argv = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"',
                      directory] + t.argv
            t.start()
            targets[layout] = t
        targets["host"] = fleet(lab, host_name, "--count", 1)
        ready(*targets.values())
        # Ready is the target's first loop iteration; --all decides on it only once userspace
        # read its announcement, 100-200 ms later under load: a stall triggered before then
        # began untraced and is never reported.
        wait_traced(run, url, *targets.values())
        trigger_all(*targets.values())
        for t in targets.values():
            assert len(wait_stalls(run, t.pid, 1)) == 1, run.describe()
        status, _, body = http(url)
        assert status == 200, status
        samples = family(parse_exposition(body, False), "loopstall_stalls", False)
        labels = {int(lab_["pid"]): lab_ for _, lab_, _ in samples if lab_.get("pid")}
        with open("/proc/%d/cgroup" % targets["host"].pid) as f:
            host_cgroup = [l[3:].strip() for l in f if l.startswith("0::")][0]
        want["host"] = (host_cgroup, "", None)
        for t in targets.values():
            assert t.wait_exit(30) == 0, t.output()
        stop(run)
        for layout, (path, cid, _) in sorted(want.items()):
            pid = targets[layout].pid
            assert labels[pid]["cgroup"] == path and labels[pid]["container_id"] == cid, (
                layout, labels[pid])
            for ev in run.of_kind("stall", pid) + [one_summary(run, pid)]:
                assert ev["cgroup"] == path, (layout, brief(ev), ev["cgroup"])
                assert ev["container_id"] == (cid or None), (layout, ev["container_id"])
    finally:
        for t in lab.targets:
            t.kill()
        for directory in reversed(created):
            wait_until(lambda: not os.path.exists(os.path.join(directory, "cgroup.procs")) or
                       not open(os.path.join(directory, "cgroup.procs")).read().strip(),
                       10, "cgroup %s to empty" % directory)
            os.rmdir(directory)


# --- 3. --max-processes ---------------------------------------------------------------------

def test_max_processes_caps_the_fleet(lab):
    """--all --max-processes 1: the first loop is traced, the next two are not, and the limit
    is said once on stderr."""
    first_name, second_name, third_name = names("fleetcap1", "fleetcap2", "fleetcap3")
    run, url = fleet_run(lab, "--comm", "^" + first_name[:9] + "cap", "--max-processes", 1)
    first = fleet(lab, first_name, "--count", 3)
    first.wait_ready()
    wait_traced(run, url, first)
    trigger_all(first)
    assert len(wait_stalls(run, first.pid, 1)) == 1, run.describe()
    second = fleet(lab, second_name, "--count", 3)
    third = fleet(lab, third_name, "--count", 3)
    ready(second, third)
    assert wait_decided(run, second, third) == {
        second.pid: left_out_by("--max-processes"), third.pid: left_out_by("--max-processes")}
    trigger_all(first, second, third)
    wait_stalls(run, first.pid, 2)
    stop(run)  # first is still running: its summary comes at loopstall's exit

    check_sleeps(caused_stalls(run, first.pid), first.pid, 300, 2)
    assert one_summary(run, first.pid)["stalls"] == len(run.of_kind("stall", first.pid))
    foreign = foreign_events(run, {second.pid, third.pid})
    assert not foreign, "processes past --max-processes 1 were traced:\n" + \
        "\n".join(map(brief, foreign))
    lines = [t for t in run.stderr.text().splitlines() if t.startswith("loopstall: tracking ")]
    assert len(lines) == 1, "the limit said %d times:\n%s" % (len(lines), "\n".join(lines))
    assert "--max-processes limit" in lines[0], lines[0]
    assert re.search(r"\bpid (%d|%d)\b" % (second.pid, third.pid), lines[0]), lines[0]
    (counters,) = run.of_kind("run_summary")
    assert counters["processes_over_limit"] == 2, counters


# --- 4. fork following in launch mode -------------------------------------------------------

@pytest.mark.parametrize("shell,follow", [("fork", True), ("fork", False), ("exec", False)],
                         ids=["fork", "fork-no-follow", "exec-no-follow"])
def test_launch_through_shell(lab, shell, follow):
    """loopstall -- /bin/sh -c 'python3 target; true': the shell forks the Python loop, which
    is traced unless --no-follow-forks. With `exec python3` the loop is the launched process
    itself: traced either way."""
    out = lab.tmp_path / "out.jsonl"
    target = lab.target("fleet_mix.py", "--count", 1, start=False)
    command = shlex.join(target.argv)
    # dash execs the last command of `sh -c` in place: `; true` keeps the shell, so it forks.
    command = "exec " + command if shell == "exec" else command + "; true"
    flags = [] if follow else ["--no-follow-forks"]
    run = lab.loopstall("--json", "-o", out, *flags, "--", "/bin/sh", "-c", command,
                        output=out)
    launched = int(re.search(r"tracing pid (\d+)", run.wait_tracing()).group(1))
    target.wait_ready()
    report = target.trigger()
    assert report["ms"] >= 290, report
    rc = run.wait_exit(30)
    assert rc == 0, "loopstall exited %s after its command\n%s" % (rc, run.describe())
    pid = target.pid
    assert (pid == launched) == (shell == "exec"), (pid, launched)
    if follow or shell == "exec":
        check_sleeps(caused_stalls(run, pid), pid, 300, 1)
        s = one_summary(run, pid)
        assert s["stalls"] == len(run.of_kind("stall", pid)) and s["iterations"] > 0, s
    else:
        foreign = foreign_events(run, {pid})
        assert not foreign, "--no-follow-forks, yet the forked child was traced:\n" + \
            "\n".join(map(brief, foreign))
    if pid != launched:  # the shell itself never polls: no stall, no iterations
        assert not run.of_kind("stall", launched), run.describe()
        for s in run.of_kind("summary", launched):
            assert s["iterations"] == 0 and s["stalls"] == 0, s


# --- 5. --folded ----------------------------------------------------------------------------

FOLDED_LINE = re.compile(r"^(.+) (\d+)$")


def helper_line():
    """The line of time.sleep() in fleet_mix.py's blocking_helper()."""
    for number, text in enumerate(SCRIPT.read_text().splitlines(), 1):
        if "fleet-test: the blocking line" in text:
            return number
    raise AssertionError("marker comment missing from %s" % SCRIPT)


def folded_frame(text):
    return text.replace(";", "_").replace("\n", "_")


def expected_folded(ev, stack):
    """The folded line loopstall must write for one JSON stack: root first."""
    frames = [ev["comm"]]
    for py in reversed(stack.get("python") or []):
        frames.append("%s (%s:%d)" % (py.get("qualname") or py["function"], py["file"],
                                      py["line"]))
    frames += [f["symbol"] for f in reversed(stack["user"]) if f.get("symbol")]
    frames += [f["symbol"] + "_[k]" for f in reversed(stack["kernel"]) if f.get("symbol")]
    return [folded_frame(f) for f in frames]


def test_folded_stacks(lab):
    """--folded FILE: one `frames weight` line per stack of each finished stall (not of
    stall_progress), root first, weight in ms; the sleeping Python frame is
    `blocking_helper (.../fleet_mix.py:LINE)` on the right line."""
    folded = lab.tmp_path / "stalls.folded"
    target = fleet(lab, "fleetfold", "--long-ms", 1200, "--count", 2)
    info = target.wait_ready()
    run = lab.loopstall("--json", "-p", info["pid"], "--folded", folded)
    run.wait_tracing()
    target.trigger()
    target.trigger()
    wait_stalls(run, target.pid, 2)
    stop(run)

    stalls = run.of_kind("stall", target.pid)
    check_sleeps(caused_stalls(run, target.pid), target.pid, 1200, 2)
    assert run.of_kind("stall_progress", target.pid), (
        "no stall_progress during the 1.2 s sleeps (due at 1 s): the check that they add no "
        "folded lines would prove nothing\n" + run.describe())
    text = folded.read_text()
    assert text.endswith("\n"), "folded file does not end with a newline: %r" % text[-80:]
    lines = text.splitlines()
    # The JSON stall events and the folded file describe the same stacks, in the same order.
    want = [(ev, s) for ev in run.of_kind("stall") for s in ev["stacks"]]
    assert len(lines) == len(want), (
        "%d folded lines for %d stacks of %d finished stalls (%d stall_progress events must "
        "not add lines):\n%s" % (len(lines), len(want), len(run.of_kind("stall")),
                                 len(run.of_kind("stall_progress")), text[:2000]))
    line_no = helper_line()
    for line, (ev, stack) in zip(lines, want):
        m = FOLDED_LINE.match(line)
        assert m, "not a folded line (`frame;frame;... count`): %r" % line
        frames, weight = m.group(1).split(";"), int(m.group(2))
        assert all(frames), "empty frame in %r" % line
        assert frames == expected_folded(ev, stack), "folded line %r\nfor the JSON stack %s" % (
            line, json.dumps(stack)[:1500])
        assert weight >= 1 and abs(weight - stack["ms"]) <= 1, (weight, stack["ms"], line)

    # What a flame graph of the file shows: the blocked time under blocking_helper, at the
    # line of its sleep. (On-CPU samples there weigh samples x period, not measured time.)
    helper = "blocking_helper (%s:%d)" % (SCRIPT, line_no)
    under = under_any_kind = 0
    for line, (ev, stack) in zip(lines, want):
        stack_text, weight = FOLDED_LINE.match(line).groups()
        frames = stack_text.split(";")
        if helper in frames:
            under_any_kind += int(weight)
        if stack["kind"] != "off_cpu" or helper not in frames:
            continue
        under += int(weight)
        i = frames.index(helper)
        python = [k for k, f in enumerate(frames) if re.search(r" \(.*:\d+\)$", f)]
        kernel = [k for k, f in enumerate(frames) if f.endswith("_[k]")]
        assert frames[0] == "fleetfold", line
        assert i == python[-1], "blocking_helper is not the innermost Python frame: %r" % line
        assert python == list(range(1, len(python) + 1)), "Python frames not right after the " \
            "comm, root first: %r" % line
        assert frames[1].startswith("<module> (%s:" % SCRIPT), line
        assert kernel and kernel == list(range(kernel[0], len(frames))), \
            "kernel frames not last: %r" % line
        assert frames[-1] in ("__schedule_[k]", "schedule_[k]"), line
    sleeps = sum(ev["off_cpu_ms"] for ev in stalls if not starved(ev))
    assert 0.9 * sleeps <= under <= sleeps + 2, (
        "%d ms under %s in the folded file, the two sleep stalls were blocked %.0f ms\n%s" % (
            under, helper, sleeps, text[:2000]))

    # A real consumer: Brendan Gregg's flamegraph.pl (shipped in Debian's libdevel-nytprof-perl)
    # renders the file, and the SVG shows the blocking function with its share of the time.
    flamegraph = "/usr/share/perl5/Devel/NYTProf/flamegraph.pl"
    if not os.path.exists(flamegraph):
        pytest.skip(missing("flamegraph.pl: install libdevel-nytprof-perl (tools/setup does)"))
    svg = subprocess.run(["perl", flamegraph, str(folded)], capture_output=True, text=True,
                         timeout=60)
    assert svg.returncode == 0 and svg.stdout.lstrip().startswith("<?xml"), svg.stderr
    titles = re.findall(r"<title>([^<]*)</title>", svg.stdout)
    drawn = [t for t in titles if t.startswith("blocking_helper (")]
    assert drawn, "flamegraph.pl drew no blocking_helper frame; titles: %s" % titles[:20]
    # An on-CPU sample in blocking_helper (before its sleep) can be a box of its own.
    samples = sum(int(re.search(r"\(([\d,]+) samples", t).group(1).replace(",", ""))
                  for t in drawn)
    assert abs(samples - under_any_kind) <= 2, (drawn, under_any_kind)
