//! gzip for request bodies (HTTP `Content-Encoding: gzip`, gRPC `grpc-encoding: gzip`),
//! with deflate states kept for reuse: a fresh state allocates and zeroes a window and hash
//! tables worth a few hundred KiB, which a profile of the whole agent showed as a leading
//! per-request cost. Level 1 (best speed): on the agent's own requests it compresses about
//! 5.9:1 against 6.7:1 at level 6, for less than half the CPU.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use flate2::{Compress, Compression, FlushCompress};

/// Bodies larger than this are gzipped on the blocking pool, so compressing a large batch
/// never stalls the async workers.
pub const GZIP_INLINE_LIMIT: usize = 64 * 1024;

/// The deflate level every request uses.
pub const GZIP_LEVEL: u32 = 1;

/// Reusable deflate states (each holds a window and hash tables worth a few hundred KiB,
/// which a fresh `GzEncoder` would allocate and zero per request).
#[derive(Default)]
pub(crate) struct GzipPool {
    idle: Mutex<Vec<Compress>>,
}

impl GzipPool {
    /// Compressors kept for reuse; more only exist while that many requests compress at once.
    const KEEP: usize = 4;

    /// `data` as a gzip member (RFC 1952): fixed header, raw deflate, CRC-32, size.
    #[cfg(test)]
    pub(crate) fn gzip(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = Vec::with_capacity(data.len() / 4 + 64);
        self.gzip_into(data, &mut out)?;
        Ok(out)
    }

    /// Appends `data` as a gzip member to `out` (after whatever `out` holds, e.g. a frame
    /// header).
    pub(crate) fn gzip_into(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let taken = self.idle.lock().ok().and_then(|mut v| v.pop());
        let mut c = taken.unwrap_or_else(|| Compress::new(Compression::new(GZIP_LEVEL), false));
        let result = deflate_gzip(&mut c, data, out);
        c.reset();
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < Self::KEEP
        {
            idle.push(c);
        }
        result
    }
}

/// Input between two full flushes. A deflate stream longer than its window (two times
/// 32 KiB, less a 262-byte lookahead) shifts the window and rewrites every entry of its
/// hash tables (192 KiB) each 32 KiB of input; in the release build that rewrite is a
/// scalar loop, and it was 18 % of the agent's CPU with logs requests of 1 MiB. A full
/// flush after at most this much input starts the window over instead, clearing one
/// table with a `memset`; matches then do not reach back across the flush, which costs a
/// little ratio, as a new request would.
const FLUSH_EVERY: usize = 60 * 1024;

fn deflate_gzip(c: &mut Compress, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=unknown
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    out.reserve(data.len() / 4 + 64);
    out.extend_from_slice(&HEADER);
    let mut end = 0;
    loop {
        end = (end + FLUSH_EVERY).min(data.len());
        let last = end == data.len();
        let flush = if last {
            FlushCompress::Finish
        } else {
            FlushCompress::Full
        };
        loop {
            if out.capacity() - out.len() < 4096 {
                out.reserve(out.capacity().max(4096));
            }
            let (before_in, before_out) = (c.total_in(), c.total_out());
            let consumed = usize::try_from(before_in).map_err(|e| e.to_string())?;
            let input = data
                .get(consumed..end)
                .ok_or("deflate consumed more than its input")?;
            let status = c
                .compress_vec(input, out, flush)
                .map_err(|e| e.to_string())?;
            let done = if last {
                status == flate2::Status::StreamEnd
            } else {
                // A flush is complete when the input is used up and output room is left.
                c.total_in() as usize == end && out.len() < out.capacity()
            };
            if done {
                break;
            }
            if c.total_in() == before_in && c.total_out() == before_out {
                // No progress: give it more room.
                out.reserve(out.capacity());
            }
        }
        if last {
            break;
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the input size modulo 2^32.
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    Ok(())
}

/// `body` gzipped after `reserve` zero bytes (room for a frame header the caller fills in),
/// inline when small and on the blocking pool when large.
pub(crate) async fn gzip_off_runtime(
    pool: &Arc<GzipPool>,
    body: Bytes,
    reserve: usize,
) -> Result<Vec<u8>, String> {
    let run = move |pool: &GzipPool, body: &[u8]| {
        let mut out = Vec::with_capacity(reserve + body.len() / 4 + 64);
        out.resize(reserve, 0);
        pool.gzip_into(body, &mut out).map(|()| out)
    };
    if body.len() <= GZIP_INLINE_LIMIT {
        return run(pool, &body);
    }
    let pool = pool.clone();
    match tokio::task::spawn_blocking(move || run(&pool, &body)).await {
        Ok(r) => r,
        Err(e) => Err(format!("compression task failed: {e}")),
    }
}

/// Why a gzip body could not be read.
#[derive(Debug, PartialEq)]
pub enum GunzipError {
    /// It inflates to more than the limit.
    TooLarge,
    /// Not valid gzip.
    Invalid(String),
}

/// Inflates a gzip body (one or more members) of at most `limit` bytes decompressed: a
/// small body that would inflate beyond the limit (a "zip bomb") is refused after reading
/// `limit + 1` bytes of it, never held whole.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    use std::io::Read;
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    flate2::read::MultiGzDecoder::new(data)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| GunzipError::Invalid(e.to_string()))?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn gunzip_refuses_more_than_the_limit_and_bad_input() {
        let pool = GzipPool::default();
        let z = pool.gzip(&[7u8; 10_000]).unwrap();
        assert_eq!(super::gunzip(&z, 10_000).unwrap(), vec![7u8; 10_000]);
        assert_eq!(super::gunzip(&z, 9_999), Err(GunzipError::TooLarge));
        assert!(matches!(
            super::gunzip(b"not gzip", 100),
            Err(GunzipError::Invalid(_))
        ));
    }

    fn gunzip(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(z)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    #[test]
    fn pooled_gzip_round_trips_and_reuses_state() {
        let pool = GzipPool::default();
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let noise: Vec<u8> = (0..200_000).map(|_| fastrand::u8(..)).collect();
        for data in [&b""[..], b"hello", &big, &noise, b"hello again", &big] {
            let z = pool.gzip(data).unwrap();
            assert_eq!(gunzip(&z), data);
        }
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "one state, reused");
    }

    #[test]
    fn bodies_around_the_full_flush_size_round_trip() {
        let pool = GzipPool::default();
        let text: Vec<u8> = (0..5 * FLUSH_EVERY as u32 + 7)
            .map(|i| b"abcdefghij klmnop"[(i as usize * 7 + i as usize / 13) % 17])
            .collect();
        for n in [
            FLUSH_EVERY - 1,
            FLUSH_EVERY,
            FLUSH_EVERY + 1,
            2 * FLUSH_EVERY,
            text.len(),
        ] {
            let z = pool.gzip(&text[..n]).unwrap();
            assert_eq!(gunzip(&z), &text[..n], "{n} bytes");
            assert!(z.len() < n / 4, "{n} bytes compressed to {}", z.len());
        }
    }
}
