#!/usr/bin/env python3
"""An asyncio loop that stalls while code objects are created and freed under loopstall's reader.

    fault_codechurn.py --ctl DIR [--ms N] [--depth N] [--count N]

Each DIR/go runs churn_stall() in a coroutine for --ms of wall time: again and again it compiles
a brand-new function churn_<k> (source file name "<churn-<k>>", so name and file always agree),
calls it recursively --depth deep, busy-works and sometimes time.sleep(0.002)s at the bottom,
then drops it (code object, function and frames are freed, their memory reused by the next
ones). Meanwhile a background thread does the same without pause (its churn_<k> numbered from
the ready file's bg_first on), so code objects also die and
appear while the loop thread is off-CPU. On-CPU samples and off-CPU stacks therefore point at
code objects that may be gone, or whose memory holds something else, by the time loopstall reads
them. The report has {"functions": how many churn_<k> the stall created}. --count actions, then
300 ms of idling, then exit 0.
"""

import argparse
import asyncio
import sys
import threading
import time

from ctl import Ctl, add_ctl_argument, serve, timed

# One generated function: recursion, a little arithmetic, an occasional short sleep; every line
# of it can be the current one of a frame.
TEMPLATE = """\
def {name}(depth, sleep_every):
    if depth > 0:
        return {name}(depth - 1, sleep_every) + 1
    total = 0
    for i in range(200):
        total += i * i
    if sleep_every and {k} % sleep_every == 0:
        time.sleep(0.002)
    return total
"""
TEMPLATE_LINES = TEMPLATE.count("\n")


def make_function(k):
    name = "churn_%d" % k
    namespace = {"time": time}
    exec(compile(TEMPLATE.format(name=name, k=k), "<churn-%d>" % k, "exec"), namespace)
    return namespace[name]


def churn_stall(ms, depth, counter):
    deadline = time.monotonic() + ms / 1000.0
    made = 0
    while time.monotonic() < deadline:
        fn = make_function(counter[0])
        counter[0] += 1
        made += 1
        fn(depth, 3)  # LINE:churn_call
        del fn
    return {"functions": made}


def background_churn(counter, stop):
    while not stop.is_set():
        fn = make_function(counter[0])
        counter[0] += 1
        fn(20, 0)
        del fn
        time.sleep(0.0005)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--ms", type=float, default=400.0)
    parser.add_argument("--depth", type=int, default=150)
    parser.add_argument("--count", type=int, default=3)
    args = parser.parse_args()
    sys.setrecursionlimit(max(1000, args.depth + 200))
    ctl = Ctl(args.ctl)
    # Separate counters: the two threads never build the same churn_<k>.
    loop_counter, bg_counter = [0], [10 ** 7]
    stop = threading.Event()
    bg = threading.Thread(target=background_churn, args=(bg_counter, stop), name="bg-churn")

    async def run():
        # Started before `ready`, so the thread has its own thread state by the time loopstall
        # attaches (a thread being started carries its creator's ids for a moment, <= 3.11).
        bg.start()
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()],
                  template_lines=TEMPLATE_LINES, bg_tid=bg.native_id, bg_first=bg_counter[0])
        await serve(ctl, args.count, lambda n: timed(
            n, "churn", lambda: churn_stall(args.ms, args.depth, loop_counter)))
        stop.set()

    asyncio.run(run())
    bg.join()


if __name__ == "__main__":
    main()
