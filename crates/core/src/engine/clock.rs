//! The engine's wall clock: the system time read once, advanced by tokio's monotonic clock.
//! Leases measured with it do not jump when NTP steps the system clock during a run, and
//! tests that pause tokio's clock move it too (so a lease can expire in a test in no time).

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Now, as UTC.
pub fn now() -> DateTime<Utc> {
    static ANCHOR: OnceLock<(DateTime<Utc>, Instant)> = OnceLock::new();
    let (wall, mono) = *ANCHOR.get_or_init(|| (Utc::now(), Instant::now()));
    let at = Instant::now();
    let delta = |d: std::time::Duration| chrono::Duration::from_std(d).unwrap_or_default();
    if at >= mono {
        wall + delta(at - mono)
    } else {
        wall - delta(mono - at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_a_paused_tokio_clock() {
        let before = now();
        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        let after = now();
        assert_eq!((after - before).num_seconds(), 3600);
    }
}
