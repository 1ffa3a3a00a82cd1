//! Node metrics: capacity, allocatable, conditions and schedulability of each Node, one
//! resource per node (`k8s.node.name`, `k8s.node.uid`). Every agent reports its own Node
//! from its node-local store.

use super::{Builder, MetricSet, gauge};
use crate::table::{MetricDef, PromKind, Val, ValueType};

pub const METRICS: &[MetricDef] = &[
    gauge(
        "k8s.node.capacity.cpu",
        ValueType::Double,
        "{cpu}",
        &[],
        "CPU cores the node has (status.capacity).",
        "Node status.capacity[cpu]",
    )
    .prom("kube_node_status_capacity", PromKind::Gauge),
    gauge(
        "k8s.node.capacity.memory",
        ValueType::Int,
        "By",
        &[],
        "Memory the node has (status.capacity).",
        "Node status.capacity[memory]",
    )
    .prom("kube_node_status_capacity", PromKind::Gauge),
    gauge(
        "k8s.node.capacity.pods",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods the node can run (status.capacity).",
        "Node status.capacity[pods]",
    )
    .prom("kube_node_status_capacity", PromKind::Gauge),
    gauge(
        "k8s.node.capacity.ephemeral_storage",
        ValueType::Int,
        "By",
        &[],
        "Local ephemeral storage the node has (status.capacity).",
        "Node status.capacity[ephemeral-storage]",
    )
    .prom("kube_node_status_capacity", PromKind::Gauge),
    gauge(
        "k8s.node.allocatable.cpu",
        ValueType::Double,
        "{cpu}",
        &[],
        "CPU cores available to pods: capacity less system reservations (status.allocatable).",
        "Node status.allocatable[cpu]",
    )
    .prom("kube_node_status_allocatable", PromKind::Gauge),
    gauge(
        "k8s.node.allocatable.memory",
        ValueType::Int,
        "By",
        &[],
        "Memory available to pods (status.allocatable).",
        "Node status.allocatable[memory]",
    )
    .prom("kube_node_status_allocatable", PromKind::Gauge),
    gauge(
        "k8s.node.allocatable.pods",
        ValueType::Int,
        "{pod}",
        &[],
        "Pods the scheduler may place on the node (status.allocatable).",
        "Node status.allocatable[pods]",
    )
    .prom("kube_node_status_allocatable", PromKind::Gauge),
    gauge(
        "k8s.node.allocatable.ephemeral_storage",
        ValueType::Int,
        "By",
        &[],
        "Local ephemeral storage available to pods (status.allocatable).",
        "Node status.allocatable[ephemeral-storage]",
    )
    .prom("kube_node_status_allocatable", PromKind::Gauge),
    gauge(
        "k8s.node.condition",
        ValueType::Int,
        "1",
        &["k8s.node.condition.type"],
        "Status of each node condition (Ready, MemoryPressure, DiskPressure, PIDPressure, \
         NetworkUnavailable, ...): 1 True, 0 False, -1 Unknown, as k8s_cluster's \
         k8s.node.condition_*. kube-state-metrics has one series per status instead.",
        "Node status.conditions[].type, .status",
    )
    .prom_labels("kube_node_status_condition", PromKind::Gauge, &["condition"]),
    gauge(
        "k8s.node.unschedulable",
        ValueType::Int,
        "1",
        &[],
        "1 if the node is cordoned (spec.unschedulable), else 0.",
        "Node spec.unschedulable",
    )
    .prom("kube_node_spec_unschedulable", PromKind::Gauge),
];
