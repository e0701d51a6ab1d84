#!/usr/bin/env python3
"""py_nested.py, but asyncio is imported only once the test says so.

    py_late_asyncio.py --ctl DIR [py_nested.py's options]

Until the first DIR/go the process is an interpreter with no asyncio in it (on 3.14 the
_asyncio library, which holds _AsyncioDebug, is not mapped yet) running a loop of its own, as
a program does I/O before it starts asyncio: it writes DIR/ready with "loop": "none" and polls
DIR/go between epoll_waits of a selectors loop (what launch mode recognizes a loop by). Then it imports py_nested (and asyncio with
it) and runs it: ready is written again with "loop": "asyncio", and each later DIR/go is one of
py_nested.py's actions.
"""

import selectors
import sys
import threading

from ctl import POLL_S, Ctl


def main():
    ctl = Ctl(sys.argv[sys.argv.index("--ctl") + 1])
    assert "asyncio" not in sys.modules
    ctl.ready(loop="none", loop_tids=[threading.get_native_id()])
    with selectors.DefaultSelector() as selector:
        while not ctl.take_go():
            selector.select(POLL_S)
    import py_nested
    py_nested.main()


if __name__ == "__main__":
    main()
