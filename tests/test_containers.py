"""Targets in containers, and the CPython versions of a current distribution.

Every target here runs in a container of tests/container.py over the Debian testing/unstable
root that tools/debian-root builds (CPython 3.13, 3.14, 3.15 and whatever newer python3.1X the
snapshot has, FastAPI, uvicorn, uvloop): new PID, mount, UTS and IPC namespaces, an overlay
root, pivot_root, its own /proc. The interpreter, its libraries and the target's scripts exist
only inside; the tids it records are its namespace's. Frames must still be exact, with the
paths the target sees.

  1  nested frames, sleep and busy, exact functions, files and lines, every python3.1X of
     the root (py_nested.py, as test_python.py's test 1)
  1c on 3.14+: a task named by the program and its awaiter, from _AsyncioDebug
  1d the same when the target imports asyncio only after loopstall attached (3.14 maps the
     _asyncio library, which holds the table, at that import)
  1e the same in launch mode (`loopstall -- CONTAINER`), the interpreter found at a loop it
     runs before it imports asyncio
  1b the same in a chroot (no namespaces, root visible from the host by path)
  2  FastAPI on uvicorn with uvloop on the root's python3: the async route calling
     time.sleep named with its task, the def route and the asyncio.sleep route never
  3  GIL starvation, every python3.1X of the root: the holder is the spinner's tid on the host
  4  an interpreter copy whose _Py_DebugOffsets cookie or version is corrupted, or that says
     it is free-threaded: exactly one warning, stalls still found, no Python frames; one
     claiming the next minor (3.16 for a 3.15 root) read through the newest layout, exact
     frames
  5  the native frames of time.sleep: libc resolved inside the container

Run: /usr/bin/python3 -m pytest tests/test_containers.py -v   (as root, after tools/setup)
"""

import json
import re
import struct
import time

import pytest

import container
from harness import ContainerTarget, brief, wait_until
from test_python import (SETTLE_S, WARMUP_S, attach, check_fastapi_routes, check_gil_starvation,
                         check_nested, marker_lines, prefix_in, settle_and_stop, show, show_all,
                         single_stall)

ROOT = container.debian_root()
PYTHONS = container.pythons(ROOT) if ROOT else []
NO_ROOT = pytest.mark.skip(reason="no Debian root under %s: run tools/debian-root (tools/setup "
                           "does)" % container.CACHE)


def root_pythons():
    if not PYTHONS:
        return [pytest.param(None, marks=NO_ROOT, id="no-debian-root")]
    return PYTHONS


def default_python():
    """The root's python3 (a symlink to its default python3.1X), by the name it links to."""
    if not ROOT:
        return None
    return (ROOT / "usr" / "bin" / "python3").resolve().name


def has_asyncio_debug(python):
    """CPython 3.14 and later export _AsyncioDebug: tasks get names and awaiters."""
    return int(python.split(".")[1].rstrip("t")) >= 14


def main_task(ev, python):
    """The task py_nested.py's serve() runs in: asyncio.run's, named from asyncio's counter
    ("Task-N") and awaited by none on 3.14+."""
    task = {"coroutine": "serve"}
    if has_asyncio_debug(python):
        assert re.fullmatch(r"Task-\d+", (ev["task"] or {}).get("name", "")), ev["task"]
        task.update(name=ev["task"]["name"], awaited_by=[])
    return task


def run_nested(lab, python, action, kind="overlay"):
    script = "py_nested.py"
    path = "%s/%s" % (ContainerTarget.INSIDE, script)
    target = lab.container_target(script, "--action", action, "--ms", 300, "--count", 2,
                                  python="/usr/bin/" + python, root=ROOT, kind=kind)
    run, report, ev = single_stall(lab, target)
    assert ev["tid"] == target.host_tid(target.info["loop_tids"][0]) == target.pid, brief(ev)
    check_nested(ev, action, path, marker_lines(script), has_qualname=True,
                 task=main_task(ev, python))
    assert report["action"] == action
    assert "not supported" not in run.stderr.text(), run.stderr.text()
    return ev


@pytest.mark.parametrize("action", ["sleep", "busy"])
@pytest.mark.parametrize("python", root_pythons())
def test_nested_frames_in_container(lab, python, action):
    """1. serve() -> handler() -> helper() blocking, in a pivot_root container: exact frames."""
    run_nested(lab, python, action)


def asyncio_debug_pythons():
    return [p for p in root_pythons() if p is None or has_asyncio_debug(p)]


def task_target(lab, python, script, start=True):
    """py_nested.py's sleep in a task named handler-task, LATE_TRIES times at most."""
    return lab.container_target(script, "--action", "sleep", "--ms", 300,
                                "--count", LATE_TRIES, "--in-task", "handler-task",
                                python="/usr/bin/" + python, root=ROOT, start=start)


def check_named_task(ev):
    """py_nested.py --in-task handler-task's sleep: exact frames, the task by its name."""
    path, lines = "%s/py_nested.py" % ContainerTarget.INSIDE, marker_lines("py_nested.py")
    top = ev["stacks"][0]
    assert top["reason"] == "sleep", show(ev)
    assert prefix_in(top, path) == [("helper", path, lines["sleep"]),
                                    ("handler", path, lines["handler"])], show(ev)
    assert ev["task"] == {"coroutine": "handler", "app_coroutine": "handler",
                          "name": "handler-task", "awaited_by": ["serve"]}, show(ev)


@pytest.mark.parametrize("python", asyncio_debug_pythons())
def test_task_name_and_awaiter(lab, python):
    """1c. handler() in a task named by the program, awaited by serve()'s task: the stall's
    task is that name, its coroutine handler, awaited by serve (_AsyncioDebug, 3.14+)."""
    _, _, ev = single_stall(lab, task_target(lab, python, "py_nested.py"))
    check_named_task(ev)


LATE_TRIES = 8  # sleeps triggered, one at a time, until one names its task (~1 s each)


def sleeps(run, target):
    """The stalls of task_target()'s sleeps (its import of asyncio may be one too, on-CPU)."""
    return [ev for ev in run.of_kind("stall", target.pid) if ev["stacks"] and
            ev["stacks"][0]["reason"] == "sleep"]


def stalls_until_named(run, target):
    """Trigger task_target()'s sleeps one at a time until one's stall names its task, and
    check that name and chain are exact: the sleeps' stalls, that one last."""
    for n in range(1, LATE_TRIES + 1):
        target.trigger()
        stalls = wait_until(lambda: sleeps(run, target)[n - 1:], SETTLE_S,
                            "the stall of sleep %d" % n)
        if "name" in (stalls[-1]["task"] or {}):
            break
    stalls = sleeps(run, target)
    assert len(stalls) == n, show_all(stalls)
    assert "name" in (stalls[-1]["task"] or {}), "no stall named its task:\n" + show_all(stalls)
    check_named_task(stalls[-1])
    return stalls


def import_asyncio(target):
    """Let py_late_asyncio.py, ready and polling, import asyncio and run py_nested.py."""
    ready = target.ctl / "ready"
    assert json.loads(ready.read_text())["loop"] == "none"
    (target.ctl / "go").touch()
    wait_until(lambda: json.loads(ready.read_text())["loop"] == "asyncio", 30,
               "the target to import asyncio and run its loop")


@pytest.mark.parametrize("python", asyncio_debug_pythons())
def test_task_name_asyncio_imported_after_attach(lab, python):
    """1d. Attached to an interpreter with no asyncio yet; then it imports asyncio (on 3.14
    that maps _asyncio, and _AsyncioDebug with it) and stalls in a named task: one of the
    first stalls names it exactly, and none before it names another task."""
    target = task_target(lab, python, "py_late_asyncio.py")
    run = attach(lab, target)
    import_asyncio(target)
    named = stalls_until_named(run, target)
    settle_and_stop(run, target, lambda s: True)
    stalls = sleeps(run, target)
    assert [ev["task"] for ev in stalls] == [ev["task"] for ev in named], show_all(stalls)


@pytest.mark.parametrize("python", asyncio_debug_pythons())
def test_task_name_launch_mode(lab, python):
    """1e. loopstall -- (the container), whose program polls in a loop of its own before it
    imports asyncio: loopstall finds its interpreter at that first loop, before _asyncio is
    mapped; one of the first stalls in asyncio names its task exactly all the same."""
    out = lab.tmp_path / "out.jsonl"
    target = task_target(lab, python, "py_late_asyncio.py", start=False)
    run = lab.loopstall("--json", "-o", out, "--", *target.launch_command(), output=out)
    run.wait_tracing()
    target.launched_by(run.proc.pid).wait_ready()
    time.sleep(WARMUP_S)  # loopstall finds the interpreter at its loop's first polls
    import_asyncio(target)
    named = stalls_until_named(run, target)
    target.kill()  # the container's PID 1: the launched command exits, and loopstall with it
    assert run.wait_exit(30) == 0, run.describe()
    stalls = sleeps(run, target)
    assert [ev["task"] for ev in stalls] == [ev["task"] for ev in named], show_all(stalls)


@pytest.mark.skipif(not ROOT, reason="no Debian root: run tools/debian-root")
def test_nested_frames_in_chroot(lab):
    """1b. The same sleep in a plain chroot, whose files the host also sees by path."""
    run_nested(lab, default_python(), "sleep", kind="chroot")


@pytest.mark.skipif(not ROOT, reason="no Debian root: run tools/debian-root")
def test_fastapi_uvloop_in_container(lab):
    """2. test_python.py's FastAPI test on the root's python3, uvicorn and uvloop."""
    check_fastapi_routes(lab, "uvloop", lambda *args: lab.container_target(
        "py_fastapi_app.py", *args, python="/usr/bin/python3", root=ROOT),
        "%s/py_fastapi_app.py" % ContainerTarget.INSIDE)


@pytest.mark.parametrize("python", root_pythons())
def test_gil_starvation_in_container(lab, python):
    """3. test_python.py's GIL test on each interpreter of the root: holder tids are ours, not
    the container's."""
    check_gil_starvation(lab, lab.container_target("py_gil.py", "--ms", 2000, "--count", 2,
                                                   python="/usr/bin/" + python, root=ROOT))


def sections(elf):
    """{name: (address, file offset, size)} of an ELF64 little-endian file's sections."""
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3a)
    headers = [struct.unpack_from("<I4xQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    strtab = headers[shstrndx][3]
    return {bytes(elf[strtab + at:elf.index(b"\0", strtab + at)]): (addr, offset, size)
            for at, _, addr, offset, size in headers}


def section_offset(elf, name):
    """File offset of the section `name`."""
    return sections(elf)[name][1]


def symbol_offset(elf, name):
    """File offset of the .dynsym symbol `name` (Debian's interpreters export Py_Version)."""
    table = sections(elf)
    _, symtab, size = table[b".dynsym"]
    strtab = table[b".dynstr"][1]
    for at in range(symtab, symtab + size, 24):
        name_at, value = struct.unpack_from("<I", elf, at)[0], struct.unpack_from("<Q", elf, at + 8)[0]
        if elf[strtab + name_at:elf.index(b"\0", strtab + name_at)] == name:
            return next(offset + value - addr for addr, offset, length in table.values()
                        if addr <= value < addr + length)
    raise LookupError("no symbol %s" % name)


def corrupted_copy(tmp_path, python, what):
    """A copy of the root's python with the cookie or the version of its _Py_DebugOffsets
    (the initial bytes of _PyRuntime, at the start of the file's .PyRuntime section) changed."""
    data = bytearray((ROOT / "usr" / "bin" / python).read_bytes())
    at = section_offset(data, b".PyRuntime")
    assert data[at:at + 8] == b"xdebugpy", data[at:at + 8]
    if what == "cookie":
        data[at + 7] ^= 0x20
    elif what == "version":
        # The version word follows the 8-byte cookie: say 3.99.
        data[at + 8 + 2] = 99
    else:
        # What a --disable-gil build says in the word after it (python3.14t: not packaged by
        # Debian, and refused the same way).
        data[at + 16] = 1
    out = tmp_path / ("%s-%s" % (python, what))
    out.write_bytes(data)
    out.chmod(0o755)
    return out


@pytest.mark.skipif(not ROOT, reason="no Debian root: run tools/debian-root")
def test_newer_minor_reads_through_newest_layout(lab, tmp_path):
    """4b. The newest interpreter of the root made to claim the next minor (Py_Version and its
    _Py_DebugOffsets version both), as a new release whose table did not move would: read
    through the newest layout known, checked against the live process, exact frames, no
    warning."""
    python = PYTHONS[-1] if not PYTHONS[-1].endswith("t") else PYTHONS[-2]
    data = bytearray((ROOT / "usr" / "bin" / python).read_bytes())
    minor = int(python.split(".")[1])
    for at in (symbol_offset(data, b"Py_Version"), section_offset(data, b".PyRuntime") + 8):
        assert data[at + 2] == minor and data[at + 3] == 3, data[at:at + 4]
        data[at + 2] = minor + 1
    bad = "/usr/bin/%s-next" % python
    copy = tmp_path / "python-next"
    copy.write_bytes(data)
    copy.chmod(0o755)
    script = "py_nested.py"
    target = lab.container_target(script, "--action", "sleep", "--ms", 300, "--count", 2,
                                  python=bad, root=ROOT, files={bad: copy})
    run, _, ev = single_stall(lab, target)
    check_nested(ev, "sleep", "%s/%s" % (ContainerTarget.INSIDE, script), marker_lines(script),
                 has_qualname=True, task=main_task(ev, python))
    assert "native stacks only" not in run.stderr.text(), run.stderr.text()


@pytest.mark.parametrize("what", ["cookie", "version", "free_threaded"])
@pytest.mark.skipif(not ROOT, reason="no Debian root: run tools/debian-root")
def test_corrupted_debug_offsets(lab, tmp_path, what):
    """4. A corrupted _Py_DebugOffsets: one warning naming version and cause, no frames."""
    python = default_python()
    bad = "/usr/bin/%s-bad" % python
    target = lab.container_target(
        "py_nested.py", "--action", "sleep", "--ms", 300, "--count", 2, python=bad,
        root=ROOT, files={bad: corrupted_copy(tmp_path, python, what)})
    run, _, ev = single_stall(lab, target)
    assert not any(s.get("python") for s in ev["stacks"]), show(ev)
    warnings = [line for line in run.stderr.text().splitlines()
                if "pid %d" % target.pid in line and "native stacks only" in line]
    version = target.info["python"]
    cause = {"cookie": "its cookie is not", "version": "its version is not",
             "free_threaded": "a free-threaded build"}[what]
    assert len(warnings) == 1, run.stderr.text()
    assert ("CPython %s: its _Py_DebugOffsets does not check out (%s" % (version, cause)
            in warnings[0]), warnings[0]


@pytest.mark.skipif(not ROOT, reason="no Debian root: run tools/debian-root")
def test_native_libc_frame_in_container(lab):
    """5. time.sleep's native frames: the container's libc, by the path it has inside, and
    the function in it, named from the container's own debug file (libc6-dbg in the root:
    its libc.so.6 has no .symtab, and the innermost frame is no exported function)."""
    ev = run_nested(lab, default_python(), "sleep")
    top = ev["stacks"][0]
    libc = [f for f in top.get("user") or [] if "/libc.so" in (f.get("module") or "")]
    assert libc, "no libc frame in the sleep's native stack:\n%s" % top.get("user")
    assert libc[0]["module"] == "/usr/lib/x86_64-linux-gnu/libc.so.6", libc[0]
    # glibc 2.41+ makes the syscall in its cancellation helpers, called by clock_nanosleep;
    # libc has no frame pointers, so the innermost frame is all the stack has of it.
    assert libc[0]["symbol"] in ("clock_nanosleep", "__clock_nanosleep",
                                 "__internal_syscall_cancel", "__syscall_cancel_arch"), libc[0]
