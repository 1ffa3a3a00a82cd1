//! Black-box tests of the log collector: the built binary tails real files and ships them
//! to the independent Python receiver (official opentelemetry-proto), over gRPC and HTTP.
//!
//! - rotation (rename+create and copytruncate) while a writer appends numbered lines and
//!   the agent is SIGKILLed and restarted: every line arrives, in order per file, and a
//!   duplicate is only ever a line first delivered just before a kill;
//! - a CRI file under a kubelet-like path (k8s resource attributes) and a JSON file
//!   (severity and time);
//! - a collector outage: lines wait in the disk log, across a restart, and arrive once;
//! - a full logs buffer: the collector stops reading (backpressure), nothing is dropped.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::Value;

/// A config with only the log collector, fast polling and flushing, state in the agent's
/// working directory (`./buffer`, `./data`).
fn logs_config(
    protocol: &str,
    port: u16,
    paths: &[String],
    extra_logs: &str,
    extra: &str,
) -> String {
    let paths: Vec<String> = paths.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        r#"
telemetryflow:
  api_key_id: "tfk_test_key"
  api_key_secret: "tfs_super_secret_value"
  endpoint: "127.0.0.1:{port}"
  protocol: {protocol}
  timeout: 5s
  retry:
    initial_interval: 100ms
    max_interval: 400ms
agent:
  name: "logs-agent"
  data_dir: ./data
  shutdown_timeout: 3s
heartbeat:
  enabled: false
collectors:
  system:
    enabled: false
  node_exporter:
    enabled: false
  logs:
    enabled: true
    paths: [{paths}]
    poll_interval: 50ms
    start_at: beginning
{extra_logs}
buffer:
  path: ./buffer
{extra}
prometheus:
  listen_address: "127.0.0.1:0"
health:
  listen_address: "127.0.0.1:0"
exporter:
  otlp:
    flush_interval: 200ms
"#,
        paths = paths.join(", ")
    )
}

fn port_of(rx: &Receiver, protocol: &str) -> u16 {
    if protocol == "http" {
        rx.http_port
    } else {
        rx.grpc_port
    }
}

fn accepted(r: &Value) -> bool {
    r["response"].get("ok").is_some()
}

fn string_value(v: &Value) -> String {
    v["string_value"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn kv(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_string(),
                string_value(&a["value"]),
            )
        })
        .collect()
}

/// One delivered log record: resource and record attributes, body, and the request's
/// arrival time (receiver clock, unix seconds).
#[derive(Debug, Clone)]
struct Rec {
    resource: BTreeMap<String, String>,
    attrs: BTreeMap<String, String>,
    body: String,
    raw: Value,
    arrived: f64,
}

/// Every log record the receiver accepted, in arrival order.
fn log_records(reqs: &[Value]) -> Vec<Rec> {
    let mut out = Vec::new();
    for r in reqs.iter().filter(|r| r["signal"] == "logs" && accepted(r)) {
        let arrived = r["time"].as_f64().unwrap_or(0.0);
        for rl in r["request"]["resource_logs"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let resource = kv(&rl["resource"]["attributes"]);
            for sl in rl["scope_logs"].as_array().into_iter().flatten() {
                assert_eq!(sl["scope"]["name"], "tfo-agent");
                for lr in sl["log_records"].as_array().into_iter().flatten() {
                    out.push(Rec {
                        resource: resource.clone(),
                        attrs: kv(&lr["attributes"]),
                        body: string_value(&lr["body"]),
                        raw: lr.clone(),
                        arrived,
                    });
                }
            }
        }
    }
    out
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Appends lines `w=<writer> gen=<file generation> seq=<n> …` to two files, rotating one
/// by rename+create and the other by copytruncate, as logrotate would.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<BTreeMap<String, u64>>>,
}

const PAD: &str = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod";

impl Writer {
    fn start(dir: &Path, lines_per_ms: u64, rotate_every: Duration) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (dir, flag) = (dir.to_path_buf(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut seq: BTreeMap<String, u64> = BTreeMap::new();
            let mut gens: BTreeMap<String, u64> = BTreeMap::new();
            let names = ["rename", "copy"];
            let open = |name: &str| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.join(format!("{name}.log")))
                    .unwrap()
            };
            let mut files: Vec<std::fs::File> = names.iter().map(|n| open(n)).collect();
            let mut last_rotation = Instant::now();
            let mut turn = 0usize;
            let mut rotated = 0u64;
            while !flag.load(Ordering::Relaxed) {
                for _ in 0..lines_per_ms.max(1) {
                    for (i, name) in names.iter().enumerate() {
                        let s = seq.entry(name.to_string()).or_insert(0);
                        let g = gens.entry(name.to_string()).or_insert(0);
                        writeln!(files[i], "w={name} gen={g} seq={s} {PAD}").unwrap();
                        *s += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
                if last_rotation.elapsed() >= rotate_every {
                    last_rotation = Instant::now();
                    let i = turn % 2;
                    turn += 1;
                    rotated += 1;
                    let name = names[i];
                    let live = dir.join(format!("{name}.log"));
                    let old = dir.join(format!("{name}.log.{rotated}"));
                    if name == "rename" {
                        std::fs::rename(&live, &old).unwrap();
                        files[i] = open(name);
                    } else {
                        std::fs::copy(&live, &old).unwrap();
                        files[i].set_len(0).unwrap();
                    }
                    *gens.get_mut(name).unwrap() += 1;
                }
            }
            seq
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops writing; lines written per writer.
    fn finish(mut self) -> BTreeMap<String, u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// (writer, gen, seq) of a line the Writer wrote.
fn parse_line(body: &str) -> Option<(String, u64, u64)> {
    let mut it = body.split(' ');
    let w = it.next()?.strip_prefix("w=")?.to_string();
    let g = it.next()?.strip_prefix("gen=")?.parse().ok()?;
    let s = it.next()?.strip_prefix("seq=")?.parse().ok()?;
    Some((w, g, s))
}

fn rotation_under_sigkill(protocol: &str) {
    let rx = Receiver::start(None);
    let logs = tempfile::tempdir().unwrap();
    let paths = vec![format!("{}/*.log*", logs.path().display())];
    let cfg = logs_config(protocol, port_of(&rx, protocol), &paths, "", "");
    let writer = Writer::start(logs.path(), 1, Duration::from_millis(400));
    let writing_since = Instant::now();
    let mut agent = Agent::start(&cfg);
    let state = agent.dir.path().to_path_buf();
    // Killed agents are kept (their directories too: the first one holds the state).
    let mut dead: Vec<Agent> = Vec::new();
    let mut kills: Vec<f64> = Vec::new();
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..5 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(1500 + rng % 2000));
        agent.signal(libc::SIGKILL);
        let _ = agent.child.wait();
        kills.push(unix_now());
        std::thread::sleep(Duration::from_millis(300));
        // The next agent runs on the same state (buffer, checkpoints); its own temporary
        // directory holds only its config and log.
        let next = Agent::start_in(&state, &cfg);
        dead.push(std::mem::replace(&mut agent, next));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let written = writer.finish();
    let writing = writing_since.elapsed();
    let total: u64 = written.values().sum();
    let reqs = rx.wait_until(Duration::from_secs(90), "every line", |r| {
        let seen: BTreeSet<(String, u64)> = log_records(r)
            .iter()
            .filter_map(|x| parse_line(&x.body))
            .map(|(w, _, s)| (w, s))
            .collect();
        seen.len() as u64 >= total
    });
    assert_eq!(agent.terminate(Duration::from_secs(20)), 0);
    let recs = log_records(&reqs);
    let mut seen: BTreeMap<(String, u64), f64> = BTreeMap::new();
    let mut last_in_file: BTreeMap<(String, u64), u64> = BTreeMap::new();
    let mut per_kill = vec![0u64; kills.len()];
    for r in &recs {
        let (w, g, s) = parse_line(&r.body).unwrap_or_else(|| panic!("not ours: {:?}", r.body));
        assert!(r.attrs["log.file.name"].starts_with(&format!("{w}.log")));
        if let Some(first) = seen.get(&(w.clone(), s)) {
            // A duplicate was read before a kill and not yet in the checkpoint file, or
            // delivered and not yet in the buffer's ledger (both are written every 250 ms),
            // or in the batch in flight: its first delivery is just before the kill, or
            // just after the restart (the buffer's backlog is replayed first). The windows
            // are wide for a loaded CI machine, where a restart and its replay can take
            // seconds; what they rule out is a duplicate unrelated to any kill.
            let k = kills
                .iter()
                .rposition(|k| *first >= k - 2.5)
                .filter(|&k| *first <= kills[k] + 8.0)
                .unwrap_or_else(|| {
                    panic!("line {w} {s} delivered twice, first at {first}, not near a kill ({kills:?})")
                });
            per_kill[k] += 1;
            continue;
        }
        seen.insert((w.clone(), s), r.arrived);
        // New lines of one file arrive in file order.
        let last = last_in_file.entry((w.clone(), g)).or_insert(0);
        assert!(
            s >= *last,
            "{w} gen {g}: seq {s} arrived after {last} ({protocol})"
        );
        *last = s;
    }
    for (w, n) in &written {
        for s in 0..*n {
            assert!(
                seen.contains_key(&(w.clone(), s)),
                "{w} line {s} never arrived ({protocol})"
            );
        }
    }
    // At most about a second of writing is sent twice per kill (two 250 ms state
    // intervals, the poll and the batch in flight); the bound allows two for a busy machine.
    let rate = total as f64 / writing.as_secs_f64();
    eprintln!(
        "{protocol}: {total} lines ({rate:.0}/s), {} records delivered, duplicates per kill {per_kill:?}",
        recs.len()
    );
    for (k, d) in per_kill.iter().enumerate() {
        assert!(
            (*d as f64) < rate * 2.0,
            "kill {k}: {d} duplicates, more than two seconds of writing ({rate:.0} lines/s)"
        );
    }
}

#[test]
fn rotations_and_sigkill_lose_no_line_over_grpc() {
    rotation_under_sigkill("grpc");
}

#[test]
fn rotations_and_sigkill_lose_no_line_over_http() {
    rotation_under_sigkill("http");
}

fn fixtures(dir: &Path) -> (PathBuf, PathBuf) {
    let pod = dir.join("var/log/pods/shop_cart-7d9f5_0f3c8a4e-1b2c-4d5e-8f90-123456789abc/server");
    std::fs::create_dir_all(&pod).unwrap();
    let cri = pod.join("0.log");
    std::fs::write(
        &cri,
        "2024-05-01T10:00:00.123456789Z stdout F starting server\n\
         2024-05-01T10:00:01.000000000Z stderr P partial one, \n\
         2024-05-01T10:00:01.500000000Z stderr F partial two ERROR done\n\
         2024-05-01T10:00:02Z stderr F level=warn msg=\"slow request\"\n",
    )
    .unwrap();
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    let json = app.join("api.log");
    std::fs::write(
        &json,
        "{\"time\":\"2024-05-01T10:00:03Z\",\"level\":\"error\",\"msg\":\"db down\"}\n\
         {\"ts\":1714557604.5,\"severity\":\"INFO\",\"message\":\"ok\"}\n\
         {\"level\":50,\"msg\":\"pino error\",\"time\":1714557605000}\n",
    )
    .unwrap();
    (cri, json)
}

fn severity_number(raw: &Value) -> String {
    raw["severity_number"].as_str().unwrap_or("").to_string()
}

#[test]
fn cri_under_a_kubelet_path_and_json_severity_over_http() {
    let rx = Receiver::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let (cri, json) = fixtures(tmp.path());
    let paths = vec![
        format!("{}/var/log/pods/*/*/*.log", tmp.path().display()),
        format!("{}/app/*.log", tmp.path().display()),
    ];
    let extra = "    include_file_path: true\n    attributes:\n      cluster: test-1\n";
    let mut agent = Agent::start(&logs_config("http", rx.http_port, &paths, extra, ""));
    let reqs = rx.wait_until(Duration::from_secs(30), "6 log records", |r| {
        log_records(r).len() >= 6
    });
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert!(
        reqs.iter()
            .filter(|r| r["signal"] == "logs")
            .all(|r| r["path"] == "/v2/logs"),
        "OTLP/HTTP logs go to /v2/logs"
    );
    let recs = log_records(&reqs);
    assert_eq!(recs.len(), 6, "{recs:#?}");
    let by_body = |b: &str| {
        recs.iter()
            .find(|r| r.body == b)
            .unwrap_or_else(|| panic!("no record {b:?} in {recs:#?}"))
    };
    // CRI: the message is the body, the time the line's, the stream an attribute, the pod
    // and container the resource (with the agent's own resource attributes).
    let start = by_body("starting server");
    assert_eq!(start.raw["time_unix_nano"], "1714557600123456789");
    assert_eq!(start.attrs["log.iostream"], "stdout");
    assert_eq!(start.attrs["log.file.name"], "0.log");
    assert_eq!(start.attrs["log.file.path"], cri.display().to_string());
    assert_eq!(start.attrs["cluster"], "test-1");
    for (k, v) in [
        ("k8s.namespace.name", "shop"),
        ("k8s.pod.name", "cart-7d9f5"),
        ("k8s.pod.uid", "0f3c8a4e-1b2c-4d5e-8f90-123456789abc"),
        ("k8s.container.name", "server"),
        ("service.name", "tfo-agent"),
        ("telemetryflow.agent.name", "logs-agent"),
    ] {
        assert_eq!(start.resource.get(k).map(String::as_str), Some(v), "{k}");
    }
    assert!(start.resource.contains_key("host.name"));
    let joined = by_body("partial one, partial two ERROR done");
    assert_eq!(joined.attrs["log.iostream"], "stderr");
    assert_eq!(joined.raw["time_unix_nano"], "1714557601000000000");
    let warn = by_body("level=warn msg=\"slow request\"");
    assert_eq!(severity_number(&warn.raw), "SEVERITY_NUMBER_WARN");
    assert_eq!(warn.raw["severity_text"], "warn");
    // JSON: the line is the body; time and level are picked out.
    let db = recs.iter().find(|r| r.body.contains("db down")).unwrap();
    assert_eq!(severity_number(&db.raw), "SEVERITY_NUMBER_ERROR");
    assert_eq!(db.raw["severity_text"], "error");
    assert_eq!(db.raw["time_unix_nano"], "1714557603000000000");
    assert_eq!(db.attrs["log.file.path"], json.display().to_string());
    assert!(!db.attrs.contains_key("log.iostream"));
    assert!(
        !db.resource.contains_key("k8s.pod.name"),
        "a file outside /var/log/pods has the agent's resource only"
    );
    let ok = recs.iter().find(|r| r.body.contains("\"ok\"")).unwrap();
    assert_eq!(severity_number(&ok.raw), "SEVERITY_NUMBER_INFO");
    assert_eq!(ok.raw["time_unix_nano"], "1714557604500000000");
    let pino = recs.iter().find(|r| r.body.contains("pino")).unwrap();
    assert_eq!(severity_number(&pino.raw), "SEVERITY_NUMBER_ERROR");
    // Two resources in one request at most once each.
    for r in reqs.iter().filter(|r| r["signal"] == "logs") {
        let names: Vec<_> = r["request"]["resource_logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|rl| {
                kv(&rl["resource"]["attributes"])
                    .get("k8s.pod.name")
                    .cloned()
            })
            .collect();
        let distinct: BTreeSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "one ResourceLogs per resource");
    }
}

/// `/metrics` of a running agent.
fn metrics_page(agent: &Agent) -> String {
    http_get(agent.bound_address("serving self-metrics"), "/metrics").1
}

fn numbered(path: &Path, from: u64, to: u64) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    let mut s = String::new();
    for i in from..to {
        s.push_str(&format!("line={i:08} {PAD} {PAD} {PAD}\n"));
    }
    f.write_all(s.as_bytes()).unwrap();
}

fn line_numbers(recs: &[Rec]) -> Vec<u64> {
    recs.iter()
        .filter_map(|r| r.body.strip_prefix("line=")?.get(..8)?.parse().ok())
        .collect()
}

#[test]
fn an_outage_keeps_logs_on_disk_across_a_restart_and_delivers_them_once_over_grpc() {
    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("app.log");
    numbered(&file, 0, 2000);
    let paths = vec![format!("{}/*.log", logs.path().display())];
    let cfg = logs_config("grpc", port, &paths, "", "");
    let mut agent = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let page = metrics_page(&agent);
        if sample(&page, "tfo_agent_logs_records_total") == Some(2000.0)
            && sample(&page, "tfo_agent_logs_checkpoint_lag_bytes") == Some(0.0)
            && sample(&page, "tfo_agent_buffer_records{signal=\"logs\"}").unwrap_or(0.0) > 0.0
        {
            break;
        }
        assert!(Instant::now() < end, "lines not buffered:\n{page}");
        std::thread::sleep(Duration::from_millis(100));
    }
    numbered(&file, 2000, 3000);
    std::thread::sleep(Duration::from_millis(500));
    // Stopped during the outage: no flush is tried, the lines stay in the disk log.
    assert_eq!(agent.terminate(Duration::from_secs(10)), 0);
    let stopped = agent.logs_with("tfo-agent stopped");
    assert_eq!(stopped[0]["dropped"], 0);
    let rx = Receiver::start_on(port as i32, -1, None);
    let state = agent.dir.path().to_path_buf();
    let mut again = Agent::start_in(&state, &cfg);
    let reqs = rx.wait_until(Duration::from_secs(30), "3000 lines", |r| {
        line_numbers(&log_records(r)).len() >= 3000
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(again.terminate(Duration::from_secs(15)), 0);
    let got = line_numbers(&log_records(&rx.requests()));
    assert_eq!(
        got,
        (0..3000).collect::<Vec<_>>(),
        "every line once, in order (a clean stop commits what was buffered)"
    );
    assert!(reqs.iter().all(|r| r["signal"] != "logs" || accepted(r)));
    let recovered: Vec<_> = again
        .logs_with("buffer recovered")
        .into_iter()
        .filter(|l| l["signal"] == "logs")
        .collect();
    assert!(
        recovered[0]["records"].as_u64().unwrap_or(0) > 0,
        "the backlog was recovered from the logs buffer: {recovered:?}"
    );
}

#[test]
fn a_full_logs_buffer_stops_reading_and_drops_nothing() {
    let port = free_port();
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("big.log");
    // About 8 MiB of lines against a 1 MiB logs share (buffer.max_size_mb: 2).
    let n = 30_000;
    numbered(&file, 0, n);
    let paths = vec![format!("{}/*.log", logs.path().display())];
    let cfg = logs_config("grpc", port, &paths, "", "  max_size_mb: 2\n");
    let mut agent = Agent::start(&cfg);
    let end = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = metrics_page(&agent);
        if sample(
            &page,
            "tfo_agent_buffer_backpressure_seconds_total{signal=\"logs\"}",
        )
        .unwrap_or(0.0)
            > 1.0
        {
            break page;
        }
        assert!(Instant::now() < end, "no backpressure:\n{page}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let read = sample(&page, "tfo_agent_logs_records_total").unwrap_or(0.0);
    assert!(
        read < n as f64,
        "the collector stopped reading ({read} of {n})"
    );
    assert!(sample(&page, "tfo_agent_logs_checkpoint_lag_bytes").is_some());
    assert!(
        !agent
            .logs_with("buffer full (buffer.max_size_mb); when_full: block holds the producer until there is room")
            .iter()
            .filter(|l| l["signal"] == "logs")
            .collect::<Vec<_>>()
            .is_empty(),
        "the full buffer is reported"
    );
    // The collector comes back: everything arrives, in order, nothing was dropped.
    let rx = Receiver::start_on(port as i32, -1, None);
    rx.wait_until(Duration::from_secs(120), "every line", |r| {
        line_numbers(&log_records(r)).len() >= n as usize
    });
    let page = metrics_page(&agent);
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    let got = line_numbers(&log_records(&rx.requests()));
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    assert!(
        !page
            .lines()
            .any(|l| l.starts_with("tfo_agent_dropped_items_total{signal=\"logs\"")),
        "nothing dropped:\n{page}"
    );
    assert_eq!(agent.logs_with("tfo-agent stopped")[0]["dropped"], 0);
}

fn wait_log(agent: &Agent, message: &str, n: usize) {
    let end = Instant::now() + Duration::from_secs(15);
    while agent.logs_with(message).len() < n {
        assert!(
            Instant::now() < end,
            "no {n}× `{message}`:\n{}",
            agent.raw_log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reload_restarts_the_log_collector_only_when_its_settings_change() {
    let rx = Receiver::start(None);
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("app.log");
    numbered(&file, 0, 100);
    let paths = vec![format!("{}/*.log", logs.path().display())];
    let cfg = logs_config("grpc", rx.grpc_port, &paths, "", "");
    let mut agent = Agent::start(&cfg);
    rx.wait_until(Duration::from_secs(20), "100 lines", |r| {
        line_numbers(&log_records(r)).len() >= 100
    });
    let path = agent.dir.path().join("tfo-agent.yaml");
    // Only the resource changes: the collector keeps running, its records get the new tag.
    let tagged = cfg.replace(
        "  name: \"logs-agent\"\n",
        "  name: \"logs-agent\"\n  tags:\n    team: blue\n",
    );
    std::fs::write(&path, &tagged).unwrap();
    agent.signal(libc::SIGHUP);
    wait_log(&agent, "configuration reloaded", 1);
    numbered(&file, 100, 200);
    rx.wait_until(Duration::from_secs(20), "200 lines", |r| {
        line_numbers(&log_records(r)).len() >= 200
    });
    assert!(
        agent
            .logs_with("settings changed; restarting the collector")
            .is_empty()
    );
    assert_eq!(agent.logs_with("log collector started").len(), 1);
    // Its own settings change: it is restarted, resumes from its checkpoints.
    let attributed = tagged.replace(
        "    start_at: beginning\n",
        "    start_at: beginning\n    attributes:\n      pipeline: b\n",
    );
    std::fs::write(&path, &attributed).unwrap();
    agent.signal(libc::SIGHUP);
    wait_log(&agent, "configuration reloaded", 2);
    wait_log(&agent, "log collector started", 2);
    numbered(&file, 200, 300);
    let reqs = rx.wait_until(Duration::from_secs(20), "300 lines", |r| {
        line_numbers(&log_records(r)).len() >= 300
    });
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert_eq!(
        agent
            .logs_with("settings changed; restarting the collector")
            .len(),
        1
    );
    let recs = log_records(&reqs);
    assert_eq!(
        line_numbers(&recs),
        (0..300).collect::<Vec<_>>(),
        "each line once"
    );
    for r in &recs {
        let n = line_numbers(std::slice::from_ref(r))[0];
        assert_eq!(
            r.resource.get("team").map(String::as_str),
            (n >= 100).then_some("blue")
        );
        assert_eq!(
            r.attrs.get("pipeline").map(String::as_str),
            (n >= 200).then_some("b")
        );
    }
}

#[test]
fn a_panicking_log_collector_is_restarted_and_loses_nothing() {
    let rx = Receiver::start(None);
    let logs = tempfile::tempdir().unwrap();
    let file = logs.path().join("app.log");
    numbered(&file, 0, 500);
    let paths = vec![format!("{}/*.log", logs.path().display())];
    let mut agent = Agent::start_with_env(
        &logs_config("http", rx.http_port, &paths, "", ""),
        &[("TFO_AGENT_FAILPOINTS", "logs_panic")],
    );
    let reqs = rx.wait_until(Duration::from_secs(20), "500 lines", |r| {
        line_numbers(&log_records(r)).len() >= 500
    });
    let page = metrics_page(&agent);
    assert_eq!(agent.terminate(Duration::from_secs(15)), 0);
    assert_eq!(
        line_numbers(&log_records(&reqs)),
        (0..500).collect::<Vec<_>>()
    );
    assert_eq!(
        sample(
            &page,
            "tfo_agent_task_restarts_total{task=\"collector/logs\"}"
        ),
        Some(1.0),
        "{page}"
    );
}

#[test]
fn collect_logs_prints_what_would_be_sent_and_commits_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (cri, _) = fixtures(tmp.path());
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("tfo-agent.yaml");
    std::fs::write(
        &cfg,
        format!(
            "agent:\n  data_dir: {}\ncollectors:\n  logs:\n    attributes:\n      cluster: c1\n",
            data.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .arg("-c")
        .arg(&cfg)
        .args(["collect", "--format", "json", "--logs"])
        .arg(&cri)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let recs = v.as_array().unwrap();
    assert_eq!(recs.len(), 3, "{v:#}");
    assert_eq!(recs[0]["body"], "starting server");
    assert_eq!(recs[0]["time_unix_nano"], 1_714_557_600_123_456_789u64);
    assert_eq!(recs[0]["attributes"]["log.iostream"], "stdout");
    assert_eq!(recs[0]["attributes"]["cluster"], "c1");
    assert_eq!(recs[0]["resource"]["k8s.pod.name"], "cart-7d9f5");
    assert_eq!(recs[2]["severity_text"], "warn");
    assert!(!data.exists(), "nothing written to agent.data_dir");
    let table = std::process::Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .arg("-c")
        .arg(&cfg)
        .args(["collect", "--logs"])
        .arg(&cri)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("2024-05-01T10:00:00.123456789Z"), "{text}");
    assert!(text.contains("k8s.container.name=server"), "{text}");
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
        .arg("-c")
        .arg(&cfg)
        .args(["collect", "--logs", "/nonexistent/x.log"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
}
