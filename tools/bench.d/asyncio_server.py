"""Workload (a): a pure-asyncio HTTP/1.1 keep-alive server (asyncio.Protocol, default event loop).

Answers every request with a tiny fixed response: enough HTTP for wrk, nothing more.
Usage: asyncio_server.py PORT [block]   (prints "ready ..." on stdout once it listens)

With `block`, a task blocks the loop every second, in turns: 150 ms in time.sleep (off-CPU),
then 150 ms of pure-Python CPU work (the calls marked BLOCK: tools/bench checks which observer
names them).
"""
import asyncio
import os
import signal
import sys
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
            b"Connection: keep-alive\r\n\r\nok")


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        data = self.pending + data
        count = data.count(b"\r\n\r\n")
        if count:
            # wrk sends GETs without bodies: a request ends at its blank line.
            self.pending = data[data.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * count)
        else:
            self.pending = data


def busy(seconds):
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        n += 1
    return n


async def blocker():
    while True:
        await asyncio.sleep(1)
        time.sleep(0.15)  # BLOCK: sleep
        await asyncio.sleep(1)
        busy(0.15)  # BLOCK: cpu


async def main(port, mode):
    loop = asyncio.get_running_loop()
    if mode == "block":
        loop.create_task(blocker())
    server = await loop.create_server(Http, "127.0.0.1", port, backlog=1024)
    print(f"ready loop={type(loop).__module__}.{type(loop).__name__} debug={loop.get_debug()}",
          flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # Exit at once: an exception raised between two steps of asyncio's loop can lose a task's
    # wake-up, and asyncio.run() then waits forever for it while cancelling.
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    signal.signal(signal.SIGINT, lambda *_: os._exit(0))
    asyncio.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
