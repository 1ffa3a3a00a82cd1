"""Runs tfo-agent (node exporter collector only) and node_exporter side by side.

Both do the same work at the same rate: the agent collects every --interval seconds, and
this script scrapes node_exporter every --interval seconds. CPU time (utime + stime from
/proc/<pid>/stat) is measured over the same window after a warm-up; resident memory is
VmRSS at the end. The agent's figure includes everything it does per cycle (read, parse,
build OTLP, encode, buffer) plus its idle overhead; node_exporter's includes rendering the
text page per scrape.
"""
import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def sample(page, series):
    for line in page.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return 0.0


def wait_port(port, deadline=20):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nothing listening on %d" % port)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--agent", required=True)
    ap.add_argument("--node-exporter", default="/usr/bin/prometheus-node-exporter")
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--interval", type=float, default=1)
    ap.add_argument("--warmup", type=float, default=5)
    a = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="bench-node-")
    mport, nport = free_port(), free_port()
    cfg = os.path.join(tmp, "agent.yaml")
    with open(cfg, "w") as f:
        f.write(
            "heartbeat: {enabled: false}\n"
            "collectors:\n"
            "  system: {enabled: false}\n"
            "  node_exporter: {enabled: true, interval: %gs}\n"
            "exporter: {otlp: {enabled: false}}\n"
            "buffer: {enabled: false}\n"
            "prometheus: {listen_address: '127.0.0.1:%d'}\n"
            "health: {enabled: false}\n"
            "logging: {level: error}\n" % (a.interval, mport)
        )
    agent = subprocess.Popen([a.agent, "-c", cfg, "run"], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(tmp, "agent.log"), "w"))
    ne = subprocess.Popen([a.node_exporter, "--web.listen-address=127.0.0.1:%d" % nport],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(mport)
        wait_port(nport)
        runs = 'tfo_agent_collector_runs_total{collector="node_exporter"}'
        # Warm-up: both have loaded their files, caches and allocators.
        end = time.time() + a.warmup
        while time.time() < end:
            get("http://127.0.0.1:%d/metrics" % nport)
            time.sleep(a.interval)
        c0_agent, c0_ne = cpu_seconds(agent.pid), cpu_seconds(ne.pid)
        r0 = sample(get("http://127.0.0.1:%d/metrics" % mport), runs)
        scrapes = 0
        series = 0
        end = time.time() + a.seconds
        next_t = time.time()
        while time.time() < end:
            page = get("http://127.0.0.1:%d/metrics" % nport)
            scrapes += 1
            series = sum(1 for l in page.splitlines() if l and not l.startswith("#"))
            next_t += a.interval
            time.sleep(max(0.0, next_t - time.time()))
        c1_agent, c1_ne = cpu_seconds(agent.pid), cpu_seconds(ne.pid)
        page = get("http://127.0.0.1:%d/metrics" % mport)
        r1 = sample(page, runs)
        cycles = r1 - r0
        our_series = sample(page, 'tfo_agent_collector_series{collector="node_exporter"}')
        rss_agent, rss_ne = rss_bytes(agent.pid), rss_bytes(ne.pid)
    finally:
        agent.terminate()
        ne.terminate()
        agent.wait()
        ne.wait()
    if cycles <= 0 or scrapes <= 0:
        raise SystemExit("no cycles measured (agent log: %s)" % os.path.join(tmp, "agent.log"))
    ours = (c1_agent - c0_agent) / cycles
    theirs = (c1_ne - c0_ne) / scrapes
    out = {
        "window_seconds": a.seconds,
        "interval_seconds": a.interval,
        "agent_cycles": cycles,
        "node_exporter_scrapes": scrapes,
        "agent_points_per_cycle": our_series,
        "node_exporter_samples_per_scrape": series,
        "agent_cpu_ms_per_cycle": round(ours * 1e3, 3),
        "node_exporter_cpu_ms_per_scrape": round(theirs * 1e3, 3),
        "cpu_ratio": round(ours / theirs, 3) if theirs > 0 else None,
        "agent_rss_mib": round(rss_agent / 2**20, 1),
        "node_exporter_rss_mib": round(rss_ne / 2**20, 1),
        "rss_ratio": round(rss_agent / rss_ne, 3) if rss_ne else None,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
