//! OTLP/gRPC transport (tonic). Requests are sent as pre-encoded bytes through a
//! pass-through codec, so a buffered record goes on the wire without a decode/encode trip.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::HeaderValue;
use http::header::{CONTENT_TYPE, HeaderName};
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};
use tower::{Service, ServiceExt};

use crate::compress::{self, GzipPool};
use crate::http::MAX_ANSWER_BYTES;
use crate::outcome::{FailureClass, Outcome, classify_grpc, classify_http};
use crate::{ExporterSettings, SetupError, Signal};

const METRICS_PATH: &str = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
const LOGS_PATH: &str = "/opentelemetry.proto.collector.logs.v1.LogsService/Export";
const TRACES_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

pub struct GrpcExporter {
    channel: Channel,
    target: String,
    gzip: Option<Arc<GzipPool>>,
    timeout: Duration,
    /// `grpc-timeout`, from `telemetryflow.timeout`.
    grpc_timeout: HeaderValue,
    metadata: Vec<(HeaderName, HeaderValue)>,
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
            let key = HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes())
                .ok()
                .filter(|k| !k.as_str().starts_with("grpc-") && !k.as_str().ends_with("-bin"))
                .ok_or_else(|| {
                    SetupError(format!(
                        "header name {k:?} is not a valid gRPC metadata key"
                    ))
                })?;
            let mut val = HeaderValue::from_str(v)
                .ok()
                .filter(|v| v.as_bytes().iter().all(|b| (0x20..0x7f).contains(b)))
                .ok_or_else(|| SetupError(format!("header {k:?}: value is not printable ASCII")))?;
            val.set_sensitive(true);
            metadata.push((key, val));
        }
        // Whole milliseconds, at most 8 digits as the gRPC spec allows.
        let ms = s.timeout.as_millis().clamp(1, 99_999_999);
        let grpc_timeout = HeaderValue::from_str(&format!("{ms}m"))
            .map_err(|e| SetupError(format!("telemetryflow.timeout: {e}")))?;
        Ok(GrpcExporter {
            channel,
            target: format!(
                "grpc://{uri_host}:{port}{}",
                if tls.is_some() { " (TLS)" } else { "" }
            ),
            gzip: s.gzip.then(|| Arc::new(GzipPool::default())),
            timeout: s.timeout,
            grpc_timeout,
            metadata,
        })
    }

    pub fn target(&self) -> String {
        self.target.clone()
    }

    pub async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let framed = match self.frame(body).await {
            Ok(f) => f,
            Err(e) => {
                return Outcome::Permanent {
                    reason: format!("gzip: {e}"),
                };
            }
        };
        let path = match signal {
            Signal::Metrics => METRICS_PATH,
            Signal::Logs => LOGS_PATH,
            Signal::Traces => TRACES_PATH,
        };
        let call = async {
            let mut ch = self.channel.clone();
            if let Err(e) = ch.ready().await {
                return Outcome::connection_failure(format!("cannot connect: {}", error_chain(&e)));
            }
            match ch.call(self.request(path, framed)).await {
                Ok(resp) => answer(signal, resp).await,
                // Nothing came back: refused, reset, GOAWAY, RST_STREAM, TLS failure.
                Err(e) => Outcome::connection_failure(format!(
                    "connection failed: {}",
                    transport_detail(&e)
                )),
            }
        };
        match tokio::time::timeout(self.timeout, call).await {
            // Our own deadline: no answer arrived, an outage (not the server's
            // DEADLINE_EXCEEDED, which is transient).
            Err(_) => Outcome::connection_failure(format!(
                "no answer within {:?} (telemetryflow.timeout)",
                self.timeout
            )),
            Ok(o) => o,
        }
    }

    /// The gRPC message frame: compressed flag, big-endian length, message. With gzip the
    /// message is compressed straight into the frame by a reused deflate state.
    async fn frame(&self, body: Bytes) -> Result<Bytes, String> {
        let (flag, mut out) = match &self.gzip {
            Some(pool) => (1u8, compress::gzip_off_runtime(pool, body, 5).await?),
            None => {
                let mut out = Vec::with_capacity(5 + body.len());
                out.resize(5, 0);
                out.extend_from_slice(&body);
                (0u8, out)
            }
        };
        let len = u32::try_from(out.len() - 5).map_err(|_| "message over 4 GiB".to_string())?;
        out[0] = flag;
        out[1..5].copy_from_slice(&len.to_be_bytes());
        Ok(Bytes::from(out))
    }

    fn request(&self, path: &'static str, framed: Bytes) -> http::Request<tonic::body::Body> {
        let mut req = http::Request::new(tonic::body::Body::new(http_body_util::Full::new(framed)));
        *req.method_mut() = http::Method::POST;
        // The channel adds scheme and authority (tonic's AddOrigin) and the User-Agent.
        *req.uri_mut() = http::Uri::from_static(path);
        let h = req.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        h.insert("te", HeaderValue::from_static("trailers"));
        if self.gzip.is_some() {
            h.insert("grpc-encoding", HeaderValue::from_static("gzip"));
        }
        h.insert(
            "grpc-accept-encoding",
            HeaderValue::from_static("gzip,identity"),
        );
        h.insert("grpc-timeout", self.grpc_timeout.clone());
        for (k, v) in &self.metadata {
            h.insert(k.clone(), v.clone());
        }
        req
    }
}

/// Reads an answer. Only a `grpc-status` the server sent is classified by the OTLP rules;
/// an answer that ends before it (cut by a proxy, a reset stream) is an outage, and a
/// plain HTTP answer (a proxy's 401 or 502 page) is classified as the HTTP transport would.
async fn answer(signal: Signal, resp: http::Response<tonic::body::Body>) -> Outcome {
    use http_body_util::BodyExt;
    let (parts, body) = resp.into_parts();
    // Trailers-only answer: the status is in the headers and there is no message.
    if let Some(st) = Status::from_header_map(&parts.headers) {
        return server_status(signal, &st, Bytes::new(), None);
    }
    let grpc = parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if parts.status != http::StatusCode::OK || !grpc {
        return not_grpc(&parts);
    }
    let compressed = parts
        .headers
        .get("grpc-encoding")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let collected = match http_body_util::Limited::new(body, MAX_ANSWER_BYTES)
        .collect()
        .await
    {
        Ok(c) => c,
        Err(e) => {
            return Outcome::connection_failure(format!(
                "the answer was cut short: {}",
                transport_detail(e.as_ref())
            ));
        }
    };
    let trailers = collected.trailers().cloned();
    let data = collected.to_bytes();
    match trailers.as_ref().and_then(Status::from_header_map) {
        Some(st) => server_status(signal, &st, data, compressed.as_deref()),
        None => Outcome::connection_failure(
            "the answer ended without a grpc-status (cut short by a proxy or a reset stream)",
        ),
    }
}

fn server_status(signal: Signal, st: &Status, data: Bytes, encoding: Option<&str>) -> Outcome {
    if st.code() != tonic::Code::Ok {
        return classify_grpc(
            st.code() as i32,
            st.message(),
            crate::outcome::retry_info_delay(st.details()),
        );
    }
    match message(data, encoding) {
        Ok(m) => delivered(signal, m),
        // The status was OK: the data was accepted even if the message cannot be read.
        Err(e) => Outcome::Delivered {
            rejected: 0,
            message: format!("undecodable response: {e}"),
        },
    }
}

/// The message of a one-message answer body (empty when there is none).
fn message(mut data: Bytes, encoding: Option<&str>) -> Result<Bytes, String> {
    if data.is_empty() {
        return Ok(data);
    }
    if data.len() < 5 {
        return Err("truncated frame".into());
    }
    let flag = data[0];
    let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
    data.advance(5);
    if data.len() < len {
        return Err("truncated message".into());
    }
    let msg = data.split_to(len);
    match (flag, encoding) {
        (0, _) => Ok(msg),
        (1, Some("gzip")) => {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&msg[..])
                .take(MAX_ANSWER_BYTES as u64)
                .read_to_end(&mut out)
                .map_err(|e| format!("gunzip: {e}"))?;
            Ok(Bytes::from(out))
        }
        (_, enc) => Err(format!("compressed with {enc:?}, which was not offered")),
    }
}

/// A non-gRPC HTTP answer: what the HTTP status means, as for the HTTP transport. A 2xx
/// without gRPC means the endpoint is not an OTLP/gRPC server.
fn not_grpc(parts: &http::response::Parts) -> Outcome {
    let status = parts.status.as_u16();
    if parts.status.is_success() {
        return Outcome::Retry {
            class: FailureClass::Refused,
            reason: format!(
                "HTTP {status} without a gRPC answer: the server does not speak OTLP/gRPC; check \
                 telemetryflow.endpoint and telemetryflow.protocol"
            ),
            retry_after: None,
        };
    }
    let header = |name: http::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let retry_after = header(http::header::RETRY_AFTER)
        .and_then(|v| crate::outcome::parse_retry_after(&v, std::time::SystemTime::now()));
    let location = header(http::header::LOCATION);
    classify_http(
        status,
        retry_after,
        location.as_deref(),
        "no gRPC status in the answer",
    )
}

/// The most telling part of a transport error: the HTTP/2 event (GOAWAY, RST_STREAM) or
/// I/O error in its source chain, then the whole chain.
fn transport_detail(e: &(dyn std::error::Error + 'static)) -> String {
    let mut label = None;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if label.is_none() {
            if let Some(h) = err.downcast_ref::<h2::Error>() {
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
            } else if let Some(h) = err.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() || h.is_closed() {
                    label = Some("the connection closed before the answer was complete".into());
                }
            } else if let Some(io) = err.downcast_ref::<std::io::Error>() {
                label = Some(format!("I/O error ({:?})", io.kind()));
            }
        }
        cur = err.source();
    }
    let chain = error_chain(e);
    match label {
        Some(l) => format!("{l}: {chain}"),
        None => chain,
    }
}

fn reason_name(r: Option<h2::Reason>) -> String {
    match r {
        Some(r) => format!("{r:?}"),
        None => "no reason".into(),
    }
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
        Signal::Traces => match ExportTraceServiceResponse::decode(body) {
            Ok(r) => r
                .partial_success
                .map(|p| (p.rejected_spans.max(0) as u64, p.error_message))
                .unwrap_or_default(),
            Err(e) => (0, format!("undecodable response: {e}")),
        },
    };
    Outcome::Delivered { rejected, message }
}

pub(crate) fn delivered_from_body(signal: Signal, body: Bytes) -> Outcome {
    delivered(signal, body)
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
