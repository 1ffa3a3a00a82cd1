//! Namespace metrics, one resource per Namespace (`k8s.namespace.name`,
//! `k8s.namespace.uid`): its phase, its resource quotas, and counts of the objects in it,
//! aggregated over the snapshot. Cluster-wide: only the elected agent has them.
//!
//! Object counts are sent only where they are not zero (as a PromQL `count by
//! (namespace)` of kube-state-metrics series would be): the snapshot cannot tell a
//! namespace without deployments from deployments not being watched. Pods per namespace
//! are sent only when the snapshot's pods are the whole cluster's.

use super::{Builder, MetricSet, gauge};
use crate::table::{MetricDef, PromKind, Val, ValueType};

const QUOTA: &[&str] = &["k8s.resourcequota.name", "k8s.resourcequota.resource_name"];
const QUOTA_LABELS: &[&str] = &["resourcequota", "resource"];

pub const METRICS: &[MetricDef] = &[
    gauge(
        "k8s.namespace.phase",
        ValueType::Int,
        "1",
        &[],
        "Namespace phase as a number, as k8s_cluster encodes it: 1 Active, 0 Terminating.",
        "Namespace status.phase",
    )
    .prom("kube_namespace_status_phase", PromKind::Gauge),
    gauge(
        "k8s.namespace.resource_quotas",
        ValueType::Int,
        "{resourcequota}",
        &[],
        "ResourceQuota objects in the namespace.",
        "ResourceQuota count",
    )
    .prom("kube_resourcequota_created", PromKind::Gauge),
    gauge(
        "k8s.resource_quota.hard_limit",
        ValueType::Double,
        "{resource}",
        QUOTA,
        "The hard limit of each resource of each quota, in the resource's base unit (CPU \
         in cores, memory and storage in bytes, objects as counts; k8s_cluster sends CPU \
         in millicores).",
        "ResourceQuota status.hard",
    )
    .prom_labels("kube_resourcequota", PromKind::Gauge, QUOTA_LABELS),
    gauge(
        "k8s.resource_quota.used",
        ValueType::Double,
        "{resource}",
        QUOTA,
        "What the namespace uses of each resource of each quota, in the resource's base \
         unit.",
        "ResourceQuota status.used",
    )
    .prom_labels("kube_resourcequota", PromKind::Gauge, QUOTA_LABELS),
    gauge(
        "k8s.namespace.pods",
        ValueType::Int,
        "{pod}",
        &["k8s.pod.status.phase"],
        "Pods in the namespace by phase (Pending, Running, Succeeded, Failed, Unknown); sent \
         only when pods are watched cluster-wide.",
        "Pod status.phase, counted",
    )
    .prom_labels("kube_pod_status_phase", PromKind::Gauge, &["phase"]),
    gauge(
        "k8s.namespace.deployments",
        ValueType::Int,
        "{deployment}",
        &[],
        "Deployments in the namespace.",
        "Deployment count",
    )
    .prom("kube_deployment_created", PromKind::Gauge),
    gauge(
        "k8s.namespace.statefulsets",
        ValueType::Int,
        "{statefulset}",
        &[],
        "StatefulSets in the namespace.",
        "StatefulSet count",
    )
    .prom("kube_statefulset_created", PromKind::Gauge),
    gauge(
        "k8s.namespace.daemonsets",
        ValueType::Int,
        "{daemonset}",
        &[],
        "DaemonSets in the namespace.",
        "DaemonSet count",
    )
    .prom("kube_daemonset_created", PromKind::Gauge),
    gauge(
        "k8s.namespace.jobs",
        ValueType::Int,
        "{job}",
        &[],
        "Jobs in the namespace.",
        "Job count",
    )
    .prom("kube_job_created", PromKind::Gauge),
    gauge(
        "k8s.namespace.services",
        ValueType::Int,
        "{service}",
        &[],
        "Services in the namespace.",
        "Service count",
    )
    .prom("kube_service_created", PromKind::Gauge),
];
