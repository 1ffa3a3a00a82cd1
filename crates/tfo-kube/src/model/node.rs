//! core/v1 Node: capacity, allocatable, conditions, schedulability, kubelet facts.

use serde::Deserialize;

use super::meta::{ConditionStatus, Meta, null_default};
use super::quantity::{opt_f64, opt_u64};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Node {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: NodeSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NodeSpec {
    #[serde(default)]
    pub unschedulable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub capacity: NodeResources,
    #[serde(default, deserialize_with = "null_default")]
    pub allocatable: NodeResources,
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: Box<[NodeCondition]>,
    #[serde(default, deserialize_with = "null_default")]
    pub node_info: NodeInfo,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
pub struct NodeResources {
    /// Cores.
    #[serde(default, deserialize_with = "opt_f64")]
    pub cpu: Option<f64>,
    /// Bytes.
    #[serde(default, deserialize_with = "opt_u64")]
    pub memory: Option<u64>,
    #[serde(default, deserialize_with = "opt_u64")]
    pub pods: Option<u64>,
    /// Bytes.
    #[serde(default, rename = "ephemeral-storage", deserialize_with = "opt_u64")]
    pub ephemeral_storage: Option<u64>,
}

/// A node condition: `kind` is its type ("Ready", "MemoryPressure", "DiskPressure",
/// "PIDPressure", "NetworkUnavailable", or any a node-problem-detector adds).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NodeCondition {
    #[serde(rename = "type")]
    pub kind: Box<str>,
    pub status: ConditionStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeInfo {
    #[serde(default)]
    pub kubelet_version: Option<Box<str>>,
    #[serde(default)]
    pub operating_system: Option<Box<str>>,
    #[serde(default)]
    pub architecture: Option<Box<str>>,
    #[serde(default)]
    pub container_runtime_version: Option<Box<str>>,
}

impl Node {
    /// The status of the condition of that type, if the node reports it.
    pub fn condition(&self, kind: &str) -> Option<ConditionStatus> {
        self.status
            .conditions
            .iter()
            .find(|c| &*c.kind == kind)
            .map(|c| c.status)
    }
}
