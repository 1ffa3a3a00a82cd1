//! Client settings, resolved from the agent configuration by the caller.

use std::fmt;
use std::time::Duration;

use tfo_exporter::tls::TlsSettings;

/// Connection and identity settings for the platform API. The agent maps
/// `telemetryflow.api_endpoint`, the API key pair, `agent.name`, TLS and retry settings onto
/// this struct; nothing here reads configuration files.
#[derive(Clone)]
pub struct PlatformSettings {
    /// `http://` or `https://` base URL; the client appends `/api/v2/agents/...`. A path
    /// prefix (`https://example.com/tfo`) is kept.
    pub base_url: String,
    pub api_key_id: Option<String>,
    /// Never printed: `Debug` redacts it and errors never contain it.
    pub api_key_secret: Option<String>,
    pub agent_name: String,
    /// Agent version, for `User-Agent` and the registration body.
    pub version: String,
    /// Used when `base_url` is `https://` (the scheme decides, as for a browser). `None`
    /// means the system CA store with default verification.
    pub tls: Option<TlsSettings>,
    /// Per-request timeout, connection included.
    pub timeout: Duration,
    pub retry_initial_interval: Duration,
    pub retry_max_interval: Duration,
}

impl PlatformSettings {
    /// Settings with the defaults for everything but the base URL and agent identity:
    /// 10 s timeout, retries from 1 s up to 60 s.
    pub fn new(
        base_url: impl Into<String>,
        agent_name: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        PlatformSettings {
            base_url: base_url.into(),
            api_key_id: None,
            api_key_secret: None,
            agent_name: agent_name.into(),
            version: version.into(),
            tls: None,
            timeout: Duration::from_secs(10),
            retry_initial_interval: Duration::from_secs(1),
            retry_max_interval: Duration::from_secs(60),
        }
    }

    /// `tfo-agent/<version> (<os>; <arch>)`, e.g. `tfo-agent/1.2.0 (linux; amd64)`.
    pub fn user_agent(&self) -> String {
        user_agent(&self.version)
    }
}

pub fn user_agent(version: &str) -> String {
    format!(
        "tfo-agent/{version} ({}; {})",
        std::env::consts::OS,
        go_arch()
    )
}

/// The architecture in the names the platform and OpenTelemetry's `host.arch` use
/// (`amd64`, `arm64`), which differ from Rust's target names for the common cases.
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "386",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

impl fmt::Debug for PlatformSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlatformSettings")
            .field("base_url", &self.base_url)
            .field("api_key_id", &self.api_key_id)
            .field(
                "api_key_secret",
                &self.api_key_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("agent_name", &self.agent_name)
            .field("version", &self.version)
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .field("retry_initial_interval", &self.retry_initial_interval)
            .field("retry_max_interval", &self.retry_max_interval)
            .finish()
    }
}

/// The settings cannot make a client (bad URL, unreadable CA file, invalid header value).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_secret() {
        let mut s = PlatformSettings::new("http://127.0.0.1:1", "a", "1.0.0");
        s.api_key_secret = Some("tfs_very_secret".into());
        let d = format!("{s:?}");
        assert!(!d.contains("tfs_very_secret"), "{d}");
        assert!(d.contains("[redacted]"));
    }

    #[test]
    fn user_agent_shape() {
        let ua = user_agent("1.2.3");
        assert!(ua.starts_with("tfo-agent/1.2.3 ("), "{ua}");
        assert!(
            ua.ends_with(&format!("{}; {})", std::env::consts::OS, go_arch())),
            "{ua}"
        );
    }
}
