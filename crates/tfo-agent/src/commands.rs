//! The subcommands. Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.

use std::path::Path;
use std::process::ExitCode;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use serde_json::json;
use tfo_config::Loaded;

use crate::cli::{BufferAction, Cli, Command, ConfigAction, LogFormat, OutputFormat, ShowFormat};
use crate::identity::VERSION;
use crate::{agent, logging, preflight, registry, settings};

const EXIT_RUNTIME: u8 = 1;
const EXIT_CONFIG: u8 = 2;

pub fn dispatch(cli: Cli) -> ExitCode {
    let command = cli.command.unwrap_or(Command::Run);
    if !matches!(command, Command::Run) {
        // The printing commands end quietly when their reader goes away (`collect | head`)
        // instead of panicking on a broken pipe, as other command-line tools do. The Rust
        // runtime ignores SIGPIPE; sockets are unaffected (Linux sends use MSG_NOSIGNAL).
        // SAFETY: resetting a signal disposition to its default; no handler is installed.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    if let Command::Version { json } = command {
        print_version(json);
        return ExitCode::SUCCESS;
    }
    let loaded = match tfo_config::load(cli.config.as_deref()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // Both sources are checked already: clap lists --log-level's values, config validation
    // checks logging.level. logging.level is for the running agent; the one-shot commands
    // print their answer and log only warnings unless --log-level asks for more.
    let level = match (&cli.log_level, &command) {
        (Some(l), _) => l.clone(),
        (None, Command::Run) => loaded.config.logging.level.clone(),
        (None, _) => "warn".to_string(),
    };
    let json_logs = match cli.log_format {
        Some(f) => matches!(f, LogFormat::Json),
        None => matches!(loaded.config.logging.format, tfo_config::LogFormat::Json),
    };
    logging::init(&level, json_logs);
    match command {
        Command::Run => run(loaded, cli.config),
        Command::Config {
            action: ConfigAction::Validate,
        } => validate(&loaded),
        Command::Config {
            action: ConfigAction::Show { format },
        } => {
            match format {
                ShowFormat::Yaml => print!("{}", loaded.config.to_yaml_redacted()),
                ShowFormat::Json => println!("{}", loaded.config.to_json_redacted()),
            }
            ExitCode::SUCCESS
        }
        Command::Collect {
            once: _,
            logs,
            format,
        } if !logs.is_empty() => collect_logs(&loaded, &logs, format),
        Command::Collect {
            once: _,
            logs: _,
            format,
        } => collect_once(&loaded, format),
        Command::Status { format } => status(&loaded, format),
        Command::Buffer {
            action: BufferAction::Status { path, format },
        } => buffer_status(&loaded, path, format),
        Command::Health { ready } => health(&loaded.config.health, ready),
        Command::Version { .. } => unreachable!("handled above"),
    }
}

/// GET /healthz or /readyz from the health listener with a plain HTTP/1.0 request (no
/// client library: this runs every few seconds as a container HEALTHCHECK).
fn health(cfg: &tfo_config::Health, ready: bool) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let path = if ready { "/readyz" } else { "/healthz" };
    if !cfg.enabled {
        eprintln!("error: health.enabled is false: no health listener to ask");
        return ExitCode::from(EXIT_CONFIG);
    }
    let addr = match cfg
        .listen_address
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
    {
        // a wildcard listener is asked on loopback
        Some(a) if a.ip().is_unspecified() => {
            let ip = match a.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            SocketAddr::new(ip, a.port())
        }
        Some(a) => a,
        None => {
            eprintln!(
                "error: health.listen_address {:?} does not resolve",
                cfg.listen_address
            );
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let timeout = Duration::from_secs(5);
    let answer = (|| -> std::io::Result<String> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
        let mut body = String::new();
        s.take(64 * 1024).read_to_string(&mut body)?;
        Ok(body)
    })();
    match answer {
        Ok(text) => {
            let status = text.split_whitespace().nth(1).unwrap_or("");
            let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
            println!("{path}: {status} {body}");
            if status == "200" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_RUNTIME)
            }
        }
        Err(e) => {
            eprintln!("error: http://{addr}{path}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn run(loaded: Loaded, path: Option<std::path::PathBuf>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(8)
        .enable_all()
        .thread_name("tfo-agent")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = rt.block_on(agent::run(loaded, path));
    // A collector stuck in a blocking read (a hung NFS mount) must not hold the exit:
    // everything it would add to the buffer is collected again at the next start.
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e.0, "tfo-agent failed");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

fn validate(loaded: &Loaded) -> ExitCode {
    let source = loaded
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "built-in defaults (no config file found)".into());
    // What `run` would refuse beyond the loader's checks (exporter endpoint, TLS files,
    // header values, platform URL): the same functions `run` calls.
    let errors = preflight::errors(&loaded.config);
    if !errors.is_empty() {
        for (key, e) in &errors {
            let at = loaded
                .line_of(key)
                .map(|l| format!("{source}:{l}: "))
                .unwrap_or_default();
            eprintln!("error: {at}{key}: {e}");
        }
        return ExitCode::from(EXIT_CONFIG);
    }
    for w in loaded
        .warnings
        .iter()
        .chain(preflight::warnings(&loaded.config).iter())
    {
        println!("warning: {w}");
    }
    println!("configuration OK: {source}");
    ExitCode::SUCCESS
}

fn collect_once(loaded: &Loaded, format: OutputFormat) -> ExitCode {
    let (collectors, warnings) = registry::build_collectors(&loaded.config);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    let mut rows = Vec::new();
    let mut failed = false;
    for (mut c, _) in collectors {
        let mut metrics = Vec::new();
        let report = c.collect(&mut metrics);
        for e in &report.errors {
            tracing::warn!(collector = c.name(), error = %e, "collection error");
            failed = true;
        }
        for (reason, items) in &report.skipped {
            tracing::info!(collector = c.name(), reason, items, "items skipped");
        }
        for m in &metrics {
            flatten(c.name(), m, &mut rows);
        }
    }
    match format {
        OutputFormat::Json => {
            let v: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({"collector": r.collector, "name": r.name, "type": r.kind, "unit": r.unit,
                           "attributes": r.attrs.iter().cloned().collect::<serde_json::Map<_, _>>(),
                           "value": r.value})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        OutputFormat::Table => {
            let w = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
            println!(
                "{:<w$}  {:<7}  {:<10}  {:>20}  ATTRIBUTES",
                "NAME", "TYPE", "UNIT", "VALUE"
            );
            for r in &rows {
                let attrs: Vec<String> = r
                    .attrs
                    .iter()
                    .map(|(k, v)| {
                        format!(
                            "{k}={}",
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        )
                    })
                    .collect();
                let value = match &r.value {
                    serde_json::Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                println!(
                    "{:<w$}  {:<7}  {:<10}  {:>20}  {}",
                    r.name,
                    r.kind,
                    r.unit,
                    value,
                    attrs.join(",")
                );
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// `collect --logs FILE…`: the records, with their resource, as they would be sent.
fn collect_logs(loaded: &Loaded, files: &[std::path::PathBuf], format: OutputFormat) -> ExitCode {
    let cfg = &loaded.config;
    let identity = crate::identity::Identity::resolve(cfg, &settings::host_paths(cfg));
    let resource = identity.resource_attributes(cfg);
    let (records, errors) = match crate::pipeline::logs::collect_files(cfg, resource.clone(), files)
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    for e in &errors {
        tracing::warn!(path = %e.path.display(), kind = e.kind.as_str(), error = %e.message, "log collector error");
    }
    let agent_keys: std::collections::BTreeSet<&str> =
        resource.iter().map(|a| a.key.as_str()).collect();
    let body_of = |r: &opentelemetry_proto::tonic::logs::v1::LogRecord| match r
        .body
        .as_ref()
        .and_then(|b| b.value.as_ref())
    {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    };
    match format {
        OutputFormat::Json => {
            let v: Vec<_> = records
                .iter()
                .map(|(res, r)| {
                    json!({
                        "resource": res.attributes.iter().map(attr_json).collect::<serde_json::Map<_, _>>(),
                        "time_unix_nano": r.time_unix_nano,
                        "observed_time_unix_nano": r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "attributes": r.attributes.iter().map(attr_json).collect::<serde_json::Map<_, _>>(),
                        "body": body_of(r),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        OutputFormat::Table => {
            println!(
                "{:<30}  {:<10}  {:<40}  BODY",
                "TIME", "SEVERITY", "ATTRIBUTES"
            );
            for (res, r) in &records {
                let t = if r.time_unix_nano > 0 {
                    r.time_unix_nano
                } else {
                    r.observed_time_unix_nano
                };
                let sev = if r.severity_number > 0 {
                    format!("{}({})", r.severity_text, r.severity_number)
                } else {
                    "-".into()
                };
                // The agent's own resource is the same on every line; show what differs.
                let attrs: Vec<String> = res
                    .attributes
                    .iter()
                    .filter(|a| !agent_keys.contains(a.key.as_str()))
                    .chain(&r.attributes)
                    .map(|a| {
                        let (k, v) = attr_json(a);
                        format!(
                            "{k}={}",
                            v.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| v.to_string())
                        )
                    })
                    .collect();
                println!(
                    "{:<30}  {:<10}  {:<40}  {}",
                    format_unix_nanos(t),
                    sev,
                    attrs.join(","),
                    body_of(r).replace('\n', "\\n")
                );
            }
            eprintln!("{} log records", records.len());
        }
    }
    if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

/// `2024-05-01T10:00:00.123456789Z` (UTC) from unix nanoseconds.
fn format_unix_nanos(ns: u64) -> String {
    let secs = rfc3339_utc(ns / 1_000_000_000);
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), ns % 1_000_000_000)
}

struct Row {
    collector: &'static str,
    name: String,
    kind: &'static str,
    unit: String,
    attrs: Vec<(String, serde_json::Value)>,
    value: serde_json::Value,
}

fn flatten(collector: &'static str, m: &Metric, rows: &mut Vec<Row>) {
    let (kind, points): (&'static str, &[NumberDataPoint]) = match &m.data {
        Some(metric::Data::Gauge(g)) => ("gauge", &g.data_points),
        Some(metric::Data::Sum(s)) if s.is_monotonic => ("counter", &s.data_points),
        Some(metric::Data::Sum(s)) => ("updown", &s.data_points),
        _ => return,
    };
    for p in points {
        rows.push(Row {
            collector,
            name: m.name.clone(),
            kind,
            unit: m.unit.clone(),
            attrs: p.attributes.iter().map(attr_json).collect(),
            value: match p.value {
                Some(number_data_point::Value::AsDouble(v)) => json!(v),
                Some(number_data_point::Value::AsInt(v)) => json!(v),
                None => serde_json::Value::Null,
            },
        });
    }
}

fn attr_json(kv: &KeyValue) -> (String, serde_json::Value) {
    let v = match kv.value.as_ref().and_then(|v: &AnyValue| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => json!(s),
        Some(any_value::Value::IntValue(i)) => json!(i),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        Some(any_value::Value::BoolValue(b)) => json!(b),
        _ => serde_json::Value::Null,
    };
    (kv.key.clone(), v)
}

fn print_version(json: bool) {
    let arch = crate::identity::host_arch();
    let commit = crate::identity::GIT_COMMIT;
    if json {
        println!(
            "{}",
            json!({"name": "tfo-agent", "version": VERSION, "os": "linux", "arch": arch,
                   "git_commit": commit})
        );
    } else {
        println!("tfo-agent {VERSION} (linux/{arch}, commit {commit})");
    }
}

/// `tfo-agent buffer status`: a read-only look at each signal's log.
fn buffer_status(
    loaded: &Loaded,
    path: Option<std::path::PathBuf>,
    format: OutputFormat,
) -> ExitCode {
    let from_config = path.is_none();
    let dir = path.unwrap_or_else(|| settings::buffer_dir(&loaded.config));
    if let Some(why) = no_buffer_reason(&dir) {
        eprintln!("error: no buffer at {}: {why}", dir.display());
        if from_config {
            let configured = &loaded.config.buffer.path;
            let whence = if *configured == dir {
                format!("buffer.path from {}", config_origin(loaded))
            } else {
                format!(
                    "the per-user directory, as {} is not writable by this user",
                    configured.display()
                )
            };
            eprintln!(
                "  (this is {whence}; the agent creates it on its first run; or pass --path DIR)"
            );
        }
        return ExitCode::from(EXIT_RUNTIME);
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut rows = Vec::new();
    let mut failed = false;
    for signal in SIGNALS {
        let d = dir.join(signal);
        if !d.exists() {
            continue;
        }
        match tfo_buffer::inspect(&d) {
            Ok(i) => {
                let s = &i.stats;
                rows.push(json!({
                    "signal": signal,
                    "path": d.display().to_string(),
                    "records": s.records,
                    "disk_bytes": s.disk_bytes,
                    "segments": s.segments,
                    "oldest_record_age_seconds": s.oldest_timestamp_ms.map(|t| now_ms.saturating_sub(t) as f64 / 1e3),
                    "first_unacked_seq": s.first_unacked_seq,
                    "next_seq": s.next_seq,
                    "corrupt_records": i.recovery.corrupt_records,
                    "truncated_bytes": i.recovery.truncated_bytes,
                    "skipped_segments": i.recovery.skipped_segments,
                    "ledger": format!("{:?}", i.recovery.ledger),
                }));
            }
            Err(e) => {
                eprintln!("error: {}: {e}", d.display());
                failed = true;
            }
        }
    }
    match format {
        OutputFormat::Json => println!(
            "{}",
            json!({"path": dir.display().to_string(), "signals": rows})
        ),
        OutputFormat::Table => {
            println!("buffer: {}", dir.display());
            for r in &rows {
                let age = r["oldest_record_age_seconds"]
                    .as_f64()
                    .map(|a| format!("{a:.1}s"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "  {:<8} records={} bytes={} segments={} oldest_age={} corrupt={} truncated_bytes={} ledger={}",
                    r["signal"].as_str().unwrap_or(""),
                    r["records"],
                    r["disk_bytes"],
                    r["segments"],
                    age,
                    r["corrupt_records"],
                    r["truncated_bytes"],
                    r["ledger"].as_str().unwrap_or(""),
                );
            }
            let records: u64 = rows.iter().filter_map(|r| r["records"].as_u64()).sum();
            if records == 0 && !failed {
                println!("  (empty: nothing is waiting to be sent)");
            }
        }
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// The per-signal logs a buffer directory may hold.
const SIGNALS: [&str; 3] = ["metrics", "logs", "traces"];

/// Why there is no buffer to report at `dir`, or `None` when there is one (possibly empty).
/// An empty directory is an empty buffer; a directory with other things but no signal log
/// is not a buffer (a likely mix-up with `agent.data_dir`, which holds `buffer/`).
fn no_buffer_reason(dir: &Path) -> Option<String> {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some("the directory does not exist".into());
        }
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    if !meta.is_dir() {
        return Some("it is not a directory".into());
    }
    if SIGNALS.iter().any(|s| dir.join(s).is_dir()) {
        return None;
    }
    let empty = match std::fs::read_dir(dir) {
        Ok(mut entries) => entries.next().is_none(),
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    if empty {
        None
    } else if SIGNALS.iter().any(|s| dir.join("buffer").join(s).is_dir()) {
        Some(format!(
            "it holds no metrics/ or logs/ log; did you mean --path {}?",
            dir.join("buffer").display()
        ))
    } else {
        Some("it holds no metrics/ or logs/ log".into())
    }
}

fn config_origin(loaded: &Loaded) -> String {
    loaded
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the built-in defaults".into())
}

/// `tfo-agent status`: what this host knows (state.json, buffer) and what the platform says.
fn status(loaded: &Loaded, format: OutputFormat) -> ExitCode {
    let cfg = &loaded.config;
    let identity = crate::identity::Identity::resolve(cfg, &settings::host_paths(cfg));
    let data_dir = settings::data_dir(cfg);
    let local = crate::platform::read_state(&data_dir).unwrap_or_default();
    // One entry per signal log on disk (metrics always once the agent ran; logs and the
    // others only when they were ever enabled).
    let mut buffers = Vec::new();
    if cfg.buffer.enabled {
        for signal in SIGNALS {
            let d = settings::buffer_dir(cfg).join(signal);
            if !d.exists() {
                continue;
            }
            buffers.push(match tfo_buffer::inspect(&d) {
                Ok(i) => json!({"signal": signal, "path": d.display().to_string(), "records": i.stats.records, "disk_bytes": i.stats.disk_bytes}),
                Err(e) => json!({"signal": signal, "path": d.display().to_string(), "error": e.to_string()}),
            });
        }
    }
    let platform = match crate::platform::settings(cfg, &identity.agent_name) {
        None => json!({"configured": false}),
        Some(s) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            let reply = rt.map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(async {
                    let c = tfo_platform::PlatformClient::new(&s).map_err(|e| e.0)?;
                    tokio::time::timeout(s.timeout, c.status(&identity.agent_id))
                        .await
                        .map_err(|_| "timed out".to_string())?
                        .map_err(|e| e.to_string())
                })
            });
            match reply {
                Ok(v) => json!({"configured": true, "endpoint": s.base_url, "status": v}),
                Err(e) => json!({"configured": true, "endpoint": s.base_url, "error": e}),
            }
        }
    };
    let out = json!({
        "agent_id": identity.agent_id,
        "agent_name": identity.agent_name,
        "data_dir": data_dir.display().to_string(),
        "last_heartbeat_unix": local.last_heartbeat_unix,
        "last_heartbeat_error": local.last_heartbeat_error,
        "last_export_unix": local.last_export_unix,
        "config_version": local.config_version,
        "buffers": buffers,
        "platform": platform,
    });
    match format {
        OutputFormat::Json => println!("{out}"),
        OutputFormat::Table => print!("{}", status_text(&out, unix_now())),
    }
    ExitCode::SUCCESS
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The `status` report for people: times as RFC 3339 UTC with their age, plain strings.
fn status_text(v: &serde_json::Value, now: u64) -> String {
    use std::fmt::Write;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let when = |v: &serde_json::Value| match v.as_u64() {
        Some(t) => format!("{} ({})", rfc3339_utc(t), ago(now, t)),
        None => "never".to_string(),
    };
    let mut o = String::new();
    let mut line = |k: &str, val: String| {
        let _ = writeln!(o, "{k:<16} {val}");
    };
    line("agent id", text(&v["agent_id"]));
    line("agent name", text(&v["agent_name"]));
    line("data dir", text(&v["data_dir"]));
    line("last heartbeat", when(&v["last_heartbeat_unix"]));
    if !v["last_heartbeat_error"].is_null() {
        line("heartbeat error", text(&v["last_heartbeat_error"]));
    }
    line("last export", when(&v["last_export_unix"]));
    line("config version", text(&v["config_version"]));
    match v["buffers"].as_array().map(Vec::as_slice) {
        None | Some([]) => line("buffer", "- (disabled, or nothing buffered yet)".into()),
        Some(bufs) => {
            for b in bufs {
                let what = if b["error"].is_null() {
                    format!(
                        "{} records, {} bytes on disk ({})",
                        b["records"],
                        b["disk_bytes"],
                        text(&b["path"])
                    )
                } else {
                    format!("error: {} ({})", text(&b["error"]), text(&b["path"]))
                };
                line(&format!("buffer {}", text(&b["signal"])), what);
            }
        }
    }
    let p = &v["platform"];
    if p["configured"] != true {
        line(
            "platform",
            "not configured (set telemetryflow.api_endpoint)".into(),
        );
    } else if !p["error"].is_null() {
        // The error names the URL it tried.
        line("platform", format!("error: {}", text(&p["error"])));
    } else {
        line("platform", text(&p["endpoint"]));
        match p["status"].as_object() {
            Some(m) => {
                for (k, val) in m {
                    line(&format!("  {k}"), text(val));
                }
            }
            None => line("  status", text(&p["status"])),
        }
    }
    o
}

/// `2024-05-01T12:00:00Z` for a Unix time in seconds.
fn rfc3339_utc(unix: u64) -> String {
    let (mut days, secs) = (unix / 86_400, unix % 86_400);
    let leap = |y: u64| (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let mut year = 1970;
    loop {
        let len = if leap(year) { 366 } else { 365 };
        if days < len {
            break;
        }
        days -= len;
        year += 1;
    }
    let feb = if leap(year) { 29 } else { 28 };
    let mut month = 1;
    for len in [31, feb, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
        if days < len {
            break;
        }
        days -= len;
        month += 1;
    }
    format!(
        "{year:04}-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
        days + 1,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// How long before `now` the time `t` was: `42 s ago`, `5 min ago`, `3 h ago`, `2 d ago`.
fn ago(now: u64, t: u64) -> String {
    let Some(d) = now.checked_sub(t) else {
        return format!("{} s in the future: check the clock", t - now);
    };
    match d {
        0..120 => format!("{d} s ago"),
        120..7_200 => format!("{} min ago", d / 60),
        7_200..172_800 => format!("{} h ago", d / 3600),
        _ => format!("{} d ago", d / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(rfc3339_utc(1_735_689_600), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(
            format_unix_nanos(1_714_557_600_123_456_789),
            "2024-05-01T10:00:00.123456789Z"
        );
    }

    #[test]
    fn status_lists_every_signal_buffer() {
        let v = json!({
            "agent_id": "a", "agent_name": "n", "data_dir": "/d",
            "buffers": [
                {"signal": "metrics", "path": "/d/buffer/metrics", "records": 3, "disk_bytes": 300},
                {"signal": "logs", "path": "/d/buffer/logs", "error": "bad header"},
            ],
            "platform": {"configured": false},
        });
        let t = status_text(&v, 0);
        assert!(
            t.contains("buffer metrics   3 records, 300 bytes on disk (/d/buffer/metrics)"),
            "{t}"
        );
        assert!(
            t.contains("buffer logs      error: bad header (/d/buffer/logs)"),
            "{t}"
        );
        let t = status_text(&json!({"buffers": [], "platform": {}}), 0);
        assert!(t.contains("buffer           - (disabled"), "{t}");
    }

    #[test]
    fn ages() {
        assert_eq!(ago(100, 58), "42 s ago");
        assert_eq!(ago(1000, 400), "10 min ago");
        assert_eq!(ago(100_000, 0), "27 h ago");
        assert_eq!(ago(1_000_000, 0), "11 d ago");
        assert!(ago(0, 5).contains("future"));
    }
}
