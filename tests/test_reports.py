"""Reports that say what to do, end to end: the fix for each stall (docs/hints.md), which code
to fix first (the summary's sites).

  1  FastAPI on uvicorn (Debian's python3): each bad route (time.sleep, urllib, requests, a
     redis-style socket client, a pure-Python loop, hashlib, an async BackgroundTasks task, a
     threading.Lock, subprocess.run) gets its rule's hint, naming the function and the call;
     the correct routes (a def route, await asyncio.sleep, asyncio.to_thread) stall nothing and
     get no hint                                                    targets/py_fastapi_app.py
  2  a thread spinning pure Python starves the loop of the GIL: the hint (JSON and text) names
     the holder thread and the function it runs                    targets/py_gil.py
  3  time.sleep in a plain callback (loop.call_soon): the callback's hint, not the
     coroutine's                                                    targets/stall_target.py
  4  Node (/usr/bin/node): pbkdf2Sync, execSync, readFileSync of a large file, a catastrophic
     regex, JSON.parse of a large body                              targets/node_http.js
  5  sites: 10 stalls of 150 ms at one route, 2 of 1 s at another: the second site first, and
     the sites add up to the streamed stalls                        targets/py_fastapi_app.py
  6  waiting: while a route blocks, 8 clients connect and 4 connected clients send: the stall
     says so when it ends, and so does the Prometheus counter      targets/py_fastapi_app.py
"""

import http.client
import re
import socket
import threading
import time

import pytest

from harness import DEBIAN_PYTHON, TARGETS, brief, caused_stalls
from test_export import free_port, parse_exposition, wait_serving
from test_export import http as http_request
from test_node import HTTP_TARGET, NODE, node_target
from test_python import SlowHTTPServer, attach, debian_has

SETTLE_S = 10.0

# route -> (rule id, what the text must name: the function, then the call)
PYTHON_ROUTES = {
    "sleep": ("py-sleep-in-coroutine", "blocking_sleep", "`time.sleep(ms / 1000.0 or BLOCK_S)`"),
    "http": ("py-urllib", "blocking_http", "urllib.request.urlopen(SLOW_URL)"),
    "requests": ("py-requests", "blocking_requests", "requests.get(SLOW_URL, timeout=30)"),
    "kv": ("py-socket", "kv_get", "`reply = sock.recv(65536)"),
    "cpu": ("py-cpu-python", "blocking_cpu", "py_fastapi_app.py:"),
    "hash": ("py-cpu-extension", "blocking_hash", "hashlib.sha256(BLOB)"),
    "background": ("py-background-task-async", "send_report", "`time.sleep(BLOCK_S)`"),
    "lock": ("py-thread-lock", "blocking_lock", "`with LOCK:"),
    "subprocess": ("py-subprocess", "blocking_subprocess", 'subprocess.run(["sleep", str('),
}
# route -> the application's coroutine of its stall (task.app_coroutine)
APP_COROUTINES = {route: function for route, (_, function, _) in PYTHON_ROUTES.items()}
APP_COROUTINES["kv"] = "blocking_kv"  # kv_get, where it blocks, is a plain def
GOOD_ROUTES = {"sync_sleep": "good_sync_sleep", "async_sleep": "good_async_sleep",
               "to_thread": "good_to_thread"}


def http_get(port, path, method="GET", body=None, timeout=60.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        data = response.read()
        assert response.status == 200, (path, response.status, data)
        return data
    finally:
        conn.close()


def wait_for(run, pid, pred, timeout=SETTLE_S):
    """The first caused stall of pid for which pred(ev) holds, or None after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.proc.poll() is None:
        found = [ev for ev in run.of_kind("stall", pid) if pred(ev)]
        if found:
            return found[0]
        time.sleep(0.05)
    return None


def hint_of(ev):
    return ev.get("hint") or {}


def check_hint_shape(ev):
    hint = ev["hint"]  # always present: null or {"id","text"}
    assert hint is None or (isinstance(hint["id"], str) and isinstance(hint["text"], str)), ev


def frames_named(ev):
    return {f["function"] for s in ev["stacks"] for f in s.get("python") or s.get("js") or []}


def check_in_app(ev, own):
    """The target's own frames are the application's; the standard library's and Debian's
    packages' are not."""
    for s in ev["stacks"]:
        for f in s.get("python") or []:
            if f["file"] == own:
                assert f["in_app"] is True, f
            elif f["file"].startswith(("/usr/lib/python3/", "/usr/lib/python3.", "<")):
                assert f["in_app"] is False, f


def test_python_hints(lab):
    """1. Every bad FastAPI route, one at a time: a stall whose hint is the route's rule and
    whose text names the route's function and its blocking call (the source line). First the
    correct routes, concurrently: no stall names them, no stall of theirs has a hint."""
    if not debian_has("fastapi", "uvicorn", "requests"):
        pytest.skip("%s lacks fastapi, uvicorn or requests (Debian packages python3-fastapi, "
                    "python3-uvicorn, python3-requests: tools/setup)" % DEBIAN_PYTHON)
    slow = SlowHTTPServer(0.3)
    try:
        target = lab.target("py_fastapi_app.py", "--slow-url", slow.url, "--ms", 300)
        run = attach(lab, target)
        pid, port = target.pid, target.info["port"]
        threads = []
        for route in list(GOOD_ROUTES) * 2:
            threads.append(threading.Thread(target=http_get, args=(port, "/" + route)))
            threads[-1].start()
        for t in threads:
            t.join(60)
        time.sleep(1.0)
        good_phase = caused_stalls(run, pid)
        missing = []
        for route, (rule, function, call) in PYTHON_ROUTES.items():
            http_get(port, "/" + route)
            ev = wait_for(run, pid, lambda ev: hint_of(ev).get("id") == rule
                          and function in hint_of(ev)["text"])
            if ev is None:
                missing.append(route)
                continue
            text = hint_of(ev)["text"]
            assert call in text, "/%s: the hint does not name %r: %s" % (route, call, text)
            assert function in frames_named(ev), brief(ev)
            assert ev["task"]["app_coroutine"] == APP_COROUTINES[route], (route, ev["task"])
            check_in_app(ev, target.argv[1])
    finally:
        slow.close()
    assert run.stop() == 0, run.describe()
    stalls = run.of_kind("stall", pid)
    for ev in stalls:
        check_hint_shape(ev)
    assert not missing, "no stall with the route's hint for %s; hints seen: %s" % (
        missing, [(hint_of(ev).get("id"), hint_of(ev).get("text")) for ev in stalls])
    for ev in good_phase:
        assert not set(GOOD_ROUTES.values()) & frames_named(ev), brief(ev)
        assert ev["hint"] is None, "a correct route's stall got a hint: %s" % brief(ev)
    for ev in stalls:
        assert not set(GOOD_ROUTES.values()) & frames_named(ev), brief(ev)


def test_gil_starvation_hint(lab):
    """2. A thread spinning pure Python while the loop sleeps 1 ms at a time (-t 5): the loop's
    GIL waits get the py-gil-starvation hint, naming the spinner thread that held the GIL and
    the function it runs, spin, at its file and line; so does the text output."""
    target = lab.target("py_gil.py", "--ms", 1500, "--count", 1)
    run = attach(lab, target, "-t", 5)
    text = lab.loopstall("-p", target.pid, "-t", 5)
    text.wait_tracing()
    spinner, path = target.trigger()["spinner_tid"], re.escape(str(TARGETS / "py_gil.py"))
    holder = re.compile(r"thread %d \([^)]*\) held it, running spin \(%s:\d+\)" % (
        spinner, path))
    ev = wait_for(run, target.pid, lambda ev: hint_of(ev).get("id") == "py-gil-starvation"
                  and holder.search(hint_of(ev)["text"]))
    assert run.stop() == 0 and text.stop() == 0, run.describe()
    assert ev, "no stall with a py-gil-starvation hint naming %s: %s" % (holder.pattern, [
        hint_of(e) for e in run.of_kind("stall", target.pid)][:5])
    # The text output's GIL line and fix line name them too.
    out = text.stdout.text()
    assert re.search(r"\n    GIL held by tid %d \([^)]*\), running spin \(%s:\d+\)\n" % (
        spinner, path), out), out[:4000]
    assert re.search(r"\n  fix: .*%s" % holder.pattern, out), out[:4000]


def test_sleep_in_callback_hint(lab):
    """3. time.sleep in a plain callback (loop.call_soon: no coroutine on the stack, so not
    py-sleep-in-coroutine's await remedy): the py-sleep-in-callback hint, naming the function
    that sleeps and its call."""
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 2,
                        "--in-callback")
    run = attach(lab, target)
    target.trigger()
    ev = wait_for(run, target.pid, lambda ev: True)
    assert run.stop() == 0, run.describe()
    assert ev, "no stall:\n" + run.describe()
    assert hint_of(ev).get("id") == "py-sleep-in-callback", brief(ev)
    text = hint_of(ev)["text"]
    for name in ("`time.sleep(args.ms / 1000.0)`", "act_sleep (%s:" % (TARGETS / "stall_target.py"),
                 "loop.call_later"):
        assert name in text, "the hint does not name %r: %s" % (name, text)
    assert not any(f.get("coroutine") for f in ev["stacks"][0]["python"]), brief(ev)


NODE_ROUTES = [  # (request, rule id, what the text must name)
    ("/hash?ms=300", "node-crypto-sync", ("hashPassword", "pbkdf2Sync()")),
    ("/exec?ms=300", "node-child-process-sync", ("execSync()", "node_http.js")),
    ("/read?path={big}", "node-fs-sync", ("readConfig", "readFileSync()")),
    ("/regex?n=22", "node-regexp", ("validateName", "test()")),
    ("/json", "node-json", ("parseBody", "JSON.parse()")),
]


@pytest.mark.skipif(NODE is None, reason="no `node` on PATH (Debian package nodejs)")
def test_node_hints(lab, tmp_path):
    """4. Each blocking route of the node server: the stall's hint is the rule for its call and
    names the target's function and node's API it called."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(256 << 20)
    body = b"[" + b",".join(b'{"id":%d,"name":"n%d"}' % (i, i) for i in range(300000)) + b"]"
    target = node_target(lab, "node_http.js")
    run = attach(lab, target)
    missing = []
    for request, rule, names in NODE_ROUTES:
        if request == "/json":
            http_get(target.info["port"], request, "POST", body)
        else:
            http_get(target.info["port"], request.format(big=big))
        ev = wait_for(run, target.pid, lambda ev: hint_of(ev).get("id") == rule)
        if ev is None:
            missing.append(request)
            continue
        for name in names:
            assert name in hint_of(ev)["text"], (request, hint_of(ev))
        for s in ev["stacks"]:
            for f in s.get("js", []):
                assert f["in_app"] is (f["file"] == HTTP_TARGET
                                       or f["file"].endswith("node_ctl.js")) if f["file"] else (
                    f["in_app"] is False), f
    assert run.stop() == 0, run.describe()
    stalls = run.of_kind("stall", target.pid)
    assert not missing, "no stall with the rule's hint for %s; hints seen: %s" % (
        missing, [hint_of(ev) for ev in stalls])


def brief_site(ev):
    return (hint_of(ev).get("id"), [f["function"] for s in ev["stacks"][:1]
                                    for f in (s.get("python") or [])[:2]])


def test_sites_heaviest_first(lab):
    """5. Site A (/sleep, 10 x 150 ms) and site B (/subprocess, 2 x 1 s): the summary's sites
    list B first (2 s against 1.5 s), then A, each with its count; the sites' counts and totals
    equal those of the streamed stalls; --top prints the same order on stderr."""
    if not debian_has("fastapi", "uvicorn"):
        pytest.skip("%s lacks fastapi or uvicorn (tools/setup)" % DEBIAN_PYTHON)
    target = lab.target("py_fastapi_app.py", "--slow-url", "http://127.0.0.1:9/")
    run = attach(lab, target, "--top")
    text = lab.loopstall("-p", target.pid)
    full = lab.loopstall("-p", target.pid, "--all-frames")
    text.wait_tracing()
    full.wait_tracing()
    port = target.info["port"]
    for _ in range(10):
        http_get(port, "/sleep?ms=150")
    for _ in range(2):
        http_get(port, "/subprocess?ms=1000")
    assert run.stop() == 0 and text.stop() == 0 and full.stop() == 0, run.describe()
    stalls = run.of_kind("stall", target.pid)
    summary = run.of_kind("summary", target.pid)[0]
    # The text output leads with the route, sums up the server's frames in one line naming
    # their packages (--all-frames prints them), and ends with the sites table.
    out, every = text.stdout.text(), full.stdout.text()
    assert "  in blocking_subprocess, task running RequestResponseCycle.run_asgi\n" in out, out
    assert re.search(r"\n    \(\d+ frames in [^)]*starlette[^)]*\)\n    File \"%s\", line \d+, "
                     r"in blocking_sleep\n" % re.escape(target.argv[1]), out), out
    # (An on-CPU sample can still end in FastAPI's code: the innermost frame always shows.)
    assert re.search(r"\n    File \"[^\"]*/fastapi/routing.py\", line \d+, in "
                     r"run_endpoint_function\n(.*\n){1,2}    File \"%s\", line \d+, in "
                     r"blocking_sleep\n" % re.escape(target.argv[1]), every), every
    assert out.index("where the loop blocked") > out.rindex("STALL"), out
    sites = summary["sites"]
    assert sum(s["count"] for s in sites) == len(stalls) == summary["stalls"], (sites, len(stalls))
    assert abs(sum(s["total_ms"] for s in sites) - sum(ev["duration_ms"] for ev in stalls)) < (
        0.002 * len(stalls) + 0.01), sites
    named = [s for s in sites if not s.get("other")]
    streamed = [(brief_site(ev), ev["duration_ms"]) for ev in stalls]
    assert named[0]["function"] == "blocking_subprocess" and named[0]["count"] == 2, (
        sites, streamed)
    assert named[0]["hint"] == "py-subprocess" and named[0]["reason"] in ("other", "net"), sites
    a = [s for s in named if s["function"] == "blocking_sleep"]
    assert a and a[0]["reason"] == "sleep" and named.index(a[0]) == 1, (sites, streamed)
    # Each site's count and total are its streamed stalls' (a stall whose Python frames were
    # not read, on a loaded machine, is counted at its native site instead).
    for site, hint in ((named[0], "py-subprocess"), (a[0], "py-sleep-in-coroutine")):
        own = [ev for ev in stalls if hint_of(ev).get("id") == hint]
        assert site["count"] == len(own), (site, streamed)
        assert abs(site["total_ms"] - sum(ev["duration_ms"] for ev in own)) < 0.01 * len(own), (
            site, streamed)
        assert abs(site["max_ms"] - max(ev["duration_ms"] for ev in own)) < 0.01, site
    assert a[0]["count"] >= 8, (a[0], streamed)
    assert 140 <= a[0]["p50_ms"] <= a[0]["max_ms"], a[0]
    table = run.stderr.text()
    assert "where the loop blocked" in table, table
    assert table.index("blocking_subprocess") < table.index("blocking_sleep"), table


def test_waiting_when_the_stall_ends(lab):
    """6. Four clients connect and go idle; /sleep blocks the loop 2 s; meanwhile 8 new clients
    connect (the kernel queues them in the listening socket's accept queue) and the 4 connected
    clients send a request each (4 ready sockets). The stall's `waiting` counts them when it
    ends: connections >= 8, ready_fds >= 4 (the exact numbers are the kernel's); the Prometheus
    counter of waiting connections has them too."""
    if not debian_has("fastapi", "uvicorn"):
        pytest.skip("%s lacks fastapi or uvicorn (tools/setup)" % DEBIAN_PYTHON)
    target = lab.target("py_fastapi_app.py", "--slow-url", "http://127.0.0.1:9/")
    prom = free_port()
    run = attach(lab, target, "--prometheus", "127.0.0.1:%d" % prom)
    url = wait_serving(run, prom)
    port = target.info["port"]
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(4)]
    time.sleep(1.0)  # the loop accepts them while it runs
    blocker = threading.Thread(target=http_get, args=(port, "/sleep?ms=2000"))
    blocker.start()
    time.sleep(0.5)  # the route is sleeping now: nothing is accepted or read until it returns
    queued = [socket.create_connection(("127.0.0.1", port)) for _ in range(8)]
    for sock in idle:
        sock.sendall(b"GET /async_sleep HTTP/1.1\r\nHost: x\r\n\r\n")
    blocker.join(60)
    ev = wait_for(run, target.pid, lambda ev: hint_of(ev).get("id") == "py-sleep-in-coroutine")
    metrics = parse_exposition(http_request(url)[2], False)
    assert run.stop() == 0, run.describe()
    for sock in idle + queued:
        sock.close()
    assert ev, "no stall of the blocking route\n" + run.describe()
    assert ev["duration_ms"] >= 1900, brief(ev)
    waiting = ev["waiting"]
    assert waiting["connections"] >= 8 and waiting["ready_fds"] >= 4, waiting
    counted = [v for _, labels, v in metrics["loopstall_waiting_connections_total"]["samples"]
               if labels.get("pid") == str(target.pid) and not labels.get("tid")]
    assert counted and counted[0] >= 8, metrics["loopstall_waiting_connections_total"]
