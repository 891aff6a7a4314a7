//! Client-side pacing of mutating calls: a token bucket shaped like EC2's own (burst, then
//! a steady rate), which halves its rate when EC2 answers RequestLimitExceeded anyway, so a
//! large plan runs at the rate the account allows instead of provoking a retry storm.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Pacing parameters (`serverless.mutationRate` / `mutationBurst`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pacing {
    /// Steady calls per second.
    pub rate: f64,
    /// Calls allowed at once from a full bucket.
    pub burst: f64,
}

impl Default for Pacing {
    /// EC2's documented default for mutating actions: a bucket of 50, refilled at 5 per second.
    fn default() -> Self {
        Pacing {
            rate: 5.0,
            burst: 50.0,
        }
    }
}

#[derive(Debug)]
struct State {
    tokens: f64,
    rate: f64,
    burst: f64,
    last: Instant,
}

/// A shared token bucket (uses tokio's clock, so simulations can run on paused time).
#[derive(Debug)]
pub struct Pacer {
    state: Mutex<State>,
}

/// The lowest rate the pacer backs off to.
const MIN_RATE: f64 = 0.5;

impl Pacer {
    /// A full bucket.
    pub fn new(p: Pacing) -> Pacer {
        Pacer {
            state: Mutex::new(State {
                tokens: p.burst,
                rate: p.rate.max(MIN_RATE),
                burst: p.burst.max(1.0),
                last: Instant::now(),
            }),
        }
    }

    /// Waits for a token.
    pub async fn take(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().expect("pacer");
                let now = Instant::now();
                let refill = now.duration_since(s.last).as_secs_f64() * s.rate;
                s.tokens = (s.tokens + refill).min(s.burst);
                s.last = now;
                // A little slack for float rounding: a refill of 0.99999… is a token.
                if s.tokens >= 1.0 - 1e-6 {
                    s.tokens = (s.tokens - 1.0).max(0.0);
                    return;
                }
                Duration::from_secs_f64((1.0 - s.tokens) / s.rate).max(Duration::from_millis(1))
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// EC2 throttled a call: slow down and start from an empty bucket.
    pub fn throttled(&self) {
        let mut s = self.state.lock().expect("pacer");
        s.rate = (s.rate / 2.0).max(MIN_RATE);
        s.tokens = 0.0;
    }

    /// The current rate (calls per second).
    pub fn rate(&self) -> f64 {
        self.state.lock().expect("pacer").rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate() {
        let p = Pacer::new(Pacing {
            rate: 5.0,
            burst: 10.0,
        });
        let t0 = Instant::now();
        for _ in 0..10 {
            p.take().await;
        }
        assert!(
            t0.elapsed() < Duration::from_millis(1),
            "the burst is immediate"
        );
        for _ in 0..10 {
            p.take().await;
        }
        let e = t0.elapsed().as_secs_f64();
        assert!((1.9..2.1).contains(&e), "10 more at 5/s take 2 s, took {e}");
        p.throttled();
        assert_eq!(p.rate(), 2.5);
    }
}
