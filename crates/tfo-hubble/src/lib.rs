//! Hubble flow metrics: a client of Cilium's Hubble observer API and the aggregator that
//! turns its flows into bounded counters.
//!
//! [`client::run`] calls `observer.Observer/GetFlows` with `follow` on the node's Hubble
//! socket (`unix:///var/run/cilium/hubble.sock`) or on Hubble Relay (`host:4245`, usually
//! TLS/mTLS), feeds every message to an [`aggregate::Aggregator`] and reconnects with
//! backoff when the stream ends. The agent reads an [`snapshot::Snapshot`] every cycle;
//! the OTLP mapping (crate `tfo-collectors`) needs only that module, which is all that
//! builds without the default `client` feature.
//!
//! The protobuf messages are a subset written for this crate (`proto/`), with Hubble's
//! package, service and field numbers; see `docs/hubble.md`.

pub mod snapshot;

#[cfg(feature = "client")]
pub mod aggregate;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
mod tls;

/// The generated messages and client.
#[cfg(feature = "client")]
#[allow(clippy::all, missing_docs)]
pub mod proto {
    pub mod flow {
        tonic::include_proto!("flow");
    }
    pub mod observer {
        tonic::include_proto!("observer");
    }
}

/// The node-local Hubble socket of a Cilium agent (no TLS; this node's flows only).
pub const DEFAULT_ADDRESS: &str = "unix:///var/run/cilium/hubble.sock";
