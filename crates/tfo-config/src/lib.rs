//! Typed configuration for tfo-agent.
//!
//! A config is loaded in this order; each step can only fail with a [`ConfigError`] that says
//! where (file, line, dotted key path) and what would be accepted:
//!
//! 1. **Find** the file: an explicit path, else the first of [`search_paths`] that exists, else
//!    no file (built-in defaults).
//! 2. **Expand** `${VAR}`, `${VAR:-default}` and `$$` in the text, line by line, skipping
//!    comments (see `expand.rs`). Unset variables without default are an error that lists
//!    every one of them with its line and key.
//! 3. **Parse** the YAML into [`Config`] with `serde-saphyr`; every section has defaults and
//!    rejects unknown keys. `serde_path_to_error` supplies the key path; an unclosed quote or
//!    bracket is reported where it opens (`syntax.rs`), not where the parser gave up.
//! 4. **Override** from the environment ([`ENV_OVERRIDES`]); environment wins over the file.
//! 5. **Normalize** and **validate**: every duration within its range
//!    ([`schema::DURATION_RANGES`]), addresses as the exporter and platform client parse them
//!    ([`endpoint`]), `batch_size >= 1`, …
//!
//! A configuration pushed by the platform goes through [`remote::merge_remote`], which applies
//! the same checks plus the remote-only rules (locked keys, sensitive keys, interval floors).
//!
//! Secrets ([`Secret`], and OTLP header values with credential-like names) are redacted by
//! `Debug`, `Display` and `Serialize`, and scrubbed from error messages.

mod checks;
pub mod duration;
pub mod endpoint;
mod error;
mod expand;
mod keyindex;
mod model;
pub mod remote;
pub mod schema;
mod secret;
mod syntax;

use std::path::{Path, PathBuf};

use serde_path_to_error::Segment;
use serde_saphyr::MessageFormatter;

pub use checks::ENV_OVERRIDES;
pub use error::{ConfigError, ErrorKind};
pub use model::{
    Agent, Buffer, Collectors, Compression, Config, Ebpf, EndpointVersion, Exporter, FsyncMode,
    Health, Heartbeat, Hubble, HubbleTls, Kubernetes, LOG_LEVELS, LeaderElection, LogEncoding,
    LogFileFormat, LogFormat, LogMultiline, LogStartAt, Logging, LogsCollector, NodeExporter, Otlp,
    ProcessCollector, ProcessSource, ProcessTopBy, Prometheus, Protocol, RemoteConfig, Retry,
    SystemCollector, TelemetryFlow, Tls, WhenFull, is_sensitive_name, redacted_headers,
};
pub use secret::{REDACTED, Secret};

use keyindex::KeyIndex;

/// The result of [`load`].
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    /// The file the config came from; `None` means built-in defaults (plus env overrides).
    pub source: Option<PathBuf>,
    /// Non-fatal findings to log at startup (e.g. TLS verification disabled).
    pub warnings: Vec<String>,
}

impl Loaded {
    /// The line of `key` (a dotted path) in the config file, or of its nearest ancestor
    /// written there; for errors found after loading (e.g. by `config validate`).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        let text = std::fs::read_to_string(self.source.as_ref()?).ok()?;
        let index = KeyIndex::build(&text);
        let mut k = key;
        loop {
            if let Some((line, _)) = index.position(k) {
                return Some(line);
            }
            k = &k[..k.rfind('.')?];
        }
    }
}

/// Origin label used in errors when no file was found.
pub const DEFAULTS_ORIGIN: &str = "<built-in defaults>";

/// Where [`load`] looks for a config file when none is given, in order:
/// `./tfo-agent.yaml`, `./configs/tfo-agent.yaml`, `/etc/tfo-agent/tfo-agent.yaml`,
/// `$HOME/.tfo-agent/tfo-agent.yaml` (the last only when `HOME` is set).
pub fn search_paths(env: &dyn Fn(&str) -> Option<String>) -> Vec<PathBuf> {
    let mut paths = vec![
        PathBuf::from("tfo-agent.yaml"),
        PathBuf::from("configs/tfo-agent.yaml"),
        PathBuf::from("/etc/tfo-agent/tfo-agent.yaml"),
    ];
    if let Some(home) = env("HOME").filter(|h| !h.is_empty()) {
        paths.push(Path::new(&home).join(".tfo-agent").join("tfo-agent.yaml"));
    }
    paths
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads the agent configuration using the process environment.
///
/// `explicit` must exist. Without it, the first existing file of [`search_paths`] is used;
/// when none exists the built-in defaults are used (environment overrides still apply).
pub fn load(explicit: Option<&Path>) -> Result<Loaded, ConfigError> {
    load_with_env(explicit, &process_env)
}

/// [`load`] with an explicit environment lookup (for tests and embedding).
pub fn load_with_env(
    explicit: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let source = match explicit {
        Some(path) => Some(path.to_path_buf()),
        None => search_paths(env).into_iter().find(|p| p.is_file()),
    };
    let config = match &source {
        Some(path) => {
            let origin = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                let what = if e.kind() == std::io::ErrorKind::NotFound {
                    "config file not found".to_string()
                } else {
                    format!("cannot read config file: {e}")
                };
                ConfigError::new(ErrorKind::Io, &origin, what)
            })?;
            load_from_str(&text, &origin, env)?
        }
        None => load_from_str("", DEFAULTS_ORIGIN, env)?,
    };
    let warnings = config.warnings();
    Ok(Loaded {
        config,
        source,
        warnings,
    })
}

/// Parses, expands, overrides and validates a config given as text.
///
/// `origin` names the text in errors (usually the file path); `env` looks up environment
/// variables, both for `${VAR}` expansion and for [`ENV_OVERRIDES`]. Empty text (or only
/// comments) yields the defaults.
pub fn load_from_str(
    yaml: &str,
    origin: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigError> {
    let index = KeyIndex::build(yaml);
    let expanded = expand::expand(yaml, env).map_err(|all| expansion_error(all, origin, &index))?;
    let secrets = secrets_in(&expanded, env);
    let mut config = parse(&expanded, origin, &index).map_err(|e| e.scrub(&secrets))?;
    config.apply_env_overrides(env);
    config.normalize();
    if let Some(issue) = config.issues().into_iter().next() {
        let located = issue
            .paths
            .iter()
            .find_map(|p| index.position(p).map(|pos| (*p, pos)));
        let (path, line, column) = match located {
            Some((path, (line, column))) => (path, Some(line), Some(column)),
            None => (issue.paths[0], None, None),
        };
        return Err(
            ConfigError::new(ErrorKind::InvalidValue, origin, issue.message)
                .at(line, column)
                .with_path(Some(path.to_string()))
                .with_allowed(issue.allowed)
                .scrub(&secrets),
        );
    }
    Ok(config)
}

/// One error for a failed expansion: the malformed reference, or every unset variable with
/// its line and key (located at the first).
fn expansion_error(all: Vec<expand::ExpandError>, origin: &str, index: &KeyIndex) -> ConfigError {
    let first = &all[0];
    let located = ConfigError::new(
        if first.variable.is_some() {
            ErrorKind::MissingVariable
        } else {
            ErrorKind::BadVariable
        },
        origin,
        "",
    )
    .at(Some(first.line), Some(first.column))
    .with_path(index.path_at(first.line).map(str::to_string));
    if all.len() == 1 {
        return located
            .with_message(first.message.clone())
            .with_allowed(Some(first.allowed.clone()));
    }
    // Group the occurrences by variable, in order of first appearance.
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for e in &all {
        let name = e.variable.as_deref().unwrap_or_default();
        let place = match index.path_at(e.line) {
            Some(path) => format!("line {}: {path}", e.line),
            None => format!("line {}", e.line),
        };
        match groups.iter_mut().find(|(n, _)| *n == name) {
            Some((_, places)) => places.push(place),
            None => groups.push((name, vec![place])),
        }
    }
    let listed: Vec<String> = groups
        .iter()
        .map(|(name, places)| format!("`{name}` ({})", places.join(", ")))
        .collect();
    let message = if groups.len() == 1 {
        format!(
            "environment variable `{}` is not set ({})",
            groups[0].0,
            groups[0].1.join(", ")
        )
    } else {
        format!(
            "{} environment variables are not set: {}",
            groups.len(),
            listed.join("; ")
        )
    };
    let names: Vec<&str> = groups.iter().map(|(n, _)| *n).collect();
    located.with_message(message).with_allowed(Some(format!(
        "set {}, or give defaults with ${{NAME:-default}}",
        names.join(", ")
    )))
}

impl Config {
    /// The config as YAML with secrets and sensitive header values replaced by `[REDACTED]`.
    ///
    /// Without secrets this re-parses to an equal config.
    pub fn to_yaml_redacted(&self) -> String {
        serde_saphyr::to_string(self)
            .unwrap_or_else(|e| format!("# cannot render config as YAML: {e}\n"))
    }

    /// The config as pretty JSON with secrets and sensitive header values redacted.
    pub fn to_json_redacted(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot render config as JSON: {e}\"}}"))
    }
}

/// Values that must not appear in error messages: the secret from the environment and the
/// inline values of keys with credential-like names.
fn secrets_in(expanded: &str, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut secrets: Vec<String> = KeyIndex::inline_values(expanded)
        .into_iter()
        .filter(|(key, _)| {
            is_sensitive_name(key) && !key.ends_with("_id") && !key.ends_with("_file")
        })
        .map(|(_, value)| value.to_string())
        .collect();
    secrets.extend(env("TELEMETRYFLOW_API_KEY_SECRET"));
    secrets.retain(|s| s.len() >= 3);
    // longest first, so a secret containing another is replaced whole
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets
}

fn parse(text: &str, origin: &str, index: &KeyIndex) -> Result<Config, ConfigError> {
    let options = serde_saphyr::options! { with_snippet: false };
    let mut failed_path: Option<(Vec<Segment>, bool)> = None;
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        serde_path_to_error::deserialize::<_, Option<Config>>(de).map_err(|e| {
            let segments: Vec<Segment> = e.path().iter().cloned().collect();
            let known = !segments.iter().any(|s| matches!(s, Segment::Unknown));
            failed_path = Some((segments, known));
            e.into_inner()
        })
    });
    match result {
        Ok(config) => Ok(config.unwrap_or_default()),
        Err(err) => Err(convert_error(&err, failed_path, origin, index, text)),
    }
}

/// Dotted path of map segments with `[i]` for sequence items, up to the first unknown segment.
fn dotted(segments: &[Segment]) -> String {
    let mut out = String::new();
    for seg in segments {
        match seg {
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Enum { variant } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(variant);
            }
            Segment::Unknown => break,
        }
    }
    out
}

/// What a key at `path` accepts, from the schema (list items and map values are strings).
pub(crate) fn allowed_for(path: &str) -> Option<String> {
    let base = path.split('[').next().unwrap_or(path);
    if base.len() != path.len() || schema::is_free_form(path) {
        return Some(schema::Kind::String.allowed());
    }
    if let Some(range) = schema::duration_range(path) {
        return Some(range.allowed());
    }
    schema::lookup(path).map(|k| k.kind.allowed())
}

/// The key a typo most likely meant: the nearest by edit distance, if it is within a
/// third of the name's length (at least one edit), and unambiguous.
fn closest<'a>(name: &str, keys: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    let mut tie = false;
    for k in keys {
        let d = edit_distance(name, k);
        match best {
            Some((b, _)) if d > b => {}
            Some((b, _)) if d == b => tie = true,
            _ => {
                best = Some((d, k));
                tie = false;
            }
        }
    }
    match best {
        Some((d, k)) if d <= limit && !tie => Some(k),
        _ => None,
    }
}

/// Levenshtein distance over chars, with a transposition counted as one edit
/// (`sytsem` is one edit from `system`).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for transpositions), previous and current.
    let mut prev2 = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(prev2[j - 2] + 1);
            }
            cur[j] = d;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

fn convert_error(
    err: &serde_saphyr::Error,
    failed_path: Option<(Vec<Segment>, bool)>,
    origin: &str,
    index: &KeyIndex,
    text: &str,
) -> ConfigError {
    let msg = serde_saphyr::DefaultMessageFormatter
        .format_message(err)
        .into_owned();
    let (line, column) = match err.location() {
        Some(loc) if loc.line() > 0 => (Some(loc.line() as usize), Some(loc.column() as usize)),
        _ => (None, None),
    };
    let (segments, known) = failed_path.unwrap_or_default();
    let path = dotted(&segments);

    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let name = rest.split('`').next().unwrap_or_default();
        let section = path
            .strip_suffix(name)
            .map(|s| s.trim_end_matches('.'))
            .unwrap_or(&path)
            .to_string();
        let keys = schema::children(&section);
        let mut message = if section.is_empty() {
            format!("unknown top-level key `{name}`")
        } else {
            format!("unknown key `{name}` in `{section}`")
        };
        if let Some(near) = closest(name, keys.iter().copied()) {
            message.push_str(&format!(" (did you mean `{near}`?)"));
        }
        return ConfigError::new(ErrorKind::UnknownKey, origin, message)
            .at(line, column)
            .with_path(Some(path))
            .with_allowed((!keys.is_empty()).then(|| keys.join(", ")));
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let value = rest.split('`').next().unwrap_or_default();
        return ConfigError::new(
            ErrorKind::InvalidValue,
            origin,
            format!("invalid value `{value}`"),
        )
        .at(line, column)
        .with_path(Some(path.clone()))
        .with_allowed(allowed_for(&path));
    }
    if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or_default().trim();
        let full = if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        };
        return ConfigError::new(ErrorKind::Syntax, origin, format!("duplicate key `{key}`"))
            .at(line, column)
            .with_path(Some(full))
            .with_allowed(Some("each key at most once per section".to_string()));
    }
    let from_parser = matches!(
        err.without_snippet(),
        serde_saphyr::Error::ExternalMessage { .. }
            | serde_saphyr::Error::MultipleDocuments { .. }
            | serde_saphyr::Error::UnknownAnchor { .. }
            | serde_saphyr::Error::Eof { .. }
            | serde_saphyr::Error::IOError { .. }
    );
    if from_parser || !known || path.is_empty() {
        // YAML syntax, or a type error at the document root
        let kind = if !from_parser && path.is_empty() && known && msg.contains("expected mapping") {
            ErrorKind::WrongType
        } else {
            ErrorKind::Syntax
        };
        let message = if kind == ErrorKind::WrongType {
            "the document must be a mapping of sections".to_string()
        } else {
            format!("invalid YAML: {msg}")
        };
        let allowed = (kind == ErrorKind::WrongType).then(|| schema::children("").join(", "));
        // An unclosed quote or bracket: point at where it opens, not where the parser gave up.
        if from_parser
            && let (Some(l), Some(c)) = (line, column)
            && let Some(open) = syntax::unclosed_at(text, l, c)
        {
            let stopped = if l > text.lines().count() {
                "at the end of the file".to_string()
            } else {
                format!("at line {l}")
            };
            return ConfigError::new(
                ErrorKind::Syntax,
                origin,
                format!(
                    "invalid YAML: this {} is never closed (the parser stopped {stopped}: {msg})",
                    open.what()
                ),
            )
            .at(Some(open.line), Some(open.column))
            .with_path(index.path_at(open.line).map(str::to_string))
            .with_allowed(Some(format!(
                "close it with {} on line {}",
                open.closer(),
                open.line
            )));
        }
        let near = line.and_then(|l| index.path_at(l)).map(str::to_string);
        return ConfigError::new(kind, origin, message)
            .at(line, column)
            .with_path(if kind == ErrorKind::Syntax {
                near
            } else {
                None
            })
            .with_allowed(allowed);
    }
    let is_value_error = ["invalid duration", "empty duration", "duration `"]
        .iter()
        .any(|p| msg.starts_with(p));
    let (kind, message) = if is_value_error {
        (ErrorKind::InvalidValue, msg)
    } else if msg.starts_with("wrong type") {
        (ErrorKind::WrongType, msg)
    } else {
        (ErrorKind::WrongType, format!("wrong type: {msg}"))
    };
    ConfigError::new(kind, origin, message)
        .at(line, column)
        .with_path(Some(path.clone()))
        .with_allowed(allowed_for(&path))
}
