//! The encoders: one per signal, each serialising its OTLP items into records of at most
//! `batch_size` units and at most [`MAX_RECORD_BYTES`].
//!
//! - [`MetricsEncoder`] wraps collected metrics with the agent's resource and scope into
//!   `ExportMetricsServiceRequest` records of at most `batch_size` metrics (an OTLP `Metric`
//!   with all its data points, as the seed's "batch of 100 metrics"). A metric is split
//!   across records (by data points, each part keeping its descriptor) only when it alone is
//!   larger than the byte bound.
//! - [`LogsEncoder`] wraps log records, each with its own resource, into
//!   `ExportLogsServiceRequest` records of at most `batch_size` log records, with one
//!   `ResourceLogs` per distinct resource in a record. A log record is never split: one
//!   larger than the byte bound travels alone.
//!
//! Records are cut at the encoder, not at send time, so that a record is the unit of
//! buffering, acknowledgement and retry, and a replayed backlog keeps to `batch_size`.

use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, Sum, Summary, metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::{Record, Signal};

/// Most bytes of one encoded record. Requests join whole records up to
/// [`MAX_REQUEST_BYTES`], so even uncompressed a request stays under the 4 MiB message
/// limit gRPC servers apply by default.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most bytes of one request built from stored records (at least one record is sent).
pub const MAX_REQUEST_BYTES: usize = 3 << 20;

/// Most bytes of one logs request built from stored records (at least one record is sent),
/// and of one record the log collector stores, so that under load a request is one record,
/// sent without joining (copying) records. Below the 256 KiB from which the agent's
/// allocator maps every block afresh (`tfo-agent` main): the encoded record, its stored
/// copy and its gzip output come from the heap instead of page faults on new mappings,
/// which cost about a tenth of the agent's CPU with 1 MiB records. At this size the fixed
/// cost of a request is already small (about 2 200 requests per 256 MiB of 256-byte lines,
/// against 10 500 at 100 log records per request).
pub const LOGS_REQUEST_BYTES: usize = 240 << 10;

pub struct MetricsEncoder {
    resource: Resource,
    /// The instrumentation scope (the agent), encoded: written into every `ScopeMetrics`.
    scope_bytes: Vec<u8>,
    max_metrics: usize,
    max_bytes: usize,
}

impl MetricsEncoder {
    pub fn new(
        resource_attributes: Vec<KeyValue>,
        scope_version: &str,
        max_metrics: usize,
    ) -> Self {
        let scope = InstrumentationScope {
            name: "tfo-agent".to_string(),
            version: scope_version.to_string(),
            ..Default::default()
        };
        MetricsEncoder {
            resource: Resource {
                attributes: resource_attributes,
                ..Default::default()
            },
            scope_bytes: scope.encode_to_vec(),
            max_metrics: max_metrics.max(1),
            max_bytes: MAX_RECORD_BYTES,
        }
    }

    #[cfg(test)]
    fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    pub fn resource(&self) -> &Resource {
        &self.resource
    }

    /// Encodes `metrics` into records appended to `out`; returns the data points encoded.
    pub fn encode(&self, metrics: Vec<Metric>, out: &mut Vec<Record>) -> usize {
        self.encode_groups(vec![(Vec::new(), metrics)], out)
    }

    /// Like [`MetricsEncoder::encode`], followed by metrics a collector wrote in the wire
    /// format itself: each an encoded OTLP `Metric` message (no length prefix) with its
    /// count of data points. They are copied into the records as they are (split by data
    /// points only when one alone exceeds the byte bound); the bytes are not checked.
    pub fn encode_mixed(
        &self,
        metrics: Vec<Metric>,
        encoded: Vec<(Vec<u8>, usize)>,
        out: &mut Vec<Record>,
    ) -> usize {
        let items = metrics.into_iter().map(Item::Struct).chain(
            encoded
                .into_iter()
                .map(|(body, points)| Item::Encoded { body, points }),
        );
        self.encode_items(vec![(Vec::new(), items.collect())], out)
    }

    /// Encodes metrics that belong to different resources (one Kubernetes object each, for
    /// example): each group goes under the encoder's resource attributes plus the group's
    /// own, a group's attribute replacing an encoder attribute of the same key. Records are
    /// bounded as in [`MetricsEncoder::encode`] (at most `max_metrics` metrics and the byte
    /// bound, counting every resource a record repeats); consecutive groups share a record,
    /// each as its own `ResourceMetrics`, and a group cut across records carries its
    /// resource in each. Returns the data points encoded.
    pub fn encode_groups(
        &self,
        groups: Vec<(Vec<KeyValue>, Vec<Metric>)>,
        out: &mut Vec<Record>,
    ) -> usize {
        let groups = groups
            .into_iter()
            .map(|(a, ms)| (a, ms.into_iter().map(Item::Struct).collect()))
            .collect();
        self.encode_items(groups, out)
    }

    fn encode_items(
        &self,
        groups: Vec<(Vec<KeyValue>, Vec<Item>)>,
        out: &mut Vec<Record>,
    ) -> usize {
        let scope_len = self.scope_bytes.len();
        let mut total = 0;
        let mut chunk = Chunk::default();
        for (attributes, metrics) in groups {
            if metrics.iter().all(|m| m.points() == 0) {
                continue;
            }
            let resource = Arc::new(self.group_resource(attributes));
            // ResourceMetrics framing, its resource and its scope: paid once per record the
            // group appears in.
            let overhead = framed_len(resource.encoded_len()) + framed_len(scope_len) + 16;
            let group = Group { resource, overhead };
            for m in metrics {
                let n = m.points();
                if n == 0 {
                    continue;
                }
                total += n;
                let len = m.encoded_len();
                if len + 8 + overhead > self.max_bytes {
                    // Too large for one record: parts of about half the bound each, so a
                    // part never needs splitting again and leaves room for its neighbours.
                    self.flush(&mut chunk, out);
                    let per = (n * (self.max_bytes / 2) / (len + 8)).max(1);
                    for part in m.split(per) {
                        let len = part.encoded_len();
                        self.push(&mut chunk, &group, part, len, out);
                    }
                    continue;
                }
                self.push(&mut chunk, &group, m, len, out);
            }
        }
        self.flush(&mut chunk, out);
        total
    }

    /// The encoder's resource with `extra` attributes, which win over the encoder's own.
    fn group_resource(&self, extra: Vec<KeyValue>) -> Resource {
        if extra.is_empty() {
            return self.resource.clone();
        }
        let mut attributes: Vec<KeyValue> = self
            .resource
            .attributes
            .iter()
            .filter(|a| !extra.iter().any(|e| e.key == a.key))
            .cloned()
            .collect();
        attributes.extend(extra);
        Resource {
            attributes,
            ..self.resource.clone()
        }
    }

    /// Adds `m` (of `len` encoded bytes) to the record being filled.
    fn push(&self, chunk: &mut Chunk, group: &Group, m: Item, len: usize, out: &mut Vec<Record>) {
        let size = len + 8;
        let opens = !chunk.is_open(group);
        let need = size + if opens { group.overhead } else { 0 };
        if chunk.metrics >= self.max_metrics || chunk.bytes + need > self.max_bytes {
            self.flush(chunk, out);
        }
        if !chunk.is_open(group) {
            chunk.bytes += group.overhead;
            chunk.groups.push((group.resource.clone(), Vec::new()));
        }
        chunk.points += m.points();
        chunk.bytes += size;
        chunk.metrics += 1;
        if let Some((_, ms)) = chunk.groups.last_mut() {
            ms.push((m, len));
        }
    }

    fn flush(&self, chunk: &mut Chunk, out: &mut Vec<Record>) {
        if chunk.metrics == 0 {
            return;
        }
        let c = std::mem::take(chunk);
        // ExportMetricsServiceRequest { resource_metrics = 1: ResourceMetrics { resource =
        // 1, scope_metrics = 2: ScopeMetrics { scope = 1, metrics = 2 } } }, written with
        // the lengths already known, as prost would (it would size every nested message
        // again at each enclosing level).
        let groups: Vec<(Vec<u8>, usize, usize)> = c
            .groups
            .iter()
            .map(|(resource, metrics)| {
                let resource = resource.encode_to_vec();
                let scope_metrics = framed_len(self.scope_bytes.len())
                    + metrics
                        .iter()
                        .map(|(_, len)| framed_len(*len))
                        .sum::<usize>();
                let resource_metrics = framed_len(resource.len()) + framed_len(scope_metrics);
                (resource, scope_metrics, resource_metrics)
            })
            .collect();
        let total: usize = groups.iter().map(|(_, _, rm)| framed_len(*rm)).sum();
        // The item count first: the buffer stores `items ++ request` (Record::stored).
        let mut buf = Vec::with_capacity(4 + total);
        buf.extend_from_slice(&(c.points as u32).to_le_bytes());
        for ((_, metrics), (resource, scope_metrics, resource_metrics)) in
            c.groups.into_iter().zip(groups)
        {
            put_len_field(&mut buf, 1, resource_metrics);
            put_len_field(&mut buf, 1, resource.len());
            buf.extend_from_slice(&resource);
            put_len_field(&mut buf, 2, scope_metrics);
            put_len_field(&mut buf, 1, self.scope_bytes.len());
            buf.extend_from_slice(&self.scope_bytes);
            for (m, len) in metrics {
                put_len_field(&mut buf, 2, len);
                match m {
                    Item::Struct(m) => m.encode_raw(&mut buf),
                    Item::Encoded { body, .. } => buf.extend_from_slice(&body),
                }
            }
        }
        debug_assert_eq!(buf.len(), 4 + total);
        out.push(Record::from_stored(Signal::Metrics, c.metrics as u32, buf));
    }
}

/// Encodes log records into `ExportLogsServiceRequest` records (see the module docs).
///
/// Input order is kept within each resource: a record takes a contiguous run of the input,
/// and its `items` say how many, so a caller can tell which inputs a stored record holds
/// (the log collector commits file positions by that).
///
/// Log records come as structs ([`LogsEncoder::encode`]) or already serialised
/// ([`LogsEncoder::encode_serialized`]: a producer that writes the `LogRecord` wire format
/// itself saves building and freeing the structs, a few allocations per log line). The
/// request framing around them is written here, without copying them more than once.
pub struct LogsEncoder {
    scope: Vec<u8>,
    max_records: usize,
    max_bytes: usize,
}

impl LogsEncoder {
    pub fn new(scope_version: &str, max_records: usize) -> Self {
        let scope = InstrumentationScope {
            name: "tfo-agent".to_string(),
            version: scope_version.to_string(),
            ..Default::default()
        };
        LogsEncoder {
            scope: scope.encode_to_vec(),
            max_records: max_records.max(1),
            max_bytes: MAX_RECORD_BYTES,
        }
    }

    /// A smaller byte bound than [`MAX_RECORD_BYTES`] (for a small buffer, or tests).
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.max(1);
        self
    }

    /// Encodes `logs`, each log record with its resource, into records appended to `out`;
    /// returns the log records encoded (all of them: none is skipped). Log records whose
    /// resources are equal share one `ResourceLogs` within a record; comparing `Arc`s by
    /// pointer first makes the common case (one resource per file) cheap.
    pub fn encode(
        &self,
        logs: impl IntoIterator<Item = (Arc<Resource>, LogRecord)>,
        out: &mut Vec<Record>,
    ) -> usize {
        let mut arena = Vec::new();
        let mut spans = Vec::new();
        for (resource, rec) in logs {
            let start = arena.len();
            rec.encode_raw(&mut arena);
            spans.push((resource, start..arena.len()));
        }
        self.encode_serialized(spans.into_iter().map(|(r, range)| (r, &arena[range])), out)
    }

    /// Like [`LogsEncoder::encode`], with each log record given as the encoding of an OTLP
    /// `LogRecord` message (its fields, without a length prefix). The bytes are not checked.
    pub fn encode_serialized<'a>(
        &self,
        logs: impl IntoIterator<Item = (Arc<Resource>, &'a [u8])>,
        out: &mut Vec<Record>,
    ) -> usize {
        let mut total = 0;
        let mut chunk = LogChunk::default();
        for (resource, rec) in logs {
            let size = framed_len(rec.len());
            if chunk.records > 0
                && (chunk.records >= self.max_records || chunk.bytes + size > self.max_bytes)
            {
                self.flush_logs(&mut chunk, out);
            }
            let group = match chunk
                .groups
                .iter()
                .position(|g| Arc::ptr_eq(&g.resource, &resource) || *g.resource == *resource)
            {
                Some(i) => i,
                None => {
                    let encoded = resource.encode_to_vec();
                    chunk.bytes += framed_len(encoded.len()) + framed_len(self.scope.len()) + 16;
                    chunk.groups.push(LogGroup {
                        resource,
                        encoded,
                        records: Vec::new(),
                    });
                    chunk.groups.len() - 1
                }
            };
            chunk.groups[group].records.push(rec);
            chunk.records += 1;
            chunk.bytes += size;
            total += 1;
        }
        self.flush_logs(&mut chunk, out);
        total
    }

    /// Writes `ExportLogsServiceRequest { resource_logs: [ResourceLogs { resource,
    /// scope_logs: [ScopeLogs { scope, log_records }] }] }` with exact lengths.
    fn flush_logs(&self, chunk: &mut LogChunk<'_>, out: &mut Vec<Record>) {
        if chunk.records == 0 {
            return;
        }
        let c = std::mem::take(chunk);
        let sizes: Vec<(usize, usize)> = c
            .groups
            .iter()
            .map(|g| {
                let scope_logs = framed_len(self.scope.len())
                    + g.records.iter().map(|r| framed_len(r.len())).sum::<usize>();
                (
                    scope_logs,
                    framed_len(g.encoded.len()) + framed_len(scope_logs),
                )
            })
            .collect();
        let total: usize = sizes.iter().map(|(_, rl)| framed_len(*rl)).sum();
        let mut buf = Vec::with_capacity(4 + total);
        buf.extend_from_slice(&(c.records as u32).to_le_bytes());
        for (g, (scope_logs, resource_logs)) in c.groups.iter().zip(sizes) {
            // ExportLogsServiceRequest.resource_logs = 1
            put_len_field(&mut buf, 1, resource_logs);
            // ResourceLogs.resource = 1, ResourceLogs.scope_logs = 2
            put_len_field(&mut buf, 1, g.encoded.len());
            buf.extend_from_slice(&g.encoded);
            put_len_field(&mut buf, 2, scope_logs);
            // ScopeLogs.scope = 1, ScopeLogs.log_records = 2
            put_len_field(&mut buf, 1, self.scope.len());
            buf.extend_from_slice(&self.scope);
            for r in &g.records {
                put_len_field(&mut buf, 2, r.len());
                buf.extend_from_slice(r);
            }
        }
        debug_assert_eq!(buf.len(), 4 + total);
        out.push(Record::from_stored(Signal::Logs, c.records as u32, buf));
    }
}

/// Bytes of a length-delimited field with a one-byte key and `len` bytes of payload.
fn framed_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Key (field `field`, wire type 2) and length of a length-delimited field.
fn put_len_field(buf: &mut Vec<u8>, field: u32, len: usize) {
    prost::encoding::encode_key(field, prost::encoding::WireType::LengthDelimited, buf);
    prost::encoding::encode_varint(len as u64, buf);
}

struct LogGroup<'a> {
    resource: Arc<Resource>,
    encoded: Vec<u8>,
    records: Vec<&'a [u8]>,
}

#[derive(Default)]
struct LogChunk<'a> {
    groups: Vec<LogGroup<'a>>,
    records: usize,
    bytes: usize,
}

/// One resource's metrics as [`MetricsEncoder::encode_groups`] packs them.
struct Group {
    resource: Arc<Resource>,
    overhead: usize,
}

/// A metric of a record being filled, with its encoded length.
type SizedItem = (Item, usize);

/// The metrics of the record being filled, by resource in input order.
#[derive(Default)]
struct Chunk {
    groups: Vec<(Arc<Resource>, Vec<SizedItem>)>,
    metrics: usize,
    points: usize,
    bytes: usize,
}

impl Chunk {
    /// Whether the record's last resource is `g`'s, so its next metric joins it.
    fn is_open(&self, g: &Group) -> bool {
        self.groups
            .last()
            .is_some_and(|(r, _)| Arc::ptr_eq(r, &g.resource))
    }
}

/// A metric to encode: a struct, or a `Metric` message a collector encoded itself.
enum Item {
    Struct(Metric),
    Encoded { body: Vec<u8>, points: usize },
}

impl Item {
    fn points(&self) -> usize {
        match self {
            Item::Struct(m) => point_count(m),
            Item::Encoded { points, .. } => *points,
        }
    }

    fn encoded_len(&self) -> usize {
        match self {
            Item::Struct(m) => m.encoded_len(),
            Item::Encoded { body, .. } => body.len(),
        }
    }

    /// Parts of at most `per` data points each, with the same descriptor.
    fn split(self, per: usize) -> Vec<Item> {
        match self {
            Item::Struct(mut m) => {
                let mut parts = Vec::new();
                while point_count(&m) > per {
                    parts.push(Item::Struct(split_off_front(&mut m, per)));
                }
                parts.push(Item::Struct(m));
                parts
            }
            Item::Encoded { body, points } => match split_encoded(&body, per) {
                Some(parts) => parts
                    .into_iter()
                    .map(|(body, points)| Item::Encoded { body, points })
                    .collect(),
                // Not a metric with a data field this can cut: sent whole.
                None => vec![Item::Encoded { body, points }],
            },
        }
    }
}

/// A protobuf varint from the front of `buf`, advancing it; `None` when malformed.
fn varint(buf: &mut &[u8]) -> Option<u64> {
    prost::encoding::decode_varint(buf).ok()
}

/// One field of a protobuf message: its number, and its bytes whole (key included) and
/// its payload (for length-delimited fields; else empty). `None` when malformed.
fn next_field<'a>(buf: &mut &'a [u8]) -> Option<(u64, &'a [u8], &'a [u8])> {
    let whole = *buf;
    let key = varint(buf)?;
    let payload: &[u8] = match key & 7 {
        0 => {
            varint(buf)?;
            &[]
        }
        1 | 5 => {
            let n = if key & 7 == 1 { 8 } else { 4 };
            *buf = buf.get(n..)?;
            &[]
        }
        2 => {
            let len = usize::try_from(varint(buf)?).ok()?;
            let p = buf.get(..len)?;
            *buf = &buf[len..];
            p
        }
        _ => return None,
    };
    Some((key >> 3, &whole[..whole.len() - buf.len()], payload))
}

/// Splits an encoded `Metric` whose data (gauge = 5, sum = 7, histogram = 9,
/// exponential_histogram = 10, summary = 11) holds more than `per` data points (field 1
/// of each) into metrics of at most `per` points, each with the other fields as they are.
fn split_encoded(body: &[u8], per: usize) -> Option<Vec<(Vec<u8>, usize)>> {
    let mut head = Vec::new();
    let mut data = None;
    let mut rest = body;
    while !rest.is_empty() {
        let (field, whole, payload) = next_field(&mut rest)?;
        match field {
            5 | 7 | 9 | 10 | 11 if data.is_none() => data = Some((field, payload)),
            _ => head.extend_from_slice(whole),
        }
    }
    let (field, payload) = data?;
    let (mut points, mut tail) = (Vec::new(), Vec::new());
    let mut rest = payload;
    while !rest.is_empty() {
        let (f, whole, _) = next_field(&mut rest)?;
        if f == 1 {
            points.push(whole);
        } else {
            tail.extend_from_slice(whole);
        }
    }
    Some(
        points
            .chunks(per.max(1))
            .map(|part| {
                let inner = part.iter().map(|p| p.len()).sum::<usize>() + tail.len();
                let mut m = Vec::with_capacity(head.len() + framed_len(inner) + 9);
                m.extend_from_slice(&head);
                put_len_field(&mut m, field as u32, inner);
                for p in part {
                    m.extend_from_slice(p);
                }
                m.extend_from_slice(&tail);
                (m, part.len())
            })
            .collect(),
    )
}

/// What `batch_size` counts in an encoded request: its OTLP metrics (metrics) or log
/// records (logs). Read from the protobuf framing without decoding the values, so stored
/// records (including those written by older versions, cut by data points) can be joined
/// into requests of at most `batch_size`. Malformed input counts as one.
pub fn count_units(body: &[u8]) -> u32 {
    // Field numbers: Export*ServiceRequest.1 → Resource*.2 (scope_*) → Scope*.2 (metrics) or
    // ScopeLogs.2 (log_records), the same path for both signals.
    let mut n = 0u32;
    let ok = for_each_len_field(body, 1, |rm| {
        for_each_len_field(rm, 2, |sm| {
            for_each_len_field(sm, 2, |_| {
                n += 1;
                true
            })
        })
    });
    if ok { n.max(1) } else { 1 }
}

/// Calls `f` with the payload of every length-delimited field numbered `field` in `buf`;
/// false when the framing is malformed (or `f` said so).
fn for_each_len_field(mut buf: &[u8], field: u64, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    while !buf.is_empty() {
        let Some(key) = varint(&mut buf) else {
            return false;
        };
        let skip = match key & 7 {
            0 => match varint(&mut buf) {
                Some(_) => 0,
                None => return false,
            },
            1 => 8,
            5 => 4,
            2 => {
                let Some(len) = varint(&mut buf).and_then(|l| usize::try_from(l).ok()) else {
                    return false;
                };
                if len > buf.len() {
                    return false;
                }
                let (payload, rest) = buf.split_at(len);
                if key >> 3 == field && !f(payload) {
                    return false;
                }
                buf = rest;
                0
            }
            _ => return false,
        };
        if skip > buf.len() {
            return false;
        }
        buf = &buf[skip..];
    }
    true
}

/// Data points of a metric, whatever its type.
pub fn point_count(m: &Metric) -> usize {
    match &m.data {
        Some(metric::Data::Gauge(g)) => g.data_points.len(),
        Some(metric::Data::Sum(s)) => s.data_points.len(),
        Some(metric::Data::Histogram(h)) => h.data_points.len(),
        Some(metric::Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(metric::Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }
}

/// Moves the first `k` data points of `m` into a new metric with the same descriptor.
fn split_off_front(m: &mut Metric, k: usize) -> Metric {
    fn take<T>(v: &mut Vec<T>, k: usize) -> Vec<T> {
        let rest = v.split_off(k);
        std::mem::replace(v, rest)
    }
    let data = match &mut m.data {
        Some(metric::Data::Gauge(g)) => metric::Data::Gauge(Gauge {
            data_points: take(&mut g.data_points, k),
        }),
        Some(metric::Data::Sum(s)) => metric::Data::Sum(Sum {
            data_points: take(&mut s.data_points, k),
            aggregation_temporality: s.aggregation_temporality,
            is_monotonic: s.is_monotonic,
        }),
        Some(metric::Data::Histogram(h)) => metric::Data::Histogram(Histogram {
            data_points: take(&mut h.data_points, k),
            aggregation_temporality: h.aggregation_temporality,
        }),
        Some(metric::Data::ExponentialHistogram(h)) => {
            metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points: take(&mut h.data_points, k),
                aggregation_temporality: h.aggregation_temporality,
            })
        }
        Some(metric::Data::Summary(s)) => metric::Data::Summary(Summary {
            data_points: take(&mut s.data_points, k),
        }),
        None => return m.clone(),
    };
    Metric {
        name: m.name.clone(),
        description: m.description.clone(),
        unit: m.unit.clone(),
        metadata: m.metadata.clone(),
        data: Some(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, NumberDataPoint};
    use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};

    fn sum_metric(name: &str, n: usize) -> Metric {
        Metric {
            name: name.into(),
            unit: "By".into(),
            data: Some(metric::Data::Sum(Sum {
                data_points: (0..n)
                    .map(|i| NumberDataPoint {
                        time_unix_nano: i as u64,
                        ..Default::default()
                    })
                    .collect(),
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })),
            ..Default::default()
        }
    }

    fn decode(r: &Record) -> Vec<Metric> {
        let req = ExportMetricsServiceRequest::decode(r.body.clone()).unwrap();
        req.resource_metrics
            .into_iter()
            .flat_map(|rm| rm.scope_metrics)
            .flat_map(|sm| sm.metrics)
            .collect()
    }

    #[test]
    fn records_carry_their_stored_form_without_a_copy() {
        let enc = MetricsEncoder::new(vec![kv("host.name", "h")], "1", 2);
        let mut recs = Vec::new();
        enc.encode(
            (0..5).map(|i| sum_metric(&format!("m{i}"), 3)).collect(),
            &mut recs,
        );
        let logs = LogsEncoder::new("1", 10);
        let res = Arc::new(Resource::default());
        logs.encode(
            (0..3).map(|_| (res.clone(), LogRecord::default())),
            &mut recs,
        );
        assert!(recs.len() >= 3);
        for r in &recs {
            assert_eq!(r.stored.len(), r.body.len() + 4);
            assert_eq!(&r.stored[..4], &r.items.to_le_bytes()[..]);
            assert_eq!(&r.stored[4..], &r.body[..]);
            // The body is a view of the stored bytes, not a second buffer.
            assert_eq!(r.stored[4..].as_ptr(), r.body.as_ptr());
        }
    }

    #[test]
    fn records_hold_at_most_batch_size_metrics_whole_and_in_order() {
        let enc = MetricsEncoder::new(vec![], "1", 2);
        let mut out = Vec::new();
        let n = enc.encode(
            vec![
                sum_metric("a", 30),
                sum_metric("b", 250),
                sum_metric("c", 5),
            ],
            &mut out,
        );
        assert_eq!(n, 285);
        assert_eq!(
            out.iter().map(|r| (r.units, r.items)).collect::<Vec<_>>(),
            vec![(2, 280), (1, 5)]
        );
        let mut seen = Vec::new();
        for r in &out {
            let ms = decode(r);
            assert_eq!(count_units(&r.body), r.units);
            let pts: usize = ms.iter().map(point_count).sum();
            assert_eq!(pts as u32, r.items);
            for m in ms {
                let Some(metric::Data::Sum(s)) = &m.data else {
                    panic!("type lost")
                };
                assert!(s.is_monotonic);
                assert_eq!(
                    s.aggregation_temporality,
                    AggregationTemporality::Cumulative as i32
                );
                assert_eq!(m.unit, "By");
                for p in &s.data_points {
                    seen.push((m.name.clone(), p.time_unix_nano));
                }
            }
        }
        let want: Vec<_> = [("a", 30), ("b", 250), ("c", 5)]
            .iter()
            .flat_map(|(n, k)| (0..*k).map(move |i| (n.to_string(), i as u64)))
            .collect();
        assert_eq!(seen, want);
    }

    #[test]
    fn a_metric_larger_than_the_byte_bound_is_split_by_points() {
        let enc = MetricsEncoder::new(vec![], "1", 100).with_max_bytes(2000);
        let mut out = Vec::new();
        let n = enc.encode(
            vec![sum_metric("small", 3), sum_metric("big", 1000)],
            &mut out,
        );
        assert_eq!(n, 1003);
        assert!(out.len() > 2, "{}", out.len());
        for r in &out {
            assert!(r.body.len() <= 2000 + 64, "{}", r.body.len());
        }
        let points: u32 = out.iter().map(|r| r.items).sum();
        assert_eq!(points, 1003);
        let names: Vec<String> = out.iter().flat_map(decode).map(|m| m.name).collect();
        assert_eq!(names[0], "small");
        assert!(names[1..].iter().all(|n| n == "big"));
    }

    #[test]
    fn units_are_counted_from_the_framing_and_survive_garbage() {
        let enc = MetricsEncoder::new(vec![], "1", 100);
        let mut out = Vec::new();
        enc.encode(
            (0..7).map(|i| sum_metric(&format!("m{i}"), 2)).collect(),
            &mut out,
        );
        let mut joined = Vec::new();
        for r in &out {
            joined.extend_from_slice(&r.body);
        }
        joined.extend_from_slice(&out[0].body);
        assert_eq!(count_units(&joined), 14);
        assert_eq!(count_units(&[0xff, 0xff]), 1);
        assert_eq!(count_units(&[]), 1);
        crate::fuzz_bytes(|b| {
            count_units(b);
        });
    }

    #[test]
    fn concatenated_records_decode_as_one_request() {
        let enc = MetricsEncoder::new(vec![], "1", 1);
        let mut out = Vec::new();
        enc.encode(
            vec![sum_metric("a", 25), sum_metric("b", 2), sum_metric("c", 1)],
            &mut out,
        );
        let mut joined = Vec::new();
        for r in &out {
            joined.extend_from_slice(&r.body);
        }
        let req = ExportMetricsServiceRequest::decode(&joined[..]).unwrap();
        assert_eq!(req.resource_metrics.len(), 3);
    }

    /// Metrics given encoded make the same bytes as the same metrics given as structs,
    /// which are the bytes prost writes for the whole request.
    #[test]
    fn encoded_metrics_make_the_bytes_prost_writes() {
        let resource = vec![kv("host.name", "h")];
        let enc = MetricsEncoder::new(resource.clone(), "1", 3);
        let ms: Vec<Metric> = (0..5)
            .map(|i| sum_metric(&format!("m{i}"), i + 1))
            .collect();
        let (mut structs, mut mixed) = (Vec::new(), Vec::new());
        assert_eq!(enc.encode(ms.clone(), &mut structs), 15);
        let encoded = ms[2..]
            .iter()
            .map(|m| (m.encode_to_vec(), point_count(m)))
            .collect();
        assert_eq!(enc.encode_mixed(ms[..2].to_vec(), encoded, &mut mixed), 15);
        assert_eq!(structs.len(), 2);
        for (a, b) in structs.iter().zip(&mixed) {
            assert_eq!(a.body, b.body);
            assert_eq!((a.items, a.units), (b.items, b.units));
        }
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "tfo-agent".into(),
                        version: "1".into(),
                        ..Default::default()
                    }),
                    metrics: ms[..3].to_vec(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        assert_eq!(structs[0].body, req.encode_to_vec());
    }

    /// An encoded metric over the byte bound is cut by data points as a struct is.
    #[test]
    fn an_oversize_encoded_metric_is_split_like_a_struct() {
        let enc = MetricsEncoder::new(vec![], "1", 100).with_max_bytes(2000);
        let big = sum_metric("big", 1000);
        let (mut structs, mut mixed) = (Vec::new(), Vec::new());
        enc.encode(vec![big.clone()], &mut structs);
        enc.encode_mixed(vec![], vec![(big.encode_to_vec(), 1000)], &mut mixed);
        assert!(structs.len() > 10);
        assert_eq!(
            structs.iter().map(|r| &r.body).collect::<Vec<_>>(),
            mixed.iter().map(|r| &r.body).collect::<Vec<_>>()
        );
        // Garbage is sent whole rather than cut wrong.
        let mut garbage = vec![0x3a, 0xff, 0xff, 0x7f];
        garbage.resize(3000, 0);
        let mut out = Vec::new();
        enc.encode_mixed(vec![], vec![(garbage, 5000)], &mut out);
        assert_eq!(out.len(), 1);
    }

    fn kv(key: &str, value: &str) -> KeyValue {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.into())),
            }),
            ..Default::default()
        }
    }

    /// Per ResourceMetrics of a record: its attributes as `key=value` and its metric names.
    fn decode_groups(r: &Record) -> Vec<(Vec<String>, Vec<String>)> {
        use opentelemetry_proto::tonic::common::v1::any_value;
        let req = ExportMetricsServiceRequest::decode(r.body.clone()).unwrap();
        req.resource_metrics
            .into_iter()
            .map(|rm| {
                let attrs = rm
                    .resource
                    .unwrap()
                    .attributes
                    .into_iter()
                    .map(|a| match a.value.and_then(|v| v.value) {
                        Some(any_value::Value::StringValue(s)) => format!("{}={s}", a.key),
                        _ => panic!("attribute"),
                    })
                    .collect();
                assert_eq!(rm.scope_metrics.len(), 1);
                let sm = &rm.scope_metrics[0];
                assert_eq!(sm.scope.as_ref().unwrap().name, "tfo-agent");
                (attrs, sm.metrics.iter().map(|m| m.name.clone()).collect())
            })
            .collect()
    }

    #[test]
    fn groups_share_records_up_to_batch_size_each_under_its_resource() {
        let enc = MetricsEncoder::new(
            vec![kv("host.name", "h"), kv("k8s.node.name", "agent")],
            "1",
            3,
        );
        let groups = vec![
            (
                vec![kv("k8s.pod.name", "a")],
                vec![sum_metric("a1", 2), sum_metric("a2", 1)],
            ),
            // Nothing to send: no ResourceMetrics for it.
            (vec![kv("k8s.pod.name", "empty")], vec![sum_metric("e", 0)]),
            (
                vec![kv("k8s.pod.name", "b"), kv("k8s.node.name", "n1")],
                vec![sum_metric("b1", 4), sum_metric("b2", 1)],
            ),
            (vec![kv("k8s.pod.name", "c")], vec![sum_metric("c1", 5)]),
        ];
        let mut out = Vec::new();
        assert_eq!(enc.encode_groups(groups, &mut out), 13);
        assert_eq!(
            out.iter().map(|r| (r.units, r.items)).collect::<Vec<_>>(),
            vec![(3, 7), (2, 6)]
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let a = s(&["host.name=h", "k8s.node.name=agent", "k8s.pod.name=a"]);
        // The group's k8s.node.name replaces the encoder's.
        let b = s(&["host.name=h", "k8s.pod.name=b", "k8s.node.name=n1"]);
        let c = s(&["host.name=h", "k8s.node.name=agent", "k8s.pod.name=c"]);
        assert_eq!(
            decode_groups(&out[0]),
            vec![(a, s(&["a1", "a2"])), (b.clone(), s(&["b1"]))]
        );
        assert_eq!(
            decode_groups(&out[1]),
            vec![(b, s(&["b2"])), (c, s(&["c1"]))]
        );
        for r in &out {
            assert_eq!(count_units(&r.body), r.units);
            assert_eq!(r.signal, Signal::Metrics);
        }
        let joined: Vec<u8> = out.iter().flat_map(|r| r.body.iter().copied()).collect();
        let req = ExportMetricsServiceRequest::decode(&joined[..]).unwrap();
        assert_eq!(req.resource_metrics.len(), 4);
        assert_eq!(count_units(&joined), 5);
    }

    #[test]
    fn groups_respect_the_byte_bound_and_split_an_oversize_metric() {
        let enc = MetricsEncoder::new(vec![kv("host.name", "h")], "1", 1000).with_max_bytes(2000);
        let mut groups: Vec<_> = (0..40)
            .map(|i| {
                (
                    vec![kv("k8s.pod.name", &format!("pod-{i:0>40}"))],
                    vec![sum_metric(&format!("m{i}"), 20)],
                )
            })
            .collect();
        groups.insert(
            7,
            (
                vec![kv("k8s.pod.name", "big")],
                vec![sum_metric("big", 1000)],
            ),
        );
        let mut out = Vec::new();
        assert_eq!(enc.encode_groups(groups, &mut out), 40 * 20 + 1000);
        assert!(out.len() > 3, "{}", out.len());
        for r in &out {
            assert!(r.body.len() <= 2000, "{}", r.body.len());
            assert_eq!(count_units(&r.body), r.units);
        }
        assert_eq!(out.iter().map(|r| r.items).sum::<u32>(), 1800);
        let decoded: Vec<_> = out.iter().flat_map(decode_groups).collect();
        // Every part of the split metric keeps its resource; order is the input's.
        let big: Vec<_> = decoded
            .iter()
            .filter(|(_, names)| names.iter().any(|n| n == "big"))
            .collect();
        assert!(big.len() > 1, "{}", big.len());
        for (attrs, names) in &big {
            assert_eq!(attrs[1], "k8s.pod.name=big");
            assert!(names.iter().all(|n| n == "big"));
        }
        let names: Vec<String> = decoded.iter().flat_map(|(_, n)| n.clone()).collect();
        let parts = names.iter().filter(|n| *n == "big").count();
        let mut want: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        want.extend(std::iter::repeat_n("big".to_string(), parts));
        want.extend((7..40).map(|i| format!("m{i}")));
        assert_eq!(names, want);
    }

    #[test]
    fn one_group_without_attributes_is_the_single_resource_path() {
        let enc = MetricsEncoder::new(vec![kv("host.name", "h")], "1", 2);
        let metrics = || vec![sum_metric("a", 3), sum_metric("b", 1), sum_metric("c", 2)];
        let (mut one, mut grouped) = (Vec::new(), Vec::new());
        assert_eq!(enc.encode(metrics(), &mut one), 6);
        assert_eq!(
            enc.encode_groups(vec![(vec![], metrics())], &mut grouped),
            6
        );
        assert_eq!(
            one.iter().map(|r| r.body.clone()).collect::<Vec<_>>(),
            grouped.iter().map(|r| r.body.clone()).collect::<Vec<_>>()
        );
        let mut out = Vec::new();
        assert_eq!(enc.encode_groups(vec![], &mut out), 0);
        assert_eq!(
            enc.encode_groups(vec![(vec![kv("x", "y")], vec![])], &mut out),
            0
        );
        assert!(out.is_empty());
    }

    fn log(body: &str) -> LogRecord {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(body.into())),
            }),
            ..Default::default()
        }
    }

    fn resource(name: &str) -> Arc<Resource> {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
        Arc::new(Resource {
            attributes: vec![KeyValue {
                key: "k8s.pod.name".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(name.into())),
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    /// (resource name, bodies) per ResourceLogs of a record.
    fn decode_logs(r: &Record) -> Vec<(String, Vec<String>)> {
        use opentelemetry_proto::tonic::common::v1::any_value;
        let req = ExportLogsServiceRequest::decode(r.body.clone()).unwrap();
        req.resource_logs
            .into_iter()
            .map(|rl| {
                let res = rl.resource.unwrap();
                let name = match &res.attributes[0].value.as_ref().unwrap().value {
                    Some(any_value::Value::StringValue(s)) => s.clone(),
                    _ => panic!("attribute"),
                };
                assert_eq!(rl.scope_logs.len(), 1);
                let sl = &rl.scope_logs[0];
                assert_eq!(sl.scope.as_ref().unwrap().name, "tfo-agent");
                let bodies = sl
                    .log_records
                    .iter()
                    .map(|l| match &l.body.as_ref().unwrap().value {
                        Some(any_value::Value::StringValue(s)) => s.clone(),
                        _ => panic!("body"),
                    })
                    .collect();
                (name, bodies)
            })
            .collect()
    }

    #[test]
    fn log_records_are_cut_by_count_and_grouped_by_resource_in_order() {
        let enc = LogsEncoder::new("1", 3);
        let (a, b) = (resource("a"), resource("b"));
        // `b2` is equal to `b` but another allocation: still one group.
        let b2 = resource("b");
        let input = vec![
            (a.clone(), log("a1")),
            (b.clone(), log("b1")),
            (a.clone(), log("a2")),
            (b2.clone(), log("b2")),
            (a.clone(), log("a3")),
            (b2, log("b3")),
            (a, log("a4")),
        ];
        let mut out = Vec::new();
        assert_eq!(enc.encode(input, &mut out), 7);
        assert_eq!(
            out.iter().map(|r| (r.items, r.units)).collect::<Vec<_>>(),
            vec![(3, 3), (3, 3), (1, 1)]
        );
        assert!(out.iter().all(|r| r.signal == Signal::Logs));
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            decode_logs(&out[0]),
            vec![("a".into(), s(&["a1", "a2"])), ("b".into(), s(&["b1"]))]
        );
        assert_eq!(
            decode_logs(&out[1]),
            vec![("b".into(), s(&["b2", "b3"])), ("a".into(), s(&["a3"]))]
        );
        assert_eq!(decode_logs(&out[2]), vec![("a".into(), s(&["a4"]))]);
        for r in &out {
            assert_eq!(count_units(&r.body), r.units);
        }
        // Records concatenate into one valid request, as the exporter sends them.
        let joined: Vec<u8> = out.iter().flat_map(|r| r.body.iter().copied()).collect();
        let req = ExportLogsServiceRequest::decode(&joined[..]).unwrap();
        assert_eq!(count_units(&joined), 7);
        assert_eq!(req.resource_logs.len(), 5);
    }

    #[test]
    fn the_request_framing_is_what_prost_writes() {
        use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
        let enc = LogsEncoder::new("9.9", 100);
        let (a, b) = (resource("a"), resource("b"));
        let recs = vec![
            (a.clone(), log("x")),
            (b.clone(), log(&"y".repeat(300))),
            (a.clone(), log("")),
        ];
        let mut out = Vec::new();
        enc.encode(recs.clone(), &mut out);
        let scope = InstrumentationScope {
            name: "tfo-agent".into(),
            version: "9.9".into(),
            ..Default::default()
        };
        let group = |r: &Arc<Resource>, l: Vec<LogRecord>| ResourceLogs {
            resource: Some((**r).clone()),
            scope_logs: vec![ScopeLogs {
                scope: Some(scope.clone()),
                log_records: l,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        };
        let want = ExportLogsServiceRequest {
            resource_logs: vec![
                group(&a, vec![recs[0].1.clone(), recs[2].1.clone()]),
                group(&b, vec![recs[1].1.clone()]),
            ],
        };
        assert_eq!(out[0].body.to_vec(), want.encode_to_vec());
    }

    #[test]
    fn log_records_are_cut_by_bytes_and_a_large_one_travels_alone() {
        let enc = LogsEncoder::new("1", 1000).with_max_bytes(4000);
        let r = resource("a");
        let mut input: Vec<_> = (0..30)
            .map(|i| (r.clone(), log(&format!("{i:0>300}"))))
            .collect();
        input.insert(10, (r.clone(), log(&"x".repeat(10_000))));
        let mut out = Vec::new();
        assert_eq!(enc.encode(input, &mut out), 31);
        let alone = out.iter().find(|r| r.body.len() > 10_000).unwrap();
        assert_eq!(alone.items, 1);
        for rec in out.iter().filter(|r| r.body.len() <= 10_000) {
            assert!(rec.body.len() <= 4000, "{}", rec.body.len());
        }
        let bodies: Vec<String> = out
            .iter()
            .flat_map(decode_logs)
            .flat_map(|(_, b)| b)
            .collect();
        assert_eq!(bodies.len(), 31);
        assert_eq!(bodies[10], "x".repeat(10_000));
        assert_eq!(bodies[11], format!("{:0>300}", 10));
        assert_eq!(out.iter().map(|r| r.items).sum::<u32>(), 31);
    }

    #[test]
    fn empty_input_makes_no_record() {
        let mut out = Vec::new();
        assert_eq!(LogsEncoder::new("1", 10).encode(vec![], &mut out), 0);
        assert!(out.is_empty());
        let enc = MetricsEncoder::new(vec![], "1", 10);
        let mut out = Vec::new();
        assert_eq!(enc.encode(vec![sum_metric("a", 0)], &mut out), 0);
        assert!(out.is_empty());
    }
}
