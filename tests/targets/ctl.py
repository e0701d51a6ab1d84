"""The control-directory protocol shared by the test targets.

The test and a target talk through files in one directory (--ctl DIR) rather than through
stdin/stdout, so the protocol is the same for asyncio, uvloop and trio, and for attach mode and
launch mode (where the target's stdout belongs to loopstall):

  DIR/ready         written (atomically) once the event loop runs:
                    {"pid": ..., "python": "3.11.2", "loop": "asyncio", "loop_tids": [...], ...}
  DIR/go            created by the test to trigger ONE action; the target deletes it, then acts
  DIR/report.jsonl  one JSON line per finished action, with CLOCK_MONOTONIC times (the same clock
                    in every process, so the test can compare them with its own time.monotonic()):
                    {"n": 1, "action": "sleep", "start": 123.4, "end": 123.7, "ms": 300.1,
                     "wall_start": 1795359845.1, ...}   (wall_start: time.time(), for `time`)

The event loop polls DIR/go every POLL_S seconds with the loop's own timer, so between triggers
the loop keeps doing short, healthy iterations (an epoll_wait with a 20 ms timeout, then a stat).
Works with Python 3.8 and later.
"""

import json
import os
import sys
import time

POLL_S = 0.02


class Ctl:
    def __init__(self, path):
        self.path = path
        os.makedirs(path, exist_ok=True)
        self.go = os.path.join(path, "go")
        self.report_path = os.path.join(path, "report.jsonl")

    def ready(self, **info):
        info.setdefault("pid", os.getpid())
        info.setdefault("python", "%d.%d.%d" % sys.version_info[:3])
        tmp = os.path.join(self.path, ".ready.tmp")
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.rename(tmp, os.path.join(self.path, "ready"))

    def take_go(self):
        """True (once) if the test asked for an action."""
        try:
            os.unlink(self.go)
            return True
        except FileNotFoundError:
            return False

    def report(self, **info):
        with open(self.report_path, "a") as f:
            f.write(json.dumps(info) + "\n")


def add_ctl_argument(parser):
    parser.add_argument("--ctl", required=True, metavar="DIR",
                        help="control directory (ready, go, report.jsonl)")


def timed(n, name, fn):
    """Run one blocking action and return its report."""
    wall = time.time()
    start = time.monotonic()
    extra = fn() or {}
    end = time.monotonic()
    report = {"n": n, "action": name, "start": start, "end": end, "ms": (end - start) * 1000.0,
              "wall_start": wall}
    report.update(extra)
    return report
