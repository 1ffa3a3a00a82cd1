//! OTLP/HTTP: `POST /v1/metrics`, `/v1/logs`, `/v1/traces` with `application/x-protobuf`
//! or `application/json` bodies (OTLP/JSON: hex trace and span ids, 64-bit integers as
//! strings), `Content-Encoding: gzip` or none. The answer has the request's content type.
//! Errors carry a `google.rpc.Status` body; "retry later" is 503 (full buffer, stopping)
//! or 429 (too many requests at once), with `Retry-After`.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tfo_exporter::Signal;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::request::Otlp;
use super::{Ingest, MAX_CONNECTIONS, Refusal};

const TRANSPORT: &str = "http";

/// How long a client has to send its request headers, and a connection may stay open.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// `google.rpc.Status`, the body of an OTLP/HTTP error answer (code and message only).
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Protobuf,
    Json,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Protobuf => "application/x-protobuf",
            Format::Json => "application/json",
        }
    }
}

type Reply = Response<Full<Bytes>>;

/// Serves `listener` until `cancel`.
pub fn serve(listener: TcpListener, ingest: &Arc<Ingest>, cancel: &CancellationToken) {
    let (ingest, cancel) = (ingest.clone(), cancel.clone());
    let stop = cancel.clone();
    crate::serve::accept_loop(listener, MAX_CONNECTIONS, stop, move |stream| {
        let _ = stream.set_nodelay(true);
        let (ingest, cancel) = (ingest.clone(), cancel.clone());
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let ingest = ingest.clone();
                async move { Ok::<_, Infallible>(handle(&ingest, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, conn.as_mut()) => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        }
    });
}

fn signal_of(path: &str) -> Option<Signal> {
    match path.trim_end_matches('/') {
        "/v1/metrics" => Some(Signal::Metrics),
        "/v1/logs" => Some(Signal::Logs),
        "/v1/traces" => Some(Signal::Traces),
        _ => None,
    }
}

async fn handle(ingest: &Ingest, req: Request<Incoming>) -> Reply {
    let Some(signal) = signal_of(req.uri().path()) else {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: use /v1/metrics, /v1/logs or /v1/traces\n",
        );
    };
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "only POST\n");
    }
    let headers = req.headers();
    let ctype = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let format = match ctype.as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::Protobuf,
        "application/json" => Format::Json,
        other => {
            let r = Refusal::Invalid(format!(
                "unsupported content type {other:?}: use application/x-protobuf or application/json"
            ));
            ingest.refused(TRANSPORT, signal, 0, &r);
            return error(Format::Protobuf, StatusCode::UNSUPPORTED_MEDIA_TYPE, &r);
        }
    };
    let gzip = match headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("") | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            let r = Refusal::Invalid(format!(
                "unsupported content encoding {other:?}: use gzip or none"
            ));
            ingest.refused(TRANSPORT, signal, 0, &r);
            return error(format, StatusCode::UNSUPPORTED_MEDIA_TYPE, &r);
        }
    };
    let settings = ingest.settings();
    if !settings
        .auth
        .allows(|h| headers.get(h).and_then(|v| v.to_str().ok()))
    {
        let r = Refusal::Unauthenticated;
        ingest.refused(TRANSPORT, signal, 0, &r);
        return error(format, StatusCode::UNAUTHORIZED, &r);
    }
    let max = settings.max_bytes;
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let r = if e.is::<http_body_util::LengthLimitError>() {
                Refusal::TooLarge
            } else {
                Refusal::Invalid(format!("reading the body: {e}"))
            };
            ingest.refused(TRANSPORT, signal, 0, &r);
            return refusal(format, &r);
        }
    };
    let body = if gzip {
        match tfo_exporter::compress::gunzip(&body, max) {
            Ok(b) => Bytes::from(b),
            Err(e) => {
                let r = match e {
                    tfo_exporter::compress::GunzipError::TooLarge => Refusal::TooLarge,
                    tfo_exporter::compress::GunzipError::Invalid(why) => {
                        Refusal::Invalid(format!("gzip: {why}"))
                    }
                };
                ingest.refused(TRANSPORT, signal, 0, &r);
                return refusal(format, &r);
            }
        }
    } else {
        body
    };
    match signal {
        Signal::Metrics => export::<ExportMetricsServiceRequest>(ingest, format, body).await,
        Signal::Logs => export::<ExportLogsServiceRequest>(ingest, format, body).await,
        Signal::Traces => export::<ExportTraceServiceRequest>(ingest, format, body).await,
    }
}

async fn export<T: Otlp>(ingest: &Ingest, format: Format, body: Bytes) -> Reply {
    let res = match format {
        Format::Protobuf => ingest.ingest_encoded::<T>(TRANSPORT, body).await,
        Format::Json => match serde_json::from_slice::<T>(&body) {
            Ok(req) => ingest.ingest(TRANSPORT, req).await,
            Err(e) => {
                let r = Refusal::Invalid(format!("undecodable request: {e}"));
                ingest.refused(TRANSPORT, T::SIGNAL, 0, &r);
                Err(r)
            }
        },
    };
    match res {
        Ok(a) => {
            let resp = T::response(a.rejected, a.message);
            let bytes = match format {
                Format::Protobuf => resp.encode_to_vec(),
                Format::Json => serde_json::to_vec(&resp).unwrap_or_else(|_| b"{}".to_vec()),
            };
            reply(StatusCode::OK, format.content_type(), bytes)
        }
        Err(r) => refusal(format, &r),
    }
}

fn refusal(format: Format, r: &Refusal) -> Reply {
    let code = match r {
        Refusal::Unauthenticated => StatusCode::UNAUTHORIZED,
        Refusal::Invalid(_) => StatusCode::BAD_REQUEST,
        Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Refusal::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        Refusal::Throttled => StatusCode::TOO_MANY_REQUESTS,
        Refusal::NoBuffer => StatusCode::NOT_FOUND,
    };
    error(format, code, r)
}

/// An error answer with a `google.rpc.Status` body (gRPC code numbers, as OTLP/HTTP asks).
fn error(format: Format, status: StatusCode, r: &Refusal) -> Reply {
    let grpc_code = match r {
        Refusal::Unauthenticated => 16,
        Refusal::Invalid(_) => 3,
        Refusal::TooLarge | Refusal::Throttled => 8,
        Refusal::Unavailable(_) => 14,
        Refusal::NoBuffer => 12,
    };
    let s = RpcStatus {
        code: grpc_code,
        message: r.message(),
    };
    let body = match format {
        Format::Protobuf => s.encode_to_vec(),
        Format::Json => serde_json::json!({"code": s.code, "message": s.message})
            .to_string()
            .into_bytes(),
    };
    let mut resp = reply(status, format.content_type(), body);
    if matches!(r, Refusal::Unavailable(_) | Refusal::Throttled) {
        let secs = super::RETRY_AFTER.as_secs().max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(RETRY_AFTER, v);
        }
    }
    resp
}

fn plain(status: StatusCode, body: &'static str) -> Reply {
    reply(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

fn reply(status: StatusCode, content_type: &'static str, body: Vec<u8>) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}
