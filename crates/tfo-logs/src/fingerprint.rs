//! Content fingerprints: FNV-1a (64-bit) of the first up to [`FP_MAX`] bytes of a file.
//!
//! A file shorter than [`FP_MAX`] has a short fingerprint that grows with it; a stored short
//! fingerprint is matched against the same-length prefix of a candidate file. FNV is used
//! because it is stable across Rust releases (the checkpoint file outlives the binary) and
//! gives the hash of every prefix in one pass. It is not collision-resistant against someone
//! who crafts log content: a live match is confirmed by comparing the bytes; only matches
//! against the checkpoint table after a restart rely on the hash alone.

/// Bytes of a file that make its identity.
pub(crate) const FP_MAX: usize = 1024;

const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// A file's identity: the length of the hashed prefix and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Fingerprint {
    pub len: u16,
    pub hash: u64,
}

impl Fingerprint {
    pub(crate) fn of(prefix: &[u8]) -> Fingerprint {
        let prefix = &prefix[..prefix.len().min(FP_MAX)];
        let mut h = OFFSET;
        for &b in prefix {
            h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        }
        Fingerprint {
            len: prefix.len() as u16,
            hash: h,
        }
    }

    pub(crate) fn is_full(self) -> bool {
        usize::from(self.len) == FP_MAX
    }

    /// `1024:0123456789abcdef`, the form stored in the checkpoint file.
    pub(crate) fn to_text(self) -> String {
        format!("{}:{:016x}", self.len, self.hash)
    }

    pub(crate) fn from_text(s: &str) -> Option<Fingerprint> {
        let (len, hash) = s.split_once(':')?;
        let len: u16 = len.parse().ok()?;
        if len == 0 || usize::from(len) > FP_MAX {
            return None;
        }
        Some(Fingerprint {
            len,
            hash: u64::from_str_radix(hash, 16).ok()?,
        })
    }
}

/// Calls `each` with the fingerprint of every prefix of `bytes` whose length `wanted` accepts.
pub(crate) fn prefixes(
    bytes: &[u8],
    wanted: impl Fn(usize) -> bool,
    mut each: impl FnMut(Fingerprint),
) {
    let bytes = &bytes[..bytes.len().min(FP_MAX)];
    let mut h = OFFSET;
    for (i, &b) in bytes.iter().enumerate() {
        h = (h ^ u64::from(b)).wrapping_mul(PRIME);
        if wanted(i + 1) {
            each(Fingerprint {
                len: (i + 1) as u16,
                hash: h,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_agree_with_whole() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut seen = Vec::new();
        prefixes(&data, |n| n == 10 || n == 1024, |fp| seen.push(fp));
        assert_eq!(seen, [Fingerprint::of(&data[..10]), Fingerprint::of(&data)]);
        assert!(seen[1].is_full());
        assert_eq!(Fingerprint::from_text(&seen[0].to_text()), Some(seen[0]));
        assert_eq!(Fingerprint::from_text("0:00"), None);
        assert_eq!(Fingerprint::from_text("1025:00"), None);
    }
}
