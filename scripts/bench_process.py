"""Benchmarks the process collector as users run it: CPU per process per cycle.

Spawns --sleepers extra sleeping processes (default 1000), then runs the release agent
once per case, each time with the process collector every --interval and everything else
as shipped for export: OTLP/gRPC with gzip to the Python receiver peer
(tests/peers/otlp_receiver.py, decoding every request), the disk buffer, the health and
self-metrics endpoints. The system and node_exporter collectors are off, so the agent's
CPU is the process collector's cycle plus encoding, buffering and export of its points.

Cases: `default` (stat + io for every user process, the shipped metric set, from the eBPF
task iterator when the agent can load it, as shipped: `source: auto`), `default_procfs`
(the same read from the /proc files: `source: procfs`), each opt-in
part alone on top of it (`cpu_utilization`, `threads`, `paging_faults`, `uptime`,
`command_line`, `file_descriptors`, `context_switches`), `stat_all` (the four stat parts
together: the default set before issue 16), `all` of them, and `idle` (the collector off:
what the agent costs per interval without it).

Per case, after --warmup cycles: agent CPU (utime + stime from /proc/<pid>/stat) over the
next --cycles cycles (read mid-way between cycles, without scraping the agent in between;
checked afterwards with tfo_agent_collector_runs_total), divided by cycles and by
the processes reported (every user process on the host: no filter, no cap), minus nothing:
the figure is what the agent spends per process per cycle, export included. The `idle`
case says how much of that is not the collector's. The collector's own wall time per
cycle (tfo_agent_collector_duration_seconds) is printed too.

Run it through scripts/bench-process.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_node as bn  # noqa: E402  (shared /proc and agent helpers)

PF_KTHREAD = 0x00200000

CASES = [
    ("idle", None),
    ("default", {}),
    ("default_procfs", {"source": "procfs"}),
    ("cpu_utilization", {"cpu_utilization": "true"}),
    ("threads", {"threads": "true"}),
    ("paging_faults", {"paging_faults": "true"}),
    ("uptime", {"uptime": "true"}),
    # The default set before issue 16 (the four stat parts above together).
    ("stat_all", {"cpu_utilization": "true", "threads": "true", "paging_faults": "true",
                  "uptime": "true"}),
    ("command_line", {"command_line": "true"}),
    ("file_descriptors", {"file_descriptors": "true"}),
    ("context_switches", {"context_switches": "true"}),
    ("all", {"command_line": "true", "file_descriptors": "true", "context_switches": "true",
             "cpu_utilization": "true", "threads": "true", "paging_faults": "true",
             "uptime": "true"}),
]


def user_processes():
    n = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if not int(rest[6]) & PF_KTHREAD:
                n += 1
        except (OSError, ValueError, IndexError):
            pass
    return n


def start_receiver(py, tmp):
    out = os.path.join(tmp, "receiver.jsonl")
    rx = subprocess.Popen([py, "tests/peers/otlp_receiver.py", "--grpc-port", "0",
                           "--http-port", "-1", "--out", out],
                          stdout=subprocess.PIPE, stderr=open(os.path.join(tmp, "rx.err"), "w"),
                          text=True)
    line = rx.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit("receiver did not start: %r" % line)
    port = int(line.split("grpc=")[1].split()[0])
    return rx, port, out


def config(tmp, name, opts, interval, otlp_port, mport, hport):
    lines = [
        "agent: {data_dir: '%s'}" % os.path.join(tmp, name, "data"),
        "heartbeat: {enabled: false}",
        "telemetryflow: {endpoint: '127.0.0.1:%d'}" % otlp_port,
        # One export per cycle, as with the shipped 30 s interval and 10 s flush: at the
        # bench's 2 s interval the shipped flush would send every fifth cycle, and a window
        # of cycles would hold one export more or less depending on its phase.
        "exporter: {otlp: {flush_interval: %s}}" % interval,
        "buffer: {path: '%s'}" % os.path.join(tmp, name, "buffer"),
        "health: {listen_address: '127.0.0.1:%d'}" % hport,
        "prometheus: {listen_address: '127.0.0.1:%d'}" % mport,
        "collectors:",
        "  system: {enabled: false}",
        "  node_exporter: {enabled: false}",
    ]
    if opts is None:
        # Something must run for the agent to count cycles: the system collector's uptime
        # only (its cheapest part) at the same interval.
        lines[-2] = ("  system: {enabled: true, interval: %s, cpu: false, memory: false, "
                     "disk: false, network: false}" % interval)
    else:
        extra = "".join(", %s: %s" % kv for kv in opts.items())
        lines.append("  process: {enabled: true, interval: %s, max_processes: 100000%s}"
                     % (interval, extra))
    os.makedirs(os.path.join(tmp, name), exist_ok=True)
    path = os.path.join(tmp, name, "agent.yaml")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def run_case(a, tmp, name, opts, rx_port):
    mport, hport = bn.free_port(), bn.free_port()
    ival = "%dms" % round(a.interval * 1000)
    cfg = config(tmp, name, opts, ival, rx_port, mport, hport)
    bn.validate(a.agent, cfg)
    collector = "system" if opts is None else "process"
    agent, _ = bn.start_agent(a.agent, cfg, os.path.join(tmp, name), "agent")
    try:
        bn.wait_port(mport, agent, "tfo-agent")

        def runs():
            return bn.prom_sum(bn.agent_metrics(mport), bn.RUNS, collector=collector)

        def wait_runs(n):
            end = time.monotonic() + (n + 5) * a.interval + 30
            while time.monotonic() < end:
                r = runs()
                if r >= n:
                    return r
                if agent.poll() is not None:
                    bn.fail("agent exited with %s" % agent.returncode, tmp)
                time.sleep(0.02)
            bn.fail("%s: collector did not reach %d cycles" % (name, n), tmp)

        # Polling /metrics costs the agent about 0.3 ms a scrape (rendering and serving
        # it): at 20 ms between polls that was ~25 ms per 2 s cycle, the whole of what the
        # `idle` case measured before 2026-12-02 09:30. So the agent is polled only until
        # the warm-up's last cycle is seen, which gives the cycles' phase (they tick at a
        # fixed period); then CPU is read mid-way between two cycles, when the previous
        # one's collection and export are over, and again `cycles` periods later, with no
        # scrape in between (the check that exactly `cycles` cycles ran is made outside).
        r0 = wait_runs(a.warmup)
        tick = time.monotonic()
        time.sleep(a.interval / 2)
        c0 = bn.cpu_seconds(agent.pid)
        time.sleep(max(0.0, tick + (a.cycles + 0.5) * a.interval - time.monotonic()))
        c1 = bn.cpu_seconds(agent.pid)
        samples = bn.agent_metrics(mport)
        r1 = bn.prom_sum(samples, bn.RUNS, collector=collector)
        if r1 != r0 + a.cycles:
            bn.fail("%s: %d cycles ran in the window of %d (a cycle took longer than half "
                    "the interval?)" % (name, r1 - r0, a.cycles), tmp)
        procs = user_processes()
        hwm = bn.status_kib(agent.pid, "VmHWM")
    finally:
        bn.stop(agent, "tfo-agent")
    cycles = r1 - r0
    series = bn.prom_sum(samples, "tfo_agent_collector_series", collector=collector)
    duration = bn.prom_sum(samples, "tfo_agent_collector_duration_seconds", collector=collector)
    skipped = {r: bn.prom_sum(samples, "tfo_agent_collector_skipped_total", collector=collector,
                              reason=r)
               for r in ("vanished", "permission_denied", "overflow")}
    dropped = bn.prom_sum(samples, "tfo_agent_dropped_items_total")
    # Where stat and io came from: the collector logs it at start, or reports why not.
    with open(os.path.join(tmp, name, "agent.log")) as f:
        log = f.read()
    source = None
    if opts is not None:
        source = "ebpf" if "from the eBPF task iterator" in log else "procfs"
    per_cycle = (c1 - c0) / cycles
    if opts is None:
        procs = 0
    return {
        "case": name,
        "cycles": int(cycles),
        "cpu_ms_per_cycle": bn.ms(per_cycle),
        "points_last_cycle": int(series),
        "processes_reported": procs,
        "us_per_process": round(per_cycle * 1e6 / procs, 2) if procs else None,
        "collect_wall_ms_last_cycle": bn.ms(duration),
        "skipped_total": skipped,
        "dropped": dropped,
        "vmhwm_mib": bn.mib(hwm),
        "source": source,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--sleepers", type=int, default=1000)
    ap.add_argument("--interval", type=float, default=2.0)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--cases", default=",".join(c for c, _ in CASES))
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    wanted = a.cases.split(",")
    tmp = tempfile.mkdtemp(prefix="tfo-bench-process-")
    sleepers = []
    rx = None
    try:
        for _ in range(a.sleepers):
            sleepers.append(subprocess.Popen(["sleep", "86400"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL))
        rx, port, _ = start_receiver(a.python, tmp)
        results = []
        for name, opts in CASES:
            if name not in wanted:
                continue
            results.append(run_case(a, tmp, name, opts, port))
            if not a.json:
                r = results[-1]
                print("%-17s %7.2f us/process  %8.3f ms CPU/cycle  %5d processes  "
                      "collect %7.3f ms  HWM %5.1f MiB  source %s  skipped %s" % (
                          r["case"], r["us_per_process"] or 0, r["cpu_ms_per_cycle"],
                          r["processes_reported"], r["collect_wall_ms_last_cycle"],
                          r["vmhwm_mib"], r["source"] or "-", {k: int(v) for k, v in r["skipped_total"].items() if v}),
                      flush=True)
        base = {r["case"]: r for r in results}
        if "default" in base:
            d = base["default"]
            for r in results:
                if r["case"] not in ("default", "idle") and r["us_per_process"] and d["us_per_process"]:
                    r["extra_us_per_process_vs_default"] = round(
                        r["us_per_process"] - d["us_per_process"], 2)
        meta = {"host_user_processes": user_processes(), "sleepers": a.sleepers,
                "interval_s": a.interval, "cycles": a.cycles, "cpus": os.cpu_count(),
                "load": bn.loadavg(), "commit": bn.git_commit(".")}
        if a.json:
            print(json.dumps({"meta": meta, "results": results}, indent=2))
        else:
            print("breakdown (extra us per process per cycle over default):",
                  {r["case"]: r.get("extra_us_per_process_vs_default") for r in results
                   if "extra_us_per_process_vs_default" in r})
            print("meta:", meta)
    finally:
        for s in sleepers:
            s.kill()
        for s in sleepers:
            s.wait()
        if rx is not None:
            rx.kill()
            rx.wait()


if __name__ == "__main__":
    main()
