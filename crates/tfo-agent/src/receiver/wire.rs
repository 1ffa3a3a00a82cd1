//! Trace and log requests forwarded in the form they arrived in. Decoding a request into
//! prost structs and encoding it again costs an allocation per attribute, per string, per
//! span: a fifth of the agent's CPU at 200 000 spans/s. Here the request is walked once,
//! checked as strictly as decoding would check it (framing, wire types, UTF-8 of every
//! string, nesting), its spans or log records counted and their ids checked, and the
//! agent's resource attributes are spliced into each resource's bytes. Anything this walk
//! does not take (an invalid item to reject with partial success, a resource sent twice,
//! groups, too deep a nesting, a request to split) goes the decoding way in
//! [`super::request`], so the answer is the same either way.
//!
//! Fields the schema does not know are checked for framing and kept, where decoding would
//! drop them: a newer SDK's fields reach the collector.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use prost::encoding::encode_varint;

/// Why a request is not forwarded as it is (it is decoded instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decode;

/// What a field of a message must hold.
#[derive(Clone, Copy)]
enum Kind {
    Varint,
    I64,
    I32,
    Bytes,
    /// UTF-8, as prost requires of `string` fields.
    Str,
    Msg(&'static [Field]),
}

type Field = (u32, Kind);

use Kind::{Bytes, I32, I64, Msg, Str, Varint};

// The messages of opentelemetry-proto v1 below the request's resources: field number and
// what it holds.
static ANY_VALUE: [Field; 8] = [
    (1, Str),
    (2, Varint),
    (3, Varint),
    (4, I64),
    (5, Msg(&ARRAY_VALUE)),
    (6, Msg(&KEY_VALUE_LIST)),
    (7, Bytes),
    (8, Varint),
];
static ARRAY_VALUE: [Field; 1] = [(1, Msg(&ANY_VALUE))];
static KEY_VALUE_LIST: [Field; 1] = [(1, Msg(&KEY_VALUE))];
static KEY_VALUE: [Field; 3] = [(1, Str), (2, Msg(&ANY_VALUE)), (3, Varint)];
static ENTITY_REF: [Field; 4] = [(1, Str), (2, Str), (3, Str), (4, Str)];
static RESOURCE: [Field; 3] = [(1, Msg(&KEY_VALUE)), (2, Varint), (3, Msg(&ENTITY_REF))];
static SCOPE: [Field; 4] = [(1, Str), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)];
static EVENT: [Field; 4] = [(1, I64), (2, Str), (3, Msg(&KEY_VALUE)), (4, Varint)];
static LINK: [Field; 6] = [
    (1, Bytes),
    (2, Bytes),
    (3, Str),
    (4, Msg(&KEY_VALUE)),
    (5, Varint),
    (6, I32),
];
/// A `Scope*` message's fields other than its items (2), which [`check_scope`] walks.
static SCOPE_ITEMS: [Field; 2] = [(1, Msg(&SCOPE)), (3, Str)];
/// A `Resource*` message's `schema_url`; its resource (1) and scopes (2) are walked apart.
static RESOURCE_ITEMS: [Field; 1] = [(3, Str)];
static STATUS: [Field; 2] = [(2, Str), (3, Varint)];
static SPAN: [Field; 16] = [
    (1, Bytes),
    (2, Bytes),
    (3, Str),
    (4, Bytes),
    (5, Str),
    (6, Varint),
    (7, I64),
    (8, I64),
    (9, Msg(&KEY_VALUE)),
    (10, Varint),
    (11, Msg(&EVENT)),
    (12, Varint),
    (13, Msg(&LINK)),
    (14, Varint),
    (15, Msg(&STATUS)),
    (16, I32),
];
// 4 was the deprecated `name`: unknown here, so kept as it came.
static LOG_RECORD: [Field; 11] = [
    (1, I64),
    (2, Varint),
    (3, Str),
    (5, Msg(&ANY_VALUE)),
    (6, Msg(&KEY_VALUE)),
    (7, Varint),
    (8, I32),
    (9, Bytes),
    (10, Bytes),
    (11, I64),
    (12, Str),
];

/// One signal's request: `Export*ServiceRequest { 1: Resource* { 1: resource, 2: Scope*
/// { 1: scope, 2: item, 3: schema_url }, 3: schema_url } }`, the same numbers for both.
pub struct Shape {
    item: &'static [Field],
    trace_id: u32,
    span_id: u32,
    /// Whether an item with ids of these lengths is kept (else it is rejected).
    ids_ok: fn(usize, usize) -> bool,
}

pub static TRACES: Shape = Shape {
    item: &SPAN,
    trace_id: 1,
    span_id: 2,
    ids_ok: |t, s| t == 16 && s == 8,
};

pub static LOGS: Shape = Shape {
    item: &LOG_RECORD,
    trace_id: 9,
    span_id: 10,
    ids_ok: |t, s| matches!(t, 0 | 16) && matches!(s, 0 | 8),
};

/// Deeper nesting (of AnyValue arrays and lists) is left to the decoder and its limit.
const MAX_DEPTH: u32 = 32;

/// The agent's resource attributes, each with its key and its encoding as a `Resource`
/// attribute field, made once per settings.
#[derive(Debug, Clone, Default)]
pub struct Attrs(Vec<(String, Vec<u8>)>);

impl Attrs {
    pub fn new(attrs: &[KeyValue]) -> Attrs {
        Attrs(
            attrs
                .iter()
                .map(|a| {
                    let mut field = Vec::with_capacity(a.encoded_len() + 6);
                    put_len_field(&mut field, 1, a.encoded_len());
                    a.encode(&mut field).expect("a Vec grows as needed");
                    (a.key.clone(), field)
                })
                .collect(),
        )
    }
}

/// A wire value.
enum Wire<'a> {
    Varint,
    I64,
    I32,
    Len(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, Decode> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(*pos).ok_or(Decode)?;
        *pos += 1;
        // The tenth byte may only carry the 64th bit, as prost requires.
        if i == 9 && b > 1 {
            return Err(Decode);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Decode)
}

/// The field at `*pos` (which moves past it): its number and value.
fn field<'a>(buf: &'a [u8], pos: &mut usize) -> Result<(u32, Wire<'a>), Decode> {
    let key = varint(buf, pos)?;
    let num = u32::try_from(key >> 3).map_err(|_| Decode)?;
    if num == 0 || num > (1 << 29) - 1 {
        return Err(Decode);
    }
    let fixed = |pos: &mut usize, n: usize| {
        let end = pos
            .checked_add(n)
            .filter(|&e| e <= buf.len())
            .ok_or(Decode)?;
        *pos = end;
        Ok::<_, Decode>(())
    };
    let w = match key & 7 {
        0 => {
            varint(buf, pos)?;
            Wire::Varint
        }
        1 => {
            fixed(pos, 8)?;
            Wire::I64
        }
        5 => {
            fixed(pos, 4)?;
            Wire::I32
        }
        2 => {
            let len = usize::try_from(varint(buf, pos)?).map_err(|_| Decode)?;
            let start = *pos;
            fixed(pos, len)?;
            Wire::Len(&buf[start..*pos])
        }
        // Groups (3, 4) are long deprecated; the decoder handles or refuses them.
        _ => return Err(Decode),
    };
    Ok((num, w))
}

/// Checks one field's value against what the schema says it holds (unknown numbers: only
/// framing, already checked by [`field`]).
fn check_field(schema: &[Field], num: u32, w: &Wire<'_>, depth: u32) -> Result<(), Decode> {
    let Some(&(_, kind)) = schema.iter().find(|f| f.0 == num) else {
        return Ok(());
    };
    match (kind, w) {
        (Varint, Wire::Varint) | (I64, Wire::I64) | (I32, Wire::I32) | (Bytes, Wire::Len(_)) => {
            Ok(())
        }
        (Str, Wire::Len(s)) => std::str::from_utf8(s).map(|_| ()).map_err(|_| Decode),
        (Msg(m), Wire::Len(b)) => check(b, m, depth + 1),
        _ => Err(Decode),
    }
}

/// Checks a whole message.
fn check(buf: &[u8], schema: &[Field], depth: u32) -> Result<(), Decode> {
    if depth > MAX_DEPTH {
        return Err(Decode);
    }
    let mut pos = 0;
    while pos < buf.len() {
        let (num, w) = field(buf, &mut pos)?;
        check_field(schema, num, &w, depth)?;
    }
    Ok(())
}

fn put_len_field(out: &mut Vec<u8>, num: u32, len: usize) {
    encode_varint(u64::from(num) << 3 | 2, out);
    encode_varint(len as u64, out);
}

/// Checks a scope's message, counting its items; an item with ids `shape` rejects is a
/// [`Decode`] (the decoding way reports it as partial success).
fn check_scope(buf: &[u8], shape: &Shape, items: &mut u64) -> Result<(), Decode> {
    let mut pos = 0;
    while pos < buf.len() {
        let (num, w) = field(buf, &mut pos)?;
        match (num, &w) {
            (2, Wire::Len(item)) => {
                let (mut t, mut s) = (0, 0);
                let mut p = 0;
                while p < item.len() {
                    let (n, w) = field(item, &mut p)?;
                    check_field(shape.item, n, &w, 2)?;
                    // Last one wins, as when decoding.
                    match (n, &w) {
                        (n, Wire::Len(b)) if n == shape.trace_id => t = b.len(),
                        (n, Wire::Len(b)) if n == shape.span_id => s = b.len(),
                        _ => {}
                    }
                }
                if !(shape.ids_ok)(t, s) {
                    return Err(Decode);
                }
                *items += 1;
            }
            (2, _) => return Err(Decode),
            _ => check_field(&SCOPE_ITEMS, num, &w, 1)?,
        }
    }
    Ok(())
}

/// Adds to `keys` the key of each attribute of a resource (of each attribute, the last
/// `key` field counts, as when decoding).
fn attribute_keys<'a>(resource: &'a [u8], keys: &mut Vec<&'a [u8]>) -> Result<(), Decode> {
    let mut pos = 0;
    while pos < resource.len() {
        if let (1, Wire::Len(kv)) = field(resource, &mut pos)? {
            let mut p = 0;
            let mut k: &[u8] = b"";
            while p < kv.len() {
                if let (1, Wire::Len(b)) = field(kv, &mut p)? {
                    k = b;
                }
            }
            keys.push(k);
        }
    }
    Ok(())
}

/// The request in `req`, checked, with each attribute of `attrs` added to every resource
/// that has no attribute of that key, and the number of items (spans, log records).
pub fn forward(req: &[u8], shape: &Shape, attrs: &Attrs) -> Result<(Vec<u8>, u64), Decode> {
    let mut out =
        Vec::with_capacity(req.len() + 64 + attrs.0.iter().map(|a| a.1.len()).sum::<usize>());
    let mut items = 0u64;
    let mut pos = 0;
    let mut missing: Vec<&[u8]> = Vec::with_capacity(attrs.0.len());
    while pos < req.len() {
        let start = pos;
        let (num, w) = field(req, &mut pos)?;
        let Wire::Len(rs) = w else {
            // Only field 1 is known, and it is a message; others are kept as they came.
            if num == 1 {
                return Err(Decode);
            }
            out.extend_from_slice(&req[start..pos]);
            continue;
        };
        if num != 1 {
            out.extend_from_slice(&req[start..pos]);
            continue;
        }
        // One Resource* message: check it, find its resource.
        let mut resource: Option<(usize, usize, &[u8])> = None;
        let mut p = 0;
        while p < rs.len() {
            let f_start = p;
            let (n, w) = field(rs, &mut p)?;
            match (n, &w) {
                (1, Wire::Len(r)) => {
                    if resource.is_some() {
                        // Two resource fields merge when decoded: left to the decoder.
                        return Err(Decode);
                    }
                    check(r, &RESOURCE, 1)?;
                    resource = Some((f_start, p, r));
                }
                (2, Wire::Len(scope)) => check_scope(scope, shape, &mut items)?,
                (1 | 2, _) => return Err(Decode),
                _ => check_field(&RESOURCE_ITEMS, n, &w, 0)?,
            }
        }
        let mut have: Vec<&[u8]> = Vec::new();
        if let Some((_, _, r)) = resource {
            attribute_keys(r, &mut have)?;
        }
        missing.clear();
        for (key, enc) in &attrs.0 {
            if !have.contains(&key.as_bytes()) {
                missing.push(enc);
            }
        }
        if missing.is_empty() {
            out.extend_from_slice(&req[start..pos]);
            continue;
        }
        let extra: usize = missing.iter().map(|m| m.len()).sum();
        match resource {
            Some((f_start, f_end, r)) => {
                let new_r = r.len() + extra;
                let mut head = Vec::with_capacity(12);
                put_len_field(&mut head, 1, new_r);
                let new_rs = rs.len() - (f_end - f_start) + head.len() + new_r;
                put_len_field(&mut out, 1, new_rs);
                out.extend_from_slice(&rs[..f_start]);
                out.extend_from_slice(&head);
                out.extend_from_slice(r);
                missing.iter().for_each(|m| out.extend_from_slice(m));
                out.extend_from_slice(&rs[f_end..]);
            }
            None => {
                let mut head = Vec::with_capacity(12);
                put_len_field(&mut head, 1, extra);
                put_len_field(&mut out, 1, rs.len() + head.len() + extra);
                out.extend_from_slice(&head);
                missing.iter().for_each(|m| out.extend_from_slice(m));
                out.extend_from_slice(rs);
            }
        }
    }
    Ok((out, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receiver::request::Otlp;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{
        AnyValue, ArrayValue, InstrumentationScope, KeyValueList, any_value,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};

    fn s(v: &str) -> Option<AnyValue> {
        Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        })
    }

    fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: s(v),
            ..Default::default()
        }
    }

    /// A request with what SDKs send: several resources (one without a resource), nested
    /// values, events, links, status.
    fn traces() -> ExportTraceServiceRequest {
        let nested = KeyValue {
            key: "nested".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(any_value::Value::IntValue(-7)),
                        },
                        AnyValue {
                            value: Some(any_value::Value::KvlistValue(KeyValueList {
                                values: vec![kv("ü", "ß"), kv("d", "")],
                            })),
                        },
                        AnyValue {
                            value: Some(any_value::Value::DoubleValue(1.5)),
                        },
                    ],
                })),
            }),
            ..Default::default()
        };
        let span = |i: u8| Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            parent_span_id: vec![9; 8],
            trace_state: "a=b".into(),
            name: format!("GET /item/{i}"),
            kind: span::SpanKind::Server as i32,
            start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i),
            end_time_unix_nano: 1_700_000_000_000_100_000,
            attributes: vec![kv("http.method", "GET"), nested.clone()],
            events: vec![span::Event {
                time_unix_nano: 5,
                name: "ex".into(),
                attributes: vec![kv("k", "v")],
                dropped_attributes_count: 1,
            }],
            links: vec![span::Link {
                trace_id: vec![3; 16],
                span_id: vec![4; 8],
                flags: 0x100,
                ..Default::default()
            }],
            status: Some(Status {
                message: "boom".into(),
                code: 2,
            }),
            flags: 0x101,
            ..Default::default()
        };
        ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "app"), kv("host.name", "pod-1")],
                        dropped_attributes_count: 2,
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        scope: Some(InstrumentationScope {
                            name: "lib".into(),
                            version: "1.0".into(),
                            ..Default::default()
                        }),
                        spans: (1..=5).map(span).collect(),
                        schema_url: "https://opentelemetry.io/schemas/1.30.0".into(),
                    }],
                    schema_url: "u".into(),
                },
                ResourceSpans {
                    resource: None,
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(7)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        }
    }

    fn agent() -> Vec<KeyValue> {
        vec![kv("host.name", "node-a"), kv("k8s.node.name", "node-a")]
    }

    /// What the decoding way makes of `input`, when it takes it.
    fn decoded<T: Otlp>(input: &[u8], attrs: &[KeyValue]) -> Option<T> {
        let mut req = T::decode(input).ok()?;
        req.merge_resource(attrs);
        Some(req)
    }

    #[test]
    fn a_forwarded_request_decodes_to_what_decoding_and_merging_make() {
        let req = traces();
        let bytes = req.encode_to_vec();
        let (out, items) = forward(&bytes, &TRACES, &Attrs::new(&agent())).unwrap();
        assert_eq!(items, 6);
        let got = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(
            got,
            decoded::<ExportTraceServiceRequest>(&bytes, &agent()).unwrap()
        );
        // The application's host.name won; the resource-less one got both.
        let attrs = |i: usize| got.resource_spans[i].resource.clone().unwrap().attributes;
        assert_eq!(
            attrs(0),
            vec![
                kv("service.name", "app"),
                kv("host.name", "pod-1"),
                kv("k8s.node.name", "node-a")
            ]
        );
        assert_eq!(attrs(1), agent());
    }

    #[test]
    fn nothing_to_add_forwards_the_bytes_unchanged_with_unknown_fields() {
        let mut bytes = traces().encode_to_vec();
        // Field 9 (unknown) at the top: kept, where decoding would drop it.
        bytes.extend_from_slice(&[0x4a, 2, b'h', b'i']);
        let (out, _) = forward(&bytes, &TRACES, &Attrs::new(&[])).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn invalid_items_and_strings_go_the_decoding_way() {
        let attrs = Attrs::new(&agent());
        let mut req = traces();
        req.resource_spans[0].scope_spans[0].spans[2].span_id = vec![1; 3];
        assert_eq!(forward(&req.encode_to_vec(), &TRACES, &attrs), Err(Decode));
        // A span name of invalid UTF-8: the decoder refuses the request.
        let mut bytes = traces().encode_to_vec();
        let at = bytes.windows(9).position(|w| w == b"GET /item").unwrap();
        bytes[at] = 0xff;
        assert_eq!(forward(&bytes, &TRACES, &attrs), Err(Decode));
        assert!(ExportTraceServiceRequest::decode(bytes.as_slice()).is_err());
    }

    #[test]
    fn log_records_may_have_no_ids() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource::default()),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            body: s("hello"),
                            severity_text: "INFO".into(),
                            ..Default::default()
                        },
                        LogRecord {
                            body: s("in a span"),
                            trace_id: vec![1; 16],
                            span_id: vec![2; 8],
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let bytes = req.encode_to_vec();
        let (out, items) = forward(&bytes, &LOGS, &Attrs::new(&agent())).unwrap();
        assert_eq!(items, 2);
        let got = ExportLogsServiceRequest::decode(out.as_slice()).unwrap();
        assert_eq!(
            got,
            decoded::<ExportLogsServiceRequest>(&bytes, &agent()).unwrap()
        );
        let mut bad = req.clone();
        bad.resource_logs[0].scope_logs[0].log_records[0].trace_id = vec![1; 15];
        assert_eq!(
            forward(&bad.encode_to_vec(), &LOGS, &Attrs::new(&[])),
            Err(Decode)
        );
    }

    /// Whatever the bytes, the walk never panics, and what it forwards is what decoding
    /// would have stored: every truncation and many random corruptions of a real request.
    #[test]
    fn forwarding_agrees_with_decoding_on_damaged_requests() {
        let attrs = agent();
        let enc = Attrs::new(&attrs);
        let good = traces().encode_to_vec();
        let mut cases: Vec<Vec<u8>> = (0..good.len()).map(|n| good[..n].to_vec()).collect();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..3000 {
            let mut b = good.clone();
            for _ in 0..1 + (x % 3) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let at = (x as usize) % b.len();
                b[at] = (x >> 32) as u8;
            }
            cases.push(b);
        }
        let mut forwarded = 0;
        for input in &cases {
            if let Ok((out, items)) = forward(input, &TRACES, &enc) {
                forwarded += 1;
                let want = decoded::<ExportTraceServiceRequest>(input, &attrs)
                    .expect("forwarded what the decoder refuses");
                let got = ExportTraceServiceRequest::decode(out.as_slice()).unwrap();
                assert_eq!(got, want);
                assert_eq!(u64::from(want.counts().0), items);
            }
        }
        assert!(forwarded > 100, "{forwarded}");
    }
}
