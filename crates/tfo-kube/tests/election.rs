//! Lease election and the events watcher against the in-repo fake kube-apiserver, with
//! short timing (lease 2 s, renew deadline 1.5 s, retry 0.3 s).
#![cfg(feature = "client")]

use std::time::Duration;

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tfo_kube::events::{self, EventKey, EventsConfig, Watermark};
use tfo_kube::lease::{LeaderElector, LeaseConfig, LeaseHandle, WATERMARK_ANNOTATION};
use tfo_kube::model::event::Event;
use tfo_kube_fake::{FakeApi, objects};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};

const NS: &str = "telemetryflow";
const LEASE: &str = "tfo-agent-cluster";
const L: Duration = Duration::from_secs(2);
const R: Duration = Duration::from_millis(300);

async fn client(api: &FakeApi) -> Client {
    let kc = Kubeconfig::from_yaml(&api.kubeconfig_yaml()).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// One agent's elector, running on a task of its own.
struct Agent {
    handle: LeaseHandle,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Agent {
    async fn start(api: &FakeApi, identity: &str) -> Agent {
        let mut cfg = LeaseConfig::new(LEASE, NS, identity);
        cfg.lease_duration = L;
        cfg.renew_deadline = Duration::from_millis(1500);
        cfg.retry_period = R;
        cfg.validate().unwrap();
        let elector = LeaderElector::new(client(api).await, cfg);
        let handle = elector.handle();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elector.run(async {
            let _ = stopped.await;
        }));
        Agent {
            handle,
            stop: Some(stop),
            task,
        }
    }

    /// Dies without releasing (kill -9, node lost).
    fn kill(&self) {
        self.task.abort();
    }

    /// Graceful stop: steps down and releases.
    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let _ = timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

async fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < limit, "timed out waiting for {what}");
        sleep(Duration::from_millis(10)).await;
    }
    t0.elapsed()
}

fn holder(api: &FakeApi) -> (String, i64) {
    let l = api.lease(NS, LEASE).expect("the lease exists");
    (
        l["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        l["spec"]["leaseTransitions"].as_i64().unwrap_or(-1),
    )
}

#[tokio::test]
async fn one_leader_then_failover_when_it_dies() {
    let api = FakeApi::start();
    let a = Agent::start(&api, "node-a").await;
    let b = Agent::start(&api, "node-b").await;
    until("a leader", Duration::from_secs(5), || {
        a.handle.is_leader() || b.handle.is_leader()
    })
    .await;
    // Exactly one leader over several renewal periods.
    for _ in 0..60 {
        assert!(
            a.handle.is_leader() ^ b.handle.is_leader(),
            "exactly one leader"
        );
        sleep(Duration::from_millis(25)).await;
    }
    let (leader, other, leader_id, other_id) = if a.handle.is_leader() {
        (a, b, "node-a", "node-b")
    } else {
        (b, a, "node-b", "node-a")
    };
    assert_eq!(holder(&api).0, leader_id);
    let conflicts = leader.handle.stats().conflicts + other.handle.stats().conflicts;

    leader.kill();
    let took = until("the takeover", L + R + Duration::from_secs(2), || {
        other.handle.is_leader()
    })
    .await;
    eprintln!(
        "takeover after the leader died: {took:?} (bound L + R = {:?}); conflicts at start: {conflicts}",
        L + R
    );
    assert!(took <= L + R + Duration::from_millis(500), "{took:?}");
    let (h, transitions) = holder(&api);
    assert_eq!(h, other_id);
    assert_eq!(transitions, 1);
    assert_eq!(other.handle.stats().acquired, 1);
    other.stop().await;
}

#[tokio::test]
async fn graceful_stop_releases_and_the_same_node_retakes_at_once() {
    let api = FakeApi::start();
    let a = Agent::start(&api, "node-a").await;
    until("a leads", Duration::from_secs(5), || a.handle.is_leader()).await;
    let b = Agent::start(&api, "node-b").await;
    sleep(R * 2).await;
    assert!(!b.handle.is_leader());

    // Graceful stop: b takes over within a retry period or so, not a lease duration.
    a.stop().await;
    let took = until("b after release", L, || b.handle.is_leader()).await;
    eprintln!("takeover after a release: {took:?}");
    assert_eq!(holder(&api).0, "node-b");

    // b is killed and restarted on the same node: same identity, re-taken at once, while
    // c (another node) has to wait for expiry.
    b.kill();
    let c = Agent::start(&api, "node-c").await;
    let b2 = Agent::start(&api, "node-b").await;
    let took = until("b2 re-takes", L, || b2.handle.is_leader()).await;
    eprintln!("restart on the same node re-takes after {took:?}");
    assert!(took < L);
    for _ in 0..(L.as_millis() / 50 + 10) {
        assert!(!c.handle.is_leader());
        sleep(Duration::from_millis(50)).await;
    }
    let (_, transitions) = holder(&api);
    assert_eq!(
        transitions, 1,
        "a -> (released) -> b counts, b -> b does not"
    );
    b2.stop().await;
    c.stop().await;
}

#[tokio::test]
async fn leader_steps_down_when_the_api_is_unreachable() {
    let api = FakeApi::start();
    let a = Agent::start(&api, "node-a").await;
    until("a leads", Duration::from_secs(5), || a.handle.is_leader()).await;
    api.set_unavailable(true);
    let t = until("a steps down", Duration::from_secs(3), || {
        !a.handle.is_leader()
    })
    .await;
    eprintln!("stepped down {t:?} after the API went away (renew deadline 1.5 s)");
    // Never later than the deadline (plus the round in flight), always before the lease
    // could expire for others.
    assert!(t < L, "{t:?}");
    let s = a.handle.stats();
    assert!(s.renew_failures >= 1 && s.lost == 1, "{s:?}");
    api.set_unavailable(false);
    until("a leads again", Duration::from_secs(5), || {
        a.handle.is_leader()
    })
    .await;
    a.stop().await;
}

#[tokio::test]
async fn a_foreign_holder_is_respected_until_its_lease_expires() {
    let api = FakeApi::start();
    api.apply(objects::lease(NS, LEASE, "ghost", 2));
    let a = Agent::start(&api, "node-a").await;
    let b = Agent::start(&api, "node-b").await;
    sleep(Duration::from_millis(1500)).await;
    assert!(!a.handle.is_leader() && !b.handle.is_leader());
    until("one takes over", Duration::from_secs(4), || {
        a.handle.is_leader() || b.handle.is_leader()
    })
    .await;
    sleep(R * 3).await;
    assert!(a.handle.is_leader() ^ b.handle.is_leader());
    assert_eq!(holder(&api).1, 1);
    eprintln!(
        "conflicts: a {} b {}",
        a.handle.stats().conflicts,
        b.handle.stats().conflicts
    );
    a.stop().await;
    b.stop().await;
}

fn event(name: &str, reason: &str, count: u32) -> serde_json::Value {
    objects::event(
        "shop",
        name,
        ("Pod", "web-1"),
        reason,
        "a message",
        "Warning",
        count,
    )
}

async fn drain(rx: &mut mpsc::Receiver<Event>, quiet: Duration) -> Vec<Event> {
    let mut out = Vec::new();
    while let Ok(Some(e)) = timeout(quiet, rx.recv()).await {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn events_exported_once_across_relists_and_a_leader_change() {
    let api = FakeApi::start();
    api.apply(event("e1", "BackOff", 1));
    api.apply(event("e2", "Pulled", 1));
    api.apply(objects::event(
        "kube-system",
        "sys",
        ("Pod", "p"),
        "Pulled",
        "m",
        "Normal",
        1,
    ));
    let cfg = EventsConfig {
        exclude_namespaces: vec!["kube-system".into()],
        ..EventsConfig::default()
    };

    let a = Agent::start(&api, "node-a").await;
    until("a leads", Duration::from_secs(5), || a.handle.is_leader()).await;
    let (ha, mut rxa) = events::spawn(client(&api).await, cfg.clone(), Some(a.handle.clone()));
    let first = drain(&mut rxa, Duration::from_millis(500)).await;
    let mut names: Vec<_> = first.iter().map(|e| e.metadata.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["e1", "e2"]);

    // Relist after 410 (kube's watcher backs off ~1 s first): nothing new.
    assert!(api.expire_watches() >= 1);
    until("the relist", Duration::from_secs(5), || {
        ha.stats().duplicates >= 2
    })
    .await;
    assert!(drain(&mut rxa, Duration::from_millis(300)).await.is_empty());

    // e1 recurs: exported once more.
    api.apply(event("e1", "BackOff", 2));
    let again = drain(&mut rxa, Duration::from_millis(500)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].occurrences(), 2);

    // Everything so far is durable; the watermark reaches the Lease on the next renewal.
    let keys: Vec<EventKey> = first.iter().chain(&again).map(EventKey::of).collect();
    ha.ack(&keys);
    let wm = ha.watermark();
    until("the watermark in the lease", Duration::from_secs(2), || {
        api.lease(NS, LEASE).is_some_and(|l| {
            l["metadata"]["annotations"][WATERMARK_ANNOTATION].as_str() == Some(wm.as_str())
        })
    })
    .await;
    assert!(Watermark::parse(&wm).is_some());

    // The leader dies; b takes over, reads the watermark before it reports leadership.
    let b = Agent::start(&api, "node-b").await;
    a.kill();
    drop(ha);
    until("b leads", Duration::from_secs(5), || b.handle.is_leader()).await;
    assert_eq!(b.handle.watermark().as_deref(), Some(wm.as_str()));
    let (hb, mut rxb) = events::spawn(client(&api).await, cfg, Some(b.handle.clone()));
    assert!(drain(&mut rxb, Duration::from_millis(800)).await.is_empty());
    assert!(hb.stats().before_watermark >= 2, "{:?}", hb.stats());

    // New occurrences after the takeover are exported by b.
    api.apply(event("e3", "Killing", 1));
    api.apply(event("e2", "Pulled", 2));
    let mut after: Vec<_> = drain(&mut rxb, Duration::from_millis(500))
        .await
        .into_iter()
        .map(|e| (e.metadata.name.clone(), e.occurrences()))
        .collect();
    after.sort();
    assert_eq!(after, [("e2".to_string(), 2), ("e3".to_string(), 1)]);
    assert_eq!(hb.stats().excluded, 1);
    b.stop().await;
}
