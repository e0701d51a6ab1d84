"""Which boundary marks a libuv loop iteration: the poll syscall, or a uprobe on uv__io_poll?

libuv's uv__io_poll() calls epoll_pwait *and then runs the I/O callbacks* (every HTTP handler)
before it returns. Bracketing iterations with a uprobe on it would count the handlers as time
spent waiting, so such a boundary misses exactly the stalls users care about; the epoll syscall
boundary (the default) sees them. This is why loopstall offers no uv__io_poll preset: both are
run on the same stalled server here, and the test fails if that ever stops being true (a libuv
that moved callback dispatch out of uv__io_poll would deserve a preset).
"""

import http.client
import os
import shutil
import subprocess
import time

import pytest

from harness import caused_stalls, missing

NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None,
                                reason=missing("`node` on PATH (Debian package nodejs)"))

STALL_MS = 300
QUIET_S = 1.0  # after the answer: the loop is back in its poll, any stall event is out


def has_symbol(binary, symbol):
    """uv__io_poll is a local symbol: only unstripped node binaries have it in .symtab."""
    listing = subprocess.run(["nm", binary], capture_output=True, text=True).stdout
    return any(line.split()[-1:] == [symbol] for line in listing.splitlines())


def hash_request(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", "/hash?ms=%d" % STALL_MS)
        assert conn.getresponse().status == 200
    finally:
        conn.close()


def stalls_seen(lab, target, *boundary):
    run = lab.loopstall("--json", "-p", target.pid, *boundary)
    run.wait_tracing()
    hash_request(target.info["port"])
    time.sleep(QUIET_S)
    assert run.stop() == 0, run.describe()
    summaries = run.of_kind("summary", target.pid)
    assert len(summaries) == 1 and summaries[0]["iterations"] > 0, run.describe()
    return caused_stalls(run, target.pid)


def test_uv_io_poll_uprobe_misses_handler_stalls(lab):
    node = os.path.realpath(NODE)
    if not has_symbol(node, "uv__io_poll"):
        pytest.skip("%s has no uv__io_poll symbol (stripped)" % node)
    target = lab.target("node_http.js", python=NODE)
    target.wait_ready()

    by_syscall = stalls_seen(lab, target)
    assert len(by_syscall) == 1, by_syscall
    assert by_syscall[0]["duration_ms"] >= STALL_MS - 5, by_syscall

    by_uprobe = stalls_seen(lab, target, "--loop-func", "%s:uv__io_poll" % node)
    assert by_uprobe == [], ("a uv__io_poll boundary saw the handler's stall: libuv runs "
                             "callbacks outside uv__io_poll now?", by_uprobe)
