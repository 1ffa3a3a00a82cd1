//! Service metrics, one resource per Service (`k8s.namespace.name`, `k8s.service.name`,
//! `k8s.service.uid`); endpoints are counted from the EndpointSlices that name the service
//! (label `kubernetes.io/service-name`). Cluster-wide: only the elected agent has them.

use super::{Builder, MetricSet, gauge};
use crate::table::{MetricDef, PromKind, Val, ValueType};

pub const METRICS: &[MetricDef] = &[
    gauge(
        "k8s.service.spec.type",
        ValueType::Int,
        "1",
        &["k8s.service.type"],
        "1, with the service type (ClusterIP, NodePort, LoadBalancer, ExternalName) as an \
         attribute.",
        "Service spec.type",
    )
    .prom_labels("kube_service_spec_type", PromKind::Gauge, &["type"]),
    gauge(
        "k8s.service.endpoints",
        ValueType::Int,
        "{endpoint}",
        &["k8s.service.endpoint.condition"],
        "Endpoints of the service across its EndpointSlices, by readiness (ready, \
         not_ready); an endpoint with several addresses counts each address.",
        "EndpointSlice endpoints[].addresses, .conditions.ready",
    )
    .prom_labels("kube_endpoint_address", PromKind::Gauge, &["ready"]),
    gauge(
        "k8s.service.load_balancer.ingress",
        ValueType::Int,
        "{ingress}",
        &[],
        "Ingress points (IPs or host names) the load balancer reports for the service.",
        "Service status.loadBalancer.ingress",
    )
    .prom("kube_service_status_load_balancer_ingress", PromKind::Gauge),
    gauge(
        "k8s.service.external_ips",
        ValueType::Int,
        "{ip}",
        &[],
        "External IPs in the service spec.",
        "Service spec.externalIPs",
    )
    .prom("kube_service_spec_external_ip", PromKind::Gauge),
    gauge(
        "k8s.service.created",
        ValueType::Int,
        "s",
        &[],
        "When the service was created, in seconds since the Unix epoch.",
        "Service metadata.creationTimestamp",
    )
    .prom("kube_service_created", PromKind::Gauge),
];
