//! The local OTLP receiver (`receivers.otlp`), black-box: applications instrumented with
//! the official OpenTelemetry Python SDK (tests/peers/otlp_sdk_client.py) send to the
//! agent, and the official-proto peer behind it (tests/peers/otlp_receiver.py) must see
//! their data, resource intact plus the agent's attributes; acknowledged requests survive
//! `kill -9`; a full buffer makes clients retry instead of losing data.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Receiver};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use serde_json::Value;

const GRPC_LISTENING: &str = "OTLP/gRPC receiver listening";
const HTTP_LISTENING: &str = "OTLP/HTTP receiver listening at /v1/metrics, /v1/logs, /v1/traces";

/// The harness config (exporting to `port`) with the receiver on free loopback ports and
/// `buffer` lines added to the `buffer` section.
fn config(port: u16, buffer: &str) -> String {
    let base = common::config("grpc", port, "").replace(
        "buffer:\n  path: ./buffer\n",
        &format!("buffer:\n  path: ./buffer\n{buffer}"),
    );
    format!(
        "{base}\nreceivers:\n  otlp:\n    enabled: true\n    grpc:\n      listen_address: 127.0.0.1:0\n    http:\n      listen_address: 127.0.0.1:0\n"
    )
}

fn sdk_client(args: &[&str]) -> Vec<Value> {
    let out = Command::new(common::python())
        .arg(common::workspace_root().join("tests/peers/otlp_sdk_client.py"))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run otlp_sdk_client.py");
    assert!(out.status.success(), "otlp_sdk_client.py {args:?} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Resources of a recorded request of any signal, each as its attributes key → value.
fn resources(req: &Value) -> Vec<std::collections::BTreeMap<String, String>> {
    let body = &req["request"];
    let list = ["resource_spans", "resource_metrics", "resource_logs"]
        .iter()
        .find_map(|k| body[k].as_array())
        .cloned()
        .unwrap_or_default();
    list.iter()
        .map(|r| {
            r["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    let v = &a["value"];
                    let s = v["string_value"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    (a["key"].as_str().unwrap().to_string(), s)
                })
                .collect()
        })
        .collect()
}

fn service_of(r: &std::collections::BTreeMap<String, String>) -> &str {
    r.get("service.name").map(String::as_str).unwrap_or("")
}

/// Span names in every recorded traces request.
fn span_names(reqs: &[Value]) -> Vec<String> {
    let mut out = Vec::new();
    for r in reqs.iter().filter(|r| r["signal"] == "traces") {
        for rs in r["request"]["resource_spans"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for ss in rs["scope_spans"].as_array().into_iter().flatten() {
                for s in ss["spans"].as_array().into_iter().flatten() {
                    out.push(s["name"].as_str().unwrap_or("").to_string());
                }
            }
        }
    }
    out
}

/// A plain HTTP/1.1 POST: (status, raw headers, body).
fn http_post(addr: SocketAddr, path: &str, ctype: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    http_post_with(addr, path, &format!("Content-Type: {ctype}\r\n"), body)
}

/// A POST with `headers` (each line ending in CRLF); the server may answer before reading
/// the whole body (a refused one).
fn http_post_with(
    addr: SocketAddr,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head, buf[split + 4..].to_vec())
}

fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn sdk_data_over_grpc_and_http_and_json_arrives_with_the_apps_resource() {
    let peer = Receiver::start(None);
    let agent = Agent::start(&config(peer.grpc_port, ""));
    let grpc = agent.bound_address(GRPC_LISTENING).to_string();
    let http = agent.bound_address(HTTP_LISTENING);
    let results = sdk_client(&[
        "send",
        "--grpc",
        &grpc,
        "--http",
        &http.to_string(),
        "--service",
        "sdk-app",
    ]);
    assert_eq!(results.len(), 6, "{results:?}");
    assert!(results.iter().all(|r| r["ok"] == true), "{results:?}");

    // OTLP/JSON: hex ids, 64-bit integers as strings; one span with a bad trace id is
    // rejected by partial success, the other kept.
    let json = r#"{"resourceSpans":[{"resource":{"attributes":[
        {"key":"service.name","value":{"stringValue":"json-app"}},
        {"key":"host.name","value":{"stringValue":"json-host"}}]},
      "scopeSpans":[{"scope":{"name":"t"},"spans":[
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"json-span",
         "kind":2,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000",
         "attributes":[{"key":"n","value":{"intValue":"42"}}]},
        {"traceId":"abcd","spanId":"eee19b7ec3c1b175","name":"bad-span"}]}]}]}"#;
    let (status, _, body) = http_post(http, "/v1/traces", "application/json", json.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        answer["partialSuccess"]["rejectedSpans"]
            .to_string()
            .trim_matches('"'),
        "1",
        "{answer}"
    );
    let (status, _, _) = http_post(http, "/v1/traces", "application/json", b"{not json");
    assert_eq!(status, 400);

    let reqs = peer.wait_until(Duration::from_secs(20), "every SDK signal", |reqs| {
        let want = [
            ("traces", "sdk-app-grpc"),
            ("metrics", "sdk-app-grpc"),
            ("logs", "sdk-app-grpc"),
            ("traces", "sdk-app-http"),
            ("metrics", "sdk-app-http"),
            ("logs", "sdk-app-http"),
            ("traces", "json-app"),
        ];
        want.iter().all(|(sig, svc)| {
            reqs.iter()
                .filter(|r| r["signal"] == *sig)
                .any(|r| resources(r).iter().any(|res| service_of(res) == *svc))
        })
    });
    for r in &reqs {
        for res in resources(r) {
            let svc = service_of(&res).to_string();
            if svc == "tfo-agent" {
                continue;
            }
            let host = if svc == "json-app" {
                "json-host"
            } else {
                "app-host"
            };
            assert_eq!(
                res["host.name"], host,
                "the app's host.name is kept: {res:?}"
            );
            if svc.starts_with("sdk-app") {
                assert_eq!(res["app.attr"], "kept");
                assert_eq!(res["telemetry.sdk.language"], "python");
            }
            // The agent's attributes are added where the app had none.
            assert_eq!(res["telemetryflow.agent.name"], "blackbox-agent", "{res:?}");
            assert_eq!(res["team"], "sre");
            assert!(
                !res.contains_key("service.version"),
                "no agent service.*: {res:?}"
            );
        }
    }
    let names = span_names(&reqs);
    for n in [
        "sdk-app-grpc-root",
        "sdk-app-grpc-a",
        "sdk-app-http-b",
        "json-span",
    ] {
        assert!(names.contains(&n.to_string()), "{n} in {names:?}");
    }
    assert!(!names.contains(&"bad-span".to_string()));
    let json_span = reqs
        .iter()
        .filter(|r| r["signal"] == "traces")
        .flat_map(|r| {
            r["request"]["resource_spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .flat_map(|rs| {
            rs["scope_spans"][0]["spans"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|s| s["name"] == "json-span")
        .unwrap();
    assert_eq!(
        json_span["trace_id"],
        base64(&hex("5b8efff798038103d269b633813fc60c"))
    );
    assert_eq!(json_span["span_id"], base64(&hex("eee19b7ec3c1b174")));
    assert_eq!(json_span["start_time_unix_nano"], "1544712660000000000");
    assert_eq!(json_span["attributes"][0]["value"]["int_value"], "42");
}

#[test]
fn every_acknowledged_request_survives_kill_9() {
    // The collector is down while the application sends: everything waits in the buffer.
    let port = common::free_port();
    let cfg = config(port, "");
    let mut first = Agent::start(&cfg);
    let grpc = first.bound_address(GRPC_LISTENING).to_string();
    let acked = first.dir.path().join("acked.txt");
    let mut client = Command::new(common::python())
        .arg(common::workspace_root().join("tests/peers/otlp_sdk_client.py"))
        .args(["stream", "--grpc", &grpc, "--count", "100000", "--out"])
        .arg(&acked)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let read_acked = |p: &Path| -> Vec<u32> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.parse().ok())
            .collect()
    };
    let end = Instant::now() + Duration::from_secs(30);
    while read_acked(&acked).len() < 40 {
        assert!(Instant::now() < end, "the client got fewer than 40 answers");
        std::thread::sleep(Duration::from_millis(10));
    }
    first.child.kill().unwrap(); // SIGKILL, mid-stream
    first.child.wait().unwrap();
    // The client stops at its first failed export.
    let _ = client.wait();
    let acked = read_acked(&acked);
    assert!(acked.len() >= 40);

    let peer = Receiver::start_on(i32::from(port), -1, None);
    let _second = Agent::start_in(first.dir.path(), &cfg);
    let want: Vec<String> = acked.iter().map(|i| format!("r{i}-0")).collect();
    peer.wait_until(
        Duration::from_secs(30),
        "every acknowledged request",
        |reqs| {
            let names = span_names(reqs);
            want.iter().all(|w| names.contains(w))
        },
    );
}

#[test]
fn a_full_buffer_makes_clients_retry_instead_of_losing_data() {
    // Nothing listens at the collector address: the traces' share of a 1 MiB buffer fills.
    let port = common::free_port();
    let agent = Agent::start(&config(port, "  max_size_mb: 1\n  memory_limit_mb: 1\n"));
    let http = agent.bound_address(HTTP_LISTENING);
    let grpc = agent.bound_address(GRPC_LISTENING).to_string();
    let spans: Vec<Span> = (0..200u64)
        .map(|i| Span {
            trace_id: vec![7; 16],
            span_id: i.to_be_bytes().to_vec(),
            name: format!("{i:0>200}"),
            ..Default::default()
        })
        .collect();
    let body = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let mut accepted = 0;
    let refusal = loop {
        let (status, head, _) = http_post(http, "/v1/traces", "application/x-protobuf", &body);
        match status {
            200 => accepted += 1,
            503 => break head,
            other => panic!("unexpected HTTP {other}: {head}"),
        }
        assert!(
            accepted < 100,
            "a 1 MiB buffer took {accepted} requests of 50 KB"
        );
    };
    assert!(accepted > 0);
    assert!(
        refusal.to_ascii_lowercase().contains("retry-after: 1"),
        "{refusal}"
    );
    let out = sdk_client(&["refused", "--grpc", &grpc]);
    assert_eq!(out[0]["code"], "UNAVAILABLE", "{out:?}");
    assert_eq!(out[0]["retry_info"], true, "{out:?}");
    // The SDK retried until its own timeout and reports the failure (not a silent success).
    assert_eq!(out[1]["sdk_result"], "FAILURE", "{out:?}");

    let metrics = agent.bound_address("serving self-metrics");
    let (_, page) = common::http_get(metrics, "/metrics");
    let refused = common::sample(
        &page,
        "tfo_agent_receiver_refused_items_total{signal=\"traces\",reason=\"full\"}",
    )
    .unwrap_or(0.0);
    assert!(refused >= 250.0, "refused items counted: {refused}");
    let ok = common::sample(
        &page,
        "tfo_agent_receiver_requests_total{transport=\"http\",signal=\"traces\",status=\"ok\"}",
    );
    assert_eq!(ok, Some(f64::from(accepted)));
}

#[test]
fn auth_gzip_and_the_size_limit_over_http() {
    let peer = Receiver::start(None);
    let cfg = config(peer.grpc_port, "").replace(
        "    enabled: true\n    grpc:",
        "    enabled: true\n    max_recv_msg_size_mb: 1\n    auth:\n      bearer_token: t0ken\n    grpc:",
    );
    let agent = Agent::start(&cfg);
    let http = agent.bound_address(HTTP_LISTENING);
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![9; 16],
                    span_id: vec![9; 8],
                    name: "gzipped-span".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec();
    let proto = "Content-Type: application/x-protobuf\r\n";
    let (status, _, _) = http_post_with(http, "/v1/traces", proto, &req);
    assert_eq!(status, 401, "no token");
    let wrong = format!("{proto}Authorization: Bearer t0kem\r\n");
    assert_eq!(http_post_with(http, "/v1/traces", &wrong, &req).0, 401);
    let auth = format!("{proto}Authorization: Bearer t0ken\r\n");
    let gz = format!("{auth}Content-Encoding: gzip\r\n");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&req).unwrap();
    let (status, _, body) = http_post_with(http, "/v1/traces", &gz, &z.finish().unwrap());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // 2 MiB of zeros: a small gzip body that inflates beyond the 1 MiB limit.
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(&vec![0u8; 2 << 20]).unwrap();
    assert_eq!(
        http_post_with(http, "/v1/traces", &gz, &z.finish().unwrap()).0,
        413
    );
    assert_eq!(
        http_post_with(http, "/v1/traces", &auth, &vec![0u8; 2 << 20]).0,
        413
    );
    assert_eq!(http_post_with(http, "/v1/nothing", &auth, &req).0, 404);
    peer.wait_until(Duration::from_secs(20), "the gzipped span", |reqs| {
        span_names(reqs).contains(&"gzipped-span".to_string())
    });
}
