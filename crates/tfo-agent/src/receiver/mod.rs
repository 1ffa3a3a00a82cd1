//! The local OTLP receiver (`receivers.otlp`): applications send OTLP/gRPC ([`grpc`]) or
//! OTLP/HTTP ([`http`]) to the agent, which stores each request in its signal's buffer and
//! forwards it with the agent's own data, through the same outages and retries.
//!
//! Guarantees, the same for both transports:
//! - **Stored before acknowledged.** A success answer goes out only after every record of
//!   the request was appended to the disk log (durable per `buffer.fsync`, like collected
//!   data) or, with `buffer.enabled: false` or a failing disk, queued in memory.
//! - **Backpressure, never silent loss.** When the buffer stays full for [`PUSH_WAIT`]
//!   (traces and logs always block; metrics when `buffer.when_full: block`), or the agent is
//!   stopping, the client is told to retry (gRPC `UNAVAILABLE` with `RetryInfo`, HTTP 503
//!   with `Retry-After`); more than [`MAX_IN_FLIGHT`] requests at once get HTTP 429.
//! - **The application's resource wins.** The agent's resource attributes (host, tags,
//!   `k8s.node.name`, not its `service.*`) are added only where the application did not set
//!   the key.
//! - Items the OTLP spec calls invalid are dropped and reported as partial success.

pub mod grpc;
pub mod http;
pub mod request;
pub mod wire;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tfo_config::Config;
use tfo_exporter::{Record, Signal};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::events::{Event, Stats};
use crate::pipeline::Buffers;
use crate::pipeline::buffer::{Buffer, Pushed};
use crate::pipeline::stream::Shared;
use request::Otlp;

/// How long a request waits for room in a full buffer before the client is asked to retry.
pub const PUSH_WAIT: Duration = Duration::from_secs(1);
/// The retry hint sent with a "retry later" answer.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Requests handled at once (both transports together); more are answered "retry later".
pub const MAX_IN_FLIGHT: usize = 256;
/// Connections per listener.
pub const MAX_CONNECTIONS: usize = 512;

/// What a reload may change without rebinding the listeners.
pub struct Settings {
    /// The agent's resource attributes added to every resource (without `service.*`).
    pub attrs: Vec<KeyValue>,
    /// The same, encoded for [`wire::forward`].
    pub wire_attrs: wire::Attrs,
    pub auth: Auth,
    /// Most bytes of one request, decompressed.
    pub max_bytes: usize,
    /// Most bytes of one stored record.
    pub record_bytes: usize,
}

impl Settings {
    pub fn of(cfg: &Config, resource: &[KeyValue], record_bytes: usize) -> Settings {
        let r = &cfg.receivers.otlp;
        let attrs: Vec<KeyValue> = resource
            .iter()
            .filter(|a| !a.key.starts_with("service."))
            .cloned()
            .collect();
        Settings {
            wire_attrs: wire::Attrs::new(&attrs),
            attrs,
            auth: Auth {
                bearer: r.auth.bearer_token.as_ref().map(|s| s.expose().to_string()),
                key_id: r.auth.api_key_id.clone(),
                key_secret: r
                    .auth
                    .api_key_secret
                    .as_ref()
                    .map(|s| s.expose().to_string()),
            },
            max_bytes: usize::try_from(r.max_recv_msg_size_mb.saturating_mul(1 << 20))
                .unwrap_or(usize::MAX),
            record_bytes,
        }
    }
}

/// Credentials a client must present; none configured: every request is accepted.
#[derive(Default)]
pub struct Auth {
    bearer: Option<String>,
    key_id: Option<String>,
    key_secret: Option<String>,
}

impl Auth {
    /// Whether the request with these headers may send. `header` looks a header up by
    /// lowercase name. Secrets are compared in constant time.
    pub fn allows<'a>(&self, header: impl Fn(&str) -> Option<&'a str>) -> bool {
        if self.bearer.is_none() && self.key_secret.is_none() {
            return true;
        }
        if let (Some(want), Some(got)) = (&self.bearer, header("authorization")) {
            let token = got
                .strip_prefix("Bearer ")
                .or_else(|| got.strip_prefix("bearer "))
                .unwrap_or("");
            if constant_time_eq(want.as_bytes(), token.trim().as_bytes()) {
                return true;
            }
        }
        if let (Some(id), Some(secret)) = (&self.key_id, &self.key_secret) {
            let got_id = header("x-telemetryflow-key-id").unwrap_or("");
            let got_secret = header("x-telemetryflow-key-secret").unwrap_or("");
            // Both compared, whatever the first gives.
            let a = constant_time_eq(id.as_bytes(), got_id.as_bytes());
            let b = constant_time_eq(secret.as_bytes(), got_secret.as_bytes());
            if a & b {
                return true;
            }
        }
        false
    }
}

/// Compares without an early exit, so the time taken says nothing about where the first
/// difference is (only whether the lengths differ).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    diff == 0
}

/// Why a request was not taken (nothing of it is kept unless said otherwise).
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// Missing or wrong credentials.
    Unauthenticated,
    /// Undecodable body, unsupported content type or encoding.
    Invalid(String),
    /// Larger than `receivers.otlp.max_recv_msg_size_mb` (decompressed).
    TooLarge,
    /// The buffer stayed full, or the agent is stopping: retry later.
    Unavailable(&'static str),
    /// Too many requests at once: retry later.
    Throttled,
    /// No buffer for the signal (cannot happen while the receiver runs: it opens them all).
    NoBuffer,
}

impl Refusal {
    /// The `reason` label of the refused-items counter.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::Invalid(_) => "invalid",
            Refusal::TooLarge => "too_large",
            Refusal::Unavailable(r) => r,
            Refusal::Throttled => "throttled",
            Refusal::NoBuffer => "no_buffer",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::Unauthenticated => "missing or wrong credentials (receivers.otlp.auth)".into(),
            Refusal::Invalid(why) => why.clone(),
            Refusal::TooLarge => "request larger than receivers.otlp.max_recv_msg_size_mb".into(),
            Refusal::Unavailable("full") => "the agent's buffer is full; retry later".into(),
            Refusal::Unavailable(_) => "the agent is stopping; retry later".into(),
            Refusal::Throttled => "too many requests at once; retry later".into(),
            Refusal::NoBuffer => "this signal is not buffered by the agent".into(),
        }
    }
}

/// A request taken: stored, except `rejected` items (partial success).
#[derive(Debug, Clone, Default)]
pub struct Accepted {
    pub rejected: u64,
    pub message: String,
}

/// Both transports hand their decoded requests here.
pub struct Ingest {
    metrics: Arc<Buffer>,
    logs: Option<Arc<Buffer>>,
    traces: Option<Arc<Buffer>>,
    stats: Arc<Stats>,
    settings: Shared<Settings>,
    slots: Arc<Semaphore>,
    closing: AtomicBool,
}

impl Ingest {
    pub fn new(buffers: &Buffers, stats: Arc<Stats>, settings: Settings) -> Ingest {
        Ingest {
            metrics: buffers.metrics.clone(),
            logs: buffers.logs.clone(),
            traces: buffers.traces.clone(),
            stats,
            settings: Shared::new(settings),
            slots: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            closing: AtomicBool::new(false),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.get()
    }

    pub fn set_settings(&self, s: Settings) {
        self.settings.set(s);
    }

    fn buffer(&self, signal: Signal) -> Option<Arc<Buffer>> {
        match signal {
            Signal::Metrics => Some(self.metrics.clone()),
            Signal::Logs => self.logs.clone(),
            Signal::Traces => self.traces.clone(),
        }
    }

    /// Stores `req` in its signal's buffer and says what to answer.
    pub async fn ingest<T: Otlp>(
        &self,
        transport: &'static str,
        mut req: T,
    ) -> Result<Accepted, Refusal> {
        let n = u64::from(req.counts().0);
        let res = self
            .put(T::SIGNAL, n, move |settings| {
                let (rejected, message) = req.drop_invalid();
                req.merge_resource(&settings.attrs);
                let records = request::records(req, settings.record_bytes);
                (records, Accepted { rejected, message })
            })
            .await;
        self.answer(transport, T::SIGNAL, res)
    }

    /// Counts and logs what a request came to.
    fn answer(
        &self,
        transport: &'static str,
        signal: Signal,
        res: Result<(u64, Accepted), (u64, Refusal)>,
    ) -> Result<Accepted, Refusal> {
        match &res {
            Ok((items, a)) => self.stats.emit(Event::ReceiverAccepted {
                transport,
                signal,
                items: *items,
                rejected: a.rejected,
                detail: &a.message,
            }),
            Err((items, r)) => self.refused(transport, signal, *items, r),
        }
        res.map(|(_, a)| a).map_err(|(_, r)| r)
    }

    /// Stores a protobuf-encoded request: forwarded as it came when [`wire::forward`] takes
    /// it (the common case), else decoded and handled as [`Ingest::ingest`] does.
    pub async fn ingest_encoded<T: Otlp>(
        &self,
        transport: &'static str,
        body: bytes::Bytes,
    ) -> Result<Accepted, Refusal> {
        if let Some(shape) = T::WIRE {
            let settings = self.settings();
            if let Ok((bytes, n)) = wire::forward(&body, shape, &settings.wire_attrs)
                && bytes.len() <= settings.record_bytes
            {
                let items = u32::try_from(n).unwrap_or(u32::MAX);
                let record = Record {
                    signal: T::SIGNAL,
                    items,
                    units: items,
                    body: bytes.into(),
                    stored: bytes::Bytes::new(),
                };
                let records = if n > 0 { vec![record] } else { Vec::new() };
                let res = self
                    .put(T::SIGNAL, n, move |_| (records, Accepted::default()))
                    .await;
                return self.answer(transport, T::SIGNAL, res);
            }
        }
        match T::decode(body) {
            Ok(req) => self.ingest(transport, req).await,
            Err(e) => {
                let r = Refusal::Invalid(format!("undecodable request: {e}"));
                self.refused(transport, T::SIGNAL, 0, &r);
                Err(r)
            }
        }
    }

    /// Counts and logs a request that was not taken (`items`: 0 when it was not decoded).
    pub fn refused(&self, transport: &'static str, signal: Signal, items: u64, r: &Refusal) {
        self.stats.emit(Event::ReceiverRefused {
            transport,
            signal,
            items,
            reason: r.reason(),
            detail: &r.message(),
        });
    }

    /// Appends the records `make` builds (on a blocking thread, with the current settings)
    /// to `signal`'s buffer; `n`: the request's items, for the counters.
    async fn put(
        &self,
        signal: Signal,
        n: u64,
        make: impl FnOnce(&Settings) -> (Vec<Record>, Accepted) + Send + 'static,
    ) -> Result<(u64, Accepted), (u64, Refusal)> {
        if self.closing.load(Ordering::Relaxed) {
            return Err((n, Refusal::Unavailable("stopping")));
        }
        let Ok(_slot) = self.slots.clone().try_acquire_owned() else {
            return Err((n, Refusal::Throttled));
        };
        let Some(buffer) = self.buffer(signal) else {
            return Err((n, Refusal::NoBuffer));
        };
        let settings = self.settings.get();
        let work = move || {
            let (records, accepted) = make(&settings);
            let items: u64 = records.iter().map(|r| u64::from(r.items)).sum();
            let deadline = Instant::now() + PUSH_WAIT;
            for r in records {
                match buffer.push_until(r, deadline) {
                    Pushed::Durable | Pushed::Memory => {}
                    // A request split into records may have some of them stored: the client
                    // sends it all again (at least once, never lost).
                    Pushed::Returned => return Err((items, Refusal::Unavailable("full"))),
                    Pushed::Dropped => return Err((items, Refusal::Unavailable("stopping"))),
                }
            }
            Ok((items, accepted))
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(r) => r,
            Err(_) => Err((n, Refusal::Unavailable("stopping"))),
        }
    }
}

/// The running receiver: its listeners and the shared ingest.
pub struct Receiver {
    pub ingest: Arc<Ingest>,
    cancel: CancellationToken,
}

impl Receiver {
    /// Binds the enabled listeners (a taken or bad address is a start-up error naming the
    /// key) and serves them until [`Receiver::stop`].
    pub async fn start(
        cfg: &Config,
        buffers: &Buffers,
        stats: &Arc<Stats>,
        settings: Settings,
    ) -> Result<Receiver, String> {
        let r = &cfg.receivers.otlp;
        let ingest = Arc::new(Ingest::new(buffers, stats.clone(), settings));
        let cancel = CancellationToken::new();
        // Both bound before either serves: a taken port fails the start cleanly.
        let [(gkey, gon, gaddr), (hkey, hon, haddr)] = r.listeners();
        let grpc_listener = match gon {
            true => Some(crate::serve::listen(gkey, gaddr).await?),
            false => None,
        };
        let http_listener = match hon {
            true => Some(crate::serve::listen(hkey, haddr).await?),
            false => None,
        };
        if let Some((listener, addr)) = grpc_listener {
            grpc::serve(listener, &ingest, &cancel);
            tracing::info!(address = %addr, "OTLP/gRPC receiver listening");
        }
        if let Some((listener, addr)) = http_listener {
            http::serve(listener, &ingest, &cancel);
            tracing::info!(address = %addr, "OTLP/HTTP receiver listening at /v1/metrics, /v1/logs, /v1/traces");
        }
        Ok(Receiver { ingest, cancel })
    }

    /// Stops taking data: new requests are answered "retry later", requests being stored
    /// finish (within `timeout`), then the listeners close.
    pub async fn stop(self, timeout: Duration) {
        self.ingest.closing.store(true, Ordering::Relaxed);
        let slots = self.ingest.slots.clone();
        let all = u32::try_from(MAX_IN_FLIGHT).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(timeout, slots.acquire_many(all)).await;
        self.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_takes_a_bearer_token_or_the_key_pair() {
        let none = Auth::default();
        assert!(none.allows(|_| None));
        let a = Auth {
            bearer: Some("t0ken".into()),
            key_id: Some("tfk_1".into()),
            key_secret: Some("tfs_2".into()),
        };
        assert!(!a.allows(|_| None));
        assert!(a.allows(|h| (h == "authorization").then_some("Bearer t0ken")));
        assert!(!a.allows(|h| (h == "authorization").then_some("Bearer t0ke")));
        assert!(!a.allows(|h| (h == "authorization").then_some("t0ken")));
        let pair = |id: &'static str, s: &'static str| {
            move |h: &str| match h {
                "x-telemetryflow-key-id" => Some(id),
                "x-telemetryflow-key-secret" => Some(s),
                _ => None,
            }
        };
        assert!(a.allows(pair("tfk_1", "tfs_2")));
        assert!(!a.allows(pair("tfk_1", "tfs_3")));
        assert!(!a.allows(pair("tfk_9", "tfs_2")));
    }
}
