//! The client and aggregator against the fake Hubble observer (crate tfo-hubble-fake),
//! on a Unix socket and on TCP with TLS/mTLS: scripted flows give exact counts, and
//! reconnects (server killed and restarted, stream failed, socket appearing late) neither
//! lose the counts so far nor count anything twice.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tfo_hubble::aggregate::{AggOptions, Aggregator};
use tfo_hubble::client::{self, Address, ClientOptions, Status, TlsOptions};
use tfo_hubble::snapshot::{Metric, OTHER, Snapshot};
use tfo_hubble_fake::flows::{self as f, Flags};
use tfo_hubble_fake::{Certs, End, FakeHubble, Session, TlsFiles};
use tokio::sync::oneshot;

struct Running {
    agg: Arc<Mutex<Aggregator>>,
    status: Arc<Status>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    fn start(opts: ClientOptions, agg: AggOptions) -> Running {
        let agg = Arc::new(Mutex::new(Aggregator::new(agg, 1)));
        let status = Arc::new(Status::default());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(client::run(opts, agg.clone(), status.clone(), async {
            let _ = rx.await;
        }));
        Running {
            agg,
            status,
            stop: Some(tx),
            task,
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.agg.lock().unwrap().snapshot()
    }

    fn messages(&self) -> u64 {
        self.status
            .messages
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("client stops")
            .unwrap();
    }
}

async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn fast(address: &str) -> ClientOptions {
    let mut o = ClientOptions::new(Address::parse(address).unwrap(), None);
    o.retry_missing = Duration::from_millis(200);
    o.backoff_initial = Duration::from_millis(20);
    o.backoff_max = Duration::from_millis(100);
    o
}

/// 17 messages: 12 flows (4 TCP, 2 dropped, 3 HTTP, 3 DNS), 2 lost-event notices,
/// one Relay node status, and flows whose text fields are unusable.
fn script() -> Vec<tfo_hubble_fake::proto::observer::GetFlowsResponse> {
    let fwd_e = || f::base(f::FORWARDED, f::EGRESS, "shop", "shop");
    let fwd_i = || f::base(f::FORWARDED, f::INGRESS, "shop", "db");
    let mut v6 = f::with_tcp(
        fwd_i(),
        Flags {
            syn: true,
            ack: true,
            ..Flags::default()
        },
    );
    v6.ip.as_mut().unwrap().ip_version = f::IPV6;
    vec![
        f::msg(f::with_tcp(
            fwd_e(),
            Flags {
                syn: true,
                ..Flags::default()
            },
        )),
        f::msg(v6),
        f::msg(f::with_tcp(
            fwd_e(),
            Flags {
                fin: true,
                rst: true,
                ack: true,
                ..Flags::default()
            },
        )),
        f::msg(f::with_tcp(
            fwd_e(),
            Flags {
                psh: true,
                ack: true,
                ..Flags::default()
            },
        )),
        f::node_status(),
        f::msg(f::dropped(
            f::with_tcp(
                fwd_i(),
                Flags {
                    syn: true,
                    ..Flags::default()
                },
            ),
            f::POLICY_DENIED,
        )),
        f::msg(f::dropped(f::with_icmp4(fwd_e()), 9999)),
        f::lost(1, 7),
        f::msg(f::http(fwd_i(), f::REQUEST, "GET", 0)),
        f::msg(f::http(fwd_i(), f::RESPONSE, "GET", 200)),
        f::msg(f::http(fwd_i(), f::RESPONSE, "POST", 503)),
        f::msg(f::dns(fwd_e(), f::REQUEST, 0, &["A"])),
        f::msg(f::dns(fwd_e(), f::RESPONSE, 0, &["A"])),
        f::msg(f::dns(fwd_e(), f::RESPONSE, 3, &["A", "AAAA"])),
        f::lost(3, 5),
        f::msg(f::http(fwd_i(), f::RESPONSE, "G\u{1}T", 700)),
        f::msg(f::http(fwd_i(), f::RESPONSE, &"X".repeat(40), 404)),
    ]
}

const SCRIPT_MESSAGES: u64 = 17;

/// The exact counts of one [`script`] (without namespaces).
fn assert_script(s: &Snapshot, times: u64) {
    let v = |m, l: &[&str]| {
        s.value(m, l)
            .unwrap_or_else(|| panic!("{m:?} {l:?} missing: {:?}", s.series(m)))
    };
    let t = times;
    assert_eq!(v(Metric::Flows, &["FORWARDED", "L3_L4", "EGRESS"]), 3 * t);
    assert_eq!(v(Metric::Flows, &["FORWARDED", "L3_L4", "INGRESS"]), t);
    assert_eq!(v(Metric::Flows, &["DROPPED", "L3_L4", "INGRESS"]), t);
    assert_eq!(v(Metric::Flows, &["DROPPED", "L3_L4", "EGRESS"]), t);
    assert_eq!(v(Metric::Flows, &["FORWARDED", "L7", "INGRESS"]), 5 * t);
    assert_eq!(v(Metric::Flows, &["FORWARDED", "L7", "EGRESS"]), 3 * t);
    assert_eq!(s.series(Metric::Flows).len(), 6);
    assert_eq!(s.total(Metric::Flows), 14 * t);

    assert_eq!(v(Metric::Drops, &["POLICY_DENIED", "TCP"]), t);
    assert_eq!(v(Metric::Drops, &["9999", "ICMPv4"]), t);
    assert_eq!(s.series(Metric::Drops).len(), 2);

    assert_eq!(v(Metric::TcpFlags, &["SYN", "IPv4"]), 2 * t);
    assert_eq!(v(Metric::TcpFlags, &["SYN-ACK", "IPv6"]), t);
    assert_eq!(v(Metric::TcpFlags, &["FIN", "IPv4"]), t);
    assert_eq!(v(Metric::TcpFlags, &["RST", "IPv4"]), t);
    assert_eq!(s.series(Metric::TcpFlags).len(), 4);

    assert_eq!(v(Metric::HttpRequests, &["GET", "2xx"]), t);
    assert_eq!(v(Metric::HttpRequests, &["POST", "5xx"]), t);
    assert_eq!(v(Metric::HttpRequests, &["_invalid", "unknown"]), t);
    assert_eq!(v(Metric::HttpRequests, &["_invalid", "4xx"]), t);
    assert_eq!(s.series(Metric::HttpRequests).len(), 4);

    assert_eq!(v(Metric::DnsResponses, &["NOERROR", "A"]), t);
    assert_eq!(v(Metric::DnsResponses, &["NXDOMAIN", "A,AAAA"]), t);
    assert_eq!(s.series(Metric::DnsResponses).len(), 2);

    assert_eq!(v(Metric::LostEvents, &["PERF_EVENT_RING_BUFFER"]), 7 * t);
    assert_eq!(v(Metric::LostEvents, &["HUBBLE_RING_BUFFER"]), 5 * t);
    assert_eq!(s.series(Metric::LostEvents).len(), 2);
    assert_eq!(s.ignored_messages, t);
    assert_eq!(s.overflowed_series, 0);
}

#[tokio::test]
async fn unix_socket_scripted_flows_are_counted_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let fake = FakeHubble::unix(&sock, vec![Session::hold(script())]).await;
    let c = Running::start(fast(fake.address()), AggOptions::default());
    wait_until("all messages", || c.messages() == SCRIPT_MESSAGES).await;
    assert!(c.status.connected());
    assert_script(&c.snapshot(), 1);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].follow && reqs[0].number == 0, "{reqs:?}");
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn namespaces_are_labels_only_when_enabled() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let flows = vec![
        f::msg(f::base(f::FORWARDED, f::EGRESS, "shop", "db")),
        f::msg(f::base(f::FORWARDED, f::EGRESS, "shop", "db")),
        f::msg(f::base(f::FORWARDED, f::EGRESS, "", "kube-system")),
        f::lost(2, 4),
    ];
    let fake = FakeHubble::unix(&sock, vec![Session::hold(flows)]).await;
    let opts = AggOptions {
        namespaces: true,
        ..AggOptions::default()
    };
    let c = Running::start(fast(fake.address()), opts);
    wait_until("all messages", || c.messages() == 4).await;
    let s = c.snapshot();
    assert!(s.namespaces);
    assert_eq!(
        s.value(
            Metric::Flows,
            &["FORWARDED", "L3_L4", "EGRESS", "shop", "db"]
        ),
        Some(2)
    );
    assert_eq!(
        s.value(
            Metric::Flows,
            &["FORWARDED", "L3_L4", "EGRESS", "", "kube-system"]
        ),
        Some(1)
    );
    assert_eq!(
        s.value(Metric::LostEvents, &["OBSERVER_EVENTS_QUEUE"]),
        Some(4)
    );
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn a_flood_of_distinct_series_is_capped_into_other() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let flows: Vec<_> = (0..500)
        .map(|i| f::msg(f::base(f::FORWARDED, f::EGRESS, &format!("ns-{i}"), "db")))
        .collect();
    let fake = FakeHubble::unix(
        &sock,
        vec![Session {
            messages: flows,
            repeat: 4,
            end: End::Hold,
        }],
    )
    .await;
    let opts = AggOptions {
        namespaces: true,
        max_series: 50,
    };
    let c = Running::start(fast(fake.address()), opts);
    wait_until("all messages", || c.messages() == 2000).await;
    let s = c.snapshot();
    assert_eq!(s.total(Metric::Flows), 2000);
    let series = s.series(Metric::Flows);
    assert_eq!(series.len(), 51, "50 series and _other");
    assert_eq!(s.value(Metric::Flows, &[OTHER; 5]), Some(2000 - 50 * 4));
    assert!(
        series
            .iter()
            .filter(|p| p.labels[0] != OTHER)
            .all(|p| p.value == 4)
    );
    assert!(c.agg.lock().unwrap().series_count() <= 6 * 50);
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn killed_and_restarted_server_resumes_without_double_counting() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let fake = FakeHubble::unix(&sock, vec![Session::hold(script())]).await;
    let c = Running::start(fast(fake.address()), AggOptions::default());
    wait_until("first run", || c.messages() == SCRIPT_MESSAGES).await;
    fake.kill().await;
    wait_until("disconnected", || !c.status.connected()).await;
    // Down for a while: the client retries (socket missing, then refused) without counting.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(c.status.last_error().is_some());
    assert_eq!(c.messages(), SCRIPT_MESSAGES);
    let fake = FakeHubble::unix(&sock, vec![Session::hold(script())]).await;
    wait_until("second run", || c.messages() == 2 * SCRIPT_MESSAGES).await;
    assert!(c.status.connected());
    assert_eq!(c.status.last_error(), None);
    assert_script(&c.snapshot(), 2);
    assert_eq!(fake.requests().len(), 1);
    // Nothing more arrives while the stream is held open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_script(&c.snapshot(), 2);
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn a_missing_socket_is_retried_until_it_appears() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let c = Running::start(
        fast(&format!("unix://{}", sock.display())),
        AggOptions::default(),
    );
    wait_until("failure noted", || c.status.last_error().is_some()).await;
    assert!(c.status.last_error().unwrap().contains("does not exist"));
    assert!(!c.status.connected());
    let fake = FakeHubble::unix(&sock, vec![Session::hold(script())]).await;
    wait_until("all messages", || c.messages() == SCRIPT_MESSAGES).await;
    assert_script(&c.snapshot(), 1);
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn ended_and_failed_streams_are_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("hubble.sock");
    let half = script();
    let (a, b) = half.split_at(8);
    let sessions = vec![
        Session {
            messages: a.to_vec(),
            repeat: 1,
            end: End::Fail(tonic::Code::Internal, "boom".into()),
        },
        Session {
            messages: b.to_vec(),
            repeat: 1,
            end: End::Close,
        },
        Session::hold(Vec::new()),
    ];
    let fake = FakeHubble::unix(&sock, sessions).await;
    let c = Running::start(fast(fake.address()), AggOptions::default());
    wait_until("three streams", || fake.requests().len() == 3).await;
    wait_until("all messages", || c.messages() == SCRIPT_MESSAGES).await;
    assert_script(&c.snapshot(), 1);
    assert!(c.status.failures.load(std::sync::atomic::Ordering::Relaxed) >= 2);
    c.stop().await;
    fake.kill().await;
}

fn tls(certs: &Certs, client_cert: bool, server_name: Option<&str>) -> TlsOptions {
    TlsOptions {
        ca_file: Some(certs.path("ca.pem")),
        cert_file: client_cert.then(|| certs.path("client.pem")),
        key_file: client_cert.then(|| certs.path("client.key")),
        server_name: server_name.map(str::to_string),
    }
}

#[tokio::test]
async fn relay_over_mtls_is_counted_exactly() {
    let certs = Certs::generate();
    let files = TlsFiles {
        cert: certs.path("server.pem"),
        key: certs.path("server.key"),
        client_ca: Some(certs.path("ca.pem")),
    };
    let fake = FakeHubble::tcp(
        0,
        Some(files),
        vec![Session::hold(script()), Session::hold(script())],
    )
    .await;
    let mut o = fast(fake.address());
    o.tls = Some(tls(&certs, true, None));
    let c = Running::start(o, AggOptions::default());
    wait_until("all messages", || c.messages() == SCRIPT_MESSAGES).await;
    assert_script(&c.snapshot(), 1);
    c.stop().await;

    // Verified under another name than the address's host.
    let mut o = fast(fake.address());
    o.tls = Some(tls(&certs, true, Some("relay.hubble.test")));
    let c = Running::start(o, AggOptions::default());
    wait_until("all messages", || c.messages() == SCRIPT_MESSAGES).await;
    c.stop().await;
    fake.kill().await;
}

#[tokio::test]
async fn tls_failures_are_reported_and_count_nothing() {
    let certs = Certs::generate();
    let files = TlsFiles {
        cert: certs.path("server.pem"),
        key: certs.path("server.key"),
        client_ca: Some(certs.path("ca.pem")),
    };
    let fake = FakeHubble::tcp(0, Some(files), vec![Session::hold(script())]).await;
    for (opts, what) in [
        (tls(&certs, false, None), "no client certificate"),
        (tls(&certs, true, Some("other.example")), "wrong name"),
        (
            TlsOptions {
                ca_file: Some(certs.path("missing.pem")),
                ..TlsOptions::default()
            },
            "missing CA file",
        ),
    ] {
        let mut o = fast(fake.address());
        o.tls = Some(opts);
        let c = Running::start(o, AggOptions::default());
        wait_until(what, || c.status.last_error().is_some()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(c.messages(), 0, "{what}");
        assert!(!c.status.connected(), "{what}");
        c.stop().await;
    }
    // A plain-text client against the TLS server fails too.
    let c = Running::start(fast(fake.address()), AggOptions::default());
    wait_until("plain text", || c.status.last_error().is_some()).await;
    assert_eq!(c.messages(), 0);
    c.stop().await;
    fake.kill().await;
}
