//! Client-side pacing of mutating calls: one token bucket per API action, shaped like EC2's
//! own (a burst, then a steady rate). When EC2 answers RequestLimitExceeded anyway, the rate
//! halves (at most once a second) and creeps back up with each success (AIMD), so a large
//! plan runs at the rate the account allows instead of provoking a retry storm.
//!
//! One pacer may serve several runs at once (the fleet's executor, see [`Budget`]): a call on
//! the data path (urgent) is then served before any other waiting for the same bucket, and
//! the other calls wait while a run still plans (its data path is yet to come).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Urgent calls waiting for a token.
    urgent: usize,
}

/// Token buckets per API action (tokio's clock, so simulations can run on paused time).
#[derive(Debug)]
pub struct Pacer {
    init: Mutex<Pacing>,
    buckets: Mutex<BTreeMap<&'static str, State>>,
    /// Runs sharing the pacer that have not planned yet (see [`Pacer::hold`]).
    holds: AtomicUsize,
}

/// While alive, calls that are not urgent wait (see [`Pacer::hold`]).
#[derive(Debug)]
pub struct Hold<'a>(&'a Pacer);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.holds.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts an urgent waiter of one bucket while it waits (also when the wait is cancelled).
struct Waiting<'a>(&'a Pacer, &'static str);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.with(self.1, |s| s.urgent -= 1);
    }
}

/// The lowest rate the pacer backs off to.
const MIN_RATE: f64 = 0.5;
/// Rate regained per successful call after a slow-down.
const INCREASE: f64 = 0.25;
/// The pacer sends slightly under the configured rate and keeps one token of the burst in
/// hand, so arrival jitter does not make EC2's bucket run dry.
const HEADROOM: f64 = 0.98;
/// How long a call that must let others go first waits before it looks again.
const YIELD: Duration = Duration::from_millis(5);

impl Pacer {
    /// Full buckets.
    pub fn new(p: Pacing) -> Pacer {
        Pacer {
            init: Mutex::new(p),
            buckets: Mutex::new(BTreeMap::new()),
            holds: AtomicUsize::new(0),
        }
    }

    /// Holds back the calls that are not urgent until the guard is dropped: a run sharing
    /// this pacer takes it until it has planned, so no other run's bulk goes before its data
    /// path.
    pub fn hold(&self) -> Hold<'_> {
        self.holds.fetch_add(1, Ordering::SeqCst);
        Hold(self)
    }

    fn init(&self) -> Pacing {
        *self.init.lock().expect("pacer")
    }

    fn with<T>(&self, action: &'static str, f: impl FnOnce(&mut State) -> T) -> T {
        let init = self.init();
        let mut buckets = self.buckets.lock().expect("pacer");
        let s = buckets.entry(action).or_insert_with(|| State {
            tokens: (init.burst - 1.0).max(1.0),
            rate: (init.rate * HEADROOM).max(MIN_RATE),
            burst: (init.burst - 1.0).max(1.0),
            last: Instant::now(),
            slowed: None,
            urgent: 0,
        });
        f(s)
    }

    /// Waits for a token of `action`'s bucket; an `urgent` call (the data path) goes before
    /// the others waiting, which also wait while the pacer is held.
    pub async fn take(&self, action: &'static str, urgent: bool) {
        let _waiting = urgent.then(|| {
            self.with(action, |s| s.urgent += 1);
            Waiting(self, action)
        });
        loop {
            let held = !urgent && self.holds.load(Ordering::SeqCst) > 0;
            let wait = self.with(action, |s| {
                let now = Instant::now();
                let refill = now.duration_since(s.last).as_secs_f64() * s.rate;
                s.tokens = (s.tokens + refill).min(s.burst);
                s.last = now;
                if held || (!urgent && s.urgent > 0) {
                    // Look again when the next token is due (urgent waiters take it first).
                    return Some(
                        Duration::from_secs_f64((1.0 - s.tokens).max(0.0) / s.rate).max(YIELD),
                    );
                }
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
        let max = (self.init().rate * HEADROOM).max(MIN_RATE);
        self.with(action, |s| s.rate = (s.rate + INCREASE).min(max));
    }

    /// The pacing new buckets start from.
    pub fn pacing(&self) -> Pacing {
        self.init()
    }

    /// Sets the pacing, keeping what the buckets have spent: no bucket gains tokens or rate
    /// by it (a kept budget must not start over full).
    pub fn set_pacing(&self, p: Pacing) {
        let mut init = self.init.lock().expect("pacer");
        if *init == p {
            return;
        }
        *init = p;
        let (rate, burst) = ((p.rate * HEADROOM).max(MIN_RATE), (p.burst - 1.0).max(1.0));
        for s in self.buckets.lock().expect("pacer").values_mut() {
            s.rate = s.rate.min(rate);
            s.burst = burst;
            s.tokens = s.tokens.min(burst);
        }
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
            p.take("ReplaceRoute", false).await;
        }
        p.take("AssociateAddress", false).await;
        assert!(
            t0.elapsed() < Duration::from_millis(1),
            "bursts are immediate, one bucket per action"
        );
        for _ in 0..10 {
            p.take("ReplaceRoute", false).await;
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

    /// The fleet's order: an urgent call waiting goes before every other waiting for the same
    /// bucket, and a hold keeps the others back until it is dropped.
    #[tokio::test(start_paused = true)]
    async fn urgent_calls_go_first_and_a_hold_keeps_the_rest_back() {
        use std::sync::Arc;
        let p = Arc::new(Pacer::new(Pacing {
            rate: 1.0,
            burst: 2.0,
        }));
        // The burst (one token kept in hand) is spent.
        p.take("ReplaceRoute", false).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let go = |name: &'static str, urgent: bool| {
            let (p, order) = (p.clone(), order.clone());
            tokio::spawn(async move {
                p.take("ReplaceRoute", urgent).await;
                order.lock().unwrap().push(name);
            })
        };
        let bulk = go("bulk", false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let data = go("data", true);
        let (bulk_res, data_res) = tokio::join!(bulk, data);
        bulk_res.unwrap();
        data_res.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            ["data", "bulk"],
            "the data path first"
        );

        // A hold: the bulk waits however many tokens there are, the urgent does not.
        let hold = p.hold();
        tokio::time::sleep(Duration::from_secs(5)).await;
        let bulk = go("bulk-held", false);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!bulk.is_finished(), "held back");
        go("data-2", true).await.unwrap();
        assert!(!bulk.is_finished(), "still held back");
        drop(hold);
        bulk.await.unwrap();
        assert_eq!(
            *order.lock().unwrap(),
            ["data", "bulk", "data-2", "bulk-held"]
        );
    }

    /// One token is kept in hand, full or refilled: a bucket of 5 lets 4 calls go at once
    /// (arrival jitter never runs EC2's own bucket dry); the 5th waits for a token.
    #[tokio::test(start_paused = true)]
    async fn one_token_is_kept_in_hand() {
        let p = Pacer::new(Pacing {
            rate: 2.0,
            burst: 5.0,
        });
        for round in 0..2 {
            let t0 = Instant::now();
            for _ in 0..4 {
                p.take("ReplaceRoute", false).await;
            }
            assert_eq!(t0.elapsed(), Duration::ZERO, "round {round}");
            p.take("ReplaceRoute", false).await;
            let waited = t0.elapsed().as_secs_f64();
            assert!((0.45..0.6).contains(&waited), "round {round}: {waited}");
            // Refilled to the same 4, not to the whole bucket.
            tokio::time::sleep(Duration::from_secs(100)).await;
        }
    }

    /// A kept pacer takes a new pacing without starting over full.
    #[tokio::test(start_paused = true)]
    async fn a_new_pacing_keeps_what_was_spent() {
        let p = Pacer::new(Pacing {
            rate: 5.0,
            burst: 11.0,
        });
        for _ in 0..10 {
            p.take("ReplaceRoute", false).await;
        }
        p.set_pacing(Pacing {
            rate: 2.0,
            burst: 101.0,
        });
        let t0 = Instant::now();
        p.take("ReplaceRoute", false).await;
        let waited = t0.elapsed().as_secs_f64();
        assert!(
            (0.4..0.6).contains(&waited),
            "a token at the new rate, not a full bucket: {waited}"
        );
        assert_eq!(p.pacing().burst, 101.0);
    }

    /// Throttled: the rate halves at most once a second, never below the floor, and the
    /// bucket empties (the next call waits a token at the new rate); each success gives back
    /// a quarter call per second, up to the configured rate.
    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_once_a_second_and_successes_give_it_back() {
        let p = Pacer::new(Pacing {
            rate: 8.0,
            burst: 10.0,
        });
        let full = 8.0 * HEADROOM;
        p.throttled("ReplaceRoute");
        p.throttled("ReplaceRoute");
        assert_eq!(p.rate("ReplaceRoute"), full / 2.0);
        let t0 = Instant::now();
        p.take("ReplaceRoute", false).await;
        let waited = t0.elapsed().as_secs_f64();
        assert!(
            (0.2..0.3).contains(&waited),
            "a token at {}/s: {waited}",
            full / 2.0
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        p.throttled("ReplaceRoute");
        assert_eq!(p.rate("ReplaceRoute"), full / 4.0);
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            p.throttled("ReplaceRoute");
        }
        assert_eq!(p.rate("ReplaceRoute"), MIN_RATE);
        p.succeeded("ReplaceRoute");
        assert_eq!(p.rate("ReplaceRoute"), MIN_RATE + INCREASE);
        for _ in 0..100 {
            p.succeeded("ReplaceRoute");
        }
        assert_eq!(p.rate("ReplaceRoute"), full);
    }

    /// An urgent call that stops waiting (its run gave up) no longer holds the others back.
    #[tokio::test(start_paused = true)]
    async fn a_cancelled_urgent_wait_lets_the_others_go() {
        use std::sync::Arc;
        let p = Arc::new(Pacer::new(Pacing {
            rate: 1.0,
            burst: 2.0,
        }));
        p.take("ReplaceRoute", false).await;
        let urgent = {
            let p = p.clone();
            tokio::spawn(async move { p.take("ReplaceRoute", true).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        urgent.abort();
        let _ = urgent.await;
        let t0 = Instant::now();
        p.take("ReplaceRoute", false).await;
        let waited = t0.elapsed().as_secs_f64();
        assert!(waited < 1.1, "the bulk call takes the next token: {waited}");
    }

    /// A call waits only for the part of a token still missing.
    #[tokio::test(start_paused = true)]
    async fn a_call_waits_for_the_missing_part_of_a_token() {
        let p = Pacer::new(Pacing {
            rate: 2.0,
            burst: 2.0,
        });
        p.take("ReplaceRoute", false).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t0 = Instant::now();
        p.take("ReplaceRoute", false).await;
        let waited = t0.elapsed().as_secs_f64();
        assert!(
            (0.2..0.3).contains(&waited),
            "half a token at 2/s: {waited}"
        );
    }

    /// A new pacing: its rate (with the headroom) at once, and a smaller bucket clips what
    /// is in hand (one token kept back, as always).
    #[tokio::test(start_paused = true)]
    async fn a_smaller_pacing_clips_the_bucket_and_the_rate() {
        let p = Pacer::new(Pacing {
            rate: 5.0,
            burst: 11.0,
        });
        p.take("ReplaceRoute", false).await;
        p.set_pacing(Pacing {
            rate: 2.0,
            burst: 3.0,
        });
        assert_eq!(p.rate("ReplaceRoute"), 2.0 * HEADROOM);
        let t0 = Instant::now();
        p.take("ReplaceRoute", false).await;
        p.take("ReplaceRoute", false).await;
        assert_eq!(t0.elapsed(), Duration::ZERO, "two in hand");
        p.take("ReplaceRoute", false).await;
        assert!(t0.elapsed() > Duration::from_millis(400), "the third waits");
    }
}
