//! What happened to one export request, classified as the OTLP specification and
//! docs/export.md says, so that the pipeline decides retry or drop in one place.
//!
//! Four classes, checked in this order:
//!
//! 1. [`FailureClass::Outage`]: no complete answer arrived (refused, reset, EOF, GOAWAY,
//!    RST_STREAM, timeouts), gRPC UNAVAILABLE or RESOURCE_EXHAUSTED with RetryInfo, HTTP
//!    429/502/503/504. Keep everything, pause, never burn the retry budget.
//! 2. [`FailureClass::Refused`]: the endpoint refuses this agent (credentials, wrong path,
//!    a redirect). Keep the backlog, retry slowly, tell the operator what to fix.
//! 3. [`FailureClass::Transient`]: the server says this request may succeed later.
//! 4. [`Outcome::TooLarge`]: the request is over the server's size limit (HTTP 413; gRPC
//!    RESOURCE_EXHAUSTED without RetryInfo whose message is a gRPC library's "message
//!    larger than max"). The caller splits the batch; a single record over the limit drops.
//! 5. [`Outcome::Permanent`]: anything else the server actually sent (bad payload).
//!
//! This module classifies statuses the server sent. Faults of the connection are
//! recognised by the transports (see `grpc.rs`, `http.rs`) before a status gets here.

use std::time::{Duration, SystemTime};

/// Longest wait a server can ask for, through `Retry-After` or gRPC `RetryInfo`. A longer
/// (or absurd, e.g. `Retry-After: 10000000000000000000`) hint is cut to this, so a
/// misconfigured collector cannot park the agent for days, and arithmetic on the hint
/// (`Instant + hint`) can never overflow.
pub const MAX_SERVER_DELAY: Duration = Duration::from_secs(5 * 60);

/// Caps a server's retry hint at [`MAX_SERVER_DELAY`].
pub fn cap_server_delay(d: Duration) -> Duration {
    d.min(MAX_SERVER_DELAY)
}

/// How a retryable failure is treated by the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The collector is unreachable or shedding load: no complete answer arrived
    /// (connection refused or reset, EOF, GOAWAY, RST_STREAM, timeouts, and the codes a
    /// client library invents for those), gRPC UNAVAILABLE, RESOURCE_EXHAUSTED with
    /// RetryInfo, HTTP 429/502/503/504. Sending pauses; the batch's retry budget is not
    /// consumed.
    Outage,
    /// The endpoint refuses this agent: HTTP 401, 403, 404, 407, any 3xx (redirects are
    /// never followed); gRPC UNAUTHENTICATED, PERMISSION_DENIED, UNIMPLEMENTED. Retrying
    /// soon will not help, dropping would lose data an operator can still rescue: keep the
    /// backlog, retry slowly and report it. The reason says what to fix.
    Refused,
    /// The request itself may succeed on a later try (server-sent CANCELLED,
    /// DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, DATA_LOSS). Consumes the batch's retry
    /// budget.
    Transient,
}

impl FailureClass {
    /// Lower-case name for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Outage => "outage",
            FailureClass::Refused => "refused",
            FailureClass::Transient => "retryable",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted. `rejected` items were refused by a partial success and must not be retried.
    Delivered { rejected: u64, message: String },
    /// Retry later; `retry_after` is the server's hint (Retry-After or RetryInfo), already
    /// capped at [`MAX_SERVER_DELAY`].
    Retry {
        class: FailureClass,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// The server refuses the request because of its size: send the records again in
    /// smaller requests; a request of one record that gets this is dropped (`too_large`).
    TooLarge { reason: String },
    /// Never retried: the data is dropped and counted as `rejected`.
    Permanent { reason: String },
}

impl Outcome {
    /// An outage: no complete answer arrived.
    pub fn connection_failure(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            class: FailureClass::Outage,
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// The failure class, `None` for delivered, too-large and permanent outcomes.
    pub fn class(&self) -> Option<FailureClass> {
        match self {
            Outcome::Retry { class, .. } => Some(*class),
            _ => None,
        }
    }
}

fn retry(class: FailureClass, reason: String, retry_after: Option<Duration>) -> Outcome {
    Outcome::Retry {
        class,
        reason,
        retry_after: retry_after.map(cap_server_delay),
    }
}

const FIX_KEYS: &str =
    "check telemetryflow.api_key_id / api_key_secret (and any credential in exporter.otlp.headers)";
const FIX_ENDPOINT: &str = "check telemetryflow.endpoint and exporter.otlp.endpoint_version";

/// Classifies a gRPC status code (numeric, as on the wire) that the server sent.
/// `retry_info` is the server's `RetryInfo.retry_delay`; it is capped here.
pub fn classify_grpc(code: i32, message: &str, retry_info: Option<Duration>) -> Outcome {
    use tonic::Code;
    let code = Code::from_i32(code);
    let reason = if message.is_empty() {
        format!("gRPC {code:?}")
    } else {
        format!("gRPC {code:?}: {message}")
    };
    match code {
        Code::Ok => Outcome::Delivered {
            rejected: 0,
            message: String::new(),
        },
        Code::Unavailable => retry(FailureClass::Outage, reason, retry_info),
        // The spec makes RESOURCE_EXHAUSTED retryable only when the server says when.
        Code::ResourceExhausted if retry_info.is_some() => {
            retry(FailureClass::Outage, reason, retry_info)
        }
        // A server's own message-size limit; no RetryInfo, so it would be permanent, but
        // the data is fine in smaller requests.
        Code::ResourceExhausted if is_message_size_limit(message) => Outcome::TooLarge {
            reason: format!("{reason} (the request is larger than the collector accepts)"),
        },
        Code::Unauthenticated => retry(
            FailureClass::Refused,
            format!("{reason} (the collector rejects the credentials; {FIX_KEYS})"),
            retry_info,
        ),
        Code::PermissionDenied => retry(
            FailureClass::Refused,
            format!("{reason} (the key may not send here; {FIX_KEYS})"),
            retry_info,
        ),
        Code::Unimplemented => retry(
            FailureClass::Refused,
            format!(
                "{reason} (no OTLP gRPC service at this address; check telemetryflow.endpoint \
                 and telemetryflow.protocol)"
            ),
            retry_info,
        ),
        // tonic's server-side limit (`max_decoding_message_size`) comes as OUT_OF_RANGE.
        Code::OutOfRange if is_message_size_limit(message) => Outcome::TooLarge {
            reason: format!("{reason} (the request is larger than the collector accepts)"),
        },
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::DataLoss => retry(FailureClass::Transient, reason, retry_info),
        _ => Outcome::Permanent { reason },
    }
}

/// Whether a RESOURCE_EXHAUSTED message is a gRPC server's receive-size limit, as the
/// gRPC libraries word it: grpc-go "grpc: received message larger than max (N vs. M)" (and
/// "... after decompression larger than max"), gRPC C core (Python, C++, Ruby) "Received
/// message larger than max (N vs. M)", grpc-java "gRPC message exceeds maximum size N: M"
/// (all RESOURCE_EXHAUSTED), and tonic "Error, decoded message length too large: found N
/// bytes, the limit is: M bytes" (OUT_OF_RANGE). Anything else (a quota, a rate limit)
/// stays what the OTLP specification says.
pub fn is_message_size_limit(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("received message") && m.contains("larger than max"))
        || m.contains("message exceeds maximum size")
        || m.contains("decoded message length too large")
}

/// Classifies an HTTP status that is not 2xx. `location` is the `Location` header of a
/// 3xx answer (never followed).
pub fn classify_http(
    status: u16,
    retry_after: Option<Duration>,
    location: Option<&str>,
    message: &str,
) -> Outcome {
    let reason = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    match status {
        429 | 502 | 503 | 504 => retry(FailureClass::Outage, reason, retry_after),
        413 => Outcome::TooLarge {
            reason: format!("{reason} (the request is larger than the collector accepts)"),
        },
        300..=399 => {
            let fix = match location.map(clean_location).filter(|l| !l.is_empty()) {
                Some(l) => format!(
                    "the collector redirects to {l}; set telemetryflow.endpoint to the final \
                     address (redirects are never followed)"
                ),
                None => "the collector answers with a redirect; set telemetryflow.endpoint to \
                         the final address (redirects are never followed)"
                    .to_string(),
            };
            retry(
                FailureClass::Refused,
                format!("HTTP {status} ({fix})"),
                retry_after,
            )
        }
        401 => retry(
            FailureClass::Refused,
            format!("{reason} (the collector rejects the credentials; {FIX_KEYS})"),
            retry_after,
        ),
        403 => retry(
            FailureClass::Refused,
            format!("{reason} (the key may not send here; {FIX_KEYS})"),
            retry_after,
        ),
        404 => retry(
            FailureClass::Refused,
            format!("{reason} (no OTLP receiver at this URL; {FIX_ENDPOINT})"),
            retry_after,
        ),
        407 => retry(
            FailureClass::Refused,
            format!(
                "{reason} (a proxy between the agent and the collector demands credentials; \
                 the agent never sends any: let it through or point telemetryflow.endpoint \
                 past the proxy)"
            ),
            retry_after,
        ),
        _ => Outcome::Permanent { reason },
    }
}

/// A `Location` value as shown in a reason: printable characters only, bounded.
fn clean_location(l: &str) -> String {
    const MAX: usize = 256;
    let mut s: String = l
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX)
        .collect();
    if l.trim().chars().count() > MAX {
        s.push('…');
    }
    s
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date. The result is capped at
/// [`MAX_SERVER_DELAY`]; a number too large for any integer type is the cap too.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match v.parse::<u64>() {
            Ok(secs) => cap_server_delay(Duration::from_secs(secs)),
            Err(_) => MAX_SERVER_DELAY,
        });
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(cap_server_delay(
        when.duration_since(now).unwrap_or(Duration::ZERO),
    ))
}

/// `RetryInfo.retry_delay` from a `google.rpc.Status` details blob (the
/// `grpc-status-details-bin` trailer), capped at [`MAX_SERVER_DELAY`]. Decoded here rather
/// than through `tonic_types::StatusExt`, whose conversion negates `seconds` and so
/// overflows (a panic in debug builds) on `i64::MIN`. Negative delays are zero.
pub fn retry_info_delay(details: &[u8]) -> Option<Duration> {
    use prost::Message;
    const RETRY_INFO: &str = "type.googleapis.com/google.rpc.RetryInfo";
    if details.is_empty() {
        return None;
    }
    let status = tonic_types::pb::Status::decode(details).ok()?;
    let any = status.details.iter().find(|a| a.type_url == RETRY_INFO)?;
    let info = tonic_types::pb::RetryInfo::decode(any.value.as_slice()).ok()?;
    let d = info.retry_delay.unwrap_or_default();
    if d.seconds < 0 || (d.seconds == 0 && d.nanos <= 0) {
        return Some(Duration::ZERO);
    }
    let secs = d.seconds as u64;
    if secs >= MAX_SERVER_DELAY.as_secs() {
        return Some(MAX_SERVER_DELAY);
    }
    // Non-canonical nanos (out of range or of the other sign) are ignored, not trusted.
    let nanos = if (0..1_000_000_000).contains(&d.nanos) {
        d.nanos as u32
    } else {
        0
    };
    Some(cap_server_delay(Duration::new(secs, nanos)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(o: &Outcome) -> Option<FailureClass> {
        o.class()
    }

    fn reason(o: &Outcome) -> &str {
        match o {
            Outcome::Retry { reason, .. }
            | Outcome::Permanent { reason }
            | Outcome::TooLarge { reason } => reason,
            Outcome::Delivered { message, .. } => message,
        }
    }

    #[test]
    fn size_limits_are_too_large_not_permanent() {
        use tonic::Code::*;
        let o = classify_http(413, None, None, "body too big");
        assert!(matches!(o, Outcome::TooLarge { .. }), "{o:?}");
        assert!(reason(&o).contains("HTTP 413: body too big"), "{o:?}");
        for msg in [
            "grpc: received message larger than max (5242880 vs. 4194304)",
            "grpc: received message after decompression larger than max (5242880 vs. 4194304)",
            "Received message larger than max (5242880 vs. 4194304)",
            "gRPC message exceeds maximum size 4194304: 5242880",
        ] {
            let o = classify_grpc(ResourceExhausted as i32, msg, None);
            assert!(matches!(o, Outcome::TooLarge { .. }), "{msg}: {o:?}");
            assert!(reason(&o).contains(msg), "{o:?}");
            // With RetryInfo the server says when: an outage, whatever the words.
            let o = classify_grpc(ResourceExhausted as i32, msg, Some(Duration::from_secs(1)));
            assert_eq!(o.class(), Some(FailureClass::Outage), "{o:?}");
        }
        // A quota or other exhaustion stays permanent (OTLP: no RetryInfo, no retry).
        for msg in [
            "",
            "quota exceeded",
            "too many requests: larger than max rate",
        ] {
            let o = classify_grpc(ResourceExhausted as i32, msg, None);
            assert!(matches!(o, Outcome::Permanent { .. }), "{msg}: {o:?}");
        }
        let tonic_limit = "Error, decoded message length too large: found 5242880 bytes, the limit is: 4194304 bytes";
        let o = classify_grpc(OutOfRange as i32, tonic_limit, None);
        assert!(matches!(o, Outcome::TooLarge { .. }), "{o:?}");
        assert_eq!(
            classify_grpc(OutOfRange as i32, "offset past the end", None).class(),
            Some(FailureClass::Transient)
        );
        // Another code with the same words is not a size limit.
        let o = classify_grpc(
            InvalidArgument as i32,
            "grpc: received message larger than max (5 vs. 4)",
            None,
        );
        assert!(matches!(o, Outcome::Permanent { .. }), "{o:?}");
    }

    #[test]
    fn grpc_outage_codes() {
        use tonic::Code::*;
        assert_eq!(
            class(&classify_grpc(Unavailable as i32, "", None)),
            Some(FailureClass::Outage)
        );
        let o = classify_grpc(
            ResourceExhausted as i32,
            "slow down",
            Some(Duration::from_secs(2)),
        );
        assert_eq!(
            o,
            Outcome::Retry {
                class: FailureClass::Outage,
                reason: "gRPC ResourceExhausted: slow down".into(),
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn grpc_refused_codes_name_the_fix() {
        use tonic::Code::*;
        for (c, fix) in [
            (Unauthenticated, "telemetryflow.api_key_id / api_key_secret"),
            (
                PermissionDenied,
                "telemetryflow.api_key_id / api_key_secret",
            ),
            (Unimplemented, "telemetryflow.endpoint"),
        ] {
            let o = classify_grpc(c as i32, "no", None);
            assert_eq!(class(&o), Some(FailureClass::Refused), "{c:?}");
            assert!(reason(&o).contains(fix), "{c:?}: {o:?}");
        }
    }

    #[test]
    fn grpc_transient_codes() {
        use tonic::Code::*;
        for c in [Cancelled, DeadlineExceeded, Aborted, OutOfRange, DataLoss] {
            assert_eq!(
                class(&classify_grpc(c as i32, "", None)),
                Some(FailureClass::Transient),
                "{c:?}"
            );
        }
    }

    #[test]
    fn grpc_everything_else_is_permanent() {
        use tonic::Code::*;
        for c in [
            InvalidArgument,
            NotFound,
            AlreadyExists,
            FailedPrecondition,
            Internal,
            Unknown,
        ] {
            assert!(
                matches!(classify_grpc(c as i32, "", None), Outcome::Permanent { .. }),
                "{c:?}"
            );
        }
        // Without RetryInfo the OTLP spec says RESOURCE_EXHAUSTED is not retryable.
        assert!(matches!(
            classify_grpc(ResourceExhausted as i32, "", None),
            Outcome::Permanent { .. }
        ));
        // An unknown numeric code is UNKNOWN.
        assert!(matches!(
            classify_grpc(99, "", None),
            Outcome::Permanent { .. }
        ));
        assert!(matches!(
            classify_grpc(Ok as i32, "", None),
            Outcome::Delivered { .. }
        ));
    }

    #[test]
    fn grpc_retry_info_is_capped() {
        let o = classify_grpc(
            tonic::Code::Unavailable as i32,
            "",
            Some(Duration::from_secs(u64::MAX)),
        );
        assert!(
            matches!(o, Outcome::Retry { retry_after: Some(d), .. } if d == MAX_SERVER_DELAY),
            "{o:?}"
        );
    }

    #[test]
    fn http_outage_statuses() {
        for s in [429, 502, 503, 504] {
            assert_eq!(
                class(&classify_http(s, None, None, "")),
                Some(FailureClass::Outage),
                "{s}"
            );
        }
    }

    #[test]
    fn http_refused_statuses_name_the_fix() {
        for (s, fix) in [
            (401, "telemetryflow.api_key_id / api_key_secret"),
            (403, "telemetryflow.api_key_id / api_key_secret"),
            (404, "exporter.otlp.endpoint_version"),
            (407, "proxy"),
            (300, "redirect"),
            (301, "redirect"),
            (302, "redirect"),
            (303, "redirect"),
            (304, "redirect"),
            (307, "redirect"),
            (308, "redirect"),
            (399, "redirect"),
        ] {
            let o = classify_http(s, None, None, "");
            assert_eq!(class(&o), Some(FailureClass::Refused), "{s}");
            assert!(reason(&o).contains(fix), "{s}: {o:?}");
        }
    }

    #[test]
    fn http_redirect_names_the_location() {
        let o = classify_http(307, None, Some("https://other.example:4318/v2/metrics"), "");
        assert_eq!(class(&o), Some(FailureClass::Refused));
        assert!(
            reason(&o).contains(
                "the collector redirects to https://other.example:4318/v2/metrics; set \
                 telemetryflow.endpoint to the final address (redirects are never followed)"
            ),
            "{o:?}"
        );
        let long = format!("http://x/{}\n", "a".repeat(5000));
        let o = classify_http(301, None, Some(&long), "");
        assert!(
            reason(&o).len() < 600 && !reason(&o).contains('\n'),
            "{o:?}"
        );
    }

    #[test]
    fn http_everything_else_is_permanent() {
        for s in [400, 402, 405, 406, 408, 409, 415, 500, 501, 505, 511, 599] {
            assert!(
                matches!(classify_http(s, None, None, ""), Outcome::Permanent { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn http_retry_after_is_capped() {
        let o = classify_http(503, Some(Duration::MAX), None, "");
        assert!(
            matches!(o, Outcome::Retry { retry_after: Some(d), .. } if d == MAX_SERVER_DELAY),
            "{o:?}"
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn huge_retry_after_is_capped_without_panic() {
        let now = SystemTime::now();
        for v in [
            "301",
            "10000000000000000000",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999999999999999999999999999",
        ] {
            assert_eq!(parse_retry_after(v, now), Some(MAX_SERVER_DELAY), "{v}");
        }
        let far =
            httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(253_402_300_799));
        assert_eq!(parse_retry_after(&far, now), Some(MAX_SERVER_DELAY));
    }

    /// A `google.rpc.Status` details blob with one `RetryInfo`, encoded by hand so that
    /// non-canonical durations (what a buggy server may send) can be built.
    fn details(seconds: i64, nanos: i32) -> Vec<u8> {
        use prost::encoding::{WireType, encode_key, encode_varint, int32, int64};
        let mut dur = Vec::new();
        int64::encode(1, &seconds, &mut dur);
        int32::encode(2, &nanos, &mut dur);
        let mut info = Vec::new();
        encode_key(1, WireType::LengthDelimited, &mut info);
        encode_varint(dur.len() as u64, &mut info);
        info.extend_from_slice(&dur);
        let mut any = Vec::new();
        prost::encoding::string::encode(
            1,
            &"type.googleapis.com/google.rpc.RetryInfo".to_string(),
            &mut any,
        );
        prost::encoding::bytes::encode(2, &info, &mut any);
        let mut status = Vec::new();
        int32::encode(1, &8, &mut status);
        encode_key(3, WireType::LengthDelimited, &mut status);
        encode_varint(any.len() as u64, &mut status);
        status.extend_from_slice(&any);
        status
    }

    #[test]
    fn retry_info_is_decoded_and_capped_without_panic() {
        assert_eq!(
            retry_info_delay(&details(2, 500_000_000)),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(retry_info_delay(&details(0, 0)), Some(Duration::ZERO));
        for (s, n) in [
            (i64::MAX, i32::MAX),
            (i64::MAX, 999_999_999),
            (315_576_000_000, 0),
            (300, 1),
        ] {
            assert_eq!(
                retry_info_delay(&details(s, n)),
                Some(MAX_SERVER_DELAY),
                "{s} {n}"
            );
        }
        for (s, n) in [
            (i64::MIN, 0),
            (i64::MIN, i32::MIN),
            (-1, 0),
            (0, -1),
            (0, i32::MIN),
        ] {
            assert_eq!(
                retry_info_delay(&details(s, n)),
                Some(Duration::ZERO),
                "{s} {n}"
            );
        }
        // Non-canonical nanos are ignored.
        assert_eq!(
            retry_info_delay(&details(1, i32::MAX)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_info_delay(&details(1, -5)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(retry_info_delay(b""), None);
        assert_eq!(retry_info_delay(b"\xff\xff garbage"), None);
    }
}
