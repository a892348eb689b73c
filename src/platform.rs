//! The clock, randomness, sleeping and logging, as one small trait.
//!
//! The core never reads a clock or sleeps by itself: the wasm shell passes the Workers runtime
//! (`Date.now()`, the platform CSPRNG, `setTimeout`, `console.error`), and native tests pass a
//! virtual clock whose sleeps finish instantly in simulated time (`testing::TestPlatform`). That is
//! what lets a test run a minute of backoff and rate limits in a millisecond.

use std::future::Future;

/// What the core needs from its surroundings.
pub trait Platform {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> f64;
    /// A uniformly distributed number in `[0, 1)`, for jitter.
    fn random(&self) -> f64;
    /// A fresh unguessable key of `len` characters over `[A-Za-z0-9]` (delete keys, object names).
    fn random_key(&self, len: usize) -> String;
    /// Wait `ms` milliseconds.
    fn sleep(&self, ms: f64) -> impl Future<Output = ()>;
    /// Report something an operator should see (a corrupt document, an exhausted budget).
    fn log(&self, message: &str);
}

/// How fast storage may be written, and the waiting budgets derived from it.
///
/// R2 accepts about one write per second to one key; `write_interval_ms` is that second. The bench
/// compresses time, so it scales this down by the same factor (`R2_WRITE_INTERVAL_MS`), and every
/// budget below scales with it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    pub write_interval_ms: f64,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { write_interval_ms: 1000.0 }
    }
}

impl Pace {
    /// Parse `R2_WRITE_INTERVAL_MS` (a number of ms; unset or invalid means R2's 1000).
    pub fn from_env(value: Option<&str>) -> Pace {
        let interval = value.and_then(|v| v.trim().parse::<f64>().ok()).filter(|ms| ms.is_finite() && *ms >= 1.0);
        Pace { write_interval_ms: interval.unwrap_or(1000.0) }
    }

    /// The least time between two writes of one key, with a 10% margin for clock drift between
    /// isolates (each isolate's clock only advances across I/O).
    pub fn write_gap_ms(&self) -> f64 {
        self.write_interval_ms * 1.1
    }

    /// Spread of the random delay added when several requests wait for the same write slot, so
    /// the first to wake folds everyone's changes and the rest find theirs done.
    pub fn jitter_ms(&self) -> f64 {
        self.write_interval_ms * 0.5
    }

    /// How long one request may keep trying to land its change before answering anyway (its change
    /// is durable by then; see `commit`).
    pub fn budget_ms(&self) -> f64 {
        self.write_interval_ms * 12.0
    }

    /// Backoff before retry `attempt` (0-based) of a failed storage operation: exponential from
    /// 5% of the interval, capped at the interval, jittered by the caller.
    pub fn backoff_ms(&self, attempt: u32) -> f64 {
        (self.write_interval_ms * 0.05 * f64::from(1u32 << attempt.min(5))).min(self.write_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_comes_from_the_environment_or_defaults_to_r2s_second() {
        assert_eq!(Pace::from_env(None).write_interval_ms, 1000.0);
        assert_eq!(Pace::from_env(Some("50")).write_interval_ms, 50.0);
        assert_eq!(Pace::from_env(Some("fast")).write_interval_ms, 1000.0);
        assert_eq!(Pace::from_env(Some("0")).write_interval_ms, 1000.0);
        let pace = Pace::default();
        assert_eq!(pace.backoff_ms(0), 50.0);
        assert_eq!(pace.backoff_ms(10), 1000.0);
    }
}
