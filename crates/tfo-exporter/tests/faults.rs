//! What the exporter makes of a broken exchange, against real peers on loopback: a tonic
//! OTLP server, a TCP proxy that resets the connection mid-call, a raw HTTP/2 server that
//! sends RST_STREAM, GOAWAY or a plain-HTTP answer, and raw HTTP/1.1 servers that redirect,
//! hang up, or answer with huge bodies and hints.
//!
//! These tests pin the classification contract of docs/export.md ("Outcomes"): whatever
//! the transport library invents when the connection breaks is an outage; a refusal names
//! the fix; nothing follows a redirect; server hints are capped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::ResourceMetrics;
use prost::Message;
use tfo_exporter::outcome::MAX_SERVER_DELAY;
use tfo_exporter::tls::TlsSettings;
use tfo_exporter::{Exporter, ExporterSettings, FailureClass, Outcome, Signal};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

const KEY_ID: &str = "tfk_test_key";
const SECRET: &str = "tfs_top_secret_value";

fn settings(endpoint: String) -> ExporterSettings {
    ExporterSettings {
        endpoint,
        gzip: false,
        timeout: Duration::from_secs(5),
        tls: None,
        headers: vec![
            ("X-TelemetryFlow-Key-ID".into(), KEY_ID.into()),
            ("X-TelemetryFlow-Key-Secret".into(), SECRET.into()),
        ],
        http_path_version: "v2",
        user_agent: "tfo-agent-test".into(),
    }
}

fn grpc(addr: SocketAddr) -> Exporter {
    Exporter::grpc(&settings(format!("{addr}"))).expect("gRPC exporter")
}

fn http(addr: SocketAddr) -> Exporter {
    Exporter::http(&settings(format!("http://{addr}"))).expect("HTTP exporter")
}

/// A small, valid ExportMetricsServiceRequest.
fn body() -> Bytes {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics::default(); 3],
    }
    .encode_to_vec()
    .into()
}

#[track_caller]
fn assert_class(o: &Outcome, want: FailureClass, ctx: &str) {
    assert_eq!(o.class(), Some(want), "{ctx}: {o:?}");
}

fn reason(o: &Outcome) -> &str {
    match o {
        Outcome::Retry { reason, .. }
        | Outcome::Permanent { reason }
        | Outcome::TooLarge { reason } => reason,
        Outcome::Delivered { message, .. } => message,
    }
}

fn retry_after(o: &Outcome) -> Option<Duration> {
    match o {
        Outcome::Retry { retry_after, .. } => *retry_after,
        _ => None,
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let a = l.local_addr().expect("addr");
    (l, a)
}

// ---------------------------------------------------------------------------------------
// A real tonic OTLP metrics server, scripted per call.

type Answer = Option<Result<ExportMetricsServiceResponse, tonic::Status>>;

struct Collector {
    /// `None` holds the call open forever.
    answer: Arc<dyn Fn(usize) -> Answer + Send + Sync>,
    calls: Arc<AtomicUsize>,
    arrived: Arc<Notify>,
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        _req: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_one();
        match (self.answer)(n) {
            Some(r) => r.map(tonic::Response::new),
            None => std::future::pending().await,
        }
    }
}

/// Starts the server; returns its address and a notification fired when a call arrives.
async fn tonic_server(
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
) -> (SocketAddr, Arc<Notify>) {
    let (l, addr) = listener().await;
    let arrived = Arc::new(Notify::new());
    let svc = MetricsServiceServer::new(Collector {
        answer: Arc::new(answer),
        calls: Arc::new(AtomicUsize::new(0)),
        arrived: arrived.clone(),
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    (addr, arrived)
}

/// A TCP proxy to `upstream` that forwards bytes both ways until `reset` fires, then
/// resets the client's connection (SO_LINGER 0: an RST, not a FIN).
async fn resetting_proxy(upstream: SocketAddr, reset: Arc<Notify>) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = l.accept().await else {
                return;
            };
            let reset = reset.clone();
            tokio::spawn(async move {
                client.set_zero_linger().expect("SO_LINGER 0");
                let mut server = TcpStream::connect(upstream).await.expect("upstream");
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = reset.notified() => {}
                }
                drop(client);
            });
        }
    });
    addr
}

#[tokio::test]
async fn grpc_server_statuses_are_classified() {
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};
    let script: Vec<(Status, Option<FailureClass>, &str)> = vec![
        (
            Status::unauthenticated("bad key"),
            Some(FailureClass::Refused),
            "telemetryflow.api_key_id / api_key_secret",
        ),
        (
            Status::permission_denied("not yours"),
            Some(FailureClass::Refused),
            "telemetryflow.api_key_id / api_key_secret",
        ),
        (
            Status::unimplemented("nope"),
            Some(FailureClass::Refused),
            "telemetryflow.endpoint",
        ),
        (
            Status::unavailable("down"),
            Some(FailureClass::Outage),
            "down",
        ),
        // Sent by the server, so the spec's retryable class, not our own timeout.
        (
            Status::deadline_exceeded("slow backend"),
            Some(FailureClass::Transient),
            "slow backend",
        ),
        (
            Status::aborted("conflict"),
            Some(FailureClass::Transient),
            "conflict",
        ),
        (
            Status::resource_exhausted("no RetryInfo"),
            None,
            "no RetryInfo",
        ),
        (Status::invalid_argument("bad data"), None, "bad data"),
        (Status::internal("server bug"), None, "server bug"),
        (
            Status::with_error_details(
                Code::ResourceExhausted,
                "slow down",
                ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
            ),
            Some(FailureClass::Outage),
            "slow down",
        ),
    ];
    let statuses: Vec<Status> = script.iter().map(|(s, _, _)| s.clone()).collect();
    let (addr, _) = tonic_server(move |n| Some(Err(statuses[n].clone()))).await;
    let exp = grpc(addr);
    for (status, want, needle) in &script {
        let o = exp.send(Signal::Metrics, body()).await;
        assert_eq!(o.class(), *want, "{status:?}: {o:?}");
        if want.is_none() {
            assert!(matches!(o, Outcome::Permanent { .. }), "{status:?}: {o:?}");
        }
        assert!(reason(&o).contains(needle), "{status:?}: {o:?}");
    }
    // The last one carried RetryInfo 1.5s.
    let (addr, _) = tonic_server(|_| {
        Some(Err(Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
        )))
    })
    .await;
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert_eq!(retry_after(&o), Some(Duration::from_millis(1500)), "{o:?}");
}

#[tokio::test]
async fn grpc_delivered_with_partial_success() {
    let (addr, _) = tonic_server(|_| {
        Some(Ok(ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 4,
                error_message: "bad points".into(),
            }),
        }))
    })
    .await;
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert_eq!(
        o,
        Outcome::Delivered {
            rejected: 4,
            message: "bad points".into()
        }
    );
}

#[tokio::test]
async fn grpc_unknown_service_is_refused() {
    // The server serves metrics only: the logs service is UNIMPLEMENTED, from tonic's router.
    let (addr, _) = tonic_server(|_| Some(Ok(Default::default()))).await;
    let o = grpc(addr).send(Signal::Logs, body()).await;
    assert_class(&o, FailureClass::Refused, "logs to a metrics-only server");
    assert!(reason(&o).contains("telemetryflow.endpoint"), "{o:?}");
}

#[tokio::test]
async fn grpc_huge_retry_info_is_capped_without_panic() {
    use tonic::{Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};
    let (addr, _) = tonic_server(|n| {
        Some(Err(match n {
            // tonic-types clamps this to the largest protobuf Duration (10,000 years).
            0 => Status::with_error_details(
                Code::Unavailable,
                "come back in ten thousand years",
                ErrorDetails::with_retry_info(Some(Duration::MAX)),
            ),
            // A negative delay of i64::MIN seconds: a naive conversion negates it.
            1 => Status::with_details(
                Code::ResourceExhausted,
                "negative",
                retry_info_details(i64::MIN, 0).into(),
            ),
            _ => Status::with_details(
                Code::ResourceExhausted,
                "positive overflow",
                retry_info_details(i64::MAX, i32::MAX).into(),
            ),
        }))
    })
    .await;
    let exp = grpc(addr);
    let o = exp.send(Signal::Metrics, body()).await;
    assert_class(&o, FailureClass::Outage, "UNAVAILABLE");
    assert_eq!(retry_after(&o), Some(MAX_SERVER_DELAY));
    let o = exp.send(Signal::Metrics, body()).await;
    assert_class(
        &o,
        FailureClass::Outage,
        "RESOURCE_EXHAUSTED, negative RetryInfo",
    );
    assert_eq!(retry_after(&o), Some(Duration::ZERO));
    let o = exp.send(Signal::Metrics, body()).await;
    assert_class(
        &o,
        FailureClass::Outage,
        "RESOURCE_EXHAUSTED, huge RetryInfo",
    );
    assert_eq!(retry_after(&o), Some(MAX_SERVER_DELAY));
}

/// `google.rpc.Status` details with one `RetryInfo`, encoded by hand so that any
/// `(seconds, nanos)` can be sent.
fn retry_info_details(seconds: i64, nanos: i32) -> Vec<u8> {
    use prost::encoding::{WireType, bytes, encode_key, encode_varint, int32, int64, string};
    let mut dur = Vec::new();
    int64::encode(1, &seconds, &mut dur);
    int32::encode(2, &nanos, &mut dur);
    let mut info = Vec::new();
    encode_key(1, WireType::LengthDelimited, &mut info);
    encode_varint(dur.len() as u64, &mut info);
    info.extend_from_slice(&dur);
    let mut any = Vec::new();
    string::encode(
        1,
        &"type.googleapis.com/google.rpc.RetryInfo".to_string(),
        &mut any,
    );
    bytes::encode(2, &info, &mut any);
    let mut status = Vec::new();
    int32::encode(1, &8, &mut status);
    encode_key(3, WireType::LengthDelimited, &mut status);
    encode_varint(any.len() as u64, &mut status);
    status.extend_from_slice(&any);
    status
}

#[tokio::test]
async fn grpc_connection_reset_mid_call_is_an_outage() {
    // The server holds the call; once it has arrived, the proxy resets the connection.
    let (upstream, arrived) = tonic_server(|_| None).await;
    let proxy = resetting_proxy(upstream, arrived).await;
    let o = grpc(proxy).send(Signal::Metrics, body()).await;
    assert_class(&o, FailureClass::Outage, "RST mid-call");
}

#[tokio::test]
async fn grpc_connection_refused_is_an_outage() {
    let (l, addr) = listener().await;
    drop(l);
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert_class(&o, FailureClass::Outage, "refused");
}

#[tokio::test]
async fn grpc_own_timeout_is_an_outage() {
    let (addr, _) = tonic_server(|_| None).await;
    let mut s = settings(format!("{addr}"));
    s.timeout = Duration::from_millis(300);
    let o = Exporter::grpc(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert_class(&o, FailureClass::Outage, "no answer in time");
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/2 server (the h2 crate) for what a broken peer or a plain-HTTP proxy sends.

#[derive(Clone)]
enum H2 {
    /// Close the TCP connection once the request headers arrived.
    Hangup,
    /// RST_STREAM before any response.
    ResetStream(h2::Reason),
    /// GOAWAY, then close.
    GoAway(h2::Reason),
    /// A response: status, headers, body, then how the stream ends.
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        end: End,
    },
}

#[derive(Clone)]
enum End {
    /// END_STREAM on the last frame, no trailers.
    Eos,
    Trailers(Vec<(&'static str, &'static str)>),
    Reset(h2::Reason),
}

fn grpc_headers() -> Vec<(&'static str, String)> {
    vec![("content-type", "application/grpc".into())]
}

async fn h2_server(action: H2) -> SocketAddr {
    let (l, addr) = listener().await;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(serve_h2(tcp, action.clone()));
        }
    });
    addr
}

async fn serve_h2<T: AsyncRead + AsyncWrite + Unpin>(io: T, action: H2) {
    let Ok(mut conn) = h2::server::handshake(io).await else {
        return;
    };
    while let Some(Ok((_req, mut respond))) = conn.accept().await {
        match action.clone() {
            H2::Hangup => return,
            H2::ResetStream(r) => respond.send_reset(r),
            H2::GoAway(r) => {
                conn.abrupt_shutdown(r);
                while conn.accept().await.is_some() {}
                return;
            }
            H2::Respond {
                status,
                headers,
                body,
                end,
            } => {
                let mut b = http::Response::builder().status(status);
                for (k, v) in headers {
                    b = b.header(k, v);
                }
                let eos_on_headers = body.is_empty() && matches!(end, End::Eos);
                let Ok(mut send) = respond.send_response(b.body(()).unwrap(), eos_on_headers)
                else {
                    continue;
                };
                if !body.is_empty() {
                    let _ = send.send_data(body.into(), matches!(end, End::Eos));
                }
                match end {
                    End::Eos => {}
                    End::Trailers(t) => {
                        let mut map = http::HeaderMap::new();
                        for (k, v) in t {
                            map.insert(k, v.parse().unwrap());
                        }
                        let _ = send.send_trailers(map);
                    }
                    End::Reset(r) => send.send_reset(r),
                }
            }
        }
    }
}

fn respond(status: u16, headers: Vec<(&'static str, String)>, body: &[u8], end: End) -> H2 {
    H2::Respond {
        status,
        headers,
        body: body.to_vec(),
        end,
    }
}

#[tokio::test]
async fn grpc_transport_faults_are_outages() {
    use h2::Reason;
    let cases: Vec<(&str, H2)> = vec![
        ("hang-up after the request headers", H2::Hangup),
        (
            "RST_STREAM INTERNAL_ERROR",
            H2::ResetStream(Reason::INTERNAL_ERROR),
        ),
        ("RST_STREAM CANCEL", H2::ResetStream(Reason::CANCEL)),
        (
            "RST_STREAM PROTOCOL_ERROR",
            H2::ResetStream(Reason::PROTOCOL_ERROR),
        ),
        (
            "RST_STREAM ENHANCE_YOUR_CALM",
            H2::ResetStream(Reason::ENHANCE_YOUR_CALM),
        ),
        (
            "RST_STREAM REFUSED_STREAM",
            H2::ResetStream(Reason::REFUSED_STREAM),
        ),
        ("GOAWAY PROTOCOL_ERROR", H2::GoAway(Reason::PROTOCOL_ERROR)),
        ("GOAWAY NO_ERROR", H2::GoAway(Reason::NO_ERROR)),
        (
            "200 then RST_STREAM NO_ERROR (no grpc-status)",
            respond(200, grpc_headers(), b"", End::Reset(Reason::NO_ERROR)),
        ),
        (
            "200 then RST_STREAM CANCEL",
            respond(200, grpc_headers(), b"", End::Reset(Reason::CANCEL)),
        ),
        (
            "200 then RST_STREAM INTERNAL_ERROR mid-message",
            respond(
                200,
                grpc_headers(),
                &[0, 0, 0, 0, 10, 1],
                End::Reset(Reason::INTERNAL_ERROR),
            ),
        ),
        (
            "200, half a message, end of stream",
            respond(200, grpc_headers(), &[0, 0, 0, 0, 10, 1], End::Eos),
        ),
        (
            "200, no grpc-status trailer",
            respond(200, grpc_headers(), &[0, 0, 0, 0, 0], End::Eos),
        ),
        (
            "proxy 502 without grpc-status",
            respond(502, vec![], b"", End::Eos),
        ),
        (
            "proxy 503 with an HTML page",
            respond(
                503,
                vec![("content-type", "text/html".into())],
                b"<html>down</html>",
                End::Eos,
            ),
        ),
        (
            "proxy 504",
            respond(504, vec![], b"gateway timeout", End::Eos),
        ),
        ("proxy 429", respond(429, vec![], b"", End::Eos)),
    ];
    for (what, action) in cases {
        let addr = h2_server(action).await;
        let o = grpc(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Outage, what);
    }
}

#[tokio::test]
async fn grpc_plain_http_refusals_are_refused() {
    let cases: Vec<(&str, H2, &str)> = vec![
        (
            "401 with a text body",
            respond(
                401,
                vec![("content-type", "text/plain".into())],
                b"unauthorized",
                End::Eos,
            ),
            "telemetryflow.api_key_id / api_key_secret",
        ),
        (
            "401 empty",
            respond(401, vec![], b"", End::Eos),
            "telemetryflow.api_key_id / api_key_secret",
        ),
        (
            "403 empty",
            respond(403, vec![], b"", End::Eos),
            "telemetryflow.api_key_id / api_key_secret",
        ),
        (
            "404 with a page",
            respond(404, vec![], b"<html>not found</html>", End::Eos),
            "telemetryflow.endpoint",
        ),
        (
            "307 redirect",
            respond(
                307,
                vec![("location", "https://elsewhere.example/".into())],
                b"",
                End::Eos,
            ),
            "redirects are never followed",
        ),
        (
            "200 with an HTML page: not a gRPC server",
            respond(
                200,
                vec![("content-type", "text/html".into())],
                b"<html>hello</html>",
                End::Eos,
            ),
            "telemetryflow.endpoint",
        ),
    ];
    for (what, action, needle) in cases {
        let addr = h2_server(action).await;
        let o = grpc(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Refused, what);
        assert!(reason(&o).contains(needle), "{what}: {o:?}");
    }
    // A status the server sent in its trailers is the server's, whatever the HTTP layer.
    let addr = h2_server(respond(
        200,
        grpc_headers(),
        b"",
        End::Trailers(vec![("grpc-status", "3"), ("grpc-message", "bad")]),
    ))
    .await;
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::Permanent { .. }), "{o:?}");
    // And a proxy's 500 page is a permanent failure, as over HTTP.
    let addr = h2_server(respond(500, vec![], b"", End::Eos)).await;
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::Permanent { .. }), "{o:?}");
}

// ---------------------------------------------------------------------------------------
// Raw HTTP/1.1 servers.

#[derive(Clone)]
enum Http1 {
    /// Write these bytes after reading the whole request, then close.
    Reply(Vec<u8>),
    /// Close once the request headers are read, before the body.
    HangupAfterHeaders,
    /// Read the request, notify, then hold the connection open.
    Hold(Arc<Notify>),
    /// Write this head, then `len` bytes of body in chunks; record whether every write
    /// succeeded (it cannot if the client stops reading and closes).
    Stream {
        head: Vec<u8>,
        len: usize,
        completed: Arc<Mutex<Option<bool>>>,
    },
}

/// Requests received: (head, body).
type Seen = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn http1_server(action: Http1) -> (SocketAddr, Seen) {
    let (l, addr) = listener().await;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(serve_http1(sock, action.clone(), s.clone()));
        }
    });
    (addr, seen)
}

async fn read_request<T: AsyncRead + Unpin>(
    sock: &mut T,
    with_body: bool,
) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let len: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while with_body && body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((head, body))
}

async fn serve_http1<T: AsyncRead + AsyncWrite + Unpin>(mut sock: T, action: Http1, seen: Seen) {
    let with_body = !matches!(action, Http1::HangupAfterHeaders);
    let Some(req) = read_request(&mut sock, with_body).await else {
        return;
    };
    seen.lock().unwrap().push(req);
    match action {
        Http1::Reply(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Http1::HangupAfterHeaders => {}
        Http1::Hold(n) => {
            n.notify_one();
            std::future::pending::<()>().await;
        }
        Http1::Stream {
            head,
            len,
            completed,
        } => {
            let chunk = vec![b'x'; 64 * 1024];
            let mut ok = sock.write_all(&head).await.is_ok();
            let mut sent = 0;
            while ok && sent < len {
                ok = sock.write_all(&chunk).await.is_ok();
                sent += chunk.len();
            }
            *completed.lock().unwrap() = Some(ok);
        }
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Http1 {
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    Http1::Reply(out)
}

#[tokio::test]
async fn http_connection_reset_mid_call_is_an_outage() {
    let hold = Arc::new(Notify::new());
    let (upstream, _) = http1_server(Http1::Hold(hold.clone())).await;
    let proxy = resetting_proxy(upstream, hold).await;
    let o = http(proxy).send(Signal::Metrics, body()).await;
    assert_class(&o, FailureClass::Outage, "RST mid-call");
}

#[tokio::test]
async fn http_hangup_after_headers_is_an_outage() {
    let (addr, seen) = http1_server(Http1::HangupAfterHeaders).await;
    let o = http(addr).send(Signal::Metrics, body()).await;
    assert_class(&o, FailureClass::Outage, "hang-up");
    assert_eq!(
        seen.lock().unwrap().len(),
        1,
        "the request reached the server"
    );
}

#[tokio::test]
async fn http_error_answer_cut_short_is_an_outage() {
    // The status line came, the body did not: not a complete answer, whatever it said.
    for status in [400u16, 401, 500] {
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: 1000\r\nConnection: close\r\n\r\nonly part"
        );
        let (addr, _) = http1_server(Http1::Reply(head.into_bytes())).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Outage, &format!("{status} cut short"));
    }
}

#[tokio::test]
async fn http_refusals_name_the_fix() {
    for (status, needle) in [
        (401u16, "telemetryflow.api_key_id / api_key_secret"),
        (403, "telemetryflow.api_key_id / api_key_secret"),
        (404, "exporter.otlp.endpoint_version"),
        (407, "proxy"),
    ] {
        let (addr, _) = http1_server(reply(status, &[], b"no")).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Refused, &status.to_string());
        assert!(reason(&o).contains(needle), "{status}: {o:?}");
    }
}

#[tokio::test]
async fn http_outage_and_permanent_statuses() {
    for status in [429u16, 502, 503, 504] {
        let (addr, _) = http1_server(reply(status, &[], b"")).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Outage, &status.to_string());
    }
    // A google.rpc.Status body: its message is the reason.
    let st = tonic_types::pb::Status {
        code: 3,
        message: "metric name missing".into(),
        details: vec![],
    }
    .encode_to_vec();
    for status in [400u16, 500] {
        let (addr, _) = http1_server(reply(status, &[], &st)).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert!(matches!(o, Outcome::Permanent { .. }), "{status}: {o:?}");
        assert!(reason(&o).contains("metric name missing"), "{o:?}");
    }
}

#[tokio::test]
async fn size_limits_are_too_large_over_both_transports() {
    // HTTP 413: the caller splits the batch (only a single record that gets it is dropped).
    let (addr, seen) = http1_server(reply(413, &[], b"request entity too large")).await;
    let o = http(addr).send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::TooLarge { .. }), "{o:?}");
    assert!(reason(&o).contains("HTTP 413"), "{o:?}");
    assert_eq!(seen.lock().unwrap().len(), 1, "sent once, not retried");

    // A real tonic server's receive limit (OUT_OF_RANGE "decoded message length too large").
    let (l, addr) = listener().await;
    let svc = MetricsServiceServer::new(Collector {
        answer: Arc::new(|_| Some(Ok(ExportMetricsServiceResponse::default()))),
        calls: Arc::new(AtomicUsize::new(0)),
        arrived: Arc::new(Notify::new()),
    })
    .max_decoding_message_size(4);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l)),
    );
    let exp = grpc(addr);
    let o = exp.send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::TooLarge { .. }), "{o:?}");
    assert!(reason(&o).contains("too large"), "{o:?}");
    // Under the limit the same server takes it.
    let small: Bytes = ExportMetricsServiceRequest::default()
        .encode_to_vec()
        .into();
    let o = exp.send(Signal::Metrics, small).await;
    assert!(matches!(o, Outcome::Delivered { .. }), "{o:?}");

    // grpc-go's wording (RESOURCE_EXHAUSTED without RetryInfo), sent by the server.
    let (addr, _) = tonic_server(|_| {
        Some(Err(tonic::Status::resource_exhausted(
            "grpc: received message larger than max (5242880 vs. 4194304)",
        )))
    })
    .await;
    let o = grpc(addr).send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::TooLarge { .. }), "{o:?}");
}

#[tokio::test]
async fn http_redirect_is_refused_and_never_followed() {
    // Where the redirect points: any connection there would carry the credentials.
    let (elsewhere_l, elsewhere) = listener().await;
    let contacted = Arc::new(AtomicUsize::new(0));
    let c = contacted.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = elsewhere_l.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
    });
    let location = format!("http://{elsewhere}/v2/metrics");
    for status in [301u16, 302, 303, 307, 308] {
        let (addr, seen) = http1_server(reply(status, &[("Location", &location)], b"")).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Refused, &status.to_string());
        assert!(
            reason(&o).contains(&format!(
                "the collector redirects to {location}; set telemetryflow.endpoint to the final address (redirects are never followed)"
            )),
            "{status}: {o:?}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        contacted.load(Ordering::SeqCst),
        0,
        "the redirect target was contacted"
    );
}

#[tokio::test]
async fn http_huge_retry_after_is_capped_without_panic() {
    for value in [
        "10000000000000000000",
        "184467440737095516160000",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let (addr, _) = http1_server(reply(503, &[("Retry-After", value)], b"")).await;
        let o = http(addr).send(Signal::Metrics, body()).await;
        assert_class(&o, FailureClass::Outage, value);
        assert_eq!(retry_after(&o), Some(MAX_SERVER_DELAY), "{value}");
    }
    let (addr, _) = http1_server(reply(429, &[("Retry-After", "2")], b"")).await;
    let o = http(addr).send(Signal::Metrics, body()).await;
    assert_eq!(retry_after(&o), Some(Duration::from_secs(2)));
}

#[tokio::test]
async fn http_large_error_body_is_not_read_whole() {
    // 64 MiB of error page: the exporter reads 64 KiB and hangs up, so the server's writes
    // fail once the socket buffers are full.
    let len = 64 << 20;
    let completed = Arc::new(Mutex::new(None));
    let head = format!("HTTP/1.1 400 X\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let (addr, _) = http1_server(Http1::Stream {
        head: head.into_bytes(),
        len,
        completed: completed.clone(),
    })
    .await;
    let o = http(addr).send(Signal::Metrics, body()).await;
    assert!(matches!(o, Outcome::Permanent { .. }), "{o:?}");
    assert!(reason(&o).len() < 400, "{o:?}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let done = loop {
        if let Some(ok) = *completed.lock().unwrap() {
            break ok;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "server still writing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(!done, "the client read the whole 64 MiB body");
}

#[tokio::test(flavor = "current_thread")]
async fn http_large_gzip_body_round_trips_on_a_current_thread_runtime() {
    let (addr, seen) = http1_server(reply(200, &[], b"")).await;
    let mut s = settings(format!("http://{addr}"));
    s.gzip = true;
    let exp = Exporter::http(&s).unwrap();
    // Above the inline limit (compressed on the blocking pool) and below it.
    let big: Vec<u8> = (0..400_000u32)
        .flat_map(|i| (i % 97).to_le_bytes())
        .collect();
    for payload in [Bytes::from(big), body()] {
        let o = exp.send(Signal::Metrics, payload.clone()).await;
        assert!(matches!(o, Outcome::Delivered { .. }), "{o:?}");
        let (head, z) = seen.lock().unwrap().pop().unwrap();
        assert!(
            head.to_ascii_lowercase().contains("content-encoding: gzip"),
            "{head}"
        );
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut plain).unwrap();
        assert_eq!(plain, payload);
    }
}

// ---------------------------------------------------------------------------------------
// TLS: `tls.server_name` is the name verified, for both transports.

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
}

fn tls_acceptor(alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(fixture("server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A TLS server with the fixture certificate (for `collector.test` only) on 127.0.0.1.
async fn tls_server<F, Fut>(alpn: &[&[u8]], serve: F) -> SocketAddr
where
    F: Fn(tokio_rustls::server::TlsStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (l, addr) = listener().await;
    let acceptor = tls_acceptor(alpn);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            if let Ok(tls) = acceptor.accept(tcp).await {
                tokio::spawn(serve(tls));
            }
        }
    });
    addr
}

fn tls_settings(server_name: Option<&str>) -> TlsSettings {
    TlsSettings {
        ca_file: Some(fixture("ca.pem")),
        server_name: server_name.map(str::to_string),
        ..Default::default()
    }
}

#[tokio::test]
async fn tls_server_name_is_the_verified_name_over_http() {
    let ok = reply(200, &[], b"");
    let addr = tls_server(&[b"http/1.1"], move |tls| {
        serve_http1(tls, ok.clone(), Seen::default())
    })
    .await;
    let mut s = settings(format!("https://{addr}"));
    s.tls = Some(tls_settings(Some("collector.test")));
    let o = Exporter::http(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert!(matches!(o, Outcome::Delivered { .. }), "{o:?}");
    // Without it, 127.0.0.1 is verified, which the certificate does not name.
    s.tls = Some(tls_settings(None));
    let o = Exporter::http(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert_class(&o, FailureClass::Outage, "name mismatch");
    // And a wrong name is refused too, so the name is really checked.
    s.tls = Some(tls_settings(Some("other.test")));
    let o = Exporter::http(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert_class(&o, FailureClass::Outage, "wrong server_name");
}

#[tokio::test]
async fn tls_server_name_is_the_verified_name_over_grpc() {
    let ok = respond(
        200,
        grpc_headers(),
        &[0, 0, 0, 0, 0],
        End::Trailers(vec![("grpc-status", "0")]),
    );
    let addr = tls_server(&[b"h2"], move |tls| serve_h2(tls, ok.clone())).await;
    let mut s = settings(format!("{addr}"));
    s.tls = Some(tls_settings(Some("collector.test")));
    let o = Exporter::grpc(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert!(matches!(o, Outcome::Delivered { .. }), "{o:?}");
    s.tls = Some(tls_settings(Some("other.test")));
    let o = Exporter::grpc(&s)
        .unwrap()
        .send(Signal::Metrics, body())
        .await;
    assert_class(&o, FailureClass::Outage, "wrong server_name");
}
