//! What happened to one export request, classified as the OTLP specification and
//! docs/architecture.md and docs/export.md say, so that the pipeline decides retry or drop in one place.

use std::time::{Duration, SystemTime};

/// How a retryable failure is treated by the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// The collector is unreachable or shedding load (connection failures, UNAVAILABLE,
    /// RESOURCE_EXHAUSTED with RetryInfo, DEADLINE_EXCEEDED, HTTP 429/502/503/504).
    /// Sending pauses; the batch's retry budget is not consumed.
    Outage,
    /// The request itself may succeed on a later try (CANCELLED, ABORTED, OUT_OF_RANGE,
    /// DATA_LOSS). Consumes the batch's retry budget.
    Transient,
    /// The endpoint refuses this agent (credentials, path, redirect): keep the data and
    /// retry slowly until the operator fixes it.
    Refused,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Accepted. `rejected` items were refused by a partial success and must not be retried.
    Delivered { rejected: u64, message: String },
    /// Retry later; `retry_after` is the server's hint (Retry-After or RetryInfo).
    Retry {
        class: FailureClass,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Never retried: the data is dropped and counted as `rejected`.
    Permanent { reason: String },
}

impl Outcome {
    pub fn connection_failure(reason: impl Into<String>) -> Self {
        Outcome::Retry {
            class: FailureClass::Outage,
            reason: reason.into(),
            retry_after: None,
        }
    }
}

/// Classifies a gRPC status code (numeric, as on the wire).
pub fn classify_grpc(code: i32, message: &str, retry_info: Option<Duration>) -> Outcome {
    use tonic::Code;
    let code = Code::from_i32(code);
    let reason = if message.is_empty() {
        format!("gRPC {code:?}")
    } else {
        format!("gRPC {code:?}: {message}")
    };
    let retry = |class| Outcome::Retry {
        class,
        reason: reason.clone(),
        retry_after: retry_info,
    };
    match code {
        Code::Ok => Outcome::Delivered {
            rejected: 0,
            message: String::new(),
        },
        Code::Unavailable | Code::DeadlineExceeded => retry(FailureClass::Outage),
        // The spec makes RESOURCE_EXHAUSTED retryable only when the server says when.
        Code::ResourceExhausted if retry_info.is_some() => retry(FailureClass::Outage),
        Code::Cancelled | Code::Aborted | Code::OutOfRange | Code::DataLoss => {
            retry(FailureClass::Transient)
        }
        _ => Outcome::Permanent { reason },
    }
}

/// Classifies an HTTP status that is not 2xx.
pub fn classify_http(status: u16, retry_after: Option<Duration>, message: &str) -> Outcome {
    let reason = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    match status {
        429 | 502 | 503 | 504 => Outcome::Retry {
            class: FailureClass::Outage,
            reason,
            retry_after,
        },
        _ => Outcome::Permanent { reason },
    }
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(o: &Outcome) -> Option<FailureClass> {
        match o {
            Outcome::Retry { class, .. } => Some(*class),
            _ => None,
        }
    }

    #[test]
    fn grpc_codes_follow_the_spec() {
        use tonic::Code::*;
        for c in [Unavailable, DeadlineExceeded] {
            assert_eq!(
                class(&classify_grpc(c as i32, "", None)),
                Some(FailureClass::Outage)
            );
        }
        for c in [Cancelled, Aborted, OutOfRange, DataLoss] {
            assert_eq!(
                class(&classify_grpc(c as i32, "", None)),
                Some(FailureClass::Transient)
            );
        }
        for c in [
            InvalidArgument,
            Unauthenticated,
            PermissionDenied,
            NotFound,
            Internal,
            Unknown,
            Unimplemented,
        ] {
            assert!(
                matches!(classify_grpc(c as i32, "", None), Outcome::Permanent { .. }),
                "{c:?}"
            );
        }
        assert!(matches!(
            classify_grpc(ResourceExhausted as i32, "", None),
            Outcome::Permanent { .. }
        ));
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
    fn http_statuses_follow_the_spec() {
        for s in [429, 502, 503, 504] {
            assert_eq!(
                class(&classify_http(s, None, "")),
                Some(FailureClass::Outage)
            );
        }
        for s in [400, 401, 403, 404, 413, 500, 501] {
            assert!(
                matches!(classify_http(s, None, ""), Outcome::Permanent { .. }),
                "{s}"
            );
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
