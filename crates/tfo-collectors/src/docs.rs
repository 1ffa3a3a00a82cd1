//! Renders `docs/metrics.md` from the metric tables, so the reference cannot drift from
//! what the collectors emit (a test compares the committed file with this output).

use crate::table::MetricDef;

/// One collector's section of the reference.
pub struct CollectorDoc<'a> {
    /// Config key under `collectors.`.
    pub name: &'a str,
    pub intro: &'a str,
    /// Heading of the column that shows [`MetricDef::prom`]: the Prometheus exporter whose
    /// names the collector's metrics map to (`node_exporter`, `kube-state-metrics`); empty:
    /// no such column (the collector has no Prometheus counterpart).
    pub equivalent: &'a str,
    /// `(sub-collector, its metric table)`.
    pub tables: Vec<(&'a str, &'a [MetricDef])>,
}

/// Markdown for every collector's tables.
pub fn metrics_markdown(collectors: &[CollectorDoc<'_>]) -> String {
    let mut s = String::from(
        "# Metrics reference\n\n\
         Generated from the metric tables in `crates/tfo-collectors/src` by\n\
         `UPDATE_DOCS=1 cargo test -p tfo-collectors --test docs`; do not edit by hand.\n\n\
         Counters are cumulative monotonic OTLP Sums whose start time is the host's boot time\n\
         (for `collectors.ebpf`, when its programs were loaded); up-down counters are\n\
         non-monotonic cumulative Sums; gauges are Gauges; histograms are cumulative\n\
         explicit-bucket Histograms. Units are UCUM.\n\n\
         The node_exporter column gives the Prometheus name and type under which the agent's\n\
         `/metrics` endpoint exposes a node metric (`prometheus.expose_node_metrics`), with\n\
         the label each attribute becomes when it is renamed (`attribute→label`); the value is\n\
         the same, in the same unit. The kube-state-metrics column gives the series a\n\
         Kubernetes metric corresponds to, for porting dashboards; the agent does not expose\n\
         those names, and where kube-state-metrics splits a value into one series per state\n\
         the description says so.\n",
    );
    for c in collectors {
        s.push_str(&format!("\n## `collectors.{}`\n\n{}\n", c.name, c.intro));
        for (sub, table) in &c.tables {
            let equivalent = if c.equivalent.is_empty() {
                String::new()
            } else {
                format!(" {} |", c.equivalent)
            };
            let rule = if c.equivalent.is_empty() { "" } else { "---|" };
            s.push_str(&format!(
                "\n### {sub}\n\n| Name | Type | Value | Unit | Attributes | Source |{equivalent} Description |\n|---|---|---|---|---|---|{rule}---|\n",
            ));
            for d in *table {
                let attrs = if d.attributes.is_empty() {
                    "–".to_string()
                } else {
                    d.attributes
                        .iter()
                        .map(|a| format!("`{a}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let prom = match &d.prom {
                    None => "–".to_string(),
                    Some(p) => {
                        let renamed: Vec<String> = d
                            .attributes
                            .iter()
                            .zip(p.labels)
                            .filter(|(a, l)| a != l)
                            .map(|(a, l)| format!("`{a}`→`{l}`"))
                            .collect();
                        let mut cell = format!("`{}` {}", p.name, p.kind.as_str());
                        if !renamed.is_empty() {
                            cell.push_str(&format!(" ({})", renamed.join(", ")));
                        }
                        cell
                    }
                };
                let prom = if c.equivalent.is_empty() {
                    String::new()
                } else {
                    format!(" {prom} |")
                };
                s.push_str(&format!(
                    "| `{}` | {} | {} | `{}` | {} | `{}` |{prom} {} |\n",
                    d.name,
                    d.kind.as_str(),
                    d.value.as_str(),
                    d.unit,
                    attrs,
                    d.source.replace('|', "\\|"),
                    d.help.replace('|', "\\|")
                ));
            }
        }
    }
    s
}
