//! Time for TTLs, injected so tests control it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock in milliseconds.
pub trait Clock: Send + Sync + std::fmt::Debug + 'static {
    fn monotonic_ms(&self) -> u64;
}

/// The system's monotonic clock. On Linux it reads the coarse clock
/// (a few nanoseconds per read, a few milliseconds of resolution), which
/// is plenty for TTLs of seconds and cheap enough for every index lookup.
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
        fallback_ms()
    }
}

fn fallback_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let start = START.get_or_init(std::time::Instant::now);
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn monotonic_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// Milliseconds since the Unix epoch, by the wall clock: record
/// timestamps, lease expiry and tombstone ages.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
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
    fn manual_clock_moves_when_told() {
        let clock = ManualClock::default();
        assert_eq!(clock.monotonic_ms(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(clock.monotonic_ms(), 2000);
    }
}
