//! HTTP client for the platform's agent API.
//!
//! Every request carries both credential header pairs: `X-API-Key-ID`/`-Secret` (the agent
//! API, seed 001) and `X-TelemetryFlow-Key-ID`/`-Secret` (what the platform's ingestion
//! guard reads), plus `X-TelemetryFlow-Agent-ID` once an id is known. Failures are
//! classified so the caller knows whether waiting helps: 408, 425, 429 and 5xx are
//! retryable (honouring `Retry-After`, capped at
//! [`MAX_SERVER_DELAY`](tfo_exporter::outcome::MAX_SERVER_DELAY)), connection failures,
//! timeouts and answers cut short too; any other status is permanent (a wrong key does not
//! fix itself by retrying). Redirects are never followed: the credential headers would
//! follow them to whatever host the `Location` names. A 3xx is reported as
//! [`PlatformError::Redirected`], naming the `Location`, and not retried.

use std::future::Future;
use std::time::{Duration, SystemTime};

use reqwest::header::{
    ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};
use reqwest::{Method, Url};
use serde_json::Value;
use tfo_exporter::backoff::Backoff;
use tfo_exporter::outcome::parse_retry_after;

use crate::model::{
    HeartbeatBody, HeartbeatReply, RegisterReply, RegisterRequest, RemoteConfig,
    parse_heartbeat_reply, parse_register_reply, parse_remote_config,
};
use crate::settings::{PlatformSettings, SetupError};

pub const HEADER_API_KEY_ID: &str = "x-api-key-id";
pub const HEADER_API_KEY_SECRET: &str = "x-api-key-secret";
pub const HEADER_TFO_KEY_ID: &str = "x-telemetryflow-key-id";
pub const HEADER_TFO_KEY_SECRET: &str = "x-telemetryflow-key-secret";
pub const HEADER_TFO_AGENT_ID: &str = "x-telemetryflow-agent-id";

/// Largest reply body read; platform replies are small JSON documents.
const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Why a platform call failed. Messages never contain the API key secret.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlatformError {
    /// Worth retrying later: 408, 425, 429 or 5xx. `retry_after` is the server's
    /// `Retry-After`, when it sent one.
    #[error("{what}: the platform answered {status}{}: {message}", hint_retry(*retry_after))]
    Retryable {
        what: &'static str,
        status: u16,
        retry_after: Option<Duration>,
        message: String,
    },
    /// Retrying will not help until something changes (credentials, agent id, request).
    #[error("{what}: the platform refused the request with {status}: {message}{}", hint_status(*status))]
    Permanent {
        what: &'static str,
        status: u16,
        message: String,
    },
    /// The platform (or a proxy in front of it) answered with a redirect to `location`.
    /// Redirects are never followed, since the credentials would go wherever they point;
    /// not retried until `telemetryflow.api_endpoint` names the final address.
    #[error(
        "{what}: the platform redirects ({status}) to {location}; set telemetryflow.api_endpoint to the final address (redirects are never followed)"
    )]
    Redirected {
        what: &'static str,
        status: u16,
        location: String,
    },
    /// No complete HTTP answer: refused, reset, DNS, TLS, timeout, or a reply cut short.
    /// Retryable.
    #[error("{what}: cannot reach the platform at {url}: {message}")]
    Connection {
        what: &'static str,
        url: String,
        message: String,
    },
    /// A 2xx answer whose body does not say what the contract requires (registration
    /// without an id, config without a `config` object). Not retried.
    #[error("{what}: the platform's reply could not be used: {message}")]
    InvalidReply { what: &'static str, message: String },
}

fn hint_retry(after: Option<Duration>) -> String {
    match after {
        Some(d) => format!(" (retry after {}s)", d.as_secs_f64()),
        None => String::new(),
    }
}

fn hint_status(status: u16) -> &'static str {
    match status {
        401 => " (check telemetryflow.api_key_id and api_key_secret)",
        403 => " (the API key is not allowed to manage agents)",
        404 => " (the platform does not know this agent id, or the API endpoint path is wrong)",
        _ => "",
    }
}

impl PlatformError {
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PlatformError::Retryable { .. } | PlatformError::Connection { .. }
        )
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PlatformError::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, when the platform answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PlatformError::Retryable { status, .. }
            | PlatformError::Permanent { status, .. }
            | PlatformError::Redirected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Passed to the retry loop's observer before each wait, so the caller can log it.
#[derive(Debug)]
pub struct RetryNotice<'a> {
    /// 1 for the first failed attempt.
    pub attempt: u32,
    pub error: &'a PlatformError,
    /// How long the loop waits before the next attempt (`Retry-After` included).
    pub delay: Duration,
}

/// A client bound to one platform base URL and one API key pair. Cheap to clone.
#[derive(Clone)]
pub struct PlatformClient {
    http: reqwest::Client,
    base: Url,
    /// Shown in errors: the base URL without query or credentials.
    shown_base: String,
    secret: Option<String>,
    retry_initial: Duration,
    retry_max: Duration,
}

impl std::fmt::Debug for PlatformClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformClient")
            .field("base", &self.shown_base)
            .finish_non_exhaustive()
    }
}

impl PlatformClient {
    pub fn new(s: &PlatformSettings) -> Result<Self, SetupError> {
        let raw = s.base_url.trim();
        let mut base = Url::parse(raw).map_err(|e| {
            SetupError(format!(
                "platform API endpoint {raw:?} is not a URL ({e}); expected http(s)://host[:port]"
            ))
        })?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(SetupError(format!(
                "platform API endpoint {raw:?}: the scheme must be http or https"
            )));
        }
        if base.host_str().is_none() {
            return Err(SetupError(format!(
                "platform API endpoint {raw:?} has no host"
            )));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(SetupError(
                "platform API endpoint: credentials in the URL are not supported; use telemetryflow.api_key_id and api_key_secret".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(SetupError(format!(
                "platform API endpoint {raw:?}: a query or fragment is not allowed"
            )));
        }
        // Keep a path prefix, without a trailing slash, so paths append cleanly.
        let prefix = base.path().trim_end_matches('/').to_string();
        base.set_path(&prefix);
        let shown_base = base.as_str().trim_end_matches('/').to_string();

        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(id) = s.api_key_id.as_deref().filter(|v| !v.is_empty()) {
            let v = HeaderValue::from_str(id).map_err(|_| {
                SetupError(
                    "telemetryflow.api_key_id contains characters not allowed in an HTTP header"
                        .into(),
                )
            })?;
            headers.insert(HeaderName::from_static(HEADER_API_KEY_ID), v.clone());
            headers.insert(HeaderName::from_static(HEADER_TFO_KEY_ID), v);
        }
        let secret = s.api_key_secret.clone().filter(|v| !v.is_empty());
        if let Some(sec) = secret.as_deref() {
            let mut v = HeaderValue::from_str(sec).map_err(|_| {
                SetupError("telemetryflow.api_key_secret contains characters not allowed in an HTTP header".into())
            })?;
            v.set_sensitive(true);
            headers.insert(HeaderName::from_static(HEADER_API_KEY_SECRET), v.clone());
            headers.insert(HeaderName::from_static(HEADER_TFO_KEY_SECRET), v);
        }
        let tls = if base.scheme() == "https" {
            tfo_exporter::tls::client_config(&s.tls.clone().unwrap_or_default(), &[b"http/1.1"])
                .map_err(|e| SetupError(e.0))?
        } else {
            // Plain HTTP never uses it, but the client needs a TLS backend to be built
            // without depending on a system CA store being present.
            empty_tls_config()?
        };
        let timeout = s.timeout.max(Duration::from_millis(1));
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .default_headers(headers)
            .user_agent(s.user_agent())
            .no_proxy()
            // Never follow a redirect: the default headers carry the API key secret.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SetupError(format!("platform HTTP client: {e}")))?;
        Ok(PlatformClient {
            http,
            base,
            shown_base,
            secret,
            retry_initial: s.retry_initial_interval,
            retry_max: s.retry_max_interval,
        })
    }

    /// The base URL as used (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.shown_base
    }

    /// `{base}/api/v2/agents/...`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut p) = u.path_segments_mut() {
            p.pop_if_empty()
                .extend(["api", "v2", "agents"])
                .extend(segments);
        }
        u
    }

    /// One registration attempt. A configured or persisted id in `req.agent_id` is sent
    /// in the body and in `X-TelemetryFlow-Agent-ID`.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterReply, PlatformError> {
        const WHAT: &str = "registration";
        let body = serde_json::to_vec(req).map_err(|e| PlatformError::InvalidReply {
            what: WHAT,
            message: format!("encoding the request: {e}"),
        })?;
        let url = self.url(&["register"]);
        let (_, v) = self
            .call(WHAT, Method::POST, url, req.agent_id.as_deref(), Some(body))
            .await?;
        parse_register_reply(v).map_err(|message| PlatformError::InvalidReply {
            what: WHAT,
            message,
        })
    }

    /// Registration retried until it succeeds, a permanent error occurs, or
    /// `max_attempts` (when given) attempts have failed. Waits grow exponentially with
    /// jitter between the configured retry intervals, and never fall short of a
    /// `Retry-After`. `on_retry` sees every failure that will be retried (for logging).
    /// Cancel by dropping the future (e.g. in `tokio::select!` with a shutdown signal).
    pub async fn register_with_retry(
        &self,
        req: &RegisterRequest,
        max_attempts: Option<u32>,
        on_retry: impl FnMut(&RetryNotice<'_>),
    ) -> Result<RegisterReply, PlatformError> {
        self.with_retry(max_attempts, on_retry, || self.register(req))
            .await
    }

    /// The retry loop behind [`register_with_retry`](Self::register_with_retry), for any
    /// call.
    pub async fn with_retry<T, F, Fut>(
        &self,
        max_attempts: Option<u32>,
        mut on_retry: impl FnMut(&RetryNotice<'_>),
        mut call: F,
    ) -> Result<T, PlatformError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PlatformError>>,
    {
        let mut backoff = Backoff::new(self.retry_initial, self.retry_max);
        let mut attempt: u32 = 0;
        loop {
            attempt = attempt.saturating_add(1);
            let err = match call().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let exhausted = max_attempts.is_some_and(|m| attempt >= m);
            if !err.is_retryable() || exhausted {
                return Err(err);
            }
            let delay = backoff.next_delay(err.retry_after());
            on_retry(&RetryNotice {
                attempt,
                error: &err,
                delay,
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// One heartbeat for `agent_id`. A 404 means the platform no longer knows the id.
    pub async fn heartbeat(
        &self,
        agent_id: &str,
        body: &HeartbeatBody,
    ) -> Result<HeartbeatReply, PlatformError> {
        const WHAT: &str = "heartbeat";
        check_id(WHAT, agent_id)?;
        let bytes = serde_json::to_vec(body).map_err(|e| PlatformError::InvalidReply {
            what: WHAT,
            message: format!("encoding the request: {e}"),
        })?;
        let url = self.url(&[agent_id, "heartbeat"]);
        let (_, v) = self
            .call(WHAT, Method::POST, url, Some(agent_id), Some(bytes))
            .await?;
        Ok(parse_heartbeat_reply(v))
    }

    /// The platform's view of this agent, as it sent it.
    pub async fn status(&self, agent_id: &str) -> Result<Value, PlatformError> {
        const WHAT: &str = "status";
        check_id(WHAT, agent_id)?;
        let url = self.url(&[agent_id, "status"]);
        let (_, v) = self
            .call(WHAT, Method::GET, url, Some(agent_id), None)
            .await?;
        Ok(v)
    }

    /// The remote configuration for this agent. `204 No Content` means none.
    pub async fn fetch_config(&self, agent_id: &str) -> Result<RemoteConfig, PlatformError> {
        const WHAT: &str = "remote config";
        check_id(WHAT, agent_id)?;
        let url = self.url(&[agent_id, "config"]);
        let (status, v) = self
            .call(WHAT, Method::GET, url, Some(agent_id), None)
            .await?;
        if status == 204 {
            return Ok(RemoteConfig {
                version: None,
                config: serde_json::Map::new(),
            });
        }
        parse_remote_config(v).map_err(|message| PlatformError::InvalidReply {
            what: WHAT,
            message,
        })
    }

    /// Sends one request; returns the status and the JSON body (`Null` when empty).
    async fn call(
        &self,
        what: &'static str,
        method: Method,
        url: Url,
        agent_id: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Value), PlatformError> {
        // The URL holds no credentials (refused in `new`), so it can appear in errors.
        let shown_url = url.to_string();
        let mut req = self.http.request(method, url);
        if let Some(id) = agent_id {
            // Validated by check_id / validate_id, so it is a valid header value.
            if let Ok(v) = HeaderValue::from_str(id) {
                req = req.header(HEADER_TFO_AGENT_ID, v);
            }
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            PlatformError::Connection {
                what,
                url: shown_url.clone(),
                message: self.redact(&format!("{kind}: {}", error_chain(&e.without_url()))),
            }
        })?;
        let status = resp.status().as_u16();
        // Capped at MAX_SERVER_DELAY by the parser, whatever the server sends.
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        if (300..400).contains(&status) {
            let location = resp
                .headers()
                .get(LOCATION)
                .map(|v| self.redact(&shown_location(v.as_bytes())))
                .unwrap_or_else(|| "an address it does not name (no Location header)".into());
            return Err(PlatformError::Redirected {
                what,
                status,
                location,
            });
        }
        let bytes = read_limited(resp).await;
        if (200..300).contains(&status) {
            let bytes = bytes.map_err(|e| PlatformError::Connection {
                what,
                url: shown_url.clone(),
                message: format!("reading the reply: {e}"),
            })?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok((status, Value::Null));
            }
            return match serde_json::from_slice(&bytes) {
                Ok(v) => Ok((status, v)),
                // A heartbeat acknowledged with non-JSON text is still acknowledged.
                Err(_) if what == "heartbeat" => Ok((status, Value::Null)),
                Err(e) => Err(PlatformError::InvalidReply {
                    what,
                    message: format!("{status} with a body that is not JSON ({e})"),
                }),
            };
        }
        // An answer cut short is no answer: its status may be a proxy's and its
        // explanation is missing, so it is retried like a connection failure.
        let bytes = bytes.map_err(|e| PlatformError::Connection {
            what,
            url: shown_url.clone(),
            message: self.redact(&format!("the {status} reply was cut short: {e}")),
        })?;
        let message = self.redact(&error_message(&bytes, status));
        if status == 408 || status == 425 || status == 429 || status >= 500 {
            Err(PlatformError::Retryable {
                what,
                status,
                retry_after,
                message,
            })
        } else {
            Err(PlatformError::Permanent {
                what,
                status,
                message,
            })
        }
    }

    /// Removes the secret from text that came from the server or the HTTP stack, in case
    /// either echoes it.
    fn redact(&self, text: &str) -> String {
        match &self.secret {
            Some(s) if s.len() >= 4 => text.replace(s.as_str(), "[redacted]"),
            _ => text.to_string(),
        }
    }
}

/// `interval` moved by a random amount within ±`fraction` (e.g. 0.05 for ±5 %), so a
/// fleet started together does not heartbeat in lockstep.
pub fn jittered(interval: Duration, fraction: f64) -> Duration {
    let f = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let factor = 1.0 + f * (fastrand::f64() * 2.0 - 1.0);
    interval.mul_f64(factor)
}

/// A `Location` value as shown in an error: printable characters only, bounded.
fn shown_location(raw: &[u8]) -> String {
    const MAX: usize = 256;
    let text = String::from_utf8_lossy(raw);
    let text = text.trim();
    let mut s: String = text.chars().filter(|c| !c.is_control()).take(MAX).collect();
    if text.chars().count() > MAX {
        s.push('…');
    }
    if s.is_empty() {
        "an empty Location".into()
    } else {
        s
    }
}

fn check_id(what: &'static str, id: &str) -> Result<(), PlatformError> {
    crate::idstore::validate_id(id).map_err(|e| PlatformError::InvalidReply {
        what,
        message: format!("agent id {e}"),
    })
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                let room = MAX_REPLY_BYTES.saturating_sub(out.len());
                out.extend_from_slice(&c[..c.len().min(room)]);
                if out.len() >= MAX_REPLY_BYTES {
                    return Ok(out);
                }
            }
            Ok(None) => return Ok(out),
            Err(e) => return Err(error_chain(&e.without_url())),
        }
    }
}

/// The server's explanation: `message` or `error` from a JSON body, else the text.
fn error_message(body: &[u8], status: u16) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let o = v.as_object()?;
        let pick = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Object(e) => e
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            Value::Array(a) => {
                let parts: Vec<&str> = a.iter().filter_map(|x| x.as_str()).collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            _ => None,
        };
        o.get("message")
            .and_then(pick)
            .or_else(|| o.get("error").and_then(pick))
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    let text: String = text.chars().filter(|c| !c.is_control()).take(300).collect();
    if text.is_empty() {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no explanation")
            .to_string()
    } else {
        text
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// A rustls config with no trust anchors, for clients that only speak plain HTTP.
pub(crate) fn empty_tls_config() -> Result<rustls::ClientConfig, SetupError> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError(format!("TLS setup: {e}")))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> Result<PlatformClient, SetupError> {
        PlatformClient::new(&PlatformSettings::new(base, "a", "1.0.0"))
    }

    #[test]
    fn urls_keep_prefix_and_encode_ids() {
        let c = client("http://127.0.0.1:9/tfo/").unwrap();
        assert_eq!(
            c.url(&["register"]).as_str(),
            "http://127.0.0.1:9/tfo/api/v2/agents/register"
        );
        assert_eq!(
            c.url(&["a/b", "heartbeat"]).as_str(),
            "http://127.0.0.1:9/tfo/api/v2/agents/a%2Fb/heartbeat"
        );
        let c = client("https://platform.example.com").unwrap_or_else(|e| {
            // No system CA store in a minimal container: the error must say so.
            assert!(e.0.contains("CA"), "{e}");
            client("http://platform.example.com").unwrap()
        });
        assert!(
            c.url(&["x", "status"])
                .as_str()
                .ends_with("/api/v2/agents/x/status")
        );
    }

    #[test]
    fn bad_base_urls_are_explained() {
        for (u, want) in [
            ("platform.example.com", "not a URL"),
            ("ftp://h", "scheme"),
            ("http://u:p@h", "credentials"),
            ("http://h/?q=1", "query"),
        ] {
            let e = client(u).unwrap_err();
            assert!(e.0.contains(want), "{u}: {e}");
        }
    }

    #[test]
    fn error_messages_from_bodies() {
        assert_eq!(error_message(br#"{"message":"bad key"}"#, 401), "bad key");
        assert_eq!(
            error_message(br#"{"error":{"message":"nope"}}"#, 400),
            "nope"
        );
        assert_eq!(error_message(br#"{"message":["a","b"]}"#, 400), "a; b");
        assert_eq!(error_message(b"plain\ntext", 500), "plaintext");
        assert_eq!(error_message(b"", 404), "Not Found");
    }

    #[test]
    fn jitter_stays_within_bounds_and_varies() {
        let base = Duration::from_secs(60);
        let draws: Vec<Duration> = (0..200).map(|_| jittered(base, 0.05)).collect();
        assert!(
            draws
                .iter()
                .all(|d| *d >= Duration::from_secs(57) && *d <= Duration::from_secs(63))
        );
        assert!(draws.iter().any(|d| *d != draws[0]), "no jitter at all");
        assert_eq!(jittered(base, 0.0), base);
        assert_eq!(jittered(base, f64::NAN), base);
    }

    #[test]
    fn permanent_401_hints_at_the_keys() {
        let e = PlatformError::Permanent {
            what: "registration",
            status: 401,
            message: "Unauthorized".into(),
        };
        let s = e.to_string();
        assert!(s.contains("401") && s.contains("api_key_id"), "{s}");
        assert!(!e.is_retryable());
    }
}
