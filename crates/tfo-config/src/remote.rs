//! Configuration pushed by the platform (`GET /api/v2/agents/{id}/config`): a partial
//! document in the same schema as the YAML file, merged over the running configuration.
//!
//! The merge goes through the same deserializer and [`Config::validate`] as a file, so a
//! remote config is held to exactly the same rules, and errors name the key path. Changes to
//! endpoints, credentials, TLS, headers and paths are "sensitive": they are refused unless
//! `remote_config.allow_sensitive: true` (checked against the *running* configuration, so a
//! remote config cannot grant itself the permission).

use serde_json::Value;

use crate::error::{ConfigError, ErrorKind};
use crate::secret::{REDACTED, Secret};
use crate::{Config, schema};

/// Keys (or key prefixes ending in `.`) whose remote change needs `allow_sensitive`.
pub const SENSITIVE: &[&str] = &[
    "telemetryflow.",
    "exporter.otlp.headers",
    "buffer.path",
    "agent.data_dir",
    "agent.id",
    "collectors.root_path",
    "prometheus.listen_address",
    "health.listen_address",
    "remote_config.",
];

pub fn is_sensitive(path: &str) -> bool {
    SENSITIVE.iter().any(|s| {
        if s.ends_with('.') {
            path.starts_with(s)
        } else {
            path == *s || path.starts_with(&format!("{s}."))
        }
    })
}

/// The outcome of merging a remote document.
#[derive(Debug, Clone)]
pub struct RemoteMerge {
    /// The running configuration with the remote values applied, validated.
    pub config: Config,
    /// Dotted paths whose value changed, sorted.
    pub changed: Vec<String>,
}

fn remote_error(path: Option<String>, message: String, allowed: Option<String>) -> ConfigError {
    ConfigError::new(ErrorKind::InvalidValue, "<remote config>", message)
        .with_path(path)
        .with_allowed(allowed)
}

/// Merges `remote` (a JSON object in the YAML schema, possibly partial) over `current`.
/// Unknown keys, wrong types, invalid values and refused sensitive changes are errors; the
/// caller keeps `current` on error.
pub fn merge_remote(current: &Config, remote: &Value) -> Result<RemoteMerge, ConfigError> {
    if !remote.is_object() {
        return Err(remote_error(
            None,
            "the remote config is not a JSON object".into(),
            Some("an object in the YAML schema, e.g. {\"agent\": {\"tags\": {...}}}".into()),
        ));
    }
    check_keys(remote, "")?;
    let base =
        serde_json::to_value(current).map_err(|e| remote_error(None, e.to_string(), None))?;
    let mut merged = base.clone();
    deep_merge(&mut merged, remote);
    let de = serde_path_to_error::deserialize::<_, Config>(&merged);
    let mut config = de.map_err(|e| {
        let path = e.path().to_string();
        remote_error(
            Some(path.clone()),
            e.into_inner().to_string(),
            crate::allowed_for(&path),
        )
    })?;
    // The redacted serialization replaced secrets with a placeholder: keep the running values
    // unless the remote document set them.
    restore_secrets(current, remote, &mut config);
    config.normalize();
    config.validate().map_err(|e| {
        remote_error(
            e.path().map(str::to_string),
            e.message().to_string(),
            e.allowed().map(str::to_string),
        )
    })?;
    let mut changed = Vec::new();
    diff(
        &base,
        &serde_json::to_value(&config).unwrap_or_default(),
        "",
        &mut changed,
    );
    // Secret values are redacted on both sides of the diff: a remote secret is a change.
    if let Some(s) = remote.pointer("/telemetryflow/api_key_secret")
        && s.as_str()
            != current
                .telemetryflow
                .api_key_secret
                .as_ref()
                .map(Secret::expose)
    {
        changed.push("telemetryflow.api_key_secret".into());
    }
    if let Some(h) = remote
        .pointer("/exporter/otlp/headers")
        .and_then(Value::as_object)
    {
        for (k, v) in h {
            if current.exporter.otlp.headers.get(k).map(String::as_str) != v.as_str() {
                changed.push(format!("exporter.otlp.headers.{k}"));
            }
        }
    }
    changed.sort();
    changed.dedup();
    if !current.remote_config.allow_sensitive {
        let refused: Vec<&String> = changed.iter().filter(|p| is_sensitive(p)).collect();
        if let Some(first) = refused.first() {
            return Err(remote_error(
                Some(first.to_string()),
                format!(
                    "sensitive change refused ({}): endpoints, credentials, TLS, headers and paths \
                     can only be changed remotely with remote_config.allow_sensitive: true in the local file",
                    refused
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                None,
            ));
        }
    }
    Ok(RemoteMerge { config, changed })
}

/// Rejects keys that are not in the schema, naming the full path.
fn check_keys(v: &Value, prefix: &str) -> Result<(), ConfigError> {
    let Some(obj) = v.as_object() else {
        return Ok(());
    };
    for (k, child) in obj {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        if schema::is_free_form(&path) {
            continue;
        }
        let Some(key) = schema::lookup(&path) else {
            let section = prefix;
            return Err(ConfigError::new(
                ErrorKind::UnknownKey,
                "<remote config>",
                format!("unknown key `{k}`"),
            )
            .with_path(Some(path))
            .with_allowed(Some(schema::children(section).join(", "))));
        };
        if key.kind == schema::Kind::Section {
            check_keys(child, &path)?;
        }
    }
    Ok(())
}

fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    // Maps (tags, headers) are replaced whole only when the remote gives a
                    // non-object; objects merge key by key.
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn restore_secrets(current: &Config, remote: &Value, merged: &mut Config) {
    let remote_secret = remote.pointer("/telemetryflow/api_key_secret").is_some();
    if !remote_secret {
        merged.telemetryflow.api_key_secret = current.telemetryflow.api_key_secret.clone();
    }
    let remote_headers = remote
        .pointer("/exporter/otlp/headers")
        .and_then(Value::as_object);
    for (k, v) in merged.exporter.otlp.headers.iter_mut() {
        let set_remotely = remote_headers.is_some_and(|h| h.contains_key(k));
        if v == REDACTED
            && !set_remotely
            && let Some(orig) = current.exporter.otlp.headers.get(k)
        {
            *v = orig.clone();
        }
    }
}

fn diff(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(va, vb, &path, out);
            }
        }
        (x, y) if x != y => out.push(prefix.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Config {
        let mut c = Config::default();
        c.telemetryflow.api_key_secret = Some(Secret::new("tfs_keep_me"));
        c.exporter
            .otlp
            .headers
            .insert("Authorization".into(), "Bearer keep".into());
        c
    }

    #[test]
    fn hot_keys_merge_and_secrets_survive() {
        let m = merge_remote(
            &base(),
            &json!({"agent": {"tags": {"team": "sre"}}, "collectors": {"system": {"interval": "5s"}},
                    "exporter": {"otlp": {"batch_size": 500}}}),
        )
        .unwrap();
        assert_eq!(m.config.agent.tags["team"], "sre");
        assert_eq!(m.config.collectors.system.interval.as_secs(), 5);
        assert_eq!(m.config.exporter.otlp.batch_size, 500);
        assert_eq!(
            m.config
                .telemetryflow
                .api_key_secret
                .as_ref()
                .unwrap()
                .expose(),
            "tfs_keep_me"
        );
        assert_eq!(
            m.config.exporter.otlp.headers["Authorization"],
            "Bearer keep"
        );
        assert_eq!(
            m.changed,
            [
                "agent.tags.team",
                "collectors.system.interval",
                "exporter.otlp.batch_size"
            ]
        );
    }

    #[test]
    fn sensitive_changes_need_permission() {
        for doc in [
            json!({"telemetryflow": {"endpoint": "evil:4317"}}),
            json!({"telemetryflow": {"api_key_secret": "tfs_other"}}),
            json!({"telemetryflow": {"tls": {"skip_verify": true}}}),
            json!({"buffer": {"path": "/tmp/x"}}),
            json!({"exporter": {"otlp": {"headers": {"Authorization": "x"}}}}),
            json!({"remote_config": {"allow_sensitive": true}}),
        ] {
            let e = merge_remote(&base(), &doc).unwrap_err();
            assert!(
                e.to_string().contains("sensitive change refused"),
                "{doc}: {e}"
            );
        }
        let mut allowed = base();
        allowed.remote_config.allow_sensitive = true;
        let m = merge_remote(
            &allowed,
            &json!({"telemetryflow": {"endpoint": "other:4317"}}),
        )
        .unwrap();
        assert_eq!(m.config.telemetryflow.endpoint, "other:4317");
        assert_eq!(m.changed, ["telemetryflow.endpoint"]);
    }

    #[test]
    fn invalid_documents_name_the_key() {
        let e = merge_remote(
            &base(),
            &json!({"collectors": {"system": {"intervall": "5s"}}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("collectors.system.intervall"));
        let e = merge_remote(
            &base(),
            &json!({"collectors": {"system": {"interval": "soon"}}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("collectors.system.interval"));
        let e =
            merge_remote(&base(), &json!({"exporter": {"otlp": {"batch_size": 0}}})).unwrap_err();
        assert_eq!(e.path(), Some("exporter.otlp.batch_size"));
        assert!(merge_remote(&base(), &json!([1])).is_err());
        // No change at all is fine.
        assert!(
            merge_remote(&base(), &json!({}))
                .unwrap()
                .changed
                .is_empty()
        );
    }
}
