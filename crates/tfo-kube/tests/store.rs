//! The stores against the in-repo fake API server: node-local scope, relists, RBAC refusals
//! and malformed objects, on a current-thread runtime as the agent runs them.

use std::time::{Duration, Instant};

use serde_json::json;
use tfo_kube::client::build_client;
use tfo_kube::store::{Collect, ResourceKind, ResourceStatus, Scope, Stores};
use tfo_kube_fake::{FakeApi, FakeConfig, objects};

fn fake() -> FakeApi {
    FakeApi::start_with(FakeConfig {
        bookmark_interval: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .unwrap()
}

async fn stores(api: &FakeApi, scope: Scope) -> Stores {
    let dir = std::env::temp_dir().join(format!(
        "tfo-kube-store-{}-{}",
        std::process::id(),
        api.addr().port()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("kubeconfig");
    api.write_kubeconfig(&path).unwrap();
    let client = build_client(path.to_str().unwrap()).await.unwrap();
    Stores::start(client, scope)
}

fn node_scope(node: &str) -> Scope {
    Scope {
        node: Some(node.to_string()),
        node_local_pods: true,
        collect: Collect::default(),
        exclude_namespaces: Vec::new(),
    }
}

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pod_names(s: &Stores) -> Vec<String> {
    let mut v: Vec<String> = s
        .snapshot()
        .pods
        .iter()
        .map(|p| p.metadata.name.to_string())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "current_thread")]
async fn node_local_pods_and_own_node() {
    let api = fake();
    for (name, node) in [("a", "n1"), ("b", "n1"), ("x", "n2")] {
        api.apply(objects::pod("default", name, node));
    }
    api.apply(objects::node("n1"));
    api.apply(objects::node("n2"));
    api.apply(objects::deployment("default", "web", 2));
    let s = stores(&api, node_scope("n1")).await;
    until("pods and node ready", || {
        s.ready() && s.stats_of(ResourceKind::Pods).relists == 1
    })
    .await;
    assert_eq!(pod_names(&s), ["a", "b"]);
    let nodes = s.snapshot().nodes;
    assert_eq!(nodes.len(), 1);
    assert_eq!(&*nodes[0].metadata.name, "n1");
    // Cluster-wide kinds wait for the lease.
    assert_eq!(
        s.status_of(ResourceKind::Deployments),
        ResourceStatus::Stopped
    );
    assert!(s.snapshot().deployments.is_empty());

    api.apply(objects::pod("default", "c", "n1"));
    api.apply(objects::pod("default", "y", "n2"));
    until("pod c", || pod_names(&s) == ["a", "b", "c"]).await;
    assert!(api.delete("Pod", "default", "a"));
    until("pod a gone", || pod_names(&s) == ["b", "c"]).await;
    assert_eq!(s.stats_of(ResourceKind::Pods).objects, 2);

    let reqs = api.requests();
    let pod_reqs: Vec<_> = reqs.iter().filter(|r| r.resource == "pods").collect();
    assert!(!pod_reqs.is_empty());
    for r in &pod_reqs {
        assert!(
            r.query.contains("fieldSelector=spec.nodeName%3Dn1"),
            "{}",
            r.query
        );
        assert!(r.verb == "list" || r.verb == "watch", "{}", r.verb);
    }
    assert!(
        pod_reqs
            .iter()
            .any(|r| r.verb == "list" && r.query.contains("limit=500"))
    );
    assert!(
        pod_reqs
            .iter()
            .any(|r| r.verb == "watch" && r.query.contains("allowWatchBookmarks=true"))
    );
    assert!(
        reqs.iter()
            .filter(|r| r.resource == "nodes")
            .all(|r| r.query.contains("fieldSelector=metadata.name%3Dn1"))
    );
    assert!(!reqs.iter().any(|r| r.resource == "deployments"));
}

#[tokio::test(flavor = "current_thread")]
async fn relist_after_expiry_replaces_the_set() {
    let api = fake();
    for name in ["a", "b"] {
        api.apply(objects::pod("default", name, "n1"));
    }
    let s = stores(&api, node_scope("n1")).await;
    until("first list", || s.stats_of(ResourceKind::Pods).relists == 1).await;
    assert_eq!(pod_names(&s), ["a", "b"]);

    // While the watch is down, b is deleted and c added; the history that would replay
    // this is gone, so the resumed watch gets 410 and kube relists.
    api.set_unavailable(true);
    assert!(api.delete("Pod", "default", "b"));
    api.apply(objects::pod("default", "c", "n1"));
    api.expire_watches();
    api.set_unavailable(false);
    until("relist", || s.stats_of(ResourceKind::Pods).relists >= 2).await;
    until("new set", || pod_names(&s) == ["a", "c"]).await;
    let st = s.stats_of(ResourceKind::Pods);
    assert!(st.expired + st.transport >= 1, "{st:?}");
    assert_eq!(s.status_of(ResourceKind::Pods), ResourceStatus::Ready);
}

#[tokio::test(flavor = "current_thread")]
async fn forbidden_kind_leaves_the_others_ready() {
    let api = fake();
    api.apply(objects::deployment("default", "web", 2));
    api.apply(objects::service("default", "web", "ClusterIP"));
    api.apply(objects::namespace("default", "Active"));
    api.forbid("deployments", "list");
    let s = stores(&api, node_scope("n1")).await;
    s.start_cluster_wide();
    until("deployments forbidden", || {
        matches!(
            s.status_of(ResourceKind::Deployments),
            ResourceStatus::Forbidden { .. }
        )
    })
    .await;
    until("services ready", || {
        s.status_of(ResourceKind::Services) == ResourceStatus::Ready
    })
    .await;
    until("namespaces ready", || {
        s.status_of(ResourceKind::Namespaces) == ResourceStatus::Ready
    })
    .await;
    match s.status_of(ResourceKind::Deployments) {
        ResourceStatus::Forbidden { verb, resource, .. } => {
            assert_eq!(
                (verb.as_str(), resource.as_str()),
                ("list", "deployments.apps")
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.snapshot().services.len(), 1);
    assert!(s.snapshot().deployments.is_empty());
    assert_eq!(s.stats_of(ResourceKind::Deployments).forbidden, 1);
    assert!(!s.ready());
    // Retried every 5 minutes, not in a loop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.resource == "deployments")
        .count();
    assert_eq!(lists, 1);

    // Losing the lease stops and empties the cluster-wide stores.
    s.stop_cluster_wide();
    assert!(s.snapshot().services.is_empty());
    assert_eq!(s.status_of(ResourceKind::Services), ResourceStatus::Stopped);
    assert_eq!(
        s.status_of(ResourceKind::Deployments),
        ResourceStatus::Stopped
    );
    assert!(!s.cluster_wide_running());
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_objects_are_counted_and_skipped() {
    let api = fake();
    api.apply(objects::pod("default", "good", "n1"));
    let mut bad = objects::pod("default", "bad-quantity", "n1");
    bad["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": "lots"}});
    api.apply(bad);
    let s = stores(&api, node_scope("n1")).await;
    until("first list", || s.stats_of(ResourceKind::Pods).relists == 1).await;
    assert_eq!(pod_names(&s), ["good"]);
    assert_eq!(s.stats_of(ResourceKind::Pods).malformed, 1);
    assert_eq!(s.status_of(ResourceKind::Pods), ResourceStatus::Ready);

    until("watch open", || api.open_watches_of("Pod") == 1).await;
    api.inject_malformed("Pod");
    api.inject_watch_line("Pod", "{not json");
    api.apply(objects::pod("default", "later", "n1"));
    until("later", || pod_names(&s) == ["good", "later"]).await;
    let st = s.stats_of(ResourceKind::Pods);
    assert_eq!(st.malformed, 2, "{st:?}");
    assert_eq!(st.decode, 1, "{st:?}");
    assert_eq!(st.relists, 1, "{st:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn excluded_namespaces_are_not_stored() {
    let api = fake();
    api.apply(objects::pod("default", "a", "n1"));
    api.apply(objects::pod("kube-system", "k", "n1"));
    api.apply(objects::namespace("default", "Active"));
    api.apply(objects::namespace("kube-system", "Active"));
    let mut scope = node_scope("n1");
    scope.exclude_namespaces = vec!["kube-system".into()];
    let s = stores(&api, scope).await;
    s.start_cluster_wide();
    until("ready", || {
        s.ready() && s.status_of(ResourceKind::Namespaces) == ResourceStatus::Ready
    })
    .await;
    assert_eq!(pod_names(&s), ["a"]);
    let ns: Vec<_> = s
        .snapshot()
        .namespaces
        .iter()
        .map(|n| n.metadata.name.to_string())
        .collect();
    assert_eq!(ns, ["default"]);
    assert_eq!(s.stats_of(ResourceKind::Pods).excluded, 1);
}

#[tokio::test(flavor = "current_thread")]
async fn unreachable_server_is_failing_not_fatal() {
    let api = fake();
    api.set_unavailable(true);
    let s = stores(&api, node_scope("n1")).await;
    until("failing", || {
        matches!(
            s.status_of(ResourceKind::Pods),
            ResourceStatus::Failing { .. }
        )
    })
    .await;
    assert!(!s.ready());
    api.apply(objects::pod("default", "a", "n1"));
    api.set_unavailable(false);
    until("recovered", || {
        s.status_of(ResourceKind::Pods) == ResourceStatus::Ready
    })
    .await;
    assert_eq!(pod_names(&s), ["a"]);
    assert!(s.stats_of(ResourceKind::Pods).transport >= 1);
}
