//! Kubernetes Events: each exported event becomes an OTLP log record, and the "Events"
//! metric category counts them.
//!
//! ## Log records
//!
//! Names follow the OpenTelemetry Collector's `k8s_events` receiver, so queries written for
//! it keep working: the involved object goes into the resource (`k8s.object.kind`,
//! `k8s.object.name`, `k8s.object.uid`, `k8s.object.api_version`, `k8s.object.fieldpath`,
//! `k8s.object.resource_version`, plus `k8s.namespace.name`), the event into the record's
//! attributes (`k8s.event.reason`, `k8s.event.action`, `k8s.event.name`, `k8s.event.uid`,
//! `k8s.event.start_time`, `k8s.event.count`, `k8s.namespace.name`). Severity comes from the
//! type: Normal is INFO (9), Warning is WARN (13), anything else UNSPECIFIED with the type
//! kept as `severity_text`. The record's time is when the event was last seen; its
//! observed time is when the agent exported it.
//!
//! Differences from the receiver: empty strings are left out rather than sent as `""`, and
//! `k8s.node.name` (the reporting node, `source.host`) is not set on the resource because
//! the agent puts its *own* node name there on every signal.
//!
//! ## Metrics
//!
//! Five cumulative counters, fed with every exported event and starting when the agent
//! began exporting events (it does so only while it holds the Lease). Counting exported
//! records means a repeated event (its count went up) counts once per new record, and
//! nothing counts twice across relists or leader changes. kube-state-metrics has no event
//! metrics, so no row has a Prometheus equivalent. Each attribute set is bounded
//! ([`MAX_SERIES`] per metric); beyond it, new combinations are counted under the value
//! `_other` so a storm of unique reasons cannot grow memory without bound.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::Metric;
use tfo_kube::model::event::{Event, EventType, UnixNanos};

use crate::Ctx;
use crate::otlp::attr;
use crate::table::{MetricDef, Val};

/// An integer counter of events (every row of this table).
const fn counter(
    name: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    crate::table::counter_i(name, "{event}", attributes, help, source)
}

pub const METRICS: &[MetricDef] = &[
    counter(
        "k8s.event.count",
        &["k8s.event.reason", "k8s.event.type"],
        "Kubernetes events exported (one per new occurrence), by reason and type.",
        "core/v1 Event reason, type",
    ),
    counter(
        "k8s.event.warnings",
        &["k8s.object.kind"],
        "Warning events exported, by the kind of the object they are about.",
        "core/v1 Event type=Warning, involvedObject.kind",
    ),
    counter(
        "k8s.event.namespace.count",
        &["k8s.namespace.name", "k8s.event.type"],
        "Kubernetes events exported, by namespace and type.",
        "core/v1 Event metadata.namespace, type",
    ),
    counter(
        "k8s.event.reporter.count",
        &["k8s.event.reporting_component", "k8s.event.type"],
        "Kubernetes events exported, by the component that reported them.",
        "core/v1 Event reportingComponent (or source.component), type",
    ),
    counter(
        "k8s.event.repeated",
        &["k8s.event.reason"],
        "Exported events that were repeats of an earlier occurrence (count above 1), by reason.",
        "core/v1 Event series.count or count > 1, reason",
    ),
];

/// Most attribute sets kept per metric.
pub const MAX_SERIES: usize = 1000;

/// The value attribute sets past [`MAX_SERIES`] are counted under.
const OTHER: &str = "_other";

/// The OTLP severity of an event type.
pub fn severity(e: &Event) -> SeverityNumber {
    match e.event_type() {
        EventType::Normal => SeverityNumber::Info,
        EventType::Warning => SeverityNumber::Warn,
        EventType::Other => SeverityNumber::Unspecified,
    }
}

fn nanos(t: Option<UnixNanos>) -> u64 {
    t.and_then(|t| u64::try_from(t).ok()).unwrap_or(0)
}

fn push_str(out: &mut Vec<KeyValue>, key: &str, value: &str) {
    if !value.is_empty() {
        out.push(attr(key, value));
    }
}

/// An event as (resource attributes, log record); `now_ns` is the observed time.
pub fn log_record(e: &Event, now_ns: u64) -> (Vec<KeyValue>, LogRecord) {
    let o = &e.involved_object;
    let mut resource = Vec::with_capacity(7);
    push_str(&mut resource, "k8s.object.kind", &o.kind);
    push_str(&mut resource, "k8s.object.name", &o.name);
    push_str(&mut resource, "k8s.object.uid", &o.uid);
    push_str(&mut resource, "k8s.object.api_version", &o.api_version);
    push_str(&mut resource, "k8s.object.fieldpath", &o.field_path);
    push_str(
        &mut resource,
        "k8s.object.resource_version",
        &o.resource_version,
    );
    let ns = if o.namespace.is_empty() {
        &e.metadata.namespace
    } else {
        &o.namespace
    };
    push_str(&mut resource, "k8s.namespace.name", ns);

    let mut attributes = Vec::with_capacity(7);
    push_str(&mut attributes, "k8s.event.reason", &e.reason);
    push_str(&mut attributes, "k8s.event.action", &e.action);
    push_str(&mut attributes, "k8s.event.name", &e.metadata.name);
    push_str(&mut attributes, "k8s.event.uid", &e.metadata.uid);
    if let Some(t) = e.metadata.creation_timestamp.or_else(|| e.first_seen()) {
        attributes.push(attr("k8s.event.start_time", format_rfc3339(t)));
    }
    attributes.push(KeyValue {
        key: "k8s.event.count".to_string(),
        key_strindex: 0,
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(i64::from(e.occurrences()))),
        }),
    });
    push_str(&mut attributes, "k8s.namespace.name", &e.metadata.namespace);

    let record = LogRecord {
        time_unix_nano: nanos(e.last_seen()),
        observed_time_unix_nano: now_ns,
        severity_number: severity(e) as i32,
        severity_text: e.type_.clone(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(e.message.clone())),
        }),
        attributes,
        ..LogRecord::default()
    };
    (resource, record)
}

/// `YYYY-MM-DDTHH:MM:SSZ` (seconds; sub-second digits only when present).
fn format_rfc3339(t: UnixNanos) -> String {
    let secs = t.div_euclid(1_000_000_000);
    let frac = t.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if frac == 0 {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    } else {
        let f = format!("{frac:09}");
        let f = f.trim_end_matches('0');
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f}Z")
    }
}

/// One counter's values by attribute values (in [`MetricDef::attributes`] order).
#[derive(Debug, Default)]
struct Series(BTreeMap<Vec<String>, u64>);

impl Series {
    // Events arrive at a few per second at most; one small key allocation each is cheap.
    fn add(&mut self, key: &[&str]) {
        let mut key: Vec<String> = key.iter().map(|s| s.to_string()).collect();
        if self.0.len() >= MAX_SERIES && !self.0.contains_key(&key) {
            key.iter_mut().for_each(|k| *k = OTHER.to_string());
        }
        *self.0.entry(key).or_insert(0) += 1;
    }
}

/// The Events category's counters.
#[derive(Debug)]
pub struct EventMetrics {
    /// When counting began: `start_time_unix_nano` of every point.
    start_ns: u64,
    series: [Series; 5],
}

impl EventMetrics {
    pub fn new(start_ns: u64) -> EventMetrics {
        EventMetrics {
            start_ns,
            series: Default::default(),
        }
    }

    /// Counts one exported event.
    pub fn record(&mut self, e: &Event) {
        let ty = e.type_.as_str();
        self.series[0].add(&[&e.reason, ty]);
        if e.event_type() == EventType::Warning {
            self.series[1].add(&[&e.involved_object.kind]);
        }
        self.series[2].add(&[&e.metadata.namespace, ty]);
        self.series[3].add(&[e.reporter(), ty]);
        if e.occurrences() > 1 {
            self.series[4].add(&[&e.reason]);
        }
    }

    /// The counters as one resource group (cluster-level: no object attributes; the
    /// agent adds `k8s.cluster.name`). Empty when no event was recorded yet.
    pub fn collect(&self, now_ns: u64) -> Vec<(Vec<KeyValue>, Vec<Metric>)> {
        let ctx = Ctx {
            now_ns,
            boot_ns: self.start_ns,
        };
        let mut metrics = Vec::new();
        for (def, series) in METRICS.iter().zip(&self.series) {
            let points = series
                .0
                .iter()
                .map(|(values, n)| {
                    let attrs = def
                        .attributes
                        .iter()
                        .zip(values)
                        .map(|(k, v)| attr(k, v.as_str()))
                        .collect();
                    def.point(attrs, Val::U(*n), &ctx)
                })
                .collect();
            def.push(points, &mut metrics);
        }
        if metrics.is_empty() {
            Vec::new()
        } else {
            vec![(Vec::new(), metrics)]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{metric, number_data_point};

    fn event(json: &str) -> Event {
        serde_json::from_str(json).unwrap()
    }

    const WARNING: &str = r#"{
      "metadata": {"name": "web-1.17a2b", "namespace": "shop", "uid": "e-1",
        "creationTimestamp": "2024-03-01T10:00:00Z"},
      "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "p-1",
        "apiVersion": "v1", "resourceVersion": "700", "fieldPath": "spec.containers{app}"},
      "reason": "BackOff", "message": "Back-off restarting failed container",
      "source": {"component": "kubelet", "host": "node-a"},
      "firstTimestamp": "2024-03-01T10:00:00Z", "lastTimestamp": "2024-03-01T10:05:00Z",
      "count": 7, "type": "Warning"
    }"#;

    fn get<'a>(kv: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        kv.iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.as_ref()?.value.as_ref())
    }

    fn s(v: &str) -> Option<any_value::Value> {
        Some(any_value::Value::StringValue(v.to_string()))
    }

    #[test]
    fn warning_event_to_log_record() {
        let (res, rec) = log_record(&event(WARNING), 42);
        assert_eq!(get(&res, "k8s.object.kind").cloned(), s("Pod"));
        assert_eq!(get(&res, "k8s.object.name").cloned(), s("web-1"));
        assert_eq!(get(&res, "k8s.object.uid").cloned(), s("p-1"));
        assert_eq!(get(&res, "k8s.object.api_version").cloned(), s("v1"));
        assert_eq!(
            get(&res, "k8s.object.fieldpath").cloned(),
            s("spec.containers{app}")
        );
        assert_eq!(get(&res, "k8s.namespace.name").cloned(), s("shop"));
        assert_eq!(rec.severity_number, SeverityNumber::Warn as i32);
        assert_eq!(rec.severity_text, "Warning");
        assert_eq!(rec.time_unix_nano, 1_709_287_500_000_000_000);
        assert_eq!(rec.observed_time_unix_nano, 42);
        assert_eq!(
            rec.body.and_then(|b| b.value),
            s("Back-off restarting failed container")
        );
        let a = &rec.attributes;
        assert_eq!(get(a, "k8s.event.reason").cloned(), s("BackOff"));
        assert_eq!(get(a, "k8s.event.name").cloned(), s("web-1.17a2b"));
        assert_eq!(get(a, "k8s.event.uid").cloned(), s("e-1"));
        assert_eq!(
            get(a, "k8s.event.start_time").cloned(),
            s("2024-03-01T10:00:00Z")
        );
        assert_eq!(
            get(a, "k8s.event.count").cloned(),
            Some(any_value::Value::IntValue(7))
        );
        // No action: left out rather than "".
        assert_eq!(get(a, "k8s.event.action"), None);
    }

    #[test]
    fn severity_by_type() {
        let normal = event(r#"{"type": "Normal", "message": "ok"}"#);
        assert_eq!(log_record(&normal, 0).1.severity_number, 9);
        let odd = event(r#"{"type": "Error"}"#);
        let (_, rec) = log_record(&odd, 0);
        assert_eq!(rec.severity_number, 0);
        assert_eq!(rec.severity_text, "Error");
        assert_eq!(rec.time_unix_nano, 0, "no time known");
    }

    #[test]
    fn rfc3339_format() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(951_818_400_123_000_000),
            "2000-02-29T10:00:00.123Z"
        );
        let t = 1_709_287_500_000_000_000;
        assert_eq!(
            tfo_kube::model::event::parse_rfc3339(&format_rfc3339(t)),
            Some(t)
        );
    }

    const START: u64 = 5;

    fn points(m: &Metric) -> Vec<(Vec<String>, i64)> {
        let Some(metric::Data::Sum(sum)) = &m.data else {
            panic!("{} is not a sum", m.name)
        };
        assert!(sum.is_monotonic);
        sum.data_points
            .iter()
            .map(|p| {
                let attrs = p
                    .attributes
                    .iter()
                    .map(
                        |kv| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                            Some(any_value::Value::StringValue(s)) => s.clone(),
                            other => panic!("{other:?}"),
                        },
                    )
                    .collect();
                let v = match p.value {
                    Some(number_data_point::Value::AsInt(v)) => v,
                    other => panic!("{other:?}"),
                };
                assert_eq!(p.start_time_unix_nano, START);
                (attrs, v)
            })
            .collect()
    }

    #[test]
    fn metrics_count_exported_events() {
        assert_eq!(METRICS.len(), 5);
        let mut m = EventMetrics::new(START);
        assert!(m.collect(10).is_empty());
        let w = event(WARNING);
        let n = event(
            r#"{"metadata": {"namespace": "shop"}, "reason": "Pulled", "type": "Normal",
                "involvedObject": {"kind": "Pod"}, "reportingComponent": "kubelet"}"#,
        );
        m.record(&w);
        m.record(&w);
        m.record(&n);
        let groups = m.collect(10);
        assert_eq!(groups.len(), 1);
        assert!(groups[0].0.is_empty());
        let metrics = &groups[0].1;
        let by_name = |name: &str| points(metrics.iter().find(|m| m.name == name).unwrap());
        let v = |a: &[&str], n: i64| (a.iter().map(|s| s.to_string()).collect::<Vec<_>>(), n);
        assert_eq!(
            by_name("k8s.event.count"),
            [v(&["BackOff", "Warning"], 2), v(&["Pulled", "Normal"], 1)]
        );
        assert_eq!(by_name("k8s.event.warnings"), [v(&["Pod"], 2)]);
        assert_eq!(
            by_name("k8s.event.namespace.count"),
            [v(&["shop", "Normal"], 1), v(&["shop", "Warning"], 2)]
        );
        assert_eq!(
            by_name("k8s.event.reporter.count"),
            [v(&["kubelet", "Normal"], 1), v(&["kubelet", "Warning"], 2)]
        );
        assert_eq!(by_name("k8s.event.repeated"), [v(&["BackOff"], 2)]);
    }

    #[test]
    fn series_are_bounded() {
        let mut m = EventMetrics::new(START);
        for i in 0..MAX_SERIES + 50 {
            m.record(&Event {
                reason: format!("R{i}"),
                type_: "Normal".into(),
                ..Event::default()
            });
        }
        let g = m.collect(1);
        let count = g[0].1.iter().find(|m| m.name == "k8s.event.count").unwrap();
        let pts = points(count);
        assert_eq!(pts.len(), MAX_SERIES + 1);
        assert!(pts.contains(&(vec![OTHER.to_string(), OTHER.to_string()], 50)));
    }
}
