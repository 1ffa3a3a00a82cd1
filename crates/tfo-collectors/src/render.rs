//! A deterministic text rendering of OTLP metrics, one line per data point:
//!
//! ```text
//! system.cpu.time{cpu="cpu0",state="idle"} counter s 215.98
//! ```
//!
//! Attributes are sorted by key, values are Rust-debug-quoted (so spaces and escapes stay
//! unambiguous), and lines are sorted. Used by golden tests and handy for dumping a cycle.
//! Timestamps are deliberately left out: they are checked separately.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};
use std::fmt::Write as _;

/// Renders the metrics as sorted lines `name{k="v",...} kind unit value`, each ending in `\n`.
pub fn render_text(metrics: &[Metric]) -> String {
    let mut lines = Vec::new();
    for m in metrics {
        let (kind, points): (&str, &[NumberDataPoint]) = match &m.data {
            Some(metric::Data::Gauge(g)) => ("gauge", &g.data_points),
            Some(metric::Data::Sum(s)) if s.is_monotonic => ("counter", &s.data_points),
            Some(metric::Data::Sum(s)) => ("updowncounter", &s.data_points),
            Some(metric::Data::Histogram(_)) => ("histogram", &[]),
            Some(metric::Data::ExponentialHistogram(_)) => ("exponential_histogram", &[]),
            Some(metric::Data::Summary(_)) => ("summary", &[]),
            None => ("none", &[]),
        };
        if points.is_empty() {
            lines.push(format!(
                "{}{{}} {} {} <no number points>",
                m.name, kind, m.unit
            ));
        }
        for p in points {
            let mut line = String::new();
            line.push_str(&m.name);
            line.push('{');
            let mut attrs: Vec<&KeyValue> = p.attributes.iter().collect();
            attrs.sort_by(|a, b| a.key.cmp(&b.key));
            for (i, kv) in attrs.iter().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                let _ = write!(line, "{}={}", kv.key, render_any(kv.value.as_ref()));
            }
            let _ = write!(line, "}} {} {} ", kind, m.unit);
            match p.value {
                Some(number_data_point::Value::AsInt(v)) => {
                    let _ = write!(line, "{v}");
                }
                Some(number_data_point::Value::AsDouble(v)) => {
                    let _ = write!(line, "{v:?}");
                }
                None => line.push_str("<none>"),
            }
            lines.push(line);
        }
    }
    lines.sort();
    let mut s = String::new();
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

fn render_any(v: Option<&AnyValue>) -> String {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => format!("{s:?}"),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => format!("{d:?}"),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(other) => format!("{other:?}"),
        None => "<none>".to_string(),
    }
}
