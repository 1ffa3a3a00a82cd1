//! apps/v1 Deployment, ReplicaSet, StatefulSet, DaemonSet; batch/v1 Job, CronJob: the
//! replica counts and job progress their metrics report. Pod templates, selectors and
//! strategies are skipped. Counts are the API's int32s; absent status fields read 0.

use serde::Deserialize;

use super::meta::{Meta, count_seq, null_default, opt_time};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Deployment {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ReplicasSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: DeploymentStatus,
}

/// `spec.replicas`: `None` when the server omitted it (it defaults to 1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ReplicasSpec {
    #[serde(default)]
    pub replicas: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub unavailable_replicas: i32,
}

/// Its `metadata.controller` names the owning Deployment.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ReplicaSet {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ReplicasSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: ReplicaSetStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct StatefulSet {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ReplicasSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: StatefulSetStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatefulSetStatus {
    #[serde(default)]
    pub replicas: i32,
    #[serde(default)]
    pub ready_replicas: i32,
    #[serde(default)]
    pub current_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    #[serde(default)]
    pub available_replicas: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct DaemonSet {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub status: DaemonSetStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetStatus {
    #[serde(default)]
    pub current_number_scheduled: i32,
    #[serde(default)]
    pub desired_number_scheduled: i32,
    #[serde(default)]
    pub number_misscheduled: i32,
    #[serde(default)]
    pub number_ready: i32,
    #[serde(default)]
    pub updated_number_scheduled: i32,
    #[serde(default)]
    pub number_available: i32,
    #[serde(default)]
    pub number_unavailable: i32,
}

/// Its `metadata.controller` names the owning CronJob, if any.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Job {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: JobSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: JobStatus,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct JobSpec {
    #[serde(default)]
    pub completions: Option<i32>,
    #[serde(default)]
    pub parallelism: Option<i32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStatus {
    #[serde(default)]
    pub active: i32,
    #[serde(default)]
    pub failed: i32,
    #[serde(default)]
    pub succeeded: i32,
    /// Unix seconds.
    #[serde(default, deserialize_with = "opt_time")]
    pub start_time: Option<i64>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "opt_time")]
    pub completion_time: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct CronJob {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: CronJobSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: CronJobStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CronJobSpec {
    #[serde(default)]
    pub suspend: bool,
    #[serde(default)]
    pub schedule: Box<str>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CronJobStatus {
    /// Number of running jobs (the length of `status.active`).
    #[serde(default, rename = "active", deserialize_with = "count_seq")]
    pub active_jobs: u32,
    /// Unix seconds.
    #[serde(default, deserialize_with = "opt_time")]
    pub last_schedule_time: Option<i64>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "opt_time")]
    pub last_successful_time: Option<i64>,
}
