//! The subcommands. Exit codes: 0 success, 1 runtime failure, 2 configuration or usage error.

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
    let level = cli
        .log_level
        .clone()
        .unwrap_or_else(|| loaded.config.logging.level.clone());
    if !["trace", "debug", "info", "warn", "error"].contains(&level.as_str()) {
        eprintln!(
            "error: --log-level {level:?} is not valid; allowed: trace, debug, info, warn, error"
        );
        return ExitCode::from(EXIT_CONFIG);
    }
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
        Command::Collect { once: _, format } => collect_once(&loaded, format),
        Command::Status { format } => status(&loaded, format),
        Command::Buffer {
            action: BufferAction::Status { path, format },
        } => buffer_status(&loaded, path, format),
        Command::Version { .. } => unreachable!("handled above"),
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
    if json {
        println!(
            "{}",
            json!({"name": "tfo-agent", "version": VERSION, "os": "linux", "arch": arch,
                   "git_commit": option_env!("TFO_GIT_COMMIT").unwrap_or("unknown")})
        );
    } else {
        println!("tfo-agent {VERSION} (linux/{arch})");
    }
}

/// `tfo-agent buffer status`: a read-only look at each signal's log.
fn buffer_status(
    loaded: &Loaded,
    path: Option<std::path::PathBuf>,
    format: OutputFormat,
) -> ExitCode {
    let dir = path.unwrap_or_else(|| settings::buffer_dir(&loaded.config));
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let mut rows = Vec::new();
    let mut failed = false;
    for signal in ["metrics", "logs"] {
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
            if rows.is_empty() && !failed {
                println!("  (empty: no signal has buffered data here)");
            }
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
        }
    }
    if failed {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        ExitCode::SUCCESS
    }
}

/// `tfo-agent status`: what this host knows (state.json, buffer) and what the platform says.
fn status(loaded: &Loaded, format: OutputFormat) -> ExitCode {
    let cfg = &loaded.config;
    let identity = crate::identity::Identity::resolve(cfg, &settings::host_paths(cfg));
    let data_dir = settings::data_dir(cfg);
    let local = crate::platform::read_state(&data_dir).unwrap_or_default();
    let mut buffer = json!(null);
    let bdir = settings::buffer_dir(cfg).join("metrics");
    if cfg.buffer.enabled
        && bdir.exists()
        && let Ok(i) = tfo_buffer::inspect(&bdir)
    {
        buffer = json!({"path": bdir.display().to_string(), "records": i.stats.records, "disk_bytes": i.stats.disk_bytes});
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
        "buffer": buffer,
        "platform": platform,
    });
    match format {
        OutputFormat::Json => println!("{out}"),
        OutputFormat::Table => {
            let obj = out.as_object().cloned().unwrap_or_default();
            for (k, v) in obj {
                println!("{k:<22} {v}");
            }
        }
    }
    ExitCode::SUCCESS
}
