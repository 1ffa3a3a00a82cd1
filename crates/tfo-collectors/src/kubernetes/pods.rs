//! Pod and container metrics, one resource per pod (`k8s.namespace.name`, `k8s.pod.name`,
//! `k8s.pod.uid`, `k8s.node.name` and the owning workload where ownerReferences name it).
//!
//! Container metrics stay on their pod's resource with a `k8s.container.name` data-point
//! attribute rather than a resource per container (k8s_cluster's layout): a pod's dozen
//! series share one resource on the wire, and the container keeps the label
//! kube-state-metrics gives it (`container`). Init containers are not reported.
//! Every agent reports the pods of its node from its node-local store.

use super::{Builder, MetricSet, gauge};
use crate::table::{MetricDef, PromKind, Val, ValueType};

const CONTAINER: &[&str] = &["k8s.container.name"];
const CONTAINER_LABEL: &[&str] = &["container"];

pub const METRICS: &[MetricDef] = &[
    gauge(
        "k8s.pod.phase",
        ValueType::Int,
        "1",
        &[],
        "Pod phase as a number, as k8s_cluster encodes it: 1 Pending, 2 Running, \
         3 Succeeded, 4 Failed, 5 Unknown. kube-state-metrics has one 0/1 series per phase.",
        "Pod status.phase",
    )
    .prom("kube_pod_status_phase", PromKind::Gauge),
    gauge(
        "k8s.pod.ready",
        ValueType::Int,
        "1",
        &[],
        "1 if the pod's Ready condition is True, else 0.",
        "Pod status.conditions[type=Ready]",
    )
    .prom("kube_pod_status_ready", PromKind::Gauge),
    gauge(
        "k8s.pod.containers",
        ValueType::Int,
        "{container}",
        &[],
        "Containers in the pod spec (init containers excluded).",
        "Pod spec.containers",
    )
    .prom("kube_pod_container_info", PromKind::Gauge),
    gauge(
        "k8s.pod.containers.ready",
        ValueType::Int,
        "{container}",
        &[],
        "Containers of the pod that pass their readiness probe; the sum of \
         k8s.container.ready over the pod.",
        "Pod status.containerStatuses[].ready",
    )
    .prom("kube_pod_container_status_ready", PromKind::Gauge),
    gauge(
        "k8s.container.ready",
        ValueType::Int,
        "1",
        CONTAINER,
        "1 if the container passes its readiness probe, else 0.",
        "Pod status.containerStatuses[].ready",
    )
    .prom_labels(
        "kube_pod_container_status_ready",
        PromKind::Gauge,
        CONTAINER_LABEL,
    ),
    gauge(
        "k8s.container.restarts",
        ValueType::Int,
        "{restart}",
        CONTAINER,
        "Times the container has been restarted (a gauge, as in k8s_cluster: it resets \
         when the pod is recreated).",
        "Pod status.containerStatuses[].restartCount",
    )
    .prom_labels(
        "kube_pod_container_status_restarts_total",
        PromKind::Counter,
        CONTAINER_LABEL,
    ),
    gauge(
        "k8s.container.status.state",
        ValueType::Int,
        "{container}",
        &["k8s.container.name", "k8s.container.status.state"],
        "1 for the container's current state (running, waiting or terminated); the other \
         states are not sent. kube-state-metrics has kube_pod_container_status_running, \
         _waiting and _terminated.",
        "Pod status.containerStatuses[].state",
    )
    .prom_labels(
        "kube_pod_container_status_running",
        PromKind::Gauge,
        &["container", "k8s.container.status.state"],
    ),
    gauge(
        "k8s.container.status.reason",
        ValueType::Int,
        "{container}",
        &["k8s.container.name", "k8s.container.status.reason"],
        "1 for the reason of a waiting or terminated container (CrashLoopBackOff, \
         ImagePullBackOff, OOMKilled, Completed, Error, ...); nothing for a running one.",
        "Pod status.containerStatuses[].state.{waiting,terminated}.reason",
    )
    .prom_labels(
        "kube_pod_container_status_waiting_reason",
        PromKind::Gauge,
        &["container", "reason"],
    ),
    gauge(
        "k8s.container.cpu_request",
        ValueType::Double,
        "{cpu}",
        CONTAINER,
        "CPU cores the container requests; sent only when set.",
        "Pod spec.containers[].resources.requests[cpu]",
    )
    .prom_labels(
        "kube_pod_container_resource_requests",
        PromKind::Gauge,
        CONTAINER_LABEL,
    ),
    gauge(
        "k8s.container.cpu_limit",
        ValueType::Double,
        "{cpu}",
        CONTAINER,
        "CPU cores the container is limited to; sent only when set.",
        "Pod spec.containers[].resources.limits[cpu]",
    )
    .prom_labels(
        "kube_pod_container_resource_limits",
        PromKind::Gauge,
        CONTAINER_LABEL,
    ),
    gauge(
        "k8s.container.memory_request",
        ValueType::Int,
        "By",
        CONTAINER,
        "Memory the container requests; sent only when set.",
        "Pod spec.containers[].resources.requests[memory]",
    )
    .prom_labels(
        "kube_pod_container_resource_requests",
        PromKind::Gauge,
        CONTAINER_LABEL,
    ),
    gauge(
        "k8s.container.memory_limit",
        ValueType::Int,
        "By",
        CONTAINER,
        "Memory the container is limited to; sent only when set.",
        "Pod spec.containers[].resources.limits[memory]",
    )
    .prom_labels(
        "kube_pod_container_resource_limits",
        PromKind::Gauge,
        CONTAINER_LABEL,
    ),
];
