//! `${VAR}`, `${VAR:-default}`, `$$`, comments, and environment overrides.

mod common;

use std::path::Path;

use common::*;
use tfo_config::load_from_str;

#[test]
fn variables_and_defaults() {
    let env = env_of(&[("NODE", "n1"), ("EMPTY", ""), ("IV", "45s")]);
    let text = "\
agent:
  name: ${NODE}
  id: \"${AGENT_ID:-agent-${NODE}\"
  tags:
    zone: ${ZONE:-eu-1}
    empty_default: ${EMPTY:-fallback}
    empty: \"${EMPTY}\"
heartbeat:
  interval: ${IV}
";
    // `${NODE` inside the default is not nested expansion: the default ends at the first `}`
    let c = load_from_str(text, "t", &env).unwrap();
    assert_eq!(c.agent.name.as_deref(), Some("n1"));
    assert_eq!(c.agent.id.as_deref(), Some("agent-${NODE"));
    assert_eq!(c.agent.tags["zone"], "eu-1");
    assert_eq!(c.agent.tags["empty_default"], "fallback");
    assert_eq!(c.agent.tags["empty"], "");
    assert_eq!(c.heartbeat.interval, std::time::Duration::from_secs(45));
}

#[test]
fn double_dollar_is_a_literal_dollar() {
    let c = load_from_str(
        "agent:\n  tags:\n    price: \"$$5 and $${X}\"\n",
        "t",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.agent.tags["price"], "$5 and ${X}");
}

#[test]
fn comments_are_not_expanded() {
    let text = "\
# ${NOT_SET} in a header comment
agent:
  # name: ${NOT_SET}
  name: plain # trailing ${NOT_SET}
  tags:
    hash: \"a # ${SET}\"
";
    let env = env_of(&[("SET", "yes")]);
    let c = load_from_str(text, "t", &env).unwrap();
    assert_eq!(c.agent.name.as_deref(), Some("plain"));
    assert_eq!(c.agent.tags["hash"], "a # yes");
}

#[test]
fn values_cannot_break_out_of_quotes() {
    let env = env_of(&[("TRICKY", "x\"\n  injected: true"), ("APOS", "it's")]);
    let c = load_from_str(
        "agent:\n  tags:\n    a: \"${TRICKY}\"\n    b: '${APOS}'\n",
        "t",
        &env,
    )
    .unwrap();
    assert_eq!(c.agent.tags["a"], "x\"\n  injected: true");
    assert_eq!(c.agent.tags["b"], "it's");
    assert_eq!(c.agent.tags.len(), 2);
}

#[test]
fn env_overrides_win_over_the_file() {
    let text = "\
telemetryflow:
  api_key_id: tfk_file
  api_key_secret: tfs_file
  endpoint: file:4317
  api_endpoint: https://file.example
agent:
  id: file-id
  name: file-name
  tags:
    environment: staging
    region: r1
collectors:
  root_path: /
";
    let env = env_of(&[
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_env"),
        ("TELEMETRYFLOW_API_KEY_SECRET", "tfs_env"),
        ("TELEMETRYFLOW_ENDPOINT", "env:4317"),
        ("TELEMETRYFLOW_API_ENDPOINT", "https://env.example"),
        ("TELEMETRYFLOW_ENVIRONMENT", "production"),
        ("TELEMETRYFLOW_AGENT_ID", "env-id"),
        ("TELEMETRYFLOW_AGENT_NAME", "env-name"),
        ("HOST_ROOT", "/host"),
    ]);
    let c = load_from_str(text, "t", &env).unwrap();
    let tf = &c.telemetryflow;
    assert_eq!(tf.api_key_id.as_deref(), Some("tfk_env"));
    assert_eq!(tf.api_key_secret.as_ref().unwrap().expose(), "tfs_env");
    assert_eq!(tf.endpoint, "env:4317");
    assert_eq!(tf.api_endpoint.as_deref(), Some("https://env.example"));
    assert_eq!(c.agent.tags["environment"], "production");
    assert_eq!(c.agent.tags["region"], "r1");
    assert_eq!(c.agent.id.as_deref(), Some("env-id"));
    assert_eq!(c.agent.name.as_deref(), Some("env-name"));
    assert_eq!(c.collectors.root_path, Path::new("/host"));

    // overrides apply to the defaults too, and empty overrides are ignored
    let env = env_of(&[
        ("TELEMETRYFLOW_ENDPOINT", ""),
        ("TELEMETRYFLOW_AGENT_NAME", "n"),
    ]);
    let c = load_from_str("", "t", &env).unwrap();
    assert_eq!(c.telemetryflow.endpoint, "localhost:4317");
    assert_eq!(c.agent.name.as_deref(), Some("n"));

    // every documented override is exercised above
    assert_eq!(tfo_config::ENV_OVERRIDES.len(), 8);
}

#[test]
fn empty_credentials_mean_unset() {
    let env = env_of(&[
        ("TELEMETRYFLOW_API_KEY_ID", ""),
        ("TELEMETRYFLOW_API_KEY_SECRET", ""),
    ]);
    let text = "telemetryflow:\n  api_key_id: \"${TELEMETRYFLOW_API_KEY_ID}\"\n  api_key_secret: \"${TELEMETRYFLOW_API_KEY_SECRET}\"\n";
    let c = load_from_str(text, "t", &env).unwrap();
    assert_eq!(c.telemetryflow.api_key_id, None);
    assert!(c.telemetryflow.api_key_secret.is_none());
}
