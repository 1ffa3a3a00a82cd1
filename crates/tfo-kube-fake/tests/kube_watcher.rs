//! End to end with the client the agent uses: kube's `watcher()` against the fake, through
//! the kubeconfig the fake writes. Pages, field selector, watch, a malformed event, 410
//! and the relist after it, 403.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher::{self, Event, watcher};
use kube::{Api, Client, Config, ResourceExt};
use tfo_kube_fake::{FakeApi, FakeConfig, objects};

type Item = Result<Event<Pod>, watcher::Error>;

async fn next(s: &mut (impl Stream<Item = Item> + Unpin)) -> Item {
    tokio::time::timeout(Duration::from_secs(5), s.next())
        .await
        .expect("a watcher event within 5 s")
        .expect("the watcher stream does not end")
}

/// Events up to and including InitDone, returning the names applied.
async fn initial(s: &mut (impl Stream<Item = Item> + Unpin)) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        match next(s).await {
            Ok(Event::Init) => names.clear(),
            Ok(Event::InitApply(p)) => names.push(p.name_any()),
            Ok(Event::InitDone) => return names,
            other => panic!("during the initial list: {other:?}"),
        }
    }
}

async fn client(api: &FakeApi) -> Client {
    let kc = Kubeconfig::from_yaml(&api.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

#[tokio::test]
async fn kube_watcher_lists_watches_and_relists_after_expiry() {
    let api = FakeApi::start_with(FakeConfig {
        bookmark_interval: Duration::from_millis(200),
        ..FakeConfig::default()
    })
    .unwrap();
    for (name, node) in [("a", "n1"), ("b", "n1"), ("c", "n1"), ("x", "n2")] {
        api.apply(objects::pod("default", name, node));
    }
    let pods: Api<Pod> = Api::all(client(&api).await);
    let wc = watcher::Config::default()
        .fields("spec.nodeName=n1")
        .page_size(2);
    let mut s = watcher(pods, wc).boxed();

    assert_eq!(initial(&mut s).await, ["a", "b", "c"]);

    api.apply(objects::pod("default", "y", "n2"));
    api.apply(objects::pod("default", "d", "n1"));
    match next(&mut s).await {
        Ok(Event::Apply(p)) => {
            assert_eq!(p.name_any(), "d");
            assert_eq!(p.spec.unwrap().containers[0].name, "app");
        }
        other => panic!("{other:?}"),
    }
    // Past a few bookmarks, a delete.
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.delete("Pod", "default", "a");
    assert!(matches!(next(&mut s).await, Ok(Event::Delete(p)) if p.name_any() == "a"));

    // A malformed object is an error on the stream, which goes on.
    api.inject_malformed("Pod");
    assert!(next(&mut s).await.is_err());
    api.apply(objects::pod("default", "e", "n1"));
    assert!(matches!(next(&mut s).await, Ok(Event::Apply(p)) if p.name_any() == "e"));

    // 410: an error, then a full relist, then live events again.
    api.apply(objects::pod("default", "f", "n1"));
    assert!(matches!(next(&mut s).await, Ok(Event::Apply(p)) if p.name_any() == "f"));
    assert_eq!(api.expire_watches(), 1);
    match next(&mut s).await {
        Err(watcher::Error::WatchError(status)) => assert_eq!(status.code, 410),
        other => panic!("{other:?}"),
    }
    assert_eq!(initial(&mut s).await, ["b", "c", "d", "e", "f"]);
    api.apply(objects::pod("default", "g", "n1"));
    assert!(matches!(next(&mut s).await, Ok(Event::Apply(p)) if p.name_any() == "g"));

    let reqs = api.requests();
    let lists: Vec<&str> = reqs
        .iter()
        .filter(|r| r.verb == "list")
        .map(|r| r.query.as_str())
        .collect();
    assert_eq!(lists.len(), 5, "3 pods in 2 pages, then 5 in 3: {lists:?}");
    assert!(
        lists
            .iter()
            .all(|q| q.contains("fieldSelector=spec.nodeName%3Dn1") && q.contains("limit=2"))
    );
    assert!(lists.iter().filter(|q| q.contains("continue=")).count() == 3);
    let watches: Vec<&str> = reqs
        .iter()
        .filter(|r| r.verb == "watch")
        .map(|r| r.query.as_str())
        .collect();
    assert!(
        watches
            .iter()
            .all(|q| q.contains("allowWatchBookmarks=true")),
        "{watches:?}"
    );
    assert!(
        reqs.iter()
            .all(|r| r.resource == "pods" && r.path == "/api/v1/pods")
    );
}

#[tokio::test]
async fn kube_watcher_reports_forbidden() {
    let api = FakeApi::start();
    api.forbid("pods", "list");
    let pods: Api<Pod> = Api::all(client(&api).await);
    let mut s = watcher(pods, watcher::Config::default()).boxed();
    match next(&mut s).await {
        Ok(Event::Init) => {}
        other => panic!("{other:?}"),
    }
    match next(&mut s).await {
        Err(watcher::Error::InitialListFailed(kube::Error::Api(status))) => {
            assert_eq!(status.code, 403);
            assert!(
                status.message.contains("cannot list resource \"pods\""),
                "{}",
                status.message
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn kube_watcher_streaming_list() {
    let api = FakeApi::start();
    api.apply(objects::pod("default", "a", "n1"));
    api.apply(objects::pod("default", "b", "n1"));
    let pods: Api<Pod> = Api::namespaced(client(&api).await, "default");
    let mut s = watcher(pods, watcher::Config::default().streaming_lists()).boxed();
    assert_eq!(initial(&mut s).await, ["a", "b"]);
    api.apply(objects::pod("default", "c", "n1"));
    assert!(matches!(next(&mut s).await, Ok(Event::Apply(p)) if p.name_any() == "c"));
    let reqs = api.requests();
    assert_eq!(reqs[0].verb, "watch");
    assert_eq!(reqs[0].path, "/api/v1/namespaces/default/pods");
    assert!(reqs[0].query.contains("sendInitialEvents=true"));
}

/// Every generated object deserialises into its k8s-openapi type.
#[tokio::test]
async fn generated_objects_are_valid_for_kube() {
    use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
    use k8s_openapi::api::batch::v1::{CronJob, Job};
    use k8s_openapi::api::core::v1::{Event as CoreEvent, Namespace, Node, ResourceQuota, Service};
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use kube::api::ListParams;

    async fn count<K>(c: &Client) -> usize
    where
        K: kube::Resource<DynamicType = ()>
            + Clone
            + k8s_openapi::serde::de::DeserializeOwned
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::all(c.clone());
        api.list(&ListParams::default())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", K::kind(&())))
            .items
            .len()
    }

    let api = FakeApi::start();
    api.load_cluster(3, 12);
    let c = client(&api).await;
    assert_eq!(count::<Pod>(&c).await, 36);
    assert_eq!(count::<Node>(&c).await, 3);
    assert!(count::<Namespace>(&c).await > 10);
    assert!(count::<Service>(&c).await > 0);
    assert!(count::<CoreEvent>(&c).await > 0);
    assert!(count::<ResourceQuota>(&c).await > 0);
    assert!(count::<Deployment>(&c).await > 0);
    assert!(count::<ReplicaSet>(&c).await > 0);
    assert!(count::<StatefulSet>(&c).await > 0);
    assert!(count::<DaemonSet>(&c).await > 0);
    assert!(count::<Job>(&c).await > 0);
    assert!(count::<CronJob>(&c).await > 0);
    assert!(count::<EndpointSlice>(&c).await > 0);
}

#[tokio::test]
async fn kube_lease_get_create_replace_conflict() {
    use k8s_openapi::api::coordination::v1::Lease;
    use kube::api::PostParams;

    let api = FakeApi::start();
    let leases: Api<Lease> = Api::namespaced(client(&api).await, "telemetryflow");
    assert!(leases.get_opt("tfo-agent-cluster").await.unwrap().is_none());
    let l: Lease = serde_json::from_value(objects::lease(
        "telemetryflow",
        "tfo-agent-cluster",
        "agent-a",
        15,
    ))
    .unwrap();
    let created = leases.create(&PostParams::default(), &l).await.unwrap();
    match leases.create(&PostParams::default(), &l).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409),
        other => panic!("{other:?}"),
    }
    let mut renewed = created.clone();
    renewed.spec.as_mut().unwrap().lease_transitions = Some(1);
    leases
        .replace("tfo-agent-cluster", &PostParams::default(), &renewed)
        .await
        .unwrap();
    // `created` still carries the old resourceVersion.
    match leases
        .replace("tfo-agent-cluster", &PostParams::default(), &created)
        .await
    {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("{other:?}"),
    }
    let stored = api.lease("telemetryflow", "tfo-agent-cluster").unwrap();
    assert_eq!(stored["spec"]["leaseTransitions"], 1);
}
