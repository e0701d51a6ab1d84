#!/usr/bin/env python3
"""An asyncio loop whose memory makes a reader wait forever: a code object's co_filename points
into a file mapped from a FUSE file system this process serves and never answers reads of.

    hostile_memory.py --ctl DIR --uid UID [--ms N]

Started as root only to mount: in a mount namespace of its own it opens /dev/fuse, mounts it on
DIR/mnt and becomes UID (no groups, no capabilities) before anything else; an unprivileged
process gets the same descriptor from fusermount3, which mounts for it. Then it serves that file
system in a thread (lookups, attributes, opens; a read is never answered), maps DIR/mnt/file
without touching it, and points co_filename of poisoned() at the mapping (ctypes). Any read of
that name by another process (process_vm_readv, /proc/PID/mem) waits for the read's answer:
until this process exits, which aborts its FUSE connection.

Each DIR/go runs one action, in order from --actions (comma-separated): "poisoned" stalls --ms
in poisoned(), "plain" in plain(). It ends with os._exit: a normal exit would free the code
object, whose decref of co_filename would fault on the mapping itself.
"""

import argparse
import asyncio
import ctypes
import mmap
import os
import struct
import threading
import time

from ctl import Ctl, add_ctl_argument, serve, timed

FUSE_LOOKUP, FUSE_FORGET, FUSE_GETATTR, FUSE_OPEN, FUSE_READ = 1, 2, 3, 14, 15
FUSE_RELEASE, FUSE_FLUSH, FUSE_INIT, FUSE_INTERRUPT, FUSE_BATCH_FORGET = 18, 25, 26, 36, 42
IN_HEADER = struct.Struct("<IIQQIIIHH")  # len, opcode, unique, nodeid, uid, gid, pid, ...
OUT_HEADER = struct.Struct("<IiQ")  # len, error, unique
ATTR = struct.Struct("<QQQQQQIIIIIIIIII")  # struct fuse_attr
ENOENT, ENOSYS = 2, 38
FILE_SIZE = 1 << 20
CLONE_NEWNS, MS_REC, MS_PRIVATE = 0x20000, 0x4000, 1 << 18


def attr(nodeid, uid):
    mode = 0o40755 if nodeid == 1 else 0o100444
    size = 0 if nodeid == 1 else FILE_SIZE
    return ATTR.pack(nodeid, size, size // 512, 0, 0, 0, 0, 0, 0, mode, 1, uid, uid, 0, 4096, 0)


def fuse_serve(fd, uid):
    """Answer everything the mapping needs; never a read (its requester waits, killable)."""
    while True:
        try:
            request = os.read(fd, (1 << 20) + 4096)
        except OSError:
            return
        _, opcode, unique, nodeid, *_ = IN_HEADER.unpack_from(request)
        body = request[IN_HEADER.size:]
        error, reply = 0, b""
        if opcode == FUSE_INIT:
            major, minor, readahead, flags = struct.unpack_from("<IIII", body)
            reply = struct.pack("<IIIIHHIIHHI", 7, 31, 0, 0, 1, 1, 4096, 1, 1, 0, 0)
            reply += b"\0" * (64 - len(reply))
        elif opcode == FUSE_LOOKUP:
            if nodeid == 1 and body.rstrip(b"\0") == b"file":
                reply = struct.pack("<QQQQII", 2, 0, 3600, 3600, 0, 0) + attr(2, uid)
            else:
                error = -ENOENT
        elif opcode == FUSE_GETATTR:
            reply = struct.pack("<QII", 3600, 0, 0) + attr(nodeid, uid)
        elif opcode == FUSE_OPEN:
            reply = struct.pack("<QII", 1, 0, 0)
        # A read waits until this process exits (its /dev/fuse closes: the connection aborts).
        elif opcode in (FUSE_READ, FUSE_FORGET, FUSE_BATCH_FORGET, FUSE_INTERRUPT):
            continue
        elif opcode not in (FUSE_RELEASE, FUSE_FLUSH):
            error = -ENOSYS
        os.write(fd, OUT_HEADER.pack(OUT_HEADER.size + len(reply), error, unique) + reply)


def mount_and_drop(mnt, uid):
    """/dev/fuse mounted on mnt in a mount namespace of our own, then uid."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) or libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None):
        raise OSError(ctypes.get_errno(), "unshare/mount private")
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = "fd=%d,rootmode=40000,user_id=%d,group_id=%d" % (fd, uid, uid)
    if libc.mount(b"hostile-memory", mnt.encode(), b"fuse", 0, opts.encode()):
        raise OSError(ctypes.get_errno(), "mount fuse")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    return fd


def poisoned_stall(ms):
    time.sleep(ms / 1000.0)


def plain_stall(ms):
    time.sleep(ms / 1000.0)


def poison(fn, addr):
    """fn's co_filename pointer, found by value in its code object, becomes addr."""
    code = fn.__code__
    want = id(code.co_filename)
    for off in range(16, 256, 8):
        slot = ctypes.c_uint64.from_address(id(code) + off)
        if slot.value == want:
            slot.value = addr
            return
    raise RuntimeError("co_filename not found in the code object")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_ctl_argument(parser)
    parser.add_argument("--uid", type=int, required=True)
    parser.add_argument("--actions", required=True)
    parser.add_argument("--ms", type=float, default=300.0)
    args = parser.parse_args()
    mnt = os.path.join(args.ctl, "mnt")
    os.makedirs(mnt, exist_ok=True)
    fd = mount_and_drop(mnt, args.uid)
    threading.Thread(target=fuse_serve, args=(fd, args.uid), daemon=True).start()
    ctl = Ctl(args.ctl)
    # mmap.mmap would keep a duplicate descriptor open: closing a FUSE file at exit waits for
    # a FLUSH answer from the server thread exit has already ended. Map, then close while served.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_long]
    file_fd = os.open(os.path.join(mnt, "file"), os.O_RDONLY)
    address = libc.mmap(None, FILE_SIZE, mmap.PROT_READ, mmap.MAP_SHARED, file_fd, 0)
    os.close(file_fd)
    if address in (None, ctypes.c_void_p(-1).value):
        raise OSError(ctypes.get_errno(), "mmap")
    poison(poisoned_stall, address)
    stalls = {"poisoned": poisoned_stall, "plain": plain_stall}
    actions = args.actions.split(",")

    async def act(n):
        return timed(n, actions[n - 1], lambda: stalls[actions[n - 1]](args.ms))

    async def run():
        ctl.ready(loop="asyncio", mapped=address)
        await serve(ctl, len(actions), act)

    asyncio.run(run())
    os._exit(0)


if __name__ == "__main__":
    main()
