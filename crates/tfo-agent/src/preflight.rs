//! What is checked before the agent runs, shared by `run` and `config validate` so the two
//! can never disagree: the exporter that `run` would build (endpoint, TLS files, header
//! values) and the warnings said once at start (features not in this build, a platform
//! reached in clear text with secrets, a state directory that cannot keep the agent id).

use tfo_config::Config;
use tfo_exporter::Exporter;

use crate::identity::Identity;
use crate::{registry, settings};

/// The exporter for `cfg`, or `None` when `exporter.otlp.enabled` is false. The error names
/// the key to fix.
pub fn build_exporter(cfg: &Config, identity: &Identity) -> Result<Option<Exporter>, String> {
    let otlp = &cfg.exporter.otlp;
    if !otlp.enabled {
        tracing::warn!(
            "exporter.otlp.enabled is false: collected data stays in the buffer (up to its bound) until export is enabled"
        );
        return Ok(None);
    }
    let s = settings::exporter_settings(cfg, identity);
    let exp = match cfg.telemetryflow.protocol {
        tfo_config::Protocol::Grpc => Exporter::grpc(&s),
        tfo_config::Protocol::Http => Exporter::http(&s),
    }
    .map_err(|e| e.0)?;
    if cfg.telemetryflow.tls.enabled && cfg.telemetryflow.tls.skip_verify {
        tracing::warn!(
            "telemetryflow.tls.skip_verify is true: the collector's certificate is NOT verified"
        );
    }
    tracing::info!(target = %exp.target(), batch_size = otlp.batch_size, max_batch_size = otlp.max_batch_size, flush_interval = ?otlp.flush_interval, "exporting OTLP");
    Ok(Some(exp))
}

/// The transport alone (no log lines): for a second exporter of the same configuration,
/// e.g. the logs' own, built on their export runtime.
pub fn build_transport(cfg: &Config, identity: &Identity) -> Result<Exporter, String> {
    let s = settings::exporter_settings(cfg, identity);
    match cfg.telemetryflow.protocol {
        tfo_config::Protocol::Grpc => Exporter::grpc(&s),
        tfo_config::Protocol::Http => Exporter::http(&s),
    }
    .map_err(|e| e.0)
}

/// Everything `run` would refuse about this configuration that the config loader cannot
/// see, as `(key, message)`.
pub fn errors(cfg: &Config) -> Vec<(String, String)> {
    // The transports are built as `run` builds them, which needs a runtime context (the
    // gRPC channel is created lazily on it); nothing is connected or sent.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![("agent".into(), format!("cannot start a runtime: {e}"))],
    };
    let _ctx = rt.enter();
    let mut out = Vec::new();
    let identity = Identity::resolve(cfg, &settings::host_paths(cfg));
    let s = settings::exporter_settings(cfg, &identity);
    if cfg.exporter.otlp.enabled {
        let built = match cfg.telemetryflow.protocol {
            tfo_config::Protocol::Grpc => Exporter::grpc(&s).map(drop),
            tfo_config::Protocol::Http => Exporter::http(&s).map(drop),
        };
        if let Err(e) = built {
            out.push((key_in(&e.0, "telemetryflow.endpoint"), e.0));
        }
    }
    if cfg.heartbeat.enabled
        && let Some(ps) = crate::platform::settings(cfg, &identity.agent_name)
        && let Err(e) = tfo_platform::PlatformClient::new(&ps)
    {
        out.push((key_in(&e.0, "telemetryflow.api_endpoint"), e.0));
    }
    out
}

/// The key a setup error names first (they start with it, e.g. `telemetryflow.tls.ca_file
/// /x: not found`), else `default`.
fn key_in(message: &str, default: &str) -> String {
    let first = message.split_whitespace().next().unwrap_or("");
    let key = first.trim_end_matches(':');
    let known = ["telemetryflow.", "exporter.", "agent."];
    if known.iter().any(|k| key.starts_with(k))
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    {
        key.to_string()
    } else {
        default.to_string()
    }
}

/// Warnings said once at start (and by `config validate`).
pub fn warnings(cfg: &Config) -> Vec<String> {
    let mut w = registry::warnings(cfg);
    let root = &cfg.collectors.root_path;
    if !root.join("proc/stat").exists() {
        w.push(format!(
            "collectors.root_path is {} but {} does not exist: the host collectors will fail \
             every cycle (in a container, mount the host's / there read-only, e.g. at /host)",
            root.display(),
            root.join("proc/stat").display()
        ));
    }
    let tf = &cfg.telemetryflow;
    if cfg.heartbeat.enabled {
        match tf.api_endpoint.as_deref() {
            None => w.push(
                "heartbeat.enabled is true but telemetryflow.api_endpoint (TELEMETRYFLOW_API_ENDPOINT) \
                 is not set: platform registration, heartbeat and remote config are off \
                 (set telemetryflow.api_endpoint to the TelemetryFlow Platform API, or \
                 heartbeat.enabled: false when exporting to a plain OpenTelemetry Collector)"
                    .into(),
            ),
            Some(url)
                if url.starts_with("http://")
                    && tf.api_key_secret.as_ref().is_some_and(|s| !s.expose().is_empty()) =>
            {
                w.push(format!(
                    "telemetryflow.api_endpoint is clear-text HTTP ({}): the API key secret crosses the network unencrypted; use https://",
                    url.split('/').take(3).collect::<Vec<_>>().join("/")
                ))
            }
            Some(_) => {}
        }
    }
    if cfg.buffer.enabled {
        let dir = settings::buffer_dir(cfg);
        if !settings::writable(&dir) {
            w.push(format!(
                "buffer.path {} is not writable: the agent will keep data in memory only (bounded by buffer.memory_limit_mb) and lose it on restart; make the directory writable or set buffer.path",
                dir.display()
            ));
        }
    }
    let data = settings::data_dir(cfg);
    if !settings::writable(&data) {
        w.push(format!(
            "agent.data_dir {} is not writable: the agent id the platform assigns and the local state (`tfo-agent status`) are not kept across restarts; make it writable or set agent.data_dir",
            data.display()
        ));
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_root_path_without_proc_is_warned_about() {
        let mut cfg = Config::default();
        let root_warning = |cfg: &Config| {
            warnings(cfg)
                .into_iter()
                .any(|w| w.starts_with("collectors.root_path"))
        };
        assert!(!root_warning(&cfg), "/ has a /proc/stat here");
        cfg.collectors.root_path = "/nonexistent-root".into();
        assert!(root_warning(&cfg));
    }
}
