//! The eBPF collector's kernel side: C CO-RE programs (`bpf/tfo_*.bpf.c`, built by
//! `scripts/build-bpf` into committed objects that are embedded here) and the loader that
//! attaches them and reads their in-kernel aggregates.
//!
//! [`snapshot`] is the plain-Rust read API (no aya types); it builds without the default
//! `loader` feature so the OTLP mapping can depend on it alone.
//!
//! [`tasks`] is the process collector's source of every process's `stat` and `io`
//! numbers in one read: an `iter/task` program (`bpf/tfo_task.bpf.c`), its record
//! parser, and (with `loader`) [`tasks::TaskIter`], which loads it with `aya-obj` and
//! bpf(2) against a small subset of the kernel's BTF.

pub mod snapshot;
pub mod tasks;

pub use snapshot::*;

#[cfg(feature = "loader")]
pub mod loader;

#[cfg(feature = "loader")]
pub use loader::{Loader, Options, Preflight, preflight};
