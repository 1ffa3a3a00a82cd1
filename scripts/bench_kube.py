"""Benchmarks the Kubernetes collector as the elected agent of a big cluster (issue 12).

The in-repo fake API server (`tfo-kube-fake`) serves --nodes nodes and --pods pods (with
the deployments, replica sets, services, endpoint slices and events that go with them).
One release agent watches the whole cluster as the elected agent does: every pod
(`node_local_pods: false`), cluster-wide kinds and Events without a Lease
(`leader_election.enabled: false`), every collect_* on, `interval` 30 s by default, system
and node_exporter collectors off, exporting with its defaults (disk buffer, gzip,
OTLP/gRPC) to a loopback receiver that decodes every request (bench_node.Receiver).

Measured, in this order:
  sync      start until `tfo_agent_kubernetes_objects{resource="pods"}` = --pods and
            `tfo_agent_kubernetes_api_up` 1; VmRSS/VmHWM then.
  cycles    CPU of each collection cycle (snapshot -> OTLP -> encode -> buffer -> gzip ->
            export): from 2 s before the cycle is due until the receiver holds all its
            `k8s.pod.phase` points and the buffer is empty, minus the idle rate (measured
            in a quiet window of each interval) times that window. Every cycle must deliver
            exactly --pods `k8s.pod.phase` points (one timestamp per cycle) or the run fails.
  relists   --relists times, in the quiet part of an interval: POST /fake/expire (every
            watch gets 410 Gone, the watchers relist every resource); CPU (utime+stime of
            /proc/<pid>/stat) from just before until every resource's relists counter has
            gone up and the pod count is back. Raw figures include up to ~1.2 s of idle
            (self-metrics follow the watches once a second); "net" subtracts the idle rate.
  memory    VmRSS after sync, after the first full cycle, after each relist; VmHWM at the
            end. The same is done against a fake with --pods 0 (same --nodes; no
            workloads, services or events either) as the baseline; the delta divided by
            --pods is the resident cost per tracked pod, *including* its share of the
            workloads, services, endpoint slices and events that come with the pods
            (--pods-only turns those collectors off in both runs to isolate pods).

The receiver and the fake run on the same cores; only the agent's CPU is counted.
Run it through scripts/bench-kube; recorded figures in docs/performance.md.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_node import (  # noqa: E402
    Receiver, agent_metrics, busy_processes, cpu_seconds, free_port, git_commit,
    loadavg, prom_sum, start_agent, status_kib, stop, validate, wait_port)

RUNS = "tfo_agent_collector_runs_total"
OBJECTS = "tfo_agent_kubernetes_objects"
RELISTS = "tfo_agent_kubernetes_relists_total"
API_UP = "tfo_agent_kubernetes_api_up"
POD_PHASE = "k8s.pod.phase"
POLL = 0.2


class Failure(SystemExit):
    pass


def fail(msg, tmp):
    raise Failure("FAIL: %s (agent logs and configs kept in %s)" % (msg, tmp))


# --------------------------------------------------------------------------- fake API server


class Fake:
    def __init__(self, binary, nodes, pods, tmp, name):
        self.kubeconfig = os.path.join(tmp, name + ".kubeconfig")
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        self.proc = subprocess.Popen(
            [binary, "--nodes", str(nodes), "--pods", str(pods), "--kubeconfig", self.kubeconfig],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.log, text=True)
        got = []
        t = threading.Thread(target=lambda: got.append(self.proc.stdout.readline()), daemon=True)
        t.start()
        t.join(120)
        if not got or not got[0].startswith("http"):
            self.stop()
            raise Failure("tfo-kube-fake printed no URL (log: %s)" % self.log.name)
        self.url = got[0].strip()

    def _call(self, method, path):
        req = urllib.request.Request(self.url + path, method=method,
                                     data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def expire(self):
        return self._call("POST", "/fake/expire")

    def stats(self):
        return self._call("GET", "/fake/stats")

    def stop(self):
        stop(self.proc, "tfo-kube-fake")


# --------------------------------------------------------------------------- receiver


class PodPhases:
    """Counts, per data-point timestamp (one per collection cycle), the k8s.pod.phase
    points the receiver decoded; also k8s.* metric names seen and log records."""

    def __init__(self):
        self.by_ts = Counter()
        self.names = set()
        self.log_records = 0

    def __call__(self, msg, is_metrics):
        if not is_metrics:
            self.log_records += sum(len(sl.log_records) for rl in msg.resource_logs
                                    for sl in rl.scope_logs)
            return
        for rm in msg.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    if m.name.startswith("k8s."):
                        self.names.add(m.name)
                    if m.name == POD_PHASE:
                        for dp in m.gauge.data_points:
                            self.by_ts[dp.time_unix_nano] += 1


# --------------------------------------------------------------------------- agent


def agent_config(tmp, name, *, kubeconfig, interval, otlp_port, metrics_port, health_port,
                 pods_only):
    """The elected agent watching the whole cluster; shipped defaults otherwise. Only keys
    listed in docs/configuration.md."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    cluster_wide = "false" if pods_only else "true"
    lines = [
        "agent: {data_dir: '%s'}" % os.path.join(d, "data"),
        "telemetryflow: {endpoint: '127.0.0.1:%d'}" % otlp_port,
        "collectors:",
        "  system: {enabled: false}",
        "  node_exporter: {enabled: false}",
        "  kubernetes:",
        "    enabled: true",
        "    interval: %s" % interval,
        "    kubeconfig_path: '%s'" % kubeconfig,
        "    node_name: node-0",
        "    node_local_pods: false",
        "    collect_pods: true",
        "    collect_nodes: true",
        "    collect_deployments: %s" % cluster_wide,
        "    collect_services: %s" % cluster_wide,
        "    collect_namespaces: %s" % cluster_wide,
        "    collect_events: %s" % cluster_wide,
        "    leader_election: {enabled: false}",
        "buffer: {path: '%s'}" % os.path.join(d, "buffer"),
        "health: {listen_address: '127.0.0.1:%d'}" % health_port,
        "prometheus: {listen_address: '127.0.0.1:%d'}" % metrics_port,
    ]
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def parse_duration(s):
    for unit, k in (("ms", 1e-3), ("s", 1.0), ("m", 60.0)):
        if s.endswith(unit):
            return float(s[:-len(unit)]) * k
    return float(s)


class Agent:
    """One agent against one fake; follows its self-metrics."""

    def __init__(self, a, tmp, name, fake, pods):
        self.a, self.tmp, self.name, self.fake, self.pods = a, tmp, name, fake, pods
        self.rx = Receiver()
        self.phases = PodPhases()
        self.rx.observe = self.phases
        self.mport = free_port()
        cfg = agent_config(tmp, name, kubeconfig=fake.kubeconfig, interval=a.interval,
                           otlp_port=self.rx.port, metrics_port=self.mport,
                           health_port=free_port(), pods_only=a.pods_only)
        validate(a.agent, cfg)
        self.proc, self.t0 = start_agent(a.agent, cfg, tmp, name)
        self.pid = self.proc.pid
        self.runs_seen = 0
        self.last_run_t = None      # time.monotonic() a cycle was first seen done
        self.last_ts = 0            # newest k8s.pod.phase timestamp checked
        self.samples = {}

    def scrape(self):
        if self.proc.poll() is not None:
            fail("the agent (%s) exited with %s" % (self.name, self.proc.returncode), self.tmp)
        s = agent_metrics(self.mport)
        self.samples = s
        runs = int(prom_sum(s, RUNS, collector="kubernetes"))
        if runs > self.runs_seen:
            self.runs_seen = runs
            self.last_run_t = time.monotonic()
        return s

    def wait(self, cond, what, timeout):
        end = time.monotonic() + timeout
        while True:
            s = self.scrape()
            if cond(s):
                return s
            if time.monotonic() > end:
                fail("%s: %s not reached in %ds" % (self.name, what, timeout), self.tmp)
            time.sleep(POLL)

    def synced(self, s):
        return (prom_sum(s, API_UP) == 1 and
                any(k.startswith(OBJECTS + '{resource="pods"}') for k in s) and
                prom_sum(s, OBJECTS, resource="pods") == self.pods)

    def relists(self, s):
        out = {}
        for k, v in s.items():
            if k.startswith(RELISTS + "{"):
                out[k[len(RELISTS):]] = v
        return out

    def mem(self):
        return {"rss_kib": status_kib(self.pid, "VmRSS"), "hwm_kib": status_kib(self.pid, "VmHWM")}

    def cpu(self):
        return cpu_seconds(self.pid)

    def stop(self):
        stop(self.proc, "tfo-agent (%s)" % self.name)
        self.rx.stop()

    # ----------------------------------------------------------------- phases

    def wait_sync(self):
        wait_port(self.mport, self.proc, "tfo-agent (%s)" % self.name)
        self.wait(self.synced, "sync (pods = %d, api_up 1)" % self.pods, 600)
        return time.monotonic() - self.t0

    def cycle(self, idle_rate):
        """Measures the next collection cycle; returns its figures."""
        ival = parse_duration(self.a.interval)
        s = self.scrape()
        runs0 = self.runs_seen
        dur = prom_sum(s, "tfo_agent_collector_duration_seconds", collector="kubernetes")
        due = (self.last_run_t or self.t0) - dur + ival
        late = False
        while time.monotonic() < due - 2.0:
            time.sleep(min(POLL, max(0.0, due - 2.0 - time.monotonic())))
        self.scrape()
        if self.runs_seen > runs0:
            late = True  # the cycle ran before the window opened; wait for the next one
            runs0 = self.runs_seen
            due = self.last_run_t + ival
            while time.monotonic() < due - 2.0:
                time.sleep(POLL)
        c0, t0 = self.cpu(), time.monotonic()
        req0 = self.rx.snapshot()["requests"]
        self.wait(lambda s: self.runs_seen > runs0, "a collection cycle", ival + 60)
        # All of this cycle's pod points decoded at the receiver (with no pods: a request
        # arrived), and the buffer empty.
        end = time.monotonic() + 60
        while True:
            with self.rx.lock:
                newer = [ts for ts in self.phases.by_ts if ts > self.last_ts]
                ts = max(newer) if newer else None
                n = self.phases.by_ts[ts] if ts else 0
                arrived = self.rx.requests > req0
            if (ts and n >= self.pods) or (self.pods == 0 and arrived):
                s = self.scrape()
                if prom_sum(s, "tfo_agent_buffer_records") == 0:
                    break
            if time.monotonic() > end:
                fail("%s: cycle exported %d %s points, want %d" % (self.name, n, POD_PHASE,
                                                                  self.pods), self.tmp)
            time.sleep(0.05)
        time.sleep(0.3)
        c1, t1 = self.cpu(), time.monotonic()
        if n != self.pods:
            fail("%s: one cycle delivered %d %s points, want %d" % (
                self.name, n, POD_PHASE, self.pods), self.tmp)
        self.last_ts = ts or self.last_ts
        return {"cpu_s": c1 - c0, "wall_s": t1 - t0,
                "net_cpu_s": (c1 - c0) - idle_rate * (t1 - t0),
                "pod_phase_points": n,
                "agent_duration_s": prom_sum(self.samples, "tfo_agent_collector_duration_seconds",
                                             collector="kubernetes"),
                "series": prom_sum(self.samples, "tfo_agent_collector_series",
                                   collector="kubernetes"),
                "late_window": late}

    def idle(self, seconds):
        c0, t0 = self.cpu(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = self.cpu(), time.monotonic()
        return (c1 - c0) / (t1 - t0)

    def relist(self, idle_rate):
        before = self.relists(self.scrape())
        if not before:
            fail("%s: no %s series" % (self.name, RELISTS), self.tmp)
        runs0 = self.runs_seen
        c0, t0 = self.cpu(), time.monotonic()
        expired = self.fake.expire().get("expired")
        pods_done = None

        def done(s):
            nonlocal pods_done
            now = self.relists(s)
            if pods_done is None and now.get('{resource="pods"}', 0) > before.get(
                    '{resource="pods"}', 0) and prom_sum(s, OBJECTS, resource="pods") == self.pods:
                pods_done = time.monotonic()
            if pods_done is None or prom_sum(s, API_UP) != 1:
                return False
            missing[:] = [k for k, v in before.items() if now.get(k, 0) <= v]
            # Resources that do not relist within 10 s of the pods are reported, not waited for.
            return not missing or time.monotonic() - pods_done > 10

        missing = []
        self.wait(done, "a relist of the pods", 120)
        c1, t1 = self.cpu(), time.monotonic()
        return {"cpu_s": c1 - c0, "wall_s": t1 - t0, "not_relisted": list(missing),
                "net_cpu_s": (c1 - c0) - idle_rate * (t1 - t0),
                "pods_wall_s": pods_done - t0, "watches_expired": expired,
                "cycle_overlapped": self.runs_seen > runs0, "mem": self.mem()}


# --------------------------------------------------------------------------- runs


def run_cluster(a, tmp, name, pods, relists):
    fake = Fake(a.fake, a.nodes, pods, tmp, name + "-fake")
    ag = None
    try:
        fstats = fake.stats()
        ag = Agent(a, tmp, name, fake, pods)
        sync_s = ag.wait_sync()
        r = {"pods": pods, "fake_objects": fstats.get("objects", {}),
             "sync_s": round(sync_s, 2), "mem_sync": ag.mem(), "cycles": [], "relists": [],
             "idle_cpu_rates": []}
        # First full cycle (the one at start ran before the stores were synced).
        idle_rate = ag.idle(3.0)
        r["idle_cpu_rates"].append(idle_rate)
        r["cycles"].append(ag.cycle(idle_rate))
        r["mem_cycle1"] = ag.mem()
        for _ in range(relists):
            idle_rate = ag.idle(a.idle_window)
            r["idle_cpu_rates"].append(idle_rate)
            rl = ag.relist(idle_rate)
            if rl["cycle_overlapped"]:
                fail("%s: a collection cycle ran during the relist window" % name, tmp)
            r["relists"].append(rl)
            r["cycles"].append(ag.cycle(idle_rate))
        r["mem_end"] = ag.mem()
        r["points_per_cycle"] = r["cycles"][-1]["series"]
        r["k8s_metric_names"] = len(ag.phases.names)
        r["log_records"] = ag.phases.log_records
        r["receiver"] = ag.rx.snapshot()
        r["fake_stats_end"] = fake.stats()
        if r["receiver"]["decode_errors"]:
            fail("%s: %d export requests could not be decoded" % (
                name, r["receiver"]["decode_errors"]), tmp)
        if not ag.phases.names:
            fail("%s: the receiver decoded no k8s.* metric" % name, tmp)
        return r
    finally:
        if ag:
            ag.stop()
        fake.stop()


def stats3(xs):
    return {"min": round(min(xs), 3), "median": round(statistics.median(xs), 3),
            "max": round(max(xs), 3), "n": len(xs)}


def summarize(main, base, pods):
    def per_pod(key, field):
        return round((main[key][field] - base[key][field]) * 1024 / pods)

    rl = main["relists"]
    full_cycles = main["cycles"]
    out = {
        "memory": {
            "rss_sync_mib": [round(main["mem_sync"]["rss_kib"] / 1024, 1),
                             round(base["mem_sync"]["rss_kib"] / 1024, 1)],
            "rss_cycle1_mib": [round(main["mem_cycle1"]["rss_kib"] / 1024, 1),
                               round(base["mem_cycle1"]["rss_kib"] / 1024, 1)],
            "rss_after_relists_mib": [round(main["mem_end"]["rss_kib"] / 1024, 1),
                                      round(base["mem_end"]["rss_kib"] / 1024, 1)],
            "hwm_end_mib": [round(main["mem_end"]["hwm_kib"] / 1024, 1),
                            round(base["mem_end"]["hwm_kib"] / 1024, 1)],
            "bytes_per_pod": {
                "rss_sync": per_pod("mem_sync", "rss_kib"),
                "rss_cycle1": per_pod("mem_cycle1", "rss_kib"),
                "rss_after_relists": per_pod("mem_end", "rss_kib"),
                "hwm_end": per_pod("mem_end", "hwm_kib"),
            },
            "rss_after_each_relist_mib": [round(x["mem"]["rss_kib"] / 1024, 1) for x in rl],
        },
        "relist_cpu_s": stats3([x["cpu_s"] for x in rl]),
        "relist_net_cpu_s": stats3([x["net_cpu_s"] for x in rl]),
        "relist_wall_s": stats3([x["wall_s"] for x in rl]),
        "relist_pods_wall_s": stats3([x["pods_wall_s"] for x in rl]),
        "baseline_relist_cpu_s": stats3([x["cpu_s"] for x in base["relists"]]),
        "cycle_cpu_s": stats3([x["net_cpu_s"] for x in full_cycles]),
        "cycle_cpu_raw_s": stats3([x["cpu_s"] for x in full_cycles]),
        "cycle_window_s": stats3([x["wall_s"] for x in full_cycles]),
        "cycle_agent_duration_s": stats3([x["agent_duration_s"] for x in full_cycles]),
        "baseline_cycle_cpu_s": stats3([x["net_cpu_s"] for x in base["cycles"]]),
        "idle_cpu_percent": round(100 * statistics.median(main["idle_cpu_rates"]), 2),
    }
    return out


def print_summary(r):
    s, m, b = r["summary"], r["main"], r["baseline"]
    mem = s["memory"]
    print("%s, commit %s, kernel %s, %d CPUs" % (r["date"], r["commit"], r["kernel"], r["cpus"]))
    print("bench-kube: %d pods on %d nodes, interval %s%s; load %s -> %s" % (
        r["pods"], r["nodes"], r["interval"], ", pods only" if r["pods_only"] else "",
        r["load_before"], r["load_after"]))
    if r["busy_before"]:
        print("  other busy processes at start: %s" % ", ".join(r["busy_before"]))
    if r["busy_after"]:
        print("  other busy processes at end:   %s" % ", ".join(r["busy_after"]))
    print("  fake objects: %s" % ", ".join("%s %d" % kv for kv in sorted(m["fake_objects"].items())))
    print("  baseline (--pods 0): %s" % ", ".join(
        "%s %d" % kv for kv in sorted(b["fake_objects"].items())))
    print()
    print("%-40s %12s %12s %12s" % ("memory", "%d pods" % r["pods"], "baseline", "B per pod"))
    for label, key, pp in (("VmRSS after sync, MiB", "rss_sync_mib", "rss_sync"),
                           ("VmRSS after first full cycle, MiB", "rss_cycle1_mib", "rss_cycle1"),
                           ("VmRSS after relists, MiB", "rss_after_relists_mib",
                            "rss_after_relists"),
                           ("VmHWM at end, MiB", "hwm_end_mib", "hwm_end")):
        print("%-40s %12.1f %12.1f %12d" % (label, mem[key][0], mem[key][1],
                                             mem["bytes_per_pod"][pp]))
    print("  VmRSS after each relist (MiB): %s" % ", ".join(
        "%.1f" % x for x in mem["rss_after_each_relist_mib"]))
    print()
    print("%-40s %9s %9s %9s %4s" % ("CPU / wall, seconds", "min", "median", "max", "n"))
    for label, key in (("relist, CPU (raw)", "relist_cpu_s"),
                       ("relist, CPU (net of idle)", "relist_net_cpu_s"),
                       ("relist, wall (all resources)", "relist_wall_s"),
                       ("relist, wall (pods back)", "relist_pods_wall_s"),
                       ("baseline relist, CPU (raw)", "baseline_relist_cpu_s"),
                       ("cycle, CPU (net of idle)", "cycle_cpu_s"),
                       ("cycle, CPU (raw window)", "cycle_cpu_raw_s"),
                       ("cycle, window wall", "cycle_window_s"),
                       ("cycle, agent-reported duration", "cycle_agent_duration_s"),
                       ("baseline cycle, CPU (net)", "baseline_cycle_cpu_s")):
        x = s[key]
        print("%-40s %9.3f %9.3f %9.3f %4d" % (label, x["min"], x["median"], x["max"], x["n"]))
    print("  idle CPU between cycles: %.2f %% of one core" % s["idle_cpu_percent"])
    print()
    rx = m["receiver"]
    print("agent: synced in %.1f s; %d points per cycle; receiver decoded %d k8s.* metric names, "
          "%d %s points per cycle (%d cycles checked), %d log records (events); "
          "%d requests (%d gzip), %.1f MiB on the wire" % (
              m["sync_s"], m["points_per_cycle"], m["k8s_metric_names"], r["pods"], POD_PHASE,
              len(m["cycles"]), m["log_records"], rx["requests"], rx["gzip_requests"],
              rx["wire_bytes"] / 1048576))
    print("goals: <= 1024 B per pod: %s (RSS after relists %d B); relist <= 1 s CPU: %s "
          "(median %.3f s)" % (
              "met" if mem["bytes_per_pod"]["rss_after_relists"] <= 1024 else "MISSED",
              mem["bytes_per_pod"]["rss_after_relists"],
              "met" if s["relist_cpu_s"]["median"] <= 1.0 else "MISSED",
              s["relist_cpu_s"]["median"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True, help="tfo-agent binary (a release build)")
    ap.add_argument("--fake", required=True, help="tfo-kube-fake binary (a release build)")
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--interval", default="30s", help="collectors.kubernetes.interval")
    ap.add_argument("--relists", type=int, default=5)
    ap.add_argument("--idle-window", type=float, default=4.0,
                    help="seconds of idle CPU measured before each relist")
    ap.add_argument("--pods-only", action="store_true",
                    help="workloads, services, namespaces and events off (both runs)")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    ap.add_argument("--json-out", metavar="FILE", help="also write the JSON result to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, configs)")
    a = ap.parse_args()
    if a.pods % a.nodes:
        ap.error("--pods must be a multiple of --nodes (the fake drops the remainder)")
    if parse_duration(a.interval) < 15:
        ap.error("--interval below 15s leaves no room for a relist between cycles")

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tmp = tempfile.mkdtemp(prefix="bench-kube-")
    r = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "commit": git_commit(repo),
         "kernel": platform.release(), "cpus": os.cpu_count(), "agent_binary": a.agent,
         "nodes": a.nodes, "pods": a.pods, "interval": a.interval, "pods_only": a.pods_only,
         "load_before": loadavg(), "busy_before": busy_processes(exclude={os.getpid()})}
    r["main"] = run_cluster(a, tmp, "main", a.pods, a.relists)
    r["baseline"] = run_cluster(a, tmp, "baseline", 0, 1)
    r["load_after"] = loadavg()
    r["busy_after"] = busy_processes(exclude={os.getpid()})
    r["summary"] = summarize(r["main"], r["baseline"], a.pods)
    if not a.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    if a.json_out:
        with open(a.json_out, "w") as f:
            json.dump(r, f, indent=2)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print_summary(r)


if __name__ == "__main__":
    main()
