//! OTLP/gRPC: the generated `MetricsService`, `LogsService` and `TraceService` servers of
//! `opentelemetry-proto`, served over HTTP/2 by hyper with a path dispatch of our own (so
//! no router framework is needed). gzip requests are accepted (`grpc-encoding: gzip`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tfo_exporter::Signal;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::codegen::Service;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::request::Otlp;
use super::{Ingest, MAX_CONNECTIONS, RETRY_AFTER, Refusal};

const TRANSPORT: &str = "grpc";

/// The three services share one implementation.
#[derive(Clone)]
struct Otel(Arc<Ingest>);

impl Otel {
    async fn export<T: Otlp>(&self, req: Request<T>) -> Result<Response<T::Response>, Status> {
        let settings = self.0.settings();
        let md = req.metadata();
        if !settings
            .auth
            .allows(|h| md.get(h).and_then(|v| v.to_str().ok()))
        {
            let r = Refusal::Unauthenticated;
            self.0.refused(TRANSPORT, T::SIGNAL, 0, &r);
            return Err(status(&r));
        }
        match self.0.ingest(TRANSPORT, req.into_inner()).await {
            Ok(a) => Ok(Response::new(T::response(a.rejected, a.message))),
            Err(r) => Err(status(&r)),
        }
    }
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

#[tonic::async_trait]
impl MetricsService for Otel {
    async fn export(
        &self,
        req: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        Otel::export(self, req).await
    }
}

#[tonic::async_trait]
impl LogsService for Otel {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        Otel::export(self, req).await
    }
}

#[tonic::async_trait]
impl TraceService for Otel {
    async fn export(
        &self,
        req: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        Otel::export(self, req).await
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

/// Serves `listener` until `cancel`.
pub fn serve(listener: TcpListener, ingest: &Arc<Ingest>, cancel: &CancellationToken) {
    let otel = Otel(ingest.clone());
    let max = ingest.settings().max_bytes;
    let metrics = MetricsServiceServer::new(otel.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let logs = LogsServiceServer::new(otel.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let traces = TraceServiceServer::new(otel)
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max);
    let (ingest, cancel) = (ingest.clone(), cancel.clone());
    let stop = cancel.clone();
    crate::serve::accept_loop(listener, MAX_CONNECTIONS, stop, move |stream| {
        let _ = stream.set_nodelay(true);
        let (m, l, t) = (metrics.clone(), logs.clone(), traces.clone());
        let ing = ingest.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let path = req.uri().path();
            let ing = ing.clone();
            let fut: std::pin::Pin<Box<dyn Future<Output = Result<Reply, Infallible>> + Send>> =
                if path.starts_with("/opentelemetry.proto.collector.trace.v1.TraceService/") {
                    let mut s = t.clone();
                    Box::pin(async move { Ok(sized(&ing, Signal::Traces, s.call(req).await?)) })
                } else if path
                    .starts_with("/opentelemetry.proto.collector.metrics.v1.MetricsService/")
                {
                    let mut s = m.clone();
                    Box::pin(async move { Ok(sized(&ing, Signal::Metrics, s.call(req).await?)) })
                } else if path.starts_with("/opentelemetry.proto.collector.logs.v1.LogsService/") {
                    let mut s = l.clone();
                    Box::pin(async move { Ok(sized(&ing, Signal::Logs, s.call(req).await?)) })
                } else {
                    Box::pin(async { Ok(Status::unimplemented("unknown service").into_http()) })
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
