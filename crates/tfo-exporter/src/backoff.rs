//! Exponential backoff with full jitter, bounded by `retry.initial_interval` and
//! `retry.max_interval`. Jitter keeps a fleet of agents from retrying in lockstep after a
//! collector restart.

use std::time::Duration;

use crate::outcome::cap_server_delay;

/// Longest delay [`Backoff::next_delay`] returns from its own schedule, whatever
/// `max_interval` says. Keeps `Instant::now() + delay` in callers far from overflow (a
/// configured `Duration::MAX` would otherwise panic there).
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Any `initial`/`max` is accepted: `initial` is at least 1 ms, `max` at least
    /// `initial`, and both at most [`MAX_BACKOFF`].
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.clamp(Duration::from_millis(1), MAX_BACKOFF);
        Backoff {
            initial,
            max: max.clamp(initial, MAX_BACKOFF),
            attempt: 0,
        }
    }

    /// The next delay: uniformly random in [ceiling/2, ceiling], where the ceiling doubles
    /// each call from `initial` up to `max`. A server hint (`Retry-After`, `RetryInfo`)
    /// takes precedence when it is longer, so we never retry earlier than asked; the hint is
    /// capped at [`crate::outcome::MAX_SERVER_DELAY`].
    pub fn next_delay(&mut self, server_hint: Option<Duration>) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let span = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        let delay = half.saturating_add(Duration::from_nanos(fastrand::u64(0..=span)));
        match server_hint.map(cap_server_delay) {
            Some(h) if h > delay => h,
            _ => delay,
        }
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut last_ceiling = Duration::ZERO;
        for i in 0..12 {
            let d = b.next_delay(None);
            let ceiling = (Duration::from_millis(100) * (1 << i)).min(Duration::from_secs(2));
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "attempt {i}: {d:?} vs {ceiling:?}"
            );
            assert!(ceiling >= last_ceiling);
            last_ceiling = ceiling;
        }
        b.reset();
        assert!(b.next_delay(None) <= Duration::from_millis(100));
    }

    #[test]
    fn extreme_intervals_never_panic() {
        let extremes = [
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_secs(u64::MAX / 2),
            Duration::MAX,
        ];
        for initial in extremes {
            for max in extremes {
                let mut b = Backoff::new(initial, max);
                for _ in 0..70 {
                    let d = b.next_delay(Some(Duration::MAX));
                    assert!(d <= MAX_BACKOFF, "{initial:?}/{max:?}: {d:?}");
                    // What callers do with it must not overflow either.
                    let _ = std::time::Instant::now() + d;
                }
            }
        }
    }

    #[test]
    fn huge_server_hint_is_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            b.next_delay(Some(Duration::MAX)),
            crate::outcome::MAX_SERVER_DELAY
        );
    }

    #[test]
    fn server_hint_wins_when_longer() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert!(b.next_delay(Some(Duration::from_millis(1))) >= Duration::from_millis(100));
    }
}
