"""The Prometheus exporter (--prometheus), end to end: a real Prometheus server scrapes loopstall
while a real asyncio target stalls, and PromQL must see the stalls; plus the HTTP contract
(formats, paths, methods, gzip, the loopback default) checked directly with urllib.

Needs /usr/bin/prometheus (Debian package `prometheus`, installed by tools/setup) for the
end-to-end test; the others only need the binary.
"""

import gzip
import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings

import pytest

from harness import (LOOPSTALL, TIMEOUT_S, brief, caused_stalls, check_stall_shape, missing,
                     starved, wait_until)

PROMETHEUS = "/usr/bin/prometheus"
SETTLE_S = 10.0  # how long a stall event may take to arrive after the loop polls again
# Prometheus applies a new scrape config after its discovery tick (5 s), then scrapes every 1 s.
SCRAPED_S = 45.0

TEXT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_TYPE = "application/openmetrics-text; version=1.0.0; charset=utf-8"
# What Prometheus 2.x sends when scraping.
PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                     "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

FAMILIES = {  # family name (OpenMetrics spelling) -> type
    "loopstall_build_info": "gauge",
    "loopstall_tracked_processes": "gauge",
    "loopstall_cache_entries": "gauge",
    "loopstall_lost_events": "counter",
    "loopstall_stack_errors": "counter",
    "loopstall_stacks_evicted": "counter",
    "loopstall_thread_table_full": "counter",
    "loopstall_process_table_full": "counter",
    "loopstall_wakeups_missed": "counter",
    "loopstall_processes_filtered": "counter",
    "loopstall_processes_over_limit": "counter",
    "loopstall_py_walks_skipped": "counter",
    "loopstall_py_thread_mismatch": "counter",
    "loopstall_js_walks_skipped": "counter",
    "loopstall_stalls": "counter",
    "loopstall_stall_seconds": "counter",
    "loopstall_waiting_connections": "counter",
    "loopstall_waiting_ready_fds": "counter",
    "loopstall_iteration_busy_seconds": "histogram",
}
PROCESS_LABELS = {"pid", "comm", "cgroup", "container_id"}
LE = ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
      "0.25", "0.5", "1.0", "2.5", "5.0", "10.0", "+Inf"]

# Kernel histogram buckets (bpf/loopstall.h: 4 linear buckets per power of two of ns) around the
# 0.25 s and 0.5 s bounds: an iteration counts toward le="0.5" (and not le="0.25") when its
# kernel bucket [low, high) has high > 0.25 s and high <= 0.5 s, i.e. for busy times in
# [234881024, 469762048) ns.
LE_025_BUCKET_LOW_NS = 234881024
LE_05_BUCKET_END_NS = 469762048


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(url, headers=None, method="GET", data=None, timeout=10):
    """(status, headers, body bytes) of one request; HTTP errors are results too."""
    request = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def wait_serving(run, port):
    """Wait until loopstall answers on /metrics (it serves once tracing begins)."""
    url = "http://127.0.0.1:%d/metrics" % port

    def serving():
        if run.proc.poll() is not None:
            raise AssertionError("loopstall exited before serving metrics\n" + run.describe())
        try:
            return http(url, timeout=2)[0] == 200
        except OSError:
            return False
    wait_until(serving, TIMEOUT_S, "loopstall to serve %s" % url, interval=0.1)
    return url


# --- the exposition formats, checked line by line -------------------------------------------

LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')


def parse_labels(text):
    labels, pos = {}, 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, "bad label set at %r" % text[pos:]
        name, raw = m.group(1), m.group(2)
        assert name not in labels, "label %s twice in {%s}" % (name, text)
        labels[name] = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), raw)
        pos = m.end()
        if pos < len(text):
            assert text[pos] == ",", "expected ',' at %r" % text[pos:]
            pos += 1
    return labels


def parse_exposition(body, openmetrics):
    """Check every line of a text 0.0.4 / OpenMetrics 1.0 body; {family: {type, samples}}.

    samples: [(sample name, labels, value)]. Families must be contiguous and declared before
    their samples; counter naming follows the format (OpenMetrics: TYPE without _total).
    """
    text = body.decode("utf-8")  # must be UTF-8: Prometheus rejects anything else
    assert text.endswith("\n"), "body does not end with a newline"
    lines = text[:-1].split("\n")
    if openmetrics:
        assert lines[-1] == "# EOF", "OpenMetrics body does not end with '# EOF': %r" % lines[-1]
        lines = lines[:-1]
    else:
        assert "# EOF" not in lines, "'# EOF' in a text 0.0.4 body"
    families, current = {}, None
    for line in lines:
        assert line, "empty line in the body"
        if line.startswith("#"):
            parts = line.split(" ", 3)
            assert parts[0] == "#" and parts[1] in ("HELP", "TYPE", "UNIT"), line
            assert parts[1] != "UNIT" or openmetrics, "UNIT in a text 0.0.4 body: " + line
            name = parts[2]
            if name not in families:
                families[name] = {"type": None, "samples": [], "unit": None}
            elif current != name:
                raise AssertionError("family %s is not contiguous" % name)
            current = name
            if parts[1] == "TYPE":
                families[name]["type"] = parts[3]
            elif parts[1] == "UNIT":
                families[name]["unit"] = parts[3]
                assert name.endswith("_" + parts[3]), line
            continue
        m = SAMPLE_RE.match(line)
        assert m, "not a sample line: %r" % line
        sample, labels, value = m.group(1), parse_labels(m.group(3) or ""), float(m.group(4))
        fam = families.get(current)
        assert fam is not None, "sample before any TYPE: %r" % line
        kind = fam["type"]
        if kind == "counter":
            want = current + "_total" if openmetrics else current
            assert current.endswith("_total") != openmetrics, (
                "counter family %s: %s wants TYPE names %s _total" % (
                    current, "OpenMetrics" if openmetrics else "text 0.0.4",
                    "without" if openmetrics else "with"))
            assert sample == want, "sample %s in counter family %s" % (sample, current)
        elif kind == "histogram":
            assert sample in (current + "_bucket", current + "_sum", current + "_count"), line
        else:
            assert sample == current, "sample %s in family %s" % (sample, current)
        fam["samples"].append((sample, labels, value))
    return families


def family(families, name, openmetrics):
    """A family by its OpenMetrics name, whichever format was parsed."""
    key = name + "_total" if FAMILIES[name] == "counter" and not openmetrics else name
    assert key in families, "no family %s in %s" % (key, sorted(families))
    assert families[key]["type"] == FAMILIES[name], (key, families[key]["type"])
    return families[key]["samples"]


def check_histograms(samples):
    """Cumulative buckets at exactly the documented le values, +Inf == _count."""
    series = {}
    for sample, labels, value in samples:
        key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        entry = series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        if sample.endswith("_bucket"):
            entry["buckets"].append((labels["le"], value))
        elif sample.endswith("_sum"):
            entry["sum"] = value
        else:
            entry["count"] = value
    for key, entry in series.items():
        assert [le for le, _ in entry["buckets"]] == LE, (key, entry["buckets"])
        counts = [v for _, v in entry["buckets"]]
        assert counts == sorted(counts), "buckets not cumulative: %s %s" % (key, counts)
        assert entry["count"] == counts[-1], "_count %s != +Inf %s" % (entry["count"], counts[-1])
        assert entry["sum"] is not None and entry["sum"] >= 0, key
    return series


def of_pid(samples, pid, tid=None, **labels):
    """Samples of one process (tid=None: the process total, without a tid label)."""
    out = []
    for sample, lab, value in samples:
        if lab.get("pid") != str(pid) or lab.get("tid") != (None if tid is None else str(tid)):
            continue
        if all(lab.get(k) == v for k, v in labels.items()):
            out.append((sample, lab, value))
    return out


def check_with_prometheus_client(body, openmetrics):
    """Also parse with the official Python client's parser when Debian ships it here."""
    try:
        if openmetrics:
            from prometheus_client.openmetrics.parser import text_string_to_metric_families
        else:
            from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        return False
    families = list(text_string_to_metric_families(body.decode("utf-8")))
    assert families, "prometheus_client found no families"
    return True


# --- a real Prometheus server -----------------------------------------------------------------

class Prometheus:
    """A throwaway Prometheus on 127.0.0.1 scraping one target every second."""

    def __init__(self, tmp_path, target):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: loopstall\n    static_configs:\n"
            "      - targets: ['%s']\n" % target)
        self.log_path = tmp_path / "prometheus.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, "--config.file=%s" % config,
             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
            cwd=str(tmp_path))

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited (%s):\n%s" % (self.proc.returncode,
                                                                       self.output()))
            try:
                return http(self.url + "/-/ready", timeout=2)[0] == 200
            except OSError:
                return False
        wait_until(ready, TIMEOUT_S, "prometheus to be ready", interval=0.2)

    def output(self):
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def api(self, path, **params):
        status, _, body = http(self.url + path + "?" + urllib.parse.urlencode(params))
        reply = json.loads(body)
        assert status == 200 and reply["status"] == "success", (path, params, reply)
        return reply["data"]

    def query(self, expr, at=None):
        """[(labels, value)] of an instant query, evaluated at `at` (unix time) if given."""
        params = {"query": expr}
        if at is not None:
            params["time"] = "%.3f" % at
        data = self.api("/api/v1/query", **params)
        assert data["resultType"] == "vector", data
        return [(r["metric"], float(r["value"][1]), r["value"][0]) for r in data["result"]]

    def targets(self):
        return self.api("/api/v1/targets")["activeTargets"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture
def prometheus_server(tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip(missing("%s: apt-get install prometheus (tools/setup does)" % PROMETHEUS))
    started = []

    def start(target):
        server = Prometheus(tmp_path, target)
        started.append(server)
        return server
    try:
        yield start
    finally:
        for server in started:
            server.stop()
            print("---- prometheus ----\n" + server.output())  # shown when the test failed


def trigger_stalls(run, target, n):
    """Trigger n stalls and wait until n stall events not caused by overload are printed."""
    pid = target.pid
    reports = [target.trigger() for _ in range(n)]
    deadline = time.monotonic() + SETTLE_S
    while (len([e for e in run.of_kind("stall", pid) if not starved(e)]) < n
           and time.monotonic() < deadline and run.proc.poll() is None):
        time.sleep(0.05)
    time.sleep(0.3)  # room for a wrong extra event to show up
    return reports


# --- tests ------------------------------------------------------------------------------------

def test_prometheus_scrapes_stalls(lab, prometheus_server):
    """3 time.sleep(0.3) stalls -> PromQL sees loopstall_stalls_total 3 and a busy-time quantile
    in the 0.25-0.5 s bucket, scraped by a real Prometheus (which negotiates OpenMetrics)."""
    port = free_port()
    prom = prometheus_server("127.0.0.1:%d" % port)
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 4)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("-p", pid, "--json", "--prometheus", "127.0.0.1:%d" % port)
    run.wait_tracing()
    wait_serving(run, port)
    trigger_stalls(run, target, 3)
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 3, "3 sleeps triggered, got %d stalls:\n%s" % (
        len(stalls), "\n".join(map(brief, stalls)))
    every_stall = run.of_kind("stall", pid)  # with the ones an overloaded machine made

    # Prometheus sees the final count once it has applied its config and scraped again.
    selector = '{pid="%d",tid=""}' % pid

    def scraped():
        result = prom.query("loopstall_stalls_total" + selector)
        return result if result and result[0][1] == len(every_stall) else None
    try:
        result = wait_until(scraped, SCRAPED_S, "Prometheus to see %d stalls" % len(every_stall),
                            interval=0.5)
    except AssertionError:
        raise AssertionError("loopstall_stalls_total%s = %s, want %d; targets: %s" % (
            selector, prom.query("loopstall_stalls_total" + selector), len(every_stall),
            json.dumps(prom.targets()))) from None
    assert len(result) == 1, result
    labels, value, at = result[0]
    assert labels["job"] == "loopstall" and labels["comm"].startswith("python"), labels

    (target_info,) = prom.targets()
    assert target_info["health"] == "up" and not target_info["lastError"], target_info

    # The quantile, on the cumulative buckets at the time the 3 stalls were seen. The loop polls
    # every 20 ms: thousands of short iterations make 3 stalls far less than 1% of them, so the
    # rank is chosen inside the stall bucket from the count, rather than a fixed 0.99.
    ns = [ev["duration_ms"] * 1e6 for ev in every_stall]
    inside = sum(LE_025_BUCKET_LOW_NS <= d < LE_05_BUCKET_END_NS for d in ns)
    above = sum(d >= LE_05_BUCKET_END_NS for d in ns)
    assert inside >= 3, "the 300 ms stalls are not in (0.25, 0.5]: %s" % ns
    ((_, count, _),) = prom.query("loopstall_iteration_busy_seconds_count" + selector, at)
    ((_, between, _),) = prom.query(
        'loopstall_iteration_busy_seconds_bucket{pid="%d",tid="",le="0.5"} - ignoring(le) '
        'loopstall_iteration_busy_seconds_bucket{pid="%d",tid="",le="0.25"}' % (pid, pid), at)
    assert between == inside, "%s iterations in (0.25, 0.5], want %d (stalls: %s)" % (
        between, inside, ns)
    q = 1 - (above + inside / 2.0) / count
    ((_, quantile, _),) = prom.query(
        "histogram_quantile(%r, loopstall_iteration_busy_seconds_bucket%s)" % (q, selector), at)
    assert 0.25 <= quantile <= 0.5, "histogram_quantile(%.6f) = %s over %d iterations" % (
        q, quantile, count)

    # Stall time split: the same kernel numbers as the JSON events.
    ((_, off_s, _),) = prom.query('loopstall_stall_seconds_total{pid="%d",tid="",cpu="off"}'
                                  % pid, at)
    want = sum(ev["off_cpu_ms"] for ev in every_stall) / 1000.0
    assert abs(off_s - want) <= 1e-3 * want + 1e-6, (off_s, want)
    ((_, lost, _),) = prom.query('loopstall_lost_events_total{pid=""}', at)
    assert lost == 0, "ring buffer drops in a 3-stall test: %s" % lost
    assert prom.query('loopstall_build_info', at)[0][1] == 1

    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())


def test_http_contract(lab):
    """--prometheus PORT: loopback only, both formats parse, gzip, 404/405, JSON keeps flowing."""
    port = free_port()
    # 240 ms: in the kernel bucket [234.9, 268.4) ms, which straddles le="0.25", so it must
    # count toward le="0.5" only (buckets are never optimistic).
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 240, "--count", 2)
    info = target.wait_ready()
    pid = info["pid"]
    run = lab.loopstall("--json", "-p", pid, "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    trigger_stalls(run, target, 1)

    # Default address: 127.0.0.1, never every interface.
    listening = listen_addresses(port)
    assert listening == {("127.0.0.1", port)}, "listening on %s, want 127.0.0.1:%d only" % (
        listening, port)

    # JSON stall lines still stream on stdout while the exporter runs.
    stalls = caused_stalls(run, pid)
    assert len(stalls) == 1, "\n".join(map(brief, stalls)) or "no stall event on stdout"
    check_stall_shape(stalls[0])
    assert stalls[0]["_arrival"] is not None and run.proc.poll() is None

    version = subprocess.run([LOOPSTALL, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.split()[-1]
    parsed = {}
    for name, headers, openmetrics, content_type in [
            ("default", {}, False, TEXT_TYPE),
            ("openmetrics", {"Accept": "application/openmetrics-text"}, True, OPENMETRICS_TYPE),
            ("prometheus", {"Accept": PROMETHEUS_ACCEPT}, True, OPENMETRICS_TYPE),
            ("text-preferred", {"Accept": "application/openmetrics-text;q=0.3,text/plain"},
             False, TEXT_TYPE),
            ("gzip", {"Accept-Encoding": "gzip"}, False, TEXT_TYPE)]:
        status, reply_headers, body = http(url, headers)
        assert status == 200, (name, status, body[:200])
        assert reply_headers["Content-Type"] == content_type, (name, reply_headers["Content-Type"])
        if name == "gzip":
            assert reply_headers.get("Content-Encoding") == "gzip", (name, dict(reply_headers))
            body = gzip.decompress(body)
        else:
            assert reply_headers.get("Content-Encoding") is None, (name, dict(reply_headers))
        try:
            families = parse_exposition(body, openmetrics)
        except AssertionError as e:
            raise AssertionError("%s: %s\n%s" % (name, e, body.decode(errors="replace"))) from None
        if check_with_prometheus_client(body, openmetrics) is False and name == "default":
            warnings.warn("python3-prometheus-client not installed: checked the format lines "
                          "only with the test's own parser")
        parsed[name] = families

        assert family(families, "loopstall_build_info", openmetrics) == [
            ("loopstall_build_info", {"version": version}, 1)]
        ((_, _, tracked),) = family(families, "loopstall_tracked_processes", openmetrics)
        assert tracked == 1, tracked
        every_stall = run.of_kind("stall", pid)  # with any an overloaded machine made
        stalls_samples = of_pid(family(families, "loopstall_stalls", openmetrics), pid)
        assert len(stalls_samples) == 1, stalls_samples
        assert stalls_samples[0][2] == len(every_stall), (stalls_samples, every_stall)
        labels = stalls_samples[0][1]
        assert set(labels) == PROCESS_LABELS, labels
        assert labels["comm"] == "python3" or labels["comm"].startswith("python"), labels
        with open("/proc/%d/cgroup" % pid) as f:
            cgroup = [l[3:].strip() for l in f if l.startswith("0::")]
        assert labels["cgroup"] == (cgroup[0] if cgroup else "/"), (labels, cgroup)
        lost = family(families, "loopstall_lost_events", openmetrics)
        assert [v for _, lab, v in lost if not lab] == [0], "no global lost-events series: %s" % lost
        assert [v for _, _, v in of_pid(lost, pid)] == [0], lost
        parts = {lab["cpu"]: v for _, lab, v in
                 of_pid(family(families, "loopstall_stall_seconds", openmetrics), pid)}
        assert set(parts) == {"on", "off", "runqueue"}, parts
        for part in parts:  # the kernel's numbers, as in the JSON events
            want = sum(ev[part + "_cpu_ms" if part != "runqueue" else "runqueue_ms"]
                       for ev in every_stall) / 1000.0
            assert abs(parts[part] - want) <= 1e-6 + 1e-3 * want, (part, parts, want)
        assert parts["off"] >= 0.2, parts
        hist = check_histograms(family(families, "loopstall_iteration_busy_seconds", openmetrics))
        ((key, entry),) = [(k, e) for k, e in hist.items() if dict(k).get("pid") == str(pid)]
        buckets = dict(entry["buckets"])
        # Every iteration above the threshold (100 ms) is a stall event: the buckets above
        # 0.25 s hold exactly the stall events that long.
        long_stalls = [ev for ev in run.of_kind("stall", pid)
                       if ev["duration_ms"] * 1e6 >= LE_025_BUCKET_LOW_NS]
        assert buckets["+Inf"] - buckets["0.25"] == len(long_stalls) >= 1, (
            "%s iterations above le=0.25, stall events: %s" % (
                buckets["+Inf"] - buckets["0.25"], [brief(ev) for ev in long_stalls]))
        assert entry["count"] > 10, "the idle loop polls every 20 ms: %s" % entry["buckets"]
        stalled_s = sum(ev["duration_ms"] for ev in every_stall) / 1000.0
        assert stalled_s - 1e-6 <= entry["sum"] < stalled_s + 0.1 * entry["count"], entry

    # Other paths and methods.
    assert http("http://127.0.0.1:%d/other" % port)[0] == 404
    assert http("http://127.0.0.1:%d/" % port)[0] == 404
    status, headers, _ = http(url, method="POST", data=b"x=1")
    assert status == 405 and "GET" in headers.get("Allow", ""), (status, dict(headers))
    status, headers, body = http(url, method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Type"] == TEXT_TYPE

    rc = run.stop()
    assert rc == 0, "loopstall exited %s after SIGINT\n%s" % (rc, run.describe())
    assert run.of_kind("summary", pid), "no summary after SIGINT\n" + run.describe()


def test_per_thread_series(lab):
    """--per-thread adds tid-labelled series next to the process totals."""
    port = free_port()
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 2)
    info = target.wait_ready()
    pid, tid = info["pid"], info["loop_tids"][0]
    run = lab.loopstall("--json", "-p", pid, "--per-thread", "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    trigger_stalls(run, target, 1)
    assert len(caused_stalls(run, pid)) == 1, run.describe()
    families = parse_exposition(http(url)[2], False)
    stalls = family(families, "loopstall_stalls", False)
    assert [v for _, _, v in of_pid(stalls, pid)] == [1], stalls
    per_thread = of_pid(stalls, pid, tid)
    assert [v for _, _, v in per_thread] == [1], "no tid=%d series: %s" % (tid, stalls)
    assert set(per_thread[0][1]) == PROCESS_LABELS | {"tid"}, per_thread
    hist = check_histograms(family(families, "loopstall_iteration_busy_seconds", False))
    threads = [k for k in hist if dict(k).get("pid") == str(pid) and "tid" in dict(k)]
    assert [dict(k)["tid"] for k in threads] == [str(tid)], list(hist)
    rc = run.stop()
    assert rc == 0, run.describe()


def test_idle_loop_busy_time_near_zero(lab):
    """A loop that waits for its next trigger polls every 20 ms and does almost nothing in
    between: its busy-time sum is a small fraction of the iterations' count x 20 ms. Counting
    the poll waits as busy time (the sum check in test_prometheus_scrapes_stalls allows 0.1 s
    per iteration) would make it about that much."""
    port = free_port()
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 1)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("--json", "-p", pid, "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    time.sleep(3)
    hist = check_histograms(family(parse_exposition(http(url)[2], False),
                                   "loopstall_iteration_busy_seconds", False))
    ((_, entry),) = [(k, e) for k, e in hist.items() if dict(k).get("pid") == str(pid)]
    # 3 s of 20 ms waits: ~150 iterations, fewer on a loaded machine.
    assert entry["count"] >= 30, entry
    assert entry["sum"] < 0.002 * entry["count"], (
        "idle loop: %.3f s busy over %d iterations (20 ms poll waits)" % (entry["sum"],
                                                                          entry["count"]))
    assert not caused_stalls(run, pid), run.describe()
    rc = run.stop()
    assert rc == 0, run.describe()


def test_cache_entries(lab):
    """loopstall_cache_entries counts what loopstall holds for a traced Python process after
    one of its stalls was reported: the process in the Python runtime, its native symbolizer,
    its sites table, the code objects of its stack; and run_summary's "caches" has the same
    names at exit."""
    port = free_port()
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 2)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("--json", "-p", pid, "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    trigger_stalls(run, target, 1)
    assert len(caused_stalls(run, pid)) == 1, run.describe()
    samples = family(parse_exposition(http(url)[2], False), "loopstall_cache_entries", False)
    caches = {dict(labels)["cache"]: value for _, labels, value in samples}
    assert caches["python_processes"] == 1, caches
    assert caches["process_symbols"] == 1, caches
    assert caches["site_tables"] == 1, caches
    assert caches["python_code_objects"] >= 2, caches  # the stall's stack: helper, its caller
    assert caches["js_functions"] == caches["js_scripts"] == 0, caches
    rc = run.stop()
    assert rc == 0, run.describe()
    (summary,) = run.of_kind("run_summary")
    assert set(summary["caches"]) == set(caches), (summary, caches)


def free_privileged_port():
    """A port below 1024 nothing listens on (the tests run as root)."""
    for port in range(1023, 899, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


def test_privileged_port(lab):
    """A port below 1024 is bound while loopstall still has its privileges: the exporter's
    thread starts after they are dropped, and serves on it."""
    port = free_privileged_port()
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 1)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("--json", "-p", pid, "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    assert "loopstall_build_info" in http(url)[2].decode(), run.describe()
    with open("/proc/%d/status" % run.proc.pid) as f:
        effective = int(next(l for l in f if l.startswith("CapEff:")).split()[1], 16)
    assert not effective & (1 << 10), "CAP_NET_BIND_SERVICE kept after attach"
    rc = run.stop()
    assert rc == 0, run.describe()


def listen_addresses(port):
    """{(address, port)} of the TCP sockets listening on port, from /proc/net/tcp{,6}."""
    found = set()
    for path, family_ in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, hexport = fields[1].split(":")
            if fields[3] != "0A" or int(hexport, 16) != port:  # 0A: TCP_LISTEN
                continue
            raw = bytes.fromhex(address)
            # /proc prints the address as host-order 32-bit words.
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add((socket.inet_ntop(family_, raw), port))
    return found


def test_bad_listen_address(lab):
    """A bad --prometheus value or a port in use: one line naming the option, no tracing."""
    target = lab.target("stall_target.py", "--count", 1)
    pid = target.wait_ready()["pid"]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        in_use = busy.getsockname()[1]
        cases = [("127.0.0.1:%d" % in_use, "in use"),
                 (str(in_use), "in use"),
                 ("abc", "port"),
                 ("127.0.0.1:70000", "port"),
                 (":9464", "address"),
                 ("::1:9464", "brackets"),
                 ("[::1:9464", "[IPV6]:PORT"),
                 ("[zz]:9464", "zz"),
                 ("192.0.2.1:9464", "not an address of this host")]
        for value, words in cases:
            result = subprocess.run([LOOPSTALL, "-p", str(pid), "--prometheus", value],
                                    stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                    timeout=30)
            lines = result.stderr.strip().splitlines()
            assert result.returncode in (1, 2), (value, result.returncode, result.stderr)
            assert len(lines) == 1, "%s: stderr is not one line:\n%s" % (value, result.stderr)
            prefix = "loopstall: --prometheus %s: " % value
            assert lines[0].startswith(prefix), (value, lines[0])
            assert words.lower() in lines[0].lower(), "%r does not mention %r" % (lines[0], words)


def test_exited_process_shown_once(lab):
    """--all: a process that exits keeps its final values for exactly one more scrape, then its
    series are gone (the exporter's after-scrape hook lets the fleet forget it)."""
    port = free_port()
    comm = "lsexp%d" % (os.getpid() % 100000)  # unique on the host: --all sees every process
    run = lab.loopstall("--all", "--comm", "^%s$" % comm, "--json", "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    # stall_target.py under its own comm (only a process can rename itself).
    target = lab.target("stall_target.py", "--action", "sleep", "--ms", 300, "--count", 1,
                        start=False)
    script = target.argv[1]
    target.argv[1:2] = ["-c", "import runpy, sys; open('/proc/self/comm', 'w').write(sys.argv[1]); "
                        "sys.argv = sys.argv[2:]; sys.path.insert(0, %r); "
                        "runpy.run_path(sys.argv[0], run_name='__main__')"
                        % os.path.dirname(script), comm, script]
    target.start()
    pid = target.wait_ready()["pid"]

    def scrape():
        status, _, body = http(url)
        assert status == 200, status
        families = parse_exposition(body, False)
        tracked = family(families, "loopstall_tracked_processes", False)[0][2]
        return tracked, of_pid(family(families, "loopstall_stalls", False), pid)

    # Traced once it polls under its new name.
    wait_until(lambda: scrape()[1], TIMEOUT_S, "pid %d (%s) in /metrics" % (pid, comm),
               interval=0.2)
    target.trigger()
    assert target.wait_exit() == 0, target.output()
    def is_summary(text):
        try:
            ev = json.loads(text)
        except ValueError:
            return False
        return isinstance(ev, dict) and ev.get("event") == "summary" and ev.get("pid") == pid
    # Printed when loopstall has seen the exit, and marked the process exited.
    summary = run.stdout.wait_for(is_summary, TIMEOUT_S)
    assert summary, "no summary for pid %d after it exited\n%s" % (pid, run.describe())
    stalls = run.of_kind("stall", pid)
    assert len(caused_stalls(run, pid)) == 1, run.describe()

    tracked, last = scrape()  # the final values, once
    assert [v for _, _, v in last] == [len(stalls)], last
    assert tracked == 0, "pid %d exited but tracked_processes = %s" % (pid, tracked)
    tracked, after = scrape()
    assert after == [], "pid %d still exported after the scrape that showed it exited: %s" % (
        pid, after)
    rc = run.stop()
    assert rc == 0, run.describe()


def test_host_counters(lab):
    """The BPF drop and skip counters are counter families without labels, with the values of
    the run_summary record: an iteration that sleeps 40 times goes over the walker's budget of
    16 Python walks per iteration, so loopstall_py_walks_skipped_total counts at least 24."""
    port = free_port()
    # One action more than triggered: the target (and so loopstall) stays up for the scrapes.
    target = lab.target("stall_target.py", "--action", "naps", "--ms", 400, "--count", 2)
    pid = target.wait_ready()["pid"]
    run = lab.loopstall("--json", "-p", pid, "--prometheus", port)
    run.wait_tracing()
    url = wait_serving(run, port)
    time.sleep(0.6)  # the loop thread is mapped to its PyThreadState after its first poll
    trigger_stalls(run, target, 1)
    scraped = {}
    for openmetrics in (False, True):
        headers = {"Accept": "application/openmetrics-text"} if openmetrics else {}
        status, _, body = http(url, headers)
        assert status == 200, status
        families = parse_exposition(body, openmetrics)
        check_with_prometheus_client(body, openmetrics)
        for name in ("stack_errors", "stacks_evicted", "thread_table_full", "process_table_full",
                     "wakeups_missed", "py_walks_skipped", "py_thread_mismatch", "js_walks_skipped"):
            samples = family(families, "loopstall_" + name, openmetrics)
            assert [labels for _, labels, _ in samples] == [{}], samples
            scraped.setdefault(name, []).append(samples[0][2])
    skipped = scraped["py_walks_skipped"]
    assert skipped[0] >= 40 - 16, scraped
    rc = run.stop()
    assert rc == 0, run.describe()
    (final,) = run.of_kind("run_summary")
    for name, values in scraped.items():
        # Counters: the scrapes in order, then the end of the run, never go down.
        assert values[0] <= values[1] <= final[name], (name, values, final)
    assert final["thread_table_full"] == final["process_table_full"] == 0, final
