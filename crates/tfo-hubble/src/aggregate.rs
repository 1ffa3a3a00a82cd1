//! Counts flows into the six Hubble metrics, with a cap on the series of each metric.
//!
//! The per-flow path does no allocation for a series already seen: the labels of a flow
//! are written into one reusable key buffer (`\0`-separated), which is looked up in the
//! metric's map. A new series is stored only while the metric has fewer than `max_series`;
//! beyond that its count goes to the metric's `_other` series, so a flood of distinct
//! values (hostile or broken server, thousands of namespaces) never grows memory.
//!
//! Label values are Hubble's enum names (`FORWARDED`, `POLICY_DENIED`, `INGRESS`...), so
//! they read the same as in `hubble observe` and Cilium's own `hubble_*` metrics. Text
//! from the wire (HTTP method, DNS query types, namespaces) is used only when it is short
//! valid UTF-8 without control characters; anything else is counted as `_invalid`.

use std::borrow::Cow;
use std::collections::HashMap;

use crate::proto::flow::{self, Flow, LostEvent};
use crate::proto::observer::GetFlowsResponse;
use crate::proto::observer::get_flows_response::ResponseTypes;
use crate::snapshot::{Metric, OTHER, Point, Snapshot};

/// Default most series per metric.
pub const DEFAULT_MAX_SERIES: usize = 1000;
/// The label value of wire text that is not usable (too long, not UTF-8, control bytes).
pub const INVALID: &str = "_invalid";

const SEP: u8 = 0;

/// How the aggregator counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AggOptions {
    /// Split flow series by source and destination namespace.
    pub namespaces: bool,
    /// Most series per metric (at least 1); further ones are counted under `_other`.
    pub max_series: usize,
}

impl Default for AggOptions {
    fn default() -> Self {
        AggOptions {
            namespaces: false,
            max_series: DEFAULT_MAX_SERIES,
        }
    }
}

type Map = HashMap<Box<[u8]>, u64, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Counter {
    series: Map,
    other: u64,
}

/// Cumulative counters of everything recorded since it was made.
#[derive(Debug)]
pub struct Aggregator {
    opts: AggOptions,
    start_ns: u64,
    counters: [Counter; 6],
    key: Vec<u8>,
    overflowed: u64,
    ignored: u64,
    flows: u64,
}

impl Aggregator {
    /// An empty aggregator whose counters start at `start_ns` (ns since the epoch).
    pub fn new(opts: AggOptions, start_ns: u64) -> Aggregator {
        Aggregator {
            opts: AggOptions {
                max_series: opts.max_series.max(1),
                ..opts
            },
            start_ns,
            counters: Default::default(),
            key: Vec::with_capacity(128),
            overflowed: 0,
            ignored: 0,
            flows: 0,
        }
    }

    pub fn options(&self) -> AggOptions {
        self.opts
    }

    /// Flows recorded so far.
    pub fn flows(&self) -> u64 {
        self.flows
    }

    /// Series stored, all metrics together (not counting `_other`): at most
    /// `6 × max_series`.
    pub fn series_count(&self) -> usize {
        self.counters.iter().map(|c| c.series.len()).sum()
    }

    /// Records one message of the GetFlows stream.
    pub fn record(&mut self, resp: &GetFlowsResponse) {
        match &resp.response_types {
            Some(ResponseTypes::Flow(f)) => self.record_flow(f),
            Some(ResponseTypes::LostEvents(l)) => self.record_lost(l),
            None => self.ignored += 1,
        }
    }

    /// Records a lost-events notice: `num_events_lost` under its source.
    pub fn record_lost(&mut self, l: &LostEvent) {
        self.key.clear();
        push(&mut self.key, lost_source_name(l.source));
        self.add(Metric::LostEvents, l.num_events_lost);
    }

    /// Records one flow into every metric it belongs to.
    pub fn record_flow(&mut self, f: &Flow) {
        self.flows += 1;
        let ns = if self.opts.namespaces {
            Some((
                text(f.source.as_ref().map(|e| &e.namespace[..]), 63),
                text(f.destination.as_ref().map(|e| &e.namespace[..]), 63),
            ))
        } else {
            None
        };
        let ns = ns.as_ref();

        self.start_key();
        push(&mut self.key, verdict_name(f.verdict));
        push(&mut self.key, flow_type_name(f.r#type));
        push(&mut self.key, direction_name(f.traffic_direction));
        self.finish(Metric::Flows, ns, 1);

        let l4 = f.l4.as_ref().and_then(|l| l.protocol.as_ref());
        if f.verdict == flow::Verdict::Dropped as i32 {
            self.start_key();
            push(&mut self.key, &drop_reason_name(f.drop_reason_desc));
            push(&mut self.key, protocol_name(l4));
            self.finish(Metric::Drops, ns, 1);
        }

        if let Some(flow::layer4::Protocol::Tcp(tcp)) = l4
            && let Some(flags) = &tcp.flags
        {
            let family = family_name(f.ip.as_ref().map_or(0, |ip| ip.ip_version));
            let one = |agg: &mut Aggregator, flag: &str| {
                agg.start_key();
                push(&mut agg.key, flag);
                push(&mut agg.key, family);
                agg.finish(Metric::TcpFlags, ns, 1);
            };
            if flags.syn {
                one(self, if flags.ack { "SYN-ACK" } else { "SYN" });
            }
            if flags.fin {
                one(self, "FIN");
            }
            if flags.rst {
                one(self, "RST");
            }
        }

        if let Some(l7) = &f.l7
            && l7.r#type == flow::L7FlowType::Response as i32
        {
            match &l7.record {
                Some(flow::layer7::Record::Http(h)) => {
                    self.start_key();
                    push(&mut self.key, &text(Some(&h.method[..]), 16));
                    push(&mut self.key, status_class(h.code));
                    self.finish(Metric::HttpRequests, ns, 1);
                }
                Some(flow::layer7::Record::Dns(d)) => {
                    self.start_key();
                    push(&mut self.key, &rcode_name(d.rcode));
                    let qtypes = qtypes(&d.qtypes);
                    push(&mut self.key, &qtypes);
                    self.finish(Metric::DnsResponses, ns, 1);
                }
                None => {}
            }
        }
    }

    fn start_key(&mut self) {
        self.key.clear();
    }

    fn finish(&mut self, m: Metric, ns: Option<&(Cow<'_, str>, Cow<'_, str>)>, n: u64) {
        if let Some((src, dst)) = ns {
            push(&mut self.key, src);
            push(&mut self.key, dst);
        }
        self.add(m, n);
    }

    fn add(&mut self, m: Metric, n: u64) {
        let c = &mut self.counters[m as usize];
        // The key ends with a separator; drop it so labels split back cleanly.
        let key = &self.key[..self.key.len().saturating_sub(1)];
        if let Some(v) = c.series.get_mut(key) {
            *v = v.wrapping_add(n);
        } else if c.series.len() < self.opts.max_series {
            c.series.insert(key.into(), n);
        } else {
            c.other = c.other.wrapping_add(n);
            self.overflowed += 1;
        }
    }

    /// The cumulative counts, every metric listed, series sorted by labels.
    pub fn snapshot(&self) -> Snapshot {
        let metrics = Metric::ALL
            .iter()
            .map(|&m| {
                let c = &self.counters[m as usize];
                let width = label_count(m, self.opts.namespaces);
                let mut points: Vec<Point> = c
                    .series
                    .iter()
                    .map(|(k, &value)| Point {
                        labels: k
                            .split(|b| *b == SEP)
                            .map(|l| String::from_utf8_lossy(l).into_owned())
                            .collect(),
                        value,
                    })
                    .collect();
                if c.other > 0 {
                    points.push(Point {
                        labels: vec![OTHER.to_string(); width],
                        value: c.other,
                    });
                }
                points.sort_by(|a, b| a.labels.cmp(&b.labels));
                (m, points)
            })
            .collect();
        Snapshot {
            start_ns: self.start_ns,
            namespaces: self.opts.namespaces,
            metrics,
            overflowed_series: self.overflowed,
            ignored_messages: self.ignored,
        }
    }
}

/// How many labels the series of `m` carry.
pub fn label_count(m: Metric, namespaces: bool) -> usize {
    let base = match m {
        Metric::Flows => 3,
        Metric::Drops | Metric::HttpRequests | Metric::TcpFlags | Metric::DnsResponses => 2,
        Metric::LostEvents => 1,
    };
    base + if namespaces && m.has_namespaces() {
        2
    } else {
        0
    }
}

fn push(key: &mut Vec<u8>, label: &str) {
    key.extend_from_slice(label.as_bytes());
    key.push(SEP);
}

/// Wire text as a label: itself when it is valid UTF-8 of at most `max` bytes without
/// control characters, otherwise `_invalid`. Absent: empty.
fn text(b: Option<&[u8]>, max: usize) -> Cow<'_, str> {
    let Some(b) = b else {
        return Cow::Borrowed("");
    };
    if b.len() > max || b.iter().any(|c| c.is_ascii_control()) {
        return Cow::Borrowed(INVALID);
    }
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Borrowed(INVALID),
    }
}

/// DNS query types joined with `,` (as Hubble does), `_invalid` if unusable.
fn qtypes(q: &[bytes::Bytes]) -> Cow<'_, str> {
    match q {
        [] => Cow::Borrowed(""),
        [one] => text(Some(one), 16),
        many => {
            let mut s = String::new();
            for (i, q) in many.iter().enumerate() {
                let t = text(Some(q), 16);
                if t == INVALID || s.len() + t.len() > 64 {
                    return Cow::Borrowed(INVALID);
                }
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&t);
            }
            Cow::Owned(s)
        }
    }
}

pub fn verdict_name(v: i32) -> &'static str {
    flow::Verdict::try_from(v)
        .map(|v| v.as_str_name())
        .unwrap_or("VERDICT_UNKNOWN")
}

pub fn flow_type_name(v: i32) -> &'static str {
    flow::FlowType::try_from(v)
        .map(|v| v.as_str_name())
        .unwrap_or("UNKNOWN_TYPE")
}

pub fn direction_name(v: i32) -> &'static str {
    flow::TrafficDirection::try_from(v)
        .map(|v| v.as_str_name())
        .unwrap_or("TRAFFIC_DIRECTION_UNKNOWN")
}

fn family_name(v: i32) -> &'static str {
    match flow::IpVersion::try_from(v) {
        Ok(flow::IpVersion::IPv4) => "IPv4",
        Ok(flow::IpVersion::IPv6) => "IPv6",
        _ => "unknown",
    }
}

pub fn lost_source_name(v: i32) -> &'static str {
    flow::LostEventSource::try_from(v)
        .map(|v| v.as_str_name())
        .unwrap_or("UNKNOWN_LOST_EVENT_SOURCE")
}

fn protocol_name(p: Option<&flow::layer4::Protocol>) -> &'static str {
    use flow::layer4::Protocol as P;
    match p {
        Some(P::Tcp(_)) => "TCP",
        Some(P::Udp(_)) => "UDP",
        Some(P::IcmPv4(_)) => "ICMPv4",
        Some(P::IcmPv6(_)) => "ICMPv6",
        Some(P::Sctp(_)) => "SCTP",
        None => "unknown",
    }
}

/// `2xx` for 200..=299 and so on; `unknown` outside 100..=599.
pub fn status_class(code: u32) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "unknown",
    }
}

/// The IANA mnemonic of a DNS response code (RFC 1035, 2136, 6891 ...); the number for
/// the rest.
pub fn rcode_name(rcode: u32) -> Cow<'static, str> {
    const NAMES: [&str; 12] = [
        "NOERROR",
        "FORMERR",
        "SERVFAIL",
        "NXDOMAIN",
        "NOTIMP",
        "REFUSED",
        "YXDOMAIN",
        "YXRRSET",
        "NXRRSET",
        "NOTAUTH",
        "NOTZONE",
        "DSOTYPENI",
    ];
    match NAMES.get(rcode as usize) {
        Some(n) => Cow::Borrowed(n),
        None => Cow::Owned(rcode.to_string()),
    }
}

/// Hubble's name of a drop reason (its `DropReason` enum, shared with Cilium's datapath
/// codes); the number for one this table does not know.
pub fn drop_reason_name(code: i32) -> Cow<'static, str> {
    let name = match code {
        0 => "DROP_REASON_UNKNOWN",
        130 => "INVALID_SOURCE_MAC",
        131 => "INVALID_DESTINATION_MAC",
        132 => "INVALID_SOURCE_IP",
        133 => "POLICY_DENIED",
        134 => "INVALID_PACKET_DROPPED",
        135 => "CT_TRUNCATED_OR_INVALID_HEADER",
        136 => "CT_MISSING_TCP_ACK_FLAG",
        137 => "CT_UNKNOWN_L4_PROTOCOL",
        138 => "CT_CANNOT_CREATE_ENTRY_FROM_PACKET",
        139 => "UNSUPPORTED_L3_PROTOCOL",
        140 => "MISSED_TAIL_CALL",
        141 => "ERROR_WRITING_TO_PACKET",
        142 => "UNKNOWN_L4_PROTOCOL",
        143 => "UNKNOWN_ICMPV4_CODE",
        144 => "UNKNOWN_ICMPV4_TYPE",
        145 => "UNKNOWN_ICMPV6_CODE",
        146 => "UNKNOWN_ICMPV6_TYPE",
        147 => "ERROR_RETRIEVING_TUNNEL_KEY",
        148 => "ERROR_RETRIEVING_TUNNEL_OPTIONS",
        149 => "INVALID_GENEVE_OPTION",
        150 => "UNKNOWN_L3_TARGET_ADDRESS",
        151 => "STALE_OR_UNROUTABLE_IP",
        152 => "NO_MATCHING_LOCAL_CONTAINER_FOUND",
        153 => "ERROR_WHILE_CORRECTING_L3_CHECKSUM",
        154 => "ERROR_WHILE_CORRECTING_L4_CHECKSUM",
        155 => "CT_MAP_INSERTION_FAILED",
        156 => "INVALID_IPV6_EXTENSION_HEADER",
        157 => "IP_FRAGMENTATION_NOT_SUPPORTED",
        158 => "SERVICE_BACKEND_NOT_FOUND",
        160 => "NO_TUNNEL_OR_ENCAPSULATION_ENDPOINT",
        161 => "FAILED_TO_INSERT_INTO_PROXYMAP",
        162 => "REACHED_EDT_RATE_LIMITING_DROP_HORIZON",
        163 => "UNKNOWN_CONNECTION_TRACKING_STATE",
        164 => "LOCAL_HOST_IS_UNREACHABLE",
        165 => "NO_CONFIGURATION_AVAILABLE_TO_PERFORM_POLICY_DECISION",
        166 => "UNSUPPORTED_L2_PROTOCOL",
        167 => "NO_MAPPING_FOR_NAT_MASQUERADE",
        168 => "UNSUPPORTED_PROTOCOL_FOR_NAT_MASQUERADE",
        169 => "FIB_LOOKUP_FAILED",
        170 => "ENCAPSULATION_TRAFFIC_IS_PROHIBITED",
        171 => "INVALID_IDENTITY",
        172 => "UNKNOWN_SENDER",
        173 => "NAT_NOT_NEEDED",
        174 => "IS_A_CLUSTERIP",
        175 => "FIRST_LOGICAL_DATAGRAM_FRAGMENT_NOT_FOUND",
        176 => "FORBIDDEN_ICMPV6_MESSAGE",
        177 => "DENIED_BY_LB_SRC_RANGE_CHECK",
        178 => "SOCKET_LOOKUP_FAILED",
        179 => "SOCKET_ASSIGN_FAILED",
        180 => "PROXY_REDIRECTION_NOT_SUPPORTED_FOR_PROTOCOL",
        181 => "POLICY_DENY",
        182 => "VLAN_FILTERED",
        183 => "INVALID_VNI",
        184 => "INVALID_TC_BUFFER",
        185 => "NO_SID",
        186 => "MISSING_SRV6_STATE",
        187 => "NAT46",
        188 => "NAT64",
        189 => "AUTH_REQUIRED",
        190 => "CT_NO_MAP_FOUND",
        191 => "SNAT_NO_MAP_FOUND",
        192 => "INVALID_CLUSTER_ID",
        193 => "UNSUPPORTED_PROTOCOL_FOR_DSR_ENCAP",
        194 => "NO_EGRESS_GATEWAY",
        196 => "TTL_EXCEEDED",
        197 => "NO_NODE_ID",
        202 => "DROP_HOST_NOT_READY",
        203 => "DROP_EP_NOT_READY",
        n => return Cow::Owned(n.to_string()),
    };
    Cow::Borrowed(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn wire_text_is_used_only_when_clean() {
        assert_eq!(text(Some(b"GET"), 16), "GET");
        assert_eq!(text(None, 16), "");
        assert_eq!(text(Some(b"G\0T"), 16), INVALID);
        assert_eq!(text(Some(&[0xff, 0xfe]), 16), INVALID);
        assert_eq!(text(Some(&[b'A'; 17]), 16), INVALID);
        let q = |v: &[&'static str]| {
            qtypes(
                &v.iter()
                    .map(|s| Bytes::from_static(s.as_bytes()))
                    .collect::<Vec<_>>(),
            )
            .into_owned()
        };
        assert_eq!(q(&[]), "");
        assert_eq!(q(&["A", "AAAA"]), "A,AAAA");
        assert_eq!(q(&["A\n"]), INVALID);
        assert_eq!(q(&["AAAAAAAAAAAAAAAA"; 5]), INVALID, "over 64 bytes joined");
    }

    #[test]
    fn names_and_numbers() {
        assert_eq!(drop_reason_name(133), "POLICY_DENIED");
        assert_eq!(drop_reason_name(-4), "-4");
        assert_eq!(rcode_name(3), "NXDOMAIN");
        assert_eq!(rcode_name(23), "23");
        assert_eq!(verdict_name(99), "VERDICT_UNKNOWN");
        assert_eq!(status_class(99), "unknown");
        assert_eq!(status_class(599), "5xx");
    }

    #[test]
    fn a_zero_cap_still_counts_everything_under_other() {
        let mut a = Aggregator::new(
            AggOptions {
                namespaces: false,
                max_series: 0,
            },
            5,
        );
        for source in [1, 2, 3] {
            a.record_lost(&LostEvent {
                source,
                num_events_lost: 2,
            });
        }
        let s = a.snapshot();
        assert_eq!(s.start_ns, 5);
        assert_eq!(
            s.series(Metric::LostEvents).len(),
            2,
            "one series, then _other"
        );
        assert_eq!(s.total(Metric::LostEvents), 6);
        assert_eq!(s.value(Metric::LostEvents, &[OTHER]), Some(4));
        assert_eq!(s.overflowed_series, 2);
        assert_eq!(a.series_count(), 1);
    }
}
