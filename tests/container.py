"""Run a target the way container runtimes do, for tests of processes in other namespaces.

    c = Container(root, ["/usr/bin/python3", "/srv/app.py"], files={"/srv": local_dir},
                  binds=[ctl_dir])
    c.start(); c.pid  # the command's pid on the host; kill with c.kill()

Two kinds, both over a root filesystem directory that is never written to (the Debian root
tools/debian-root builds):
- "overlay" (the default, what runc and crun do): new PID, mount, UTS and IPC namespaces
  (unshare), an overlay mount whose throwaway upper layer lives in a tmpfs of the new mount
  namespace, pivot_root into it, /proc of the new PID namespace mounted inside. The command is
  PID 1 of its namespace, and its root is invisible from the host by path.
- "chroot": the same overlay, but mounted on the host (so the path under the chroot is visible
  from the host), and a plain chroot(2) into it; no new namespaces.

`files` maps a path inside the container to a host file or directory copied there (into the
upper layer, so the root stays clean); `binds` are host directories bind-mounted at the same
path inside (control directories the test and the target both use). Used by the CPython and
Node tests alike: nothing here knows what runs inside.

Run as a script, this module is the setup step inside the new namespaces (see _inner()).
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CACHE = Path(os.environ.get("LOOPSTALL_CACHE", "/var/cache/loopstall"))
DEBIAN_ROOT = CACHE / "debian-root"  # built by tools/debian-root

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86-64

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def _mount(source, target, fstype=None, flags=0, data=None):
    _check(_libc.mount(source.encode() if source else None, str(target).encode(),
                       fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                       data.encode() if data else None),
           "mount %s on %s" % (fstype or source, target))


def _umount(target):
    _check(_libc.umount2(str(target).encode(), MNT_DETACH), "umount %s" % target)


def _overlay(root, scratch):
    """An overlay of root with a fresh upper layer under scratch; returns its mount point."""
    for name in ("upper", "work", "merged"):
        (scratch / name).mkdir()
    merged = scratch / "merged"
    _mount("overlay", merged, "overlay", 0, "lowerdir=%s,upperdir=%s,workdir=%s" % (
        root, scratch / "upper", scratch / "work"))
    return merged


def _populate(merged, files, binds):
    """Copy files into the container and bind the shared directories at their own paths."""
    for inside, host in files.items():
        dest = merged / inside.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        if os.path.isdir(host):
            shutil.copytree(host, dest, dirs_exist_ok=True)
        else:
            shutil.copy2(host, dest)
    for host in binds:
        dest = merged / str(host).lstrip("/")
        dest.mkdir(parents=True, exist_ok=True)
        _mount(str(host), dest, None, MS_BIND | MS_REC)


def _inner(spec):
    """PID 1 of the new namespaces: build the root, pivot into it, exec the command."""
    scratch = Path(spec["scratch"])
    # The upper layer lives in this namespace's own tmpfs: thrown away with the namespace.
    _mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    merged = _overlay(spec["root"], scratch)
    _populate(merged, spec["files"], spec["binds"])
    _mount("proc", merged / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    socket.sethostname(spec["hostname"])
    old = merged / ".old-root"
    old.mkdir()
    os.chdir(merged)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b".old-root"), "pivot_root")
    os.chdir("/")
    _umount("/.old-root")
    os.rmdir("/.old-root")
    os.chdir(spec["cwd"])
    os.execve(spec["argv"][0], spec["argv"], spec["env"])


class Container:
    """One command in its own root; see the module's docstring."""

    def __init__(self, root, argv, files=None, binds=(), kind="overlay", env=None, cwd="/",
                 hostname="loopstall-test", stdout=None):
        if kind not in ("overlay", "chroot"):
            raise ValueError("kind is overlay or chroot, not %r" % kind)
        self.root = Path(root)
        self.argv = [str(a) for a in argv]
        self.files = {str(k): str(v) for k, v in (files or {}).items()}
        self.binds = [str(b) for b in binds]
        self.kind = kind
        self.env = env if env is not None else {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        self.cwd = cwd
        self.hostname = hostname
        self.stdout = stdout
        self.proc = None
        self.pid = None  # on the host
        self._scratch = None
        self._host_mounts = []
        self._tids = {}  # ns tid -> ours, see record_tids()

    def start(self, timeout=30.0):
        if not (self.root / "usr").is_dir():
            raise FileNotFoundError("%s is not a root filesystem (tools/debian-root builds one)"
                                    % self.root)
        self._scratch = Path(tempfile.mkdtemp(prefix="loopstall-container-"))
        out = self.stdout if self.stdout is not None else subprocess.DEVNULL
        if self.kind == "chroot":
            self._start_chroot(out)
            self.pid = self.proc.pid
            return self
        self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT)
        self.pid = self._child(self.proc.pid, timeout, lambda: self.proc.poll() is None)
        return self

    def _command(self):
        spec = {"root": str(self.root), "scratch": str(self._scratch), "files": self.files,
                "binds": self.binds, "argv": self.argv, "env": self.env, "cwd": self.cwd,
                "hostname": self.hostname}
        # --kill-child: the namespace dies with unshare, whatever kills it.
        return ["unshare", "--pid", "--mount", "--uts", "--ipc", "--fork", "--kill-child",
                "--propagation", "private", sys.executable, __file__, json.dumps(spec)]

    def launch_command(self):
        """The command that runs this (overlay) container, for another program to start
        (loopstall's launch mode); then launched_by() that program's pid."""
        if self.kind != "overlay":
            raise ValueError("only an overlay container is launched by another program")
        self._scratch = Path(tempfile.mkdtemp(prefix="loopstall-container-"))
        return self._command()

    def launched_by(self, launcher_pid, timeout=30.0):
        """Find PID 1 of the container the launcher started with launch_command()."""
        def alive(pid):
            return lambda: os.path.exists("/proc/%d" % pid)
        unshare = self._child(launcher_pid, timeout, alive(launcher_pid))
        self.pid = self._child(unshare, timeout, alive(unshare))
        return self

    def _start_chroot(self, out):
        merged = _overlay(self.root, self._scratch)
        self._host_mounts.append(merged)
        _populate(merged, self.files, self.binds)
        self._host_mounts += [merged / str(b).lstrip("/") for b in self.binds]
        _mount("proc", merged / "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        self._host_mounts.append(merged / "proc")

        def enter():
            os.chroot(merged)
            os.chdir(self.cwd)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=self.env, preexec_fn=enter)

    def _child(self, parent, timeout, alive):
        """The first child of parent: unshare --fork's is PID 1 of the namespace, which becomes
        the command."""
        path = "/proc/%d/task/%d/children" % (parent, parent)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                children = Path(path).read_text().split()
            except OSError:
                children = []
            if children:
                return int(children[0])
            if not alive():
                break
            time.sleep(0.01)
        raise RuntimeError("container %s did not start (no child of pid %d)"
                           % (self.argv, parent))

    def wait_exec(self, timeout=30.0):
        """Wait until PID 1 runs the command (not the setup step any more)."""
        want = self.argv[0].encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Path("/proc/%d/cmdline" % self.pid).read_bytes().split(b"\0")[0] == want:
                    return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError("container %s did not exec its command" % self.argv)

    def record_tids(self):
        """Remember which of our tids each live thread of the command has in its namespace."""
        try:
            entries = list(Path("/proc/%d/task" % self.pid).iterdir())
        except OSError:
            return
        for entry in entries:
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            nspid = [line.split()[1:] for line in status.splitlines()
                     if line.startswith("NSpid:")]
            if nspid:
                self._tids[int(nspid[0][-1])] = int(entry.name)

    def host_tid(self, ns_tid):
        """Our id of the command's thread whose id in its own PID namespace is ns_tid (live,
        or seen by record_tids() while it lived)."""
        self.record_tids()
        if ns_tid not in self._tids:
            raise LookupError("pid %d has no thread %d in its namespace" % (self.pid, ns_tid))
        return self._tids[ns_tid]

    def poll(self):
        return self.proc.poll() if self.proc else None

    def kill(self):
        if self.proc is None and self.pid is not None:  # launched by another program
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc is not None and self.proc.poll() is None:
            if self.kind == "chroot":
                self.proc.kill()
            else:
                # PID 1 ignores signals it has no handler for: SIGKILL it from the host; the
                # kernel then kills the rest of its namespace, and unshare exits.
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait(30)
        for mount in reversed(self._host_mounts):
            try:
                _umount(mount)
            except OSError:
                pass
        self._host_mounts = []
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.kill()


def debian_root():
    """The Debian root tools/debian-root built, or None."""
    return DEBIAN_ROOT if (DEBIAN_ROOT / "usr" / "bin" / "python3").exists() else None


def pythons(root):
    """The versioned CPython interpreters of a root, by glob: ["python3.13", "python3.14", ...]."""
    found = sorted(p.name for p in (Path(root) / "usr" / "bin").glob("python3.1[3-9]")
                   if p.is_file())
    found += sorted(p.name for p in (Path(root) / "usr" / "bin").glob("python3.1[3-9]t")
                    if p.is_file())
    return found


if __name__ == "__main__":
    _inner(json.loads(sys.argv[1]))
