//! Black-box tests of the Kubernetes collector: built binaries against the in-repo fake
//! API server (`tfo-kube-fake`, list/watch/410/403/Leases on loopback) and the Python OTLP
//! receiver. No real kube-apiserver can run here; what the fake does not model (TLS,
//! authentication, admission, protobuf) is not tested.
//!
//! - three agents of a "DaemonSet": each reports only its own node's pods and Node; exactly
//!   one (the lease holder) reports cluster-wide state; when it is killed, another takes
//!   over; the API requests they made are exactly the documented RBAC list;
//! - Events arrive as OTLP log records once per (event, count), across a relist and a
//!   change of leader;
//! - an API server unreachable at start, and a resource forbidden by RBAC, are survived.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;
use tfo_kube_fake::FakeApi;
use tfo_kube_fake::objects;

const LEASE_NS: &str = "telemetryflow";

fn kube_config(port: u16, kubeconfig: &std::path::Path, node: &str, extra: &str) -> String {
    format!(
        r#"
telemetryflow:
  api_key_id: "tfk_test_key"
  api_key_secret: "tfs_super_secret_value"
  endpoint: "127.0.0.1:{port}"
  protocol: grpc
  timeout: 5s
  retry:
    initial_interval: 100ms
    max_interval: 400ms
agent:
  name: "agent-{node}"
  data_dir: ./data
  shutdown_timeout: 3s
heartbeat:
  enabled: false
collectors:
  system:
    enabled: false
  node_exporter:
    enabled: false
  kubernetes:
    enabled: true
    interval: 1s
    kubeconfig_path: "{kc}"
    cluster_name: test-cluster
    node_name: "{node}"
    leader_election:
      lease_namespace: {LEASE_NS}
      lease_duration: 3s
      renew_deadline: 2s
      retry_period: 500ms
{extra}
buffer:
  path: ./buffer
prometheus:
  listen_address: "127.0.0.1:0"
health:
  listen_address: "127.0.0.1:0"
exporter:
  otlp:
    flush_interval: 200ms
"#,
        kc = kubeconfig.display()
    )
}

fn kv(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["key"].as_str().unwrap_or_default().to_string(),
                string_value(&a["value"]),
            )
        })
        .collect()
}

/// One delivered metric with its resource.
#[derive(Debug, Clone)]
struct Series {
    resource: BTreeMap<String, String>,
    name: String,
}

fn series(reqs: &[Value]) -> Vec<Series> {
    let mut out = Vec::new();
    for r in reqs.iter().filter(|r| r["signal"] == "metrics") {
        for rm in r["request"]["resource_metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let resource = kv(&rm["resource"]["attributes"]);
            for sm in rm["scope_metrics"].as_array().into_iter().flatten() {
                for m in sm["metrics"].as_array().into_iter().flatten() {
                    out.push(Series {
                        resource: resource.clone(),
                        name: m["name"].as_str().unwrap_or_default().to_string(),
                    });
                }
            }
        }
    }
    out
}

/// One delivered log record: resource and record attributes, body.
#[derive(Debug, Clone)]
struct Rec {
    resource: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    body: String,
}

fn log_records(reqs: &[Value]) -> Vec<Rec> {
    let mut out = Vec::new();
    for r in reqs.iter().filter(|r| r["signal"] == "logs") {
        for rl in r["request"]["resource_logs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let resource = kv(&rl["resource"]["attributes"]);
            for sl in rl["scope_logs"].as_array().into_iter().flatten() {
                for lr in sl["log_records"].as_array().into_iter().flatten() {
                    out.push(Rec {
                        resource: resource.clone(),
                        attrs: kv(&lr["attributes"]),
                        body: string_value(&lr["body"]),
                    });
                }
            }
        }
    }
    out
}

/// Agents (by `telemetryflow.agent.name`) that sent metric `name`.
fn senders_of(s: &[Series], name: &str) -> BTreeSet<String> {
    s.iter()
        .filter(|x| x.name == name)
        .filter_map(|x| x.resource.get("telemetryflow.agent.name").cloned())
        .collect()
}

fn metrics_page(agent: &Agent) -> String {
    let addr = agent.bound_address("serving self-metrics");
    http_get(addr, "/metrics").1
}

fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The API accesses the agents may make: the input the deployment's RBAC rules are
/// checked against. One line per `verb group/resource` ("" group is core).
fn documented_access() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("deploy/kubernetes/api-access.txt"))
        .expect("deploy/kubernetes/api-access.txt");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

fn requested_access(api: &FakeApi) -> BTreeSet<String> {
    api.requests()
        .iter()
        .filter(|r| !r.resource.is_empty())
        .map(|r| format!("{} {}/{}", r.verb, r.group, r.resource))
        .collect()
}

#[test]
fn each_agent_reports_its_node_and_one_leader_reports_the_cluster_with_failover() {
    let api = FakeApi::start();
    api.load_cluster(3, 4);
    let rx = Receiver::start(None);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc).unwrap();
    let nodes: Vec<String> = api
        .list("nodes")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(nodes.len(), 3);
    let mut agents: BTreeMap<String, Agent> = nodes
        .iter()
        .map(|n| {
            (
                format!("agent-{n}"),
                Agent::start(&kube_config(rx.grpc_port, &kc, n, "")),
            )
        })
        .collect();

    rx.wait_until(
        Duration::from_secs(60),
        "pods of every node and cluster state",
        |r| {
            let s = series(r);
            senders_of(&s, "k8s.pod.phase").len() == 3
                && senders_of(&s, "k8s.node.capacity.cpu").len() == 3
                && !senders_of(&s, "k8s.deployment.replicas.desired").is_empty()
                && !senders_of(&s, "k8s.namespace.phase").is_empty()
        },
    );
    let s = series(&rx.requests());
    // Node-local: an agent reports only the pods and the Node of its own node.
    for x in s.iter().filter(|x| x.name == "k8s.pod.phase") {
        let agent = &x.resource["telemetryflow.agent.name"];
        assert_eq!(
            agent,
            &format!("agent-{}", x.resource["k8s.node.name"]),
            "{x:?}"
        );
        assert_eq!(x.resource["k8s.cluster.name"], "test-cluster");
        assert!(x.resource.contains_key("k8s.pod.uid"), "{x:?}");
    }
    for x in s.iter().filter(|x| x.name == "k8s.node.capacity.cpu") {
        assert_eq!(
            x.resource["telemetryflow.agent.name"],
            format!("agent-{}", x.resource["k8s.node.name"])
        );
    }
    // Cluster-wide state comes from exactly one agent.
    let leaders = senders_of(&s, "k8s.deployment.replicas.desired");
    assert_eq!(leaders.len(), 1, "{leaders:?}");
    for name in ["k8s.namespace.phase", "k8s.service.spec.type"] {
        assert_eq!(senders_of(&s, name), leaders, "{name}");
    }
    let leader = leaders.into_iter().next().unwrap();
    let lease = api.lease(LEASE_NS, "tfo-agent-cluster").expect("lease");
    assert_eq!(
        format!(
            "agent-{}",
            lease["spec"]["holderIdentity"].as_str().unwrap()
        ),
        leader
    );
    let page = metrics_page(&agents[&leader]);
    assert_eq!(
        sample(&page, "tfo_agent_kubernetes_leader"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "tfo_agent_kubernetes_api_up"),
        Some(1.0),
        "{page}"
    );

    // The leader dies without releasing the lease: another takes over after it expires.
    let mut dead = agents.remove(&leader).unwrap();
    dead.signal(libc::SIGKILL);
    let _ = dead.child.wait();
    let killed_at = Instant::now();
    let before = rx.requests().len();
    rx.wait_until(Duration::from_secs(30), "a new leader", |r| {
        let s = series(&r[before.min(r.len())..]);
        senders_of(&s, "k8s.deployment.replicas.desired")
            .iter()
            .any(|a| a != &leader)
    });
    let took = killed_at.elapsed();
    let s = series(&rx.requests()[before..]);
    let new = senders_of(&s, "k8s.deployment.replicas.desired");
    let new: BTreeSet<_> = new.into_iter().filter(|a| a != &leader).collect();
    assert_eq!(new.len(), 1, "{new:?}");
    eprintln!("failover: cluster state from {new:?} {took:?} after the leader was killed");

    // Every API access the agents made is documented for RBAC, and nothing documented is
    // unused.
    let requested = requested_access(&api);
    let documented = documented_access();
    assert_eq!(
        requested, documented,
        "deploy/kubernetes/api-access.txt must list exactly the accesses made"
    );
    for (_, mut a) in agents {
        assert_eq!(a.terminate(Duration::from_secs(10)), 0);
    }
}

#[test]
fn events_are_exported_once_per_count_across_relists_and_leader_changes() {
    let api = FakeApi::start();
    api.load_cluster(2, 2);
    let rx = Receiver::start(None);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc).unwrap();
    let nodes: Vec<String> = api
        .list("nodes")
        .iter()
        .map(|n| n["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    let ev = |name: &str, count: u32| {
        objects::event(
            "app-0",
            name,
            ("Pod", "web-0"),
            "BackOff",
            &format!("Back-off restarting failed container ({name})"),
            "Warning",
            count,
        )
    };
    api.apply(ev("ev-a", 1));
    api.apply(ev("ev-b", 1));
    let mut agents: Vec<Agent> = nodes
        .iter()
        .map(|n| Agent::start(&kube_config(rx.grpc_port, &kc, n, "")))
        .collect();
    let ours = |r: &[Value]| -> Vec<Rec> {
        log_records(r)
            .into_iter()
            .filter(|x| x.body.contains("(ev-"))
            .collect()
    };
    rx.wait_until(Duration::from_secs(60), "the first events", |r| {
        ours(r).len() >= 2
    });
    // A count increase is a new occurrence: exported again, once.
    api.apply(ev("ev-a", 2));
    rx.wait_until(Duration::from_secs(30), "the recount", |r| {
        ours(r).len() >= 3
    });
    // A relist re-delivers every event: nothing new may be exported.
    api.expire_watches();
    std::thread::sleep(Duration::from_secs(3));
    // Let the watermark reach the Lease (written at each renewal), then kill the leader.
    let lease = api.lease(LEASE_NS, "tfo-agent-cluster").expect("lease");
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_string();
    let i = nodes.iter().position(|n| *n == holder).unwrap();
    let mut dead = agents.remove(i);
    dead.signal(libc::SIGKILL);
    let _ = dead.child.wait();
    wait_for("a new lease holder", Duration::from_secs(30), || {
        api.lease(LEASE_NS, "tfo-agent-cluster")
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
            .is_some_and(|h| h != holder)
    });
    api.apply(ev("ev-c", 1));
    rx.wait_until(Duration::from_secs(30), "the event after failover", |r| {
        ours(r).iter().any(|x| x.body.contains("(ev-c)"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let recs = ours(&rx.requests());
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in &recs {
        *seen
            .entry((
                r.attrs.get("k8s.event.name").cloned().unwrap_or_default(),
                r.attrs.get("k8s.event.count").cloned().unwrap_or_default(),
            ))
            .or_default() += 1;
    }
    let want: BTreeMap<(String, String), usize> = [
        (("ev-a".to_string(), "1".to_string()), 1),
        (("ev-a".to_string(), "2".to_string()), 1),
        (("ev-b".to_string(), "1".to_string()), 1),
        (("ev-c".to_string(), "1".to_string()), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(seen, want, "{recs:#?}");
    let r = recs.iter().find(|r| r.body.contains("(ev-c)")).unwrap();
    assert_eq!(r.resource["k8s.object.kind"], "Pod");
    assert_eq!(r.resource["k8s.object.name"], "web-0");
    assert_eq!(r.resource["k8s.cluster.name"], "test-cluster");
    assert_eq!(r.attrs["k8s.event.reason"], "BackOff");
    for mut a in agents {
        assert_eq!(a.terminate(Duration::from_secs(10)), 0);
    }
}

#[test]
fn an_unreachable_api_server_and_a_forbidden_resource_are_survived() {
    let api = FakeApi::start();
    api.load_cluster(1, 3);
    api.set_unavailable(true);
    api.forbid("deployments", "list");
    let rx = Receiver::start(None);
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kc).unwrap();
    let node = api.list("nodes")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    // Without leader election this one agent reports the cluster too; the system
    // collector shows the rest of the agent runs while the API server is down.
    let cfg = kube_config(rx.grpc_port, &kc, &node, "").replace(
        "    leader_election:\n",
        "    leader_election:\n      enabled: false\n",
    );
    let cfg = cfg.replace(
        "  system:\n    enabled: false",
        "  system:\n    enabled: true\n    interval: 1s",
    );
    let mut agent = Agent::start(&cfg);
    rx.wait_until(
        Duration::from_secs(30),
        "system metrics while the API is down",
        |r| !senders_of(&series(r), "system.cpu.time").is_empty(),
    );
    wait_for("kubernetes_api_up 0", Duration::from_secs(20), || {
        sample(&metrics_page(&agent), "tfo_agent_kubernetes_api_up") == Some(0.0)
    });
    assert!(senders_of(&series(&rx.requests()), "k8s.pod.phase").is_empty());
    // The collector is reported down (not ready), the agent itself keeps serving.
    let health = agent.bound_address("serving health checks at /, /healthz and /readyz");
    wait_for(
        "kubernetes among the collectors down",
        Duration::from_secs(20),
        || {
            let body = http_get(health, "/readyz").1;
            serde_json::from_str::<Value>(&body).is_ok_and(|v| {
                v["collectors_down"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|c| c == "kubernetes"))
            })
        },
    );
    api.set_unavailable(false);
    rx.wait_until(Duration::from_secs(60), "pods once the API is back", |r| {
        let s = series(r);
        !senders_of(&s, "k8s.pod.phase").is_empty()
            && !senders_of(&s, "k8s.namespace.phase").is_empty()
    });
    // Deployments stay forbidden: skipped, named in the log, counted; the rest goes on.
    assert!(senders_of(&series(&rx.requests()), "k8s.deployment.replicas.desired").is_empty());
    wait_for(
        "the forbidden resource in the log",
        Duration::from_secs(20),
        || agent.raw_log().contains("forbidden") && agent.raw_log().contains("deployments"),
    );
    // The self-metrics are published once per collection cycle, so the warning can be
    // logged a cycle before the counter shows it.
    wait_for(
        "the forbidden resource counted in /metrics",
        Duration::from_secs(20),
        || {
            let page = metrics_page(&agent);
            sample(
                &page,
                "tfo_agent_kubernetes_resource_up{resource=\"deployments.apps\"}",
            ) == Some(0.0)
                && sample(
                    &page,
                    "tfo_agent_kubernetes_watch_errors_total{resource=\"deployments.apps\",kind=\"forbidden\"}",
                )
                .unwrap_or(0.0)
                    >= 1.0
        },
    );
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
}
