#!/usr/bin/env python3
"""An application instrumented with the official OpenTelemetry Python SDK, as a test peer
for tfo-agent's local OTLP receiver.

Usage:
    otlp_sdk_client.py send --grpc HOST:PORT --http HOST:PORT --service NAME
        Over each transport: spans (a trace of 3), a counter and a log record made by the
        SDK, exported by the SDK's OTLP exporters. Prints one JSON line per export:
        {"transport", "signal", "ok"}.
    otlp_sdk_client.py stream --grpc HOST:PORT --count N --out FILE
        Up to N trace export requests of 5 spans each (span names "r<i>-<j>"), one after
        the other, until the first that fails; the index i of each request the agent
        acknowledged is appended to FILE (flushed) as soon as the answer arrives.
    otlp_sdk_client.py refused --grpc HOST:PORT
        One trace export with grpcio directly; prints {"code", "retry_info"} (code "OK"
        when it was taken), then the SDK exporter's own result for the same spans.
"""

import argparse
import json
import logging
import sys

import grpc
from google.rpc import error_details_pb2, status_pb2
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogs
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GrpcMetrics,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogs
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HttpMetrics,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def resource(service):
    # host.name is set by the application: the agent must not overwrite it.
    return Resource.create({"service.name": service, "host.name": "app-host", "app.attr": "kept"})


def make_spans(res, names):
    mem = InMemorySpanExporter()
    tp = TracerProvider(resource=res)
    tp.add_span_processor(SimpleSpanProcessor(mem))
    tracer = tp.get_tracer("sdk-test")
    with tracer.start_as_current_span(names[0]):
        for n in names[1:]:
            with tracer.start_as_current_span(n):
                pass
    return mem.get_finished_spans()


def make_metrics(res, service):
    reader = InMemoryMetricReader()
    mp = MeterProvider(resource=res, metric_readers=[reader])
    mp.get_meter("sdk-test").create_counter("sdk.requests").add(7, {"route": service})
    return reader.get_metrics_data()


def make_logs(res, service):
    mem = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=res)
    lp.add_log_record_processor(SimpleLogRecordProcessor(mem))
    lp.get_logger("sdk-test").emit(
        severity_number=SeverityNumber.WARN, severity_text="WARN", body="hello from " + service
    )
    return mem.get_finished_logs()


def send(args):
    for transport in ("grpc", "http"):
        service = "%s-%s" % (args.service, transport)
        res = resource(service)
        if transport == "grpc":
            ep = args.grpc
            exporters = (
                GrpcSpans(endpoint=ep, insecure=True, timeout=10),
                GrpcMetrics(endpoint=ep, insecure=True, timeout=10),
                GrpcLogs(endpoint=ep, insecure=True, timeout=10),
            )
        else:
            base = "http://" + args.http
            exporters = (
                HttpSpans(endpoint=base + "/v1/traces", timeout=10),
                HttpMetrics(endpoint=base + "/v1/metrics", timeout=10),
                HttpLogs(endpoint=base + "/v1/logs", timeout=10),
            )
        data = (
            make_spans(res, [service + "-root", service + "-a", service + "-b"]),
            make_metrics(res, service),
            make_logs(res, service),
        )
        for signal, exp, d in zip(("traces", "metrics", "logs"), exporters, data):
            result = exp.export(d)
            ok = getattr(result, "name", str(result)) == "SUCCESS"
            print(json.dumps({"transport": transport, "signal": signal, "ok": ok}), flush=True)
            exp.shutdown()


def stream(args):
    res = resource("sdk-stream")
    exp = GrpcSpans(endpoint=args.grpc, insecure=True, timeout=2)
    with open(args.out, "a") as out:
        for i in range(args.count):
            spans = make_spans(res, ["r%d-%d" % (i, j) for j in range(5)])
            result = exp.export(spans)
            if getattr(result, "name", "") != "SUCCESS":
                break
            out.write("%d\n" % i)
            out.flush()
    exp.shutdown()


def refused(args):
    # About 60 KB: more than a buffer that just refused a 50 KB request has room for.
    spans = make_spans(resource("sdk-refused"), ["x-%d-%s" % (j, "y" * 1000) for j in range(60)])
    req = encode_spans(spans)
    channel = grpc.insecure_channel(args.grpc)
    call = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
    )
    out = {"code": "OK", "retry_info": False}
    try:
        call(req, timeout=10)
    except grpc.RpcError as e:
        out["code"] = e.code().name
        for k, v in e.trailing_metadata() or ():
            if k == "grpc-status-details-bin":
                st = status_pb2.Status.FromString(v)
                for d in st.details:
                    if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                        out["retry_info"] = True
    print(json.dumps(out), flush=True)
    result = GrpcSpans(endpoint=args.grpc, insecure=True, timeout=3).export(spans)
    print(json.dumps({"sdk_result": getattr(result, "name", str(result))}), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--grpc", required=True)
    s.add_argument("--http", required=True)
    s.add_argument("--service", required=True)
    s = sub.add_parser("stream")
    s.add_argument("--grpc", required=True)
    s.add_argument("--count", type=int, required=True)
    s.add_argument("--out", required=True)
    s = sub.add_parser("refused")
    s.add_argument("--grpc", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    {"send": send, "stream": stream, "refused": refused}[args.cmd](args)


if __name__ == "__main__":
    main()
