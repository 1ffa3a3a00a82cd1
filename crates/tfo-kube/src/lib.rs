//! The Kubernetes client side of tfo-agent. Watches the API server (list then watch, with
//! bookmarks, relists on 410 Gone and backoff on errors), keeps slimmed copies of the
//! objects the collector reports on, elects one agent of a DaemonSet to report
//! cluster-wide state (a `coordination.k8s.io/v1` Lease), and de-duplicates events.
//! It knows nothing of OTLP: the agent maps these stores to metrics and logs.

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod events;
#[cfg(feature = "client")]
pub mod lease;
pub mod model;
#[cfg(feature = "client")]
pub mod store;

/// The API client every part shares (watchers, elector, events).
#[cfg(feature = "client")]
pub use kube::Client;
