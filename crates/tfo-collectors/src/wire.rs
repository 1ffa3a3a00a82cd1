//! Metrics written straight in the OTLP wire format, for collectors with many points per
//! cycle whose attributes repeat from one cycle to the next (the process collector: six
//! points per process, each with the process's identity; the system and node collectors:
//! a point per device, interface, CPU or state, through [`Out`] and [`Batch`]).
//!
//! As `opentelemetry-proto` structs, each such point owns its attribute vector and every
//! key and string value in it: about nine allocations per point, freed again after the
//! encoder has walked the tree (prost sizes each nested message once per enclosing level).
//! Here a point is its attribute bytes (kept encoded per process by the process
//! collector, written from borrowed strings by [`Batch`]) plus a few fixed-width fields
//! appended to a reused buffer per metric or table row: no allocation per point, one per
//! metric (its body, which the encoder copies into the request as it is).
//!
//! The output is ordinary protobuf: [`EncodedMetric::decode`] gives the struct back (for
//! `collect`, the CLI and the tests, which check the two forms agree).

use opentelemetry_proto::tonic::metrics::v1::Metric;
use prost::Message;
use prost::encoding::{encode_varint, encoded_len_varint};

use crate::Ctx;
use crate::table::{MetricDef, MetricKind, Val, ValueType};

/// One OTLP `Metric` message, already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedMetric {
    /// The message's bytes, without a length prefix.
    pub body: Vec<u8>,
    /// Its data points.
    pub points: usize,
}

impl EncodedMetric {
    /// The message as a struct.
    pub fn decode(&self) -> Result<Metric, prost::DecodeError> {
        Metric::decode(self.body.as_slice())
    }
}

/// Wire types.
const LEN: u8 = 2;
const I64: u8 = 1;
const VARINT: u8 = 0;

fn key(buf: &mut Vec<u8>, field: u8, wire_type: u8) {
    // Every field number written here is below 16: its key is one byte.
    buf.push(field << 3 | wire_type);
}

fn len_field(buf: &mut Vec<u8>, field: u8, bytes: &[u8]) {
    key(buf, field, LEN);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Appends a string attribute as a `NumberDataPoint.attributes` entry (field 7, framed):
/// ready to be copied into every point that carries it.
pub(crate) fn str_attr(buf: &mut Vec<u8>, k: &str, v: &str) {
    // AnyValue { string_value = 1 }
    let any = 1 + encoded_len_varint(v.len() as u64) + v.len();
    kv(buf, k, any, |b| len_field(b, 1, v.as_bytes()));
}

/// Appends an integer attribute as a `NumberDataPoint.attributes` entry (field 7, framed).
pub(crate) fn int_attr(buf: &mut Vec<u8>, k: &str, v: i64) {
    // AnyValue { int_value = 3 } (int64: negative values take ten bytes)
    let any = 1 + encoded_len_varint(v as u64);
    kv(buf, k, any, |b| {
        key(b, 3, VARINT);
        encode_varint(v as u64, b);
    });
}

/// KeyValue { key = 1, value = 2 } with an AnyValue of `any` bytes written by `value`.
fn kv(buf: &mut Vec<u8>, k: &str, any: usize, value: impl FnOnce(&mut Vec<u8>)) {
    let inner =
        1 + encoded_len_varint(k.len() as u64) + k.len() + 1 + encoded_len_varint(any as u64) + any;
    key(buf, 7, LEN);
    encode_varint(inner as u64, buf);
    len_field(buf, 1, k.as_bytes());
    key(buf, 2, LEN);
    encode_varint(any as u64, buf);
    let at = buf.len();
    value(buf);
    debug_assert_eq!(buf.len() - at, any);
}

/// Bytes [`str_attr`] writes for this pair.
pub(crate) fn str_attr_len(k: &str, v: &str) -> usize {
    let any = 1 + encoded_len_varint(v.len() as u64) + v.len();
    let inner =
        1 + encoded_len_varint(k.len() as u64) + k.len() + 1 + encoded_len_varint(any as u64) + any;
    1 + encoded_len_varint(inner as u64) + inner
}

/// Appends one framed `NumberDataPoint` (field 1 of Gauge and Sum) of `def` to `buf`:
/// `attrs_len` bytes of attributes written by `attrs`, then the times and the value,
/// converted as [`MetricDef::point`] does; counters start at `ctx.boot_ns`.
fn write_point(
    buf: &mut Vec<u8>,
    def: &MetricDef,
    attrs_len: usize,
    attrs: impl FnOnce(&mut Vec<u8>),
    v: Val,
    ctx: &Ctx,
) {
    let start = match def.kind {
        MetricKind::Gauge => 0,
        MetricKind::Counter | MetricKind::UpDownCounter | MetricKind::Histogram => ctx.boot_ns,
    };
    // time (always: a point without one is meaningless) and the value: 9 bytes each;
    // the start time only when known, as prost leaves zero out.
    let len = attrs_len + 18 + if start != 0 { 9 } else { 0 };
    key(buf, 1, LEN);
    encode_varint(len as u64, buf);
    let at = buf.len();
    attrs(buf);
    debug_assert_eq!(buf.len() - at, attrs_len);
    if start != 0 {
        key(buf, 2, I64);
        buf.extend_from_slice(&start.to_le_bytes());
    }
    key(buf, 3, I64);
    buf.extend_from_slice(&ctx.now_ns.to_le_bytes());
    match (def.value, v) {
        (ValueType::Int, v) => {
            let i = match v {
                Val::U(u) => crate::parse::to_i64(u),
                Val::I(i) => i,
                // Only reachable through a table mistake; rounding keeps it meaningful.
                Val::F(f) => f.round() as i64,
            };
            // as_int = 6 (sfixed64)
            key(buf, 6, I64);
            buf.extend_from_slice(&i.to_le_bytes());
        }
        (ValueType::Double, v) => {
            let f = match v {
                Val::U(u) => u as f64,
                Val::I(i) => i as f64,
                Val::F(f) => f,
            };
            // as_double = 4
            key(buf, 4, I64);
            buf.extend_from_slice(&f.to_le_bytes());
        }
    }
}

/// The `Metric` message of `def` around `points` framed points written by [`write_point`]
/// (none when there are none: an empty metric carries nothing and some backends reject
/// it; histogram rows are built as structs, never here). The body is allocated once, at
/// its exact size: it is handed over to the encoder.
fn encode_metric(def: &MetricDef, pts: &[u8], points: usize) -> Option<EncodedMetric> {
    if points == 0 || def.kind == MetricKind::Histogram {
        return None;
    }
    // Sum { aggregation_temporality = 2 (CUMULATIVE), is_monotonic = 3 (only if true) }
    let (field, tail): (u8, &[u8]) = match def.kind {
        MetricKind::Gauge => (5, &[]),
        MetricKind::Counter => (7, &[2 << 3 | VARINT, 2, 3 << 3 | VARINT, 1]),
        _ => (7, &[2 << 3 | VARINT, 2]),
    };
    let inner = pts.len() + tail.len();
    let framed = |n: usize| 1 + encoded_len_varint(n as u64) + n;
    let optional = |n: usize| if n == 0 { 0 } else { framed(n) };
    let size = framed(def.name.len())
        + optional(def.help.len())
        + optional(def.unit.len())
        + framed(inner);
    let mut body = Vec::with_capacity(size);
    // Metric { name = 1, description = 2, unit = 3, gauge = 5 | sum = 7 }
    len_field(&mut body, 1, def.name.as_bytes());
    if !def.help.is_empty() {
        len_field(&mut body, 2, def.help.as_bytes());
    }
    if !def.unit.is_empty() {
        len_field(&mut body, 3, def.unit.as_bytes());
    }
    key(&mut body, field, LEN);
    encode_varint(inner as u64, &mut body);
    body.extend_from_slice(pts);
    body.extend_from_slice(tail);
    debug_assert_eq!(body.len(), size);
    Some(EncodedMetric { body, points })
}

/// The data points of one metric, appended cycle after cycle to a buffer that keeps its
/// capacity.
#[derive(Debug)]
pub(crate) struct Points {
    def: &'static MetricDef,
    buf: Vec<u8>,
    points: usize,
}

impl Points {
    pub(crate) fn new(def: &'static MetricDef) -> Points {
        Points {
            def,
            buf: Vec::new(),
            points: 0,
        }
    }

    /// A data point whose attributes are the concatenation of `attrs` (each made by
    /// [`str_attr`] / [`int_attr`]); the value is converted as [`MetricDef::point`] does,
    /// and counters start at `ctx.boot_ns`.
    pub(crate) fn point(&mut self, attrs: &[&[u8]], v: Val, ctx: &Ctx) {
        let len = attrs.iter().map(|a| a.len()).sum();
        let write = |b: &mut Vec<u8>| {
            for x in attrs {
                b.extend_from_slice(x);
            }
        };
        write_point(&mut self.buf, self.def, len, write, v, ctx);
        self.points += 1;
    }

    /// The metric with this cycle's points (see [`encode_metric`]); the buffer is
    /// emptied for the next cycle.
    pub(crate) fn finish(&mut self) -> Option<EncodedMetric> {
        let points = std::mem::take(&mut self.points);
        let m = encode_metric(self.def, &self.buf, points);
        self.buf.clear();
        m
    }
}

/// A point's attributes: (key, string value) pairs, in the table's order.
pub(crate) type Attrs<'a> = [(&'a str, &'a str)];

/// Largest row buffer kept from one table to the next and across cycles: a one-off
/// burst (thousands of mounts or interfaces for a while) is not held for good.
const ROW_KEEP_MAX: usize = 64 << 10;

/// Point buffers by table row, shared by every table of a collector (a cycle writes one
/// table at a time) and kept across cycles with their capacity: in steady state a point
/// costs no allocation and a metric exactly one, its body.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    rows: Vec<Row>,
}

#[derive(Debug, Default)]
struct Row {
    buf: Vec<u8>,
    points: usize,
}

/// Where one cycle's metrics go, stamped with the cycle's times.
pub(crate) struct Out<'a> {
    rows: &'a mut Rows,
    metrics: &'a mut Vec<EncodedMetric>,
    ctx: Ctx,
}

impl<'a> Out<'a> {
    pub(crate) fn new(rows: &'a mut Rows, metrics: &'a mut Vec<EncodedMetric>, ctx: Ctx) -> Self {
        Out { rows, metrics, ctx }
    }

    /// The points of one table, gathered in any order and appended as metrics in table
    /// order by [`Batch::finish`].
    pub(crate) fn batch<'b>(&'b mut self, table: &'b [MetricDef]) -> Batch<'b> {
        let rows = &mut self.rows.rows;
        if rows.len() < table.len() {
            rows.resize_with(table.len(), Row::default);
        }
        let rows = &mut rows[..table.len()];
        // A batch dropped without finish (an early return) leaves nothing behind.
        for r in rows.iter_mut() {
            r.buf.clear();
            r.points = 0;
        }
        Batch {
            table,
            rows,
            metrics: self.metrics,
            ctx: self.ctx,
        }
    }

    /// A metric of one point.
    pub(crate) fn single(&mut self, def: &MetricDef, attrs: &Attrs<'_>, v: Val) {
        let mut b = self.batch(std::slice::from_ref(def));
        b.add(0, attrs, v);
        b.finish();
    }
}

/// See [`Out::batch`].
pub(crate) struct Batch<'b> {
    table: &'b [MetricDef],
    rows: &'b mut [Row],
    metrics: &'b mut Vec<EncodedMetric>,
    ctx: Ctx,
}

impl Batch<'_> {
    /// A point of the table's row `row` (ignored past the table's end).
    pub(crate) fn add(&mut self, row: usize, attrs: &Attrs<'_>, v: Val) {
        let (Some(def), Some(r)) = (self.table.get(row), self.rows.get_mut(row)) else {
            return;
        };
        let len = attrs.iter().map(|(k, v)| str_attr_len(k, v)).sum();
        let write = |b: &mut Vec<u8>| {
            for (k, v) in attrs {
                str_attr(b, k, v);
            }
        };
        write_point(&mut r.buf, def, len, write, v, &self.ctx);
        r.points += 1;
    }

    /// Appends one metric per row that got points, in table order.
    pub(crate) fn finish(self) {
        for (def, r) in self.table.iter().zip(self.rows.iter_mut()) {
            if let Some(m) = encode_metric(def, &r.buf, std::mem::take(&mut r.points)) {
                self.metrics.push(m);
            }
            r.buf.clear();
            if r.buf.capacity() > ROW_KEEP_MAX {
                r.buf = Vec::new();
            }
        }
    }
}

/// The struct form of a collection (`collect`): `collect_encoded` run, and what the wire
/// form carries decoded onto `out`, so the two cannot disagree. `who` names the collector
/// in the (unexpected) error.
pub(crate) fn collect_decoded(
    out: &mut Vec<Metric>,
    who: &str,
    collect_encoded: impl FnOnce(&mut Vec<EncodedMetric>) -> crate::CollectReport,
) -> crate::CollectReport {
    let mut encoded = Vec::new();
    let mut report = collect_encoded(&mut encoded);
    out.reserve(encoded.len());
    for e in encoded {
        match e.decode() {
            Ok(m) => out.push(m),
            // Not expected (the collector wrote it): reported, not a panic.
            Err(err) => report.errors.push(crate::CollectError::Parse {
                path: format!("<{who} collector output>"),
                reason: err.to_string(),
            }),
        }
    }
    report
}

/// A short string formatted on the stack (a CPU or zone number as an attribute value)
/// rather than in a `String` per point.
pub(crate) struct StackStr {
    buf: [u8; 40],
    len: usize,
}

impl StackStr {
    pub(crate) fn new(args: std::fmt::Arguments<'_>) -> StackStr {
        let mut s = StackStr {
            buf: [0; 40],
            len: 0,
        };
        // Only numbers with short prefixes are written: they always fit.
        let _ = std::fmt::Write::write_fmt(&mut s, args);
        s
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for StackStr {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp;

    fn ctx() -> Ctx {
        Ctx {
            now_ns: 1_700_000_000_123_456_789,
            boot_ns: 1_600_000_000_000_000_000,
        }
    }

    /// Every kind and value type, negative and large integers, odd strings: the decoded
    /// message equals the one built from structs.
    #[test]
    fn decodes_to_what_the_structs_give() {
        let defs: &[MetricDef] = &[
            crate::table::counter_f("a.counter", "s", &["k"], "help text", ""),
            crate::table::gauge_f("a.gauge", "1", &["k"], "", ""),
            crate::table::updown_i("a.updown", "", &["k"], "h", ""),
            crate::table::counter_i("a.int", "By", &["k"], "h", ""),
        ];
        let defs: &'static [MetricDef] = Box::leak(defs.to_vec().into_boxed_slice());
        let long = "x".repeat(300);
        let cases: &[(&str, &str, i64, Val)] = &[
            ("", "", 0, Val::U(0)),
            ("process.owner", "root", -1, Val::I(-5)),
            ("é\u{0}", &long, i64::MIN, Val::U(u64::MAX)),
            ("k", "v", i64::MAX, Val::F(2.5)),
        ];
        for d in defs {
            let mut w = Points::new(d);
            let mut want = Vec::new();
            for &(k, v, i, val) in cases {
                let mut a = Vec::new();
                int_attr(&mut a, "process.pid", i);
                let mut b = Vec::new();
                str_attr(&mut b, k, v);
                w.point(&[&a, &b], val, &ctx());
                want.push(d.point(
                    vec![otlp::int_attr("process.pid", i), otlp::attr(k, v)],
                    val,
                    &ctx(),
                ));
            }
            let got = w.finish().unwrap();
            assert_eq!(got.points, cases.len());
            assert_eq!(got.decode().unwrap(), d.build(want), "{}", d.name);
            assert!(w.finish().is_none(), "emptied after finish");
        }
    }
}
