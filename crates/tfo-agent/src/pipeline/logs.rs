//! The log collector (`collectors.logs`): the file tailer of crate `tfo-logs` on a thread of
//! its own, its lines turned into OTLP log records at this boundary, pushed to the logs
//! buffer, and their file positions committed once the records are durable.
//!
//! The loop (see docs/logs.md):
//!
//! 1. `poll` at most [`POLL_BYTES`] of file data; report new file errors (one event each).
//! 2. Convert every line ([`Converter`]) and encode them ([`LogsEncoder`]) into records of
//!    at most `batch_size` log records; a record holds a contiguous run of the lines.
//! 3. Push each record with `push_or_return`: it waits while the buffer is full
//!    (backpressure: nothing more is read, nothing is dropped).
//! 4. Commit the positions of the lines whose records are durable. A record the disk log
//!    took is durable when `push` returns (in the kernel; on disk per `buffer.fsync`). A
//!    record held in memory (the disk failed, or `buffer.enabled: false`) is not: its
//!    positions, and every later one, wait until the buffer has no memory-held record
//!    left (delivered, dropped and counted, or written to the disk). A record handed back
//!    because the collector is stopping is not committed at all: it is read again at the
//!    next start.
//!
//! So `kill -9` at any moment loses no line: what was not committed is read again (the
//! duplicates are at most what was pushed since the last checkpoint write, plus the batch
//! in flight).

use prost::encoding::{encode_varint, encoded_len_varint};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::resource::v1::Resource;
use tfo_collectors::otlp::attr;
use tfo_config::Config;
use tfo_exporter::encode::{LOGS_REQUEST_BYTES, LogsEncoder, MAX_RECORD_BYTES};
use tfo_logs::{Checkpoint, FileInfo, LogLine, Tailer, TailerConfig};

use super::buffer::Pushed;
use super::stream::{Context, Source};
use crate::events::{Event, Stats};
use crate::identity::VERSION;
use crate::{self_metrics, settings};

/// Most file data read per poll (the tailer reads at most 1 MiB per file per poll).
pub const POLL_BYTES: usize = 4 << 20;

/// How often the log collector's counters are published to `/metrics`.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// How long to wait before trying again to start a tailer that could not start.
const RESTART_EVERY: Duration = Duration::from_secs(10);

/// Most distinct pod resources kept (one per container log directory).
const MAX_K8S_RESOURCES: usize = 4096;

/// What the record conversion takes from `collectors.logs`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertOptions {
    /// `collectors.logs.attributes`, added to every record.
    pub attributes: Vec<KeyValue>,
    /// `collectors.logs.include_file_path`.
    pub include_file_path: bool,
}

impl ConvertOptions {
    pub fn of(l: &tfo_config::LogsCollector) -> Self {
        ConvertOptions {
            attributes: l
                .attributes
                .iter()
                .map(|(k, v)| attr(k, v.clone()))
                .collect(),
            include_file_path: l.include_file_path,
        }
    }
}

/// LogLine → OTLP LogRecord, with the resource of the file it came from: the agent's
/// resource, plus `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid` and
/// `k8s.container.name` for files under `/var/log/pods/<ns>_<pod>_<uid>/<container>/`.
///
/// Two outputs with the same content: [`Converter::convert`] builds the prost struct,
/// [`Converter::write`] appends its wire encoding directly (what the collector's loop uses:
/// no allocation per line; the file's attributes are encoded once per file). A test keeps
/// the two byte-identical.
pub struct Converter {
    agent: Arc<Resource>,
    opts: ConvertOptions,
    pods: HashMap<[String; 4], Arc<Resource>>,
    /// The file of the previous line (lines come in runs).
    last: Option<FileCache>,
}

/// What is the same for every line of a file.
struct FileCache {
    file: Arc<FileInfo>,
    resource: Arc<Resource>,
    attrs: Vec<KeyValue>,
    /// `attrs` as encoded `LogRecord.attributes` fields.
    encoded_attrs: Vec<u8>,
}

impl Converter {
    pub fn new(resource_attributes: Vec<KeyValue>, opts: ConvertOptions) -> Self {
        Converter {
            agent: Arc::new(Resource {
                attributes: resource_attributes,
                ..Default::default()
            }),
            opts,
            pods: HashMap::new(),
            last: None,
        }
    }

    fn file(&mut self, file: &Arc<FileInfo>) -> &FileCache {
        let same = self
            .last
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.file, file));
        if !same {
            let resource = self.resource_of(file);
            let attrs = self.file_attributes(file);
            let mut encoded_attrs = Vec::new();
            for kv in &attrs {
                put_attribute(&mut encoded_attrs, &kv.key, &string_of(kv));
            }
            self.last = Some(FileCache {
                file: file.clone(),
                resource,
                attrs,
                encoded_attrs,
            });
        }
        self.last.as_ref().expect("set above")
    }

    pub fn convert(&mut self, line: LogLine) -> (Arc<Resource>, LogRecord) {
        let f = self.file(&line.file);
        let mut attributes = Vec::with_capacity(f.attrs.len() + 1);
        attributes.extend_from_slice(&f.attrs);
        let resource = f.resource.clone();
        if let Some(stream) = line.iostream {
            attributes.push(attr("log.iostream", stream));
        }
        let (severity_number, severity_text) = match line.severity {
            Some((n, t)) => (i32::from(n), t),
            None => (0, String::new()),
        };
        let record = LogRecord {
            time_unix_nano: line.time_unix_nano.unwrap_or(0),
            observed_time_unix_nano: line.observed_unix_nano,
            severity_number,
            severity_text,
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(line.body)),
            }),
            attributes,
            ..Default::default()
        };
        (resource, record)
    }

    /// Appends the encoding of `convert(line)`'s record (an OTLP `LogRecord` message, fields
    /// in tag order as prost writes them) to `out`; returns its resource.
    pub fn write(&mut self, line: &LogLine, out: &mut Vec<u8>) -> Arc<Resource> {
        // LogRecord: time_unix_nano = 1 (fixed64), severity_number = 2 (varint),
        // severity_text = 3, body = 5 (AnyValue), attributes = 6 (KeyValue),
        // observed_time_unix_nano = 11 (fixed64). Zero and empty values are left out.
        if let Some(t) = line.time_unix_nano.filter(|t| *t != 0) {
            out.push(0x09);
            out.extend_from_slice(&t.to_le_bytes());
        }
        if let Some((n, text)) = &line.severity {
            if *n != 0 {
                out.push(0x10);
                encode_varint(u64::from(*n), out);
            }
            if !text.is_empty() {
                put_bytes(out, 3, text.as_bytes());
            }
        }
        // body = AnyValue { string_value = 1 }: a oneof, written even when empty.
        let body = line.body.as_bytes();
        put_key_len(out, 5, framed_len(body.len()));
        put_bytes(out, 1, body);
        let f = self.file(&line.file);
        out.extend_from_slice(&f.encoded_attrs);
        let resource = f.resource.clone();
        if let Some(stream) = line.iostream {
            put_attribute(out, "log.iostream", stream);
        }
        if line.observed_unix_nano != 0 {
            out.push(0x59);
            out.extend_from_slice(&line.observed_unix_nano.to_le_bytes());
        }
        resource
    }

    /// `log.file.name`, `log.file.path` (when asked for), then the static attributes.
    fn file_attributes(&self, f: &FileInfo) -> Vec<KeyValue> {
        let mut a = vec![attr("log.file.name", f.name.clone())];
        if self.opts.include_file_path {
            a.push(attr("log.file.path", f.path.to_string_lossy().into_owned()));
        }
        for kv in &self.opts.attributes {
            if !a.iter().any(|x| x.key == kv.key) {
                a.push(kv.clone());
            }
        }
        a
    }

    fn resource_of(&mut self, f: &FileInfo) -> Arc<Resource> {
        let Some(k) = &f.k8s else {
            return self.agent.clone();
        };
        let key = [
            k.namespace.clone(),
            k.pod_name.clone(),
            k.pod_uid.clone(),
            k.container_name.clone(),
        ];
        if let Some(r) = self.pods.get(&key) {
            return r.clone();
        }
        if self.pods.len() >= MAX_K8S_RESOURCES {
            self.pods.clear();
        }
        let mut attributes = self.agent.attributes.clone();
        for (name, v) in [
            "k8s.namespace.name",
            "k8s.pod.name",
            "k8s.pod.uid",
            "k8s.container.name",
        ]
        .iter()
        .zip(&key)
        {
            attributes.retain(|a| a.key != *name);
            attributes.push(attr(name, v.clone()));
        }
        let r = Arc::new(Resource {
            attributes,
            ..Default::default()
        });
        self.pods.insert(key, r.clone());
        r
    }
}

fn string_of(kv: &KeyValue) -> String {
    match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        _ => String::new(),
    }
}

/// Bytes of a length-delimited field (one-byte key) with `len` bytes of payload.
fn framed_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// Key of length-delimited field `field` (< 16) and the length.
fn put_key_len(out: &mut Vec<u8>, field: u8, len: usize) {
    out.push((field << 3) | 2);
    encode_varint(len as u64, out);
}

fn put_bytes(out: &mut Vec<u8>, field: u8, b: &[u8]) {
    put_key_len(out, field, b.len());
    out.extend_from_slice(b);
}

/// `LogRecord.attributes` (6) = KeyValue { key = 1, value = 2: AnyValue { string_value = 1 } }.
fn put_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    let any = framed_len(value.len());
    let kv = if key.is_empty() {
        0
    } else {
        framed_len(key.len())
    } + framed_len(any);
    put_key_len(out, 6, kv);
    if !key.is_empty() {
        put_bytes(out, 1, key.as_bytes());
    }
    put_key_len(out, 2, any);
    put_bytes(out, 1, value.as_bytes());
}

/// The last position per stream of `lines` (what to commit once they are durable).
fn positions(lines: &[LogLine]) -> Vec<Checkpoint> {
    let mut out: Vec<Checkpoint> = Vec::new();
    merge(&mut out, lines.iter().map(|l| l.position));
    out
}

fn merge(into: &mut Vec<Checkpoint>, more: impl IntoIterator<Item = Checkpoint>) {
    for p in more {
        match into.iter_mut().find(|c| c.stream == p.stream) {
            Some(c) => c.offset = c.offset.max(p.offset),
            None => into.push(p),
        }
    }
}

/// Lines → records (in order; each record holds a contiguous run of `lines`). `arena` and
/// `spans` are scratch space kept by the caller between calls.
pub fn encode(
    conv: &mut Converter,
    lines: &[LogLine],
    enc: &LogsEncoder,
    scratch: &mut Scratch,
    out: &mut Vec<tfo_exporter::Record>,
) -> usize {
    scratch.arena.clear();
    scratch.spans.clear();
    for line in lines {
        let start = scratch.arena.len();
        let resource = conv.write(line, &mut scratch.arena);
        scratch.spans.push((resource, start..scratch.arena.len()));
    }
    let arena = &scratch.arena;
    enc.encode_serialized(
        scratch.spans.drain(..).map(|(r, range)| (r, &arena[range])),
        out,
    )
}

/// Reused buffers of [`encode`].
#[derive(Default)]
pub struct Scratch {
    arena: Vec<u8>,
    spans: Vec<(Arc<Resource>, std::ops::Range<usize>)>,
}

/// Most bytes of one logs record for a logs buffer of `share` bytes: at most a quarter of
/// it, so a record always fits a segment of a small buffer.
pub fn record_bytes_for(share: u64) -> usize {
    usize::try_from(share / 4)
        .unwrap_or(usize::MAX)
        .clamp(4096, MAX_RECORD_BYTES)
}

/// The log collector as a streaming source: built from the config without I/O; the tailer
/// (which loads and later writes the checkpoint file) is created on the source's thread,
/// after any predecessor stopped.
pub struct LogSource {
    tailer: TailerConfig,
    checkpoint_dir: std::path::PathBuf,
    opts: ConvertOptions,
}

impl LogSource {
    pub fn from_config(cfg: &Config) -> Result<LogSource, String> {
        let l = &cfg.collectors.logs;
        if l.paths.is_empty() {
            return Err("collectors.logs.paths is empty".into());
        }
        Ok(LogSource {
            tailer: settings::tailer_config(l),
            checkpoint_dir: settings::logs_checkpoint_dir(cfg),
            opts: ConvertOptions::of(l),
        })
    }

    /// Creates the tailer, trying again every [`RESTART_EVERY`] until it works or the
    /// source is stopped (the error is reported once).
    fn start_tailer(&self, ctx: &Context) -> Option<Tailer> {
        let mut reported = false;
        loop {
            match Tailer::new(self.tailer.clone(), &self.checkpoint_dir) {
                Ok(t) => {
                    tracing::info!(
                        collector = "logs",
                        paths = ?self.tailer.paths,
                        checkpoints = %self.checkpoint_dir.display(),
                        "log collector started"
                    );
                    return Some(t);
                }
                Err(e) => {
                    if !reported {
                        reported = true;
                        ctx.stats.emit(Event::LogsError {
                            kind: "start",
                            path: &self.checkpoint_dir,
                            error: &format!("the log collector cannot start: {e}"),
                        });
                    }
                }
            }
            if ctx.stop.wait(RESTART_EVERY) {
                return None;
            }
        }
    }
}

impl Source for LogSource {
    fn run(self: Box<Self>, ctx: Context) {
        let Some(mut tailer) = self.start_tailer(&ctx) else {
            return;
        };
        let mut conv_for: Option<(Arc<super::stream::Encoding>, Converter, LogsEncoder)> = None;
        let mut scratch = Scratch::default();
        let mut publisher = Publisher::new();
        // The gauges exist from the start, not only after the first poll was stored (a
        // full buffer can hold that push for a long time).
        publisher.maybe_publish(&tailer, &ctx.stats, true);
        // Positions of records that are not durable yet (held in memory by the buffer).
        let mut held: Vec<Checkpoint> = Vec::new();
        let mut records = Vec::new();
        while !ctx.stop.is_stopped() {
            if crate::failpoint::fire("logs_panic") {
                panic!("failpoint logs_panic");
            }
            let started = Instant::now();
            let poll = tailer.poll(POLL_BYTES);
            publisher.poll_time += started.elapsed();
            for e in &poll.errors {
                publisher.errors += 1;
                ctx.stats.emit(Event::LogsError {
                    kind: e.kind.as_str(),
                    path: &e.path,
                    error: &e.message,
                });
            }
            let more = poll.more;
            // The converter is rebuilt when a reload changed the resource or the bounds.
            let encoding = ctx.encoding.get();
            if conv_for
                .as_ref()
                .is_none_or(|(e, _, _)| !Arc::ptr_eq(e, &encoding))
            {
                let c = Converter::new(encoding.resource.clone(), self.opts.clone());
                let enc = LogsEncoder::new(VERSION, encoding.logs_batch_size)
                    .with_max_bytes(encoding.record_bytes.min(LOGS_REQUEST_BYTES));
                conv_for = Some((encoding.clone(), c, enc));
            }
            let (_, conv, enc) = conv_for.as_mut().expect("set above");
            records.clear();
            encode(conv, &poll.lines, enc, &mut scratch, &mut records);
            // Before the pushes, which may wait for room: the lag of what was just read
            // shows while they wait.
            publisher.maybe_publish(&tailer, &ctx.stats, false);
            let mut stored = 0usize;
            let mut in_memory = false;
            let mut interrupted = false;
            for r in records.drain(..) {
                let n = r.items as usize;
                match ctx.buffer.push_or_return(r) {
                    Pushed::Durable | Pushed::Dropped => {}
                    Pushed::Memory => in_memory = true,
                    Pushed::Returned => {
                        // Stopping with a full buffer: this record and the rest of the poll
                        // are not committed, so the next start reads them again.
                        interrupted = true;
                        break;
                    }
                }
                stored += n;
            }
            let done = positions(&poll.lines[..stored]);
            if in_memory || !held.is_empty() {
                merge(&mut held, done);
            } else if !done.is_empty() {
                tailer.commit(&done);
            }
            if !held.is_empty() && ctx.buffer.memory_outstanding() == 0 {
                tailer.commit(&held);
                held.clear();
            }
            publisher.maybe_publish(&tailer, &ctx.stats, false);
            if interrupted {
                break;
            }
            if !more && ctx.stop.wait(tailer.poll_interval()) {
                break;
            }
        }
        if ctx.stop.is_abandoned() {
            // A successor owns the checkpoint file now; writing it would go backwards.
            std::mem::forget(tailer);
            return;
        }
        if !held.is_empty() && ctx.buffer.memory_outstanding() == 0 {
            tailer.commit(&held);
        }
        if let Err(e) = tailer.flush() {
            ctx.stats.emit(Event::LogsError {
                kind: "checkpoint",
                path: &self.checkpoint_dir,
                error: &format!("checkpoints not saved at stop (lines since the last save are read again at the next start): {e}"),
            });
        }
        publisher.maybe_publish(&tailer, &ctx.stats, true);
        tracing::info!(
            collector = "logs",
            "log collector stopped; checkpoints saved"
        );
    }
}

/// Turns the tailer's cumulative counters into self-metrics (deltas) and events.
struct Publisher {
    last: tfo_logs::Stats,
    at: Instant,
    poll_time: Duration,
    errors: usize,
}

impl Publisher {
    fn new() -> Self {
        Publisher {
            last: tfo_logs::Stats::default(),
            at: Instant::now(),
            poll_time: Duration::ZERO,
            errors: 0,
        }
    }

    fn maybe_publish(&mut self, tailer: &Tailer, stats: &Stats, force: bool) {
        if !force && self.at.elapsed() < PUBLISH_EVERY {
            return;
        }
        self.at = Instant::now();
        let now = tailer.stats();
        let was = std::mem::replace(&mut self.last, now.clone());
        publish(&was, &now, stats);
        stats.emit(Event::CollectorRan {
            collector: "logs",
            duration: std::mem::take(&mut self.poll_time),
            points: (now.records - was.records) as usize,
            errors: std::mem::take(&mut self.errors),
            disconnected: false,
            connection_failures: 0,
        });
    }
}

fn publish(was: &tfo_logs::Stats, now: &tfo_logs::Stats, stats: &Stats) {
    use self_metrics as m;
    let d = |a: u64, b: u64| b.saturating_sub(a);
    stats.set(
        m::LOGS_FILES_WATCHED,
        String::new(),
        now.files_watched as f64,
    );
    stats.set(m::LOGS_FILES_OPEN, String::new(), now.files_open as f64);
    stats.set(
        m::LOGS_FILES_IGNORED,
        String::new(),
        now.files_ignored as f64,
    );
    stats.set(
        m::LOGS_CHECKPOINT_LAG,
        String::new(),
        now.uncommitted_bytes as f64,
    );
    stats.add(
        m::LOGS_READ_BYTES,
        String::new(),
        d(was.bytes_read, now.bytes_read),
    );
    stats.add(
        m::LOGS_READ_LINES,
        String::new(),
        d(was.lines_read, now.lines_read),
    );
    stats.add(m::LOGS_RECORDS, String::new(), d(was.records, now.records));
    for (kind, a, b) in [
        (
            "invalid_utf8",
            was.records_invalid_utf8,
            now.records_invalid_utf8,
        ),
        ("parse_error", was.parse_errors, now.parse_errors),
        (
            "multiline_timeout",
            was.multiline_timeouts,
            now.multiline_timeouts,
        ),
    ] {
        stats.add(m::LOGS_DECODE, format!("kind=\"{kind}\""), d(a, b));
    }
    for (kind, a, b) in [
        ("rotation", was.rotations, now.rotations),
        ("truncation", was.truncations, now.truncations),
        ("copy", was.copies, now.copies),
    ] {
        stats.add(m::LOGS_FILE_EVENTS, format!("kind=\"{kind}\""), d(a, b));
    }
    let excluded = d(was.records_excluded, now.records_excluded);
    if excluded > 0 {
        stats.emit(Event::LogsRecordsDropped {
            reason: "excluded",
            records: excluded,
        });
    }
    let lost = d(was.bytes_lost_truncated, now.bytes_lost_truncated);
    if lost > 0 {
        stats.emit(Event::LogsBytesLost {
            reason: "truncated",
            bytes: lost,
        });
    }
    let cuts = d(was.lines_split, now.lines_split);
    if cuts > 0 {
        stats.emit(Event::LogsLinesSplit { cuts });
    }
}

/// What `collect --logs` found: the records with their resources, and file errors.
pub type Collected = (Vec<(Arc<Resource>, LogRecord)>, Vec<tfo_logs::FileError>);

/// `tfo-agent collect --logs FILE…`: what the log collector would send for these files,
/// read from their beginning with the configured format, multiline and filters, with
/// throw-away checkpoints (nothing is committed to `agent.data_dir`). A last line without
/// a line feed is not included (the collector waits for its end).
pub fn collect_files(
    cfg: &Config,
    resource: Vec<KeyValue>,
    files: &[std::path::PathBuf],
) -> Result<Collected, String> {
    let l = &cfg.collectors.logs;
    let mut tc = settings::tailer_config(l);
    tc.paths = Vec::new();
    for f in files {
        let abs = std::path::absolute(f).map_err(|e| format!("{}: {e}", f.display()))?;
        if !abs.is_file() {
            return Err(format!("{}: not a regular file", f.display()));
        }
        tc.paths.push(glob_escape(&abs));
    }
    tc.exclude_paths = Vec::new();
    tc.start_at = tfo_logs::StartAt::Beginning;
    let tmp = tempdir_for_collect()?;
    let result = (|| {
        let mut tailer = Tailer::new(tc, &tmp).map_err(|e| e.to_string())?;
        let mut conv = Converter::new(resource, ConvertOptions::of(l));
        let mut out = Vec::new();
        let mut errors = Vec::new();
        // Read to the end; then once more after the multiline timeout, so a pending
        // multiline record is included.
        let mut waited = false;
        loop {
            let p = tailer.poll(POLL_BYTES);
            errors.extend(p.errors);
            out.extend(p.lines.into_iter().map(|line| conv.convert(line)));
            if p.more {
                continue;
            }
            if waited {
                break;
            }
            waited = true;
            std::thread::sleep(l.multiline.timeout + Duration::from_millis(20));
        }
        Ok((out, errors))
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

/// A fresh private directory for throw-away checkpoints.
fn tempdir_for_collect() -> Result<std::path::PathBuf, String> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for i in 0..100u32 {
        let d = base.join(format!("tfo-agent-collect-{}-{i}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(format!("{}: {e}", d.display())),
        }
    }
    Err("cannot create a temporary directory".into())
}

/// A path as a glob pattern matching only itself.
fn glob_escape(p: &Path) -> String {
    let mut s = String::new();
    for c in p.to_string_lossy().chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use prost::Message;

    fn string_of(v: &Option<AnyValue>) -> String {
        match v.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            other => panic!("not a string: {other:?}"),
        }
    }

    fn attrs(kv: &[KeyValue]) -> Vec<(String, String)> {
        kv.iter()
            .map(|a| (a.key.clone(), string_of(&a.value)))
            .collect()
    }

    /// Real lines from a real file under a kubelet-like path, through the tailer.
    fn tail(dir: &Path, rel: &str, content: &str) -> Vec<LogLine> {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        let cfg = TailerConfig {
            paths: vec![path.to_string_lossy().into_owned()],
            start_at: tfo_logs::StartAt::Beginning,
            ..Default::default()
        };
        let mut t = Tailer::new(cfg, dir.join("ckpt")).unwrap();
        t.poll(1 << 20).lines
    }

    #[test]
    fn cri_lines_under_var_log_pods_get_pod_resource_and_stream() {
        let tmp = tempfile::tempdir().unwrap();
        let lines = tail(
            tmp.path(),
            "var/log/pods/shop_cart-7d9f_0f3c8a4e-1b2c/server/0.log",
            "2024-05-01T10:00:00.123456789Z stderr F level=error msg=\"boom\"\n\
             2024-05-01T10:00:01Z stdout P part one, \n\
             2024-05-01T10:00:01Z stdout F part two\n",
        );
        assert_eq!(lines.len(), 2);
        let opts = ConvertOptions {
            attributes: vec![attr("team", "sre"), attr("log.file.name", "ignored")],
            include_file_path: true,
        };
        let mut conv = Converter::new(
            vec![attr("host.name", "h1"), attr("k8s.pod.name", "agent-pod")],
            opts,
        );
        let (res, rec) = conv.convert(lines[0].clone());
        let ra = attrs(&res.attributes);
        assert_eq!(ra[0], ("host.name".into(), "h1".into()));
        for (k, v) in [
            ("k8s.namespace.name", "shop"),
            ("k8s.pod.name", "cart-7d9f"),
            ("k8s.pod.uid", "0f3c8a4e-1b2c"),
            ("k8s.container.name", "server"),
        ] {
            assert_eq!(
                ra.iter().filter(|(a, _)| a == k).collect::<Vec<_>>(),
                vec![&(k.to_string(), v.to_string())],
                "{k}"
            );
        }
        assert_eq!(string_of(&rec.body), "level=error msg=\"boom\"");
        assert_eq!(rec.time_unix_nano, 1_714_557_600_123_456_789);
        assert!(rec.observed_time_unix_nano > rec.time_unix_nano);
        assert_eq!(
            (rec.severity_number, rec.severity_text.as_str()),
            (17, "error")
        );
        let a = attrs(&rec.attributes);
        assert_eq!(a[0], ("log.file.name".into(), "0.log".into()));
        assert_eq!(a[1].0, "log.file.path");
        assert!(a[1].1.ends_with("/server/0.log"), "{}", a[1].1);
        assert_eq!(a[2], ("team".into(), "sre".into()));
        assert_eq!(a[3], ("log.iostream".into(), "stderr".into()));
        assert_eq!(a.len(), 4, "the static log.file.name does not override");
        let (res2, rec2) = conv.convert(lines[1].clone());
        assert!(Arc::ptr_eq(&res, &res2), "one resource per file");
        assert_eq!(string_of(&rec2.body), "part one, part two");
        assert_eq!(attrs(&rec2.attributes)[3].1, "stdout");
    }

    #[test]
    fn plain_files_get_the_agent_resource_and_no_optional_attributes() {
        let tmp = tempfile::tempdir().unwrap();
        let lines = tail(
            tmp.path(),
            "app.log",
            "{\"time\":\"2024-05-01T10:00:00Z\",\"level\":\"warn\",\"msg\":\"m\"}\nplain\n",
        );
        let mut conv = Converter::new(
            vec![attr("host.name", "h1")],
            ConvertOptions {
                attributes: vec![],
                include_file_path: false,
            },
        );
        let mut out = Vec::new();
        let enc = LogsEncoder::new("1", 100);
        let mut scratch = Scratch::default();
        assert_eq!(encode(&mut conv, &lines, &enc, &mut scratch, &mut out), 2);
        assert_eq!(out.len(), 1);
        let req = ExportLogsServiceRequest::decode(out[0].body.clone()).unwrap();
        assert_eq!(req.resource_logs.len(), 1);
        let rl = &req.resource_logs[0];
        assert_eq!(
            attrs(&rl.resource.as_ref().unwrap().attributes),
            vec![("host.name".into(), "h1".into())]
        );
        let recs = &rl.scope_logs[0].log_records;
        assert_eq!(
            (recs[0].severity_number, recs[0].severity_text.as_str()),
            (13, "warn")
        );
        assert_eq!(recs[0].time_unix_nano, 1_714_557_600_000_000_000);
        assert_eq!(
            attrs(&recs[0].attributes),
            vec![("log.file.name".into(), "app.log".into())]
        );
        assert_eq!(string_of(&recs[1].body), "plain");
        assert_eq!((recs[1].severity_number, recs[1].time_unix_nano), (0, 0));
    }

    #[test]
    fn the_direct_encoding_is_byte_identical_to_prost() {
        let tmp = tempfile::tempdir().unwrap();
        let mut lines = tail(
            tmp.path(),
            "var/log/pods/ns_pod_uid/c/0.log",
            "2024-05-01T10:00:00.123456789Z stderr F level=error msg=x\n\
             2024-05-01T10:00:01Z stdout F \n\
             2024-05-01T10:00:02Z stdout F plain ünïcödé\n",
        );
        lines.extend(tail(
            tmp.path(),
            "app.log",
            &format!(
                "{{\"level\":\"warn\",\"ts\":1714557604.5}}\nno level here\n{}\n\n",
                "x".repeat(70_000)
            ),
        ));
        assert_eq!(lines.len(), 7);
        let mut odd = lines[4].clone();
        odd.time_unix_nano = Some(0);
        odd.observed_unix_nano = 0;
        odd.severity = Some((0, String::new()));
        lines.push(odd);
        for include_file_path in [false, true] {
            let opts = ConvertOptions {
                attributes: vec![attr("team", "sre"), attr("", "empty key")],
                include_file_path,
            };
            let mut conv = Converter::new(vec![attr("host.name", "h")], opts);
            for line in &lines {
                let mut direct = Vec::new();
                let r1 = conv.write(line, &mut direct);
                let (r2, rec) = conv.convert(line.clone());
                assert_eq!(direct, rec.encode_to_vec(), "{line:?}");
                assert_eq!(r1, r2);
            }
        }
    }

    #[test]
    fn positions_keep_the_furthest_per_stream() {
        let c = |stream, offset| Checkpoint { stream, offset };
        let mut p = Vec::new();
        merge(&mut p, [c(1, 10), c(2, 5), c(1, 30), c(2, 7)]);
        assert_eq!(p, vec![c(1, 30), c(2, 7)]);
        merge(&mut p, [c(3, 1), c(1, 40)]);
        assert_eq!(p, vec![c(1, 40), c(2, 7), c(3, 1)]);
    }

    #[test]
    fn glob_escape_matches_only_the_path() {
        assert_eq!(glob_escape(Path::new("/a/b[1]*.log")), "/a/b\\[1\\]\\*.log");
    }
}
