//! Node metrics: capacity, allocatable, conditions and schedulability of each Node, one
//! resource per node (`k8s.node.name`, `k8s.node.uid`). Every agent reports its own Node
//! from its node-local store.

use std::sync::Arc;

use tfo_kube::model::Node;

use super::{Builder, ResourceGroup, condition, gauge, resource};
use crate::table::{MetricDef, PromKind, Val, ValueType};

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 10] = [
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
    .prom_labels(
        "kube_node_status_condition",
        PromKind::Gauge,
        &["condition"],
    ),
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

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps nodes, one resource each; a capacity the node does not report is not sent.
pub fn nodes(nodes: &[Arc<Node>], now_nanos: u64, out: &mut Vec<ResourceGroup>) {
    let [
        cap_cpu,
        cap_memory,
        cap_pods,
        cap_storage,
        alloc_cpu,
        alloc_memory,
        alloc_pods,
        alloc_storage,
        conditions,
        unschedulable,
    ] = &ROWS;
    for node in nodes {
        let mut b = Builder::new(now_nanos);
        for (res, cpu, memory, pods, storage) in [
            (
                &node.status.capacity,
                cap_cpu,
                cap_memory,
                cap_pods,
                cap_storage,
            ),
            (
                &node.status.allocatable,
                alloc_cpu,
                alloc_memory,
                alloc_pods,
                alloc_storage,
            ),
        ] {
            b.one(cpu, res.cpu.map(Val::F));
            b.one(memory, res.memory.map(Val::U));
            b.one(pods, res.pods.map(Val::U));
            b.one(storage, res.ephemeral_storage.map(Val::U));
        }
        b.many(
            conditions,
            node.status
                .conditions
                .iter()
                .map(|c| ([&*c.kind], condition(c.status))),
        );
        b.one(
            unschedulable,
            Some(Val::U(u64::from(node.spec.unschedulable))),
        );
        let m = &node.metadata;
        b.finish(
            resource(&[("k8s.node.name", &m.name), ("k8s.node.uid", &m.uid)]),
            out,
        );
    }
}
