//! The GetFlows client: connect, follow the stream into the aggregator, reconnect.
//!
//! Faults are reported through `tracing` without flooding: the first failure of a kind is
//! a warning (the missing node socket with the fix), repeats are debug, and the recovery
//! is one info line. A missing socket (Cilium or Hubble not installed) is retried every
//! `retry_missing` (30 s); other failures back off exponentially with jitter from
//! `backoff_initial` to `backoff_max`. The aggregator lives across reconnects, so counts
//! continue; flows Hubble produced while the stream was down are not replayed (`follow`
//! with `number: 0` sends only new flows), so nothing is counted twice.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::transport::{Channel, Endpoint};

use crate::aggregate::Aggregator;
use crate::proto::observer::GetFlowsRequest;
use crate::proto::observer::observer_client::ObserverClient;
pub use crate::tls::TlsOptions;

/// Hubble Relay's port, used when an address has none.
pub const RELAY_PORT: u16 = 4245;
/// The fix printed when the node socket is missing.
pub const MISSING_FIX: &str = "is Cilium with Hubble installed (hubble.enabled) and /var/run/cilium mounted into the agent? \
     Otherwise set collectors.ebpf.hubble.address (Relay: host:4245)";
/// Largest message accepted from the server (a flow is well under 10 KiB).
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// Where the observer API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// A Unix socket (`unix:///var/run/cilium/hubble.sock`).
    Unix(PathBuf),
    /// TCP `host:port` (Relay, or a Cilium agent's own `:4244` listener).
    Tcp { host: String, port: u16 },
}

impl Address {
    /// `unix:///path` (or `unix:/path`), or `host:port` (also `[v6]:port`, `http://` or
    /// `https://` before it, the port defaulting to 4245).
    pub fn parse(s: &str) -> Result<Address, String> {
        let s = s.trim();
        let bad = |why: &str| {
            format!(
                "collectors.ebpf.hubble.address {s:?}: {why} (expected unix:///var/run/cilium/hubble.sock or host:4245)"
            )
        };
        if let Some(rest) = s.strip_prefix("unix:") {
            let path = rest.strip_prefix("//").unwrap_or(rest);
            if !path.starts_with('/') {
                return Err(bad("the socket path must be absolute"));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .unwrap_or(s)
            .trim_end_matches('/');
        if rest.is_empty() || rest.contains('/') {
            return Err(bad("not host:port"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            match after.strip_prefix(':') {
                Some(p) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None if after.is_empty() => (h, RELAY_PORT),
                None => return Err(bad("not host:port")),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, p.parse().map_err(|_| bad("bad port"))?),
                None => (rest, RELAY_PORT),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Address::Tcp {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix://{}", p.display()),
            Address::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Address::Tcp { host, port } => write!(f, "{host}:{port}"),
        }
    }
}

/// How the client connects and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    pub address: Address,
    /// TLS (TCP addresses only).
    pub tls: Option<TlsOptions>,
    /// Retry period while the Unix socket does not exist.
    pub retry_missing: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub connect_timeout: Duration,
}

impl ClientOptions {
    pub fn new(address: Address, tls: Option<TlsOptions>) -> ClientOptions {
        ClientOptions {
            address,
            tls,
            retry_missing: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// What the client is doing, for readiness and self-metrics.
#[derive(Debug, Default)]
pub struct Status {
    connected: AtomicBool,
    /// Streams opened.
    pub streams: AtomicU64,
    /// Failed attempts and broken streams.
    pub failures: AtomicU64,
    /// Messages received (flows, lost events, others).
    pub messages: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Status {
    /// Whether a GetFlows stream is open.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// The last failure, until the next stream opens.
    pub fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_error(&self, e: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }
}

/// Why an attempt failed, which decides how it is reported and retried.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    /// The Unix socket does not exist.
    Missing(String),
    /// TLS files unreadable or invalid.
    Setup(String),
    /// Connecting or calling GetFlows failed, or an open stream broke.
    Connect(String),
}

impl Failure {
    fn kind(&self) -> u8 {
        match self {
            Failure::Missing(_) => 0,
            Failure::Setup(_) => 1,
            Failure::Connect(_) => 2,
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Connects a channel (eagerly, so connect failures surface here).
async fn connect(opts: &ClientOptions) -> Result<Channel, Failure> {
    match &opts.address {
        Address::Unix(path) => {
            if !path.exists() {
                return Err(Failure::Missing(format!(
                    "the Hubble socket {} does not exist",
                    path.display()
                )));
            }
            let path = path.clone();
            let connector = tower::service_fn(move |_: tonic::transport::Uri| {
                let path = path.clone();
                async move {
                    let s = tokio::net::UnixStream::connect(path).await?;
                    Ok::<_, std::io::Error>(TokioIo::new(s))
                }
            });
            Endpoint::from_static("http://hubble.sock")
                .connect_timeout(opts.connect_timeout)
                .connect_with_connector(connector)
                .await
                .map_err(|e| Failure::Connect(chain(&e)))
        }
        Address::Tcp { host, port } => {
            let tls = match &opts.tls {
                Some(t) => Some(crate::tls::connector(t, host).map_err(Failure::Setup)?),
                None => None,
            };
            let uri_host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let endpoint = Endpoint::from_shared(format!("http://{uri_host}:{port}"))
                .map_err(|e| Failure::Setup(format!("collectors.ebpf.hubble.address: {e}")))?
                .connect_timeout(opts.connect_timeout)
                .tcp_nodelay(true);
            let (h, p) = (host.clone(), *port);
            let connector = tower::service_fn(move |_: tonic::transport::Uri| {
                let (h, tls) = (h.clone(), tls.clone());
                async move {
                    let tcp = tokio::net::TcpStream::connect((h.as_str(), p)).await?;
                    tcp.set_nodelay(true)?;
                    let io: Box<dyn Io> = match tls {
                        Some((conn, name)) => Box::new(conn.connect(name, tcp).await?),
                        None => Box::new(tcp),
                    };
                    Ok::<_, std::io::Error>(TokioIo::new(io))
                }
            });
            endpoint
                .connect_with_connector(connector)
                .await
                .map_err(|e| Failure::Connect(chain(&e)))
        }
    }
}

/// An error and its sources, `: `-joined.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = c.source();
    }
    s
}

/// Opens GetFlows and feeds it to `agg` until the stream ends: why, and after how many
/// messages.
async fn follow(
    opts: &ClientOptions,
    agg: &Mutex<Aggregator>,
    status: &Status,
    reported: &mut Option<u8>,
) -> (Failure, u64) {
    let channel = match connect(opts).await {
        Ok(c) => c,
        Err(f) => return (f, 0),
    };
    let mut client = ObserverClient::new(channel).max_decoding_message_size(MAX_MESSAGE);
    let mut stream = match client
        .get_flows(GetFlowsRequest {
            number: 0,
            follow: true,
        })
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return (Failure::Connect(status_text(&s)), 0),
    };
    status.connected.store(true, Ordering::Relaxed);
    status.streams.fetch_add(1, Ordering::Relaxed);
    let mut n = 0u64;
    let end = loop {
        match stream.message().await {
            Ok(Some(m)) => {
                if n == 0 {
                    // Recovered only once something arrives: a server that accepts the
                    // call and fails it at once is still a failure, not a recovery.
                    status.set_error(None);
                    if reported.take().is_some() {
                        tracing::info!(collector = "hubble", address = %opts.address, "receiving Hubble flows again");
                    } else {
                        tracing::info!(collector = "hubble", address = %opts.address, "receiving Hubble flows");
                    }
                }
                n += 1;
                status.messages.fetch_add(1, Ordering::Relaxed);
                agg.lock().unwrap_or_else(|p| p.into_inner()).record(&m);
            }
            Ok(None) => break Failure::Connect("the server ended the flow stream".into()),
            Err(s) => break Failure::Connect(status_text(&s)),
        }
    };
    status.connected.store(false, Ordering::Relaxed);
    (end, n)
}

fn status_text(s: &tonic::Status) -> String {
    let mut t = format!("{:?}: {}", s.code(), s.message());
    if let Some(src) = std::error::Error::source(s) {
        t.push_str(": ");
        t.push_str(&chain(src));
    }
    t
}

/// Follows GetFlows into `agg` until `stop` completes, reconnecting as needed.
pub async fn run(
    opts: ClientOptions,
    agg: Arc<Mutex<Aggregator>>,
    status: Arc<Status>,
    stop: impl Future<Output = ()>,
) {
    let work = async {
        let mut attempt: u32 = 0;
        // The kind of failure last warned about; repeats of it are debug lines.
        let mut reported: Option<u8> = None;
        loop {
            let (failure, received) = follow(&opts, &agg, &status, &mut reported).await;
            status.failures.fetch_add(1, Ordering::Relaxed);
            if received > 0 {
                attempt = 0;
            }
            let delay = match &failure {
                Failure::Missing(_) | Failure::Setup(_) => opts.retry_missing,
                Failure::Connect(_) => backoff(&opts, attempt),
            };
            attempt = attempt.saturating_add(1);
            let (text, fix) = match &failure {
                Failure::Missing(t) => (t.clone(), Some(MISSING_FIX)),
                Failure::Setup(t) | Failure::Connect(t) => (t.clone(), None),
            };
            status.set_error(Some(text.clone()));
            let retry = format!("{:.1}s", delay.as_secs_f64());
            if reported != Some(failure.kind()) {
                reported = Some(failure.kind());
                match fix {
                    Some(fix) => {
                        tracing::warn!(collector = "hubble", address = %opts.address, error = %text, fix, retry_in = %retry, "Hubble is not reachable; retrying")
                    }
                    None => {
                        tracing::warn!(collector = "hubble", address = %opts.address, error = %text, retry_in = %retry, "Hubble flow stream failed; retrying")
                    }
                }
            } else {
                tracing::debug!(collector = "hubble", address = %opts.address, error = %text, retry_in = %retry, "Hubble still unreachable");
            }
            tokio::time::sleep(delay).await;
        }
    };
    tokio::select! {
        _ = stop => {}
        _ = work => {}
    }
    status.connected.store(false, Ordering::Relaxed);
}

/// Exponential with full jitter in `[ceiling/2, ceiling]`.
fn backoff(opts: &ClientOptions, attempt: u32) -> Duration {
    let initial = opts.backoff_initial.max(Duration::from_millis(1));
    let ceiling = initial
        .saturating_mul(1u32 << attempt.min(20))
        .min(opts.backoff_max.max(initial));
    let half = ceiling / 2;
    let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=span))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse(crate::DEFAULT_ADDRESS).unwrap(),
            Address::Unix("/var/run/cilium/hubble.sock".into())
        );
        assert_eq!(
            Address::parse("unix:/tmp/h.sock").unwrap(),
            Address::Unix("/tmp/h.sock".into())
        );
        assert_eq!(
            Address::parse("hubble-relay.kube-system:4245").unwrap(),
            Address::Tcp {
                host: "hubble-relay.kube-system".into(),
                port: 4245
            }
        );
        assert_eq!(
            Address::parse("localhost").unwrap().to_string(),
            "localhost:4245"
        );
        assert_eq!(
            Address::parse("https://[::1]:80").unwrap().to_string(),
            "[::1]:80"
        );
        for bad in ["unix://relative", "", ":80", "a:b", "host:4245/path"] {
            assert!(Address::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_grows_to_the_cap() {
        let o = ClientOptions::new(Address::Unix("/x".into()), None);
        let d0 = backoff(&o, 0);
        assert!(d0 >= Duration::from_millis(500) && d0 <= Duration::from_secs(1));
        let d9 = backoff(&o, 9);
        assert!(d9 >= Duration::from_secs(15) && d9 <= Duration::from_secs(30));
    }
}
