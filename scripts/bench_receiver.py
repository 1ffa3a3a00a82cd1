"""Benchmarks tfo-agent's local OTLP receiver: receive -> disk buffer -> export.

The agent runs with its shipped defaults (disk buffer, fsync interval, OTLP/gRPC export with
gzip, batch_size 100) plus `receivers.otlp.enabled: true`, exporting to a sink in this
process. A load generator in this process sends pre-encoded ExportTraceServiceRequests of
--spans spans (about 300 bytes each, 6 attributes, like an SDK's batch) to the agent's
gRPC receiver with --concurrency requests in flight.

Two phases:
  throughput  as fast as the agent takes them for --seconds: spans forwarded to the sink
              per second, and per CPU-second of the agent (utime + stime from /proc).
  latency     --rate requests/s (well below saturation) for --seconds: for each request,
              the time from the client sending it to the sink receiving it from the agent
              (the added latency of the hop), p50 / p99 / max.

The sink does not decode: it counts spans by the encoded name field of each span
(`bench-op`, or `lat-<seq>` for the first span of each request, whose sequence number
gives the arrival time of that request). grpcio inflates the agent's gzip itself.
Generator and sink share the host's cores with the agent; their CPU is not counted.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from bench_node import cpu_seconds, free_port, wait_port

PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
OP = b"\x2a\x08bench-op"  # Span.name (field 5, length 8)
LAT = re.compile(rb"\x2a\x0dlat-(\d{9})")


def kv(k, v):
    return common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))


def template(n):
    """An encoded request of n spans; the first is named lat-000000000 (patched per request)."""
    spans = []
    for i in range(n):
        spans.append(trace_pb2.Span(
            trace_id=os.urandom(16), span_id=os.urandom(8), parent_span_id=os.urandom(8),
            name="lat-000000000" if i == 0 else "bench-op",
            kind=trace_pb2.Span.SPAN_KIND_SERVER,
            start_time_unix_nano=1_700_000_000_000_000_000 + i,
            end_time_unix_nano=1_700_000_000_001_000_000 + i,
            attributes=[kv("http.request.method", "GET"), kv("url.path", "/api/v1/items/%d" % i),
                        kv("http.route", "/api/v1/items/{id}"), kv("server.address", "shop.internal"),
                        common_pb2.KeyValue(key="http.response.status_code",
                                            value=common_pb2.AnyValue(int_value=200)),
                        kv("user_agent.original", "bench/1.0")],
            status=trace_pb2.Status(code=trace_pb2.Status.STATUS_CODE_OK)))
    req = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        resource=resource_pb2.Resource(attributes=[kv("service.name", "bench-app"),
                                                   kv("service.version", "1.2.3")]),
        scope_spans=[trace_pb2.ScopeSpans(scope=common_pb2.InstrumentationScope(name="bench"),
                                          spans=spans)])])
    raw = req.SerializeToString()
    at = raw.index(b"lat-000000000") + 4
    return raw, at


class Sink:
    def __init__(self):
        self.lock = threading.Lock()
        self.spans = 0
        self.arrived = {}

    def export(self, raw, context):
        n = raw.count(OP)
        now = time.monotonic()
        marks = LAT.findall(raw)
        with self.lock:
            self.spans += n + len(marks)
            for m in marks:
                self.arrived.setdefault(int(m), now)
        return b""

    def start(self, port):
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8),
                             options=[("grpc.max_receive_message_length", 64 << 20)])
        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(self.export)})
        server.add_generic_rpc_handlers((handler,))
        server.add_insecure_port("127.0.0.1:%d" % port)
        server.start()
        return server


def load(port, raw, at, seconds, concurrency, rate, sent):
    """Sends requests until `seconds` pass; `rate` > 0 paces them. Returns acknowledged count."""
    channel = grpc.insecure_channel("127.0.0.1:%d" % port,
                                    options=[("grpc.max_send_message_length", 64 << 20)])
    call = channel.unary_unary(PATH)
    buf = bytearray(raw)
    lock = threading.Lock()
    state = {"seq": 0, "acked": 0, "refused": 0}
    end = time.monotonic() + seconds
    start = time.monotonic()

    def worker():
        while True:
            with lock:
                now = time.monotonic()
                if now >= end:
                    return
                seq = state["seq"]
                state["seq"] += 1
                buf[at:at + 9] = b"%09d" % seq
                body = bytes(buf)
            if rate > 0:
                due = start + seq / rate
                if due > now:
                    time.sleep(due - now)
            sent[seq] = time.monotonic()
            try:
                call(body, timeout=30)
                with lock:
                    state["acked"] += 1
            except grpc.RpcError:
                with lock:
                    state["refused"] += 1
                time.sleep(0.05)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()
    return state


def run_phase(a, sink, raw, at, rate, seconds, concurrency):
    sent = {}
    before_spans = sink.spans
    t0 = time.monotonic()
    cpu0 = cpu_seconds(a.pid)
    st = load(a.recv_port, raw, at, seconds, concurrency, rate, sent)
    # Drain: wait until every acknowledged request reached the sink (bounded).
    want = before_spans + st["acked"] * a.spans
    end = time.monotonic() + 60
    while sink.spans < want and time.monotonic() < end:
        time.sleep(0.05)
    t1 = time.monotonic()
    cpu1 = cpu_seconds(a.pid)
    spans = sink.spans - before_spans
    lat = sorted(sink.arrived[s] - sent[s] for s in sent if s in sink.arrived)
    return {
        "requests_acked": st["acked"], "requests_refused": st["refused"],
        "spans_forwarded": spans, "wall_s": round(t1 - t0, 2),
        "agent_cpu_s": round(cpu1 - cpu0, 2),
        "spans_per_s": round(spans / (t1 - t0)),
        "spans_per_cpu_s": round(spans / max(cpu1 - cpu0, 1e-9)),
        "latency_ms": {
            "p50": round(lat[len(lat) // 2] * 1e3, 1) if lat else None,
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, 1) if lat else None,
            "max": round(lat[-1] * 1e3, 1) if lat else None,
            "n": len(lat)},
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", required=True)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--spans", type=int, default=512)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rate", type=float, default=40, help="requests/s in the latency phase")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sink = Sink()
    sink_port = free_port()
    server = sink.start(sink_port)
    a.recv_port = free_port()
    tmp = tempfile.mkdtemp(prefix="bench-receiver-")
    cfg = os.path.join(tmp, "tfo-agent.yaml")
    with open(cfg, "w") as f:
        f.write("""
telemetryflow:
  endpoint: "127.0.0.1:%d"
agent:
  data_dir: %s/data
heartbeat:
  enabled: false
collectors:
  system:
    enabled: false
  node_exporter:
    enabled: false
buffer:
  path: %s/buffer
prometheus:
  listen_address: "127.0.0.1:0"
health:
  listen_address: "127.0.0.1:0"
receivers:
  otlp:
    enabled: true
    grpc:
      listen_address: "127.0.0.1:%d"
    http:
      enabled: false
""" % (sink_port, tmp, tmp, a.recv_port))
    proc = subprocess.Popen([a.agent, "-c", cfg, "--log-level", "warn", "run"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(tmp, "agent.log"), "w"))
    a.pid = proc.pid
    try:
        wait_port(a.recv_port, proc, "the agent's receiver")
        raw, at = template(a.spans)
        # Warm-up.
        run_phase(a, sink, raw, at, 0, 2, a.concurrency)
        sink.arrived.clear()
        thr = run_phase(a, sink, raw, at, 0, a.seconds, a.concurrency)
        sink.arrived.clear()
        lat = run_phase(a, sink, raw, at, a.rate, a.seconds, a.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        server.stop(0)
    out = {"cores": os.cpu_count(), "spans_per_request": a.spans,
           "request_bytes": len(raw), "throughput": thr, "latency": lat}
    if a.json:
        print(json.dumps(out))
        return
    print("request: %d spans, %d bytes; %d cores on this host" % (a.spans, len(raw), os.cpu_count()))
    print("throughput: %(spans_per_s)d spans/s forwarded, %(spans_per_cpu_s)d spans per agent "
          "CPU-second (%(agent_cpu_s)s CPU-s in %(wall_s)s s; %(requests_refused)d refused)" % thr)
    l = lat["latency_ms"]
    print("latency at %.0f requests/s (%d spans/s): p50 %s ms, p99 %s ms, max %s ms (n=%d); "
          "agent CPU %.0f%% of a core" % (a.rate, a.rate * a.spans, l["p50"], l["p99"], l["max"],
                                          l["n"], 100 * lat["agent_cpu_s"] / lat["wall_s"]))


if __name__ == "__main__":
    main()
