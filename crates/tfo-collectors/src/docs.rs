//! Renders `docs/metrics.md` from the metric tables, so the reference cannot drift from
//! what the collectors emit (a test compares the committed file with this output).

use crate::table::MetricDef;

/// One collector's section of the reference.
pub struct CollectorDoc<'a> {
    /// Config key under `collectors.`.
    pub name: &'a str,
    pub intro: &'a str,
    /// Heading of the column that shows [`MetricDef::prom`]: the Prometheus exporter whose
    /// names the collector's metrics map to (`node_exporter`, `kube-state-metrics`).
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
         Counters are cumulative monotonic OTLP Sums whose start time is the host's boot time;\n\
         up-down counters are non-monotonic cumulative Sums; gauges are Gauges. Units are UCUM.\n\n\
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
            s.push_str(&format!(
                "\n### {sub}\n\n| Name | Type | Value | Unit | Attributes | Source | {} | Description |\n|---|---|---|---|---|---|---|---|\n",
                c.equivalent
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
                s.push_str(&format!(
                    "| `{}` | {} | {} | `{}` | {} | `{}` | {} | {} |\n",
                    d.name,
                    d.kind.as_str(),
                    d.value.as_str(),
                    d.unit,
                    attrs,
                    d.source.replace('|', "\\|"),
                    prom,
                    d.help.replace('|', "\\|")
                ));
            }
        }
    }
    s
}
