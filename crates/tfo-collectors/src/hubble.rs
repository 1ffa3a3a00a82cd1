//! Hubble flow metrics: a [`Snapshot`] of what the agent's Hubble client has counted from
//! Cilium's observer API (crate `tfo-hubble`) becomes cumulative counters.
//!
//! The table's Prometheus column names the `hubble_*` metric of Cilium's own Hubble
//! metrics server that each counter corresponds to, for porting dashboards; the agent
//! computes its counts from the GetFlows stream instead of scraping Cilium. Series
//! beyond `max_series` per metric are counted under `_other` on every attribute.

use opentelemetry_proto::tonic::metrics::v1::Metric;
use tfo_hubble::snapshot::Metric as Which;
pub use tfo_hubble::snapshot::Snapshot;

use crate::table::counter_i as counter;
use crate::table::{MetricDef, PromKind, Val};
use crate::{CollectReport, Collector, Ctx};

/// The attributes added to flow metrics when `collectors.ebpf.hubble.namespaces` is on.
pub const NAMESPACE_ATTRIBUTES: [&str; 2] = ["source_namespace", "destination_namespace"];

/// The table, in [`tfo_hubble::snapshot::Metric::ALL`] order.
const ROWS: [(Which, MetricDef); 6] = [
    (
        Which::Flows,
        counter(
            "hubble.flows",
            "{flow}",
            &["verdict", "type", "direction"],
            "Flows observed, by verdict (FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED, \
             TRANSLATED, VERDICT_UNKNOWN), flow type (L3_L4, L7, SOCK) and traffic direction \
             (INGRESS, EGRESS, TRAFFIC_DIRECTION_UNKNOWN). Hubble's own counter splits by \
             event type and subtype instead of direction.",
            "Flow.verdict, Flow.Type, Flow.traffic_direction",
        )
        .prom("hubble_flows_processed_total", PromKind::Counter),
    ),
    (
        Which::Drops,
        counter(
            "hubble.drops",
            "{flow}",
            &["reason", "protocol"],
            "Dropped flows, by Hubble's drop reason name (POLICY_DENIED, CT_MAP_INSERTION_FAILED, \
             ...; the number for one the agent does not know) and L4 protocol (TCP, UDP, ICMPv4, \
             ICMPv6, SCTP, unknown).",
            "Flow.drop_reason_desc, Flow.l4 (verdict DROPPED)",
        )
        .prom("hubble_drop_total", PromKind::Counter),
    ),
    (
        Which::HttpRequests,
        counter(
            "hubble.http_requests",
            "{request}",
            &["method", "status_class"],
            "HTTP requests answered, counted on the L7 response flow (the one that carries the \
             status), by method and status class (1xx to 5xx; unknown outside 100-599). Needs \
             Cilium's L7 proxy visibility on the traffic.",
            "Flow.l7.http (L7 type RESPONSE)",
        )
        .prom_labels(
            "hubble_http_responses_total",
            PromKind::Counter,
            &["method", "status"],
        ),
    ),
    (
        Which::TcpFlags,
        counter(
            "hubble.tcp.flags",
            "{flow}",
            &["flag", "family"],
            "TCP flows by flag (SYN without ACK, SYN-ACK, FIN, RST; one flow can count under \
             several) and IP family (IPv4, IPv6).",
            "Flow.l4.TCP.flags, Flow.IP.ipVersion",
        )
        .prom("hubble_tcp_flags_total", PromKind::Counter),
    ),
    (
        Which::DnsResponses,
        counter(
            "hubble.dns.responses",
            "{response}",
            &["rcode", "qtypes"],
            "DNS responses seen by Cilium's DNS proxy, by response code (NOERROR, NXDOMAIN, \
             SERVFAIL, ...; IANA mnemonics) and query types (A, AAAA, ...; comma-joined).",
            "Flow.l7.dns (L7 type RESPONSE)",
        )
        .prom("hubble_dns_responses_total", PromKind::Counter),
    ),
    (
        Which::LostEvents,
        counter(
            "hubble.lost_events",
            "{event}",
            &["source"],
            "Events Hubble lost before this agent read them, by where (PERF_EVENT_RING_BUFFER, \
             OBSERVER_EVENTS_QUEUE, HUBBLE_RING_BUFFER): flows missing from the other counters.",
            "GetFlowsResponse.lost_events",
        )
        .prom("hubble_lost_events_total", PromKind::Counter),
    ),
];

pub const METRICS: &[MetricDef] = &{
    let mut out = [ROWS[0].1; ROWS.len()];
    let mut i = 0;
    while i < ROWS.len() {
        out[i] = ROWS[i].1;
        i += 1;
    }
    out
};

/// `(sub-collector, its metric table)` for the docs.
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![("flows", METRICS)]
}

/// Maps `snap` at `now_ns`; the counters start when the snapshot's counting began.
pub fn map(snap: &Snapshot, now_ns: u64, out: &mut Vec<Metric>) {
    let ctx = Ctx {
        now_ns,
        boot_ns: snap.start_ns,
    };
    for (which, def) in &ROWS {
        let keys: Vec<&str> = def
            .attributes
            .iter()
            .copied()
            .chain(
                NAMESPACE_ATTRIBUTES
                    .iter()
                    .copied()
                    .filter(|_| snap.namespaces && which.has_namespaces()),
            )
            .collect();
        let points = snap
            .series(*which)
            .iter()
            .map(|p| {
                let attrs = keys
                    .iter()
                    .zip(&p.labels)
                    .map(|(k, v)| crate::otlp::attr(k, v))
                    .collect();
                def.point(attrs, Val::U(p.value), &ctx)
            })
            .collect();
        def.push(points, out);
    }
}

/// What the collector reads from its source each cycle.
#[derive(Debug, Default)]
pub struct Reading {
    /// The counts so far; `None` while there are none (nothing is sent).
    pub snapshot: Option<Snapshot>,
    /// The flow stream's state.
    pub link: Link,
    /// Failed connection attempts and broken streams since the client started.
    pub failures: u64,
}

/// The state of the client's GetFlows stream.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// No attempt has finished yet (just started): not counted as down.
    #[default]
    Connecting,
    Open,
    /// The last attempt failed or the stream broke; the client retries.
    Down,
}

/// Where the collector gets its readings. Connection problems are the client's to log
/// (once per streak, with the fix); the collector makes them countable and visible.
pub type SnapshotSource = Box<dyn FnMut() -> Reading + Send>;

/// The `ebpf.hubble` collector: maps the latest snapshot of its source every cycle.
pub struct HubbleCollector {
    source: SnapshotSource,
    failures_seen: u64,
}

impl HubbleCollector {
    pub fn new(source: SnapshotSource) -> HubbleCollector {
        HubbleCollector {
            source,
            failures_seen: 0,
        }
    }

    pub fn collect_at(&mut self, now_ns: u64, out: &mut Vec<Metric>) -> CollectReport {
        let r = (self.source)();
        if let Some(s) = &r.snapshot {
            map(s, now_ns, out);
        }
        let failures = r.failures.saturating_sub(self.failures_seen);
        self.failures_seen = r.failures;
        CollectReport {
            disconnected: r.link == Link::Down,
            connection_failures: failures,
            ..CollectReport::default()
        }
    }
}

impl Collector for HubbleCollector {
    fn name(&self) -> &'static str {
        "ebpf.hubble"
    }

    fn collect(&mut self, out: &mut Vec<Metric>) -> CollectReport {
        self.collect_at(crate::unix_now_ns(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    use tfo_hubble::snapshot::Point;

    fn snap(namespaces: bool) -> Snapshot {
        let p = |labels: &[&str], value| Point {
            labels: labels.iter().map(|s| s.to_string()).collect(),
            value,
        };
        let flows = if namespaces {
            vec![p(&["FORWARDED", "L3_L4", "EGRESS", "shop", "db"], 5)]
        } else {
            vec![p(&["FORWARDED", "L3_L4", "EGRESS"], 5)]
        };
        Snapshot {
            start_ns: 7,
            namespaces,
            metrics: vec![
                (Which::Flows, flows),
                (Which::Drops, vec![]),
                (Which::LostEvents, vec![p(&["HUBBLE_RING_BUFFER"], 3)]),
            ],
            ..Snapshot::default()
        }
    }

    fn attrs(m: &Metric) -> Vec<(String, String, i64, u64)> {
        let Some(Data::Sum(s)) = &m.data else {
            panic!("{} is not a sum", m.name)
        };
        assert!(s.is_monotonic);
        s.data_points
            .iter()
            .flat_map(|p| {
                let Some(Value::AsInt(v)) = p.value else {
                    panic!("int")
                };
                p.attributes.iter().map(move |kv| {
                    (
                        kv.key.clone(),
                        format!("{:?}", kv.value.as_ref().unwrap().value),
                        v,
                        p.start_time_unix_nano,
                    )
                })
            })
            .collect()
    }

    #[test]
    fn a_down_stream_is_reported_and_failures_counted_once() {
        let readings = std::sync::Arc::new(std::sync::Mutex::new(vec![
            Reading {
                snapshot: Some(snap(false)),
                link: Link::Open,
                failures: 2,
            },
            Reading {
                snapshot: Some(snap(false)),
                link: Link::Down,
                failures: 5,
            },
            Reading::default(),
        ]));
        let r = readings.clone();
        let mut c = HubbleCollector::new(Box::new(move || r.lock().unwrap().remove(0)));
        let mut out = Vec::new();
        let first = c.collect_at(9, &mut out);
        assert!(!first.disconnected);
        assert_eq!(first.connection_failures, 2);
        out.clear();
        let second = c.collect_at(10, &mut out);
        assert!(second.disconnected, "down while the stream is not open");
        assert_eq!(second.connection_failures, 3, "only the new failures");
        assert!(!out.is_empty(), "the counts so far are still sent");
        out.clear();
        let third = c.collect_at(11, &mut out);
        assert!(!third.disconnected, "still connecting is not down");
        assert!(out.is_empty());
    }

    #[test]
    fn rows_follow_the_snapshot_order() {
        for (i, (w, _)) in ROWS.iter().enumerate() {
            assert_eq!(Which::ALL[i], *w);
        }
    }

    #[test]
    fn maps_series_with_namespaces_only_when_on() {
        let mut out = Vec::new();
        map(&snap(false), 9, &mut out);
        let names: Vec<_> = out.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["hubble.flows", "hubble.lost_events"],
            "empty metrics are left out"
        );
        let a = attrs(&out[0]);
        assert_eq!(a.len(), 3);
        assert!(a.iter().all(|(_, _, v, start)| *v == 5 && *start == 7));
        assert_eq!(a[2].0, "direction");

        let mut out = Vec::new();
        map(&snap(true), 9, &mut out);
        let a = attrs(&out[0]);
        let keys: Vec<_> = a.iter().map(|(k, ..)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "verdict",
                "type",
                "direction",
                "source_namespace",
                "destination_namespace"
            ]
        );
        assert_eq!(attrs(&out[1]).len(), 1, "lost events have no namespaces");
    }
}
