//! OTLP/gRPC transport (tonic). Requests are sent as pre-encoded bytes through a
//! pass-through codec, so a buffered record goes on the wire without a decode/encode trip.

use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::outcome::{FailureClass, Outcome, classify_grpc, classify_http};
use crate::{ExporterSettings, SetupError, Signal};

const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";

pub struct GrpcExporter {
    channel: Channel,
    target: String,
    gzip: bool,
    timeout: Duration,
    metadata: Vec<(AsciiMetadataKey, AsciiMetadataValue)>,
}

/// Splits `host:port`, `http://host:port` or `https://host:port[/]` into (host, port, tls-by-scheme).
pub(crate) fn parse_endpoint(
    endpoint: &str,
    default_port: u16,
) -> Result<(String, u16, Option<bool>), SetupError> {
    let (rest, scheme_tls) = if let Some(r) = endpoint.strip_prefix("https://") {
        (r, Some(true))
    } else if let Some(r) = endpoint.strip_prefix("http://") {
        (r, Some(false))
    } else {
        (endpoint, None)
    };
    let authority = rest.split('/').next().unwrap_or("");
    let bad = || {
        SetupError(format!(
            "telemetryflow.endpoint {endpoint:?} is not host:port (e.g. localhost:4317)"
        ))
    };
    if authority.is_empty() {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => default_port,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), default_port),
        }
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port, scheme_tls))
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

impl GrpcExporter {
    pub fn new(s: &ExporterSettings) -> Result<Self, SetupError> {
        let (host, port, scheme_tls) = parse_endpoint(&s.endpoint, 4317)?;
        let tls = match (&s.tls, scheme_tls) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(true)) => Some(Default::default()),
            (None, _) => None,
        };
        let connector_tls = match &tls {
            Some(t) => {
                let cfg = crate::tls::client_config(t, &[b"h2"])?;
                let name = crate::tls::server_name(t, &host)?;
                Some((
                    tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg)),
                    name,
                ))
            }
            None => None,
        };
        let uri_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let endpoint = Endpoint::from_shared(format!("http://{uri_host}:{port}"))
            .map_err(|e| SetupError(format!("telemetryflow.endpoint {:?}: {e}", s.endpoint)))?
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .tcp_nodelay(true)
            .user_agent(s.user_agent.clone())
            .map_err(|e| SetupError(format!("user agent: {e}")))?;
        let (h, p) = (host.clone(), port);
        let connector = tower::service_fn(move |_uri: http::Uri| {
            let (h, tls) = (h.clone(), connector_tls.clone());
            async move {
                let tcp = TcpStream::connect((h.as_str(), p)).await?;
                tcp.set_nodelay(true)?;
                let io: Box<dyn Io> = match tls {
                    Some((conn, name)) => Box::new(conn.connect(name, tcp).await?),
                    None => Box::new(tcp),
                };
                Ok::<_, std::io::Error>(TokioIo::new(io))
            }
        });
        let channel = endpoint.connect_with_connector_lazy(connector);
        let mut metadata = Vec::with_capacity(s.headers.len());
        for (k, v) in &s.headers {
            let key =
                AsciiMetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()).map_err(|_| {
                    SetupError(format!(
                        "header name {k:?} is not a valid gRPC metadata key"
                    ))
                })?;
            let mut val = AsciiMetadataValue::try_from(v.as_str())
                .map_err(|_| SetupError(format!("header {k:?}: value is not printable ASCII")))?;
            val.set_sensitive(true);
            metadata.push((key, val));
        }
        Ok(GrpcExporter {
            channel,
            target: format!(
                "grpc://{uri_host}:{port}{}",
                if tls.is_some() { " (TLS)" } else { "" }
            ),
            gzip: s.gzip,
            timeout: s.timeout,
            metadata,
        })
    }

    pub fn target(&self) -> String {
        self.target.clone()
    }

    pub async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let mut client = tonic::client::Grpc::new(self.channel.clone());
        if self.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        let mut req = Request::new(body);
        req.set_timeout(self.timeout);
        for (k, v) in &self.metadata {
            req.metadata_mut().insert(k.clone(), v.clone());
        }
        let path = PathAndQuery::from_static(match signal {
            Signal::Metrics => METRICS_PATH,
            Signal::Logs => LOGS_PATH,
        });
        let call = async {
            if let Err(e) = client.ready().await {
                return Err(Err(e));
            }
            client.unary(req, path, RawCodec).await.map_err(Ok)
        };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.timeout, call).await {
            // Our own deadline: no answer arrived, an outage (not the server's
            // DEADLINE_EXCEEDED, which is transient).
            Err(_) => Outcome::connection_failure(format!(
                "no answer within {:?} (telemetryflow.timeout)",
                self.timeout
            )),
            Ok(Ok(resp)) => delivered(signal, resp.into_inner()),
            Ok(Err(Err(e))) => {
                Outcome::connection_failure(format!("connecting: {}", error_chain(&e)))
            }
            Ok(Err(Ok(status))) => classify_status(&status, started.elapsed() >= self.timeout),
        }
    }
}

/// Classifies what tonic returned for a call. A status the server sent goes to
/// [`classify_grpc`]; a status tonic or hyper invented because the exchange broke is an
/// outage (or, when an HTTP answer without `grpc-status` came back, classified from the
/// HTTP status as the HTTP transport would).
///
/// How an invented status is told apart, as tonic 0.14 behaves (pinned by the tests in
/// `tests/faults.rs`): a status built from a transport error (connect error, reset, EOF,
/// GOAWAY, RST_STREAM, h2 protocol error, tonic's own `grpc-timeout`) carries that error
/// as its `source()`; a status decoded from `grpc-status` never has one. The few statuses
/// tonic's decoder invents without a source have fixed messages, matched in
/// [`invented_without_source`].
pub(crate) fn classify_status(status: &Status, deadline_passed: bool) -> Outcome {
    if let Some(fault) = transport_fault(status) {
        let what = if deadline_passed || fault.timeout {
            "no answer in time"
        } else {
            "connection failed"
        };
        return Outcome::connection_failure(format!(
            "{what}: {} (reported by the gRPC client as {:?})",
            fault.detail,
            status.code()
        ));
    }
    if let Some(o) = invented_without_source(status) {
        return o;
    }
    classify_grpc(
        status.code() as i32,
        status.message(),
        crate::outcome::retry_info_delay(status.details()),
    )
}

struct TransportFault {
    detail: String,
    timeout: bool,
}

/// `Some` when the status was made from a transport error (it has a source). The detail
/// names the HTTP/2 event (GOAWAY, RST_STREAM) or I/O error found in the source chain.
fn transport_fault(status: &Status) -> Option<TransportFault> {
    let source = std::error::Error::source(status)?;
    let mut label = None;
    let mut timeout = false;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(source);
    while let Some(e) = cur {
        if e.downcast_ref::<tonic::TimeoutExpired>().is_some() {
            timeout = true;
        }
        if label.is_none() {
            if let Some(h) = e.downcast_ref::<h2::Error>() {
                label = Some(if h.is_go_away() {
                    format!("HTTP/2 GOAWAY ({})", reason_name(h.reason()))
                } else if h.is_reset() {
                    format!(
                        "HTTP/2 stream reset, RST_STREAM ({})",
                        reason_name(h.reason())
                    )
                } else if let Some(io) = h.get_io() {
                    format!("I/O error ({:?})", io.kind())
                } else {
                    format!("HTTP/2 error ({})", reason_name(h.reason()))
                });
            } else if let Some(h) = e.downcast_ref::<hyper::Error>() {
                if h.is_timeout() {
                    timeout = true;
                }
                if h.is_incomplete_message() || h.is_closed() {
                    label = Some("the connection closed before the answer was complete".into());
                }
            } else if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io.kind() == std::io::ErrorKind::TimedOut {
                    timeout = true;
                }
                label = Some(format!("I/O error ({:?})", io.kind()));
            } else if e.downcast_ref::<tonic::ConnectError>().is_some() {
                label = Some("cannot connect".into());
            }
        }
        cur = e.source();
    }
    let chain = error_chain(source);
    Some(TransportFault {
        detail: match label {
            Some(l) => format!("{l}: {chain}"),
            None => chain,
        },
        timeout,
    })
}

fn reason_name(r: Option<h2::Reason>) -> String {
    match r {
        Some(r) => format!("{r:?}"),
        None => "no reason".into(),
    }
}

/// Statuses tonic's response decoder makes up without a source error (tonic 0.14,
/// `codec/decode.rs` and `status.rs::infer_grpc_status`):
/// - the stream ended with HTTP 200 but no `grpc-status` (cut by a proxy, or an h2
///   RST_STREAM NO_ERROR/CANCEL, which hyper turns into a clean end), or mid-message:
///   the answer is incomplete, an outage;
/// - an HTTP answer without `grpc-status` (a proxy's 401 or 502 page): classified from
///   the HTTP status, like the HTTP transport does.
fn invented_without_source(status: &Status) -> Option<Outcome> {
    use tonic::Code;
    const NO_TRAILER: &str = "protocol error: missing grpc-status trailer";
    const EOF: &str = "Unexpected EOF decoding stream";
    const MAPPED: &str = "grpc-status header missing, mapped from HTTP status code ";
    const WHILE: &str = "while receiving response with status: ";
    let msg = status.message();
    let code = status.code();
    if (code == Code::Unknown && msg.starts_with(NO_TRAILER))
        || (code == Code::Internal && msg.starts_with(EOF))
    {
        return Some(Outcome::connection_failure(format!(
            "the answer was cut short: {msg}"
        )));
    }
    let http_status = if let Some(rest) = msg.strip_prefix(MAPPED) {
        rest
    } else if let (Code::Internal, Some((_, rest))) = (code, msg.split_once(WHILE)) {
        rest
    } else {
        return None;
    };
    let digits: String = http_status
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    let http: u16 = digits.parse().ok()?;
    if (200..300).contains(&http) {
        return Some(Outcome::Retry {
            class: FailureClass::Refused,
            reason: format!(
                "HTTP {http} without a gRPC answer: the server does not speak OTLP/gRPC; check \
                 telemetryflow.endpoint and telemetryflow.protocol ({msg})"
            ),
            retry_after: None,
        });
    }
    Some(classify_http(
        http,
        None,
        None,
        &format!("no gRPC status in the answer ({msg})"),
    ))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Reads the partial-success part of a response; an undecodable response still means the
/// request was accepted (the status was OK), so it is delivered with a note.
fn delivered(signal: Signal, body: Bytes) -> Outcome {
    let (rejected, message) = match signal {
        Signal::Metrics => match ExportMetricsServiceResponse::decode(body) {
            Ok(r) => r
                .partial_success
                .map(|p| (p.rejected_data_points.max(0) as u64, p.error_message))
                .unwrap_or_default(),
            Err(e) => (0, format!("undecodable response: {e}")),
        },
        Signal::Logs => match ExportLogsServiceResponse::decode(body) {
            Ok(r) => r
                .partial_success
                .map(|p| (p.rejected_log_records.max(0) as u64, p.error_message))
                .unwrap_or_default(),
            Err(e) => (0, format!("undecodable response: {e}")),
        },
    };
    Outcome::Delivered { rejected, message }
}

pub(crate) fn delivered_from_body(signal: Signal, body: Bytes) -> Outcome {
    delivered(signal, body)
}

/// Passes already-encoded protobuf bytes through tonic's framing untouched.
#[derive(Clone, Copy)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let n = src.remaining();
        Ok(Some(src.copy_to_bytes(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("localhost:4317", 1).unwrap(),
            ("localhost".into(), 4317, None)
        );
        assert_eq!(
            parse_endpoint("https://c.example:443/", 1).unwrap(),
            ("c.example".into(), 443, Some(true))
        );
        assert_eq!(
            parse_endpoint("http://c", 4318).unwrap(),
            ("c".into(), 4318, Some(false))
        );
        assert_eq!(
            parse_endpoint("[::1]:4317", 1).unwrap(),
            ("::1".into(), 4317, None)
        );
        assert!(parse_endpoint("host:notaport", 1).is_err());
        assert!(parse_endpoint("", 1).is_err());
    }
}
