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
