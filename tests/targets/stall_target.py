#!/usr/bin/env python3
"""An event loop that stalls on demand, in one known way.

    stall_target.py --ctl DIR [--loop asyncio|uvloop|trio] [--action ACTION] [--ms N]
                    [--count N] [--mb N] [--dir PATH] [--in-callback]

Starts the loop, writes DIR/ready, then `--count` times: waits for DIR/go, runs ACTION inside a
coroutine (with --in-callback: in a plain callback the loop runs, asyncio only; no coroutine on
the stack) blocking the whole loop, appends a line to DIR/report.jsonl. After the last action it
keeps the loop running for --linger-ms (so the stalled iteration ends with a return to the
loop's poll call, as in a real program) and exits 0.

Actions (all block the loop thread):
  sleep   time.sleep(ms)            -> off-CPU, reason sleep (clock_nanosleep, select on <=3.10)
  naps    40 time.sleep(ms/40) in one iteration -> off-CPU, 40 switch-outs
  burst   12 1 ms sleeps, each from a different Python stack, then time.sleep(ms) -> off-CPU,
          more distinct waits than an iteration has stack slots, the long one last
  busy    pure-Python loop for ms of CPU time -> on-CPU
  pingpong  round trips with a thread through a threading.Condition for ms -> short futex
          sleeps, each woken (often on the other CPU) while it is still going to sleep
  recv    socket.recv() from a local TCP server that answers after ms -> off-CPU, reason net
  fsync   write --mb MB into a file under --dir, os.fsync, unlink     -> disk (reports fsync_ms)

Try it by hand:
    python3 stall_target.py --ctl /tmp/c --action sleep --count 2 &
    touch /tmp/c/go; sleep 1; touch /tmp/c/go; cat /tmp/c/report.jsonl
"""

import argparse
import os
import socket
import threading
import time

from ctl import Ctl, add_ctl_argument, timed


NAPS = 40


def act_sleep(args):
    time.sleep(args.ms / 1000.0)


def act_naps(args):
    # One iteration that blocks NAPS times: more switch-outs than the walker's per-iteration
    # budget (max_py_walks_per_iteration, 16), so the later ones go without a Python walk.
    for _ in range(NAPS):
        time.sleep(args.ms / 1000.0 / NAPS)
    return {"naps": NAPS}


BURST = 12


def nap_nested(depth):
    if depth:
        nap_nested(depth - 1)
    else:
        time.sleep(0.001)


def act_burst(args):
    # Each depth is a different Python stack, so a different stack slot in loopstall.
    for depth in range(BURST):
        nap_nested(depth)
    time.sleep(args.ms / 1000.0)
    return {"naps": BURST}


def act_busy(args):
    # Spin for --ms of this thread's CPU time, not wall time: on a loaded machine the stall
    # gets longer (runqueue time), but its on-CPU part stays --ms.
    cpu_start = time.thread_time()
    deadline = cpu_start + args.ms / 1000.0
    x = 0
    rounds = 0
    while time.thread_time() < deadline:
        for i in range(1000):
            x = (x * 31 + i) % 1000003
        rounds += 1
    return {"rounds": rounds, "cpu_ms": (time.thread_time() - cpu_start) * 1000.0}


def act_pingpong(args):
    # The loop thread and a helper hand a token back and forth: each side sleeps in a futex
    # (the condition's lock, the GIL) and is woken right after, often while still switching out.
    # It runs for a time, not a number of rounds: a round's cost varies several times between
    # hosts and loads, and the action must outlast the stall threshold.
    cond = threading.Condition()
    turn = ["loop"]

    def helper():
        with cond:
            while turn[0] != "done":
                if turn[0] == "helper":
                    turn[0] = "loop"
                    cond.notify()
                cond.wait()

    thread = threading.Thread(target=helper, name="pingpong")
    thread.start()
    end = time.monotonic() + args.ms / 1000.0
    rounds = 0
    with cond:
        while time.monotonic() < end:
            turn[0] = "helper"
            cond.notify()
            while turn[0] != "loop":
                cond.wait()
            rounds += 1
        turn[0] = "done"
        cond.notify()
    thread.join()
    return {"rounds": rounds}


class SlowServer:
    """A local TCP server that answers each one-byte request after a delay.

    It runs in a plain thread of the target (blocking accept/recv, no event loop), so the only
    event loop in the process is the one we stall.
    """

    def __init__(self, delay_s):
        self.delay_s = delay_s
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        threading.Thread(target=self._serve, name="slow-server", daemon=True).start()
        self.client = socket.create_connection(self.listener.getsockname())
        self.client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _serve(self):
        conn, _ = self.listener.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while conn.recv(1):
            time.sleep(self.delay_s)
            conn.sendall(b"!")


def act_recv(args):
    sock = args.server.client
    sock.sendall(b"?")
    data = sock.recv(1)  # blocks for --ms: the server answers late
    assert data == b"!", data


def act_fsync(args):
    path = os.path.join(args.dir, "stall_target.%d.tmp" % os.getpid())
    chunk = b"\xa5" * (1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for _ in range(args.mb):
            os.write(fd, chunk)
        start = time.monotonic()
        os.fsync(fd)
        fsync_ms = (time.monotonic() - start) * 1000.0
    finally:
        os.close(fd)
        os.unlink(path)
    return {"bytes": args.mb << 20, "path": path, "fsync_ms": fsync_ms}


ACTIONS = {"sleep": act_sleep, "naps": act_naps, "burst": act_burst, "busy": act_busy, "recv": act_recv,
           "fsync": act_fsync, "pingpong": act_pingpong}


def run_asyncio(args, ctl):
    import asyncio
    import threading

    async def main():
        ctl.ready(loop=args.loop, loop_tids=[threading.get_native_id()])
        for n in range(1, args.count + 1):
            await ctl.next_go()
            act = lambda: timed(n, args.action, lambda: ACTIONS[args.action](args))
            if args.in_callback:
                done = asyncio.get_running_loop().create_future()
                asyncio.get_running_loop().call_soon(lambda: done.set_result(act()))
                ctl.report(**await done)
            else:
                ctl.report(**act())
        await asyncio.sleep(args.linger_ms / 1000.0)

    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.loop == "asyncio-poll":
        # A loop built on poll(2), like GLib's: its iterations are bounded by poll, not epoll.
        import selectors
        loop = asyncio.SelectorEventLoop(selectors.PollSelector())
        try:
            loop.run_until_complete(main())
        finally:
            loop.close()
        return
    asyncio.run(main())


def run_trio(args, ctl):
    import trio

    async def main():
        ctl.ready(loop=args.loop, loop_tids=[threading.get_native_id()])
        for n in range(1, args.count + 1):
            await ctl.next_go(trio.sleep)
            ctl.report(**timed(n, args.action, lambda: ACTIONS[args.action](args)))
        await trio.sleep(args.linger_ms / 1000.0)

    trio.run(main)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--loop", choices=["asyncio", "asyncio-poll", "uvloop", "trio"],
                        default="asyncio")
    parser.add_argument("--action", choices=sorted(ACTIONS), default="sleep")
    parser.add_argument("--ms", type=float, default=300.0, help="how long each action blocks")
    parser.add_argument("--count", type=int, default=1, help="actions (triggers) before exiting")
    parser.add_argument("--mb", type=int, default=32, help="fsync: megabytes written per action")
    parser.add_argument("--dir", default="/var/tmp", help="fsync: where to write (a real disk)")
    parser.add_argument("--in-callback", action="store_true",
                        help="run the action in a callback (loop.call_soon), not the coroutine")
    parser.add_argument("--linger-ms", type=float, default=300.0,
                        help="keep the loop running this long after the last action")
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    if args.action == "recv":
        args.server = SlowServer(args.ms / 1000.0)
    if args.loop == "trio":
        run_trio(args, ctl)
    else:
        run_asyncio(args, ctl)


if __name__ == "__main__":
    main()
