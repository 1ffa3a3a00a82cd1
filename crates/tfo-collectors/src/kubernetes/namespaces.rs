//! Namespace metrics, one resource per Namespace (`k8s.namespace.name`,
//! `k8s.namespace.uid`): its phase, its resource quotas, and counts of the objects in it,
//! aggregated over the snapshot. Cluster-wide: only the elected agent has them.
//!
//! Object counts are sent only where they are not zero (as a PromQL `count by
//! (namespace)` of kube-state-metrics series would be): the snapshot cannot tell a
//! namespace without deployments from deployments not being watched. Pods per namespace
//! are sent only when the snapshot's pods are the whole cluster's.

use std::collections::HashMap;

use tfo_kube::model::{Meta, NamespacePhase, PodPhase, ResourceQuota};

use super::{Builder, ResourceGroup, Snapshot, count, gauge, ns, resource};
use crate::table::{MetricDef, PromKind, Val, ValueType};

const QUOTA: &[&str] = &["k8s.resourcequota.name", "k8s.resourcequota.resource_name"];
const QUOTA_LABELS: &[&str] = &["resourcequota", "resource"];

/// The table; destructured by the mapping, so a row cannot be forgotten.
const ROWS: [MetricDef; 10] = [
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

pub const METRICS: &[MetricDef] = &ROWS;

/// What one namespace holds, counted over the snapshot.
#[derive(Default)]
struct Counts<'a> {
    quotas: Vec<&'a ResourceQuota>,
    /// By [`PHASES`] index.
    pods: [usize; 5],
    deployments: usize,
    statefulsets: usize,
    daemonsets: usize,
    jobs: usize,
    services: usize,
}

const PHASES: [PodPhase; 5] = [
    PodPhase::Pending,
    PodPhase::Running,
    PodPhase::Succeeded,
    PodPhase::Failed,
    PodPhase::Unknown,
];

/// Maps the snapshot's namespaces, one resource each, with the objects in them counted.
pub fn namespaces(s: &Snapshot<'_>, now_nanos: u64, out: &mut Vec<ResourceGroup>) {
    let [
        phase,
        quota_count,
        hard,
        used,
        pods,
        deployments,
        statefulsets,
        daemonsets,
        jobs,
        services,
    ] = &ROWS;
    if s.namespaces.is_empty() {
        return;
    }
    // Only namespaces in the snapshot are reported: objects count into their entries.
    let mut counts: HashMap<&str, Counts<'_>> = s
        .namespaces
        .iter()
        .map(|n| (&*n.metadata.name, Counts::default()))
        .collect();
    {
        let mut tally = |m: &Meta, f: fn(&mut Counts<'_>)| {
            if let Some(c) = counts.get_mut(ns(m)) {
                f(c);
            }
        };
        for d in s.deployments {
            tally(&d.metadata, |c| c.deployments += 1);
        }
        for st in s.statefulsets {
            tally(&st.metadata, |c| c.statefulsets += 1);
        }
        for ds in s.daemonsets {
            tally(&ds.metadata, |c| c.daemonsets += 1);
        }
        for j in s.jobs {
            tally(&j.metadata, |c| c.jobs += 1);
        }
        for svc in s.services {
            tally(&svc.metadata, |c| c.services += 1);
        }
    }
    for q in s.quotas {
        if let Some(c) = counts.get_mut(ns(&q.metadata)) {
            c.quotas.push(q);
        }
    }
    if s.pods_cluster_wide {
        for p in s.pods {
            if let Some(c) = counts.get_mut(ns(&p.metadata))
                && let Some(i) = PHASES.iter().position(|ph| *ph == p.status.phase)
            {
                c.pods[i] += 1;
            }
        }
    }
    for n in s.namespaces {
        let m = &n.metadata;
        let Some(c) = counts.get(&*m.name) else {
            continue;
        };
        let mut b = Builder::new(now_nanos);
        b.one(
            phase,
            match n.status.phase {
                NamespacePhase::Active => Some(Val::I(1)),
                NamespacePhase::Terminating => Some(Val::I(0)),
                NamespacePhase::Unknown => None,
            },
        );
        let nonzero = |n: usize| (n > 0).then(|| count(n));
        b.one(quota_count, nonzero(c.quotas.len()));
        // The enforced copy (status.hard); the spec's until the quota controller has
        // caught up with a new quota.
        let quota_points =
            |pick: fn(&ResourceQuota) -> &std::collections::BTreeMap<Box<str>, f64>| {
                c.quotas
                    .iter()
                    .flat_map(move |q| {
                        pick(q)
                            .iter()
                            .map(move |(res, v)| ([&*q.metadata.name, &**res], Val::F(*v)))
                    })
                    .collect::<Vec<_>>()
            };
        let hard_points = quota_points(|q| {
            if q.status.hard.is_empty() {
                &q.spec.hard
            } else {
                &q.status.hard
            }
        });
        b.many(hard, hard_points.iter().map(|(a, v)| (*a, *v)));
        let used_points = quota_points(|q| &q.status.used);
        b.many(used, used_points.iter().map(|(a, v)| (*a, *v)));
        if s.pods_cluster_wide {
            b.many(
                pods,
                PHASES
                    .iter()
                    .zip(c.pods)
                    .map(|(ph, n)| ([ph.as_str()], count(n))),
            );
        }
        b.one(deployments, nonzero(c.deployments));
        b.one(statefulsets, nonzero(c.statefulsets));
        b.one(daemonsets, nonzero(c.daemonsets));
        b.one(jobs, nonzero(c.jobs));
        b.one(services, nonzero(c.services));
        b.finish(
            resource(&[
                ("k8s.namespace.name", &m.name),
                ("k8s.namespace.uid", &m.uid),
            ]),
            out,
        );
    }
}
