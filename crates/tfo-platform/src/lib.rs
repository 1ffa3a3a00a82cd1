//! Client side of the TelemetryFlow Platform agent API.
//!
//! The platform is the control plane next to the OTLP data path: the agent registers once
//! (`POST /api/v2/agents/register`), heartbeats with a system information payload
//! (`POST /api/v2/agents/{id}/heartbeat`), and reads its status and remote configuration
//! (`GET /api/v2/agents/{id}/{status,config}`). This crate holds the pieces the agent wires
//! together, each usable and testable on its own:
//!
//! - [`client`]: the HTTP client, request headers, reply parsing, error classification and
//!   the retry loop.
//! - [`idstore`]: where the platform-assigned agent id survives restarts.
//! - [`sysinfo`]: the heartbeat's `systemInfo` payload, read from `/proc` and `/sys` under a
//!   root path so it works against host mounts and fixture trees alike.
//! - [`detect`]: container, virtualization and cloud detection (the latter through the
//!   instance metadata services).
//! - [`model`]: request and reply bodies.
//!
//! The agent's configuration is mapped onto [`PlatformSettings`] by the caller; this crate
//! does not read configuration files.

pub mod client;
pub mod detect;
pub mod idstore;
pub mod model;
pub mod netaddr;
mod read;
pub mod settings;
pub mod sysinfo;

pub use client::{PlatformClient, PlatformError, RetryNotice, jittered};
pub use detect::cloud::{CloudInfo, CloudMetadataSettings, CloudProvider, detect_cloud};
pub use detect::container::ContainerInfo;
pub use detect::virt::VirtualizationInfo;
pub use idstore::{IdSource, IdStore, IdStoreError};
pub use model::{
    AgentHealth, HeartbeatBody, HeartbeatReply, RegisterReply, RegisterRequest, RemoteConfig,
};
pub use settings::{PlatformSettings, SetupError};
pub use sysinfo::{CollectorOptions, SystemInfo, SystemInfoCollector};
pub use tfo_exporter::tls::TlsSettings;
