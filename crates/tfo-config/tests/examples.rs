//! Every agent config under configs/ loads, with the values it spells out.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use tfo_config::{Compression, Config, EndpointVersion, LogFormat, Protocol, load_from_str};

/// Loads with all four example variables set (credentials then also override the file).
fn load(name: &str) -> Config {
    let text = read_config(name);
    load_from_str(&text, name, &example_env()).unwrap_or_else(|e| panic!("{e}"))
}

/// Loads with only the non-override variables set, to see the file's own values.
fn load_file_values(name: &str) -> Config {
    let text = read_config(name);
    let env = env_of(&[("HOSTNAME", "node-7"), ("CLUSTER_NAME", "main")]);
    load_from_str(&text, name, &env).unwrap_or_else(|e| panic!("{e}"))
}

/// Agent configs in configs/ (the Kubernetes manifest lives in deploy/kubernetes/). A new
/// file there must be added here, with assertions.
const AGENT_CONFIGS: &[&str] = &[
    "development.yaml",
    "kubernetes.yaml",
    "production.yaml",
    "tfo-agent.yaml",
    "tuning-high-volume.yaml",
    "tuning-low-resource.yaml",
];

#[test]
fn every_config_file_is_covered() {
    let mut found: Vec<String> = std::fs::read_dir(configs_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    found.sort();
    assert_eq!(found, AGENT_CONFIGS);
    for name in AGENT_CONFIGS {
        load(name);
    }
}

/// Each config's header lists exactly the variables it needs: with only the required ones
/// set it loads; without any one of them it fails naming it (and without all of them, one
/// error names them all); every variable it looks up is documented.
#[test]
fn documented_variables_are_exactly_what_each_config_needs() {
    use std::cell::RefCell;
    let overrides: Vec<&str> = tfo_config::ENV_OVERRIDES.iter().map(|(v, _)| *v).collect();
    for name in AGENT_CONFIGS {
        let text = read_config(name);
        let (required, optional) = documented_variables(&text);
        let value = |v: &str| match v {
            "TELEMETRYFLOW_API_KEY_SECRET" => SECRET.to_string(),
            _ => format!("{}-value", v.to_ascii_lowercase()),
        };
        let asked = RefCell::new(Vec::<String>::new());
        let only_required = |v: &str| {
            asked.borrow_mut().push(v.to_string());
            required.iter().any(|r| r == v).then(|| value(v))
        };
        load_from_str(&text, name, &only_required)
            .unwrap_or_else(|e| panic!("{name} with only {required:?} set: {e}"));
        for v in asked.borrow().iter() {
            assert!(
                required.contains(v) || optional.contains(v) || overrides.contains(&v.as_str()),
                "{name} uses ${{{v}}} but its header does not list it"
            );
        }
        for missing in &required {
            let env = |v: &str| (v != missing && required.iter().any(|r| r == v)).then(|| value(v));
            let e = load_from_str(&text, name, &env).expect_err(missing);
            assert_eq!(e.kind(), tfo_config::ErrorKind::MissingVariable, "{e}");
            assert!(e.message().contains(&format!("`{missing}`")), "{e}");
        }
        if required.len() > 1 {
            let e = load_from_str(&text, name, &no_env).unwrap_err();
            for v in &required {
                assert!(e.to_string().contains(&format!("`{v}`")), "{name}: {e}");
            }
        }
        // optional variables are optional: unset and empty both load
        for v in &optional {
            assert!(
                !required.contains(v),
                "{name}: {v} both required and optional"
            );
        }
        let empty_optional = |v: &str| {
            if optional.iter().any(|o| o == v) {
                Some(String::new())
            } else {
                required.iter().any(|r| r == v).then(|| value(v))
            }
        };
        load_from_str(&text, name, &empty_optional).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    // the two configs that need variables say so
    for name in ["production.yaml", "kubernetes.yaml"] {
        let (required, optional) = documented_variables(&read_config(name));
        assert!(
            required.contains(&"TELEMETRYFLOW_API_KEY_SECRET".to_string()),
            "{name}"
        );
        assert_eq!(optional[0], "HOSTNAME", "{name}");
    }
    let (_, optional) = documented_variables(&read_config("kubernetes.yaml"));
    assert_eq!(
        optional,
        ["HOSTNAME", "NODE_NAME", "POD_NAMESPACE", "TFO_EBPF_ENABLED"]
    );
}

/// HOSTNAME is not exported by bash: unset, the agent name stays unset (the agent then uses
/// the host name) instead of failing.
#[test]
fn hostname_is_optional_in_the_shipped_configs() {
    for name in ["production.yaml", "kubernetes.yaml"] {
        let env = env_of(&[
            ("TELEMETRYFLOW_API_KEY_ID", "tfk_prod_42"),
            ("TELEMETRYFLOW_API_KEY_SECRET", SECRET),
            ("CLUSTER_NAME", "main"),
        ]);
        let c = load_from_str(&read_config(name), name, &env).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.agent.name, None, "{name}");
    }
}

#[test]
fn reference_config_is_exactly_the_defaults() {
    assert_eq!(load_file_values("tfo-agent.yaml"), Config::default());
}

#[test]
fn defaults_match_the_spec() {
    let c = load_from_str("", "empty", &no_env).unwrap();
    assert_eq!(c, Config::default());
    let tf = &c.telemetryflow;
    assert_eq!(tf.api_key_id, None);
    assert!(tf.api_key_secret.is_none());
    assert_eq!(tf.endpoint, "localhost:4317");
    assert_eq!(tf.protocol, Protocol::Grpc);
    assert_eq!(tf.timeout, Duration::from_secs(30));
    assert!(!tf.tls.enabled && !tf.tls.skip_verify);
    assert_eq!(tf.tls.ca_file, None);
    assert!(tf.retry.enabled);
    assert_eq!(tf.retry.max_attempts, 3);
    assert_eq!(tf.retry.initial_interval, Duration::from_secs(1));
    assert_eq!(tf.retry.max_interval, Duration::from_secs(30));
    assert_eq!(tf.api_endpoint, None);
    assert_eq!(c.agent.id, None);
    assert_eq!(c.agent.name, None);
    assert!(c.agent.tags.is_empty());
    assert_eq!(c.agent.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.agent.data_dir, Path::new("/var/lib/tfo-agent"));
    assert!(c.heartbeat.enabled && c.heartbeat.include_system_info);
    assert_eq!(c.heartbeat.interval, Duration::from_secs(60));
    let col = &c.collectors;
    assert_eq!(col.root_path, Path::new("/"));
    assert!(col.system.enabled && col.system.cpu && col.system.memory);
    assert!(col.system.disk && col.system.network);
    assert_eq!(col.system.interval, Duration::from_secs(15));
    let ne = &col.node_exporter;
    assert!(ne.enabled && ne.cpu && ne.memory && ne.disk_io && ne.filesystem);
    assert!(ne.network && ne.load_avg && ne.thermal);
    assert_eq!(ne.interval, Duration::from_secs(15));
    let k8s = &col.kubernetes;
    assert!(!k8s.enabled && k8s.collect_pods && k8s.collect_nodes && k8s.collect_deployments);
    assert_eq!(k8s.interval, Duration::from_secs(30));
    assert!(k8s.exclude_namespaces.is_empty());
    assert_eq!(k8s.kubeconfig_path, "");
    let ebpf = &col.ebpf;
    assert!(!ebpf.enabled && ebpf.collect_syscalls && ebpf.collect_network && ebpf.collect_file_io);
    assert_eq!(ebpf.interval, Duration::from_secs(15));
    assert!(ebpf.exclude_processes.is_empty());
    assert!(!col.process.enabled);
    // The seed's process collector: every 30s (issue 16), every process, default metric set.
    assert_eq!(col.process.interval, Duration::from_secs(30));
    assert!(col.process.processes.is_empty() && col.process.disk_io);
    assert!(!col.process.file_descriptors && !col.process.command_line);
    assert!(!col.logs.enabled && col.logs.paths.is_empty());
    let otlp = &c.exporter.otlp;
    assert!(otlp.enabled);
    assert_eq!(otlp.batch_size, 100);
    assert_eq!(otlp.flush_interval, Duration::from_secs(10));
    assert_eq!(otlp.compression, Compression::Gzip);
    assert_eq!(otlp.endpoint_version, EndpointVersion::V2);
    assert!(otlp.headers.is_empty());
    assert!(c.buffer.enabled);
    assert_eq!(c.buffer.path, Path::new("/var/lib/tfo-agent/buffer"));
    assert_eq!(c.buffer.max_size_mb, 500);
    assert_eq!(c.buffer.memory_limit_mb, 64);
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.logging.format, LogFormat::Text);
}

#[test]
fn comment_only_and_empty_sections_are_defaults() {
    let text = "# nothing here\n---\n";
    assert_eq!(
        load_from_str(text, "t", &no_env).unwrap(),
        Config::default()
    );
    let text = "telemetryflow:\ncollectors:\n  system:\n# all commented out\n";
    assert_eq!(
        load_from_str(text, "t", &no_env).unwrap(),
        Config::default()
    );
}

#[test]
fn development() {
    let c = load_file_values("development.yaml");
    assert_eq!(c.telemetryflow.api_key_id.as_deref(), Some("tfk_dev_12345"));
    assert_eq!(
        c.telemetryflow.api_key_secret.as_ref().unwrap().expose(),
        "tfs_dev_secret"
    );
    assert_eq!(c.telemetryflow.endpoint, "localhost:4317");
    assert_eq!(c.telemetryflow.protocol, Protocol::Grpc);
    assert!(!c.telemetryflow.tls.enabled);
    assert_eq!(c.agent.name.as_deref(), Some("dev-agent"));
    assert_eq!(c.agent.tags["environment"], "development");
    assert!(c.collectors.node_exporter.enabled);
    assert_eq!(c.collectors.node_exporter.interval, Duration::from_secs(15));
    assert!(c.exporter.otlp.enabled);
    // local endpoint: no cleartext warning
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());

    // the environment's credentials win over the file's
    let c = load("development.yaml");
    assert_eq!(c.telemetryflow.api_key_id.as_deref(), Some("tfk_prod_42"));
    assert_eq!(
        c.telemetryflow.api_key_secret.as_ref().unwrap().expose(),
        SECRET
    );
}

#[test]
fn production() {
    let c = load("production.yaml");
    let tf = &c.telemetryflow;
    assert_eq!(tf.api_key_id.as_deref(), Some("tfk_prod_42"));
    assert_eq!(tf.api_key_secret.as_ref().unwrap().expose(), SECRET);
    assert_eq!(
        tf.endpoint,
        "tfo-collector.telemetryflow.svc.cluster.local:4317"
    );
    assert!(tf.tls.enabled && !tf.tls.skip_verify);
    assert!(tf.retry.enabled);
    assert_eq!(tf.retry.max_attempts, 3);
    assert_eq!(c.agent.name.as_deref(), Some("node-7"));
    let tags: BTreeMap<&str, &str> = c
        .agent
        .tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        tags,
        BTreeMap::from([
            ("cluster", "main"),
            ("datacenter", "dc1"),
            ("environment", "production"),
            ("region", "us-east-1"),
        ])
    );
    assert!(c.heartbeat.enabled && c.heartbeat.include_system_info);
    assert_eq!(c.heartbeat.interval, Duration::from_secs(60));
    let ne = &c.collectors.node_exporter;
    assert!(ne.enabled && ne.cpu && ne.memory && ne.disk_io && ne.filesystem && ne.network);
    assert!(ne.load_avg);
    let k8s = &c.collectors.kubernetes;
    assert!(k8s.enabled);
    assert_eq!(k8s.interval, Duration::from_secs(30));
    assert_eq!(k8s.exclude_namespaces, ["kube-system"]);
    let ebpf = &c.collectors.ebpf;
    assert!(ebpf.enabled && ebpf.collect_syscalls && ebpf.collect_network && ebpf.collect_file_io);
    assert_eq!(ebpf.exclude_processes, ["tfo-agent", "systemd"]);
    assert_eq!(c.exporter.otlp.batch_size, 100);
    assert_eq!(c.exporter.otlp.compression, Compression::Gzip);
    assert!(c.buffer.enabled);
    assert_eq!(c.buffer.max_size_mb, 500);
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn kubernetes() {
    let c = load("kubernetes.yaml");
    assert_eq!(c.telemetryflow.api_key_id.as_deref(), Some("tfk_prod_42"));
    assert_eq!(
        c.telemetryflow.endpoint,
        "tfo-collector.telemetryflow.svc.cluster.local:4317"
    );
    assert_eq!(c.agent.name.as_deref(), Some("node-7"));
    assert_eq!(c.agent.tags["cluster"], "main");
    assert_eq!(c.agent.tags["environment"], "production");
    assert!(c.collectors.kubernetes.enabled);
    assert_eq!(c.collectors.kubernetes.interval, Duration::from_secs(30));
    assert_eq!(c.collectors.kubernetes.kubeconfig_path, "");
    assert!(c.collectors.node_exporter.enabled);
    // the DaemonSet mounts the host's / at /host
    assert_eq!(c.collectors.root_path, Path::new("/host"));
    assert!(!c.collectors.ebpf.enabled);
    // the eBPF overlay (deploy/kubernetes-ebpf) turns it on through the environment
    let env = env_of(&[
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_prod_42"),
        ("TELEMETRYFLOW_API_KEY_SECRET", SECRET),
        ("CLUSTER_NAME", "main"),
        ("TFO_EBPF_ENABLED", "true"),
    ]);
    let on = load_from_str(&read_config("kubernetes.yaml"), "k", &env).unwrap();
    assert!(on.collectors.ebpf.enabled);
    // the seed's DaemonSet config has no tls section: the secret would go out in cleartext
    let warnings = c.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].starts_with("telemetryflow.tls.enabled:"));
}

/// The ConfigMap's `data.tfo-agent.yaml` block is configs/kubernetes.yaml, byte for byte
/// (from `telemetryflow:` on; the header comments differ), and the DaemonSet sets every
/// variable that config documents.
#[test]
fn configmap_embeds_kubernetes_yaml() {
    let manifest = workspace_file("deploy/kubernetes/configmap.yaml");
    let mut lines = manifest.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == "  tfo-agent.yaml: |")
        .expect("data block");
    let block: String = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .map(|l| format!("{}\n", l.get(4..).unwrap_or("")))
        .collect();
    let file = read_config("kubernetes.yaml");
    let body = &file[file
        .find("\ntelemetryflow:")
        .expect("telemetryflow section")
        + 1..];
    assert_eq!(
        block, body,
        "deploy/kubernetes/configmap.yaml != configs/kubernetes.yaml"
    );
    let embedded = load_from_str(&block, "configmap", &example_env()).unwrap();
    assert_eq!(embedded, load("kubernetes.yaml"));
    // and the DaemonSet provides every variable the config documents
    let daemonset = workspace_file("deploy/kubernetes/daemonset.yaml");
    let (required, optional) = documented_variables(&file);
    assert!(required.len() >= 3);
    for var in required.iter().chain(&optional) {
        assert!(daemonset.contains(&format!("- name: {var}")), "{var}");
    }
}

#[test]
fn tuning_high_volume() {
    let c = load_file_values("tuning-high-volume.yaml");
    assert_eq!(c.collectors.node_exporter.interval, Duration::from_secs(30));
    assert_eq!(c.collectors.kubernetes.interval, Duration::from_secs(60));
    assert_eq!(
        c.collectors.kubernetes.exclude_namespaces,
        ["kube-system", "kube-public"]
    );
    assert_eq!(c.exporter.otlp.batch_size, 500);
    assert_eq!(c.exporter.otlp.flush_interval, Duration::from_secs(30));
    assert_eq!(c.buffer.max_size_mb, 1000);
    // everything else stays default
    let mut expect = Config::default();
    expect.collectors.node_exporter.interval = Duration::from_secs(30);
    expect.collectors.kubernetes.interval = Duration::from_secs(60);
    expect.collectors.kubernetes.exclude_namespaces =
        vec!["kube-system".into(), "kube-public".into()];
    expect.exporter.otlp.batch_size = 500;
    expect.exporter.otlp.flush_interval = Duration::from_secs(30);
    expect.buffer.max_size_mb = 1000;
    assert_eq!(c, expect);
}

#[test]
fn tuning_low_resource() {
    let c = load("tuning-low-resource.yaml");
    let ne = &c.collectors.node_exporter;
    assert!(ne.enabled && ne.cpu && ne.memory);
    assert!(!ne.disk_io && !ne.thermal);
    assert!(!c.collectors.kubernetes.enabled);
    assert!(!c.collectors.ebpf.enabled);
    // the eBPF overlay (deploy/kubernetes-ebpf) turns it on through the environment
    let env = env_of(&[
        ("TELEMETRYFLOW_API_KEY_ID", "tfk_prod_42"),
        ("TELEMETRYFLOW_API_KEY_SECRET", SECRET),
        ("CLUSTER_NAME", "main"),
        ("TFO_EBPF_ENABLED", "true"),
    ]);
    let on = load_from_str(&read_config("kubernetes.yaml"), "k", &env).unwrap();
    assert!(on.collectors.ebpf.enabled);
    assert_eq!(c.buffer.max_size_mb, 50);
}

#[test]
fn load_with_env_reads_explicit_file_and_reports_warnings() {
    let dir = std::env::temp_dir().join(format!("tfo-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("agent.yaml");
    std::fs::write(
        &path,
        "telemetryflow:\n  tls:\n    enabled: true\n    skip_verify: true\n",
    )
    .unwrap();
    let loaded = tfo_config::load_with_env(Some(&path), &no_env).unwrap();
    assert_eq!(loaded.source.as_deref(), Some(path.as_path()));
    assert!(loaded.config.telemetryflow.tls.skip_verify);
    assert_eq!(
        loaded.warnings,
        ["telemetryflow.tls.skip_verify: TLS certificate verification is disabled"]
    );

    let missing = dir.join("nope.yaml");
    let err = tfo_config::load_with_env(Some(&missing), &no_env).unwrap_err();
    assert_eq!(err.kind(), tfo_config::ErrorKind::Io);
    assert!(err.to_string().contains("nope.yaml"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn search_paths_order() {
    let env = env_of(&[("HOME", "/home/op")]);
    assert_eq!(
        tfo_config::search_paths(&env),
        [
            PathBuf::from("tfo-agent.yaml"),
            PathBuf::from("configs/tfo-agent.yaml"),
            PathBuf::from("/etc/tfo-agent/tfo-agent.yaml"),
            PathBuf::from("/home/op/.tfo-agent/tfo-agent.yaml"),
        ]
    );
    assert_eq!(tfo_config::search_paths(&no_env).len(), 3);
}
