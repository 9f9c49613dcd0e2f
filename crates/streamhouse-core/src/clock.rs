//! Time, injected so tests control it.
//!
//! Every wall-clock read in StreamHouse goes through a [`Clock`]: record
//! timestamps, segment creation times, retention cutoffs, tombstone and
//! orphan ages, lease expiry and agent heartbeats. Production code passes
//! [`SystemClock`]; tests pass a [`ManualClock`] and move it by hand.
//!
//! The invariant that matters: `monotonic_ms` never goes backwards, while
//! `now_ms` is the wall clock and may jump when the system clock is set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Two readings of time, in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    /// A monotonic reading, for TTLs: only differences between two
    /// readings mean anything.
    fn monotonic_ms(&self) -> u64;

    /// Milliseconds since the Unix epoch, by the wall clock: record
    /// timestamps, lease expiry and tombstone ages.
    fn now_ms(&self) -> i64;
}

/// The system's clocks. On Linux the monotonic reading is the coarse clock
/// (a few nanoseconds per read, a few milliseconds of resolution), which is
/// plenty for TTLs of seconds and cheap enough for every index lookup.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn monotonic_ms(&self) -> u64 {
        #[cfg(target_os = "linux")]
        {
            use nix::time::{ClockId, clock_gettime};
            if let Ok(now) = clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
                return (now.tv_sec() as u64) * 1000 + (now.tv_nsec() as u64) / 1_000_000;
            }
        }
        fallback_monotonic_ms()
    }

    #[allow(clippy::disallowed_methods)]
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

fn fallback_monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A clock that moves only when told to. Both readings move together:
/// the monotonic one starts at 0, the wall clock at the epoch time given
/// to [`ManualClock::starting_at`] (0 by default).
#[derive(Debug, Default)]
pub struct ManualClock {
    start_ms: i64,
    elapsed_ms: AtomicU64,
}

impl ManualClock {
    /// A clock whose wall reading starts at `now_ms` (ms since the epoch).
    /// Tests that mix it with times stamped elsewhere (an object's
    /// last-modified time, a metadata store's own clock) start it at
    /// [`SystemClock`]'s reading.
    pub fn starting_at(now_ms: i64) -> Self {
        Self {
            start_ms: now_ms,
            elapsed_ms: AtomicU64::new(0),
        }
    }

    /// Moves both readings forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // Saturating, so a huge step cannot wrap the clock backwards.
        let _ = self
            .elapsed_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |elapsed| {
                Some(elapsed.saturating_add(ms))
            });
    }
}

impl Clock for ManualClock {
    fn monotonic_ms(&self) -> u64 {
        self.elapsed_ms.load(Ordering::SeqCst)
    }

    fn now_ms(&self) -> i64 {
        let elapsed = i64::try_from(self.monotonic_ms()).unwrap_or(i64::MAX);
        self.start_ms.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock;
        let a = clock.monotonic_ms();
        std::thread::sleep(Duration::from_millis(30));
        let b = clock.monotonic_ms();
        assert!(b >= a + 20, "{a} then {b}");
    }

    #[test]
    fn system_clock_reads_the_wall_clock() {
        let clock = SystemClock;
        // 2020-01-01T00:00:00Z: any machine running this is later.
        assert!(clock.now_ms() > 1_577_836_800_000, "{}", clock.now_ms());
        let a = clock.now_ms();
        std::thread::sleep(Duration::from_millis(30));
        let b = clock.now_ms();
        assert!(b >= a + 20, "{a} then {b}");
    }

    #[test]
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::default();
        assert_eq!(clock.monotonic_ms(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.monotonic_ms(), 2000);
    }

    #[test]
    fn manual_clock_moves_both_readings() {
        let clock = ManualClock::starting_at(1_700_000_000_000);
        assert_eq!(
            (clock.monotonic_ms(), clock.now_ms()),
            (0, 1_700_000_000_000)
        );
        clock.advance(Duration::from_millis(1500));
        assert_eq!(
            (clock.monotonic_ms(), clock.now_ms()),
            (1500, 1_700_000_001_500)
        );
        assert_eq!(ManualClock::default().now_ms(), 0);
    }

    #[test]
    fn manual_clock_saturates_instead_of_wrapping() {
        let clock = ManualClock::starting_at(i64::MAX - 10);
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.monotonic_ms(), u64::MAX);
        assert_eq!(clock.now_ms(), i64::MAX);
    }

    #[test]
    fn clocks_are_usable_as_trait_objects() {
        let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(ManualClock::starting_at(5));
        assert_eq!(clock.now_ms(), 5);
    }
}
