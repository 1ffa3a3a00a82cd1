//! tfo-logs: follows log files the way a log agent must, and knows nothing of OTLP, buffers
//! or the agent. The agent turns [`LogLine`]s into OTLP log records and tells the tailer
//! when they are durable.
//!
//! # The loop
//!
//! [`Tailer`] is blocking and driven by its caller, on a thread of its own:
//!
//! ```no_run
//! # use tfo_logs::{Tailer, TailerConfig};
//! # fn durable_append(_: &[tfo_logs::LogLine]) {}
//! let config = TailerConfig { paths: vec!["/var/log/*.log".into()], ..Default::default() };
//! let mut tailer = Tailer::new(config, "/var/lib/tfo-agent/logs")?;
//! loop {
//!     let poll = tailer.poll(4 << 20);            // at most ~4 MiB of file data
//!     for e in &poll.errors { eprintln!("{}: {}", e.path.display(), e.message); }
//!     durable_append(&poll.lines);                // may block: that is the backpressure
//!     tailer.commit(&poll.positions());           // only after the records are durable
//!     if !poll.more {
//!         std::thread::sleep(tailer.poll_interval());
//!     }
//! }
//! # Ok::<(), tfo_logs::BuildError>(())
//! ```
//!
//! Commits may lag behind polls (an asynchronous buffer acknowledges later): keep the
//! [`Checkpoint`]s with the batch and commit them when the batch is durable. A position
//! covers every record of its stream returned before it.
//!
//! # Guarantees
//!
//! - Every line is returned once, in file order, across rename and copytruncate rotations
//!   and truncation, as long as the rotated file stays reachable (open, or matched by a
//!   pattern); a line longer than `max_line_bytes` comes back in pieces, counted.
//! - After a crash, reading resumes from the last checkpoint written, which covers only
//!   committed records: lines after it are returned again (duplicates), none are lost.
//! - Nothing panics on file content, and I/O errors are counted in [`Stats::errors`] and
//!   reported once per path in [`Poll::errors`].
//!
//! Details of identity and rotation are in the `tailer` module source; the decoding rules
//! (CRI, docker, JSON, multiline, severity) in `decode` and `severity`.

mod checkpoint;
mod decode;
mod fingerprint;
mod glob;
mod k8s;
pub mod severity;
mod tailer;
mod time;
mod types;

pub use tailer::Tailer;
pub use types::{
    BuildError, Checkpoint, ErrorCounts, ErrorKind, FileError, FileInfo, Format, K8sMeta, LogLine,
    Multiline, Poll, StartAt, Stats, TailerConfig, positions,
};
