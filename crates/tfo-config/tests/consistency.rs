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
