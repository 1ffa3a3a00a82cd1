#!/usr/bin/env python3
"""The log collector as shipped: file -> disk buffer -> OTLP/gRPC (gzip) to a loopback
receiver, with 256-byte lines. Run through scripts/bench-logs.

Two phases, each with a fresh agent on its defaults (collectors.logs enabled with one path
and start_at: beginning; everything else default: system and node_exporter collectors at
15 s, disk buffer with fsync: interval, gzip, logs requests of logs_batch_size 4096 log
records and 240 KiB at most):

throughput  A file of --mib MiB of 256-byte lines is written first (page cache warm), then
            the agent reads it and ships it to a receiver that decodes every request with
            the official opentelemetry-proto classes and counts log records. Reported: the
            agent's CPU seconds (utime + stime of the whole process, /proc/<pid>/stat) from
            start until the receiver has every line, MiB of log file per CPU second of the
            agent ("per core"), and wall-clock MiB/s (bounded by the Python receiver, which
            shares the two cores).

backlog     The collector is down (nothing listens on the endpoint) and --backlog-mib MiB of
            lines are written; buffer.max_size_mb is raised so the logs half holds them all.
            Reported: VmHWM once every line is in the disk log, the buffer's size on disk,
            then the receiver comes up and the backlog drains: drain time and VmHWM at the
            end.

The receiver checks that every request is gzip-compressed and that every line arrived.
"""

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_node import (  # noqa: E402
    agent_metrics,
    busy_processes,
    clean_env,
    cpu_seconds,
    free_port,
    git_commit,
    loadavg,
    prom_sum,
    status_kib,
    wait_port,
)

LINE = 256


class LogsReceiver:
    """Loopback OTLP/gRPC LogsService: decodes every request, counts log records, bytes on
    the wire and gzip-compressed requests."""

    def __init__(self, port=0):
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as ls

        self.lock = threading.Lock()
        self.requests = 0
        self.records = 0
        self.wire_bytes = 0
        self.gzip_requests = 0
        self.decode_errors = 0
        self.first_body = None
        self.last_body = None
        outer = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                if details.method != "/opentelemetry.proto.collector.logs.v1.LogsService/Export":
                    return None

                def export(raw, context):
                    outer._take(raw, ls.ExportLogsServiceRequest, context, grpc)
                    return ls.ExportLogsServiceResponse()

                return grpc.unary_unary_rpc_method_handler(
                    export, request_deserializer=None,
                    response_serializer=lambda m: m.SerializeToString())

        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4),
            handlers=[Handler()],
            options=[("grpc.max_receive_message_length", 64 << 20),
                     ("grpc.so_reuseport", 0),
                     ("grpc.per_message_decompression", 0)])
        self.port = self.server.add_insecure_port("127.0.0.1:%d" % port)
        self.server.start()

    def _take(self, raw, cls, context, grpc):
        compressed = raw[:2] == b"\x1f\x8b"
        try:
            msg = cls.FromString(gzip.decompress(raw) if compressed else raw)
        except Exception as exc:  # noqa: BLE001
            with self.lock:
                self.decode_errors += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot decode: %s" % exc)
        n = 0
        first = last = None
        for rl in msg.resource_logs:
            for sl in rl.scope_logs:
                recs = sl.log_records
                n += len(recs)
                if recs:
                    first = first or recs[0].body.string_value
                    last = recs[-1].body.string_value
        with self.lock:
            self.requests += 1
            self.records += n
            self.wire_bytes += len(raw)
            self.gzip_requests += compressed
            if self.first_body is None:
                self.first_body = first
            self.last_body = last or self.last_body

    def snapshot(self):
        with self.lock:
            return {"requests": self.requests, "records": self.records,
                    "wire_bytes": self.wire_bytes, "gzip_requests": self.gzip_requests,
                    "decode_errors": self.decode_errors}

    def stop(self):
        self.server.stop(grace=1).wait()


WORDS = ("request served user session cache miss hit retry upstream timeout connection "
         "opened closed accepted rejected queue worker job started finished payment order "
         "item cart checkout token refresh expired database query slow index scan rows "
         "returned bytes sent received tls handshake client server pool idle busy").split()
LEVELS = ["INFO"] * 8 + ["DEBUG", "WARN", "ERROR"]


TEMPLATES = [
    "GET /api/v1/items/{n} 200 {ms}ms bytes={b} user=u{u} trace={h}",
    "POST /api/v1/orders 201 {ms}ms order_id={n} items={k} total_cents={b} user=u{u}",
    "cache miss key=item:{n} fetched from db in {ms}ms rows={k}",
    "payment authorized order_id={n} amount_cents={b} provider=stripe latency_ms={ms}",
    "connection pool stats active={k} idle={k} waiting=0 max=64",
    "slow query detected duration_ms={ms} table=orders rows_examined={b} user=u{u}",
    "session refreshed user=u{u} session={h} expires_in=3600",
    "upstream timeout service=inventory attempt={k} backoff_ms={ms} trace={h}",
    "job finished name=reindex id={n} duration_ms={ms} processed={b} failed=0",
    "tls handshake completed peer=10.0.{k}.{k} cipher=TLS_AES_128_GCM_SHA256 ms={ms}",
]


def write_lines(path, mib, seed=1, text="varied"):
    """`mib` MiB of 256-byte lines (255 characters and a line feed); returns the count.

    `varied`: a timestamp, level, ids, then words and key=value pairs drawn at random: hard
    for gzip (about 3:1 at level 1). `templated`: the same head, then application messages
    from ten templates with variable ids and numbers, as real service logs look (about
    5:1)."""
    import random
    rng = random.Random(seed)
    n = mib * (1 << 20) // LINE
    with open(path, "w") as f:
        chunk = []
        for i in range(n):
            head = "2026-12-01T10:%02d:%02d.%03dZ %s [worker-%d] seq=%010d id=%08x " % (
                i // 60000 % 60, i // 1000 % 60, i % 1000, rng.choice(LEVELS),
                rng.randrange(16), i, rng.getrandbits(32))
            words = []
            size = len(head)
            while size < LINE:
                if text == "templated":
                    w = rng.choice(TEMPLATES).format(
                        n=rng.randrange(10 ** 7), ms=rng.randrange(1, 900),
                        b=rng.randrange(10 ** 6), u=rng.randrange(10 ** 5),
                        k=rng.randrange(1, 64), h="%016x" % rng.getrandbits(64))
                elif rng.random() < 0.7:
                    w = rng.choice(WORDS)
                else:
                    w = "%s=%d" % (rng.choice(WORDS), rng.randrange(100000))
                words.append(w)
                size += len(w) + 1
            line = (head + " ".join(words))[: LINE - 1]
            chunk.append(line + "\n")
            if len(chunk) == 4096:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))
    assert os.path.getsize(path) == n * LINE
    return n


def config(tmp, endpoint_port, log_glob, extra_buffer="", extra=""):
    health, prom = free_port(), free_port()
    text = extra + (
        "agent:\n  data_dir: '%s/data'\n"
        "collectors:\n  logs:\n    enabled: true\n    paths: ['%s']\n    start_at: beginning\n"
        "telemetryflow: {endpoint: '127.0.0.1:%d'}\n"
        "buffer:\n  path: '%s/buffer'\n%s"
        "health: {listen_address: '127.0.0.1:%d'}\n"
        "prometheus: {listen_address: '127.0.0.1:%d'}\n"
    ) % (tmp, log_glob, endpoint_port, tmp, extra_buffer, health, prom)
    path = os.path.join(tmp, "tfo-agent.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path, prom, text


def start_agent(agent, cfg, tmp):
    subprocess.run([agent, "-c", cfg, "config", "validate"], check=True,
                   stdout=subprocess.DEVNULL, env=clean_env())
    log = open(os.path.join(tmp, "agent.log"), "w")
    return subprocess.Popen([agent, "-c", cfg, "run"], stdout=subprocess.DEVNULL, stderr=log,
                            env=clean_env(), cwd=tmp)


def stop(proc):
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def du(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total


def throughput(agent, base, mib, deadline_s, text, extra=""):
    tmp = tempfile.mkdtemp(prefix="bench-logs-", dir=base)
    try:
        os.makedirs(os.path.join(tmp, "logs"))
        lines = write_lines(os.path.join(tmp, "logs", "app.log"), mib, text=text)
        rx = LogsReceiver()
        cfg, prom, cfg_text = config(tmp, rx.port, os.path.join(tmp, "logs", "*.log"), extra=extra)
        busy = busy_processes(exclude=set())
        load = loadavg()
        t0 = time.monotonic()
        proc = start_agent(agent, cfg, tmp)
        pid = proc.pid
        cpu = None
        while time.monotonic() - t0 < deadline_s:
            if proc.poll() is not None:
                raise SystemExit("agent exited early; see %s/agent.log" % tmp)
            if rx.snapshot()["records"] >= lines:
                cpu = cpu_seconds(pid)
                break
            time.sleep(0.05)
        wall = time.monotonic() - t0
        if cpu is None:
            raise SystemExit("not every line arrived within %ss: %s" % (deadline_s, rx.snapshot()))
        hwm = status_kib(pid, "VmHWM")
        m = agent_metrics(prom)
        stop(proc)
        rx.stop()
        snap = rx.snapshot()
        ok = (snap["records"] == lines and snap["decode_errors"] == 0
              and snap["gzip_requests"] == snap["requests"])
        return {
            "mib": mib, "text": text, "lines": lines, "ok": ok, "receiver": snap,
            "first_line": rx.first_body[:60] if rx.first_body else None,
            "last_line": rx.last_body[:60] if rx.last_body else None,
            "agent_cpu_s": cpu, "wall_s": wall,
            "mib_per_cpu_s": mib / cpu if cpu else None,
            "mib_per_wall_s": mib / wall,
            "cpu_share_of_one_core": cpu / wall,
            "vmhwm_mib": hwm / 1024 if hwm else None,
            "compression_ratio": (mib * (1 << 20)) / max(1, snap["wire_bytes"]),
            "backpressure_s": prom_sum(m, "tfo_agent_buffer_backpressure_seconds_total", signal="logs"),
            "dropped": prom_sum(m, "tfo_agent_dropped_items_total"),
            "load_at_start": load, "busy_at_start": busy, "config": cfg_text,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def backlog(agent, base, mib, deadline_s):
    tmp = tempfile.mkdtemp(prefix="bench-logs-backlog-", dir=base)
    try:
        os.makedirs(os.path.join(tmp, "logs"))
        lines = write_lines(os.path.join(tmp, "logs", "app.log"), mib)
        port = free_port()
        # The logs half of buffer.max_size_mb must hold the encoded backlog (lines plus
        # attributes and framing: about 1.3 x the file).
        max_mb = max(500, mib * 2 * 3 // 2)
        cfg, prom, text = config(tmp, port, os.path.join(tmp, "logs", "*.log"),
                                 "  max_size_mb: %d\n" % max_mb)
        load = loadavg()
        t0 = time.monotonic()
        proc = start_agent(agent, cfg, tmp)
        pid = proc.pid
        wait_port(prom, proc, "self-metrics")
        rss_samples = []
        while True:
            if time.monotonic() - t0 > deadline_s:
                raise SystemExit("backlog not buffered within %ss" % deadline_s)
            m = agent_metrics(prom)
            rss_samples.append(status_kib(pid, "VmRSS") or 0)
            if prom_sum(m, "tfo_agent_logs_records_total") >= lines \
                    and prom_sum(m, "tfo_agent_logs_checkpoint_lag_bytes") == 0:
                break
            time.sleep(0.5)
        buffered_s = time.monotonic() - t0
        hwm_backlog = status_kib(pid, "VmHWM")
        disk = du(os.path.join(tmp, "buffer", "logs"))
        m = agent_metrics(prom)
        buffer_records = prom_sum(m, "tfo_agent_buffer_records", signal="logs")
        rx = LogsReceiver(port)
        t1 = time.monotonic()
        while rx.snapshot()["records"] < lines:
            if time.monotonic() - t1 > deadline_s:
                raise SystemExit("backlog not drained within %ss: %s" % (deadline_s, rx.snapshot()))
            if proc.poll() is not None:
                raise SystemExit("agent exited; see %s/agent.log" % tmp)
            rss_samples.append(status_kib(pid, "VmRSS") or 0)
            time.sleep(0.5)
        drain_s = time.monotonic() - t1
        hwm_end = status_kib(pid, "VmHWM")
        cpu = cpu_seconds(pid)
        stop(proc)
        rx.stop()
        snap = rx.snapshot()
        return {
            "mib": mib, "lines": lines, "max_size_mb": max_mb,
            "ok": snap["records"] == lines and snap["decode_errors"] == 0,
            "buffered_s": buffered_s, "buffer_disk_mib": disk / (1 << 20),
            "buffer_records": buffer_records,
            "vmhwm_backlog_mib": hwm_backlog / 1024 if hwm_backlog else None,
            "drain_s": drain_s, "drain_mib_per_s": mib / drain_s,
            "vmhwm_end_mib": hwm_end / 1024 if hwm_end else None,
            "vmrss_max_sampled_mib": max(rss_samples) / 1024 if rss_samples else None,
            "agent_cpu_s": cpu, "receiver": snap, "load_at_start": load, "config": text,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agent", required=True)
    ap.add_argument("--mib", type=int, default=512, help="throughput file size (MiB)")
    ap.add_argument("--backlog-mib", type=int, default=1024, help="backlog size (MiB); 0 skips")
    ap.add_argument("--runs", type=int, default=1, help="throughput runs")
    ap.add_argument("--text", choices=["varied", "templated"], default="varied",
                    help="line content of the throughput file (see write_lines)")
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where temp dirs go")
    ap.add_argument("--deadline", type=float, default=900)
    ap.add_argument("--config", default="",
                    help="YAML put at the top of the agent's config (a breakdown, e.g. "
                         "'exporter: {otlp: {batch_size: 1000}}'; the result is the default)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.config and not a.config.endswith("\n"):
        a.config += "\n"
    a.agent = os.path.abspath(a.agent)
    out = {"commit": git_commit(os.path.dirname(os.path.abspath(__file__))),
           "throughput": [], "backlog": None}
    for _ in range(a.runs):
        r = throughput(a.agent, a.dir, a.mib, a.deadline, a.text, a.config)
        out["throughput"].append(r)
        if not a.json:
            print("throughput: %d MiB (%s, %d lines of %d B): agent CPU %.2f s -> %.1f MiB/s per core; "
                  "wall %.1f s (%.1f MiB/s, agent %.0f%% of a core); VmHWM %.1f MiB; "
                  "%d requests, file/wire %.1f:1; backpressure %.1f s; dropped %d; ok=%s; load %s"
                  % (r["mib"], r["text"], r["lines"], LINE, r["agent_cpu_s"], r["mib_per_cpu_s"], r["wall_s"],
                     r["mib_per_wall_s"], 100 * r["cpu_share_of_one_core"], r["vmhwm_mib"],
                     r["receiver"]["requests"], r["compression_ratio"], r["backpressure_s"],
                     r["dropped"], r["ok"], r["load_at_start"]), flush=True)
    if a.backlog_mib > 0:
        b = backlog(a.agent, a.dir, a.backlog_mib, a.deadline)
        out["backlog"] = b
        if not a.json:
            print("backlog: %d MiB of lines buffered in %.1f s (%.0f MiB on disk, %d records, "
                  "max_size_mb %d): VmHWM %.1f MiB; drained in %.1f s (%.1f MiB/s): VmHWM %.1f MiB "
                  "(max sampled VmRSS %.1f MiB); ok=%s; load %s"
                  % (b["mib"], b["buffered_s"], b["buffer_disk_mib"], b["buffer_records"],
                     b["max_size_mb"], b["vmhwm_backlog_mib"], b["drain_s"], b["drain_mib_per_s"],
                     b["vmhwm_end_mib"], b["vmrss_max_sampled_mib"], b["ok"], b["load_at_start"]),
                  flush=True)
    if a.json:
        print(json.dumps(out, indent=2, default=str))
    bad = [r for r in out["throughput"] if not r["ok"]] or (out["backlog"] and not out["backlog"]["ok"])
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
