//! Service metrics, one resource per Service (`k8s.namespace.name`, `k8s.service.name`,
//! `k8s.service.uid`); endpoints are counted from the EndpointSlices that name the service
//! (label `kubernetes.io/service-name`). Cluster-wide: only the elected agent has them.

use std::collections::HashMap;
use std::sync::Arc;

use tfo_kube::model::{EndpointSlice, Service, ServiceType};

use super::{Builder, ResourceGroup, count, gauge, ns, object_resource};
use crate::table::{MetricDef, PromKind, Val, ValueType};

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 5] = [
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
         not_ready; an endpoint without a ready condition counts as ready, as the API says).",
        "EndpointSlice endpoints[].addresses, .conditions.ready",
    )
    .prom_labels("kube_endpoint_address", PromKind::Gauge, &["ready"]),
    gauge(
        "k8s.service.load_balancer.ingress",
        ValueType::Int,
        "{ingress}",
        &[],
        "Ingress points (IPs or host names) the load balancer reports for the service; sent \
         for LoadBalancer services (0 while the load balancer is pending).",
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

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps services, one resource each. Endpoint counts are sent for a service that has at
/// least one EndpointSlice (ExternalName services and services whose slices are not
/// watched have none), load-balancer ingress points for LoadBalancer services.
pub fn services(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    now_nanos: u64,
    out: &mut Vec<ResourceGroup>,
) {
    let [spec_type, endpoints, lb_ingress, external_ips, created] = &ROWS;
    // (namespace, service) -> (ready, all) endpoints over the service's slices.
    let mut by_service: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    for sl in slices {
        if let Some(name) = sl.service_name.as_deref() {
            let e = by_service.entry((ns(&sl.metadata), name)).or_default();
            e.0 += u64::from(sl.ready);
            e.1 += u64::from(sl.endpoints);
        }
    }
    for svc in services {
        let m = &svc.metadata;
        let mut b = Builder::new(now_nanos);
        b.many(spec_type, [([svc.spec.kind.as_str()], Val::U(1))]);
        if let Some(&(ready, all)) = by_service.get(&(ns(m), &*m.name)) {
            b.many(
                endpoints,
                [
                    (["ready"], Val::U(ready)),
                    (["not_ready"], Val::U(all.saturating_sub(ready))),
                ],
            );
        }
        if svc.spec.kind == ServiceType::LoadBalancer {
            b.one(
                lb_ingress,
                Some(Val::U(u64::from(svc.status.load_balancer.ingress))),
            );
        }
        b.one(external_ips, Some(count(svc.spec.external_ips as usize)));
        b.one(created, m.creation_timestamp.map(Val::I));
        b.finish(
            object_resource("k8s.service.name", "k8s.service.uid", m),
            out,
        );
    }
}
