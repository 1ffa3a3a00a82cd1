"""Benchmarks tfo-agent as shipped, against Prometheus node_exporter, on this host.

Two modes (docs/performance.md has the recorded figures and how to read them):

  node   The agent with its shipped defaults for export (OTLP/gRPC, gzip, to a loopback
         receiver that decodes every request), disk buffer, health and self-metrics
         endpoints, with the system and node_exporter collectors both at --interval; and,
         at the same time, node_exporter scraped by this script every --interval.
         Reports CPU per cycle (whole process, including start-up) and in steady state
         (after --warmup), peak resident memory (VmHWM) and the agent/node_exporter ratios.
         --breakdown adds a second phase: the agent with collection only (exporter, disk
         buffer, health endpoint and system collector off), alone.

  idle   The agent with its defaults (both collectors at their default 15 s, export on to
         a loopback receiver) for --seconds: average CPU % of one core, VmHWM, and the time
         from process start to the first export request arriving at the receiver.

CPU is utime + stime of the process from /proc/<pid>/stat; memory is VmHWM from
/proc/<pid>/status. Both measured processes are started directly (no shell), so the pid is
the process. The receiver runs in this script's process; its CPU is not counted.
Run it with a Python that has grpcio and opentelemetry-proto (tests/peers/requirements.txt),
through scripts/bench-node and scripts/bench-idle.
"""
import argparse
import gzip
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent import futures

CLK_TCK = os.sysconf("SC_CLK_TCK")
RUNS = "tfo_agent_collector_runs_total"


# --------------------------------------------------------------------------- /proc


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads, live and exited), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    # rest[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def task_run_ns(pid):
    """On-CPU nanoseconds of each live thread (/proc/<pid>/task/*/schedstat, first field):
    exact, where utime + stime count 10 ms ticks."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                out[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def run_ns_delta(before, after):
    """CPU seconds the threads used between two task_run_ns() snapshots. A thread that
    ended in between is missed (neither process ends threads in steady state here); one
    that started counts from zero. Returns (seconds, threads that ended)."""
    total = sum(ns - before.get(tid, 0) for tid, ns in after.items())
    return total / 1e9, sum(1 for tid in before if tid not in after)


def status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise SystemExit("no %s in /proc/%d/status" % (key, pid))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def busy_processes(exclude, min_share=0.05, window=1.0):
    """Other processes using more than min_share of a core over a short window."""

    def snapshot():
        out = {}
        for d in os.listdir("/proc"):
            if not d.isdigit() or int(d) in exclude:
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    raw = f.read()
                name = raw[raw.index("(") + 1:raw.rindex(")")]
                rest = raw.rsplit(")", 1)[1].split()
                out[int(d)] = (name, int(rest[11]) + int(rest[12]))
            except (OSError, ValueError):
                pass
        return out

    a = snapshot()
    time.sleep(window)
    b = snapshot()
    busy = []
    for pid, (name, t) in b.items():
        if pid in a:
            share = (t - a[pid][1]) / CLK_TCK / window
            if share >= min_share:
                busy.append("%s(%d%%)" % (name, round(share * 100)))
    return sorted(busy)


# --------------------------------------------------------------------------- helpers


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, what, deadline=30):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit("%s exited with %s before listening on %d" % (what, proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit("%s: nothing listening on 127.0.0.1:%d after %ds" % (what, port, deadline))


def http_get(url, timeout=10, gzip_ok=False):
    """A plain GET that reads the whole body; returns (status, body bytes as received)."""
    req = urllib.request.Request(url)
    if gzip_ok:
        req.add_header("Accept-Encoding", "gzip")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def prom_samples(page):
    """Prometheus text page -> {series: value}, series as printed (name{labels})."""
    out = {}
    for line in page.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, value = line.rpartition(" ")
        try:
            out[series] = float(value)
        except ValueError:
            pass
    return out


def prom_sum(samples, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    total = 0.0
    for series, value in samples.items():
        base, _, rest = series.partition("{")
        if base != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', rest))
        if all(got.get(k) == v for k, v in labels.items()):
            total += value
    return total


def agent_metrics(port):
    _, body = http_get("http://127.0.0.1:%d/metrics" % port)
    return prom_samples(body.decode())


def clean_env():
    """The environment without the variables that override the agent's config."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("TELEMETRYFLOW_") or k == "HOST_ROOT":
            del env[k]
    return env


def git_commit(repo):
    try:
        c = subprocess.run(["git", "-C", repo, "rev-parse", "--short=12", "HEAD"],
                           capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "crates",
                                "Cargo.toml", "Cargo.lock"], capture_output=True, text=True).stdout
        return c + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def ratio(a, b):
    return round(a / b, 2) if b else None


def ms(x):
    return round(x * 1e3, 3)


def mib(kib):
    return round(kib / 1024, 1)


# --------------------------------------------------------------------------- receiver


class Receiver:
    """Loopback OTLP/gRPC receiver: decodes every request, counts requests, data points,
    bytes on the wire and gzip-compressed messages, and the arrival time of the first."""

    def __init__(self):
        import grpc
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms_pb2
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls_pb2

        self.lock = threading.Lock()
        self.requests = 0
        self.points = 0
        self.wire_bytes = 0
        self.decoded_bytes = 0
        self.gzip_requests = 0
        self.decode_errors = 0
        self.first_arrival = None  # time.monotonic()
        self.last_arrival = None
        # Optional: called with (decoded request, is_metrics) under the lock, for benches
        # that look inside the requests (scripts/bench_kube.py).
        self.observe = None
        resp = {
            "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export":
                (ms_pb2.ExportMetricsServiceRequest, ms_pb2.ExportMetricsServiceResponse, True),
            "/opentelemetry.proto.collector.logs.v1.LogsService/Export":
                (ls_pb2.ExportLogsServiceRequest, ls_pb2.ExportLogsServiceResponse, False),
        }
        outer = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                entry = resp.get(details.method)
                if entry is None:
                    return None
                req_cls, resp_cls, is_metrics = entry

                def export(raw, context):
                    outer._take(raw, req_cls, is_metrics, context)
                    return resp_cls()

                return grpc.unary_unary_rpc_method_handler(
                    export, request_deserializer=None,
                    response_serializer=lambda m: m.SerializeToString())

        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            handlers=[Handler()],
            options=[("grpc.max_receive_message_length", 64 << 20),
                     ("grpc.so_reuseport", 0),
                     # Hand over the message as sent, so gzip on the wire is observable.
                     ("grpc.per_message_decompression", 0)])
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self._grpc = grpc

    def _take(self, raw, req_cls, is_metrics, context):
        now = time.monotonic()
        compressed = raw[:2] == b"\x1f\x8b"
        try:
            body = gzip.decompress(raw) if compressed else raw
            msg = req_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001
            with self.lock:
                self.decode_errors += 1
            context.abort(self._grpc.StatusCode.INVALID_ARGUMENT, "cannot decode: %s" % exc)
        points = 0
        if is_metrics:
            for rm in msg.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        kind = m.WhichOneof("data")
                        if kind:
                            points += len(getattr(m, kind).data_points)
        with self.lock:
            if self.observe is not None:
                self.observe(msg, is_metrics)
            if self.first_arrival is None:
                self.first_arrival = now
            self.last_arrival = now
            self.requests += 1
            self.points += points
            self.wire_bytes += len(raw)
            self.decoded_bytes += len(body)
            self.gzip_requests += compressed

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "points": self.points,
                    "wire_bytes": self.wire_bytes, "decoded_bytes": self.decoded_bytes,
                    "gzip_requests": self.gzip_requests, "decode_errors": self.decode_errors}

    def stop(self):
        self.server.stop(grace=1).wait()


# --------------------------------------------------------------------------- agent


def agent_config(tmp, *, interval, otlp_port, metrics_port, health_port, collection_only=False,
                 extra=""):
    """Writes the agent config: shipped defaults, except loopback ports, temp state dirs
    and the collector intervals. Only keys listed in docs/configuration.md are used."""
    lines = ["agent:", "  data_dir: '%s'" % os.path.join(tmp, "data")]
    if interval is not None:
        lines += ["collectors:",
                  "  system: {enabled: %s, interval: %s}" % (
                      "false" if collection_only else "true", interval),
                  "  node_exporter: {enabled: true, interval: %s}" % interval]
    if collection_only:
        lines += ["exporter: {otlp: {enabled: false}}",
                  "buffer: {enabled: false}",
                  "health: {enabled: false}"]
    else:
        lines += ["telemetryflow: {endpoint: '127.0.0.1:%d'}" % otlp_port,
                  "buffer: {path: '%s'}" % os.path.join(tmp, "buffer"),
                  "health: {listen_address: '127.0.0.1:%d'}" % health_port]
    lines += ["prometheus: {listen_address: '127.0.0.1:%d'}" % metrics_port]
    if extra:
        lines += [extra.rstrip("\n")]
    path = os.path.join(tmp, "collection-only.yaml" if collection_only else "agent.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def validate(agent, cfg):
    r = subprocess.run([agent, "-c", cfg, "config", "validate"], capture_output=True,
                       text=True, env=clean_env())
    if r.returncode != 0:
        raise SystemExit("generated config %s is invalid:\n%s%s" % (cfg, r.stdout, r.stderr))


def start_agent(agent, cfg, tmp, name):
    log = open(os.path.join(tmp, name + ".log"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([agent, "-c", cfg, "run"], stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    return proc, t0


def stop(proc, what, timeout=20):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            print("warning: %s did not stop within %ds, killed" % (what, timeout), file=sys.stderr)


def fail(msg, tmp):
    raise SystemExit("FAIL: %s (agent log and config kept in %s)" % (msg, tmp))


# --------------------------------------------------------------------------- node mode


def run_node(a, tmp):
    rx = Receiver()
    mport, hport, nport = free_port(), free_port(), free_port()
    ival = "%dms" % round(a.interval * 1000)
    cfg = agent_config(tmp, interval=ival, otlp_port=rx.port, metrics_port=mport,
                       health_port=hport, extra=a.config)
    validate(a.agent, cfg)
    load_before = loadavg()
    others = busy_processes(exclude={os.getpid()})

    agent, _ = start_agent(a.agent, cfg, tmp, "agent")
    ne = subprocess.Popen([a.node_exporter, "--web.listen-address=127.0.0.1:%d" % nport],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(tmp, "node_exporter.log"), "w"))
    t_start = time.monotonic()
    try:
        wait_port(nport, ne, "node_exporter")
        wait_port(mport, agent, "tfo-agent")
        scrapes = 0
        ne_bytes = 0
        ne_series = 0
        steady0 = None
        next_t = time.monotonic()
        end = t_start + a.seconds
        while True:
            now = time.monotonic()
            if steady0 is None and now - t_start >= a.warmup:
                # Start of the steady-state window: both CPU clocks and both counters.
                c_ne, c_ag = cpu_seconds(ne.pid), cpu_seconds(agent.pid)
                t_ne, t_ag = task_run_ns(ne.pid), task_run_ns(agent.pid)
                runs = prom_sum(agent_metrics(mport), RUNS, collector="node_exporter")
                steady0 = (c_ag, runs, c_ne, scrapes, time.monotonic(), t_ag, t_ne)
            if now >= end:
                break
            status, body = http_get("http://127.0.0.1:%d/metrics" % nport, gzip_ok=a.scrape_gzip)
            if status != 200:
                fail("node_exporter answered %d" % status, tmp)
            scrapes += 1
            ne_bytes = len(body)
            next_t += a.interval
            time.sleep(max(0.0, next_t - time.monotonic()))
        if agent.poll() is not None:
            fail("the agent exited early with %s" % agent.returncode, tmp)
        c_ne, c_ag = cpu_seconds(ne.pid), cpu_seconds(agent.pid)
        t_ne_end, t_ag_end = task_run_ns(ne.pid), task_run_ns(agent.pid)
        samples = agent_metrics(mport)
        t_end = time.monotonic()
        hwm_ag, hwm_ne = status_kib(agent.pid, "VmHWM"), status_kib(ne.pid, "VmHWM")
        rss_ag, rss_ne = status_kib(agent.pid, "VmRSS"), status_kib(ne.pid, "VmRSS")
        health, _ = http_get("http://127.0.0.1:%d/healthz" % hport)
        if not a.scrape_gzip:
            ne_series = sum(1 for l in body.decode().splitlines() if l and not l[0] == "#")
    finally:
        stop(agent, "tfo-agent")
        stop(ne, "node_exporter")
    rx_snap = rx.snapshot()
    rx.stop()

    runs = prom_sum(samples, RUNS, collector="node_exporter")
    sys_runs = prom_sum(samples, RUNS, collector="system")
    ok_requests = prom_sum(samples, "tfo_agent_export_requests_total", signal="metrics",
                           outcome="success")
    exported = prom_sum(samples, "tfo_agent_exported_items_total", signal="metrics")
    node_points = prom_sum(samples, "tfo_agent_collector_series", collector="node_exporter")
    sys_points = prom_sum(samples, "tfo_agent_collector_series", collector="system")
    dropped = prom_sum(samples, "tfo_agent_dropped_items_total")
    if rx_snap["requests"] == 0 or rx_snap["points"] == 0:
        fail("the receiver got no data from the agent (export requests ok per agent: %d)"
             % ok_requests, tmp)
    if rx_snap["decode_errors"]:
        fail("%d export requests could not be decoded" % rx_snap["decode_errors"], tmp)
    if runs < 2 or scrapes < 2 or steady0 is None:
        fail("too few cycles (%d) or scrapes (%d)" % (runs, scrapes), tmp)

    c0_ag, r0, c0_ne, s0, _, t0_ag, t0_ne = steady0
    ag_whole = c_ag / runs
    ne_whole = c_ne / scrapes
    ag_steady = (c_ag - c0_ag) / (runs - r0) if runs > r0 else float("nan")
    ne_steady = (c_ne - c0_ne) / (scrapes - s0) if scrapes > s0 else float("nan")
    (ag_run, ag_ended), (ne_run, ne_ended) = run_ns_delta(t0_ag, t_ag_end), run_ns_delta(t0_ne, t_ne_end)
    ag_exact = ag_run / (runs - r0) if runs > r0 else float("nan")
    ne_exact = ne_run / (scrapes - s0) if scrapes > s0 else float("nan")
    return {
        "mode": "node",
        "seconds": a.seconds, "interval_s": a.interval, "warmup_s": a.warmup,
        "wall_s": round(t_end - t_start, 1),
        "scrape_accept_gzip": a.scrape_gzip,
        "load_before": load_before, "load_after": loadavg(), "busy_before": others,
        "agent": {
            "node_cycles": int(runs), "system_cycles": int(sys_runs),
            "steady_cycles": int(runs - r0),
            "cpu_s": round(c_ag, 2),
            "cpu_ms_per_cycle_whole": ms(ag_whole),
            "cpu_ms_per_cycle_steady": ms(ag_steady),
            "cpu_ms_per_cycle_steady_schedstat": ms(ag_exact),
            "threads_ended_in_steady_state": ag_ended,
            "vmhwm_mib": mib(hwm_ag), "vmrss_end_mib": mib(rss_ag),
            "points_per_cycle": {"node_exporter": int(node_points), "system": int(sys_points)},
            "export_requests_ok": int(ok_requests), "exported_points": int(exported),
            "dropped_items": int(dropped), "healthz": health,
        },
        "receiver": rx_snap,
        "node_exporter": {
            "scrapes": scrapes, "steady_scrapes": scrapes - s0,
            "cpu_s": round(c_ne, 2),
            "cpu_ms_per_scrape_whole": ms(ne_whole),
            "cpu_ms_per_scrape_steady": ms(ne_steady),
            "cpu_ms_per_scrape_steady_schedstat": ms(ne_exact),
            "threads_ended_in_steady_state": ne_ended,
            "vmhwm_mib": mib(hwm_ne), "vmrss_end_mib": mib(rss_ne),
            "samples_per_scrape": ne_series, "body_bytes": ne_bytes,
        },
        "ratio_agent_over_node_exporter": {
            "cpu_whole": ratio(ag_whole, ne_whole),
            "cpu_steady": ratio(ag_steady, ne_steady),
            "cpu_steady_schedstat": ratio(ag_exact, ne_exact),
            "vmhwm": ratio(hwm_ag, hwm_ne),
        },
    }


def run_collection_only(a, tmp):
    """Breakdown: the node collector alone, nothing exported, buffered or served but the
    self-metrics page (needed to count cycles)."""
    mport = free_port()
    ival = "%dms" % round(a.interval * 1000)
    cfg = agent_config(tmp, interval=ival, otlp_port=None, metrics_port=mport, health_port=None,
                       collection_only=True)
    validate(a.agent, cfg)
    agent, t_start = start_agent(a.agent, cfg, tmp, "collection-only")
    try:
        wait_port(mport, agent, "tfo-agent (collection only)")
        time.sleep(max(0.0, t_start + a.warmup - time.monotonic()))
        c0 = cpu_seconds(agent.pid)
        r0 = prom_sum(agent_metrics(mport), RUNS, collector="node_exporter")
        time.sleep(max(0.0, t_start + a.seconds - time.monotonic()))
        if agent.poll() is not None:
            fail("the collection-only agent exited early with %s" % agent.returncode, tmp)
        c1 = cpu_seconds(agent.pid)
        samples = agent_metrics(mport)
        hwm = status_kib(agent.pid, "VmHWM")
    finally:
        stop(agent, "tfo-agent (collection only)")
    runs = prom_sum(samples, RUNS, collector="node_exporter")
    if runs <= r0:
        fail("the collection-only agent ran no cycle", tmp)
    return {
        "node_cycles": int(runs),
        "cpu_ms_per_cycle_whole": ms(c1 / runs),
        "cpu_ms_per_cycle_steady": ms((c1 - c0) / (runs - r0)),
        "vmhwm_mib": mib(hwm),
    }


def print_node(r):
    ag, ne, rx, q = r["agent"], r["node_exporter"], r["receiver"], r["ratio_agent_over_node_exporter"]
    print("bench-node: %gs run, %gs interval, %gs warm-up; load %s -> %s" % (
        r["seconds"], r["interval_s"], r["warmup_s"], r["load_before"], r["load_after"]))
    if r["busy_before"]:
        print("  other busy processes at start: %s" % ", ".join(r["busy_before"]))
    print()
    print("%-34s %14s %16s %8s" % ("", "tfo-agent", "node_exporter", "ratio"))
    print("%-34s %14s %16s %8s" % ("cycles / scrapes", ag["node_cycles"], ne["scrapes"], ""))
    print("%-34s %14.3f %16.3f %8s" % ("CPU ms per cycle, whole process", ag["cpu_ms_per_cycle_whole"],
                                        ne["cpu_ms_per_scrape_whole"], q["cpu_whole"]))
    print("%-34s %14.3f %16.3f %8s" % ("CPU ms per cycle, steady state", ag["cpu_ms_per_cycle_steady"],
                                        ne["cpu_ms_per_scrape_steady"], q["cpu_steady"]))
    print("%-34s %14.3f %16.3f %8s" % ("  same, exact (schedstat)", ag["cpu_ms_per_cycle_steady_schedstat"],
                                        ne["cpu_ms_per_scrape_steady_schedstat"], q["cpu_steady_schedstat"]))
    print("%-34s %14.1f %16.1f %8s" % ("peak RSS (VmHWM) MiB", ag["vmhwm_mib"], ne["vmhwm_mib"], q["vmhwm"]))
    print()
    print("agent: %d node + %d system points per cycle; %d export requests ok, %d points exported, "
          "%d dropped; healthz %d" % (ag["points_per_cycle"]["node_exporter"],
                                      ag["points_per_cycle"]["system"], ag["export_requests_ok"],
                                      ag["exported_points"], ag["dropped_items"], ag["healthz"]))
    print("receiver: %d requests (%d gzip), %d points, %.1f KiB on the wire (%.1f KiB decoded)" % (
        rx["requests"], rx["gzip_requests"], rx["points"], rx["wire_bytes"] / 1024,
        rx["decoded_bytes"] / 1024))
    print("node_exporter: %d samples, %d bytes per scrape%s" % (
        ne["samples_per_scrape"], ne["body_bytes"],
        " (gzip requested, body size compressed)" if r["scrape_accept_gzip"] else ""))
    b = r.get("breakdown_collection_only")
    if b:
        print()
        print("breakdown, collection only (node collector alone; exporter, buffer, health and "
              "system collector off; run after the above, alone):")
        print("  CPU ms per cycle: whole %.3f, steady %.3f (ratio to node_exporter above: %s, %s); "
              "VmHWM %.1f MiB" % (b["cpu_ms_per_cycle_whole"], b["cpu_ms_per_cycle_steady"],
                                  ratio(b["cpu_ms_per_cycle_whole"], ne["cpu_ms_per_scrape_whole"]),
                                  ratio(b["cpu_ms_per_cycle_steady"], ne["cpu_ms_per_scrape_steady"]),
                                  b["vmhwm_mib"]))


# --------------------------------------------------------------------------- idle mode


def run_idle(a, tmp):
    rx = Receiver()
    mport, hport = free_port(), free_port()
    cfg = agent_config(tmp, interval=None, otlp_port=rx.port, metrics_port=mport,
                       health_port=hport)
    validate(a.agent, cfg)
    load_before = loadavg()
    others = busy_processes(exclude={os.getpid()})
    agent, t_start = start_agent(a.agent, cfg, tmp, "agent")
    try:
        time.sleep(max(0.0, t_start + a.warmup - time.monotonic()))
        c0, t0 = cpu_seconds(agent.pid), time.monotonic()
        time.sleep(max(0.0, t_start + a.seconds - time.monotonic()))
        if agent.poll() is not None:
            fail("the agent exited early with %s" % agent.returncode, tmp)
        c = cpu_seconds(agent.pid)
        t_end = time.monotonic()
        samples = agent_metrics(mport)
        hwm = status_kib(agent.pid, "VmHWM")
        rss = status_kib(agent.pid, "VmRSS")
    finally:
        stop(agent, "tfo-agent")
    rx_snap = rx.snapshot()
    first = rx.first_arrival
    rx.stop()
    if rx_snap["requests"] == 0 or first is None:
        fail("the receiver got no export request in %gs" % a.seconds, tmp)
    return {
        "mode": "idle", "seconds": a.seconds, "wall_s": round(t_end - t_start, 1),
        "load_before": load_before, "load_after": loadavg(), "busy_before": others,
        "cpu_s": round(c, 3),
        "cpu_percent_of_one_core": round(100 * c / (t_end - t_start), 3),
        "cpu_percent_after_warmup": round(100 * (c - c0) / (t_end - t0), 3),
        "warmup_s": a.warmup,
        "vmhwm_mib": mib(hwm), "vmrss_end_mib": mib(rss),
        "first_export_s": round(first - t_start, 3),
        "node_cycles": int(prom_sum(samples, RUNS, collector="node_exporter")),
        "system_cycles": int(prom_sum(samples, RUNS, collector="system")),
        "receiver": rx_snap,
    }


def print_idle(r):
    print("bench-idle: %gs, defaults (system + node collectors every 15s, export on); "
          "load %s -> %s" % (r["seconds"], r["load_before"], r["load_after"]))
    if r["busy_before"]:
        print("  other busy processes at start: %s" % ", ".join(r["busy_before"]))
    print("  CPU: %.3f s = %.3f %% of one core (whole process, start-up included); "
          "%.3f %% after the first %gs" % (r["cpu_s"], r["cpu_percent_of_one_core"],
                                           r["cpu_percent_after_warmup"], r["warmup_s"]))
    print("  peak RSS (VmHWM): %.1f MiB (VmRSS at end %.1f MiB)" % (r["vmhwm_mib"], r["vmrss_end_mib"]))
    print("  first export request at the receiver: %.3f s after process start" % r["first_export_s"])
    rx = r["receiver"]
    print("  %d node + %d system cycles; receiver: %d requests (%d gzip), %d points" % (
        r["node_cycles"], r["system_cycles"], rx["requests"], rx["gzip_requests"], rx["points"]))


# --------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["node", "idle"])
    ap.add_argument("--agent", required=True, help="tfo-agent binary (a release build)")
    ap.add_argument("--node-exporter", default="/usr/bin/prometheus-node-exporter")
    ap.add_argument("--seconds", type=float, help="whole run (node: 60, idle: 300)")
    ap.add_argument("--interval", type=float, default=1.0, help="node: cycle and scrape interval")
    ap.add_argument("--warmup", type=float, default=5.0, help="excluded from the steady state")
    ap.add_argument("--breakdown", action="store_true",
                    help="node: add a collection-only phase (exporter and buffer off)")
    ap.add_argument("--scrape-gzip", action="store_true",
                    help="node: scrape with Accept-Encoding: gzip, as Prometheus does")
    ap.add_argument("--config", default="",
                    help="node: YAML appended to the agent's config (a breakdown, e.g. "
                         "--config='exporter: {otlp: {batch_size: 1000}}'; the result is the default)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    a = ap.parse_args()
    if a.seconds is None:
        a.seconds = 60.0 if a.mode == "node" else 300.0
    if a.mode == "node" and a.seconds < a.warmup + 3 * a.interval:
        ap.error("--seconds must exceed the warm-up by at least 3 intervals")
    if a.mode == "idle" and a.seconds <= a.warmup:
        ap.error("--seconds must exceed the warm-up")
    if a.mode == "node" and not os.access(a.node_exporter, os.X_OK):
        ap.error("%s not found (Debian package prometheus-node-exporter)" % a.node_exporter)

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="bench-%s-" % a.mode)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": git_commit(repo),
            "kernel": platform.release(), "cpus": os.cpu_count(), "agent_binary": a.agent}
    if a.mode == "node":
        r = run_node(a, tmp)
        if a.breakdown:
            r["breakdown_collection_only"] = run_collection_only(a, tmp)
    else:
        r = run_idle(a, tmp)
    r.update(meta)
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print("%s, commit %s, kernel %s, %d CPUs" % (meta["date"], meta["commit"], meta["kernel"],
                                                 meta["cpus"]))
    (print_node if a.mode == "node" else print_idle)(r)


if __name__ == "__main__":
    main()
