//! Black-box harness: the built `tfo-agent` binary against the independent Python OTLP
//! receiver (official opentelemetry-proto + grpcio, tests/peers/otlp_receiver.py).
#![allow(dead_code)]

pub mod platform;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("TFO_PYTHON") {
        return PathBuf::from(p);
    }
    let p = workspace_root().join(".venv/bin/python");
    assert!(
        p.exists(),
        "the Python test peers are not installed: run ./scripts/test (it creates .venv)"
    );
    p
}

/// The last `max` lines of a captured output file, for a failing test's report.
pub fn tail(path: &Path, max: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(max);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("[{skip} earlier lines omitted]\n"));
    }
    for l in &lines[skip..] {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Prints a child's captured output when the test is failing (called from `Drop`), so a
/// passing run stays quiet and a failing one shows what the child said.
fn report_on_failure(who: &str, path: &Path) {
    if std::thread::panicking() {
        eprintln!(
            "---- {who} output ({}) ----\n{}---- end of {who} output ----",
            path.display(),
            tail(path, 200)
        );
    }
}

pub struct Receiver {
    child: Child,
    pub grpc_port: u16,
    pub http_port: u16,
    pub out: PathBuf,
    /// The peer's stderr (grpcio's TLS handshake complaints in negative tests are expected).
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    pub fn start(script: Option<Value>) -> Receiver {
        Self::start_on(0, 0, script)
    }

    pub fn start_on(grpc_port: i32, http_port: i32, script: Option<Value>) -> Receiver {
        Self::start_full(grpc_port, http_port, script, &[])
    }

    /// Refuses requests larger than `max` bytes on the wire (HTTP 413, gRPC
    /// RESOURCE_EXHAUSTED from grpcio's own receive limit).
    pub fn start_with_max_body(max: usize) -> Receiver {
        Self::start_full(
            0,
            0,
            None,
            &["--max-body-bytes".to_string(), max.to_string()],
        )
    }

    /// Serves TLS on both transports; `client_ca` makes client certificates mandatory.
    pub fn start_tls(certs: &Certs, client_ca: bool) -> Receiver {
        let mut args = vec![
            "--tls-cert".to_string(),
            certs.path("server.pem"),
            "--tls-key".to_string(),
            certs.path("server.key"),
        ];
        if client_ca {
            args.extend(["--tls-client-ca".to_string(), certs.path("ca.pem")]);
        }
        Self::start_full(0, 0, None, &args)
    }

    fn start_full(
        grpc_port: i32,
        http_port: i32,
        script: Option<Value>,
        extra: &[String],
    ) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("requests.jsonl");
        let stderr = dir.path().join("receiver.stderr");
        let mut cmd = Command::new(python());
        cmd.arg(workspace_root().join("tests/peers/otlp_receiver.py"))
            .args([
                "--grpc-port",
                &grpc_port.to_string(),
                "--http-port",
                &http_port.to_string(),
            ])
            .arg("--out")
            .arg(&out)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(s) = script {
            let p = dir.path().join("script.json");
            std::fs::write(&p, s.to_string()).unwrap();
            cmd.arg("--script").arg(p);
        }
        let mut child = cmd.spawn().expect("start otlp_receiver.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(ready) = line.trim().strip_prefix("READY ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "otlp_receiver.py did not print its READY line (got {line:?}); its stderr:\n{}",
                tail(&stderr, 200)
            );
        };
        let mut ports = ready.split(' ');
        let mut port = |k: &str| -> u16 {
            let v: i32 = ports
                .next()
                .unwrap()
                .strip_prefix(k)
                .unwrap()
                .parse()
                .unwrap();
            v.max(0) as u16
        };
        let grpc_port = port("grpc=");
        let http_port = port("http=");
        Receiver {
            child,
            grpc_port,
            http_port,
            out,
            stderr,
            _dir: dir,
        }
    }

    /// Every request recorded so far.
    pub fn requests(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `pred` holds for the recorded requests, or panics after `timeout`.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let end = Instant::now() + timeout;
        loop {
            let r = self.requests();
            if pred(&r) {
                return r;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; got {} requests",
                r.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        report_on_failure("otlp_receiver.py", &self.stderr);
    }
}

pub struct Agent {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

impl Agent {
    /// Starts `tfo-agent run` with `yaml` as its config file and JSON logs captured.
    pub fn start(yaml: &str) -> Agent {
        Self::start_with_env(yaml, &[])
    }

    /// Starts another agent whose working directory (and so `./buffer` and `./data`) is
    /// `cwd`, e.g. the directory of an agent that was stopped: a restart on the same state.
    pub fn start_in(cwd: &Path, yaml: &str) -> Agent {
        Self::spawn(yaml, &[], Some(cwd))
    }

    pub fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> Agent {
        Self::spawn(yaml, env, None)
    }

    fn spawn(yaml: &str, env: &[(&str, &str)], cwd: Option<&Path>) -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("tfo-agent.yaml");
        std::fs::write(&cfg, yaml).unwrap();
        let log = dir.path().join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_tfo-agent"))
            .arg("-c")
            .arg(&cfg)
            .args(["--log-format", "json", "--log-level", "debug", "run"])
            .envs(env.iter().copied())
            .env_remove("TELEMETRYFLOW_ENDPOINT")
            .current_dir(cwd.unwrap_or(dir.path()))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start tfo-agent");
        Agent { child, dir, log }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Sends SIGTERM and waits for the exit code (panics if it takes over `timeout`).
    pub fn terminate(&mut self, timeout: Duration) -> i32 {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "agent did not exit within {timeout:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Parsed JSON log lines.
    pub fn logs(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    pub fn logs_with(&self, message: &str) -> Vec<Value> {
        self.logs()
            .into_iter()
            .filter(|l| l["message"] == message)
            .collect()
    }

    /// The address a listener bound to, from its start-up log line (tests use port 0).
    pub fn bound_address(&self, message: &str) -> std::net::SocketAddr {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(l) = self.logs_with(message).first() {
                return l["address"]
                    .as_str()
                    .and_then(|a| a.parse().ok())
                    .unwrap_or_else(|| panic!("no address in {l}"));
            }
            assert!(
                Instant::now() < end,
                "no `{message}` log line:\n{}",
                self.raw_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        report_on_failure("tfo-agent", &self.log);
    }
}

/// A config for tests: fast intervals, loopback receiver, retry bounds in milliseconds, and
/// the shipped default buffer (the disk log) in the agent's own directory (`./buffer`,
/// relative to the agent's working directory, a per-test temporary directory).
pub fn config(protocol: &str, port: u16, extra_otlp: &str) -> String {
    format!(
        r#"
telemetryflow:
  api_key_id: "tfk_test_key"
  api_key_secret: "tfs_super_secret_value"
  endpoint: "127.0.0.1:{port}"
  protocol: {protocol}
  timeout: 5s
  retry:
    enabled: true
    max_attempts: 3
    initial_interval: 100ms
    max_interval: 400ms
agent:
  name: "blackbox-agent"
  data_dir: ./data
  tags:
    environment: staging
    team: sre
heartbeat:
  enabled: false
collectors:
  system:
    enabled: true
    interval: 1s
  node_exporter:
    enabled: false
buffer:
  path: ./buffer
prometheus:
  listen_address: "127.0.0.1:0"
health:
  listen_address: "127.0.0.1:0"
exporter:
  otlp:
    enabled: true
    flush_interval: 1s
{extra_otlp}
"#
    )
}

/// Resource attributes of the first resource in a recorded metrics request, as key → string.
pub fn resource_attrs(req: &Value) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    for a in req["request"]["resource_metrics"][0]["resource"]["attributes"]
        .as_array()
        .unwrap()
    {
        let v = &a["value"];
        let s = v["string_value"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string());
        m.insert(a["key"].as_str().unwrap().to_string(), s);
    }
    m
}

/// All metrics in a recorded request.
pub fn metrics(req: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for rm in req["request"]["resource_metrics"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for sm in rm["scope_metrics"].as_array().into_iter().flatten() {
            for m in sm["metrics"].as_array().into_iter().flatten() {
                out.push(m.clone());
            }
        }
    }
    out
}

pub fn all_metrics(reqs: &[Value]) -> Vec<Value> {
    reqs.iter().flat_map(metrics).collect()
}

/// Number of data points recorded for metric `name` across requests.
/// Distinct timestamps of `name`'s points: one per collection cycle, however often a batch
/// was delivered (export is at-least-once: a request abandoned at stop is sent again).
pub fn cycles_of(reqs: &[Value], name: &str) -> std::collections::BTreeSet<String> {
    all_metrics(reqs)
        .iter()
        .filter(|m| m["name"] == name)
        .flat_map(|m| {
            let d = if m["sum"].is_object() {
                &m["sum"]
            } else {
                &m["gauge"]
            };
            d["data_points"].as_array().cloned().unwrap_or_default()
        })
        .map(|p| p["time_unix_nano"].to_string())
        .collect()
}

pub fn points_of(reqs: &[Value], name: &str) -> usize {
    all_metrics(reqs)
        .iter()
        .filter(|m| m["name"] == name)
        .map(|m| {
            let d = if m["sum"].is_object() {
                &m["sum"]
            } else {
                &m["gauge"]
            };
            d["data_points"].as_array().map(|a| a.len()).unwrap_or(0)
        })
        .sum()
}

/// The shared throw-away test PKI (`tfo_hubble_fake::Certs`: a CA, a server certificate for
/// localhost and 127.0.0.1, a client certificate), with paths as strings for YAML and argv.
pub struct Certs(tfo_hubble_fake::Certs);

impl Certs {
    pub fn generate() -> Certs {
        Certs(tfo_hubble_fake::Certs::generate())
    }

    pub fn path(&self, name: &str) -> String {
        self.0.path(name).display().to_string()
    }
}

/// A plain HTTP/1.1 GET on loopback: (status, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A loopback port that was free a moment ago (for peers started later).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Value of the first sample line `series value` on a Prometheus text page.
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// An OTLP `AnyValue` as recorded by the receiver, as a string (int64 arrives as a JSON
/// string under the proto3 JSON mapping).
pub fn string_value(v: &Value) -> String {
    if let Some(s) = v["string_value"].as_str() {
        return s.to_string();
    }
    // The receiver prints int64 as a JSON string (proto3 JSON mapping).
    match &v["int_value"] {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => v.to_string(),
    }
}
