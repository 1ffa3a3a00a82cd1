//! Secrets never leave through display, serialization or Debug; redacted output round-trips.

mod common;

use common::*;
use tfo_config::{Config, Secret, load_from_str};

fn with_secrets() -> Config {
    let text = "\
telemetryflow:
  api_key_id: tfk_visible_id
  api_key_secret: \"${TELEMETRYFLOW_API_KEY_SECRET}\"
exporter:
  otlp:
    headers:
      Authorization: Bearer tok_hdr_auth_111
      X-Api-Key: hdr_key_222
      X-Custom-Token: hdr_token_333
      X-Db-Password: hdr_pw_444
      X-Client-Secret: hdr_secret_555
      Cookie: hdr_cookie_666
      X-Custom-Cred: hdr_cred_777
      X-Session-Id: hdr_session_888
      X-Tenant: tenant-a
";
    load_from_str(
        text,
        "t",
        &env_of(&[("TELEMETRYFLOW_API_KEY_SECRET", SECRET)]),
    )
    .unwrap()
}

const HIDDEN: &[&str] = &[
    SECRET,
    "tok_hdr_auth_111",
    "hdr_key_222",
    "hdr_token_333",
    "hdr_pw_444",
    "hdr_secret_555",
    "hdr_cookie_666",
    "hdr_cred_777",
    "hdr_session_888",
];

#[test]
fn redacted_renderings_hide_secrets() {
    let c = with_secrets();
    assert_eq!(
        c.telemetryflow.api_key_secret.as_ref().unwrap().expose(),
        SECRET
    );
    assert_eq!(c.exporter.otlp.headers["X-Api-Key"], "hdr_key_222");
    for (what, shown) in [
        ("yaml", c.to_yaml_redacted()),
        ("json", c.to_json_redacted()),
        ("debug", format!("{c:?}")),
        ("pretty debug", format!("{c:#?}")),
    ] {
        for secret in HIDDEN {
            assert!(!shown.contains(secret), "{what} shows {secret}:\n{shown}");
        }
        assert!(shown.contains("[REDACTED]"), "{what}");
        assert!(
            shown.contains("tfk_visible_id"),
            "{what}: key id is not secret"
        );
        assert!(
            shown.contains("tenant-a"),
            "{what}: harmless header stays visible"
        );
    }
    let json: serde_json::Value = serde_json::from_str(&c.to_json_redacted()).unwrap();
    assert_eq!(json["telemetryflow"]["api_key_secret"], "[REDACTED]");
    assert_eq!(
        json["exporter"]["otlp"]["headers"]["Authorization"],
        "[REDACTED]"
    );
    assert_eq!(json["exporter"]["otlp"]["headers"]["X-Tenant"], "tenant-a");
    assert_eq!(json["collectors"]["system"]["interval"], "15s");
}

#[test]
fn empty_secret_prints_empty() {
    assert_eq!(Secret::new("").to_string(), "");
    assert_eq!(Secret::new("x").to_string(), "[REDACTED]");
}

#[test]
fn defaults_round_trip_through_redacted_yaml_and_json() {
    let c = Config::default();
    let yaml = c.to_yaml_redacted();
    assert_eq!(load_from_str(&yaml, "yaml", &no_env).unwrap(), c, "{yaml}");
    // JSON is YAML too
    let json = c.to_json_redacted();
    assert_eq!(load_from_str(&json, "json", &no_env).unwrap(), c, "{json}");
}

#[test]
fn non_default_config_round_trips_without_secrets() {
    let text = read_config("production.yaml");
    let env = env_of(&[
        ("HOSTNAME", "node-7"),
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_prod_42"),
        ("TELEMETRYFLOW_API_KEY_SECRET", ""),
    ]);
    let mut c = load_from_str(&text, "p", &env).unwrap();
    c.exporter
        .otlp
        .headers
        .insert("X-Tenant".into(), "a: b # c".into());
    c.telemetryflow.retry.initial_interval = std::time::Duration::from_millis(1500);
    c.collectors.logs.paths = vec!["/var/log/*.log".into(), "/var/log/'quoted' #1.log".into()];
    assert!(c.telemetryflow.api_key_secret.is_none());
    let yaml = c.to_yaml_redacted();
    assert_eq!(load_from_str(&yaml, "yaml", &no_env).unwrap(), c, "{yaml}");
}
