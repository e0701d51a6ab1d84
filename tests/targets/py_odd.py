#!/usr/bin/env python3
"""An asyncio loop that stalls inside code objects a profiler reads at its peril.

    py_odd.py --ctl DIR --actions A,B,... [--ms N]

Each trigger runs the next action: the coroutine serve() awaits handler(), which calls one
function that blocks the loop with time.sleep(ms) (passed in as `sleep`). What differs is that
function's code object, which loopstall reads from this process's memory:

  unicode         a function named with non-ASCII letters (a 2-byte-per-char str in CPython)
  long_name       a function whose name is 600 characters long
  weird_file      compiled with a file name holding a quote, a backslash, a newline, a tab, a
                  control character and a non-BMP character (a 4-byte-per-char str)
  garbage_random  the sleeping function with its line table replaced by random bytes
  garbage_varint  ... by bytes that never end a varint (0xff...)
  garbage_empty   ... by an empty line table
  gen             a function compiled afresh (`gen_NNN`, file `<gen-NNN>`) after the previous
                  trigger's generated function was freed: CPython's allocator tends to give the
                  new code object the address of a freed one

CPython reads a line table only when it needs a line number (tracebacks, tracing, f_lineno),
so the garbage tables do not disturb this program. Each report line says what ran, with the
line CPython itself gives the blocking frame (f_lineno of the same code object at the same call,
asked just before the stall; null when CPython finds no line):
{"n": 1, "action": "gen", "function": "gen_001", "file": "<gen-001>", "line": 2,
 "code_id": 140..., ...}
Control directory protocol as in ctl.py (ready, go, report.jsonl); works with Python 3.8+.
"""

import argparse
import asyncio
import gc
import random
import sys
import threading
import time
import types

from ctl import Ctl, add_ctl_argument


def блок_睡眠(sleep, seconds):
    sleep(seconds)  # LINE:unicode


def garbage_lines(sleep, seconds):
    sleep(seconds)  # LINE:garbage


GENERATED = "def {name}(sleep, seconds):\n    sleep(seconds)\n"
WEIRD_FILE = 'odd dir/we"ird\\name\n\tx\x01\U0001f40d.py'
GARBAGE = {
    "garbage_random": bytes(random.Random(7).randrange(256) for _ in range(200)),
    "garbage_varint": b"\xff" * 200,
    "garbage_empty": b"",
}


def cpython_line(fn):
    """The line CPython itself gives fn's frame at its sleep() call: the same code object at
    the same instruction as during the stall, asked through the frame's f_lineno."""
    lines = []
    fn(lambda _: lines.append(sys._getframe(1).f_lineno), 0)
    return lines[0]


def generated(name, filename):
    namespace = {}
    exec(compile(GENERATED.format(name=name), filename, "exec"), namespace)
    return namespace[name]


def with_line_table(fn, table):
    # 3.10 renamed co_lnotab to co_linetable (a new format, again new in 3.11).
    field = "co_linetable" if sys.version_info >= (3, 10) else "co_lnotab"
    return types.FunctionType(fn.__code__.replace(**{field: table}), fn.__globals__, fn.__name__)


class Actions:
    def __init__(self):
        self.previous_gen = None
        self.kept = []  # every other action's function stays alive: no address is reused

    def pick(self, action, n):
        """The function that will block."""
        fn = self._pick(action, n)
        if action != "gen":
            self.kept.append(fn)
        return fn

    def _pick(self, action, n):
        if action == "unicode":
            return блок_睡眠
        if action == "long_name":
            return generated("f" + "x" * 599, "<long-name>")
        if action == "weird_file":
            return generated("weird", WEIRD_FILE)
        if action in GARBAGE:
            return with_line_table(garbage_lines, GARBAGE[action])
        if action == "gen":
            # Free the previous generated function (the test has its stall by now) first, so
            # its memory is there for the new code object to take.
            self.previous_gen = None
            gc.collect()
            fn = generated("gen_%03d" % n, "<gen-%03d>" % n)
            self.previous_gen = fn
            return fn
        raise ValueError(action)


async def handler(fn, seconds):
    fn(time.sleep, seconds)  # LINE:handler


async def serve(args, ctl):
    actions = Actions()
    ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()])
    for n, action in enumerate(args.actions.split(","), 1):
        await ctl.next_go()
        fn = actions.pick(action, n)
        code, line = fn.__code__, cpython_line(fn)
        wall, start = time.time(), time.monotonic()
        await handler(fn, args.ms / 1000.0)  # LINE:serve
        end = time.monotonic()
        ctl.report(n=n, action=action, function=code.co_name, file=code.co_filename, line=line,
                   code_id=id(code), start=start, end=end, ms=(end - start) * 1000.0,
                   wall_start=wall)
        del fn, code
    await asyncio.sleep(0.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--actions", required=True, help="comma-separated, one per trigger")
    parser.add_argument("--ms", type=float, default=300.0)
    args = parser.parse_args()
    asyncio.run(serve(args, Ctl(args.ctl)))  # LINE:main


if __name__ == "__main__":
    main()  # LINE:module
