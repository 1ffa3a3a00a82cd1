//! core/v1 Service and discovery.k8s.io/v1 EndpointSlice: type, addressing and how many
//! endpoints back a service. Selectors, port details and addresses are skipped.

use serde::Deserialize;
use serde::de::Deserializer;

use super::meta::{Meta, RawMeta, count_seq, null_default};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ServiceSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: ServiceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub kind: ServiceType,
    #[serde(default, rename = "clusterIP", deserialize_with = "cluster_ip")]
    pub cluster_ip: ClusterIp,
    #[serde(default, deserialize_with = "count_seq")]
    pub ports: u32,
    /// Number of `externalIPs`.
    #[serde(default, rename = "externalIPs", deserialize_with = "count_seq")]
    pub external_ips: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
    #[serde(other)]
    Other,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
            ServiceType::ExternalName => "ExternalName",
            ServiceType::Other => "Other",
        }
    }
}

/// `spec.clusterIP`: absent/empty (ExternalName), `"None"` (headless), or an address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ClusterIp {
    #[default]
    Absent,
    Headless,
    Assigned,
}

fn cluster_ip<'de, D: Deserializer<'de>>(d: D) -> Result<ClusterIp, D::Error> {
    Ok(
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)?.as_deref() {
            None | Some("") => ClusterIp::Absent,
            Some("None") => ClusterIp::Headless,
            Some(_) => ClusterIp::Assigned,
        },
    )
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub load_balancer: LoadBalancerStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct LoadBalancerStatus {
    /// Number of `ingress` points (addresses the load balancer was given).
    #[serde(default, deserialize_with = "count_seq")]
    pub ingress: u32,
}

/// An EndpointSlice, reduced to endpoint counts by condition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointSlice {
    pub metadata: Meta,
    /// From the `kubernetes.io/service-name` label; `None` for a slice no Service owns.
    pub service_name: Option<Box<str>>,
    pub address_type: AddressType,
    /// All endpoints in the slice.
    pub endpoints: u32,
    /// Endpoints whose `ready` is true or unset (the API says to read unset as ready).
    pub ready: u32,
    /// Endpoints whose `serving` is true or unset.
    pub serving: u32,
    /// Endpoints whose `terminating` is true.
    pub terminating: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum AddressType {
    IPv4,
    IPv6,
    FQDN,
    #[default]
    #[serde(other)]
    Other,
}

impl AddressType {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressType::IPv4 => "IPv4",
            AddressType::IPv6 => "IPv6",
            AddressType::FQDN => "FQDN",
            AddressType::Other => "Other",
        }
    }
}

#[derive(Default, Deserialize)]
struct ServiceNameLabel {
    #[serde(default, rename = "kubernetes.io/service-name")]
    service_name: Option<Box<str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSlice {
    #[serde(default)]
    metadata: Option<RawMeta<ServiceNameLabel>>,
    #[serde(default, deserialize_with = "null_default")]
    address_type: AddressType,
    #[serde(default, deserialize_with = "null_default")]
    endpoints: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
struct RawEndpoint {
    #[serde(default, deserialize_with = "null_default")]
    conditions: RawConditions,
}

#[derive(Default, Deserialize)]
struct RawConditions {
    #[serde(default)]
    ready: Option<bool>,
    #[serde(default)]
    serving: Option<bool>,
    #[serde(default)]
    terminating: Option<bool>,
}

impl<'de> Deserialize<'de> for EndpointSlice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawSlice::deserialize(d)?;
        let (metadata, labels) = match raw.metadata {
            Some(m) => m.into_meta(),
            None => (Meta::default(), ServiceNameLabel::default()),
        };
        let n = |f: fn(&RawConditions) -> bool| {
            raw.endpoints.iter().filter(|e| f(&e.conditions)).count() as u32
        };
        Ok(EndpointSlice {
            metadata,
            service_name: labels.service_name,
            address_type: raw.address_type,
            endpoints: raw.endpoints.len() as u32,
            ready: n(|c| c.ready != Some(false)),
            serving: n(|c| c.serving != Some(false)),
            terminating: n(|c| c.terminating == Some(true)),
        })
    }
}
