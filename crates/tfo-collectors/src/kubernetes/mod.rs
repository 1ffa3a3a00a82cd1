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

pub mod events;
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
    collect_in_parts(s, now_nanos, usize::MAX, |part| out.extend(part));
    out
}

/// Maps a snapshot in parts of at most `objects` API objects each (namespace totals come
/// last, in one part), handing each part to `sink` before the next is built. A cluster of
/// 10,000 pods maps to about 190,000 data points; built whole they peak at well over
/// 100 MiB, in parts the peak is one part, so a caller encodes and stores as it goes.
pub fn collect_in_parts(
    s: &Snapshot<'_>,
    now_nanos: u64,
    objects: usize,
    mut sink: impl FnMut(Vec<ResourceGroup>),
) {
    let n = objects.max(1);
    let mut emit = |f: &mut dyn FnMut(&mut Vec<ResourceGroup>)| {
        let mut out = Vec::new();
        f(&mut out);
        if !out.is_empty() {
            sink(out);
        }
    };
    for chunk in s.pods.chunks(n) {
        emit(&mut |out| pods::pods_with_owners(chunk, s.replicasets, s.jobs, now_nanos, out));
    }
    for chunk in s.nodes.chunks(n) {
        emit(&mut |out| nodes::nodes(chunk, now_nanos, out));
    }
    // Workloads one kind at a time: each part a Snapshot holding one chunk of one kind.
    let only = Snapshot {
        pods_cluster_wide: s.pods_cluster_wide,
        ..Snapshot::default()
    };
    for chunk in s.deployments.chunks(n) {
        let part = Snapshot {
            deployments: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.replicasets.chunks(n) {
        let part = Snapshot {
            replicasets: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.statefulsets.chunks(n) {
        let part = Snapshot {
            statefulsets: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.daemonsets.chunks(n) {
        let part = Snapshot {
            daemonsets: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.jobs.chunks(n) {
        let part = Snapshot {
            jobs: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.cronjobs.chunks(n) {
        let part = Snapshot {
            cronjobs: chunk,
            ..only
        };
        emit(&mut |out| workloads::workloads(&part, now_nanos, out));
    }
    for chunk in s.services.chunks(n) {
        emit(&mut |out| services::services(chunk, s.endpoint_slices, now_nanos, out));
    }
    emit(&mut |out| namespaces::namespaces(s, now_nanos, out));
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
        ("events", events::METRICS),
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
            ("events", 5),
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
        for (category, table) in tables {
            for d in table {
                assert!(d.name.starts_with("k8s."), "{}", d.name);
                assert!(names.insert(d.name), "{} twice", d.name);
                if category == "events" {
                    // Counters of exported events; kube-state-metrics has none.
                    continue;
                }
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
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    use opentelemetry_proto::tonic::metrics::v1::{Metric, NumberDataPoint, metric};

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
                (
                    attrs(&p.attributes).into_iter().map(|(_, v)| v).collect(),
                    v,
                )
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

#[cfg(test)]
mod collect_tests {
    use serde_json::json;

    use super::testing::{attr, check_against_tables, obj, value, values};
    use super::*;

    fn find<'a>(out: &'a [ResourceGroup], key: &str, name: &str) -> &'a ResourceGroup {
        out.iter()
            .find(|g| attr(g, key) == Some(name))
            .unwrap_or_else(|| panic!("no resource {key}={name}"))
    }

    fn s(v: &[&str], x: f64) -> (Vec<String>, f64) {
        (v.iter().map(|s| s.to_string()).collect(), x)
    }

    #[test]
    fn a_cluster_snapshot_maps_every_category() {
        let node: Arc<Node> = obj(json!({
            "metadata": {"name": "node-a", "uid": "n-uid"},
            "spec": {"unschedulable": true},
            "status": {
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110",
                             "ephemeral-storage": "100Gi", "nvidia.com/gpu": "1"},
                "allocatable": {"cpu": "3800m", "memory": "15Gi", "pods": "110"},
                "conditions": [{"type": "Ready", "status": "True"},
                               {"type": "DiskPressure", "status": "False"},
                               {"type": "KernelDeadlock", "status": "Unknown"}]
            }
        }));
        let ns = |name: &str, phase: &str| -> Arc<Namespace> {
            obj(
                json!({"metadata": {"name": name, "uid": format!("{name}-uid")},
                "status": {"phase": phase}}),
            )
        };
        let deploy: Arc<Deployment> = obj(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "d-uid"},
            "spec": {}, "status": {"availableReplicas": 2, "replicas": 3}
        }));
        let sts: Arc<StatefulSet> = obj(json!({
            "metadata": {"name": "db", "namespace": "shop", "uid": "s-uid"},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 1}
        }));
        let ds: Arc<DaemonSet> = obj(json!({
            "metadata": {"name": "agent", "namespace": "kube-system", "uid": "ds-uid"},
            "status": {"desiredNumberScheduled": 5, "numberReady": 4}
        }));
        let job: Arc<Job> = obj(json!({
            "metadata": {"name": "backup-1", "namespace": "shop", "uid": "j-uid",
                "ownerReferences": [{"kind": "CronJob", "name": "backup", "controller": true}]},
            "status": {"active": 1, "failed": 2}
        }));
        let svc = |name: &str, spec: serde_json::Value, status: serde_json::Value| {
            obj::<Service>(json!({
                "metadata": {"name": name, "namespace": "shop", "uid": format!("{name}-uid"),
                    "creationTimestamp": "2024-02-29T12:34:56Z"},
                "spec": spec, "status": status
            }))
        };
        let lb = svc(
            "front",
            json!({"type": "LoadBalancer", "clusterIP": "10.0.0.1",
                   "externalIPs": ["1.2.3.4", "5.6.7.8"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "9.9.9.9"}]}}),
        );
        let headless = svc("db", json!({"clusterIP": "None"}), json!({}));
        let slice = |name: &str, svc: &str, ready: &[bool]| -> Arc<EndpointSlice> {
            obj(json!({
                "metadata": {"name": name, "namespace": "shop",
                    "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4",
                "endpoints": ready.iter().map(|r| json!({"addresses": ["10.1.0.1"],
                    "conditions": {"ready": r}})).collect::<Vec<_>>()
            }))
        };
        let quota: Arc<ResourceQuota> = obj(json!({
            "metadata": {"name": "compute", "namespace": "shop", "uid": "q-uid"},
            "spec": {"hard": {"requests.cpu": "4"}},
            "status": {"hard": {"requests.cpu": "4", "pods": "10"},
                       "used": {"requests.cpu": "1500m", "pods": "3"}}
        }));
        let pod = |name: &str, ns: &str, phase: &str| -> Arc<Pod> {
            obj(
                json!({"metadata": {"name": name, "namespace": ns, "uid": name},
                "status": {"phase": phase}}),
            )
        };
        let pods = [
            pod("a", "shop", "Running"),
            pod("b", "shop", "Running"),
            pod("c", "shop", "Failed"),
            pod("d", "elsewhere", "Running"),
        ];
        let nodes = [node];
        let namespaces = [
            ns("shop", "Active"),
            ns("old", "Terminating"),
            ns("kube-system", "Active"),
        ];
        let (deployments, statefulsets, daemonsets, jobs) = ([deploy], [sts], [ds], [job]);
        let services = [lb, headless];
        let slices = [
            slice("front-1", "front", &[true, false]),
            slice("front-2", "front", &[true]),
            slice("db-1", "db", &[]),
        ];
        let quotas = [quota];
        let snap = Snapshot {
            pods: &pods,
            pods_cluster_wide: true,
            nodes: &nodes,
            namespaces: &namespaces,
            deployments: &deployments,
            statefulsets: &statefulsets,
            daemonsets: &daemonsets,
            jobs: &jobs,
            services: &services,
            endpoint_slices: &slices,
            quotas: &quotas,
            ..Snapshot::default()
        };
        let out = collect(&snap, 7);
        check_against_tables(&out, 7);
        // 4 pods, 1 node, 4 workloads, 2 services, 3 namespaces.
        assert_eq!(out.len(), 14);
        // In parts of one object the same groups come, in the same order.
        let mut parts = Vec::new();
        let mut in_parts = Vec::new();
        collect_in_parts(&snap, 7, 1, |p| {
            parts.push(p.len());
            in_parts.extend(p);
        });
        assert_eq!(in_parts, out);
        assert_eq!(parts, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3], "{parts:?}");

        let n = find(&out, "k8s.node.name", "node-a");
        assert_eq!(attr(n, "k8s.node.uid"), Some("n-uid"));
        assert_eq!(value(n, "k8s.node.capacity.cpu"), 4.0);
        assert_eq!(value(n, "k8s.node.capacity.memory"), 16.0 * 1073741824.0);
        assert_eq!(value(n, "k8s.node.capacity.pods"), 110.0);
        assert_eq!(
            value(n, "k8s.node.capacity.ephemeral_storage"),
            100.0 * 1073741824.0
        );
        assert!((value(n, "k8s.node.allocatable.cpu") - 3.8).abs() < 1e-9);
        assert_eq!(value(n, "k8s.node.allocatable.memory"), 15.0 * 1073741824.0);
        // Not reported by this node: not sent.
        assert!(testing::metric(n, "k8s.node.allocatable.ephemeral_storage").is_none());
        assert_eq!(
            values(n, "k8s.node.condition"),
            [
                s(&["Ready"], 1.0),
                s(&["DiskPressure"], 0.0),
                s(&["KernelDeadlock"], -1.0)
            ]
        );
        assert_eq!(value(n, "k8s.node.unschedulable"), 1.0);

        let d = find(&out, "k8s.deployment.name", "web");
        assert_eq!(attr(d, "k8s.namespace.name"), Some("shop"));
        assert_eq!(attr(d, "k8s.deployment.uid"), Some("d-uid"));
        assert_eq!(value(d, "k8s.deployment.replicas.desired"), 1.0);
        assert_eq!(value(d, "k8s.deployment.replicas.available"), 2.0);
        let st = find(&out, "k8s.statefulset.name", "db");
        assert_eq!(value(st, "k8s.statefulset.replicas.desired"), 3.0);
        assert_eq!(value(st, "k8s.statefulset.replicas.ready"), 1.0);
        let dset = find(&out, "k8s.daemonset.name", "agent");
        assert_eq!(value(dset, "k8s.daemonset.nodes.desired"), 5.0);
        assert_eq!(value(dset, "k8s.daemonset.nodes.ready"), 4.0);
        let j = find(&out, "k8s.job.name", "backup-1");
        assert_eq!(attr(j, "k8s.cronjob.name"), Some("backup"));
        assert_eq!(value(j, "k8s.job.pods.active"), 1.0);
        assert_eq!(value(j, "k8s.job.pods.failed"), 2.0);

        let f = find(&out, "k8s.service.name", "front");
        assert_eq!(attr(f, "k8s.service.uid"), Some("front-uid"));
        assert_eq!(
            values(f, "k8s.service.spec.type"),
            [s(&["LoadBalancer"], 1.0)]
        );
        assert_eq!(
            values(f, "k8s.service.endpoints"),
            [s(&["ready"], 2.0), s(&["not_ready"], 1.0)]
        );
        assert_eq!(value(f, "k8s.service.load_balancer.ingress"), 1.0);
        assert_eq!(value(f, "k8s.service.external_ips"), 2.0);
        assert_eq!(value(f, "k8s.service.created"), 1_709_210_096.0);
        let h = find(&out, "k8s.service.name", "db");
        assert_eq!(values(h, "k8s.service.spec.type"), [s(&["ClusterIP"], 1.0)]);
        assert_eq!(
            values(h, "k8s.service.endpoints"),
            [s(&["ready"], 0.0), s(&["not_ready"], 0.0)]
        );
        assert!(testing::metric(h, "k8s.service.load_balancer.ingress").is_none());

        let shop = find(&out, "k8s.namespace.uid", "shop-uid");
        assert_eq!(value(shop, "k8s.namespace.phase"), 1.0);
        assert_eq!(value(shop, "k8s.namespace.resource_quotas"), 1.0);
        assert_eq!(
            values(shop, "k8s.resource_quota.hard_limit"),
            [
                s(&["compute", "pods"], 10.0),
                s(&["compute", "requests.cpu"], 4.0)
            ]
        );
        assert_eq!(
            values(shop, "k8s.resource_quota.used"),
            [
                s(&["compute", "pods"], 3.0),
                s(&["compute", "requests.cpu"], 1.5)
            ]
        );
        assert_eq!(
            values(shop, "k8s.namespace.pods"),
            [
                s(&["Pending"], 0.0),
                s(&["Running"], 2.0),
                s(&["Succeeded"], 0.0),
                s(&["Failed"], 1.0),
                s(&["Unknown"], 0.0)
            ]
        );
        assert_eq!(value(shop, "k8s.namespace.deployments"), 1.0);
        assert_eq!(value(shop, "k8s.namespace.statefulsets"), 1.0);
        assert_eq!(value(shop, "k8s.namespace.jobs"), 1.0);
        assert_eq!(value(shop, "k8s.namespace.services"), 2.0);
        // Zero counts are not sent.
        assert!(testing::metric(shop, "k8s.namespace.daemonsets").is_none());
        let old = find(&out, "k8s.namespace.uid", "old-uid");
        assert_eq!(value(old, "k8s.namespace.phase"), 0.0);
        assert_eq!(old.metrics.len(), 2, "phase and pods only");

        // Node-local pods: no namespace pod counts.
        let local = collect(
            &Snapshot {
                pods_cluster_wide: false,
                ..snap
            },
            7,
        );
        let shop = find(&local, "k8s.namespace.uid", "shop-uid");
        assert!(testing::metric(shop, "k8s.namespace.pods").is_none());
        assert!(collect(&Snapshot::default(), 7).is_empty());
    }
}
