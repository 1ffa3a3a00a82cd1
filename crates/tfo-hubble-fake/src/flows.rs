//! Builders for realistic messages: every flow carries what Hubble fills in besides the
//! fields under test (time, uuid, addresses, endpoint identities, labels, pod names,
//! node name, event type).

use crate::proto::flow::{self, Flow};
use crate::proto::observer::{
    GetFlowsResponse, NodeStatusEvent, get_flows_response::ResponseTypes,
};

pub const FORWARDED: i32 = 1;
pub const DROPPED: i32 = 2;
pub const L3_L4: i32 = 1;
pub const L7: i32 = 2;
pub const INGRESS: i32 = 1;
pub const EGRESS: i32 = 2;
pub const IPV4: i32 = 1;
pub const IPV6: i32 = 2;
pub const POLICY_DENIED: i32 = 133;
pub const REQUEST: i32 = 1;
pub const RESPONSE: i32 = 2;

fn ts() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_764_633_600,
        nanos: 123_456_789,
    }
}

fn endpoint(ns: &str, pod: &str, id: u32) -> flow::Endpoint {
    flow::Endpoint {
        id,
        identity: 10_000 + id,
        namespace: ns.to_string(),
        labels: vec![
            format!("k8s:app={pod}"),
            format!("k8s:io.kubernetes.pod.namespace={ns}"),
            "k8s:io.cilium.k8s.policy.cluster=default".to_string(),
        ],
        pod_name: format!("{pod}-7d9c5b8f6-x2x4q"),
    }
}

/// A flow between `src_ns` and `dst_ns` with everything but the L4/L7 details set.
pub fn base(verdict: i32, direction: i32, src_ns: &str, dst_ns: &str) -> Flow {
    Flow {
        time: Some(ts()),
        verdict,
        ip: Some(flow::Ip {
            source: "10.0.1.23".into(),
            destination: "10.0.2.45".into(),
            ip_version: IPV4,
            encrypted: false,
        }),
        l4: None,
        source: Some(endpoint(src_ns, "frontend", 1201)),
        destination: Some(endpoint(dst_ns, "backend", 877)),
        r#type: L3_L4,
        node_name: "kind-worker".into(),
        destination_names: Vec::new(),
        l7: None,
        event_type: Some(flow::CiliumEventType {
            r#type: 4,
            sub_type: 0,
        }),
        traffic_direction: direction,
        drop_reason_desc: 0,
        is_reply: Some(false),
        uuid: "5f0c8e3a-7b1d-4c1e-9d2a-3b6f4e8a9c10".into(),
    }
}

/// TCP flags, in Hubble's order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    pub fin: bool,
    pub syn: bool,
    pub rst: bool,
    pub psh: bool,
    pub ack: bool,
}

pub fn with_tcp(mut f: Flow, flags: Flags) -> Flow {
    f.l4 = Some(flow::Layer4 {
        protocol: Some(flow::layer4::Protocol::Tcp(flow::Tcp {
            source_port: 43_512,
            destination_port: 8080,
            flags: Some(flow::TcpFlags {
                fin: flags.fin,
                syn: flags.syn,
                rst: flags.rst,
                psh: flags.psh,
                ack: flags.ack,
            }),
        })),
    });
    f
}

pub fn with_udp(mut f: Flow) -> Flow {
    f.l4 = Some(flow::Layer4 {
        protocol: Some(flow::layer4::Protocol::Udp(flow::Udp {
            source_port: 53_001,
            destination_port: 53,
        })),
    });
    f
}

pub fn with_icmp4(mut f: Flow) -> Flow {
    f.l4 = Some(flow::Layer4 {
        protocol: Some(flow::layer4::Protocol::IcmPv4(flow::IcmPv4 {
            r#type: 8,
            code: 0,
        })),
    });
    f
}

/// A dropped flow with `reason` (Hubble's DropReason number).
pub fn dropped(mut f: Flow, reason: i32) -> Flow {
    f.verdict = DROPPED;
    f.drop_reason_desc = reason;
    f
}

/// An L7 HTTP flow (`RESPONSE` carries the status code).
pub fn http(mut f: Flow, l7_type: i32, method: &str, code: u32) -> Flow {
    f.r#type = L7;
    f.l7 = Some(flow::Layer7 {
        r#type: l7_type,
        latency_ns: 1_250_000,
        record: Some(flow::layer7::Record::Http(flow::Http {
            code,
            method: method.into(),
            url: "http://backend.shop.svc.cluster.local:8080/api/v1/cart?id=42".into(),
            protocol: "HTTP/1.1".into(),
        })),
    });
    f.is_reply = Some(l7_type == RESPONSE);
    f
}

/// An L7 DNS flow.
pub fn dns(mut f: Flow, l7_type: i32, rcode: u32, qtypes: &[&str]) -> Flow {
    f = with_udp(f);
    f.r#type = L7;
    f.destination_names = vec!["kube-dns.kube-system.svc.cluster.local".into()];
    f.l7 = Some(flow::Layer7 {
        r#type: l7_type,
        latency_ns: 300_000,
        record: Some(flow::layer7::Record::Dns(flow::Dns {
            query: "backend.shop.svc.cluster.local.".into(),
            ips: if l7_type == RESPONSE && rcode == 0 {
                vec!["10.96.12.7".into()]
            } else {
                Vec::new()
            },
            ttl: 30,
            rcode,
            qtypes: qtypes.iter().map(|q| q.to_string()).collect(),
        })),
    });
    f.is_reply = Some(l7_type == RESPONSE);
    f
}

/// A GetFlows message carrying `f`.
pub fn msg(f: Flow) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: f.node_name.clone(),
        time: f.time,
        response_types: Some(ResponseTypes::Flow(f)),
    }
}

/// A lost-events notice (`source`: 1 perf ring, 2 observer queue, 3 Hubble ring).
pub fn lost(source: i32, n: u64) -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: "kind-worker".into(),
        time: Some(ts()),
        response_types: Some(ResponseTypes::LostEvents(flow::LostEvent {
            source,
            num_events_lost: n,
            cpu: Some(1),
        })),
    }
}

/// Relay's notice that a node's stream connected.
pub fn node_status() -> GetFlowsResponse {
    GetFlowsResponse {
        node_name: String::new(),
        time: Some(ts()),
        response_types: Some(ResponseTypes::NodeStatus(NodeStatusEvent {
            state_change: 1,
            node_names: vec!["kind-worker".into()],
            message: "connected".into(),
        })),
    }
}
