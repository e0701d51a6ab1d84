#!/usr/bin/env python3
"""An asyncio loop that stalls under frames whose code objects name hostile files and names.

    hostile_files.py --ctl DIR --frames FILE [--ms N]

FILE holds a JSON list of frames, outermost first: {"file": ..., "line": N, "name": ...,
"qualname": ...}. Each becomes a code object compiled with that co_filename, whose call to the
next one is on line N, renamed (co_name, co_qualname) as given. Names may hold any code point:
a lone surrogate U+DC80..U+DCFF stands for the byte that surrogateescape would make of it, which
CPython then stores as bytes that are not UTF-8. The innermost frame sleeps --ms (time.sleep).
Each DIR/go runs the stack once. The files themselves are the test's: this program never opens
them, loopstall would (for source lines) if it did not read as this process could.
"""

import argparse
import asyncio
import json
import time
import types

from ctl import Ctl, add_ctl_argument, serve, timed


def frame_chain(frames, innermost):
    """A function that calls through one code object per frame, then innermost()."""
    call = innermost
    for frame in reversed(frames):
        source = "\n" * (frame["line"] - 1) + "nxt()\n"
        code = compile(source, frame["file"], "exec")
        renamed = {"co_name": frame["name"]}
        if hasattr(code, "co_qualname"):
            renamed["co_qualname"] = frame["qualname"]
        call = types.FunctionType(code.replace(**renamed), {"nxt": call})
    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--frames", required=True, help="JSON file of frames, outermost first")
    parser.add_argument("--ms", type=float, default=300.0)
    args = parser.parse_args()
    ctl = Ctl(args.ctl)
    with open(args.frames) as f:
        frames = json.load(f)
    stall = frame_chain(frames, lambda: time.sleep(args.ms / 1000.0))

    async def act(n):
        return timed(n, "hostile", stall)

    async def run():
        ctl.ready(loop="asyncio")
        await serve(ctl, 1000, act)

    asyncio.run(run())


if __name__ == "__main__":
    main()
