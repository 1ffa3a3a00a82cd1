//! On-disk encodings: the record frame and the ledger file.
//!
//! A record frame is a fixed 32-byte little-endian header followed by the payload:
//!
//! ```text
//! 0..4    magic  F0 7B 0F B1
//! 4..8    crc32c over bytes 8..32 of the header followed by the payload
//! 8..12   payload length (u32)
//! 12..16  flags, 0 (anything else is rejected, which leaves room for a future format)
//! 16..24  sequence number (u64)
//! 24..32  timestamp, unix milliseconds (u64, chosen by the caller)
//! ```
//!
//! The CRC covers the length, the sequence number and the timestamp as well as the payload,
//! so a flipped bit anywhere in a record is detected; the magic lets recovery find the next
//! frame after a damaged one. The ledger is 20 bytes: an 8-byte magic, the acknowledged
//! sequence (u64) and a CRC32C of the first 16 bytes.

pub(crate) const HEADER_LEN: usize = 32;
pub(crate) const MAGIC: [u8; 4] = [0xF0, 0x7B, 0x0F, 0xB1];

pub(crate) const LEDGER_LEN: usize = 20;
const LEDGER_MAGIC: [u8; 8] = *b"TFOLEDG1";

/// Decoded header fields, before the CRC has been checked against the payload.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Header {
    pub crc: u32,
    pub len: u32,
    pub seq: u64,
    pub ts: u64,
}

/// Framed size of a payload of `len` bytes.
pub(crate) fn framed_len(len: usize) -> u64 {
    HEADER_LEN as u64 + len as u64
}

pub(crate) fn encode_header(seq: u64, ts: u64, payload: &[u8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    // Callers check the length against u32::MAX before encoding.
    h[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    h[16..24].copy_from_slice(&seq.to_le_bytes());
    h[24..32].copy_from_slice(&ts.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[8..HEADER_LEN]), payload);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Parses a header; `None` when the magic or the flags are wrong.
pub(crate) fn parse_header(h: &[u8]) -> Option<Header> {
    let h: &[u8; HEADER_LEN] = h.get(..HEADER_LEN)?.try_into().ok()?;
    if h[0..4] != MAGIC || h[12..16] != [0, 0, 0, 0] {
        return None;
    }
    Some(Header {
        crc: u32::from_le_bytes([h[4], h[5], h[6], h[7]]),
        len: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
        seq: u64::from_le_bytes(h[16..24].try_into().ok()?),
        ts: u64::from_le_bytes(h[24..32].try_into().ok()?),
    })
}

/// Checks the CRC of a frame given its raw header bytes and its payload.
pub(crate) fn crc_ok(header: &Header, raw_header: &[u8], payload: &[u8]) -> bool {
    match raw_header.get(8..HEADER_LEN) {
        Some(fields) => crc32c::crc32c_append(crc32c::crc32c(fields), payload) == header.crc,
        None => false,
    }
}

pub(crate) fn encode_ledger(acked: u64) -> [u8; LEDGER_LEN] {
    let mut b = [0u8; LEDGER_LEN];
    b[0..8].copy_from_slice(&LEDGER_MAGIC);
    b[8..16].copy_from_slice(&acked.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Decodes a ledger; `None` when it is damaged or not a ledger at all.
pub(crate) fn decode_ledger(b: &[u8]) -> Option<u64> {
    if b.len() != LEDGER_LEN || b[0..8] != LEDGER_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(b[16..20].try_into().ok()?);
    if crc32c::crc32c(&b[0..16]) != crc {
        return None;
    }
    Some(u64::from_le_bytes(b[8..16].try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_crc_covers_every_field() {
        let payload = b"hello";
        let h = encode_header(7, 1234, payload);
        let parsed = parse_header(&h).expect("valid header");
        assert_eq!((parsed.len, parsed.seq, parsed.ts), (5, 7, 1234));
        assert!(crc_ok(&parsed, &h, payload));
        for i in 8..HEADER_LEN {
            let mut bad = h;
            bad[i] ^= 0x01;
            let ok = parse_header(&bad).is_some_and(|p| crc_ok(&p, &bad, payload));
            assert!(!ok, "flip in header byte {i} went unnoticed");
        }
        assert!(!crc_ok(&parsed, &h, b"hellp"));
    }

    #[test]
    fn ledger_round_trip_and_damage() {
        let b = encode_ledger(42);
        assert_eq!(decode_ledger(&b), Some(42));
        for i in 0..LEDGER_LEN {
            let mut bad = b;
            bad[i] ^= 0x80;
            assert_eq!(decode_ledger(&bad), None, "flip in byte {i}");
        }
        assert_eq!(decode_ledger(&b[..19]), None);
    }
}
