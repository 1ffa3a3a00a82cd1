//! Request and reply bodies of the platform API.
//!
//! Requests are camelCase like the heartbeat payload of seed 001. Replies are read
//! leniently: the id may be `agent_id`, `agentId` or `id`, the config version may be a
//! string or a number, and any of it may be wrapped in a `data` object, because platform
//! deployments differ in those details and a strict parser would turn them into outages.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::netaddr;
use crate::sysinfo::{SystemInfo, host};

/// Body of `POST /api/v2/agents/register`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterRequest {
    /// The configured or persisted id, when there is one, so the platform keeps the record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub name: String,
    pub hostname: String,
    pub version: String,
    pub os: String,
    pub os_version: Option<String>,
    pub platform: Option<String>,
    pub kernel_version: Option<String>,
    pub architecture: String,
    pub ip_addresses: Vec<String>,
    pub mac_addresses: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

impl RegisterRequest {
    /// Fills host identity from the machine: OS details from `root` (`/` or `/host`),
    /// addresses from the agent's network namespace and `root/sys/class/net`.
    /// `hostname` overrides the kernel hostname when the agent is configured with one.
    pub fn from_host(
        root: &Path,
        name: &str,
        version: &str,
        agent_id: Option<String>,
        hostname: Option<&str>,
        tags: BTreeMap<String, String>,
    ) -> Self {
        let os = host::os_release(root);
        let ifaces = netaddr::interfaces(root, 64);
        let mut ips: Vec<String> = Vec::new();
        let mut macs: Vec<String> = Vec::new();
        for i in &ifaces {
            if i.loopback {
                continue;
            }
            for a in &i.addresses {
                if !ips.contains(&a.ip) {
                    ips.push(a.ip.clone());
                }
            }
            if let Some(m) = i.mac.as_ref().filter(|m| !macs.contains(m)) {
                macs.push(m.clone());
            }
        }
        RegisterRequest {
            agent_id,
            name: name.to_string(),
            hostname: hostname
                .map(str::to_string)
                .unwrap_or_else(|| host::hostname(root)),
            version: version.to_string(),
            os: std::env::consts::OS.to_string(),
            os_version: os.version_id,
            platform: os.id,
            kernel_version: host::kernel_version(root),
            architecture: crate::settings::go_arch().to_string(),
            ip_addresses: ips,
            mac_addresses: macs,
            tags,
        }
    }
}

/// What registration returned.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterReply {
    pub agent_id: String,
    /// Present when the platform already has a configuration for this agent.
    pub config_version: Option<String>,
    /// The whole reply, for fields this crate does not interpret.
    pub raw: Value,
}

/// Body of `POST /api/v2/agents/{id}/heartbeat`: `{"systemInfo": {...}}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatBody {
    pub system_info: SystemInfo,
}

/// What a heartbeat returned. An empty 2xx reply is a plain acknowledgement.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatReply {
    /// The platform's current configuration version for this agent; when it differs from
    /// the one applied, the agent fetches `/config`.
    pub config_version: Option<String>,
    pub raw: Value,
}

/// Reply of `GET /api/v2/agents/{id}/config`: `{"config_version": ..., "config": {...}}`.
/// `config` uses the agent YAML schema (partial); validation and application are the
/// agent's job.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    pub version: Option<String>,
    /// Empty when the platform has no configuration for this agent (`204`, or
    /// `"config": null`).
    pub config: Map<String, Value>,
}

/// The agent's own health, supplied by the caller and sent inside `systemInfo.agentHealth`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AgentHealth {
    /// Records waiting in the buffer (memory and disk).
    pub buffer_records: u64,
    pub buffer_bytes: u64,
    /// Dropped records by reason (`full`, `max_age`, `rejected`, `max_retries`).
    pub dropped: BTreeMap<String, u64>,
    /// Unix milliseconds of the last export the collector acknowledged.
    pub last_export_unix_ms: Option<i64>,
    /// Exporter state as the agent names it (`ok`, `retrying`, `outage`, ...).
    pub exporter_state: String,
    /// Why the last remote configuration was not applied, until a valid one is.
    pub remote_config_error: Option<String>,
}

/// The object holding the reply's fields: `data` when the platform wraps its replies,
/// the top level otherwise.
fn payload(v: &Value) -> Option<&Map<String, Value>> {
    let top = v.as_object()?;
    match top.get("data") {
        Some(Value::Object(d)) => Some(d),
        _ => Some(top),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first_key(obj: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| obj.get(*k).and_then(scalar_string))
}

const VERSION_KEYS: [&str; 2] = ["config_version", "configVersion"];

pub(crate) fn parse_register_reply(v: Value) -> Result<RegisterReply, String> {
    let obj = payload(&v).ok_or("the reply is not a JSON object")?;
    let mut agent_id = first_key(obj, &["agent_id", "agentId", "id"]);
    // Some platforms nest the record: {"data": {"agent": {"id": ...}}}.
    if let (None, Some(Value::Object(a))) = (&agent_id, obj.get("agent")) {
        agent_id = first_key(a, &["agent_id", "agentId", "id"]);
    }
    let agent_id = agent_id.ok_or("the reply carries no agent_id or id")?;
    crate::idstore::validate_id(&agent_id).map_err(|e| format!("the returned agent id {e}"))?;
    let config_version = first_key(obj, &VERSION_KEYS);
    Ok(RegisterReply {
        agent_id,
        config_version,
        raw: v,
    })
}

pub(crate) fn parse_heartbeat_reply(v: Value) -> HeartbeatReply {
    let config_version = payload(&v).and_then(|o| first_key(o, &VERSION_KEYS));
    HeartbeatReply {
        config_version,
        raw: v,
    }
}

pub(crate) fn parse_remote_config(v: Value) -> Result<RemoteConfig, String> {
    let obj = payload(&v).ok_or("the reply is not a JSON object")?;
    let version = first_key(obj, &["config_version", "configVersion", "version"]);
    let config = match obj.get("config") {
        Some(Value::Object(c)) => c.clone(),
        Some(Value::Null) => Map::new(),
        Some(_) => return Err("`config` is not an object".into()),
        None => return Err("the reply has no `config` object".into()),
    };
    Ok(RemoteConfig { version, config })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn register_reply_shapes() {
        for v in [
            json!({"agent_id": "a-1"}),
            json!({"id": "a-1"}),
            json!({"agentId": "a-1"}),
            json!({"data": {"id": "a-1"}}),
            json!({"success": true, "data": {"agent": {"id": "a-1"}}}),
        ] {
            assert_eq!(
                parse_register_reply(v.clone()).unwrap().agent_id,
                "a-1",
                "{v}"
            );
        }
        let r = parse_register_reply(json!({"id": 42, "config_version": 7})).unwrap();
        assert_eq!(r.agent_id, "42");
        assert_eq!(r.config_version.as_deref(), Some("7"));
        assert!(parse_register_reply(json!({"ok": true})).is_err());
        assert!(parse_register_reply(json!({"id": "has space"})).is_err());
        assert!(parse_register_reply(json!([1])).is_err());
    }

    #[test]
    fn heartbeat_reply_versions() {
        assert_eq!(
            parse_heartbeat_reply(json!({"config_version": "v3"}))
                .config_version
                .as_deref(),
            Some("v3")
        );
        assert_eq!(
            parse_heartbeat_reply(json!({"data": {"configVersion": 4}}))
                .config_version
                .as_deref(),
            Some("4")
        );
        assert_eq!(parse_heartbeat_reply(Value::Null).config_version, None);
    }

    #[test]
    fn remote_config_shapes() {
        let c = parse_remote_config(
            json!({"config_version": 2, "config": {"agent": {"tags": {"a": "b"}}}}),
        )
        .unwrap();
        assert_eq!(c.version.as_deref(), Some("2"));
        assert_eq!(c.config["agent"]["tags"]["a"], "b");
        let c = parse_remote_config(json!({"data": {"version": "x", "config": null}})).unwrap();
        assert_eq!(c.version.as_deref(), Some("x"));
        assert!(c.config.is_empty());
        assert!(parse_remote_config(json!({"config": "yaml text"})).is_err());
        assert!(parse_remote_config(json!({"config_version": 1})).is_err());
    }
}
