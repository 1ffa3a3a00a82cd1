"""Self-test for otlp_receiver.py: run with `python -m pytest tests/peers`."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2

HERE = os.path.dirname(os.path.abspath(__file__))
RECEIVER = os.path.join(HERE, "otlp_receiver.py")
METRICS_PATH = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export"


def metrics_request(value=42.5, name="system.cpu.utilization"):
    return metrics_service_pb2.ExportMetricsServiceRequest(
        resource_metrics=[
            metrics_pb2.ResourceMetrics(
                resource=resource_pb2.Resource(
                    attributes=[
                        common_pb2.KeyValue(
                            key="host.name", value=common_pb2.AnyValue(string_value="test-host")
                        )
                    ]
                ),
                scope_metrics=[
                    metrics_pb2.ScopeMetrics(
                        scope=common_pb2.InstrumentationScope(name="tfo-agent-test"),
                        metrics=[
                            metrics_pb2.Metric(
                                name=name,
                                gauge=metrics_pb2.Gauge(
                                    data_points=[
                                        metrics_pb2.NumberDataPoint(
                                            time_unix_nano=1_700_000_000_000_000_000,
                                            as_double=value,
                                        )
                                    ]
                                ),
                            )
                        ],
                    )
                ],
            )
        ]
    )


def logs_request():
    return logs_service_pb2.ExportLogsServiceRequest(
        resource_logs=[
            logs_pb2.ResourceLogs(
                scope_logs=[
                    logs_pb2.ScopeLogs(
                        log_records=[
                            logs_pb2.LogRecord(
                                time_unix_nano=1, body=common_pb2.AnyValue(string_value="hello")
                            )
                        ]
                    )
                ]
            )
        ]
    )


class Receiver:
    def __init__(self, tmp_path, script=None):
        self.out = tmp_path / "out.jsonl"
        args = [sys.executable, RECEIVER, "--grpc-port", "0", "--http-port", "0", "--out", str(self.out)]
        if script is not None:
            script_file = tmp_path / "script.json"
            script_file.write_text(json.dumps(script))
            args += ["--script", str(script_file)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("READY "), line
        fields = dict(kv.split("=") for kv in line.split()[1:])
        self.grpc_port = int(fields["grpc"])
        self.http_port = int(fields["http"])
        assert self.grpc_port > 0 and self.http_port > 0
        self.channel = grpc.insecure_channel("127.0.0.1:%d" % self.grpc_port)

    def records(self):
        if not self.out.exists():
            return []
        with open(self.out) as f:
            return [json.loads(l) for l in f if l.strip()]

    def http_post(self, path, body, headers=None):
        req = urllib.request.Request(
            "http://127.0.0.1:%d%s" % (self.http_port, path), data=body, method="POST",
            headers=headers or {"Content-Type": "application/x-protobuf"},
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def stop(self):
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=5)
            assert rc == 0
        self.proc.stdout.close()


@pytest.fixture
def make_receiver(tmp_path):
    started = []

    def factory(script=None):
        r = Receiver(tmp_path, script)
        started.append(r)
        return r

    yield factory
    for r in started:
        r.stop()


def test_grpc_and_http_metrics_recorded(make_receiver):
    r = make_receiver()
    stub = metrics_service_pb2_grpc.MetricsServiceStub(r.channel)
    # grpc-python only compresses messages above a size threshold: use a long name.
    big = metrics_request(1.5, name="system.cpu.utilization." + "x" * 2000)
    resp = stub.Export(big, metadata=[("x-tenant", "acme")], compression=grpc.Compression.Gzip, timeout=5)
    assert not resp.HasField("partial_success")

    body = gzip.compress(metrics_request(2.5).SerializeToString())
    status, headers, payload = r.http_post(
        "/v1/metrics", body,
        {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip", "X-Tenant": "acme"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/x-protobuf"
    metrics_service_pb2.ExportMetricsServiceResponse.FromString(payload)

    recs = r.records()
    assert [x["seq"] for x in recs] == [1, 2]
    g, h = recs
    assert g["transport"] == "grpc" and g["path"] == METRICS_PATH and g["signal"] == "metrics"
    assert g["headers"]["x-tenant"] == "acme"
    assert g["content_encoding"] is None
    assert g["response"] == {"ok": True}
    assert g["grpc_message_encoding"] == "gzip"
    assert g["decoded_bytes"] == big.ByteSize() and g["body_bytes"] < g["decoded_bytes"]
    dp = g["request"]["resource_metrics"][0]["scope_metrics"][0]["metrics"][0]["gauge"]["data_points"][0]
    assert dp["as_double"] == 1.5 and dp["time_unix_nano"] == "1700000000000000000"

    assert h["transport"] == "http" and h["path"] == "/v1/metrics" and h["signal"] == "metrics"
    assert h["headers"]["x-tenant"] == "acme" and h["content_encoding"] == "gzip"
    assert h["body_bytes"] == len(body)
    assert h["decoded_bytes"] == metrics_request(2.5).ByteSize()
    m = h["request"]["resource_metrics"][0]["scope_metrics"][0]["metrics"][0]
    assert m["name"] == "system.cpu.utilization" and m["gauge"]["data_points"][0]["as_double"] == 2.5
    assert isinstance(h["time"], float)


def test_http_errors_and_decode_error(make_receiver):
    r = make_receiver([{"http_status": 503, "retry_after": "2", "message": "busy"}])
    status, headers, payload = r.http_post("/v1/metrics", metrics_request().SerializeToString())
    assert status == 503
    assert headers["Retry-After"] == "2"
    st = status_pb2.Status.FromString(payload)
    assert st.message == "busy"

    status, _, _ = r.http_post("/v1/metrics", metrics_request().SerializeToString())
    assert status == 200  # script exhausted

    status, _, payload = r.http_post("/v1/metrics", b"\xff\xff\xff garbage")
    assert status == 400
    assert "decode" in status_pb2.Status.FromString(payload).message

    status, _, _ = r.http_post("/v1/nope", b"")
    assert status == 404

    recs = r.records()
    assert recs[0]["response"]["http_status"] == 503
    assert recs[0]["request"]["resource_metrics"]  # errors still record the decoded request
    assert recs[1]["response"] == {"ok": True}
    assert "decode_error" in recs[2] and recs[2]["request"] is None
    assert recs[3]["response"] == {"http_status": 404} and recs[3]["signal"] is None


def test_grpc_unavailable_with_retry_info(make_receiver):
    r = make_receiver([{"grpc_code": "UNAVAILABLE", "retry_delay_ms": 1500, "message": "try later"}])
    stub = metrics_service_pb2_grpc.MetricsServiceStub(r.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Export(metrics_request(), timeout=5)
    err = info.value
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert err.details() == "try later"
    details_bin = dict(err.trailing_metadata())["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(details_bin)
    assert st.code == grpc.StatusCode.UNAVAILABLE.value[0]
    ri = error_details_pb2.RetryInfo()
    assert st.details[0].Unpack(ri)
    assert ri.retry_delay.seconds == 1 and ri.retry_delay.nanos == 500_000_000

    stub.Export(metrics_request(), timeout=5)  # script exhausted -> OK
    recs = r.records()
    assert recs[1]["grpc_message_encoding"] is None
    assert recs[1]["body_bytes"] == recs[1]["decoded_bytes"] == metrics_request().ByteSize()
    assert recs[0]["response"]["grpc_code"] == "UNAVAILABLE"
    assert recs[0]["request"]["resource_metrics"]
    assert recs[1]["response"] == {"ok": True}


def test_partial_success_both_transports_and_delay(make_receiver):
    r = make_receiver([
        {"partial_success": {"rejected_data_points": 3, "error_message": "bad points"}},
        {"partial_success": {"rejected_log_records": 2, "error_message": "bad logs"}},
        {"delay_ms": 300},
    ])
    stub = metrics_service_pb2_grpc.MetricsServiceStub(r.channel)
    resp = stub.Export(metrics_request(), timeout=5)
    assert resp.partial_success.rejected_data_points == 3
    assert resp.partial_success.error_message == "bad points"

    status, _, payload = r.http_post("/v1/logs", logs_request().SerializeToString())
    assert status == 200
    resp = logs_service_pb2.ExportLogsServiceResponse.FromString(payload)
    assert resp.partial_success.rejected_log_records == 2

    logs_stub = logs_service_pb2_grpc.LogsServiceStub(r.channel)
    start = time.monotonic()
    logs_stub.Export(logs_request(), timeout=5)
    assert time.monotonic() - start >= 0.3
    recs = r.records()
    assert [x["signal"] for x in recs] == ["metrics", "logs", "logs"]
    assert recs[2]["path"] == "/opentelemetry.proto.collector.logs.v1.LogsService/Export"


def test_grpc_decode_error_and_code_mapping(make_receiver):
    r = make_receiver([{"grpc_code": "RESOURCE_EXHAUSTED"}, {"http_status": 503}])
    raw_export = r.channel.unary_unary(METRICS_PATH, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as info:
        raw_export(b"\xff\xff\xff garbage", timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # grpc_code on an HTTP request maps to an HTTP status, http_status on gRPC to a code.
    status, _, _ = r.http_post("/v2/metrics", metrics_request().SerializeToString())
    assert status == 429
    stub = metrics_service_pb2_grpc.MetricsServiceStub(r.channel)
    with pytest.raises(grpc.RpcError) as info:
        stub.Export(metrics_request(), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    recs = r.records()
    assert "decode_error" in recs[0] and recs[0]["request"] is None
    assert recs[1]["response"] == {"grpc_code": "RESOURCE_EXHAUSTED"} and recs[1]["path"] == "/v2/metrics"
    assert recs[2]["response"] == {"http_status": 503}


def test_traces_over_grpc_and_http(make_receiver):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
    from opentelemetry.proto.trace.v1 import trace_pb2

    def spans(name):
        return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
            scope_spans=[trace_pb2.ScopeSpans(spans=[trace_pb2.Span(
                trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name=name)])])])

    r = make_receiver()
    stub = trace_service_pb2_grpc.TraceServiceStub(r.channel)
    resp = stub.Export(spans("via-grpc"), timeout=5)
    assert not resp.HasField("partial_success")
    status, headers, payload = r.http_post("/v1/traces", spans("via-http").SerializeToString())
    assert status == 200
    trace_service_pb2.ExportTraceServiceResponse.FromString(payload)
    g, h = r.records()
    assert g["signal"] == "traces" and g["path"].endswith("TraceService/Export")
    assert h["signal"] == "traces" and h["path"] == "/v1/traces"
    assert g["request"]["resource_spans"][0]["scope_spans"][0]["spans"][0]["name"] == "via-grpc"
    assert h["request"]["resource_spans"][0]["scope_spans"][0]["spans"][0]["name"] == "via-http"
