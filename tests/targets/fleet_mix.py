#!/usr/bin/env python3
"""An asyncio loop with a known mix of iteration lengths, under a name of its own (fleet tests).

    fleet_mix.py --ctl DIR [--comm NAME] [--mode sleep|mix|onepoll|noloop] [--count N]
                 [--short N] [--short-ms MS] [--long N] [--long-ms MS] [--linger-ms MS]
                 [--spawn NAME ...]

--comm NAME   written to /proc/self/comm before anything else, so `--all --comm REGEX` can tell
              the test's processes from the rest of the host (loopstall filters on the 15-char
              comm it sees when the process first polls).
--mode sleep  (default) on each DIR/go: one blocking_helper(--long-ms), 300 ms by default,
              like stall_target.py --action sleep.
--mode mix    on each DIR/go: --short iterations that busy-wait --short-ms each and --long
              iterations that call blocking_helper(--long-ms) (time.sleep), spread evenly among
              the short ones. Every iteration ends with `await asyncio.sleep(0)`, one selector
              poll. The report has the target's own count of selector polls (it wraps
              loop._selector.select, a private attribute, fine for a test target).
--spawn NAME  the first DIR/go, instead of an action, starts a child (fork + exec from inside
              the running loop): `fleet_mix.py --ctl DIR/NAME --comm NAME --mode sleep --count 1`
              with this process's --long-ms; repeatable. The report names the children's pids;
              the later DIR/go files trigger the --count actions as usual. The process waits for
              its children before it exits.
--mode onepoll one epoll_wait of --long-ms on an empty epoll set, then exit: polls, but never
              completes a loop iteration (that is the time from a poll's return to the next).
--mode noloop no event loop at all: writes DIR/ready, then sleeps (clock_nanosleep) until the
              DIR/go files have been taken --count times. It never calls epoll.

After the last action the loop runs --linger-ms longer (so the last stalled iteration ends in the
loop's poll call), then the process exits 0 and reports {"action": "exit", "selects": ...}.
"""

import argparse
import os
import subprocess
import sys
import threading
import time

from ctl import POLL_S, Ctl, SelectCounter, add_ctl_argument, timed


def blocking_helper(ms):
    time.sleep(ms / 1000.0)  # fleet-test: the blocking line


def spin(ms):
    # Wall-clock busy wait: the iteration lasts at least ms, on CPU.
    deadline = time.perf_counter() + ms / 1000.0
    while time.perf_counter() < deadline:
        pass


def long_iterations(total, nlong):
    """Indexes of the long iterations among total: evenly spread, never the first or last."""
    if not nlong:
        return set()
    return {(k * total) // nlong + total // (2 * nlong) for k in range(nlong)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--comm", help="process name (/proc/self/comm), at most 15 bytes")
    parser.add_argument("--mode", choices=["mix", "sleep", "onepoll", "noloop"], default="sleep")
    parser.add_argument("--count", type=int, default=1, help="actions (triggers) before exiting")
    parser.add_argument("--short", type=int, default=1000)
    parser.add_argument("--short-ms", type=float, default=1.0)
    parser.add_argument("--long", type=int, default=10)
    parser.add_argument("--long-ms", type=float, default=300.0)
    parser.add_argument("--linger-ms", type=float, default=300.0)
    parser.add_argument("--spawn", action="append", default=[], metavar="NAME")
    args = parser.parse_args()
    if args.comm:
        with open("/proc/self/comm", "w") as f:
            f.write(args.comm)
    ctl = Ctl(args.ctl)

    if args.mode == "noloop":
        ctl.ready(loop=None, loop_tids=[], comm=args.comm)
        for n in range(1, args.count + 1):
            while not ctl.take_go():
                time.sleep(POLL_S)
            ctl.report(n=n, action="noop")
        ctl.report(n=args.count + 1, action="exit", selects=0)
        return

    if args.mode == "onepoll":
        import select
        epoll = select.epoll()
        ctl.ready(loop=None, loop_tids=[threading.get_native_id()], comm=args.comm)
        epoll.poll(args.long_ms / 1000.0)
        ctl.report(n=1, action="exit", selects=1)
        return

    import asyncio
    loop = asyncio.new_event_loop()
    selects = SelectCounter(loop)

    async def mix(n):
        total = args.short + args.long
        long_at = long_iterations(total, args.long)
        before = selects.count
        start = time.monotonic()
        for i in range(total):
            if i in long_at:
                blocking_helper(args.long_ms)
            else:
                spin(args.short_ms)
            await asyncio.sleep(0)
        end = time.monotonic()
        return {"n": n, "action": "mix", "start": start, "end": end, "ms": (end - start) * 1e3,
                "short": args.short, "long": args.long, "selects_before": before,
                "selects_after": selects.count}

    children = []

    def spawn():
        pids = {}
        for name in args.spawn:
            argv = [sys.executable, os.path.abspath(__file__), "--ctl",
                    os.path.join(args.ctl, name), "--comm", name, "--mode", "sleep",
                    "--count", "1", "--long-ms", str(args.long_ms)]
            child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            children.append(child)
            pids[name] = child.pid
        return {"children": pids}

    async def body():
        ctl.ready(loop="asyncio", loop_tids=[threading.get_native_id()], comm=args.comm)
        if args.spawn:
            await ctl.next_go()
            ctl.report(**timed(0, "spawn", spawn))
        for n in range(1, args.count + 1):
            await ctl.next_go()
            if args.mode == "mix":
                ctl.report(**(await mix(n)))
            else:
                ctl.report(**timed(n, "sleep", lambda: blocking_helper(args.long_ms)))
        await asyncio.sleep(args.linger_ms / 1000.0)

    try:
        loop.run_until_complete(body())
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        loop.close()
    for child in children:
        child.wait()
    ctl.report(n=args.count + 1, action="exit", selects=selects.count)


if __name__ == "__main__":
    main()
