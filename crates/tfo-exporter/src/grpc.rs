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
use tonic_types::StatusExt;

use crate::outcome::{Outcome, classify_grpc};
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
            client
                .ready()
                .await
                .map_err(|e| Status::unavailable(format!("connecting: {e}")))?;
            client.unary(req, path, RawCodec).await
        };
        let started = tokio::time::Instant::now();
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => classify_grpc(
                tonic::Code::DeadlineExceeded as i32,
                &format!("no answer within {:?}", self.timeout),
                None,
            ),
            Ok(Ok(resp)) => delivered(signal, resp.into_inner()),
            // tonic enforces the grpc-timeout it sends and reports CANCELLED when it
            // fires; a timeout is DEADLINE_EXCEEDED (an outage), not a cancelled call.
            Ok(Err(status))
                if status.code() == tonic::Code::Cancelled && started.elapsed() >= self.timeout =>
            {
                classify_grpc(
                    tonic::Code::DeadlineExceeded as i32,
                    &format!("no answer within {:?}", self.timeout),
                    None,
                )
            }
            Ok(Err(status)) => {
                let hint = status
                    .get_details_retry_info()
                    .and_then(|ri| ri.retry_delay);
                classify_grpc(status.code() as i32, status.message(), hint)
            }
        }
    }
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
