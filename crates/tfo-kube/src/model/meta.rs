//! What every slim object shares: a small `metadata` (identity, age, the controlling owner),
//! API timestamps as unix seconds, condition statuses, and serde helpers the kinds reuse.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};

/// The part of `metadata` the collector reads. Labels, annotations, managedFields,
/// finalizers and the rest are skipped by the deserialiser without being allocated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub name: Box<str>,
    /// `None` for cluster-scoped kinds (Node, Namespace).
    pub namespace: Option<Box<str>>,
    pub uid: Box<str>,
    pub resource_version: Box<str>,
    /// Unix seconds.
    pub creation_timestamp: Option<i64>,
    /// The owner reference with `controller: true`, if any: a pod's ReplicaSet,
    /// StatefulSet, DaemonSet or Job; a ReplicaSet's Deployment; a Job's CronJob.
    pub controller: Option<OwnerRef>,
}

/// A controlling owner, by kind and name (same namespace as the owned object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: OwnerKind,
    pub name: Box<str>,
}

/// Owner kinds the mapping resolves; anything else keeps its kind string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerKind {
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
    CronJob,
    ReplicationController,
    /// Static (mirror) pods are owned by their Node.
    Node,
    Other(Box<str>),
}

impl OwnerKind {
    pub fn as_str(&self) -> &str {
        match self {
            OwnerKind::ReplicaSet => "ReplicaSet",
            OwnerKind::Deployment => "Deployment",
            OwnerKind::StatefulSet => "StatefulSet",
            OwnerKind::DaemonSet => "DaemonSet",
            OwnerKind::Job => "Job",
            OwnerKind::CronJob => "CronJob",
            OwnerKind::ReplicationController => "ReplicationController",
            OwnerKind::Node => "Node",
            OwnerKind::Other(s) => s,
        }
    }

    fn from_str(s: &str) -> OwnerKind {
        match s {
            "ReplicaSet" => OwnerKind::ReplicaSet,
            "Deployment" => OwnerKind::Deployment,
            "StatefulSet" => OwnerKind::StatefulSet,
            "DaemonSet" => OwnerKind::DaemonSet,
            "Job" => OwnerKind::Job,
            "CronJob" => OwnerKind::CronJob,
            "ReplicationController" => OwnerKind::ReplicationController,
            "Node" => OwnerKind::Node,
            other => OwnerKind::Other(other.into()),
        }
    }
}

impl<'de> Deserialize<'de> for OwnerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = OwnerKind;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an owner kind")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OwnerKind, E> {
                Ok(OwnerKind::from_str(v))
            }
        }
        d.deserialize_str(V)
    }
}

/// `metadata` as it arrives, generic over what we keep of `labels` (nothing, for all but
/// EndpointSlice).
#[derive(Deserialize)]
#[serde(
    rename_all = "camelCase",
    bound(deserialize = "L: Deserialize<'de> + Default")
)]
pub(crate) struct RawMeta<L> {
    #[serde(default)]
    name: Box<str>,
    #[serde(default)]
    namespace: Option<Box<str>>,
    #[serde(default)]
    uid: Box<str>,
    #[serde(default)]
    resource_version: Box<str>,
    #[serde(default, deserialize_with = "opt_time")]
    creation_timestamp: Option<i64>,
    #[serde(default, deserialize_with = "controller_of")]
    owner_references: Option<OwnerRef>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) labels: L,
}

impl<L> RawMeta<L> {
    pub(crate) fn into_meta(self) -> (Meta, L) {
        let meta = Meta {
            name: self.name,
            namespace: self.namespace.filter(|n| !n.is_empty()),
            uid: self.uid,
            resource_version: self.resource_version,
            creation_timestamp: self.creation_timestamp,
            controller: self.owner_references,
        };
        (meta, self.labels)
    }
}

impl<'de> Deserialize<'de> for Meta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(RawMeta::<IgnoredAny>::deserialize(d)?.into_meta().0)
    }
}

/// Keeps the controlling owner of an `ownerReferences` list, without collecting the list.
fn controller_of<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OwnerRef>, D::Error> {
    #[derive(Deserialize)]
    struct RawOwner {
        #[serde(default)]
        kind: Option<OwnerKind>,
        #[serde(default)]
        name: Option<Box<str>>,
        #[serde(default)]
        controller: Option<bool>,
    }
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Option<OwnerRef>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of owner references")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(o) = seq.next_element::<RawOwner>()? {
                if found.is_none()
                    && o.controller == Some(true)
                    && let (Some(kind), Some(name)) = (o.kind, o.name)
                {
                    found = Some(OwnerRef { kind, name });
                }
            }
            Ok(found)
        }
    }
    d.deserialize_any(V)
}

/// A condition's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    #[serde(other)]
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// Why a timestamp did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeError;

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an RFC 3339 timestamp")
    }
}

impl std::error::Error for TimeError {}

/// Parses the API's RFC 3339 timestamps (`2024-05-01T10:20:30Z`, with optional fraction
/// (MicroTime) and numeric offset) into unix seconds; fractions are truncated.
pub fn parse_time(s: &str) -> Result<i64, TimeError> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return Err(TimeError);
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, TimeError> {
        let part = &b[r];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(TimeError);
        }
        Ok(part.iter().fold(0i64, |a, &c| a * 10 + i64::from(c - b'0')))
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(TimeError);
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, min, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || min > 59 || sec > 60 {
        return Err(TimeError);
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(TimeError);
        }
    }
    let offset = match &b[i..] {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hm = [*h1, *h2, *m1, *m2];
            if !hm.iter().all(u8::is_ascii_digit) {
                return Err(TimeError);
            }
            let h = i64::from(h1 - b'0') * 10 + i64::from(h2 - b'0');
            let m = i64::from(m1 - b'0') * 10 + i64::from(m2 - b'0');
            let o = h * 3600 + m * 60;
            if *sign == b'-' { -o } else { o }
        }
        _ => return Err(TimeError),
    };
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + min * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A timestamp as unix seconds; deserialises from the API's RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Time(pub i64);

impl<'de> Deserialize<'de> for Time {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Time, E> {
                parse_time(s)
                    .map(Time)
                    .map_err(|e| E::custom(format_args!("{e}: {s:?}")))
            }
        }
        d.deserialize_str(V)
    }
}

/// An optional timestamp field (null or absent: `None`; malformed: an error).
pub fn opt_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<Time>::deserialize(d)?.map(|t| t.0))
}

/// The length of a JSON array (null: 0), without keeping its elements.
pub fn count_seq<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = u32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list")
        }
        fn visit_unit<E: de::Error>(self) -> Result<u32, E> {
            Ok(0)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u32, A::Error> {
            let mut n = 0u32;
            while seq.next_element::<IgnoredAny>()?.is_some() {
                n = n.saturating_add(1);
            }
            Ok(n)
        }
    }
    d.deserialize_any(V)
}

/// `null` as the type's default, as Go's encoder writes nil slices and maps.
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2024-05-01T10:20:30Z"), Ok(1_714_558_830));
        assert_eq!(parse_time("2024-05-01T10:20:30.123456Z"), Ok(1_714_558_830));
        assert_eq!(parse_time("2024-05-01T12:20:30+02:00"), Ok(1_714_558_830));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Ok(951_782_400));
        assert_eq!(parse_time("1969-12-31T23:59:59Z"), Ok(-1));
        for bad in [
            "",
            "2024-05-01",
            "2024-05-01T10:20:30",
            "2024-13-01T10:20:30Z",
            "2024-05-01T25:20:30Z",
            "2024-05-01T10:20:30.Z",
            "2024-05-01T10:20:30+0200",
            "2024-05-01T10:20:30+ab:00",
            "2024-05-01X10:20:30Z",
            "2024-0a-01T10:20:30Z",
            "2024-05-01T10:20:30Zjunk",
            "２０２４-05-01T10:20:30Z",
        ] {
            assert_eq!(parse_time(bad), Err(TimeError), "{bad}");
        }
    }

    #[test]
    fn meta_keeps_the_controller_only() {
        let m: Meta = serde_json::from_str(
            r#"{"name":"web-1","namespace":"prod","uid":"u1","resourceVersion":"42",
                "creationTimestamp":"2024-05-01T10:20:30Z",
                "labels":{"app":"web"},"annotations":{"a":"b"},
                "ownerReferences":[
                  {"apiVersion":"v1","kind":"Thing","name":"t","uid":"x"},
                  {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d4f","uid":"y","controller":true,"blockOwnerDeletion":true}],
                "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]}"#,
        )
        .unwrap();
        assert_eq!(&*m.name, "web-1");
        assert_eq!(m.namespace.as_deref(), Some("prod"));
        assert_eq!(m.creation_timestamp, Some(1_714_558_830));
        assert_eq!(
            m.controller,
            Some(OwnerRef {
                kind: OwnerKind::ReplicaSet,
                name: "web-5d4f".into()
            })
        );
        let m: Meta = serde_json::from_str(r#"{"name":"n","ownerReferences":null}"#).unwrap();
        assert_eq!(m.controller, None);
        assert!(serde_json::from_str::<Meta>(r#"{"name":5}"#).is_err());
        assert!(serde_json::from_str::<Meta>(r#"{"creationTimestamp":"yesterday"}"#).is_err());
        assert!(serde_json::from_str::<Meta>(r#"{"ownerReferences":{"kind":"x"}}"#).is_err());
    }
}
