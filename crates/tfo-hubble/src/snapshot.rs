//! What the aggregator has counted, as plain data: the OTLP mapping in `tfo-collectors`
//! reads this without depending on gRPC.

/// The label value every series beyond a metric's cap is counted under.
pub const OTHER: &str = "_other";

/// One metric of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    Flows,
    Drops,
    HttpRequests,
    TcpFlags,
    DnsResponses,
    LostEvents,
}

impl Metric {
    pub const ALL: [Metric; 6] = [
        Metric::Flows,
        Metric::Drops,
        Metric::HttpRequests,
        Metric::TcpFlags,
        Metric::DnsResponses,
        Metric::LostEvents,
    ];

    /// Whether the series of this metric are split by source and destination namespace
    /// when namespaces are on (lost events belong to no flow).
    pub fn has_namespaces(self) -> bool {
        !matches!(self, Metric::LostEvents)
    }
}

/// One series: its label values in the metric's attribute order (then source and
/// destination namespace when the snapshot has them), and its cumulative count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub labels: Vec<String>,
    pub value: u64,
}

/// Cumulative counts since the aggregator started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// When counting began (ns since the epoch): the start time of every counter.
    pub start_ns: u64,
    /// Whether the series carry source and destination namespace labels.
    pub namespaces: bool,
    /// `(metric, its series)` for every metric, series sorted by labels; a metric with no
    /// series yet has an empty list.
    pub metrics: Vec<(Metric, Vec<Point>)>,
    /// Series not created because their metric had reached its cap (their counts are in
    /// the metric's `_other` series).
    pub overflowed_series: u64,
    /// Messages that were neither a flow nor lost events (Relay node status), ignored.
    pub ignored_messages: u64,
}

impl Snapshot {
    /// The series of `m`.
    pub fn series(&self, m: Metric) -> &[Point] {
        self.metrics
            .iter()
            .find(|(k, _)| *k == m)
            .map(|(_, p)| p.as_slice())
            .unwrap_or(&[])
    }

    /// The value of the series of `m` with exactly these labels, if any.
    pub fn value(&self, m: Metric, labels: &[&str]) -> Option<u64> {
        self.series(m)
            .iter()
            .find(|p| {
                p.labels
                    .iter()
                    .map(String::as_str)
                    .eq(labels.iter().copied())
            })
            .map(|p| p.value)
    }

    /// The sum of every series of `m`.
    pub fn total(&self, m: Metric) -> u64 {
        self.series(m).iter().map(|p| p.value).sum()
    }
}
