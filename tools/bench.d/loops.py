"""Synthetic asyncio loops for tools/bench (each prints "ready" once running).

  loops.py paced RATE        `await asyncio.sleep(0)` about RATE times a second (fleet mode)
  loops.py fleet N RATE      start N `paced RATE` processes, print their pids, wait; SIGTERM
                             ends them (tools/bench runs it in a session of its own)
  loops.py sleepy DEPTH US   every iteration: a time.sleep(US µs) DEPTH Python frames deep,
                             inside the callback (each switch-out is inside a busy iteration)
  loops.py idle US           every iteration: `await asyncio.sleep(US µs)` (switch-outs only
                             in epoll_wait, between iterations)
  loops.py spin              `await asyncio.sleep(0)` as fast as it can; SIGUSR1 prints the
                             iteration count
  loops.py storm RATE US     stalls: every iteration is a time.sleep(US µs) callback, about
                             RATE a second (0: as fast as possible); SIGUSR1 prints the count
  loops.py syscalls          no loop: os.getppid() as fast as it can; SIGUSR1 prints the count
  loops.py pingpong          no loop: a byte sent back and forth over two pipes between this
                             process and a child (its pid on the ready line); SIGUSR1 prints
                             the round trips
"""
import asyncio
import os
import signal
import sys
import time


def nested(depth, seconds):
    if depth <= 1:
        time.sleep(seconds)
    else:
        nested(depth - 1, seconds)


async def paced(rate):
    loop = asyncio.get_running_loop()
    start, n = loop.time(), 0
    while True:
        n += 1
        if n > rate * (loop.time() - start):
            await asyncio.sleep(0.002)  # ahead of schedule: one idle poll
        else:
            await asyncio.sleep(0)


async def sleepy(depth, us):
    while True:
        nested(depth, us / 1e6)
        await asyncio.sleep(0)


async def idle(us):
    while True:
        await asyncio.sleep(us / 1e6)


async def spin():
    loop = asyncio.get_running_loop()
    count = 0
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(f"count {count}", flush=True))
    while True:
        count += 1
        await asyncio.sleep(0)


async def storm(rate, us):
    loop = asyncio.get_running_loop()
    count = 0
    loop.add_signal_handler(signal.SIGUSR1, lambda: print(f"count {count}", flush=True))
    start = loop.time()
    while True:
        time.sleep(us / 1e6)
        count += 1
        if rate and count > rate * (loop.time() - start):
            await asyncio.sleep(0.001)
        else:
            await asyncio.sleep(0)


async def main(argv):
    mode, args = argv[0], [float(a) for a in argv[1:]]
    work = {"paced": paced, "sleepy": lambda d, us: sleepy(int(d), us), "idle": idle,
            "spin": spin, "storm": storm}[mode](*args)
    print("ready", flush=True)
    await work


def fleet(n, rate):
    import subprocess

    children = [subprocess.Popen([sys.executable, __file__, "paced", rate],
                                 stdout=subprocess.DEVNULL) for _ in range(int(n))]
    # Blocked only now: the children must not inherit a mask that ignores SIGTERM.
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    print("pids " + " ".join(str(c.pid) for c in children), flush=True)
    try:
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        for c in children:
            c.terminate()
        for c in children:
            c.wait()


def counted(work):
    """Run WORK (a function of a one-item counter it increments) forever; SIGUSR1 prints it."""
    count = [0]
    signal.signal(signal.SIGUSR1, lambda *_: print(f"count {count[0]}", flush=True))
    work(count)


def syscalls(count):
    print("ready", flush=True)
    while True:
        os.getppid()
        count[0] += 1


def pingpong(count):
    to_child, from_parent = os.pipe()
    to_parent, from_child = os.pipe()
    child = os.fork()
    if child == 0:
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        os.close(from_parent)  # so that the parent's exit is an EOF here
        while os.read(to_child, 1):
            os.write(from_child, b"x")
        os._exit(0)
    print(f"ready {child}", flush=True)
    while True:
        os.write(from_parent, b"x")
        os.read(to_parent, 1)
        count[0] += 1


if __name__ == "__main__":
    if sys.argv[1] == "fleet":
        fleet(*sys.argv[2:4])
        sys.exit(0)
    if sys.argv[1] in ("syscalls", "pingpong"):
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        counted({"syscalls": syscalls, "pingpong": pingpong}[sys.argv[1]])
    # Exit at once: an exception raised between two steps of asyncio's loop can lose a task's
    # wake-up, and asyncio.run() then waits forever for it while cancelling.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    asyncio.run(main(sys.argv[1:]))
