//! Severity from a log line: JSON `level`/`severity` fields, logfmt `level=`, or a leading
//! upper-case level word, mapped to OTLP severity numbers (TRACE 1, DEBUG 5, INFO 9,
//! WARN 13, ERROR 17, FATAL 21).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The OTLP severity number of a level word (any case), e.g. `warning` → 13.
pub fn number_of(word: &str) -> Option<u8> {
    let n = match word.len() {
        1..=11 => {
            let mut buf = [0u8; 11];
            for (d, s) in buf.iter_mut().zip(word.bytes()) {
                *d = s.to_ascii_lowercase();
            }
            match &buf[..word.len()] {
                b"trace" => 1,
                b"debug" => 5,
                b"info" | b"information" => 9,
                b"notice" => 10,
                b"warn" | b"warning" => 13,
                b"error" | b"err" => 17,
                b"crit" | b"critical" | b"fatal" | b"panic" | b"dpanic" | b"alert" | b"emerg"
                | b"emergency" => 21,
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(n)
}

/// Numeric levels of pino and bunyan (10 trace … 60 fatal).
fn number_of_numeric(v: f64) -> Option<u8> {
    Some(match v as i64 {
        10 => 1,
        20 => 5,
        30 => 9,
        40 => 13,
        50 => 17,
        60 => 21,
        _ => return None,
    })
}

/// Severity found in a plain-text line: a JSON object's `level`/`severity`, a logfmt
/// `level=`/`lvl=`/`severity=`, or a leading upper-case level word (`ERROR`, `[WARN]`,
/// `INFO:`), possibly after up to three timestamp-like tokens (starting with a digit, or `[`
/// and a digit).
pub fn detect(line: &str) -> Option<(u8, String)> {
    let b = line.as_bytes();
    if b.first() == Some(&b'{')
        && b.last() == Some(&b'}')
        && let Some(f) = json_fields(line)
    {
        return f.severity;
    }
    logfmt(b).or_else(|| leading_word(line))
}

fn logfmt(b: &[u8]) -> Option<(u8, String)> {
    // Every `=` is a candidate (found with SIMD); only the few bytes before it are looked at.
    for eq in memchr::memchr_iter(b'=', b) {
        let before = &b[..eq];
        let Some(key) = [&b"level"[..], b"lvl", b"severity"]
            .into_iter()
            .find(|k| before.ends_with(k))
        else {
            continue;
        };
        let key_start = eq - key.len();
        if key_start > 0 && !matches!(b[key_start - 1], b' ' | b'\t') {
            continue;
        }
        let rest = &b[eq + 1..];
        let value = if rest.first() == Some(&b'"') {
            let end = rest[1..].iter().position(|&c| c == b'"')?;
            &rest[1..1 + end]
        } else {
            let end = rest
                .iter()
                .position(|&c| c == b' ' || c == b'\t')
                .unwrap_or(rest.len());
            &rest[..end]
        };
        let value = std::str::from_utf8(value).ok()?;
        return number_of(value).map(|n| (n, value.to_string()));
    }
    None
}

fn leading_word(line: &str) -> Option<(u8, String)> {
    for (i, token) in line.split_ascii_whitespace().take(4).enumerate() {
        let t = token.as_bytes();
        let timestamp_like =
            t[0].is_ascii_digit() || (t[0] == b'[' && t.get(1).is_some_and(u8::is_ascii_digit));
        if timestamp_like && i < 3 {
            continue;
        }
        let word = token.trim_start_matches('[').trim_end_matches([']', ':']);
        let upper = !word.is_empty() && word.bytes().all(|c| c.is_ascii_uppercase());
        if !upper {
            return None;
        }
        return match word {
            "TRACE" | "DEBUG" | "INFO" | "NOTICE" | "WARN" | "WARNING" | "ERROR" | "CRITICAL"
            | "FATAL" | "PANIC" => number_of(word).map(|n| (n, word.to_string())),
            _ => None,
        };
    }
    None
}

/// What a JSON log line says about itself.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct JsonFields {
    pub severity: Option<(u8, String)>,
    pub time_unix_nano: Option<u64>,
    pub message: Option<String>,
}

/// Parses a JSON object and picks out the time (`time`, `timestamp`, `ts`, `@timestamp`:
/// RFC 3339 or an epoch number), the level (`level`, `severity`, `lvl`, `loglevel`: a word or
/// pino's numbers) and the message (`msg`, `message`). `None` if the line is not an object.
pub(crate) fn json_fields(line: &str) -> Option<JsonFields> {
    let mut de = serde_json::Deserializer::from_str(line);
    let f = de.deserialize_map(FieldsVisitor).ok()?;
    de.end().ok()?;
    Some(f)
}

enum Key {
    Time,
    Level,
    Message,
    Other,
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "time" | "timestamp" | "ts" | "@timestamp" => Key::Time,
            "level" | "severity" | "lvl" | "loglevel" | "log.level" => Key::Level,
            "msg" | "message" => Key::Message,
            _ => Key::Other,
        })
    }
}

impl<'de> de::Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key, D::Error> {
        d.deserialize_identifier(KeyVisitor)
    }
}

/// A scalar we care about: a string (borrowed when unescaped) or a number.
enum Scalar<'a> {
    Str(Cow<'a, str>),
    Num(f64),
    Other,
}

impl<'de: 'a, 'a> de::Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Scalar<'a>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Scalar::Num(v as f64))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Scalar::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Other)
            }
        }
        d.deserialize_any(V)
    }
}

struct FieldsVisitor;

impl<'de> Visitor<'de> for FieldsVisitor {
    type Value = JsonFields;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<JsonFields, A::Error> {
        let mut f = JsonFields::default();
        while let Some(key) = m.next_key::<Key>()? {
            match key {
                Key::Other => {
                    m.next_value::<IgnoredAny>()?;
                }
                Key::Time => {
                    let v: Scalar = m.next_value()?;
                    if f.time_unix_nano.is_none() {
                        f.time_unix_nano = match v {
                            Scalar::Str(s) => crate::time::parse_rfc3339(s.as_bytes()),
                            Scalar::Num(n) => crate::time::from_epoch_number(n),
                            Scalar::Other => None,
                        };
                    }
                }
                Key::Level => {
                    let v: Scalar = m.next_value()?;
                    if f.severity.is_none() {
                        f.severity = match v {
                            Scalar::Str(s) => number_of(&s).map(|n| (n, s.into_owned())),
                            Scalar::Num(x) => number_of_numeric(x).map(|n| (n, format!("{x}"))),
                            Scalar::Other => None,
                        };
                    }
                }
                Key::Message => {
                    let v: Scalar = m.next_value()?;
                    if f.message.is_none()
                        && let Scalar::Str(s) = v
                    {
                        f.message = Some(s.into_owned());
                    }
                }
            }
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(line: &str) -> Option<u8> {
        detect(line).map(|s| s.0)
    }

    #[test]
    fn words_and_positions() {
        assert_eq!(n("ERROR something broke"), Some(17));
        assert_eq!(n("[WARN] disk almost full"), Some(13));
        assert_eq!(n("INFO: started"), Some(9));
        assert_eq!(n("2024-01-01 12:00:00,123 DEBUG x"), Some(5));
        assert_eq!(n("[2024-01-01 12:00:00] FATAL x"), Some(21));
        assert_eq!(n("TRACE"), Some(1));
        assert_eq!(n("the ERROR was fine"), None);
        assert_eq!(n("error: lowercase leading words are not levels"), None);
        assert_eq!(n("ERRORS happen"), None);
        assert_eq!(n("ts=1 level=warn msg=x"), Some(13));
        assert_eq!(n("level=\"error\" msg=x"), Some(17));
        assert_eq!(n("mylevel=error x"), None);
        assert_eq!(n("a=b c=d"), None);
        assert_eq!(n("a=level=warn"), None);
        assert_eq!(n("x=1\tseverity=ERROR"), Some(17));
        assert_eq!(
            n("level=bogus severity=info"),
            None,
            "the first level key decides"
        );
        assert_eq!(n("=level=warn"), None);
        assert_eq!(detect("lvl=Info x"), Some((9, "Info".to_string())));
        assert_eq!(n(r#"{"level":"warning","msg":"x"}"#), Some(13));
        assert_eq!(n(r#"{"level":50,"msg":"x"}"#), Some(17));
        assert_eq!(n(r#"{"msg":"no level"}"#), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn json() {
        let f = json_fields(
            r#"{"ts":"2024-01-01T00:00:00Z","severity":"ERROR","message":"a \"quoted\" text","n":{"x":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(f.severity, Some((17, "ERROR".to_string())));
        assert_eq!(f.time_unix_nano, Some(1_704_067_200_000_000_000));
        assert_eq!(f.message.as_deref(), Some("a \"quoted\" text"));
        let f = json_fields(r#"{"time":1704067200.5,"level":"info","level":"error"}"#).unwrap();
        assert_eq!(f.severity.unwrap().0, 9, "the first level wins");
        assert_eq!(f.time_unix_nano, Some(1_704_067_200_500_000_000));
        assert!(json_fields("[1,2]").is_none());
        assert!(json_fields(r#"{"a":1} trailing"#).is_none());
        assert!(json_fields("not json").is_none());
    }
}
