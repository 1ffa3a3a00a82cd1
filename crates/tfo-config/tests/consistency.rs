//! The key table, the types, the reference config and the docs list the same keys.

mod common;

use std::collections::BTreeSet;

use common::*;
use tfo_config::schema::{KEYS, Kind};
use tfo_config::{Config, ENV_OVERRIDES};

/// Dotted paths of every key in the serialized default config (maps count as leaves).
fn serialized_keys() -> BTreeSet<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
        if let serde_json::Value::Object(map) = v {
            for (k, child) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                if matches!(child, serde_json::Value::Object(m) if !m.is_empty()) {
                    walk(&path, child, out);
                }
            }
        }
    }
    let v: serde_json::Value = serde_json::from_str(&Config::default().to_json_redacted()).unwrap();
    let mut out = BTreeSet::new();
    walk("", &v, &mut out);
    out
}

#[test]
fn schema_matches_types() {
    let schema: BTreeSet<String> = KEYS.iter().map(|k| k.path.to_string()).collect();
    assert_eq!(schema.len(), KEYS.len(), "duplicate schema entries");
    assert_eq!(schema, serialized_keys());
}

#[test]
fn docs_describe_every_key_and_override() {
    let docs = std::fs::read_to_string(configs_dir().join("../docs/configuration.md")).unwrap();
    for key in KEYS.iter().filter(|k| k.kind != Kind::Section) {
        assert!(
            docs.contains(&format!("| `{}` |", key.path)),
            "docs miss {}",
            key.path
        );
        if let Kind::Enum(values) = key.kind {
            for v in values {
                assert!(
                    docs.contains(&format!("`{v}`")),
                    "docs miss {} value {v}",
                    key.path
                );
            }
        }
    }
    for (var, key) in ENV_OVERRIDES {
        assert!(
            docs.contains(&format!("| `{var}` | `{key}`")),
            "docs miss override {var}"
        );
    }
}

#[test]
fn reference_config_mentions_every_key() {
    let text = read_config("tfo-agent.yaml");
    for key in KEYS {
        let name = key.path.rsplit('.').next().unwrap();
        assert!(
            text.lines().any(|l| l
                .trim_start()
                .trim_start_matches("# ")
                .starts_with(&format!("{name}:"))),
            "configs/tfo-agent.yaml misses {}",
            key.path
        );
    }
}

/// The ranges table in the docs is generated from the one in the code, and every duration
/// key has exactly one range.
#[test]
fn duration_ranges_cover_every_duration_key_and_match_the_docs() {
    use tfo_config::schema::{DURATION_RANGES, duration_ranges_markdown};
    let durations: Vec<&str> = KEYS
        .iter()
        .filter(|k| k.kind == Kind::Duration)
        .map(|k| k.path)
        .collect();
    let ranged: Vec<&str> = DURATION_RANGES.iter().map(|r| r.path).collect();
    assert_eq!(
        durations, ranged,
        "one range per duration key, in key order"
    );
    for r in DURATION_RANGES {
        assert!(r.min <= r.max && r.remote_floor() <= r.max, "{}", r.path);
        // the default is in range (the getter reads the right field)
        let d = (r.get)(&Config::default());
        assert!(r.min <= d && d <= r.max, "{} default out of range", r.path);
    }
    let docs = std::fs::read_to_string(configs_dir().join("../docs/configuration.md")).unwrap();
    let table = duration_ranges_markdown();
    assert!(
        docs.contains(&table),
        "docs/configuration.md must contain the ranges table exactly as generated:\n{table}"
    );
}

/// The remote-config rules in the docs name every locked and sensitive key.
#[test]
fn docs_list_the_remote_config_rules() {
    use tfo_config::remote::{LOCKED, SENSITIVE};
    let docs = std::fs::read_to_string(configs_dir().join("../docs/configuration.md")).unwrap();
    let section = docs
        .split("## Remote configuration")
        .nth(1)
        .expect("a Remote configuration section");
    for key in LOCKED
        .iter()
        .map(|(k, _)| *k)
        .chain(SENSITIVE.iter().copied())
    {
        let shown = match key.strip_suffix('.') {
            Some(prefix) => format!("`{prefix}.*`"),
            None => format!("`{key}`"),
        };
        assert!(section.contains(&shown), "remote config docs miss {shown}");
    }
}
