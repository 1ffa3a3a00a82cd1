//! Slim copies of the API objects the collector reports on: deserialised straight from the
//! API server's JSON, keeping only the fields a metric, a resource attribute or an event
//! record reads. Everything else (managedFields, annotations, unused spec) is skipped by
//! the deserialiser, so it is never allocated.

pub mod event;
pub mod meta;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod quantity;
pub mod quota;
pub mod service;
pub mod workload;

pub use event::Event;
pub use meta::{ConditionStatus, Meta, OwnerKind, OwnerRef, Time, parse_time};
pub use namespace::{Namespace, NamespacePhase};
pub use node::Node;
pub use pod::{ContainerState, Pod, PodPhase, QosClass};
pub use quantity::{Quantity, QuantityError, parse_quantity};
pub use quota::ResourceQuota;
pub use service::{EndpointSlice, Service, ServiceType};
pub use workload::{CronJob, DaemonSet, Deployment, Job, ReplicaSet, StatefulSet};
