//! Delivery of encoded OTLP requests to a collector.
//!
//! The exporter never sees metric structs: it receives records that are already
//! serialised `Export*ServiceRequest` messages. Concatenating such encodings yields a valid
//! request (the top-level field is repeated), so the buffer can batch stored records
//! without decoding them, and the same transport serves every signal.

pub mod backoff;
pub mod compress;
pub mod encode;
pub mod grpc;
pub mod http;
pub mod outcome;
pub mod tls;

use bytes::Bytes;
pub use outcome::{FailureClass, Outcome};

/// A telemetry signal. Buffer, queue and exporter are generic over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    Metrics,
    Logs,
    /// Spans, which only the local OTLP receiver produces (passed through as received).
    Traces,
}

impl Signal {
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Traces];

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Traces => "traces",
        }
    }
}

/// One encoded request, the unit the queue stores and the exporter batches.
#[derive(Debug, Clone)]
pub struct Record {
    pub signal: Signal,
    /// Data points (metrics), log records (logs) or spans (traces) inside `body`: what is counted as
    /// exported or dropped.
    pub items: u32,
    /// What `batch_size` counts: OTLP metrics, each with all its points (metrics), log
    /// records (logs) or spans (traces). See [`encode::count_units`].
    pub units: u32,
    pub body: Bytes,
    /// The stored form, `items` (u32, little endian) then `body`, when the encoder wrote
    /// `body` behind those 4 bytes (then `body` is a slice of it); empty otherwise. Spares
    /// the buffer a copy of every record (1 MiB per cycle for 1,000 processes).
    pub stored: Bytes,
}

impl Record {
    /// A record from `items ++ body` as written into `buf` (4 bytes, then the request).
    pub fn from_stored(signal: Signal, units: u32, mut buf: Vec<u8>) -> Record {
        let items = buf
            .get(..4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if buf.len() < 4 {
            buf.resize(4, 0);
        }
        let stored = Bytes::from(buf);
        Record {
            signal,
            items,
            units,
            body: stored.slice(4..),
            stored,
        }
    }
}

/// Settings shared by both transports, resolved from the agent config.
#[derive(Debug, Clone)]
pub struct ExporterSettings {
    /// `host:port` or a URL with scheme.
    pub endpoint: String,
    pub gzip: bool,
    pub timeout: std::time::Duration,
    pub tls: Option<tls::TlsSettings>,
    /// Sent on every request: the TelemetryFlow key pair, agent id and user headers.
    /// Values may be secrets; never log them.
    pub headers: Vec<(String, String)>,
    /// `v1` or `v2` HTTP path prefix; unused by gRPC.
    pub http_path_version: &'static str,
    pub user_agent: String,
}

/// Error building a transport from settings (bad endpoint, unreadable CA file, ...).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(pub String);

/// A transport, selected by `telemetryflow.protocol`.
pub enum Exporter {
    Grpc(grpc::GrpcExporter),
    Http(http::HttpExporter),
}

impl Exporter {
    pub fn grpc(settings: &ExporterSettings) -> Result<Self, SetupError> {
        Ok(Exporter::Grpc(grpc::GrpcExporter::new(settings)?))
    }

    pub fn http(settings: &ExporterSettings) -> Result<Self, SetupError> {
        Ok(Exporter::Http(http::HttpExporter::new(settings)?))
    }

    /// Sends one request body (one or more concatenated records of `signal`).
    pub async fn send(&self, signal: Signal, body: Bytes) -> Outcome {
        match self {
            Exporter::Grpc(e) => e.send(signal, body).await,
            Exporter::Http(e) => e.send(signal, body).await,
        }
    }

    /// Where requests go, for logs (never contains credentials).
    pub fn target(&self) -> String {
        match self {
            Exporter::Grpc(e) => e.target(),
            Exporter::Http(e) => e.target(),
        }
    }
}

/// Feeds `f` random and mutated byte strings (a cheap fuzz loop for parsers of untrusted
/// bytes; deterministic seed).
#[cfg(test)]
pub(crate) fn fuzz_bytes(mut f: impl FnMut(&[u8])) {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..20_000 {
        let len = rng.usize(0..64);
        let b: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
        f(&b);
    }
}
