//! A core/v1 Event, slimmed: the fields an exported log record, the event metrics and the
//! de-duplicator read. Deserialised straight from API JSON; unknown fields (managedFields,
//! related, reportingInstance, ...) are skipped, and `null` reads as absent.
//!
//! Times are kept as nanoseconds since the Unix epoch (`i64`), parsed from RFC 3339 here,
//! so the model needs no date library. A time that does not parse reads as absent rather
//! than failing the whole event: one bad field must not hide the event.

use serde::{Deserialize, Deserializer};

/// Nanoseconds since the Unix epoch.
pub type UnixNanos = i64;

/// The object metadata of an Event.
///
/// Local to the event model for now; the store's common metadata type may replace it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMeta {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
    #[serde(default, deserialize_with = "nullable")]
    pub resource_version: String,
    #[serde(default, deserialize_with = "time")]
    pub creation_timestamp: Option<UnixNanos>,
}

/// `involvedObject`: what the event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvolvedObject {
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub namespace: String,
    #[serde(default, deserialize_with = "nullable")]
    pub uid: String,
    #[serde(default, deserialize_with = "nullable")]
    pub api_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub field_path: String,
    #[serde(default, deserialize_with = "nullable")]
    pub resource_version: String,
}

/// `series`: set by the events.k8s.io recorder for an event repeated in a series; its
/// count and time then supersede the deprecated top-level `count` and `lastTimestamp`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSeries {
    #[serde(default, deserialize_with = "nullable")]
    pub count: i32,
    #[serde(default, deserialize_with = "time")]
    pub last_observed_time: Option<UnixNanos>,
}

/// `source`: the component (and node) that reported the event (legacy recorders).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct EventSource {
    #[serde(default, deserialize_with = "nullable")]
    pub component: String,
    #[serde(default, deserialize_with = "nullable")]
    pub host: String,
}

/// A core/v1 Event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: EventMeta,
    #[serde(default, deserialize_with = "nullable")]
    pub involved_object: InvolvedObject,
    #[serde(default, deserialize_with = "nullable")]
    pub reason: String,
    #[serde(default, deserialize_with = "nullable")]
    pub message: String,
    /// `Normal`, `Warning`, or anything a custom recorder wrote (kept as given).
    #[serde(rename = "type", default, deserialize_with = "nullable")]
    pub type_: String,
    /// The deprecated occurrence count (0 when absent).
    #[serde(default, deserialize_with = "nullable")]
    pub count: i32,
    #[serde(default, deserialize_with = "time")]
    pub first_timestamp: Option<UnixNanos>,
    #[serde(default, deserialize_with = "time")]
    pub last_timestamp: Option<UnixNanos>,
    #[serde(default, deserialize_with = "time")]
    pub event_time: Option<UnixNanos>,
    #[serde(default)]
    pub series: Option<EventSeries>,
    #[serde(default, deserialize_with = "nullable")]
    pub source: EventSource,
    #[serde(default, deserialize_with = "nullable")]
    pub reporting_component: String,
    #[serde(default, deserialize_with = "nullable")]
    pub action: String,
}

/// The type of an event as the severity mapping sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
    /// Any other value, including empty: the text is kept in [`Event::type_`].
    Other,
}

impl Event {
    /// When the event was last seen: the newest of the times a recorder may have set, in the
    /// order the API's own tooling prefers them (series, legacy lastTimestamp, eventTime,
    /// then the object's creation).
    pub fn last_seen(&self) -> Option<UnixNanos> {
        self.series
            .as_ref()
            .and_then(|s| s.last_observed_time)
            .or(self.last_timestamp)
            .or(self.event_time)
            .or(self.metadata.creation_timestamp)
    }

    /// When the event was first seen (`k8s.event.start_time`): firstTimestamp, eventTime,
    /// then creation.
    pub fn first_seen(&self) -> Option<UnixNanos> {
        self.first_timestamp
            .or(self.event_time)
            .or(self.metadata.creation_timestamp)
    }

    /// How many times the event occurred: series count, legacy count, or 1 (an event that
    /// exists happened at least once).
    pub fn occurrences(&self) -> u32 {
        let series = self.series.as_ref().map(|s| s.count).unwrap_or(0);
        let n = if series > 0 { series } else { self.count };
        u32::try_from(n).unwrap_or(0).max(1)
    }

    pub fn event_type(&self) -> EventType {
        match self.type_.as_str() {
            "Normal" => EventType::Normal,
            "Warning" => EventType::Warning,
            _ => EventType::Other,
        }
    }

    /// The reporting component: `reportingComponent` (events.k8s.io recorders) or the legacy
    /// `source.component`.
    pub fn reporter(&self) -> &str {
        if self.reporting_component.is_empty() {
            &self.source.component
        } else {
            &self.reporting_component
        }
    }
}

/// `null` reads as the type's default: the API server writes `null` for unset fields in
/// some versions (`"eventTime": null`), which serde's `default` alone would reject.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// An RFC 3339 time; absent, `null` or malformed read as `None`.
fn time<'de, D>(d: D) -> Result<Option<UnixNanos>, D::Error>
where
    D: Deserializer<'de>,
{
    // Borrowed when the input allows it: times are short and never escaped.
    let s: Option<std::borrow::Cow<'de, str>> = Option::deserialize(d)?;
    Ok(s.and_then(|s| parse_rfc3339(&s)))
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` into Unix nanoseconds. The API server
/// writes `Time` with second precision and `MicroTime` with six digits, both in UTC; offsets
/// are accepted for hand-written objects.
pub fn parse_rfc3339(s: &str) -> Option<UnixNanos> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + i64::from(c - b'0');
        }
        Some(v)
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 {
        return None;
    }
    // 60 is a leap second; it folds into the next second as Go's parser does.
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 9 {
                nanos = nanos * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..9 {
            nanos *= 10;
        }
    }
    let offset_s = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        c @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let o = oh * 3600 + om * 60;
            if *c == b'+' { o } else { -o }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_s;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = r#"{
      "apiVersion": "v1", "kind": "Event",
      "metadata": {"name": "web-1.17a2b", "namespace": "shop", "uid": "e-1",
        "resourceVersion": "812", "creationTimestamp": "2024-03-01T10:00:00Z",
        "managedFields": [{"manager": "kubelet", "operation": "Update"}]},
      "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "p-1",
        "apiVersion": "v1", "resourceVersion": "700", "fieldPath": "spec.containers{app}"},
      "reason": "BackOff", "message": "Back-off restarting failed container",
      "source": {"component": "kubelet", "host": "node-a"},
      "firstTimestamp": "2024-03-01T10:00:00Z", "lastTimestamp": "2024-03-01T10:05:00Z",
      "count": 7, "type": "Warning", "eventTime": null,
      "reportingComponent": "", "reportingInstance": "", "action": null
    }"#;

    const SERIES: &str = r#"{
      "metadata": {"name": "x.1", "namespace": "kube-system", "uid": "e-2",
        "creationTimestamp": "2024-03-01T09:00:00Z"},
      "involvedObject": {"kind": "Node", "name": "node-b"},
      "reason": "Rebooted", "type": "Normal", "action": "Reboot",
      "eventTime": "2024-03-01T09:00:00.123456Z",
      "series": {"count": 4, "lastObservedTime": "2024-03-01T09:30:00.500000Z"},
      "reportingComponent": "node-controller", "firstTimestamp": null,
      "lastTimestamp": null, "count": null, "source": null
    }"#;

    #[test]
    fn legacy_event() {
        let e: Event = serde_json::from_str(LEGACY).unwrap();
        assert_eq!(e.metadata.name, "web-1.17a2b");
        assert_eq!(e.metadata.uid, "e-1");
        assert_eq!(e.metadata.resource_version, "812");
        assert_eq!(e.involved_object.kind, "Pod");
        assert_eq!(e.involved_object.field_path, "spec.containers{app}");
        assert_eq!(e.event_type(), EventType::Warning);
        assert_eq!(e.occurrences(), 7);
        assert_eq!(e.last_seen(), Some(1_709_287_500_000_000_000));
        assert_eq!(e.first_seen(), Some(1_709_287_200_000_000_000));
        assert_eq!(e.reporter(), "kubelet");
        assert_eq!(e.source.host, "node-a");
        assert_eq!(e.action, "");
    }

    #[test]
    fn series_event() {
        let e: Event = serde_json::from_str(SERIES).unwrap();
        assert_eq!(e.occurrences(), 4);
        assert_eq!(e.last_seen(), Some(1_709_285_400_500_000_000));
        assert_eq!(e.first_seen(), Some(1_709_283_600_123_456_000));
        assert_eq!(e.reporter(), "node-controller");
        assert_eq!(e.event_type(), EventType::Normal);
        assert_eq!(e.action, "Reboot");
    }

    #[test]
    fn minimal_and_odd_events() {
        let e: Event = serde_json::from_str("{}").unwrap();
        assert_eq!(e.occurrences(), 1);
        assert_eq!(e.last_seen(), None);
        let e: Event = serde_json::from_str(
            r#"{"type": "Error", "count": -3, "lastTimestamp": "yesterday",
                "metadata": {"creationTimestamp": "2024-03-01T10:00:00Z"}}"#,
        )
        .unwrap();
        assert_eq!(e.event_type(), EventType::Other);
        assert_eq!(e.type_, "Error");
        assert_eq!(e.occurrences(), 1);
        // The malformed lastTimestamp falls back to creation.
        assert_eq!(e.last_seen(), Some(1_709_287_200_000_000_000));
        assert!(serde_json::from_str::<Event>(r#"{"count": "many"}"#).is_err());
    }

    #[test]
    fn rfc3339() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(
            parse_rfc3339("2000-02-29T12:00:00+02:00"),
            Some(951_818_400_000_000_000)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T10:05:00.123456789123Z"),
            Some(1_709_287_500_123_456_789)
        );
        for bad in [
            "",
            "2024-03-01",
            "2024-13-01T00:00:00Z",
            "2024-03-01T00:00:00",
            "2024-03-01T00:00:00.Z",
            "2024-03-01T00:00:00Zjunk",
            "2024-03-01T25:00:00Z",
            "2024-03-01T00:00:00+2:00",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
