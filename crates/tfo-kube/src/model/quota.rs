//! core/v1 ResourceQuota: hard limits and usage per resource name ("pods",
//! "requests.cpu", "limits.memory", "count/deployments.apps", ...), as numbers in base
//! units (cores, bytes, counts).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::Deserializer;

use super::meta::{Meta, null_default};
use super::quantity::Quantity;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResourceQuota {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ResourceQuotaSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: ResourceQuotaStatus,
}

/// The quota as written; `status.hard` is what is enforced (it lags a spec change briefly).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResourceQuotaSpec {
    #[serde(default, deserialize_with = "quantities")]
    pub hard: BTreeMap<Box<str>, f64>,
}

/// `status.hard` is the enforced copy of `spec.hard`; `status.used` is the usage.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ResourceQuotaStatus {
    #[serde(default, deserialize_with = "quantities")]
    pub hard: BTreeMap<Box<str>, f64>,
    #[serde(default, deserialize_with = "quantities")]
    pub used: BTreeMap<Box<str>, f64>,
}

fn quantities<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<Box<str>, f64>, D::Error> {
    let m: Option<BTreeMap<Box<str>, Quantity>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect())
}
