//! What happens after parsing: environment overrides, normalization, semantic validation and
//! warnings.

use std::path::PathBuf;

use crate::Config;
use crate::duration::format_duration;
use crate::endpoint::{self, is_loopback};
use crate::error::{ConfigError, ErrorKind};
use crate::model::LOG_LEVELS;
use crate::schema::DURATION_RANGES;
use crate::secret::Secret;

/// Environment variables that override file values, and the key each one sets.
///
/// An override that is set but empty is ignored. `TELEMETRYFLOW_ENVIRONMENT` sets the
/// `environment` entry of `agent.tags`.
pub const ENV_OVERRIDES: &[(&str, &str)] = &[
    ("TELEMETRYFLOW_API_KEY_ID", "telemetryflow.api_key_id"),
    (
        "TELEMETRYFLOW_API_KEY_SECRET",
        "telemetryflow.api_key_secret",
    ),
    ("TELEMETRYFLOW_ENDPOINT", "telemetryflow.endpoint"),
    ("TELEMETRYFLOW_API_ENDPOINT", "telemetryflow.api_endpoint"),
    ("TELEMETRYFLOW_ENVIRONMENT", "agent.tags.environment"),
    ("TELEMETRYFLOW_AGENT_ID", "agent.id"),
    ("TELEMETRYFLOW_AGENT_NAME", "agent.name"),
    ("HOST_ROOT", "collectors.root_path"),
];

/// One failed semantic check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    /// Key paths involved, most relevant first; the first one found in the file gives the line.
    pub paths: Vec<&'static str>,
    pub message: String,
    pub allowed: Option<String>,
}

fn issue(path: &'static str, message: impl Into<String>, allowed: Option<&str>) -> Issue {
    Issue {
        paths: vec![path],
        message: message.into(),
        allowed: allowed.map(str::to_string),
    }
}

impl Config {
    /// Applies the [`ENV_OVERRIDES`] found by `env`.
    pub fn apply_env_overrides(&mut self, env: &dyn Fn(&str) -> Option<String>) {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(v) = get("TELEMETRYFLOW_API_KEY_ID") {
            self.telemetryflow.api_key_id = Some(v);
        }
        if let Some(v) = get("TELEMETRYFLOW_API_KEY_SECRET") {
            self.telemetryflow.api_key_secret = Some(Secret::new(v));
        }
        if let Some(v) = get("TELEMETRYFLOW_ENDPOINT") {
            self.telemetryflow.endpoint = v;
        }
        if let Some(v) = get("TELEMETRYFLOW_API_ENDPOINT") {
            self.telemetryflow.api_endpoint = Some(v);
        }
        if let Some(v) = get("TELEMETRYFLOW_ENVIRONMENT") {
            self.agent.tags.insert("environment".to_string(), v);
        }
        if let Some(v) = get("TELEMETRYFLOW_AGENT_ID") {
            self.agent.id = Some(v);
        }
        if let Some(v) = get("TELEMETRYFLOW_AGENT_NAME") {
            self.agent.name = Some(v);
        }
        if let Some(v) = get("HOST_ROOT") {
            self.collectors.root_path = PathBuf::from(v);
        }
    }

    /// Canonical forms: empty optional strings/paths/secrets become `None` (so
    /// `api_key_id: "${UNSET_OK:-}"` means "not configured"), `logging.level` is lowercased,
    /// surrounding whitespace is trimmed from `endpoint` and `api_endpoint`.
    pub fn normalize(&mut self) {
        fn empty_to_none(v: &mut Option<String>) {
            if let Some(s) = v {
                let t = s.trim();
                if t.is_empty() {
                    *v = None;
                } else if t.len() != s.len() {
                    *s = t.to_string();
                }
            }
        }
        fn empty_path_to_none(v: &mut Option<PathBuf>) {
            if v.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                *v = None;
            }
        }
        let tf = &mut self.telemetryflow;
        empty_to_none(&mut tf.api_key_id);
        empty_to_none(&mut tf.api_endpoint);
        empty_to_none(&mut tf.tls.server_name);
        if tf.api_key_secret.as_ref().is_some_and(Secret::is_empty) {
            tf.api_key_secret = None;
        }
        empty_path_to_none(&mut tf.tls.ca_file);
        empty_path_to_none(&mut tf.tls.cert_file);
        empty_path_to_none(&mut tf.tls.key_file);
        tf.endpoint = tf.endpoint.trim().to_string();
        let hubble = &mut self.collectors.ebpf.hubble;
        hubble.address = hubble.address.trim().to_string();
        empty_to_none(&mut hubble.tls.server_name);
        empty_path_to_none(&mut hubble.tls.ca_file);
        empty_path_to_none(&mut hubble.tls.cert_file);
        empty_path_to_none(&mut hubble.tls.key_file);
        empty_to_none(&mut self.agent.id);
        empty_to_none(&mut self.agent.name);
        let auth = &mut self.receivers.otlp.auth;
        empty_to_none(&mut auth.api_key_id);
        for secret in [&mut auth.bearer_token, &mut auth.api_key_secret] {
            if secret.as_ref().is_some_and(Secret::is_empty) {
                *secret = None;
            }
        }
        let ml = &mut self.collectors.logs.multiline;
        empty_to_none(&mut ml.start_pattern);
        empty_to_none(&mut ml.end_pattern);
        self.logging.level = self.logging.level.trim().to_ascii_lowercase();
    }

    /// Semantic checks. Errors carry the key path but no file location; [`crate::load_from_str`]
    /// runs the same checks and adds the file and line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.issues().into_iter().next() {
            None => Ok(()),
            Some(issue) => {
                Err(
                    ConfigError::new(ErrorKind::InvalidValue, "<config>", issue.message)
                        .with_path(issue.paths.first().map(|p| p.to_string()))
                        .with_allowed(issue.allowed),
                )
            }
        }
    }

    /// Things that are allowed but probably not intended.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tf = &self.telemetryflow;
        if tf.tls.skip_verify {
            out.push(
                "telemetryflow.tls.skip_verify: TLS certificate verification is disabled"
                    .to_string(),
            );
        }
        if !tf.tls.enabled && tf.api_key_secret.is_some() && !is_loopback(&tf.endpoint) {
            out.push(format!(
                "telemetryflow.tls.enabled: TLS is disabled, so the API key secret is sent \
                 unencrypted to {}",
                tf.endpoint
            ));
        }
        let r = &self.receivers.otlp;
        if r.enabled && !r.auth.required() {
            for (key, on, addr) in r.listeners() {
                if on && !is_loopback(addr) {
                    out.push(format!(
                        "{key}: the OTLP receiver listens on {addr} without receivers.otlp.auth: \
                         anyone who can reach it can send data in this agent's name"
                    ));
                }
            }
        }
        out
    }

    fn receiver_issues(&self, v: &mut Vec<Issue>) {
        let r = &self.receivers.otlp;
        if !r.enabled {
            return;
        }
        for (key, on, addr) in r.listeners() {
            if on && let Err(why) = endpoint::check_listen_address(addr) {
                v.push(issue(key, why, Some(endpoint::LISTEN_ALLOWED)));
            }
        }
        if r.grpc.enabled
            && r.http.enabled
            && r.grpc.listen_address == r.http.listen_address
            && !r.http.listen_address.ends_with(":0")
        {
            v.push(Issue {
                paths: vec![
                    "receivers.otlp.http.listen_address",
                    "receivers.otlp.grpc.listen_address",
                ],
                message: format!(
                    "the gRPC and HTTP receivers both listen on {}",
                    r.http.listen_address
                ),
                allowed: Some("two different addresses or ports".to_string()),
            });
        }
        if !(1..=64).contains(&r.max_recv_msg_size_mb) {
            v.push(issue(
                "receivers.otlp.max_recv_msg_size_mb",
                format!("{} is out of range", r.max_recv_msg_size_mb),
                Some("a whole number of MiB from 1 to 64"),
            ));
        }
        let a = &r.auth;
        if a.api_key_id.is_some() != a.api_key_secret.is_some() {
            let (key, missing) = if a.api_key_id.is_some() {
                ("receivers.otlp.auth.api_key_id", "api_key_secret")
            } else {
                ("receivers.otlp.auth.api_key_secret", "api_key_id")
            };
            v.push(issue(
                key,
                format!("set without receivers.otlp.auth.{missing}"),
                Some("both api_key_id and api_key_secret, or neither"),
            ));
        }
    }

    pub(crate) fn issues(&self) -> Vec<Issue> {
        let mut v = Vec::new();
        let tf = &self.telemetryflow;
        if let Err(why) = endpoint::check_endpoint(&tf.endpoint) {
            v.push(issue(
                "telemetryflow.endpoint",
                why,
                Some(endpoint::ENDPOINT_ALLOWED),
            ));
        }
        if let Some(url) = &tf.api_endpoint
            && let Err(why) = endpoint::check_url(url)
        {
            v.push(issue(
                "telemetryflow.api_endpoint",
                why,
                Some(endpoint::URL_ALLOWED),
            ));
        }
        for range in DURATION_RANGES {
            let d = (range.get)(self);
            let f = format_duration;
            let problem = if d < range.min {
                Some(format!(
                    "`{}` is too short (minimum {})",
                    f(d),
                    f(range.min)
                ))
            } else if d > range.max {
                Some(format!("`{}` is too long (maximum {})", f(d), f(range.max)))
            } else {
                None
            };
            if let Some(message) = problem {
                v.push(Issue {
                    paths: vec![range.path],
                    message,
                    allowed: Some(range.allowed()),
                });
            }
        }
        if tf.retry.max_attempts < 1 {
            v.push(issue(
                "telemetryflow.retry.max_attempts",
                "must be at least 1",
                Some("a whole number >= 1 (set retry.enabled: false to disable retries)"),
            ));
        }
        if tf.retry.initial_interval > tf.retry.max_interval {
            v.push(Issue {
                paths: vec![
                    "telemetryflow.retry.initial_interval",
                    "telemetryflow.retry.max_interval",
                ],
                message: format!(
                    "initial_interval ({}) is greater than max_interval ({})",
                    format_duration(tf.retry.initial_interval),
                    format_duration(tf.retry.max_interval)
                ),
                allowed: Some("initial_interval <= max_interval".to_string()),
            });
        }
        if tf.tls.cert_file.is_some() != tf.tls.key_file.is_some() {
            let (missing, present) = if tf.tls.cert_file.is_some() {
                ("telemetryflow.tls.key_file", "telemetryflow.tls.cert_file")
            } else {
                ("telemetryflow.tls.cert_file", "telemetryflow.tls.key_file")
            };
            v.push(Issue {
                paths: vec![present, missing],
                message: format!("{present} is set but {missing} is not"),
                allowed: Some("both cert_file and key_file (client TLS), or neither".to_string()),
            });
        }
        let hubble = &self.collectors.ebpf.hubble;
        if hubble.tls.cert_file.is_some() != hubble.tls.key_file.is_some() {
            let (missing, present) = if hubble.tls.cert_file.is_some() {
                (
                    "collectors.ebpf.hubble.tls.key_file",
                    "collectors.ebpf.hubble.tls.cert_file",
                )
            } else {
                (
                    "collectors.ebpf.hubble.tls.cert_file",
                    "collectors.ebpf.hubble.tls.key_file",
                )
            };
            v.push(Issue {
                paths: vec![present, missing],
                message: format!("{present} is set but {missing} is not"),
                allowed: Some("both cert_file and key_file (client TLS), or neither".to_string()),
            });
        }
        if let Some(why) = hubble_address_problem(&hubble.address, hubble.tls.enabled) {
            v.push(issue(
                "collectors.ebpf.hubble.address",
                &why,
                Some("unix:///var/run/cilium/hubble.sock (node socket, no TLS) or host:port (Relay, e.g. hubble-relay.kube-system.svc:443)"),
            ));
        }
        if hubble.max_series == 0 {
            v.push(issue(
                "collectors.ebpf.hubble.max_series",
                "must be at least 1",
                Some("a whole number from 1 up (default 1000)"),
            ));
        }
        if self.agent.tags.keys().any(|k| k.trim().is_empty()) {
            v.push(issue(
                "agent.tags",
                "tag names must not be empty",
                Some("non-empty tag names"),
            ));
        }
        let c = &self.collectors;
        let ne = &c.node_exporter;
        for (path, pattern) in [
            (
                "collectors.node_exporter.disk_devices_include",
                &ne.disk_devices_include,
            ),
            (
                "collectors.node_exporter.disk_devices_exclude",
                &ne.disk_devices_exclude,
            ),
            (
                "collectors.node_exporter.mount_points_include",
                &ne.mount_points_include,
            ),
            (
                "collectors.node_exporter.mount_points_exclude",
                &ne.mount_points_exclude,
            ),
            (
                "collectors.node_exporter.fs_types_include",
                &ne.fs_types_include,
            ),
            (
                "collectors.node_exporter.fs_types_exclude",
                &ne.fs_types_exclude,
            ),
            (
                "collectors.node_exporter.network_interfaces_include",
                &ne.network_interfaces_include,
            ),
            (
                "collectors.node_exporter.network_interfaces_exclude",
                &ne.network_interfaces_exclude,
            ),
        ] {
            if let Some(p) = pattern
                && let Some(why) = regex_problem(p)
            {
                v.push(issue(
                    path,
                    format!("`{p}` is not a valid regular expression ({why})"),
                    Some("a regular expression in node_exporter's syntax, e.g. ^(ram|loop)\\d+$"),
                ));
            }
        }
        let pc = &c.process;
        regex_issues(
            &mut v,
            [
                (
                    "collectors.process.include_command_lines",
                    &pc.include_command_lines[..],
                ),
                (
                    "collectors.process.exclude_command_lines",
                    &pc.exclude_command_lines[..],
                ),
                (
                    "collectors.process.redact_patterns",
                    &pc.redact_patterns[..],
                ),
            ],
        );
        if pc.max_processes == 0 {
            v.push(issue(
                "collectors.process.max_processes",
                "must be at least 1",
                Some("a whole number from 1 up (default 1000)"),
            ));
        }
        self.log_issues(&mut v);
        if c.root_path.as_os_str().is_empty() {
            v.push(issue(
                "collectors.root_path",
                "must not be empty",
                Some("a path such as / or /host"),
            ));
        }
        let otlp = &self.exporter.otlp;
        if otlp.batch_size < 1 {
            v.push(issue(
                "exporter.otlp.batch_size",
                "must be at least 1",
                Some("a whole number >= 1"),
            ));
        }
        if otlp.logs_batch_size < 1 {
            v.push(issue(
                "exporter.otlp.logs_batch_size",
                "must be at least 1",
                Some("a whole number >= 1"),
            ));
        }
        for (name, value) in &otlp.headers {
            if name.is_empty() || !name.bytes().all(is_header_name_byte) {
                v.push(issue(
                    "exporter.otlp.headers",
                    format!("`{name}` is not a valid HTTP header name"),
                    Some("letters, digits and !#$%&'*+-.^_`|~"),
                ));
            }
            if value.chars().any(|ch| ch.is_control() && ch != '\t') {
                // the value is not shown: it may be a credential
                v.push(issue(
                    "exporter.otlp.headers",
                    format!("the value of header `{name}` contains control characters"),
                    Some("printable text without line breaks"),
                ));
            }
        }
        let b = &self.buffer;
        if b.enabled {
            if b.path.as_os_str().is_empty() {
                v.push(issue(
                    "buffer.path",
                    "must not be empty when the buffer is enabled",
                    Some("a directory path"),
                ));
            }
            if b.max_size_mb < 1 {
                v.push(issue(
                    "buffer.max_size_mb",
                    "must be at least 1 when the buffer is enabled",
                    Some("a whole number of MiB >= 1"),
                ));
            }
            if b.memory_limit_mb < 1 {
                v.push(issue(
                    "buffer.memory_limit_mb",
                    "must be at least 1 when the buffer is enabled",
                    Some("a whole number of MiB >= 1"),
                ));
            }
        }
        let prom = &self.prometheus;
        if prom.enabled {
            if let Err(why) = endpoint::check_listen_address(&prom.listen_address) {
                v.push(issue(
                    "prometheus.listen_address",
                    why,
                    Some(endpoint::LISTEN_ALLOWED),
                ));
            }
            if !prom.path.starts_with('/') {
                v.push(issue(
                    "prometheus.path",
                    format!("`{}` does not start with /", prom.path),
                    Some("an absolute URL path such as /metrics"),
                ));
            }
        }
        self.receiver_issues(&mut v);
        let health = &self.health;
        if health.enabled {
            if let Err(why) = endpoint::check_listen_address(&health.listen_address) {
                v.push(issue(
                    "health.listen_address",
                    why,
                    Some(endpoint::LISTEN_ALLOWED),
                ));
            } else if prom.enabled
                && prom.listen_address == health.listen_address
                && !health.listen_address.ends_with(":0")
            {
                v.push(Issue {
                    paths: vec!["health.listen_address", "prometheus.listen_address"],
                    message: format!(
                        "health and prometheus both listen on {}",
                        health.listen_address
                    ),
                    allowed: Some("two different addresses or ports".to_string()),
                });
            }
        }
        if !LOG_LEVELS.contains(&self.logging.level.as_str()) {
            v.push(issue(
                "logging.level",
                format!("invalid value `{}`", self.logging.level),
                Some(&LOG_LEVELS.join(", ")),
            ));
        }
        v
    }
}

impl Config {
    /// The checks of `collectors.logs` (the tailer in `tfo-logs` compiles the same patterns
    /// and would refuse what passes here only on a bug).
    fn log_issues(&self, v: &mut Vec<Issue>) {
        let logs = &self.collectors.logs;
        if logs.enabled && logs.paths.is_empty() {
            v.push(issue(
                "collectors.logs.paths",
                "the logs collector is enabled but no paths are set",
                Some("a list of absolute glob patterns, e.g. [/var/log/*.log]"),
            ));
        }
        for p in &logs.paths {
            let problem = if !p.starts_with('/') {
                Some("is not an absolute path".to_string())
            } else {
                glob_problem(p)
            };
            if let Some(why) = problem {
                v.push(issue(
                    "collectors.logs.paths",
                    format!("`{p}` {why}"),
                    Some(GLOB_ALLOWED),
                ));
            }
        }
        for p in &logs.exclude_paths {
            if let Some(why) = glob_problem(p) {
                v.push(issue(
                    "collectors.logs.exclude_paths",
                    format!("`{p}` {why}"),
                    Some(GLOB_ALLOWED),
                ));
            }
        }
        let le = &self.collectors.kubernetes.leader_election;
        if le.renew_deadline >= le.lease_duration {
            v.push(Issue {
                paths: vec![
                    "collectors.kubernetes.leader_election.renew_deadline",
                    "collectors.kubernetes.leader_election.lease_duration",
                ],
                message: format!(
                    "renew_deadline ({}) must be less than lease_duration ({}), or a leader \
                     that cannot renew could still report after another took over",
                    format_duration(le.renew_deadline),
                    format_duration(le.lease_duration)
                ),
                allowed: Some("renew_deadline < lease_duration (defaults 10s and 15s)".into()),
            });
        }
        if le.retry_period >= le.renew_deadline {
            v.push(Issue {
                paths: vec![
                    "collectors.kubernetes.leader_election.retry_period",
                    "collectors.kubernetes.leader_election.renew_deadline",
                ],
                message: format!(
                    "retry_period ({}) must be less than renew_deadline ({}), or the leader \
                     gets no second try to renew",
                    format_duration(le.retry_period),
                    format_duration(le.renew_deadline)
                ),
                allowed: Some("retry_period < renew_deadline (defaults 2s and 10s)".into()),
            });
        }
        if le.enabled && le.lease_name.trim().is_empty() {
            v.push(issue(
                "collectors.kubernetes.leader_election.lease_name",
                "is empty",
                Some("a Lease object name, e.g. tfo-agent-cluster"),
            ));
        }
        let ml = &logs.multiline;
        regex_issues(
            v,
            [
                (
                    "collectors.logs.include_patterns",
                    &logs.include_patterns[..],
                ),
                (
                    "collectors.logs.exclude_patterns",
                    &logs.exclude_patterns[..],
                ),
                (
                    "collectors.logs.multiline.start_pattern",
                    ml.start_pattern.as_slice(),
                ),
                (
                    "collectors.logs.multiline.end_pattern",
                    ml.end_pattern.as_slice(),
                ),
            ],
        );
        if ml.start_pattern.is_some() && ml.end_pattern.is_some() {
            v.push(Issue {
                paths: vec![
                    "collectors.logs.multiline.end_pattern",
                    "collectors.logs.multiline.start_pattern",
                ],
                message: "start_pattern and end_pattern are both set".to_string(),
                allowed: Some(
                    "exactly one of start_pattern or end_pattern (or neither: no multiline)"
                        .to_string(),
                ),
            });
        }
        if !(MIN_LINE_BYTES..=MAX_LINE_BYTES).contains(&logs.max_line_bytes) {
            v.push(issue(
                "collectors.logs.max_line_bytes",
                format!("{} is out of range", logs.max_line_bytes),
                Some("a whole number of bytes from 256 to 67108864 (64 MiB)"),
            ));
        }
        if !(1..=MAX_OPEN_FILES).contains(&logs.max_open_files) {
            v.push(issue(
                "collectors.logs.max_open_files",
                format!("{} is out of range", logs.max_open_files),
                Some("a whole number from 1 to 65536"),
            ));
        }
        if logs.attributes.keys().any(|k| k.trim().is_empty()) {
            v.push(issue(
                "collectors.logs.attributes",
                "attribute names must not be empty",
                Some("non-empty attribute names"),
            ));
        }
    }
}

/// One issue per pattern that does not compile, under its key.
fn regex_issues<'a>(
    v: &mut Vec<Issue>,
    keys: impl IntoIterator<Item = (&'static str, &'a [String])>,
) {
    for (path, patterns) in keys {
        for p in patterns {
            if let Some(why) = regex_problem(p) {
                v.push(issue(
                    path,
                    format!("`{p}` is not a valid regular expression ({why})"),
                    Some(REGEX_ALLOWED),
                ));
            }
        }
    }
}

/// What a regex key accepts (logs and process filters).
const REGEX_ALLOWED: &str =
    "a regular expression (Rust regex syntax, unanchored), e.g. ^\\d{4}-\\d{2}-\\d{2}";

/// Bounds of `collectors.logs.max_line_bytes`.
pub const MIN_LINE_BYTES: usize = 256;
pub const MAX_LINE_BYTES: usize = 64 << 20;
/// Upper bound of `collectors.logs.max_open_files`.
pub const MAX_OPEN_FILES: usize = 65536;

const GLOB_ALLOWED: &str = "an absolute glob pattern: `*` and `?` within a name, `[a-z]` or `[!a-z]` classes, `{a,b}` alternatives, `**` for any number of directories, `\\` escapes, e.g. /var/log/pods/*/*/*.log";

/// The first line of a regex compile error, or `None` when the pattern compiles.
fn regex_problem(pattern: &str) -> Option<String> {
    let e = regex::Regex::new(pattern).err()?.to_string();
    Some(e.lines().last().unwrap_or("invalid").trim().to_string())
}

/// What is wrong with a glob pattern's syntax, if anything (same syntax as `tfo-logs`).
fn glob_problem(pattern: &str) -> Option<String> {
    if pattern.is_empty() {
        return Some("is empty".to_string());
    }
    let bytes = pattern.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'[' => {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'!' || bytes[j] == b'^') {
                    j += 1;
                }
                // a `]` right after the opening bracket is a member, not the end
                if j < bytes.len() && bytes[j] == b']' {
                    j += 1;
                }
                while j < bytes.len() && bytes[j] != b']' {
                    if bytes[j] == b'/' {
                        return Some(format!("has a `/` inside the class at byte {}", i + 1));
                    }
                    j += 1;
                }
                if j >= bytes.len() {
                    return Some(format!("has an unclosed `[` at byte {}", i + 1));
                }
                i = j;
            }
            b'{' => depth += 1,
            b'}' => {
                if depth == 0 {
                    return Some(format!("has a `}}` without `{{` at byte {}", i + 1));
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    if depth > 0 {
        return Some("has an unclosed `{`".to_string());
    }
    None
}

fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Why a `collectors.ebpf.hubble.address` cannot work, if it cannot.
fn hubble_address_problem(address: &str, tls: bool) -> Option<String> {
    if let Some(rest) = address.strip_prefix("unix:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        if !path.starts_with('/') {
            return Some(format!("{address:?}: the socket path must be absolute"));
        }
        if tls {
            return Some("TLS is enabled (collectors.ebpf.hubble.tls.enabled) but the address is a Unix socket, which Hubble serves without TLS".to_string());
        }
        return None;
    }
    let rest = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address)
        .trim_end_matches('/');
    let bad = || Some(format!("{address:?} is neither unix:///path nor host:port"));
    if rest.is_empty() || rest.contains('/') {
        return bad();
    }
    let port = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, after)) if !h.is_empty() => after.strip_prefix(':'),
            _ => return bad(),
        }
    } else {
        match rest.rsplit_once(':') {
            Some(("", _)) => return bad(),
            Some((_, p)) => Some(p),
            None => None,
        }
    };
    match port.map(str::parse::<u16>) {
        Some(Err(_)) => bad(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_syntax() {
        assert_eq!(glob_problem("/var/log/*.log"), None);
        assert_eq!(glob_problem("/var/log/{a,b}/[!x]?.log"), None);
        assert_eq!(glob_problem("/a/[]x]"), None);
        assert!(glob_problem("/a/[x").unwrap().contains("unclosed `[`"));
        assert!(glob_problem("/a/{x").unwrap().contains("unclosed `{`"));
        assert!(glob_problem("/a/x}").unwrap().contains("without"));
        assert!(glob_problem("/a/[x/y]").unwrap().contains("`/`"));
        assert_eq!(glob_problem("/a/\\[x"), None);
    }

    #[test]
    fn defaults_are_valid_and_quiet() {
        let c = Config::default();
        assert_eq!(c.issues(), []);
        assert!(c.validate().is_ok());
        assert!(c.warnings().is_empty());
    }
}
