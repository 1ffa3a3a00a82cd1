//! Exponential backoff with full jitter, bounded by `retry.initial_interval` and
//! `retry.max_interval`. Jitter keeps a fleet of agents from retrying in lockstep after a
//! collector restart.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            attempt: 0,
        }
    }

    /// The next delay: uniformly random in [ceiling/2, ceiling], where the ceiling doubles
    /// each call from `initial` up to `max`. A server hint (`Retry-After`, `RetryInfo`)
    /// takes precedence when it is longer, so we never retry earlier than asked.
    pub fn next_delay(&mut self, server_hint: Option<Duration>) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = ceiling / 2;
        let jitter = Duration::from_nanos(fastrand::u64(0..=(ceiling - half).as_nanos() as u64));
        let delay = half + jitter;
        match server_hint {
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
    fn server_hint_wins_when_longer() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        assert_eq!(
            b.next_delay(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert!(b.next_delay(Some(Duration::from_millis(1))) >= Duration::from_millis(100));
    }
}
