//! OTLP/HTTP transport: protobuf bodies POSTed to `/v1/<signal>` (community) or
//! `/v2/<signal>` (TelemetryFlow), gzip via `Content-Encoding`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use prost::Message;
use reqwest::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, RETRY_AFTER,
};

use crate::compress::{self, GzipPool};
use crate::grpc::{delivered_from_body, parse_endpoint};
use crate::outcome::{Outcome, classify_http, parse_retry_after};
use crate::{ExporterSettings, SetupError, Signal};

/// Most bytes of an answer body read (partial success, error message); the rest is never
/// read, so a misbehaving server cannot make the agent buffer megabytes of error page.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

pub struct HttpExporter {
    client: reqwest::Client,
    base: String,
    version: &'static str,
    gzip: Option<Arc<GzipPool>>,
}

impl HttpExporter {
    pub fn new(s: &ExporterSettings) -> Result<Self, SetupError> {
        let (host, port, scheme_tls) = parse_endpoint(&s.endpoint, 4318)?;
        let tls = s.tls.is_some() || scheme_tls == Some(true);
        let uri_host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let base = format!("{}://{uri_host}:{port}", if tls { "https" } else { "http" });
        let mut headers = HeaderMap::new();
        for (k, v) in &s.headers {
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                SetupError(format!("header name {k:?} is not a valid HTTP header name"))
            })?;
            let mut val = HeaderValue::from_str(v).map_err(|_| {
                SetupError(format!(
                    "header {k:?}: value is not a valid HTTP header value"
                ))
            })?;
            val.set_sensitive(true);
            headers.insert(name, val);
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-protobuf"),
        );
        // `tls.server_name` is honoured by the verifier inside this config.
        let tls_config = if tls {
            crate::tls::client_config(&s.tls.clone().unwrap_or_default(), &[b"http/1.1"])?
        } else {
            crate::tls::plain_only_config()?
        };
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config)
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .default_headers(headers)
            .user_agent(s.user_agent.clone())
            .no_proxy()
            // A redirect is answered as Refused and never followed: following it would send
            // the credentials in the default headers to wherever the Location points.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| SetupError(format!("HTTP client: {e}")))?;
        Ok(HttpExporter {
            client,
            base,
            version: s.http_path_version,
            gzip: s.gzip.then(|| Arc::new(GzipPool::default())),
        })
    }

    pub fn target(&self) -> String {
        format!("{}/{}/<signal>", self.base, self.version)
    }

    pub fn url(&self, signal: Signal) -> String {
        format!("{}/{}/{}", self.base, self.version, signal.as_str())
    }

    pub async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        let mut req = self.client.post(self.url(signal));
        let body = match &self.gzip {
            Some(pool) => {
                req = req.header(CONTENT_ENCODING, "gzip");
                match compress::gzip_off_runtime(pool, body, 0).await {
                    Ok(v) => Bytes::from(v),
                    Err(e) => {
                        return Outcome::Permanent {
                            reason: format!("gzip: {e}"),
                        };
                    }
                }
            }
            None => body,
        };
        let mut resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Outcome::connection_failure(format!(
                    "{what}: {}",
                    error_chain(&e.without_url())
                ));
            }
        };
        let status = resp.status();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after =
            header(RETRY_AFTER).and_then(|v| parse_retry_after(&v, SystemTime::now()));
        let location = header(LOCATION);
        let body = match read_capped(&mut resp, MAX_ANSWER_BYTES).await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                // The server answered 2xx: the data was accepted even if the body was cut.
                return Outcome::Delivered {
                    rejected: 0,
                    message: format!("reading response: {}", error_chain(&e.without_url())),
                };
            }
            Err(e) => {
                // No complete answer: the status line may be a proxy's guess, and the
                // explanation is missing. Treat it as the connection failure it is.
                return Outcome::connection_failure(format!(
                    "connection failed while reading the HTTP {} answer: {}",
                    status.as_u16(),
                    error_chain(&e.without_url())
                ));
            }
        };
        if status.is_success() {
            return delivered_from_body(signal, body);
        }
        // OTLP servers answer errors with a google.rpc.Status; show its message if present.
        let message = tonic_types::pb::Status::decode(body.clone())
            .ok()
            .map(|s| s.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        let message: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(200)
            .collect();
        classify_http(
            status.as_u16(),
            retry_after,
            location.as_deref(),
            message.trim(),
        )
    }
}

/// Reads at most `cap` bytes of the body, then stops (the rest is never read).
async fn read_capped(resp: &mut reqwest::Response, cap: usize) -> Result<Bytes, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Ok(Bytes::from(out))
}

fn error_chain(e: &dyn std::error::Error) -> String {
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
