//! The agent's own HTTP endpoints: Prometheus self-metrics (`prometheus.*`) and liveness /
//! readiness (`health.*`). Both are read-only views of [`Stats`]; they never touch the
//! pipeline, so a scrape cannot slow collection or export.
//!
//! Each listener serves at most [`MAX_CONNECTIONS`] connections at once, and a client has
//! [`HEADER_TIMEOUT`] to send its request headers (invariant 5: every connection is bounded).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::events::Stats;

pub const MAX_CONNECTIONS: usize = 32;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Renders extra exposition text after the self-metrics (the node exporter view).
pub type ExtraMetrics = Arc<dyn Fn(&mut String) + Send + Sync>;

#[derive(Clone)]
pub enum Site {
    Metrics {
        path: String,
        stats: Arc<Stats>,
        extra: Option<ExtraMetrics>,
    },
    Health {
        stats: Arc<Stats>,
    },
}

/// Binds `addr` now (so a taken port is a startup error naming the key) and serves `site`
/// until `cancel`.
pub async fn bind(
    key: &str,
    addr: &str,
    site: Site,
    cancel: CancellationToken,
) -> Result<SocketAddr, String> {
    let (listener, local) = listen(key, addr).await?;
    let site = Arc::new(site);
    accept_loop(listener, MAX_CONNECTIONS, cancel, move |stream| {
        let site = site.clone();
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let site = site.clone();
                async move { Ok::<_, Infallible>(handle(&site, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            let _ = tokio::time::timeout(Duration::from_secs(60), conn).await;
        }
    });
    Ok(local)
}

/// Binds `addr`; the error names the config `key`.
pub async fn listen(key: &str, addr: &str) -> Result<(TcpListener, SocketAddr), String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("{key}: {addr}: {e}"))?;
    Ok((listener, local))
}

/// Accepts connections on `listener` until `cancel`, serving each with `serve` on a task of
/// its own, at most `max` at once (a further client waits in the kernel's backlog).
pub fn accept_loop<F, Fut>(listener: TcpListener, max: usize, cancel: CancellationToken, serve: F)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(max));
        loop {
            let permit = tokio::select! {
                _ = cancel.cancelled() => return,
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            };
            let (stream, _) = tokio::select! {
                _ = cancel.cancelled() => return,
                a = listener.accept() => match a {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let conn = serve(stream);
            tokio::spawn(async move {
                conn.await;
                drop(permit);
            });
        }
    });
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn handle(site: &Site, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET\n".into(),
        );
    }
    let path = req.uri().path();
    match site {
        Site::Metrics {
            path: p,
            stats,
            extra,
        } if path == p => {
            let mut out = String::with_capacity(16 << 10);
            stats.render(&mut out);
            if let Some(extra) = extra {
                extra(&mut out);
            }
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out,
            )
        }
        Site::Health { stats } if path == "/" || path == "/healthz" => {
            let dead = stats.dead_tasks();
            let (code, status) = if dead.is_empty() {
                (StatusCode::OK, "alive")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "task dead")
            };
            let body = serde_json::json!({
                "status": status,
                "uptime_seconds": stats.uptime().as_secs(),
                "dead_tasks": dead,
            });
            reply(code, "application/json", format!("{body}\n"))
        }
        Site::Health { stats } if path == "/readyz" => {
            let r = stats.readiness();
            let status = if r.ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, "application/json", format!("{}\n", r.to_json()))
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found\n".into(),
        ),
    }
}
