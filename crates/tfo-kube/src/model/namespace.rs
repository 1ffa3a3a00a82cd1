//! core/v1 Namespace: identity and phase.

use serde::Deserialize;

use super::meta::{Meta, null_default};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Namespace {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub status: NamespaceStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct NamespaceStatus {
    #[serde(default, deserialize_with = "null_default")]
    pub phase: NamespacePhase,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum NamespacePhase {
    Active,
    Terminating,
    #[default]
    #[serde(other)]
    Unknown,
}

impl NamespacePhase {
    pub fn as_str(self) -> &'static str {
        match self {
            NamespacePhase::Active => "Active",
            NamespacePhase::Terminating => "Terminating",
            NamespacePhase::Unknown => "Unknown",
        }
    }
}
