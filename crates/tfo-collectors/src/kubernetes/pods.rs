//! Pod and container metrics, one resource per pod (`k8s.namespace.name`, `k8s.pod.name`,
//! `k8s.pod.uid`, `k8s.node.name` and the owning workload where ownerReferences name it).
//!
//! Container metrics stay on their pod's resource with a `k8s.container.name` data-point
//! attribute rather than a resource per container (k8s_cluster's layout): a pod's dozen
//! series share one resource on the wire, and the container keeps the label
//! kube-state-metrics gives it (`container`). Init containers are not reported.
//! Every agent reports the pods of its node from its node-local store.

use std::collections::HashMap;
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::KeyValue;
use tfo_kube::model::pod::Container;
use tfo_kube::model::{
    ConditionStatus, ContainerState, Job, Meta, OwnerKind, Pod, PodPhase, ReplicaSet,
};

use super::{Builder, ResourceGroup, count, gauge, ns, resource};
use crate::table::{MetricDef, PromKind, Val, ValueType};

const CONTAINER: &[&str] = &["k8s.container.name"];
const CONTAINER_LABEL: &[&str] = &["container"];

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 12] = [
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

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps pods, naming their owners as far as the pods themselves say (a ReplicaSet, not
/// its Deployment).
pub fn pods(pods: &[Arc<Pod>], now_nanos: u64, out: &mut Vec<ResourceGroup>) {
    pods_with_owners(pods, &[], &[], now_nanos, out);
}

/// Maps pods; a pod whose ReplicaSet (or Job) is in `replicasets` (or `jobs`) also gets
/// that object's owning Deployment (or CronJob) as `k8s.deployment.name`
/// (`k8s.cronjob.name`). The elected agent has those kinds; the others name the
/// ReplicaSet only.
pub fn pods_with_owners(
    pods: &[Arc<Pod>],
    replicasets: &[Arc<ReplicaSet>],
    jobs: &[Arc<Job>],
    now_nanos: u64,
    out: &mut Vec<ResourceGroup>,
) {
    let rs = by_name(replicasets.iter().map(|r| &r.metadata));
    let jobs = by_name(jobs.iter().map(|j| &j.metadata));
    for pod in pods {
        let mut b = Builder::new(now_nanos);
        metrics(pod, &mut b);
        b.finish(attributes(pod, &rs, &jobs), out);
    }
}

type ByName<'a> = HashMap<(&'a str, &'a str), &'a Meta>;

fn by_name<'a>(metas: impl Iterator<Item = &'a Meta>) -> ByName<'a> {
    metas.map(|m| ((ns(m), &*m.name), m)).collect()
}

fn attributes(pod: &Pod, rs: &ByName<'_>, jobs: &ByName<'_>) -> Vec<KeyValue> {
    let m = &pod.metadata;
    let mut pairs: Vec<(&str, &str)> = vec![
        ("k8s.namespace.name", ns(m)),
        ("k8s.pod.name", &m.name),
        ("k8s.pod.uid", &m.uid),
        ("k8s.node.name", pod.spec.node_name.as_deref().unwrap_or("")),
    ];
    if let Some(owner) = &m.controller {
        let name = &*owner.name;
        // ReplicaSets and Jobs are looked up, when the snapshot has them, for their uid
        // and their own owner.
        let (kind_name, lookup) = match owner.kind {
            OwnerKind::ReplicaSet => (
                "k8s.replicaset.name",
                Some((
                    rs,
                    "k8s.replicaset.uid",
                    OwnerKind::Deployment,
                    "k8s.deployment.name",
                )),
            ),
            OwnerKind::Job => (
                "k8s.job.name",
                Some((jobs, "k8s.job.uid", OwnerKind::CronJob, "k8s.cronjob.name")),
            ),
            OwnerKind::StatefulSet => ("k8s.statefulset.name", None),
            OwnerKind::DaemonSet => ("k8s.daemonset.name", None),
            OwnerKind::ReplicationController => ("k8s.replicationcontroller.name", None),
            _ => ("", None),
        };
        if !kind_name.is_empty() {
            pairs.push((kind_name, name));
        }
        if let Some((table, uid_key, parent_kind, parent_key)) = lookup
            && let Some(o) = table.get(&(ns(m), name))
        {
            pairs.push((uid_key, &o.uid));
            if let Some(p) = o.controller.as_ref().filter(|p| p.kind == parent_kind) {
                pairs.push((parent_key, &p.name));
            }
        }
    }
    resource(&pairs)
}

/// k8s_cluster's numbering of the phases.
fn phase_number(p: PodPhase) -> i64 {
    match p {
        PodPhase::Pending => 1,
        PodPhase::Running => 2,
        PodPhase::Succeeded => 3,
        PodPhase::Failed => 4,
        PodPhase::Unknown => 5,
    }
}

fn state_name(s: &ContainerState) -> Option<&'static str> {
    match s {
        ContainerState::Running => Some("running"),
        ContainerState::Waiting { .. } => Some("waiting"),
        ContainerState::Terminated { .. } => Some("terminated"),
        ContainerState::Unknown => None,
    }
}

fn metrics(pod: &Pod, b: &mut Builder) {
    let [
        phase,
        ready,
        containers,
        containers_ready,
        c_ready,
        c_restarts,
        c_state,
        c_reason,
        cpu_request,
        cpu_limit,
        memory_request,
        memory_limit,
    ] = &ROWS;
    let st = &pod.status;
    b.one(phase, Some(Val::I(phase_number(st.phase))));
    let is_ready = st.conditions.ready == Some(ConditionStatus::True);
    b.one(ready, Some(Val::U(u64::from(is_ready))));
    b.one(containers, Some(count(pod.spec.containers.len())));
    b.one(containers_ready, Some(count(pod.ready_containers())));

    let statuses = &st.container_statuses;
    b.many(
        c_ready,
        statuses
            .iter()
            .map(|c| ([&*c.name], Val::U(u64::from(c.ready)))),
    );
    b.many(
        c_restarts,
        statuses
            .iter()
            .map(|c| ([&*c.name], Val::U(u64::from(c.restart_count)))),
    );
    b.many(
        c_state,
        statuses
            .iter()
            .filter_map(|c| Some(([&*c.name, state_name(&c.state)?], Val::U(1)))),
    );
    b.many(
        c_reason,
        statuses.iter().filter_map(|c| {
            let reason = c.state.reason().filter(|r| !r.is_empty())?;
            Some(([&*c.name, reason], Val::U(1)))
        }),
    );

    let specs = &pod.spec.containers;
    let cpu = |f: fn(&Container) -> Option<f64>| {
        specs
            .iter()
            .filter_map(move |c| Some(([&*c.name], Val::F(f(c)?))))
    };
    b.many(cpu_request, cpu(|c| c.resources.requests.cpu));
    b.many(cpu_limit, cpu(|c| c.resources.limits.cpu));
    let mem = |f: fn(&Container) -> Option<u64>| {
        specs
            .iter()
            .filter_map(move |c| Some(([&*c.name], Val::U(f(c)?))))
    };
    b.many(memory_request, mem(|c| c.resources.requests.memory));
    b.many(memory_limit, mem(|c| c.resources.limits.memory));
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kubernetes::testing::{attr, check_against_tables, obj, value, values};

    fn web_pod() -> Arc<Pod> {
        obj(json!({
            "metadata": {
                "name": "web-5d9c7-abcde", "namespace": "shop", "uid": "pod-uid",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web-5d9c7", "uid": "rs-uid", "controller": true}],
                "managedFields": [{"manager": "kubelet"}]
            },
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "app", "resources": {
                    "requests": {"cpu": "250m", "memory": "128Mi"},
                    "limits": {"cpu": "1", "memory": "256Mi"}}},
                {"name": "sidecar"}
            ]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False"},
                               {"type": "PodScheduled", "status": "True"}],
                "containerStatuses": [
                    {"name": "app", "ready": true, "restartCount": 0,
                     "state": {"running": {"startedAt": "2024-01-01T00:00:00Z"}}},
                    {"name": "sidecar", "ready": false, "restartCount": 7,
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                     "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}
                ]
            }
        }))
    }

    #[test]
    fn a_pod_maps_to_one_resource_with_its_containers_as_attributes() {
        let mut out = Vec::new();
        pods(&[web_pod()], 42, &mut out);
        check_against_tables(&out, 42);
        let [g] = &out[..] else { panic!("{out:?}") };
        assert_eq!(
            crate::kubernetes::testing::attrs(&g.attributes),
            [
                ("k8s.namespace.name", "shop"),
                ("k8s.pod.name", "web-5d9c7-abcde"),
                ("k8s.pod.uid", "pod-uid"),
                ("k8s.node.name", "node-a"),
                ("k8s.replicaset.name", "web-5d9c7"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(g.metrics.len(), 12);
        assert_eq!(value(g, "k8s.pod.phase"), 2.0);
        assert_eq!(value(g, "k8s.pod.ready"), 0.0);
        assert_eq!(value(g, "k8s.pod.containers"), 2.0);
        assert_eq!(value(g, "k8s.pod.containers.ready"), 1.0);
        let s = |v: &[&str], x: f64| (v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), x);
        assert_eq!(
            values(g, "k8s.container.ready"),
            [s(&["app"], 1.0), s(&["sidecar"], 0.0)]
        );
        assert_eq!(
            values(g, "k8s.container.restarts"),
            [s(&["app"], 0.0), s(&["sidecar"], 7.0)]
        );
        assert_eq!(
            values(g, "k8s.container.status.state"),
            [s(&["app", "running"], 1.0), s(&["sidecar", "waiting"], 1.0)]
        );
        assert_eq!(
            values(g, "k8s.container.status.reason"),
            [s(&["sidecar", "CrashLoopBackOff"], 1.0)]
        );
        // Only the container that sets them.
        assert_eq!(values(g, "k8s.container.cpu_request"), [s(&["app"], 0.25)]);
        assert_eq!(values(g, "k8s.container.cpu_limit"), [s(&["app"], 1.0)]);
        assert_eq!(
            values(g, "k8s.container.memory_request"),
            [s(&["app"], 134217728.0)]
        );
        assert_eq!(
            values(g, "k8s.container.memory_limit"),
            [s(&["app"], 268435456.0)]
        );
    }

    #[test]
    fn owners_resolve_through_the_snapshot() {
        let rs: Arc<ReplicaSet> = obj(json!({"metadata": {
            "name": "web-5d9c7", "namespace": "shop", "uid": "rs-uid",
            "ownerReferences": [{"kind": "Deployment", "name": "web", "controller": true}]}}));
        // Same name in another namespace: not this pod's.
        let other: Arc<ReplicaSet> = obj(json!({"metadata": {
            "name": "web-5d9c7", "namespace": "other", "uid": "x",
            "ownerReferences": [{"kind": "Deployment", "name": "nope", "controller": true}]}}));
        let job: Arc<Job> = obj(json!({"metadata": {
            "name": "backup-28000000", "namespace": "ops", "uid": "job-uid",
            "ownerReferences": [{"kind": "CronJob", "name": "backup", "controller": true}]}}));
        let job_pod: Arc<Pod> = obj(json!({"metadata": {
            "name": "backup-28000000-xyz", "namespace": "ops", "uid": "p2",
            "ownerReferences": [{"kind": "Job", "name": "backup-28000000", "controller": true}]},
            "status": {"phase": "Succeeded"}}));
        let ds_pod: Arc<Pod> = obj(json!({"metadata": {
            "name": "agent-1", "namespace": "kube-system", "uid": "p3",
            "ownerReferences": [{"kind": "DaemonSet", "name": "agent", "controller": true}]},
            "status": {"phase": "Pending"}}));
        let mut out = Vec::new();
        pods_with_owners(
            &[web_pod(), job_pod, ds_pod],
            &[other, rs],
            &[job],
            1,
            &mut out,
        );
        check_against_tables(&out, 1);
        assert_eq!(attr(&out[0], "k8s.replicaset.uid"), Some("rs-uid"));
        assert_eq!(attr(&out[0], "k8s.deployment.name"), Some("web"));
        assert_eq!(attr(&out[1], "k8s.job.name"), Some("backup-28000000"));
        assert_eq!(attr(&out[1], "k8s.job.uid"), Some("job-uid"));
        assert_eq!(attr(&out[1], "k8s.cronjob.name"), Some("backup"));
        assert_eq!(value(&out[1], "k8s.pod.phase"), 3.0);
        assert_eq!(attr(&out[2], "k8s.daemonset.name"), Some("agent"));
        // Not scheduled yet: no node, no container series.
        assert_eq!(attr(&out[2], "k8s.node.name"), None);
        assert_eq!(value(&out[2], "k8s.pod.phase"), 1.0);
        assert_eq!(out[2].metrics.len(), 4);
    }

    #[test]
    fn a_nearly_empty_pod_still_maps() {
        let p: Arc<Pod> = obj(json!({"metadata": {"name": "p"}, "status": null}));
        let mut out = Vec::new();
        pods(&[p], 1, &mut out);
        assert_eq!(value(&out[0], "k8s.pod.phase"), 5.0);
        assert_eq!(out[0].attributes.len(), 1);
    }
}
