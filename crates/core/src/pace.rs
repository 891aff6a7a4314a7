//! Client-side pacing of mutating calls: one token bucket per API action, shaped like EC2's
//! own (a burst, then a steady rate). When EC2 answers RequestLimitExceeded anyway, the rate
//! halves (at most once a second) and creeps back up with each success (AIMD), so a large
//! plan runs at the rate the account allows instead of provoking a retry storm.

use std::collections::BTreeMap;
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
    slowed: Option<Instant>,
}

/// Token buckets per API action (tokio's clock, so simulations can run on paused time).
#[derive(Debug)]
pub struct Pacer {
    init: Pacing,
    buckets: Mutex<BTreeMap<&'static str, State>>,
}

/// The lowest rate the pacer backs off to.
const MIN_RATE: f64 = 0.5;
/// Rate regained per successful call after a slow-down.
const INCREASE: f64 = 0.25;
/// The pacer sends slightly under the configured rate and keeps one token of the burst in
/// hand, so arrival jitter does not make EC2's bucket run dry.
const HEADROOM: f64 = 0.98;

impl Pacer {
    /// Full buckets.
    pub fn new(p: Pacing) -> Pacer {
        Pacer {
            init: p,
            buckets: Mutex::new(BTreeMap::new()),
        }
    }

    fn with<T>(&self, action: &'static str, f: impl FnOnce(&mut State) -> T) -> T {
        let mut buckets = self.buckets.lock().expect("pacer");
        let s = buckets.entry(action).or_insert_with(|| State {
            tokens: (self.init.burst - 1.0).max(1.0),
            rate: (self.init.rate * HEADROOM).max(MIN_RATE),
            burst: (self.init.burst - 1.0).max(1.0),
            last: Instant::now(),
            slowed: None,
        });
        f(s)
    }

    /// Waits for a token of `action`'s bucket.
    pub async fn take(&self, action: &'static str) {
        loop {
            let wait = self.with(action, |s| {
                let now = Instant::now();
                let refill = now.duration_since(s.last).as_secs_f64() * s.rate;
                s.tokens = (s.tokens + refill).min(s.burst);
                s.last = now;
                // A little slack for float rounding: a refill of 0.99999… is a token.
                if s.tokens >= 1.0 - 1e-6 {
                    s.tokens = (s.tokens - 1.0).max(0.0);
                    return None;
                }
                Some(
                    Duration::from_secs_f64((1.0 - s.tokens) / s.rate)
                        .max(Duration::from_millis(1)),
                )
            });
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => return,
            }
        }
    }

    /// EC2 throttled a call of `action`: halve its rate (once a second at most) and empty
    /// its bucket.
    pub fn throttled(&self, action: &'static str) {
        self.with(action, |s| {
            let now = Instant::now();
            if s.slowed
                .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1))
            {
                s.rate = (s.rate / 2.0).max(MIN_RATE);
                s.slowed = Some(now);
            }
            s.tokens = 0.0;
        });
    }

    /// A call of `action` went through: regain a little rate, up to the configured one.
    pub fn succeeded(&self, action: &'static str) {
        let max = (self.init.rate * HEADROOM).max(MIN_RATE);
        self.with(action, |s| s.rate = (s.rate + INCREASE).min(max));
    }

    /// The current rate of `action` (calls per second).
    pub fn rate(&self, action: &'static str) -> f64 {
        self.with(action, |s| s.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_steady_rate_per_action() {
        let p = Pacer::new(Pacing {
            rate: 5.0,
            burst: 11.0,
        });
        let t0 = Instant::now();
        for _ in 0..10 {
            p.take("ReplaceRoute").await;
        }
        p.take("AssociateAddress").await;
        assert!(
            t0.elapsed() < Duration::from_millis(1),
            "bursts are immediate, one bucket per action"
        );
        for _ in 0..10 {
            p.take("ReplaceRoute").await;
        }
        let e = t0.elapsed().as_secs_f64();
        assert!(
            (1.9..2.3).contains(&e),
            "10 more at about 5/s take about 2 s, took {e}"
        );
        p.throttled("ReplaceRoute");
        p.throttled("ReplaceRoute");
        let slowed = p.rate("ReplaceRoute");
        assert!(
            (slowed - 2.5 * HEADROOM).abs() < 1e-9,
            "halved once within a second: {slowed}"
        );
        p.succeeded("ReplaceRoute");
        assert!(p.rate("ReplaceRoute") > slowed);
        assert_eq!(p.rate("AssociateAddress"), 5.0 * HEADROOM);
    }
}
