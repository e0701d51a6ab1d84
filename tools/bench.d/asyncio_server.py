"""Workload (a): a pure-asyncio HTTP/1.1 keep-alive server (asyncio.Protocol, default event loop).

Answers every request with a tiny fixed response: enough HTTP for wrk, nothing more.
Usage: asyncio_server.py PORT   (prints "ready ..." on stdout once it listens)
"""
import asyncio
import os
import signal
import sys

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


async def main(port):
    loop = asyncio.get_running_loop()
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
    asyncio.run(main(int(sys.argv[1])))
