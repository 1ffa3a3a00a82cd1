//! Workload metrics: desired and current replicas of Deployments, StatefulSets and
//! DaemonSets, and pod counts of Jobs, one resource per object (`k8s.namespace.name`,
//! `k8s.<kind>.name`, `k8s.<kind>.uid`). Cluster-wide: only the elected agent has them.

use super::{Builder, MetricSet, gauge};
use crate::table::{MetricDef, PromKind, Val, ValueType};

pub const METRICS: &[MetricDef] = &[
    gauge(
        "k8s.deployment.replicas.desired",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods the deployment asks for (spec.replicas, 1 when unset).",
        "Deployment spec.replicas",
    )
    .prom("kube_deployment_spec_replicas", PromKind::Gauge),
    gauge(
        "k8s.deployment.replicas.available",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods of the deployment that have been ready for at least minReadySeconds.",
        "Deployment status.availableReplicas",
    )
    .prom("kube_deployment_status_replicas_available", PromKind::Gauge),
    gauge(
        "k8s.statefulset.replicas.desired",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods the stateful set asks for (spec.replicas, 1 when unset).",
        "StatefulSet spec.replicas",
    )
    .prom("kube_statefulset_replicas", PromKind::Gauge),
    gauge(
        "k8s.statefulset.replicas.ready",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods of the stateful set whose Ready condition is True.",
        "StatefulSet status.readyReplicas",
    )
    .prom("kube_statefulset_status_replicas_ready", PromKind::Gauge),
    gauge(
        "k8s.daemonset.nodes.desired",
        ValueType::Int,
        "{node}",
        &[],
        "Nodes that should run the daemon pod.",
        "DaemonSet status.desiredNumberScheduled",
    )
    .prom(
        "kube_daemonset_status_desired_number_scheduled",
        PromKind::Gauge,
    ),
    gauge(
        "k8s.daemonset.nodes.ready",
        ValueType::Int,
        "{node}",
        &[],
        "Nodes whose daemon pod is ready.",
        "DaemonSet status.numberReady",
    )
    .prom("kube_daemonset_status_number_ready", PromKind::Gauge),
    gauge(
        "k8s.job.pods.active",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods of the job that are pending or running.",
        "Job status.active",
    )
    .prom("kube_job_status_active", PromKind::Gauge),
    gauge(
        "k8s.job.pods.failed",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods of the job that reached phase Failed.",
        "Job status.failed",
    )
    .prom("kube_job_status_failed", PromKind::Gauge),
];
