//! The client against a loopback platform stand-in: paths, both credential header pairs,
//! the agent id header, user agent, bodies (the heartbeat validated against the committed
//! JSON Schema and cross-checked with the host), reply shapes, and retry behaviour.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Reply, StandIn, assert_valid};
use serde_json::json;
use tfo_platform::{
    AgentHealth, CollectorOptions, HeartbeatBody, IdSource, IdStore, PlatformClient, PlatformError,
    PlatformSettings, RegisterRequest, SystemInfoCollector,
};

const KEY_ID: &str = "tfk_test_key";
const SECRET: &str = "tfs_top_secret_value";

fn settings(base: &str) -> PlatformSettings {
    let mut s = PlatformSettings::new(base, "edge-01", "1.4.2");
    s.api_key_id = Some(KEY_ID.into());
    s.api_key_secret = Some(SECRET.into());
    s.timeout = Duration::from_secs(5);
    s.retry_initial_interval = Duration::from_millis(10);
    s.retry_max_interval = Duration::from_millis(40);
    s
}

fn register_request(id: Option<&str>) -> RegisterRequest {
    let mut tags = BTreeMap::new();
    tags.insert("environment".to_string(), "test".to_string());
    RegisterRequest::from_host(
        std::path::Path::new("/"),
        "edge-01",
        "1.4.2",
        id.map(str::to_string),
        None,
        tags,
    )
}

fn assert_auth_headers(r: &common::Recorded, ua: &str) {
    assert_eq!(
        r.header("x-api-key-id"),
        Some(KEY_ID),
        "{} {}",
        r.method,
        r.target
    );
    assert_eq!(r.header("x-api-key-secret"), Some(SECRET));
    assert_eq!(r.header("x-telemetryflow-key-id"), Some(KEY_ID));
    assert_eq!(r.header("x-telemetryflow-key-secret"), Some(SECRET));
    assert_eq!(r.header("user-agent"), Some(ua));
    assert_eq!(r.header("content-type"), Some("application/json"));
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: writable buffer of the given length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    assert_eq!(rc, 0);
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[tokio::test]
async fn register_heartbeat_status_config_against_the_stand_in() {
    let srv = StandIn::start(|r, _| match (r.method.as_str(), r.path()) {
        ("POST", "/api/v2/agents/register") => {
            // The wrapped reply shape: {"data": {"id": ...}}.
            Reply::json(
                201,
                json!({"success": true, "data": {"id": "agent-7f3a", "config_version": 1}}),
            )
        }
        ("POST", "/api/v2/agents/agent-7f3a/heartbeat") => {
            Reply::json(200, json!({"status": "ok", "config_version": 3}))
        }
        ("GET", "/api/v2/agents/agent-7f3a/status") => {
            Reply::json(200, json!({"agent_id": "agent-7f3a", "status": "online"}))
        }
        ("GET", "/api/v2/agents/agent-7f3a/config") => Reply::json(
            200,
            json!({"config_version": "3", "config": {"agent": {"tags": {"team": "core"}}}}),
        ),
        _ => Reply::json(404, json!({"message": "no route"})),
    })
    .await;
    let s = settings(&srv.url());
    let ua = s.user_agent();
    let client = PlatformClient::new(&s).expect("client");
    let dir = tempfile::tempdir().unwrap();
    let store = IdStore::new(dir.path());

    // No configured and no persisted id: register without one, persist the reply's.
    assert_eq!(store.initial_id(None).unwrap(), None);
    let req = register_request(None);
    let reg = client.register(&req).await.expect("register");
    assert_eq!(reg.agent_id, "agent-7f3a");
    assert_eq!(reg.config_version.as_deref(), Some("1"));
    let (id, src) = store.adopt(None, &reg.agent_id).unwrap();
    assert_eq!((id.as_str(), src), ("agent-7f3a", IdSource::Platform));
    assert_eq!(store.load().unwrap().as_deref(), Some("agent-7f3a"));

    let mut collector = SystemInfoCollector::new("/", CollectorOptions::new("edge-01", "1.4.2"));
    collector.set_agent_id(Some(id.clone()));
    let mut health = AgentHealth {
        buffer_records: 12,
        buffer_bytes: 3456,
        exporter_state: "ok".into(),
        last_export_unix_ms: Some(1_700_000_000_000),
        ..Default::default()
    };
    health.dropped.insert("full".into(), 2);
    let body = HeartbeatBody {
        system_info: collector.collect(health),
    };
    let hb = client.heartbeat(&id, &body).await.expect("heartbeat");
    assert_eq!(hb.config_version.as_deref(), Some("3"));
    let status = client.status(&id).await.expect("status");
    assert_eq!(status["status"], "online");
    let cfg = client.fetch_config(&id).await.expect("config");
    assert_eq!(cfg.version.as_deref(), Some("3"));
    assert_eq!(cfg.config["agent"]["tags"]["team"], "core");

    let rec = srv.recorded();
    let seen: Vec<(&str, &str)> = rec.iter().map(|r| (r.method.as_str(), r.path())).collect();
    assert_eq!(
        seen,
        vec![
            ("POST", "/api/v2/agents/register"),
            ("POST", "/api/v2/agents/agent-7f3a/heartbeat"),
            ("GET", "/api/v2/agents/agent-7f3a/status"),
            ("GET", "/api/v2/agents/agent-7f3a/config"),
        ]
    );
    for r in &rec {
        assert_auth_headers(r, &ua);
    }
    assert!(ua.starts_with("tfo-agent/1.4.2 (linux; "), "{ua}");
    // The id header is sent once an id is known, and not before.
    assert_eq!(rec[0].header("x-telemetryflow-agent-id"), None);
    for r in &rec[1..] {
        assert_eq!(r.header("x-telemetryflow-agent-id"), Some("agent-7f3a"));
    }

    // Registration body: identity, addresses, tags.
    let reg_body = rec[0].json();
    assert_eq!(reg_body["name"], "edge-01");
    assert_eq!(reg_body["version"], "1.4.2");
    assert_eq!(reg_body["hostname"], hostname());
    assert_eq!(reg_body["os"], "linux");
    assert_eq!(reg_body["tags"]["environment"], "test");
    assert!(reg_body.get("agentId").is_none());
    let ips: Vec<String> = tfo_platform::netaddr::ip_addresses()
        .into_iter()
        .filter(|(n, _)| n != "lo")
        .flat_map(|(_, a)| a.into_iter().map(|a| a.ip))
        .collect();
    let sent_ips: Vec<String> = serde_json::from_value(reg_body["ipAddresses"].clone()).unwrap();
    for ip in &ips {
        assert!(sent_ips.contains(ip), "{ip} missing from {sent_ips:?}");
    }
    assert!(!sent_ips.iter().any(|i| i == "127.0.0.1"));
    for m in reg_body["macAddresses"].as_array().unwrap() {
        let m = m.as_str().unwrap();
        assert_eq!(m.len(), 17, "{m}");
        assert_ne!(m, "00:00:00:00:00:00");
    }

    // Heartbeat body: valid against the committed schema, and true to the host.
    let hb_body = rec[1].json();
    assert_valid(&hb_body);
    let si = &hb_body["systemInfo"];
    assert_eq!(si["hostname"], hostname());
    assert_eq!(si["agentId"], "agent-7f3a");
    assert_eq!(si["agentHealth"]["bufferRecords"], 12);
    assert_eq!(si["agentHealth"]["dropped"]["full"], 2);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
    let processors = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(si["cpuCores"], processors);
    // SAFETY: sysconf has no preconditions.
    let conf = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    assert_eq!(si["cpuLogicalCores"].as_i64(), Some(conf as i64));
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let mem_kb: u64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(si["memoryTotal"].as_u64(), Some(mem_kb * 1024));

    // A configured id is sent in the body and header, and kept over the platform's.
    let req = register_request(Some("configured-1"));
    let reg = client.register(&req).await.expect("register with id");
    let (kept, src) = store.adopt(Some("configured-1"), &reg.agent_id).unwrap();
    assert_eq!((kept.as_str(), src), ("configured-1", IdSource::Configured));
    assert_eq!(store.load().unwrap().as_deref(), Some("agent-7f3a"));
    let last = srv.recorded().pop().unwrap();
    assert_eq!(
        last.header("x-telemetryflow-agent-id"),
        Some("configured-1")
    );
    assert_eq!(last.json()["agentId"], "configured-1");
}

#[tokio::test]
async fn include_system_info_false_sends_identity_and_health_only() {
    let srv = StandIn::start(|_, _| Reply::text(204, "")).await;
    let client = PlatformClient::new(&settings(&srv.url())).unwrap();
    let mut opts = CollectorOptions::new("edge-01", "1.4.2");
    opts.include_system_info = false;
    let mut c = SystemInfoCollector::new("/", opts);
    let reply = client
        .heartbeat(
            "a1",
            &HeartbeatBody {
                system_info: c.collect(AgentHealth::default()),
            },
        )
        .await
        .expect("204 is an acknowledgement");
    assert_eq!(reply.config_version, None);
    let body = srv.recorded()[0].json();
    assert_valid(&body);
    let si = body["systemInfo"].as_object().unwrap();
    assert!(si.contains_key("hostname") && si.contains_key("agentHealth"));
    for k in [
        "cpuCores",
        "memoryTotal",
        "diskPartitions",
        "isContainer",
        "cloudProvider",
    ] {
        assert!(!si.contains_key(k), "{k} sent with include_system_info off");
    }
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let srv = StandIn::start(|_, i| {
        if i == 0 {
            Reply::json(429, json!({"message": "slow down"})).with_header("Retry-After", "1")
        } else {
            Reply::json(201, json!({"agent_id": "a-429"}))
        }
    })
    .await;
    let client = PlatformClient::new(&settings(&srv.url())).unwrap();
    let mut delays = Vec::new();
    let reply = client
        .register_with_retry(&register_request(None), None, |n| {
            delays.push((n.attempt, n.error.status(), n.delay))
        })
        .await
        .expect("registered after the 429");
    assert_eq!(reply.agent_id, "a-429");
    assert_eq!(delays.len(), 1);
    assert_eq!(delays[0].1, Some(429));
    assert!(delays[0].2 >= Duration::from_secs(1), "{delays:?}");
    let rec = srv.recorded();
    assert_eq!(rec.len(), 2);
    // Measured by the server: the retry did not arrive before Retry-After elapsed,
    // although the configured backoff (10–40 ms) alone would have sent it much earlier.
    let gap = rec[1].at.duration_since(rec[0].at);
    assert!(gap >= Duration::from_secs(1), "retry came after {gap:?}");
}

#[tokio::test]
async fn service_unavailable_is_retried() {
    let srv = StandIn::start(|_, i| {
        if i < 2 {
            Reply::text(503, "maintenance")
        } else {
            Reply::json(200, json!({"agentId": "a-503"}))
        }
    })
    .await;
    let client = PlatformClient::new(&settings(&srv.url())).unwrap();
    let mut statuses = Vec::new();
    let reply = client
        .register_with_retry(&register_request(None), None, |n| {
            statuses.push(n.error.status())
        })
        .await
        .expect("registered after two 503s");
    assert_eq!(reply.agent_id, "a-503");
    assert_eq!(statuses, vec![Some(503), Some(503)]);
    assert_eq!(srv.recorded().len(), 3);
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_the_secret_stays_out_of_the_error() {
    // The stand-in echoes the secret back, as a careless platform might.
    let srv = StandIn::start(|r, _| {
        let sent = r.header("x-api-key-secret").unwrap_or("").to_string();
        Reply::json(
            401,
            json!({"message": format!("invalid key secret {sent}")}),
        )
    })
    .await;
    let client = PlatformClient::new(&settings(&srv.url())).unwrap();
    let mut retries = 0;
    let err = client
        .register_with_retry(&register_request(None), None, |_| retries += 1)
        .await
        .expect_err("401 is permanent");
    assert_eq!(retries, 0);
    assert_eq!(srv.recorded().len(), 1);
    assert!(
        matches!(err, PlatformError::Permanent { status: 401, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("api_key_id"),
        "{text}"
    );
    assert!(
        !text.contains(SECRET) && !format!("{err:?}").contains(SECRET),
        "{text}"
    );
    assert!(text.contains("[redacted]"), "{text}");
}

#[tokio::test]
async fn other_client_errors_stop_retrying() {
    for status in [400u16, 403, 404, 409] {
        let srv = StandIn::start(move |_, _| Reply::json(status, json!({"error": "no"}))).await;
        let client = PlatformClient::new(&settings(&srv.url())).unwrap();
        let err = client
            .register_with_retry(&register_request(None), None, |_| {})
            .await
            .expect_err("permanent");
        assert_eq!(err.status(), Some(status));
        assert!(!err.is_retryable());
        assert_eq!(srv.recorded().len(), 1, "status {status}");
    }
}

#[tokio::test]
async fn connection_refused_is_retried_until_the_platform_is_up() {
    // Reserve a port, then free it: connections are refused until the stand-in binds it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let started: Arc<Mutex<Option<StandIn>>> = Arc::new(Mutex::new(None));
    let slot = started.clone();
    let starter = tokio::spawn(async move {
        // Start only after the client has seen a refused connection.
        let _ = rx.await;
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let srv = StandIn::serve(
            l,
            Arc::new(|_, _| Reply::json(201, json!({"agent_id": "a-late"}))),
        );
        *slot.lock().unwrap() = Some(srv);
    });
    let client = PlatformClient::new(&settings(&format!("http://127.0.0.1:{port}"))).unwrap();
    let mut tx = Some(tx);
    let mut connection_failures = 0;
    let reply = client
        .register_with_retry(&register_request(None), None, |n| {
            if let PlatformError::Connection { .. } = n.error {
                connection_failures += 1;
            }
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        })
        .await
        .expect("registered once the platform came up");
    starter.await.unwrap();
    assert_eq!(reply.agent_id, "a-late");
    assert!(connection_failures >= 1);
    let srv = started.lock().unwrap().take().unwrap();
    assert_eq!(srv.recorded().len(), 1);
}

#[tokio::test]
async fn max_attempts_bounds_the_loop() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = PlatformClient::new(&settings(&format!("http://127.0.0.1:{port}"))).unwrap();
    let mut notices = 0;
    let err = client
        .register_with_retry(&register_request(None), Some(3), |_| notices += 1)
        .await
        .expect_err("nothing listens");
    assert_eq!(notices, 2);
    assert!(matches!(err, PlatformError::Connection { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn replies_without_the_contracted_fields_are_clear_errors() {
    let srv = StandIn::start(|r, _| match r.path() {
        "/api/v2/agents/register" => Reply::json(200, json!({"ok": true})),
        _ => Reply::json(200, json!({"config_version": 2})),
    })
    .await;
    let client = PlatformClient::new(&settings(&srv.url())).unwrap();
    let e = client.register(&register_request(None)).await.unwrap_err();
    assert!(e.to_string().contains("no agent_id or id"), "{e}");
    let e = client.fetch_config("a1").await.unwrap_err();
    assert!(e.to_string().contains("`config`"), "{e}");
}

#[tokio::test]
async fn redirects_are_not_followed_and_name_the_location() {
    // The second stand-in is where the redirect points: it must never see a request (it
    // would receive the API key secret).
    let elsewhere = StandIn::start(|_, _| Reply::json(201, json!({"agent_id": "stolen"}))).await;
    for status in [301u16, 302, 303, 307, 308] {
        let location = format!("{}/api/v2/agents/register", elsewhere.url());
        let loc = location.clone();
        let srv =
            StandIn::start(move |_, _| Reply::text(status, "moved").with_header("Location", &loc))
                .await;
        let client = PlatformClient::new(&settings(&srv.url())).unwrap();
        let mut retries = 0;
        let err = client
            .register_with_retry(&register_request(None), None, |_| retries += 1)
            .await
            .expect_err("a redirect is not a registration");
        assert!(
            matches!(&err, PlatformError::Redirected { status: s, location: l, .. } if *s == status && *l == location),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(err.status(), Some(status));
        assert_eq!(retries, 0);
        assert_eq!(srv.recorded().len(), 1);
        let text = err.to_string();
        assert!(
            text.contains(&location) && text.contains("telemetryflow.api_endpoint"),
            "{text}"
        );
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        elsewhere.recorded().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.recorded()
    );
}

#[tokio::test]
async fn huge_retry_after_is_capped() {
    for value in [
        "10000000000000000000",
        "99999999999999999999999",
        "Fri, 31 Dec 9999 23:59:59 GMT",
    ] {
        let v = value.to_string();
        let srv = StandIn::start(move |_, _| {
            Reply::json(503, json!({"message": "later"})).with_header("Retry-After", &v)
        })
        .await;
        let client = PlatformClient::new(&settings(&srv.url())).unwrap();
        let err = client
            .register(&register_request(None))
            .await
            .expect_err("503");
        assert!(err.is_retryable());
        assert_eq!(
            err.retry_after(),
            Some(tfo_exporter::outcome::MAX_SERVER_DELAY),
            "{value}"
        );
        // The error renders without overflow too.
        assert!(err.to_string().contains("retry after 300s"), "{err}");
    }
}
