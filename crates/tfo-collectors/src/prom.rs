//! Prometheus text exposition (format 0.0.4) of node metrics under node_exporter's own
//! names and labels, so dashboards and alerts written for node_exporter work unchanged.
//!
//! The names, types and label names come from the [`PromName`] of each metric table row
//! ([`crate::node::metric_tables`]); metrics without one (and non-node metrics) are left
//! out. Families are written in name order, each with one `# HELP` and one `# TYPE` line,
//! even when several OTLP metrics feed one family.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric, number_data_point};

use crate::table::{MetricDef, PromName};

/// OTLP name to table row, for every node metric with a node_exporter name.
fn rows() -> &'static HashMap<&'static str, &'static MetricDef> {
    static ROWS: OnceLock<HashMap<&'static str, &'static MetricDef>> = OnceLock::new();
    ROWS.get_or_init(|| {
        crate::node::metric_tables()
            .into_iter()
            .flat_map(|(_, table)| table.iter())
            .filter(|d| d.prom.is_some())
            .map(|d| (d.name, d))
            .collect()
    })
}

/// Appends the exposition of `metrics` to `out`. Metrics that are not node metrics with a
/// node_exporter equivalent are skipped, so the whole output of a cycle can be passed.
///
/// ```
/// let mut out = String::new();
/// tfo_collectors::render_node_exporter(&[], &mut out);
/// assert!(out.is_empty());
/// ```
pub fn render_node_exporter(metrics: &[Metric], out: &mut String) {
    let rows = rows();
    let mut families: Vec<(&PromName, &MetricDef, &Metric)> = metrics
        .iter()
        .filter_map(|m| {
            let def = *rows.get(m.name.as_str())?;
            Some((def.prom.as_ref()?, def, m))
        })
        .collect();
    families.sort_by(|a, b| a.0.name.cmp(b.0.name));

    let mut last: Option<&str> = None;
    for (prom, def, m) in families {
        if last != Some(prom.name) {
            out.push_str("# HELP ");
            out.push_str(prom.name);
            out.push(' ');
            escape_help(def.help, out);
            out.push_str("\n# TYPE ");
            out.push_str(prom.name);
            out.push(' ');
            out.push_str(prom.kind.as_str());
            out.push('\n');
            last = Some(prom.name);
        }
        for p in points(m) {
            sample(prom, def, p, out);
        }
    }
}

fn points(m: &Metric) -> &[NumberDataPoint] {
    match &m.data {
        Some(metric::Data::Gauge(g)) => &g.data_points,
        Some(metric::Data::Sum(s)) => &s.data_points,
        _ => &[],
    }
}

fn sample(prom: &PromName, def: &MetricDef, p: &NumberDataPoint, out: &mut String) {
    out.push_str(prom.name);
    let mut first = true;
    for kv in &p.attributes {
        // An attribute the table does not list has no node_exporter label: left out.
        let Some(label) = def
            .attributes
            .iter()
            .position(|a| *a == kv.key)
            .and_then(|i| prom.labels.get(i))
        else {
            continue;
        };
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(label);
        out.push_str("=\"");
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => escape_label(s, out),
            Some(any_value::Value::IntValue(i)) => {
                let _ = write!(out, "{i}");
            }
            Some(any_value::Value::BoolValue(b)) => {
                let _ = write!(out, "{b}");
            }
            Some(any_value::Value::DoubleValue(d)) => write_f64(*d, out),
            _ => {}
        }
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    match p.value {
        Some(number_data_point::Value::AsInt(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(number_data_point::Value::AsDouble(d)) => write_f64(d, out),
        None => out.push_str("NaN"),
    }
    out.push('\n');
}

/// Go's spelling of the special values; Rust's `Display` otherwise (never an exponent,
/// always parseable by Prometheus).
fn write_f64(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else {
        let _ = write!(out, "{v}");
    }
}

/// Label values escape backslash, double quote and newline.
fn escape_label(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes backslash and newline.
fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::{attr, gauge, point_f64, point_i64, sum};

    #[test]
    fn families_labels_and_escaping() {
        let ms = vec![
            sum(
                "node.cpu.time",
                "ignored",
                "s",
                true,
                vec![
                    point_f64(vec![attr("cpu", "0"), attr("mode", "idle")], 1, 2, 12.5),
                    point_f64(vec![attr("cpu", "1"), attr("mode", "user")], 1, 2, 3.0),
                ],
            ),
            gauge(
                "node.filesystem.size",
                "",
                "By",
                vec![point_i64(
                    vec![
                        attr("device", "/dev/sda1"),
                        attr("mountpoint", "/mnt/a \"b\"\\c\nd"),
                        attr("fstype", "ext4"),
                    ],
                    0,
                    2,
                    4096,
                )],
            ),
            gauge(
                "node.network.mtu",
                "",
                "By",
                vec![point_i64(vec![attr("interface", "eth0")], 0, 2, 1500)],
            ),
            // No node_exporter equivalent, and not a node metric: both skipped.
            gauge(
                "node.cpu.usage",
                "",
                "1",
                vec![point_f64(vec![], 0, 2, 0.5)],
            ),
            gauge("system.uptime", "", "s", vec![point_f64(vec![], 0, 2, 1.0)]),
            gauge(
                "node.load.1m",
                "",
                "{thread}",
                vec![point_f64(vec![], 0, 2, f64::NAN)],
            ),
        ];
        let mut out = String::new();
        render_node_exporter(&ms, &mut out);
        let want = "\
# HELP node_cpu_seconds_total Seconds each CPU spent in each mode (user, nice, system, idle, iowait, irq, softirq, steal); user and nice include guest time.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12.5
node_cpu_seconds_total{cpu=\"1\",mode=\"user\"} 3
# HELP node_filesystem_size_bytes Size of each filesystem.
# TYPE node_filesystem_size_bytes gauge
node_filesystem_size_bytes{device=\"/dev/sda1\",mountpoint=\"/mnt/a \\\"b\\\"\\\\c\\nd\",fstype=\"ext4\"} 4096
# HELP node_load1 Average number of runnable and uninterruptible threads over the last minute.
# TYPE node_load1 gauge
node_load1 NaN
# HELP node_network_mtu_bytes Maximum transmission unit of each interface.
# TYPE node_network_mtu_bytes gauge
node_network_mtu_bytes{device=\"eth0\"} 1500
";
        assert_eq!(out, want);
    }

    #[test]
    fn float_spelling() {
        let mut s = String::new();
        for v in [f64::INFINITY, f64::NEG_INFINITY, 1.795305801e9, 1e-7, -0.5] {
            write_f64(v, &mut s);
            s.push(' ');
        }
        assert_eq!(s, "+Inf -Inf 1795305801 0.0000001 -0.5 ");
    }
}
