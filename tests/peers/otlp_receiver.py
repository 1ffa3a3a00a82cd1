#!/usr/bin/env python3
"""Scriptable OTLP receiver used as an independent test peer for tfo-agent.

Decodes OTLP/gRPC and OTLP/HTTP export requests with the official
``opentelemetry-proto`` Python package, records every request as one JSON line
and answers according to an optional script of response directives.

Usage:
    otlp_receiver.py --grpc-port N --http-port M --out FILE
                     [--script JSON_FILE] [--host 127.0.0.1] [--verbose]
                     [--max-body-bytes N]

Port 0 picks a free port, port -1 disables that server. Once every enabled
server listens, exactly one line ``READY grpc=<port> http=<port>`` is printed
to stdout (a disabled server is reported as -1).

``--max-body-bytes N`` refuses requests whose body (as on the wire, compressed or not) is
larger than N bytes, like a collector's size limit: HTTP answers 413 (recorded, without
consuming a script directive); gRPC uses grpcio's own ``grpc.max_receive_message_length``,
which answers RESOURCE_EXHAUSTED "Received message larger than max" (not recorded).
"""

import argparse
import base64
import gzip
import json
import math
import signal
import sys
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from google.protobuf import json_format
from google.protobuf.any_pb2 import Any as AnyPb
from google.protobuf.duration_pb2 import Duration
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2


class Signal:
    def __init__(self, name, pb2_module, service_name, req_cls, resp_cls, rejected_field):
        self.name = name
        self.service_full_name = pb2_module.DESCRIPTOR.services_by_name[service_name].full_name
        self.grpc_path = "/%s/Export" % self.service_full_name
        self.req_cls = req_cls
        self.resp_cls = resp_cls
        self.rejected_field = rejected_field


SIGNALS = {
    "metrics": Signal(
        "metrics",
        metrics_service_pb2,
        "MetricsService",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
        "rejected_data_points",
    ),
    "logs": Signal(
        "logs",
        logs_service_pb2,
        "LogsService",
        logs_service_pb2.ExportLogsServiceRequest,
        logs_service_pb2.ExportLogsServiceResponse,
        "rejected_log_records",
    ),
    "traces": Signal(
        "traces",
        trace_service_pb2,
        "TraceService",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
        "rejected_spans",
    ),
}

HTTP_PATHS = {}
for _sig in SIGNALS.values():
    HTTP_PATHS["/v1/" + _sig.name] = _sig
    HTTP_PATHS["/v2/" + _sig.name] = _sig

REJECTED_KEYS = ("rejected_data_points", "rejected_log_records", "rejected_spans", "rejected")

# gRPC code name -> HTTP status, used when a grpc_code directive hits an HTTP request.
GRPC_TO_HTTP = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "UNIMPLEMENTED": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

# HTTP status -> gRPC code name (gRPC's documented HTTP-to-gRPC mapping),
# used when an http_status directive hits a gRPC request.
HTTP_TO_GRPC = {
    400: "INTERNAL",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "UNIMPLEMENTED",
    429: "UNAVAILABLE",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}

VERBOSE = False


def log(msg):
    if VERBOSE:
        sys.stderr.write("otlp_receiver: %s\n" % msg)
        sys.stderr.flush()


def grpc_status_code(name):
    """Accepts a code name ("UNAVAILABLE", case-insensitive) or a number."""
    if isinstance(name, int):
        for c in grpc.StatusCode:
            if c.value[0] == name:
                return c
        raise ValueError("unknown gRPC code %r" % name)
    key = str(name).strip().upper()
    if key.isdigit():
        return grpc_status_code(int(key))
    try:
        return grpc.StatusCode[key]
    except KeyError:
        raise ValueError("unknown gRPC code %r" % name)


def google_rpc_status(code_num, message, retry_delay_ms=None):
    st = status_pb2.Status(code=code_num, message=message or "")
    if retry_delay_ms is not None:
        ms = int(retry_delay_ms)
        ri = error_details_pb2.RetryInfo(
            retry_delay=Duration(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)
        )
        detail = AnyPb()
        detail.Pack(ri)
        st.details.append(detail)
    return st


def http_status_to_rpc_code(status):
    mapping = {
        400: code_pb2.INVALID_ARGUMENT,
        401: code_pb2.UNAUTHENTICATED,
        403: code_pb2.PERMISSION_DENIED,
        404: code_pb2.NOT_FOUND,
        429: code_pb2.RESOURCE_EXHAUSTED,
        500: code_pb2.INTERNAL,
        501: code_pb2.UNIMPLEMENTED,
        502: code_pb2.UNAVAILABLE,
        503: code_pb2.UNAVAILABLE,
        504: code_pb2.DEADLINE_EXCEEDED,
    }
    return mapping.get(status, code_pb2.UNKNOWN)


def build_partial_success(sig, directive):
    ps = directive.get("partial_success")
    resp = sig.resp_cls()
    if ps is None:
        return resp
    rejected = 0
    for key in REJECTED_KEYS:
        if key in ps:
            rejected = int(ps[key])
            break
    setattr(resp.partial_success, sig.rejected_field, rejected)
    resp.partial_success.error_message = str(ps.get("error_message", ""))
    return resp


class Recorder:
    """Owns the script, the shared sequence counter and the output file."""

    def __init__(self, out_path, script):
        self._lock = threading.Lock()
        self._out = open(out_path, "a", encoding="utf-8")
        self._script = list(script)
        self._seq = 0

    def record(self, consume, build):
        """Atomically takes a seq/directive and writes the record built from them."""
        with self._lock:
            self._seq += 1
            seq = self._seq
            directive = {"ok": True}
            if consume and self._script:
                directive = self._script.pop(0)
            record = build(seq, directive)
            self._out.write(json.dumps(record, separators=(",", ":")) + "\n")
            self._out.flush()
        return seq, directive, record

    def close(self):
        with self._lock:
            try:
                self._out.close()
            except Exception:
                pass


def msg_to_dict(msg):
    return json_format.MessageToDict(msg, preserving_proto_field_name=True)


def make_record(seq, transport, path, signal_name, headers, content_encoding, body_bytes,
                response, request, decode_error=None, now=None, extra=None):
    rec = {
        "seq": seq,
        "transport": transport,
        "path": path,
        "signal": signal_name,
        "headers": headers,
        "content_encoding": content_encoding,
        "body_bytes": body_bytes,
        "response": response,
        "request": request,
        "time": now if now is not None else time.time(),
    }
    if decode_error is not None:
        rec["decode_error"] = decode_error
    if extra:
        rec.update(extra)
    return rec


def apply_delay(directive):
    delay = directive.get("delay_ms")
    if delay:
        time.sleep(float(delay) / 1000.0)


# --------------------------------------------------------------------------- gRPC


def grpc_decompress(raw):
    """Returns (encoding or None, decompressed bytes) for one gRPC message payload.

    grpcio does not expose the request's grpc-encoding header, and with
    per-message decompression disabled the payload of a compressed message is
    passed through as is, so the encoding is recognised by its magic bytes. An
    OTLP export request never starts with 0x1f (wire type 7 does not exist) and
    in practice starts with 0x0a, so this is unambiguous for gzip and safe for
    zlib (deflate) / zstd.
    """
    if raw[:2] == b"\x1f\x8b":
        return "gzip", gzip.decompress(raw)
    if len(raw) >= 2 and raw[0] == 0x78 and ((raw[0] << 8) | raw[1]) % 31 == 0:
        try:
            return "deflate", zlib.decompress(raw)
        except zlib.error:
            pass
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        raise ValueError("zstd-compressed gRPC message: zstd is not supported by this receiver")
    return None, raw


class GrpcHandler(grpc.GenericRpcHandler):
    def __init__(self, recorder):
        self._recorder = recorder
        self._by_path = {sig.grpc_path: sig for sig in SIGNALS.values()}

    def service(self, handler_call_details):
        sig = self._by_path.get(handler_call_details.method)
        if sig is None:
            return None  # grpcio answers UNIMPLEMENTED
        path = handler_call_details.method

        def export(raw, context):
            return self._export(sig, path, raw, context)

        # No request_deserializer: the handler gets the raw message bytes (still
        # compressed, see grpc.per_message_decompression), so decode failures can
        # be recorded too.
        return grpc.unary_unary_rpc_method_handler(
            export, request_deserializer=None, response_serializer=lambda m: m.SerializeToString()
        )

    def _export(self, sig, path, raw, context):
        now = time.time()
        headers = {}
        for key, value in context.invocation_metadata() or ():
            key = key.lower()
            if isinstance(value, bytes):
                value = base64.b64encode(value).decode("ascii")
            headers[key] = headers[key] + ", " + value if key in headers else value

        msg = None
        decode_error = None
        message_encoding = None
        decoded_bytes = None
        try:
            message_encoding, body = grpc_decompress(raw)
            decoded_bytes = len(body)
            msg = sig.req_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001
            decode_error = "%s: %s" % (type(exc).__name__, exc)

        def build(seq, directive):
            response = directive if decode_error is None else {
                "grpc_code": "INVALID_ARGUMENT", "message": decode_error}
            return make_record(
                seq, "grpc", path, sig.name, headers, None, len(raw), response,
                msg_to_dict(msg) if msg is not None else None, decode_error, now,
                {"decoded_bytes": decoded_bytes, "grpc_message_encoding": message_encoding},
            )

        seq, directive, _ = self._recorder.record(decode_error is None, build)
        log("grpc #%d %s %s" % (seq, path, json.dumps(directive)))

        if decode_error is not None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "cannot decode request: " + decode_error)

        apply_delay(directive)

        code_name = directive.get("grpc_code")
        if code_name is None and directive.get("http_status") is not None:
            status = int(directive["http_status"])
            if status >= 300:
                code_name = HTTP_TO_GRPC.get(status, "UNKNOWN")
        if code_name is not None:
            code = grpc_status_code(code_name)
            if code != grpc.StatusCode.OK:
                message = str(directive.get("message", "scripted %s" % code.name))
                if directive.get("retry_delay_ms") is not None:
                    st = google_rpc_status(code.value[0], message, directive["retry_delay_ms"])
                    context.abort_with_status(rpc_status.to_status(st))
                context.abort(code, message)

        return build_partial_success(sig, directive)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def start_grpc(host, port, recorder, tls=None, max_body=None):
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=32),
        handlers=[GrpcHandler(recorder)],
        options=[
            ("grpc.max_receive_message_length", max_body or 64 * 1024 * 1024),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # Hand compressed messages to the handler as they came on the wire so the
            # request compression is observable (grpcio hides the grpc-encoding header).
            ("grpc.per_message_decompression", 0),
        ],
        maximum_concurrent_rpcs=None,
    )
    addr = "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)
    if tls is None:
        bound = server.add_insecure_port(addr)
    else:
        cert, key, client_ca = tls
        creds = grpc.ssl_server_credentials(
            [(_read(key), _read(cert))],
            root_certificates=_read(client_ca) if client_ca else None,
            require_client_auth=bool(client_ca),
        )
        bound = server.add_secure_port(addr, creds)
    if bound == 0:
        raise SystemExit("cannot bind gRPC server on %s" % addr)
    server.start()
    return server, bound


# --------------------------------------------------------------------------- HTTP


class HttpHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "otlp-test-receiver/1"
    recorder = None  # set on the subclass
    max_body = None  # --max-body-bytes, set on the subclass

    def log_message(self, fmt, *args):  # noqa: D401
        log("http " + (fmt % args))

    def _read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            while True:
                line = self.rfile.readline()
                if not line:
                    break
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until blank line
                    while True:
                        trailer = self.rfile.readline()
                        if not trailer or trailer in (b"\r\n", b"\n"):
                            break
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send(self, status, body, content_type="application/x-protobuf", extra_headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra_headers:
            self.send_header(k, v)
        self.end_headers()
        if body:
            self.wfile.write(body)
        self.wfile.flush()

    def _headers_dict(self):
        headers = {}
        for key, value in self.headers.items():
            key = key.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        return headers

    def do_POST(self):  # noqa: N802
        now = time.time()
        raw = self._read_body()
        path = self.path.split("?", 1)[0]
        headers = self._headers_dict()
        encoding = self.headers.get("Content-Encoding")
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        is_json = content_type == "application/json"
        resp_type = "application/json" if is_json else "application/x-protobuf"
        rec = self.recorder

        sig = HTTP_PATHS.get(path)
        if sig is None:
            rec.record(False, lambda seq, _d: make_record(
                seq, "http", path, None, headers, encoding, len(raw),
                {"http_status": 404}, None, None, now, {"decoded_bytes": None}))
            self._send(404, b"not found\n", "text/plain")
            return

        if self.max_body is not None and len(raw) > self.max_body:
            rec.record(False, lambda seq, _d: make_record(
                seq, "http", path, sig.name, headers, encoding, len(raw),
                {"http_status": 413}, None, None, now, {"decoded_bytes": None}))
            self._send(413, b"request body larger than %d bytes\n" % self.max_body, "text/plain")
            return

        msg = None
        decode_error = None
        decoded_bytes = None
        try:
            body = raw
            enc = (encoding or "").strip().lower()
            if enc == "gzip":
                body = gzip.decompress(raw)
            elif enc == "deflate":
                body = zlib.decompress(raw)
            elif enc not in ("", "identity"):
                raise ValueError("unsupported Content-Encoding %r" % encoding)
            decoded_bytes = len(body)
            if is_json:
                msg = json_format.Parse(body.decode("utf-8"), sig.req_cls())
            else:
                msg = sig.req_cls.FromString(body)
        except Exception as exc:  # noqa: BLE001
            msg = None
            decode_error = "%s: %s" % (type(exc).__name__, exc)

        def build(seq, directive):
            response = directive if decode_error is None else {"http_status": 400}
            return make_record(
                seq, "http", path, sig.name, headers, encoding, len(raw), response,
                msg_to_dict(msg) if msg is not None else None, decode_error, now,
                {"decoded_bytes": decoded_bytes},
            )

        seq, directive, _ = rec.record(decode_error is None, build)
        log("http #%d %s %s" % (seq, path, json.dumps(directive)))

        if decode_error is not None:
            st = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT,
                                   message="cannot decode request: " + decode_error)
            self._send(400, self._encode(st, is_json), resp_type)
            return

        apply_delay(directive)

        status = directive.get("http_status")
        if status is None and directive.get("grpc_code") is not None:
            code = grpc_status_code(directive["grpc_code"])
            if code != grpc.StatusCode.OK:
                status = GRPC_TO_HTTP.get(code.name, 500)
        if status is not None and int(status) >= 300:
            status = int(status)
            extra = []
            retry_after = directive.get("retry_after")
            if retry_after is None and directive.get("retry_delay_ms") is not None:
                retry_after = str(int(math.ceil(float(directive["retry_delay_ms"]) / 1000.0)))
            if retry_after is not None:
                extra.append(("Retry-After", str(retry_after)))
            message = str(directive.get("message", "scripted HTTP %d" % status))
            st = status_pb2.Status(code=http_status_to_rpc_code(status), message=message)
            self._send(status, self._encode(st, is_json), resp_type, extra)
            return

        resp = build_partial_success(sig, directive)
        self._send(int(status) if status is not None else 200, self._encode(resp, is_json), resp_type)

    @staticmethod
    def _encode(msg, is_json):
        if is_json:
            return json_format.MessageToJson(msg).encode("utf-8")
        return msg.SerializeToString()

    def _method_not_allowed(self):
        self._read_body()
        self._send(405, b"method not allowed\n", "text/plain", [("Allow", "POST")])

    do_GET = do_PUT = do_DELETE = do_PATCH = _method_not_allowed  # noqa: N815


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def start_http(host, port, recorder, tls=None, max_body=None):
    handler_cls = type("BoundHttpHandler", (HttpHandler,), {"recorder": recorder, "max_body": max_body})
    if ":" in host:
        import socket

        server_cls = type("_HttpServer6", (_HttpServer,), {"address_family": socket.AF_INET6})
    else:
        server_cls = _HttpServer
    httpd = server_cls((host, port), handler_cls)
    if tls is not None:
        import ssl

        cert, key, client_ca = tls
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        if client_ca:
            ctx.load_verify_locations(client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return httpd, httpd.server_address[1]


# --------------------------------------------------------------------------- main


def load_script(path):
    if not path:
        return []
    with open(path, "r", encoding="utf-8") as f:
        script = json.load(f)
    if not isinstance(script, list) or not all(isinstance(d, dict) for d in script):
        raise SystemExit("--script must contain a JSON list of objects")
    for d in script:
        if d.get("grpc_code") is not None:
            grpc_status_code(d["grpc_code"])  # validate early
    return script


def main(argv=None):
    global VERBOSE
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grpc-port", type=int, required=True, help="0 = free port, -1 = disabled")
    ap.add_argument("--http-port", type=int, required=True, help="0 = free port, -1 = disabled")
    ap.add_argument("--out", required=True, help="JSON-lines file, appended to")
    ap.add_argument("--script", help="JSON file with a list of response directives")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    ap.add_argument("--max-body-bytes", type=int, help="refuse larger requests (HTTP 413, gRPC RESOURCE_EXHAUSTED)")
    ap.add_argument("--tls-cert", help="serve TLS on both transports with this PEM certificate")
    ap.add_argument("--tls-key", help="PEM private key for --tls-cert")
    ap.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mTLS)")
    args = ap.parse_args(argv)
    VERBOSE = args.verbose

    recorder = Recorder(args.out, load_script(args.script))
    stop = threading.Event()

    def on_signal(_signum, _frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    tls = (args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None
    grpc_server, grpc_port = (None, -1)
    httpd, http_port = (None, -1)
    if args.grpc_port >= 0:
        grpc_server, grpc_port = start_grpc(args.host, args.grpc_port, recorder, tls, args.max_body_bytes)
    if args.http_port >= 0:
        httpd, http_port = start_http(args.host, args.http_port, recorder, tls, args.max_body_bytes)

    sys.stdout.write("READY grpc=%d http=%d\n" % (grpc_port, http_port))
    sys.stdout.flush()

    while not stop.wait(0.2):
        pass

    if httpd is not None:
        httpd.shutdown()
        httpd.server_close()
    if grpc_server is not None:
        grpc_server.stop(grace=0.5).wait(2)
    recorder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
