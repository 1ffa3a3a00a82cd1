//! The Kubernetes collector's OTLP mapping: snapshots of the tfo-kube stores become
//! metrics grouped by resource, one [`ResourceGroup`] per API object (a pod, a node, a
//! deployment, ...), with OpenTelemetry semantic-convention resource attributes.
//!
//! One file per category, each with its metric table at the top (names follow the seed,
//! then the OpenTelemetry Collector's `k8s_cluster` receiver; each row names its
//! kube-state-metrics equivalent). Every metric is a Gauge, as in `k8s_cluster`: these are
//! observed states of objects, not counters the agent accumulates.
//!
//! The mapping does not know where a snapshot came from: pods and the node are in every
//! agent's node-local store, the cluster-wide kinds only in the elected agent's. The agent
//! adds `k8s.cluster.name` to every resource itself.

pub mod namespaces;
pub mod nodes;
pub mod pods;
pub mod services;
pub mod workloads;

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint};
use tfo_kube::model::{
    ConditionStatus, CronJob, DaemonSet, Deployment, EndpointSlice, Job, Meta, Namespace, Node,
    Pod, ReplicaSet, ResourceQuota, Service, StatefulSet,
};

use crate::Ctx;
use crate::table::{MetricDef, MetricKind, Val, ValueType};

/// The metrics of one resource (one API object).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResourceGroup {
    /// Resource attributes, e.g. `k8s.namespace.name`, `k8s.pod.name`, `k8s.pod.uid`.
    pub attributes: Vec<KeyValue>,
    pub metrics: Vec<Metric>,
}

impl From<ResourceGroup> for (Vec<KeyValue>, Vec<Metric>) {
    fn from(g: ResourceGroup) -> Self {
        (g.attributes, g.metrics)
    }
}

/// What the stores hold at one tick. A kind that is not watched (not the leader, or its
/// category turned off) is an empty slice.
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot<'a> {
    pub pods: &'a [Arc<Pod>],
    /// `pods` holds every pod of the cluster (cluster-wide pod scope), so namespace pod
    /// counts can be derived from it; false for the node-local store.
    pub pods_cluster_wide: bool,
    pub nodes: &'a [Arc<Node>],
    pub namespaces: &'a [Arc<Namespace>],
    pub deployments: &'a [Arc<Deployment>],
    /// Only read to name the Deployment owning a pod's ReplicaSet.
    pub replicasets: &'a [Arc<ReplicaSet>],
    pub statefulsets: &'a [Arc<StatefulSet>],
    pub daemonsets: &'a [Arc<DaemonSet>],
    pub jobs: &'a [Arc<Job>],
    /// Not read yet: a Job names its CronJob itself, and the seed's eight workload rows
    /// have no CronJob metric.
    pub cronjobs: &'a [Arc<CronJob>],
    pub services: &'a [Arc<Service>],
    pub endpoint_slices: &'a [Arc<EndpointSlice>],
    pub quotas: &'a [Arc<ResourceQuota>],
}

/// Maps a whole snapshot: pods, nodes, workloads, services, namespaces (events are
/// mapped by `events`).
pub fn collect(s: &Snapshot<'_>, now_nanos: u64) -> Vec<ResourceGroup> {
    let mut out = Vec::new();
    pods::pods_with_owners(s.pods, s.replicasets, s.jobs, now_nanos, &mut out);
    nodes::nodes(s.nodes, now_nanos, &mut out);
    workloads::workloads(s, now_nanos, &mut out);
    services::services(s.services, s.endpoint_slices, now_nanos, &mut out);
    namespaces::namespaces(s, now_nanos, &mut out);
    out
}

/// `(category, its metric table)` for the docs, in the seed's order (events are in
/// `events`).
pub fn metric_tables() -> Vec<(&'static str, &'static [MetricDef])> {
    vec![
        ("pods", pods::METRICS),
        ("nodes", nodes::METRICS),
        ("deployments (workloads)", workloads::METRICS),
        ("services", services::METRICS),
        ("namespaces", namespaces::METRICS),
    ]
}

/// A table row: every Kubernetes metric is a Gauge.
pub(crate) const fn gauge(
    name: &'static str,
    value: ValueType,
    unit: &'static str,
    attributes: &'static [&'static str],
    help: &'static str,
    source: &'static str,
) -> MetricDef {
    MetricDef::new(
        name,
        MetricKind::Gauge,
        value,
        unit,
        attributes,
        help,
        source,
    )
}

/// Builds one resource's metrics from its table, so names and units come from the rows.
pub(crate) struct Builder {
    ctx: Ctx,
    metrics: Vec<Metric>,
}

impl Builder {
    pub(crate) fn new(now_nanos: u64) -> Builder {
        Builder {
            ctx: Ctx {
                now_ns: now_nanos,
                boot_ns: 0,
            },
            metrics: Vec::new(),
        }
    }

    /// One point without attributes; `None` sends nothing (the value is not known).
    pub(crate) fn one(&mut self, def: &MetricDef, v: Option<Val>) {
        if let Some(v) = v {
            let p = def.point(Vec::new(), v, &self.ctx);
            self.metrics.push(def.build(vec![p]));
        }
    }

    /// Points with attributes (given as values, in the order of the row's attributes).
    pub(crate) fn many<'v, const N: usize>(
        &mut self,
        def: &MetricDef,
        points: impl IntoIterator<Item = ([&'v str; N], Val)>,
    ) {
        let pts: Vec<NumberDataPoint> = points
            .into_iter()
            .map(|(values, v)| {
                let attrs = def
                    .attributes
                    .iter()
                    .zip(values)
                    .map(|(k, v)| crate::otlp::attr(k, v))
                    .collect();
                def.point(attrs, v, &self.ctx)
            })
            .collect();
        def.push(pts, &mut self.metrics);
    }

    /// Appends the resource to `out` unless it has no metric.
    pub(crate) fn finish(self, attributes: Vec<KeyValue>, out: &mut Vec<ResourceGroup>) {
        if !self.metrics.is_empty() {
            out.push(ResourceGroup {
                attributes,
                metrics: self.metrics,
            });
        }
    }
}

/// Resource attributes from `(key, value)` pairs, skipping empty values (a uid the
/// object did not carry, for example).
pub(crate) fn resource(pairs: &[(&str, &str)]) -> Vec<KeyValue> {
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| crate::otlp::attr(k, *v))
        .collect()
}

/// A count as a point value.
pub(crate) fn count(n: usize) -> Val {
    Val::U(n as u64)
}

/// An API int32 (replica counts) as a point value.
pub(crate) fn int(n: i32) -> Val {
    Val::I(i64::from(n))
}

/// A condition as k8s_cluster encodes it: 1 True, 0 False, -1 Unknown.
pub(crate) fn condition(s: ConditionStatus) -> Val {
    Val::I(match s {
        ConditionStatus::True => 1,
        ConditionStatus::False => 0,
        ConditionStatus::Unknown => -1,
    })
}

/// The namespace of a namespaced object ("" if the API left it out).
pub(crate) fn ns(m: &Meta) -> &str {
    m.namespace.as_deref().unwrap_or("")
}

/// `k8s.namespace.name`, `k8s.<kind>.name`, `k8s.<kind>.uid` of a namespaced object.
pub(crate) fn object_resource(kind_name: &str, kind_uid: &str, m: &Meta) -> Vec<KeyValue> {
    resource(&[
        ("k8s.namespace.name", ns(m)),
        (kind_name, &m.name),
        (kind_uid, &m.uid),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_the_seed_count_and_k8s_names() {
        let want = [
            ("pods", 12),
            ("nodes", 10),
            ("deployments (workloads)", 8),
            ("services", 5),
            ("namespaces", 10),
        ];
        let tables = metric_tables();
        assert_eq!(
            tables
                .iter()
                .map(|(c, t)| (*c, t.len()))
                .collect::<Vec<_>>(),
            want
        );
        let mut names = std::collections::HashSet::new();
        for (_, table) in tables {
            for d in table {
                assert!(d.name.starts_with("k8s."), "{}", d.name);
                assert!(names.insert(d.name), "{} twice", d.name);
                assert_eq!(d.kind, MetricKind::Gauge, "{}", d.name);
                let p = d
                    .prom
                    .expect("every row names its kube-state-metrics series");
                assert!(p.name.starts_with("kube_"), "{}", p.name);
                assert_eq!(p.labels.len(), d.attributes.len(), "{}", d.name);
                assert!(!d.unit.is_empty() && !d.help.is_empty(), "{}", d.name);
            }
        }
        for seed in [
            "k8s.pod.phase",
            "k8s.pod.containers.ready",
            "k8s.node.capacity.cpu",
            "k8s.node.allocatable.memory",
            "k8s.deployment.replicas.desired",
            "k8s.deployment.replicas.available",
            "k8s.service.spec.type",
            "k8s.service.endpoints",
            "k8s.namespace.phase",
            "k8s.namespace.resource_quotas",
        ] {
            assert!(names.contains(seed), "{seed}");
        }
    }
}

/// Helpers for the category tests: objects from API JSON, and lookups in the output.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric};
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;

    use super::ResourceGroup;

    pub(crate) fn obj<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> Arc<T> {
        Arc::new(serde_json::from_value(json).expect("fixture deserialises"))
    }

    pub(crate) fn attrs(kv: &[KeyValue]) -> Vec<(String, String)> {
        kv.iter()
            .map(|a| {
                let v = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    other => panic!("{}: {other:?}", a.key),
                };
                (a.key.clone(), v)
            })
            .collect()
    }

    pub(crate) fn attr<'a>(g: &'a ResourceGroup, key: &str) -> Option<&'a str> {
        g.attributes.iter().find(|a| a.key == key).and_then(|a| {
            match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) => Some(s.as_str()),
                _ => None,
            }
        })
    }

    pub(crate) fn metric<'a>(g: &'a ResourceGroup, name: &str) -> Option<&'a Metric> {
        g.metrics.iter().find(|m| m.name == name)
    }

    fn points(m: &Metric) -> &[NumberDataPoint] {
        match &m.data {
            Some(metric::Data::Gauge(g)) => &g.data_points,
            other => panic!("{}: not a gauge: {other:?}", m.name),
        }
    }

    /// `(attribute values, value)` of every point of the metric, values as f64.
    pub(crate) fn values(g: &ResourceGroup, name: &str) -> Vec<(Vec<String>, f64)> {
        let m = metric(g, name).unwrap_or_else(|| panic!("{name} missing"));
        points(m)
            .iter()
            .map(|p| {
                let v = match p.value {
                    Some(Value::AsInt(i)) => i as f64,
                    Some(Value::AsDouble(d)) => d,
                    None => panic!("{name}: no value"),
                };
                (attrs(&p.attributes).into_iter().map(|(_, v)| v).collect(), v)
            })
            .collect()
    }

    /// The value of a metric with one point and no attributes.
    pub(crate) fn value(g: &ResourceGroup, name: &str) -> f64 {
        match &values(g, name)[..] {
            [(a, v)] if a.is_empty() => *v,
            other => panic!("{name}: {other:?}"),
        }
    }

    /// Every metric of every group: its unit and time must be the table's and `now`.
    pub(crate) fn check_against_tables(groups: &[ResourceGroup], now: u64) {
        let tables = super::metric_tables();
        for g in groups {
            assert!(!g.metrics.is_empty());
            for m in &g.metrics {
                let def = tables
                    .iter()
                    .flat_map(|(_, t)| t.iter())
                    .find(|d| d.name == m.name)
                    .unwrap_or_else(|| panic!("{} not in a table", m.name));
                assert_eq!(m.unit, def.unit, "{}", m.name);
                assert_eq!(m.description, def.help, "{}", m.name);
                for p in points(m) {
                    assert_eq!(p.time_unix_nano, now);
                    let keys: Vec<_> = p.attributes.iter().map(|a| a.key.as_str()).collect();
                    assert_eq!(keys, def.attributes, "{}", m.name);
                    let int = matches!(p.value, Some(Value::AsInt(_)));
                    assert_eq!(int, def.value == crate::table::ValueType::Int, "{}", m.name);
                }
            }
        }
    }
}
