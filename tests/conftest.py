"""Fixtures for the loopstall end-to-end tests (run: /usr/bin/python3 -m pytest tests/ -v).

The tests run the built binary (build/loopstall, or $LOOPSTALL) against real Python programs
from tests/targets/. They need root (loading BPF programs) and a built binary; without root they
are skipped with a reason, without the binary they fail (a missing build must not look green).
"""

import os

import pytest

import harness


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """With CI=true, a skip for a missing prerequisite (harness.missing) is a failure."""
    outcome = yield
    report = outcome.get_result()
    if harness.CI and report.skipped and harness.MISSING in str(report.longrepr):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = "CI=true: %s (tools/setup installs the Debian ones)" % reason


@pytest.fixture(scope="session")
def loopstall_bin():
    if os.geteuid() != 0:
        pytest.skip(harness.missing("root: loopstall loads BPF programs (CAP_BPF, CAP_PERFMON)"))
    if not os.access(harness.LOOPSTALL, os.X_OK):
        pytest.fail("%s is not an executable; build it first: cmake -S . -B build && "
                    "cmake --build build (or point $LOOPSTALL at a binary)" % harness.LOOPSTALL,
                    pytrace=False)
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("kernel has no BTF (/sys/kernel/btf/vmlinux); loopstall needs it")
    return harness.LOOPSTALL


class Lab:
    """Starts targets and loopstall runs for one test and cleans up after it."""

    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.targets = []
        self.runs = []
        self.cleanups = []  # callables, run after the targets are gone (files they used)

    def target(self, script, *args, python=harness.DEBIAN_PYTHON, name="target", start=True):
        """A target from tests/targets/; started (attach mode) unless start=False."""
        t = harness.Target(self.tmp_path / ("%s%d" % (name, len(self.targets))), python, script,
                           list(args))
        self.targets.append(t)
        if start:
            t.start()
        return t

    def container_target(self, script, *args, python, root, kind="overlay", files=None,
                         name="container", flags=(), start=True):
        """A target from tests/targets/ run in a container over root; started unless
        start=False (see ContainerTarget.launch_command). `flags` go to the interpreter,
        before the script."""
        t = harness.ContainerTarget(self.tmp_path / ("%s%d" % (name, len(self.targets))),
                                    python, script, list(args), root, kind=kind, files=files,
                                    flags=flags)
        self.targets.append(t)
        return t.start() if start else t

    def loopstall(self, *args, output=None, prefix=()):
        run = harness.Loopstall(list(args), output=output, prefix=prefix)
        self.runs.append(run)
        return run

    def close(self):
        for run in self.runs:
            run.finish()
        for t in self.targets:
            t.kill()
        for cleanup in self.cleanups:
            cleanup()
        # Shown by pytest only when the test failed.
        for run in self.runs:
            print("---- loopstall run ----\n" + run.describe())
        for t in self.targets:
            print("---- target %s ----\n%s" % (" ".join(t.argv), t.output()))
        reports = [run for run in self.runs if run.sanitizer_report()]
        if reports:
            pytest.fail("sanitizer report from %d loopstall run(s):\n%s" % (
                len(reports), "\n".join("%s\n%s" % (" ".join(run.argv), run.sanitizer_report())
                                         for run in reports)), pytrace=False)


@pytest.fixture
def lab(loopstall_bin, tmp_path):
    lab = Lab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()
