//! Kubernetes resource quantities ("250m", "128Mi", "4", "1.5Gi", "1e3"), parsed into plain
//! numbers once, at deserialisation, so the stores hold 8 bytes instead of a string and the
//! mapping never parses.
//!
//! Grammar (apimachinery `resource.Quantity`): an optionally signed decimal number
//! (`1`, `1.5`, `.5`, `5.`), then at most one suffix: binary `Ki Mi Gi Ti Pi Ei`, decimal
//! `n u m k M G T P E` (no suffix = 1), or a decimal exponent `e<int>` / `E<int>`. `E`
//! alone is exa. Anything else (empty, spaces, two suffixes, `NaN`) is an error: the API
//! server only emits canonical quantities, so a bad one means a broken object, which the
//! store counts as malformed rather than guessing.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantityError {
    Empty,
    /// No digits where the number should be.
    NoNumber,
    /// A suffix that is neither a binary nor a decimal SI suffix nor an exponent.
    BadSuffix,
    /// Parsed, but not a finite number (e.g. `1e400`).
    OutOfRange,
    /// A negative quantity where only counts or sizes make sense.
    Negative,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QuantityError::Empty => "empty quantity",
            QuantityError::NoNumber => "quantity has no number",
            QuantityError::BadSuffix => "quantity has an unknown suffix",
            QuantityError::OutOfRange => "quantity out of range",
            QuantityError::Negative => "negative quantity",
        })
    }
}

impl std::error::Error for QuantityError {}

/// Parses a quantity into its value in base units (cores for cpu, bytes for memory).
pub fn parse_quantity(s: &str) -> Result<f64, QuantityError> {
    if s.is_empty() {
        return Err(QuantityError::Empty);
    }
    let b = s.as_bytes();
    let mut i = 0;
    if b[0] == b'+' || b[0] == b'-' {
        i = 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return Err(QuantityError::NoNumber);
    }
    // The number part is plain ASCII digits with one optional dot and sign, which
    // f64's parser accepts as is (".5" and "5." included).
    let number: f64 = s[..i].parse().map_err(|_| QuantityError::NoNumber)?;
    let suffix = &s[i..];
    let multiplier = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        _ => {
            let exp = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or(QuantityError::BadSuffix)?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(QuantityError::BadSuffix);
            }
            // Saturate absurd exponents; the finiteness check below rejects them.
            let e: i32 = exp
                .parse()
                .unwrap_or(if exp.starts_with('-') { -400 } else { 400 });
            10f64.powi(e.clamp(-400, 400))
        }
    };
    let v = number * multiplier;
    if !v.is_finite() {
        return Err(QuantityError::OutOfRange);
    }
    // "m" of an integer is exact in decimal but not in binary; round to the nearest nano
    // unit so "100m" reads 0.1 and not 0.10000000000000000555.
    Ok(if multiplier < 1.0 {
        (v * 1e9).round() / 1e9
    } else {
        v
    })
}

/// A quantity as a non-negative whole number of base units (bytes, pods), rounded up as
/// apimachinery's `Quantity.Value()` does ("100m" bytes is 1 byte).
pub fn parse_quantity_u64(s: &str) -> Result<u64, QuantityError> {
    let v = parse_quantity(s)?;
    if v < 0.0 {
        return Err(QuantityError::Negative);
    }
    if v > u64::MAX as f64 {
        return Err(QuantityError::OutOfRange);
    }
    Ok(v.ceil() as u64)
}

/// A quantity held as its value in base units; deserialises from the API's string form
/// (or a bare JSON number, which apimachinery also accepts).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct Quantity(pub f64);

impl<'de> serde::Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QuantityVisitor).map(Quantity)
    }
}

struct QuantityVisitor;

impl Visitor<'_> for QuantityVisitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes quantity such as \"250m\" or \"128Mi\"")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        parse_quantity(v).map_err(|e| E::custom(format_args!("{e}: {v:?}")))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
}

/// Whole-number quantity (bytes, pods): see [`parse_quantity_u64`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct WholeQuantity(pub u64);

impl<'de> serde::Deserialize<'de> for WholeQuantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = d.deserialize_any(QuantityVisitor)?;
        if v < 0.0 {
            return Err(de::Error::custom(QuantityError::Negative));
        }
        if v > u64::MAX as f64 {
            return Err(de::Error::custom(QuantityError::OutOfRange));
        }
        Ok(WholeQuantity(v.ceil() as u64))
    }
}

/// `Option<Quantity>` fields stored as `Option<f64>`.
pub(crate) fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(<Option<Quantity> as serde::Deserialize>::deserialize(d)?.map(|q| q.0))
}

/// `Option<WholeQuantity>` fields stored as `Option<u64>`.
pub(crate) fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(<Option<WholeQuantity> as serde::Deserialize>::deserialize(d)?.map(|q| q.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(parse_quantity("250m"), Ok(0.25));
        assert_eq!(parse_quantity("100m"), Ok(0.1));
        assert_eq!(parse_quantity("4"), Ok(4.0));
        assert_eq!(parse_quantity("128Mi"), Ok(134_217_728.0));
        assert_eq!(parse_quantity("16Gi"), Ok(17_179_869_184.0));
        assert_eq!(parse_quantity("1.5Gi"), Ok(1_610_612_736.0));
        assert_eq!(parse_quantity("1k"), Ok(1000.0));
        assert_eq!(parse_quantity("2M"), Ok(2e6));
        assert_eq!(parse_quantity("1E"), Ok(1e18));
        assert_eq!(parse_quantity("1e3"), Ok(1000.0));
        assert_eq!(parse_quantity("1E3"), Ok(1000.0));
        assert_eq!(parse_quantity("5e-3"), Ok(0.005));
        assert_eq!(parse_quantity("500u"), Ok(0.0005));
        assert_eq!(parse_quantity("1500000n"), Ok(0.0015));
        assert_eq!(parse_quantity(".5"), Ok(0.5));
        assert_eq!(parse_quantity("5."), Ok(5.0));
        assert_eq!(parse_quantity("+1Ki"), Ok(1024.0));
        assert_eq!(parse_quantity("-1"), Ok(-1.0));
        assert_eq!(parse_quantity("0"), Ok(0.0));
        assert_eq!(parse_quantity("1Ei"), Ok(1024f64.powi(6)));
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(parse_quantity(""), Err(QuantityError::Empty));
        assert_eq!(parse_quantity("Mi"), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("."), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("-"), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("1x"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity("1MiB"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity("1 Mi"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity(" 1"), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("1e"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity("1e+"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity("1.2.3"), Err(QuantityError::BadSuffix));
        assert_eq!(parse_quantity("NaN"), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("inf"), Err(QuantityError::NoNumber));
        assert_eq!(parse_quantity("1e400"), Err(QuantityError::OutOfRange));
        assert_eq!(
            parse_quantity("1e99999999999"),
            Err(QuantityError::OutOfRange)
        );
        assert_eq!(parse_quantity("1e-99999999999"), Ok(0.0));
        assert_eq!(parse_quantity_u64("-1Mi"), Err(QuantityError::Negative));
        assert_eq!(parse_quantity("１"), Err(QuantityError::NoNumber));
    }

    #[test]
    fn whole_values_round_up() {
        assert_eq!(parse_quantity_u64("100m"), Ok(1));
        assert_eq!(parse_quantity_u64("110"), Ok(110));
        assert_eq!(parse_quantity_u64("128Mi"), Ok(134_217_728));
    }

    #[test]
    fn deserialises_strings_and_numbers() {
        let q: Quantity = serde_json::from_str("\"250m\"").unwrap();
        assert_eq!(q.0, 0.25);
        let q: Quantity = serde_json::from_str("3").unwrap();
        assert_eq!(q.0, 3.0);
        assert!(serde_json::from_str::<Quantity>("\"abc\"").is_err());
        assert!(serde_json::from_str::<Quantity>("true").is_err());
        assert!(serde_json::from_str::<WholeQuantity>("\"-1\"").is_err());
        let w: WholeQuantity = serde_json::from_str("\"1Ki\"").unwrap();
        assert_eq!(w.0, 1024);
    }
}
