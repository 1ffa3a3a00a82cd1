//! The eBPF collector's kernel side: C CO-RE programs (`bpf/tfo_*.bpf.c`, built by
//! `scripts/build-bpf` into committed objects that are embedded here) and the loader that
//! attaches them and reads their in-kernel aggregates.
//!
//! [`snapshot`] is the plain-Rust read API (no aya types); it builds without the default
//! `loader` feature so the OTLP mapping can depend on it alone.

pub mod snapshot;
pub mod tasks;

pub use snapshot::*;

#[cfg(feature = "loader")]
pub mod loader;

#[cfg(feature = "loader")]
pub use loader::{Loader, Options, Preflight, preflight};
