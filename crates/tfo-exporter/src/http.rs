//! OTLP/HTTP transport: protobuf bodies POSTed to `/v1/<signal>` (community) or
//! `/v2/<signal>` (TelemetryFlow), gzip via `Content-Encoding`.

use std::io::Write;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;
use reqwest::header::{
    CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};

use crate::grpc::{delivered_from_body, parse_endpoint};
use crate::outcome::{Outcome, classify_http, parse_retry_after};
use crate::{ExporterSettings, SetupError, Signal};

pub struct HttpExporter {
    client: reqwest::Client,
    base: String,
    version: &'static str,
    gzip: bool,
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
        let tls_settings = s.tls.clone().unwrap_or_default();
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
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(crate::tls::client_config(&tls_settings, &[b"http/1.1"])?)
            .timeout(s.timeout)
            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
            .default_headers(headers)
            .user_agent(s.user_agent.clone())
            .no_proxy()
            .build()
            .map_err(|e| SetupError(format!("HTTP client: {e}")))?;
        Ok(HttpExporter {
            client,
            base,
            version: s.http_path_version,
            gzip: s.gzip,
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
        let body = if self.gzip {
            req = req.header(CONTENT_ENCODING, "gzip");
            let mut enc =
                GzEncoder::new(Vec::with_capacity(body.len() / 4), Compression::default());
            if let Err(e) = enc.write_all(&body) {
                return Outcome::Permanent {
                    reason: format!("gzip: {e}"),
                };
            }
            match enc.finish() {
                Ok(v) => Bytes::from(v),
                Err(e) => {
                    return Outcome::Permanent {
                        reason: format!("gzip: {e}"),
                    };
                }
            }
        } else {
            body
        };
        let resp = match req.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Outcome::connection_failure(format!("{what}: {}", error_chain(&e)));
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if status.is_success() => {
                // The server answered 2xx: the data was accepted even if the body was cut.
                return Outcome::Delivered {
                    rejected: 0,
                    message: format!("reading response: {e}"),
                };
            }
            Err(_) => Bytes::new(),
        };
        if status.is_success() {
            return delivered_from_body(signal, body);
        }
        // OTLP servers answer errors with a google.rpc.Status; show its message if present.
        let message = tonic_types::pb::Status::decode(body.clone())
            .ok()
            .map(|s| s.message)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(&body);
                text.chars()
                    .take(200)
                    .collect::<String>()
                    .trim()
                    .to_string()
            });
        classify_http(status.as_u16(), retry_after, &message)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
