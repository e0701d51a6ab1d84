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
import threading
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

    async def next_go(self, sleep=None):
        """Until the test asks for an action, polling with the loop's own timer (sleep: the
        loop's coroutine sleep, asyncio's by default). It always sleeps first: the test may ask
        again the moment a report is written, and an action taken in the same loop iteration
        as the one before would make one stall of two."""
        if sleep is None:
            import asyncio
            sleep = asyncio.sleep
        while True:
            await sleep(POLL_S)
            if self.take_go():
                return

    def report(self, **info):
        with open(self.report_path, "a") as f:
            f.write(json.dumps(info) + "\n")


def add_ctl_argument(parser):
    parser.add_argument("--ctl", required=True, metavar="DIR",
                        help="control directory (ready, go, report.jsonl)")


def schedstat():
    """(CPU time, run delay) of the calling thread in ns, as the scheduler counts them: the time
    it ran and the time it waited runnable for a CPU (/proc/thread-self/schedstat)."""
    with open("/proc/thread-self/schedstat") as f:
        cpu, delay = f.read().split()[:2]
    return int(cpu), int(delay)


def host_steal_ms():
    """The host-wide steal time so far (/proc/stat: the time a hypervisor ran something else
    while this VM's CPUs had a thread to run), and one tick per CPU of its resolution."""
    tick_ms = 1000.0 / os.sysconf("SC_CLK_TCK")
    try:
        with open("/proc/stat") as f:
            steal = int(f.readline().split()[8])
    except OSError:  # a container root without /proc: no allowance for steal
        return 0.0, 0.0
    return steal * tick_ms, tick_ms * os.cpu_count()


def timed(n, name, fn):
    """Run one blocking action and return its report, with the scheduler's view of the action
    (sched_cpu_ms, run_delay_ms) to check loopstall's on-CPU/runqueue split against, and an
    upper bound of the VM's steal time in it (host_steal_ms): the scheduler's CPU time leaves
    steal out, loopstall's clock cannot tell it from running."""
    wall = time.time()
    steal0, resolution = host_steal_ms()
    cpu0, delay0 = schedstat()
    start = time.monotonic()
    extra = fn() or {}
    end = time.monotonic()
    cpu1, delay1 = schedstat()
    steal1, _ = host_steal_ms()
    report = {"n": n, "action": name, "start": start, "end": end, "ms": (end - start) * 1000.0,
              "wall_start": wall, "sched_cpu_ms": (cpu1 - cpu0) / 1e6,
              "run_delay_ms": (delay1 - delay0) / 1e6,
              "host_steal_ms": steal1 - steal0 + resolution}
    report.update(extra)
    return report


async def serve(ctl, count, act, linger_s=0.3):
    """In an asyncio loop, `count` times: wait for DIR/go (polling with the loop's own timer),
    then report act(n): a dict, or a coroutine that returns one. Then linger_s of idling, so the
    last stalled iteration ends at the loop's poll call, as in a real program."""
    import asyncio
    for n in range(1, count + 1):
        await ctl.next_go()
        report = act(n)
        if asyncio.iscoroutine(report):
            report = await report
        ctl.report(**report)
    await asyncio.sleep(linger_s)


class SelectCounter:
    """Counts an asyncio loop's selector polls, one per loop iteration, by wrapping
    loop._selector.select (a private attribute, fine for a test target)."""

    def __init__(self, loop):
        self.count = 0
        real_select = loop._selector.select

        def counting_select(timeout=None):
            self.count += 1
            return real_select(timeout)
        loop._selector.select = counting_select


class IdleLoop:
    """A second asyncio loop, in a thread of its own, that wakes every 10 ms and never blocks
    until stop(). Started and running when the constructor returns; setup(tid) runs in the
    thread before its loop first polls."""

    def __init__(self, name, setup=None):
        self.tid = None
        self.loop = None
        self._running = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._main, args=(setup,), name=name)
        self.thread.start()
        self._running.wait()

    def _main(self, setup):
        import asyncio
        self.tid = threading.get_native_id()
        if setup:
            setup(self.tid)

        async def idle():
            self.loop = asyncio.get_running_loop()
            self._running.set()
            while not self._stop.is_set():
                await asyncio.sleep(0.01)
        asyncio.run(idle())

    async def run(self, fn):
        """fn() inside a coroutine of this loop (blocking it), awaited from another loop."""
        import asyncio

        async def call():
            return fn()
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self.loop))

    def stop(self):
        self._stop.set()
        self.thread.join()
