//! Who this agent is: the stable agent id and the OTLP resource attributes that label
//! everything it sends.

use std::path::Path;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tfo_collectors::HostPaths;
use tfo_collectors::otlp::attr;
use tfo_config::Config;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Namespace for ids derived from the machine id, so they never collide with other
/// products' v5 UUIDs of the same machine id.
const AGENT_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6f1c_2a4e_9d3b_4c57_a0e2_5b8f_17d4_c9e3);

#[derive(Debug, Clone)]
pub struct Identity {
    pub agent_id: String,
    pub agent_name: String,
    pub hostname: String,
    pub machine_id: Option<String>,
    pub environment: String,
    pub os_description: String,
}

impl Identity {
    pub fn resolve(cfg: &Config, paths: &HostPaths) -> Identity {
        let hostname = hostname();
        let machine_id = machine_id(&paths.root);
        // agent.id already carries TELEMETRYFLOW_AGENT_ID (env overrides win over the file).
        // Then the id the platform assigned at registration, persisted in agent.data_dir.
        let persisted = || {
            tfo_platform::IdStore::new(crate::settings::data_dir(cfg))
                .load()
                .ok()
                .flatten()
        };
        let agent_id = match cfg.agent.id.as_deref().filter(|s| !s.is_empty()) {
            Some(id) => id.to_string(),
            None => {
                persisted().unwrap_or_else(|| derive_agent_id(machine_id.as_deref(), &hostname))
            }
        };
        let agent_name = cfg
            .agent
            .name
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| hostname.clone());
        let environment = cfg
            .agent
            .tags
            .get("environment")
            .cloned()
            .unwrap_or_else(|| "production".to_string());
        Identity {
            agent_id,
            agent_name,
            hostname,
            machine_id,
            environment,
            os_description: os_description(paths),
        }
    }

    /// Resource attributes: semantic-convention host/os/service keys, the TelemetryFlow
    /// identity, then every agent tag (tags cannot override the identity keys).
    pub fn resource_attributes(&self, cfg: &Config) -> Vec<KeyValue> {
        let mut attrs = vec![
            attr("host.name", self.hostname.clone()),
            attr("host.arch", host_arch()),
            attr("os.type", "linux"),
            attr("os.description", self.os_description.clone()),
            attr("service.name", "tfo-agent"),
            attr("service.version", VERSION),
            attr("service.instance.id", self.agent_id.clone()),
            attr("telemetryflow.agent.id", self.agent_id.clone()),
            attr("telemetryflow.agent.name", self.agent_name.clone()),
            attr("deployment.environment", self.environment.clone()),
        ];
        if let Some(id) = &self.machine_id {
            attrs.insert(1, attr("host.id", id.clone()));
        }
        // In Kubernetes every signal names its node and cluster, so host metrics, logs and
        // cluster state join up in the backend without a lookup table.
        if crate::settings::in_kubernetes(cfg) {
            if let Some(node) = crate::settings::kube_node_name(cfg) {
                attrs.push(attr("k8s.node.name", node));
            }
            if let Some(cluster) = crate::settings::kube_cluster_name(cfg) {
                attrs.push(attr("k8s.cluster.name", cluster));
            }
        }
        for (k, v) in &cfg.agent.tags {
            if !attrs.iter().any(|a| &a.key == k) {
                attrs.push(attr(k, v.clone()));
            }
        }
        attrs
    }
}

/// A v5 UUID of the machine id: the same on every start, different on every machine.
pub fn derive_agent_id(machine_id: Option<&str>, hostname: &str) -> String {
    let seed = match machine_id {
        Some(m) => m.to_string(),
        None => {
            tracing::warn!(
                "no machine id found; deriving the agent id from the hostname. Set agent.id to pin it"
            );
            format!("hostname:{hostname}")
        }
    };
    uuid::Uuid::new_v5(&AGENT_ID_NAMESPACE, seed.as_bytes()).to_string()
}

fn machine_id(root: &Path) -> Option<String> {
    ["etc/machine-id", "var/lib/dbus/machine-id"]
        .iter()
        .find_map(|p| {
            let s = std::fs::read_to_string(root.join(p)).ok()?;
            let s = s.trim();
            (!s.is_empty()).then(|| s.to_string())
        })
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for its length; gethostname NUL-terminates within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc == 0 {
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        if let Ok(s) = std::str::from_utf8(&buf[..end])
            && !s.is_empty()
        {
            return s.to_string();
        }
    }
    std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".to_string())
}

/// The git commit this binary was built from (`abc123def456`, `...-dirty`, or `unknown`);
/// set by build.rs.
pub const GIT_COMMIT: &str = env!("TFO_GIT_COMMIT");

/// This machine's architecture as OpenTelemetry's `host.arch` spells it (`amd64`, `arm64`,
/// ...). The one source for every place the agent names its architecture: `version`, the
/// OTLP resource, `tfo_agent_build_info{arch}` and the User-Agent.
pub fn host_arch() -> &'static str {
    semconv_arch(std::env::consts::ARCH)
}

/// The exporter's User-Agent: `tfo-agent/<version> (linux; <host.arch>)`.
pub fn user_agent() -> String {
    format!("tfo-agent/{VERSION} (linux; {})", host_arch())
}

/// Rust's target architecture name to the semantic-convention `host.arch` value; names the
/// convention does not list pass through unchanged.
fn semconv_arch(rust_arch: &'static str) -> &'static str {
    match rust_arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        "arm" => "arm32",
        "powerpc" => "ppc32",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        other => other,
    }
}

fn os_description(paths: &HostPaths) -> String {
    let pretty = std::fs::read_to_string(paths.root.join("etc/os-release"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        });
    let kernel = std::fs::read_to_string(paths.proc("sys/kernel/osrelease"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    match (pretty, kernel.is_empty()) {
        (Some(p), false) => format!("{p} (Linux {kernel})"),
        (Some(p), true) => p,
        (None, false) => format!("Linux {kernel}"),
        (None, true) => "Linux".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_id_is_stable_and_machine_specific() {
        let a = derive_agent_id(Some("0123456789abcdef0123456789abcdef"), "h");
        assert_eq!(
            a,
            derive_agent_id(Some("0123456789abcdef0123456789abcdef"), "other")
        );
        assert_ne!(
            a,
            derive_agent_id(Some("fedcba9876543210fedcba9876543210"), "h")
        );
        assert_eq!(uuid::Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    #[test]
    fn arch_uses_semantic_convention_names() {
        for (rust, otel) in [
            ("x86_64", "amd64"),
            ("aarch64", "arm64"),
            ("arm", "arm32"),
            ("x86", "x86"),
            ("powerpc", "ppc32"),
            ("powerpc64", "ppc64"),
            ("s390x", "s390x"),
            ("riscv64", "riscv64"),
        ] {
            assert_eq!(semconv_arch(rust), otel);
        }
    }
}
