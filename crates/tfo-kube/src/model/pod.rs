//! core/v1 Pod: identity, placement, phase, readiness, per-container requests/limits and
//! restart/state. The rest of the spec (volumes, env, probes, images, ...) is skipped.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::meta::{ConditionStatus, Meta, null_default, opt_time};
use super::quantity::{opt_f64, opt_u64};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: PodSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    /// Empty until scheduled.
    #[serde(default)]
    pub node_name: Option<Box<str>>,
    #[serde(default, deserialize_with = "null_default")]
    pub containers: Box<[Container]>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub name: Box<str>,
    #[serde(default, deserialize_with = "null_default")]
    pub resources: Resources,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct Resources {
    #[serde(default, deserialize_with = "null_default")]
    pub requests: CpuMemory,
    #[serde(default, deserialize_with = "null_default")]
    pub limits: CpuMemory,
}

/// The cpu and memory entries of a resource list (other resources, e.g. GPUs, skipped).
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct CpuMemory {
    /// Cores ("250m" = 0.25).
    #[serde(default, deserialize_with = "opt_f64")]
    pub cpu: Option<f64>,
    /// Bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub memory: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    #[default]
    #[serde(other)]
    Unknown,
}

impl PodPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum QosClass {
    Guaranteed,
    Burstable,
    BestEffort,
    #[serde(other)]
    Unknown,
}

impl QosClass {
    pub fn as_str(self) -> &'static str {
        match self {
            QosClass::Guaranteed => "Guaranteed",
            QosClass::Burstable => "Burstable",
            QosClass::BestEffort => "BestEffort",
            QosClass::Unknown => "Unknown",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub phase: PodPhase,
    /// e.g. "Evicted", "NodeLost".
    #[serde(default)]
    pub reason: Option<Box<str>>,
    #[serde(default)]
    pub qos_class: Option<QosClass>,
    /// Unix seconds.
    #[serde(default, deserialize_with = "opt_time")]
    pub start_time: Option<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: PodConditions,
    #[serde(default, deserialize_with = "null_default")]
    pub container_statuses: Box<[ContainerStatus]>,
}

/// The pod conditions the collector reports, picked out of the `conditions` list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodConditions {
    pub ready: Option<ConditionStatus>,
    pub scheduled: Option<ConditionStatus>,
    pub containers_ready: Option<ConditionStatus>,
    pub initialized: Option<ConditionStatus>,
}

impl<'de> Deserialize<'de> for PodConditions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        enum Kind {
            Ready,
            PodScheduled,
            ContainersReady,
            Initialized,
            #[serde(other)]
            Other,
        }
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "type")]
            kind: Kind,
            status: ConditionStatus,
        }
        let mut out = PodConditions::default();
        for c in Vec::<Raw>::deserialize(d)? {
            let slot = match c.kind {
                Kind::Ready => &mut out.ready,
                Kind::PodScheduled => &mut out.scheduled,
                Kind::ContainersReady => &mut out.containers_ready,
                Kind::Initialized => &mut out.initialized,
                Kind::Other => continue,
            };
            *slot = Some(c.status);
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerStatus {
    pub name: Box<str>,
    pub ready: bool,
    pub restart_count: u32,
    pub state: ContainerState,
    /// Reason of the previous termination ("OOMKilled", "Error", "Completed").
    pub last_terminated_reason: Option<Box<str>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ContainerState {
    Running,
    /// e.g. "CrashLoopBackOff", "ImagePullBackOff", "ContainerCreating".
    Waiting {
        reason: Option<Box<str>>,
    },
    Terminated {
        reason: Option<Box<str>>,
        exit_code: i32,
    },
    #[default]
    Unknown,
}

impl ContainerState {
    pub fn reason(&self) -> Option<&str> {
        match self {
            ContainerState::Waiting { reason } | ContainerState::Terminated { reason, .. } => {
                reason.as_deref()
            }
            _ => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainerStatus {
    #[serde(default)]
    name: Box<str>,
    #[serde(default)]
    ready: bool,
    #[serde(default)]
    restart_count: u32,
    #[serde(default, deserialize_with = "null_default")]
    state: RawState,
    #[serde(default, deserialize_with = "null_default")]
    last_state: RawState,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawState {
    #[serde(default)]
    running: Option<IgnoredAny>,
    #[serde(default)]
    waiting: Option<RawReason>,
    #[serde(default)]
    terminated: Option<RawReason>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawReason {
    #[serde(default)]
    reason: Option<Box<str>>,
    #[serde(default)]
    exit_code: i32,
}

impl<'de> Deserialize<'de> for ContainerStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let r = RawContainerStatus::deserialize(d)?;
        let state = match r.state {
            RawState {
                running: Some(_), ..
            } => ContainerState::Running,
            RawState {
                terminated: Some(t),
                ..
            } => ContainerState::Terminated {
                reason: t.reason,
                exit_code: t.exit_code,
            },
            RawState {
                waiting: Some(w), ..
            } => ContainerState::Waiting { reason: w.reason },
            _ => ContainerState::Unknown,
        };
        Ok(ContainerStatus {
            name: r.name,
            ready: r.ready,
            restart_count: r.restart_count,
            state,
            last_terminated_reason: r.last_state.terminated.and_then(|t| t.reason),
        })
    }
}

impl Pod {
    /// Containers whose status says ready.
    pub fn ready_containers(&self) -> usize {
        self.status
            .container_statuses
            .iter()
            .filter(|c| c.ready)
            .count()
    }
}
