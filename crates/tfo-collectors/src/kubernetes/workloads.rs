//! Workload metrics: desired and current replicas of Deployments, StatefulSets and
//! DaemonSets, and pod counts of Jobs, one resource per object (`k8s.namespace.name`,
//! `k8s.<kind>.name`, `k8s.<kind>.uid`). Cluster-wide: only the elected agent has them.

use tfo_kube::model::OwnerKind;

use super::{Builder, ResourceGroup, Snapshot, gauge, int, ns, object_resource, resource};
use crate::table::{MetricDef, PromKind, ValueType};

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 8] = [
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

pub const METRICS: &[MetricDef] = &ROWS;

/// Maps the snapshot's deployments, stateful sets, daemon sets and jobs, one resource
/// each. A Job started by a CronJob also carries `k8s.cronjob.name`.
pub fn workloads(s: &Snapshot<'_>, now_nanos: u64, out: &mut Vec<ResourceGroup>) {
    let [
        deploy_desired,
        deploy_available,
        sts_desired,
        sts_ready,
        ds_desired,
        ds_ready,
        job_active,
        job_failed,
    ] = &ROWS;
    // spec.replicas defaults to 1 when the object leaves it out.
    let desired = |r: Option<i32>| Some(int(r.unwrap_or(1)));
    for d in s.deployments {
        let mut b = Builder::new(now_nanos);
        b.one(deploy_desired, desired(d.spec.replicas));
        b.one(deploy_available, Some(int(d.status.available_replicas)));
        b.finish(
            object_resource("k8s.deployment.name", "k8s.deployment.uid", &d.metadata),
            out,
        );
    }
    for st in s.statefulsets {
        let mut b = Builder::new(now_nanos);
        b.one(sts_desired, desired(st.spec.replicas));
        b.one(sts_ready, Some(int(st.status.ready_replicas)));
        b.finish(
            object_resource("k8s.statefulset.name", "k8s.statefulset.uid", &st.metadata),
            out,
        );
    }
    for ds in s.daemonsets {
        let mut b = Builder::new(now_nanos);
        b.one(ds_desired, Some(int(ds.status.desired_number_scheduled)));
        b.one(ds_ready, Some(int(ds.status.number_ready)));
        b.finish(
            object_resource("k8s.daemonset.name", "k8s.daemonset.uid", &ds.metadata),
            out,
        );
    }
    for job in s.jobs {
        let mut b = Builder::new(now_nanos);
        b.one(job_active, Some(int(job.status.active)));
        b.one(job_failed, Some(int(job.status.failed)));
        let m = &job.metadata;
        let cronjob = m
            .controller
            .as_ref()
            .filter(|o| o.kind == OwnerKind::CronJob)
            .map_or("", |o| &*o.name);
        b.finish(
            resource(&[
                ("k8s.namespace.name", ns(m)),
                ("k8s.job.name", &m.name),
                ("k8s.job.uid", &m.uid),
                ("k8s.cronjob.name", cronjob),
            ]),
            out,
        );
    }
}
