//! Configuration pushed by the platform (`GET /api/v2/agents/{id}/config`): a partial
//! document in the same schema as the YAML file, merged over the running configuration.
//!
//! The merge goes through the same deserializer and [`Config::validate`] as a file, so a
//! remote config is held to exactly the same rules (including every duration range of
//! [`crate::schema::DURATION_RANGES`]), and errors name the key path. On top of that:
//!
//! - [`LOCKED`] keys can never be changed remotely: switching the exporter or the buffer off
//!   would make the agent drop data (erase), and retry pacing is what keeps a fleet of agents
//!   from storming a collector that is down. `remote_config.*` is locked so a remote config
//!   cannot grant itself permissions.
//! - [`SENSITIVE`] keys (endpoints, credentials, TLS, headers, paths, buffer bounds) are
//!   refused unless the *running* configuration has `remote_config.allow_sensitive: true`.
//! - Intervals have a stricter floor when set remotely
//!   ([`crate::schema::DurationRange::remote_floor`]): a remote config cannot make the agent
//!   collect, flush or heartbeat in a tight loop even where a local file may (tests do).

use serde_json::Value;

use crate::duration::format_duration;
use crate::error::{ConfigError, ErrorKind};
use crate::schema::DURATION_RANGES;
use crate::secret::{REDACTED, Secret};
use crate::{Config, schema};

/// Keys (or key prefixes ending in `.`) a remote config can never change, with the reason.
pub const LOCKED: &[(&str, &str)] = &[
    (
        "exporter.otlp.enabled",
        "switching the exporter off would stop delivery",
    ),
    (
        "buffer.enabled",
        "switching the buffer off would lose data during an outage",
    ),
    (
        "telemetryflow.retry.",
        "retry pacing protects the collector from request storms",
    ),
    (
        "remote_config.",
        "a remote config cannot change what remote configs may do",
    ),
];

/// Keys (or key prefixes ending in `.`) whose remote change needs `allow_sensitive`.
/// [`LOCKED`] keys are refused even then.
pub const SENSITIVE: &[&str] = &[
    "telemetryflow.",
    "exporter.otlp.headers",
    "exporter.otlp.endpoint_version",
    "buffer.",
    "agent.data_dir",
    "agent.id",
    "collectors.root_path",
    "collectors.logs.paths",
    "prometheus.listen_address",
    "health.listen_address",
    "receivers.",
];

fn matches(pattern: &str, path: &str) -> bool {
    if pattern.ends_with('.') {
        path.starts_with(pattern)
    } else {
        path == pattern
            || path
                .strip_prefix(pattern)
                .is_some_and(|r| r.starts_with('.'))
    }
}

/// Whether a remote change of `path` needs `remote_config.allow_sensitive` (or is locked).
pub fn is_sensitive(path: &str) -> bool {
    is_locked(path) || SENSITIVE.iter().any(|s| matches(s, path))
}

/// Whether a remote config may never change `path`.
pub fn is_locked(path: &str) -> bool {
    locked_reason(path).is_some()
}

fn locked_reason(path: &str) -> Option<&'static str> {
    LOCKED
        .iter()
        .find(|(pattern, _)| matches(pattern, path))
        .map(|(_, why)| *why)
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
    let locked: Vec<(&String, &str)> = changed
        .iter()
        .filter_map(|p| locked_reason(p).map(|why| (p, why)))
        .collect();
    if let Some((first, _)) = locked.first() {
        let list: Vec<String> = locked
            .iter()
            .map(|(path, why)| format!("{path} ({why})"))
            .collect();
        return Err(remote_error(
            Some(first.to_string()),
            format!(
                "refused: a remote config cannot change {}; change it in the local file",
                list.join(", ")
            ),
            None,
        ));
    }
    if !current.remote_config.allow_sensitive {
        let refused: Vec<&String> = changed.iter().filter(|p| is_sensitive(p)).collect();
        if let Some(first) = refused.first() {
            return Err(remote_error(
                Some(first.to_string()),
                format!(
                    "sensitive change refused ({}): endpoints, credentials, TLS, headers, paths \
                     and buffer settings can only be changed remotely with \
                     remote_config.allow_sensitive: true in the local file",
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
    for range in DURATION_RANGES {
        let value = (range.get)(&config);
        let floor = range.remote_floor();
        if value < floor && changed.iter().any(|p| p == range.path) {
            return Err(remote_error(
                Some(range.path.to_string()),
                format!(
                    "`{}` is too short for a remote config (minimum {} when set remotely)",
                    format_duration(value),
                    format_duration(floor)
                ),
                Some(format!(
                    "a duration from {} to {} when set by a remote config",
                    format_duration(floor),
                    format_duration(range.max)
                )),
            ));
        }
    }
    config.validate().map_err(|e| {
        remote_error(
            e.path().map(str::to_string),
            e.message().to_string(),
            e.allowed().map(str::to_string),
        )
    })?;
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
            let keys = schema::children(prefix);
            let message = match crate::closest(k, keys.iter().copied()) {
                Some(near) => format!("unknown key `{k}` (did you mean `{near}`?)"),
                None => format!("unknown key `{k}`"),
            };
            return Err(
                ConfigError::new(ErrorKind::UnknownKey, "<remote config>", message)
                    .with_path(Some(path))
                    .with_allowed(Some(keys.join(", "))),
            );
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
    fn an_unknown_remote_key_is_refused_with_a_guess() {
        let remote = json!({"collectors": {"sytem": {"enabled": true}}});
        let Err(e) = merge_remote(&base(), &remote) else {
            panic!("an unknown key was merged");
        };
        assert_eq!(e.kind(), ErrorKind::UnknownKey);
        assert_eq!(e.path(), Some("collectors.sytem"));
        assert!(e.to_string().contains("(did you mean `system`?)"), "{e}");
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
            json!({"exporter": {"otlp": {"endpoint_version": "v1"}}}),
            json!({"buffer": {"max_age": "1h"}}),
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

    /// Off switches and retry pacing are refused even when sensitive changes are allowed.
    #[test]
    fn locked_keys_are_refused_even_with_permission() {
        let mut allowed = base();
        allowed.remote_config.allow_sensitive = true;
        for (doc, key) in [
            (
                json!({"exporter": {"otlp": {"enabled": false}}}),
                "exporter.otlp.enabled",
            ),
            (json!({"buffer": {"enabled": false}}), "buffer.enabled"),
            (
                json!({"telemetryflow": {"retry": {"enabled": false}}}),
                "telemetryflow.retry.enabled",
            ),
            (
                json!({"telemetryflow": {"retry": {"max_attempts": 1000}}}),
                "telemetryflow.retry.max_attempts",
            ),
            (
                json!({"telemetryflow": {"retry": {"initial_interval": "10ms", "max_interval": "10ms"}}}),
                "telemetryflow.retry.initial_interval",
            ),
            (
                json!({"remote_config": {"enabled": false}}),
                "remote_config.enabled",
            ),
        ] {
            for current in [base(), allowed.clone()] {
                let e = merge_remote(&current, &doc).unwrap_err();
                assert_eq!(e.path(), Some(key), "{doc}: {e}");
                assert!(
                    e.message()
                        .starts_with(&format!("refused: a remote config cannot change {key} (")),
                    "{doc}: {e}"
                );
            }
        }
        // a remote config cannot grant itself the permission
        let e = merge_remote(
            &base(),
            &json!({"remote_config": {"allow_sensitive": true}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("remote_config.allow_sensitive"), "{e}");
        // every locked key is named, not just the first
        let e = merge_remote(
            &allowed,
            &json!({"exporter": {"otlp": {"enabled": false}}, "buffer": {"enabled": false}}),
        )
        .unwrap_err();
        assert!(
            e.message().contains("buffer.enabled (")
                && e.message().contains("exporter.otlp.enabled ("),
            "{e}"
        );
        // restating the running value is not a change
        let m = merge_remote(&base(), &json!({"exporter": {"otlp": {"enabled": true}}})).unwrap();
        assert!(m.changed.is_empty());
        assert!(is_locked("telemetryflow.retry.max_interval"));
        assert!(is_sensitive("exporter.otlp.enabled"));
        assert!(!is_locked("exporter.otlp.enabled_x"));
        assert!(!is_sensitive("collectors.system.interval"));
    }

    #[test]
    fn remote_intervals_have_floors() {
        for (doc, key, floor) in [
            (
                json!({"collectors": {"system": {"interval": "300ms"}}}),
                "collectors.system.interval",
                "1s",
            ),
            (
                json!({"collectors": {"node_exporter": {"interval": "0.5s"}}}),
                "collectors.node_exporter.interval",
                "1s",
            ),
            (
                json!({"heartbeat": {"interval": "2s"}}),
                "heartbeat.interval",
                "5s",
            ),
            (
                json!({"exporter": {"otlp": {"flush_interval": "50ms"}}}),
                "exporter.otlp.flush_interval",
                "100ms",
            ),
        ] {
            let e = merge_remote(&base(), &doc).unwrap_err();
            assert_eq!(e.path(), Some(key), "{doc}: {e}");
            assert!(
                e.message().contains(&format!(
                    "is too short for a remote config (minimum {floor} when set remotely)"
                )),
                "{doc}: {e}"
            );
        }
        // at the floor is fine
        let m = merge_remote(
            &base(),
            &json!({"collectors": {"system": {"interval": "1s"}}, "heartbeat": {"interval": "5s"},
                    "exporter": {"otlp": {"flush_interval": "100ms"}}}),
        )
        .unwrap();
        assert_eq!(m.config.heartbeat.interval.as_secs(), 5);
        // a fast local value (tests) is not refused when the remote leaves it alone
        let mut fast = base();
        fast.collectors.system.interval = std::time::Duration::from_millis(20);
        fast.heartbeat.interval = std::time::Duration::from_secs(1);
        merge_remote(&fast, &json!({"agent": {"tags": {"a": "b"}}})).unwrap();
        merge_remote(&fast, &json!({"heartbeat": {"interval": "1s"}})).unwrap();
    }

    /// The load-time ranges hold for remote values too, with the key named.
    #[test]
    fn remote_values_are_range_checked() {
        for (doc, key, why) in [
            (
                json!({"heartbeat": {"interval": "48h"}}),
                "heartbeat.interval",
                "too long (maximum 24h)",
            ),
            (
                json!({"collectors": {"system": {"interval": "99999999999999999h"}}}),
                "collectors.system.interval",
                "too large",
            ),
            (
                json!({"exporter": {"otlp": {"flush_interval": "2h"}}}),
                "exporter.otlp.flush_interval",
                "too long (maximum 1h)",
            ),
        ] {
            let e = merge_remote(&base(), &doc).unwrap_err();
            assert_eq!(e.path(), Some(key), "{doc}: {e}");
            assert!(e.to_string().contains(why), "{doc}: {e}");
        }
        let mut allowed = base();
        allowed.remote_config.allow_sensitive = true;
        let e = merge_remote(
            &allowed,
            &json!({"telemetryflow": {"endpoint": "localhost:99999"}}),
        )
        .unwrap_err();
        assert_eq!(e.path(), Some("telemetryflow.endpoint"));
        assert!(e.message().contains("port 99999 is out of range"), "{e}");
        let e = merge_remote(&allowed, &json!({"buffer": {"max_age": "0s"}})).unwrap_err();
        assert_eq!(e.path(), Some("buffer.max_age"));
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
