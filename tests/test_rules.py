"""deploy/loopstall.rules.yaml: valid Prometheus rules (`promtool check rules`), and the alerts
and recording rules do what they say on input series (`promtool test rules`,
tests/rules_test.yaml); and the metric names they use are the ones loopstall exports."""

import re
import shutil
import subprocess

import pytest

from harness import REPO, missing

PROMTOOL = shutil.which("promtool")
RULES = REPO / "deploy" / "loopstall.rules.yaml"
pytestmark = pytest.mark.skipif(PROMTOOL is None,
                                reason=missing("promtool (Debian package prometheus)"))


def promtool(*args):
    result = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, "promtool %s:\n%s%s" % (" ".join(args), result.stdout,
                                                           result.stderr)
    return result.stdout


def test_rules_are_valid():
    assert "SUCCESS: 7 rules found" in promtool("check", "rules", str(RULES))


def test_rules_unit_tests():
    assert "SUCCESS" in promtool("test", "rules", str(REPO / "tests" / "rules_test.yaml"))


def test_rules_use_exported_metrics():
    """Every loopstall_* name in the rules is one the exporter writes (a renamed metric would
    leave an alert that never fires): a family named in user/, or a BPF counter's."""
    source = "".join(p.read_text() for p in (REPO / "user").glob("*.c"))
    exported = set(re.findall(r"loopstall_\w+", source))
    exported |= {"loopstall_%s_total" % name for name in re.findall(r'\{ "(\w+)",\n', source)}
    used = set(re.findall(r"loopstall_\w+", RULES.read_text()))
    used = {re.sub(r"_(bucket|count|sum)$", "", name) for name in used}
    assert used and used <= exported, sorted(used - exported)
