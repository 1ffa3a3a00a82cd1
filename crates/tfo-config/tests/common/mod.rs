//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

pub const SECRET: &str = "tfs_prod_VERY_secret_value";

/// An environment lookup over fixed pairs, so tests never touch the process environment.
pub fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

/// The variables the example configs reference.
pub fn example_env() -> impl Fn(&str) -> Option<String> {
    env_of(&[
        ("HOSTNAME", "node-7"),
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_prod_42"),
        ("TELEMETRYFLOW_API_KEY_SECRET", SECRET),
        ("CLUSTER_NAME", "main"),
    ])
}

pub fn no_env(_: &str) -> Option<String> {
    None
}

pub fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

pub fn workspace_file(path: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The variables a shipped config documents in its header:
/// `# Required environment variables: A, B` and `# Optional environment variables: C (why)`.
/// No such line means none.
pub fn documented_variables(text: &str) -> (Vec<String>, Vec<String>) {
    let list = |prefix: &str| -> Vec<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .map(|rest| {
                rest.split(',')
                    .map(|v| v.split('(').next().unwrap().trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    };
    (
        list("# Required environment variables:"),
        list("# Optional environment variables:"),
    )
}

pub fn read_config(name: &str) -> String {
    let path = configs_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
