//! OTLP/gRPC: the `Export` methods of `MetricsService`, `LogsService` and `TraceService`,
//! served over HTTP/2 by hyper with a path dispatch of our own (so no router framework is
//! needed) and tonic's unary call handling (framing, `grpc-encoding: gzip`, size limit).
//! Requests are taken as bytes rather than decoded by the generated servers, so trace and
//! log requests can be forwarded as they came ([`super::wire`]).

use std::convert::Infallible;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use tfo_exporter::Signal;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::request::Otlp;
use super::{Ingest, MAX_CONNECTIONS, RETRY_AFTER, Refusal};

const TRANSPORT: &str = "grpc";

/// Requests arrive as bytes; responses go out as prost messages.
struct RawCodec<R>(PhantomData<R>);

struct RawDecoder;

struct ProstEncoder<R>(PhantomData<R>);

impl<R: Message + Send + 'static> Codec for RawCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ProstEncoder<R>;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

impl<R: Message> Encoder for ProstEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response: {e}")))
    }
}

/// One signal's `Export` method.
struct Export<T>(Arc<Ingest>, PhantomData<T>);

type Answer<R> = Pin<Box<dyn Future<Output = Result<Response<R>, Status>> + Send>>;

impl<T: Otlp> tonic::server::UnaryService<Bytes> for Export<T> {
    type Response = T::Response;
    type Future = Answer<T::Response>;

    fn call(&mut self, req: Request<Bytes>) -> Self::Future {
        let ingest = self.0.clone();
        Box::pin(async move {
            let settings = ingest.settings();
            let md = req.metadata();
            if !settings
                .auth
                .allows(|h| md.get(h).and_then(|v| v.to_str().ok()))
            {
                let r = Refusal::Unauthenticated;
                ingest.refused(TRANSPORT, T::SIGNAL, 0, &r);
                return Err(status(&r));
            }
            match ingest
                .ingest_encoded::<T>(TRANSPORT, req.into_inner())
                .await
            {
                Ok(a) => Ok(Response::new(T::response(a.rejected, a.message))),
                Err(r) => Err(status(&r)),
            }
        })
    }
}

/// Serves one unary `Export` call of `T`'s signal.
async fn export<T: Otlp>(ingest: Arc<Ingest>, req: hyper::Request<Incoming>) -> Reply {
    let max = ingest.settings().max_bytes;
    let mut grpc = tonic::server::Grpc::new(RawCodec::<T::Response>(PhantomData))
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let resp = grpc
        .unary(Export::<T>(ingest.clone(), PhantomData), req)
        .await;
    sized(&ingest, T::SIGNAL, resp)
}

/// The gRPC status of a refusal: "retry later" ones are `UNAVAILABLE` with `RetryInfo`,
/// which every OTLP exporter retries.
fn status(r: &Refusal) -> Status {
    let msg = r.message();
    match r {
        Refusal::Unauthenticated => Status::unauthenticated(msg),
        Refusal::Invalid(_) => Status::invalid_argument(msg),
        Refusal::TooLarge => Status::resource_exhausted(msg),
        Refusal::Unavailable(_) | Refusal::Throttled => Status::with_error_details(
            Code::Unavailable,
            msg,
            ErrorDetails::with_retry_info(Some(RETRY_AFTER)),
        ),
        Refusal::NoBuffer => Status::unimplemented(msg),
    }
}

type Reply = hyper::Response<tonic::body::Body>;

/// tonic refuses a message over the size limit with `OUT_OF_RANGE`, which OTLP exporters
/// retry forever; it becomes `RESOURCE_EXHAUSTED` without `RetryInfo` (not retried, as
/// grpc-go answers), and is counted.
fn sized(ingest: &Ingest, signal: Signal, mut resp: Reply) -> Reply {
    let h = resp.headers_mut();
    let too_large = h.get("grpc-status").is_some_and(|v| v == "11")
        && h.get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.contains("too%20large") || m.contains("too large"));
    if too_large {
        h.insert("grpc-status", hyper::header::HeaderValue::from_static("8"));
        ingest.refused(TRANSPORT, signal, 0, &Refusal::TooLarge);
    }
    resp
}

type Serving = Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>>;

/// Serves `listener` until `cancel`.
pub fn serve(listener: TcpListener, ingest: &Arc<Ingest>, cancel: &CancellationToken) {
    let (ingest, cancel) = (ingest.clone(), cancel.clone());
    let stop = cancel.clone();
    crate::serve::accept_loop(listener, MAX_CONNECTIONS, stop, move |stream| {
        let _ = stream.set_nodelay(true);
        let ing = ingest.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let ing = ing.clone();
            let fut: Serving = match req.uri().path() {
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export" => {
                    Box::pin(async move { Ok(export::<ExportTraceServiceRequest>(ing, req).await) })
                }
                "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export" => Box::pin(
                    async move { Ok(export::<ExportMetricsServiceRequest>(ing, req).await) },
                ),
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export" => {
                    Box::pin(async move { Ok(export::<ExportLogsServiceRequest>(ing, req).await) })
                }
                _ => Box::pin(async {
                    Ok(Status::unimplemented("unknown service or method").into_http())
                }),
            };
            fut
        });
        let cancel = cancel.clone();
        async move {
            let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .max_concurrent_streams(256)
                .keep_alive_interval(Some(Duration::from_secs(60)))
                .serve_connection(TokioIo::new(stream), svc);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        }
    });
}
