//! The drill: the field report's experiment, locally. Two loopback "appliances" answer HTTP
//! with their names; a client sends a request every 100 ms (5 s timeout, like the report's
//! curl loop) to whichever appliance the route table's next hop names — this simulates the
//! data path, since no packet really crosses the emulated VPC; the active appliance is killed;
//! the probe detects it and fails over; the timeline and the gap without answers come out.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use failover_core::app::probe::{http_get, watch, ProbeEvent};
use failover_core::engine::declaration::Declaration;
use failover_core::engine::failover::FailoverError;
use failover_core::engine::model::Filter;
use failover_core::engine::net::Cidr;
use failover_core::engine::ports::{Ec2, ObjectStore};

/// A loopback HTTP server standing in for an appliance.
pub struct Appliance {
    /// Its name (answered as the body).
    pub name: String,
    /// Where it listens.
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Appliance {
    /// Starts answering `200 <name> ACTIVE` on a free loopback port.
    pub async fn start(name: &str) -> std::io::Result<Appliance> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let body = format!("{name} ACTIVE");
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let reply = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(Appliance {
            name: name.to_string(),
            addr,
            task,
        })
    }

    /// Kills it: the port stops listening (connections are refused).
    pub fn kill(&self) {
        self.task.abort();
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Drill timing.
#[derive(Clone, Debug)]
pub struct DrillConfig {
    /// Whole run.
    pub duration: Duration,
    /// When the active appliance is killed.
    pub kill_at: Duration,
    /// Client request period (the report: 0.1 s).
    pub request_every: Duration,
    /// Client timeout (the report: 5 s).
    pub request_timeout: Duration,
}

impl Default for DrillConfig {
    fn default() -> Self {
        DrillConfig {
            duration: Duration::from_secs(8),
            kill_at: Duration::from_secs(2),
            request_every: Duration::from_millis(100),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// One client request.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// Sent at (ms since the start).
    pub at_ms: u64,
    /// The appliance the route's next hop named.
    pub routed_to: String,
    /// Who answered, if anyone.
    pub answered_by: Option<String>,
    /// Response (or failure) time in ms.
    pub millis: u64,
    /// Why there was no answer.
    pub error: Option<String>,
}

/// The drill's result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    /// Every request.
    pub samples: Vec<Sample>,
    /// Probe verdicts and failovers.
    pub events: Vec<ProbeEvent>,
    /// When the active appliance was killed.
    pub killed_at_ms: u64,
    /// Which one.
    pub killed: String,
    /// Last answer before the gap and first after it.
    pub gap_from_ms: u64,
    /// First answer after the gap.
    pub gap_to_ms: Option<u64>,
    /// The time without answers, in ms (`None` if answers never came back).
    pub gap_ms: Option<u64>,
}

/// Runs the drill. `route_table` holds `destination`; `appliances` maps each member ENI that
/// can be a next hop to its appliance. The probe must be configured in `decl`.
pub async fn run(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    route_table: &str,
    destination: Cidr,
    appliances: &BTreeMap<String, Appliance>,
    cfg: &DrillConfig,
) -> Result<DrillReport, FailoverError> {
    let start = Instant::now();
    let ms = move || start.elapsed().as_millis() as u64;
    let until = start + cfg.duration;
    let client = async {
        let mut samples = Vec::new();
        let mut killed = None;
        while Instant::now() < until {
            let tick = Instant::now();
            if killed.is_none() && start.elapsed() >= cfg.kill_at {
                // Kill whichever appliance the route names now: the active one.
                if let Some(a) = next_hop(ec2, route_table, destination)
                    .await
                    .and_then(|e| appliances.get(&e))
                {
                    a.kill();
                    killed = Some((ms(), a.name.clone()));
                }
            }
            let sent = ms();
            let target = next_hop(ec2, route_table, destination).await;
            let appliance = target.as_ref().and_then(|e| appliances.get(e));
            let began = Instant::now();
            let answer = match appliance {
                Some(a) => {
                    match tokio::time::timeout(cfg.request_timeout, http_get(a.addr, "/")).await {
                        Ok(Ok((200, body))) => {
                            Ok(body.split_whitespace().next().unwrap_or("").to_string())
                        }
                        Ok(Ok((status, _))) => Err(format!("HTTP {status}")),
                        Ok(Err(e)) => Err(e.to_string()),
                        Err(_) => Err("timeout".into()),
                    }
                }
                None => Err(format!(
                    "route points at {}",
                    target.as_deref().unwrap_or("nothing")
                )),
            };
            samples.push(Sample {
                at_ms: sent,
                routed_to: appliance.map(|a| a.name.clone()).unwrap_or_default(),
                answered_by: answer.as_ref().ok().cloned(),
                millis: began.elapsed().as_millis() as u64,
                error: answer.err(),
            });
            if let Some(rest) = cfg.request_every.checked_sub(tick.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
        (samples, killed)
    };
    let (probe, (samples, killed)) =
        futures::join!(watch(ec2, store, decl, until, None, None), client);
    let probe = probe?;
    let (killed_at_ms, killed) = killed.unwrap_or((0, String::new()));
    let first_fail = samples
        .iter()
        .position(|s| s.at_ms >= killed_at_ms && s.answered_by.is_none());
    let (gap_from_ms, gap_to_ms) = match first_fail {
        Some(i) => {
            let from = samples[..i]
                .iter()
                .rev()
                .find(|s| s.answered_by.is_some())
                .map(|s| s.at_ms + s.millis)
                .unwrap_or(0);
            let to = samples[i..]
                .iter()
                .find(|s| s.answered_by.is_some())
                .map(|s| s.at_ms + s.millis);
            (from, to)
        }
        None => (killed_at_ms, Some(killed_at_ms)),
    };
    Ok(DrillReport {
        gap_ms: gap_to_ms.map(|t| t.saturating_sub(gap_from_ms)),
        samples,
        events: probe.events,
        killed_at_ms,
        killed,
        gap_from_ms,
        gap_to_ms,
    })
}

async fn next_hop(ec2: &dyn Ec2, table: &str, destination: Cidr) -> Option<String> {
    let tables = ec2
        .describe_route_tables(&[Filter::new("route-table-id", [table])])
        .await
        .ok()?;
    tables
        .first()?
        .routes
        .iter()
        .find(|r| r.destination == destination)?
        .network_interface_id
        .clone()
}

/// The timeline, one line per request (as the report's curl loop printed), then events
/// and the gap.
pub fn timeline(r: &DrillReport) -> String {
    let mut out = String::new();
    let mut events = r.events.iter().peekable();
    let mut kill_shown = r.killed_at_ms == 0;
    for s in &r.samples {
        while let Some(e) = events.next_if(|e| e.at_ms <= s.at_ms) {
            let _ = writeln!(
                out,
                "{:>7.3}s  ** probe: {}",
                e.at_ms as f64 / 1000.0,
                e.what
            );
        }
        if !kill_shown && s.at_ms >= r.killed_at_ms {
            let _ = writeln!(
                out,
                "{:>7.3}s  ** killed {}",
                r.killed_at_ms as f64 / 1000.0,
                r.killed
            );
            kill_shown = true;
        }
        match (&s.answered_by, &s.error) {
            (Some(who), _) => {
                let _ = writeln!(
                    out,
                    "{:>7.3}s  200 from {who:<28} {:>6.3}s",
                    s.at_ms as f64 / 1000.0,
                    s.millis as f64 / 1000.0
                );
            }
            (None, err) => {
                let _ = writeln!(
                    out,
                    "{:>7.3}s  --- no answer via {:<20} {:>6.3}s ({})",
                    s.at_ms as f64 / 1000.0,
                    s.routed_to,
                    s.millis as f64 / 1000.0,
                    err.as_deref().unwrap_or("")
                );
            }
        }
    }
    for e in events {
        let _ = writeln!(
            out,
            "{:>7.3}s  ** probe: {}",
            e.at_ms as f64 / 1000.0,
            e.what
        );
    }
    let _ = match r.gap_ms {
        Some(g) => writeln!(
            out,
            "gap without answers: {:.3} s (last answer {:.3} s, next answer {:.3} s); the field report measured about 130 s",
            g as f64 / 1000.0,
            r.gap_from_ms as f64 / 1000.0,
            r.gap_to_ms.unwrap_or(0) as f64 / 1000.0
        ),
        None => writeln!(out, "no answer came back before the drill ended"),
    };
    out
}

/// An SVG plot of response time over the run (failures in red on the axis).
pub fn svg(r: &DrillReport) -> String {
    let (w, h, pad) = (900.0, 320.0, 50.0);
    let end = r.samples.last().map(|s| s.at_ms).unwrap_or(1).max(1) as f64;
    let max = r
        .samples
        .iter()
        .map(|s| s.millis)
        .max()
        .unwrap_or(1)
        .max(10) as f64;
    let x = |ms: u64| pad + (ms as f64 / end) * (w - 2.0 * pad);
    let y = |v: u64| h - pad - (v as f64 / max) * (h - 2.0 * pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    let _ = writeln!(s, "<text x=\"{pad}\" y=\"20\">cloud-failover drill: response time per request (gap without answers {})</text>",
        r.gap_ms.map(|g| format!("{:.3} s", g as f64 / 1000.0)).unwrap_or_else(|| "unbounded".into()));
    let _ = writeln!(
        s,
        "<line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>",
        h - pad,
        w - pad,
        h - pad
    );
    let _ = writeln!(
        s,
        "<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>",
        h - pad
    );
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">time (s), run of {:.1} s</text>",
        w / 2.0,
        h - 15.0,
        end / 1000.0
    );
    let _ = writeln!(
        s,
        "<text x=\"12\" y=\"{pad}\">{max} ms</text><text x=\"12\" y=\"{}\">0</text>",
        h - pad
    );
    if let Some(to) = r.gap_to_ms {
        let _ = writeln!(
            s,
            "<rect x=\"{}\" y=\"{pad}\" width=\"{}\" height=\"{}\" fill=\"#fdd\"/>",
            x(r.gap_from_ms),
            (x(to) - x(r.gap_from_ms)).max(1.0),
            h - 2.0 * pad
        );
    }
    let _ = writeln!(s, "<line x1=\"{0}\" y1=\"{pad}\" x2=\"{0}\" y2=\"{1}\" stroke=\"red\" stroke-dasharray=\"4\"/><text x=\"{0}\" y=\"{2}\" fill=\"red\">killed {3}</text>",
        x(r.killed_at_ms), h - pad, pad - 5.0, r.killed);
    for e in &r.events {
        let _ = writeln!(s, "<line x1=\"{0}\" y1=\"{pad}\" x2=\"{0}\" y2=\"{1}\" stroke=\"blue\" stroke-dasharray=\"2\"><title>{2}</title></line>", x(e.at_ms), h - pad, e.what);
    }
    for p in &r.samples {
        match p.answered_by {
            Some(_) => {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\" fill=\"#2a6\"/>",
                    x(p.at_ms),
                    y(p.millis)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"red\"/>",
                    x(p.at_ms),
                    h - pad
                );
            }
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_RTB};
    use failover_core::memory::MemoryCloud;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn killing_the_active_unit_fails_over_through_the_probe() {
        let cloud = MemoryCloud::seed();
        let a = Appliance::start("failover01").await.unwrap();
        let b = Appliance::start("failover02").await.unwrap();
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["serverless"] = serde_json::json!({
            "cooldownSeconds": 0,
            "probe": {"kind": "http", "intervalMs": 100, "timeoutMs": 200, "failuresToDown": 2,
                      "successesToUp": 1,
                      "targets": {SEED_A: a.addr.to_string(), SEED_B: b.addr.to_string()}}
        });
        let decl = Declaration::from_value(&v).unwrap();
        let appliances: BTreeMap<String, Appliance> =
            [(SEED_A_EXT.to_string(), a), (SEED_B_EXT.to_string(), b)].into();
        let cfg = DrillConfig {
            duration: Duration::from_millis(2500),
            kill_at: Duration::from_millis(800),
            ..DrillConfig::default()
        };
        let r = run(
            &cloud,
            &cloud,
            &decl,
            SEED_RTB,
            "0.0.0.0/0".parse().unwrap(),
            &appliances,
            &cfg,
        )
        .await
        .unwrap();
        assert_eq!(r.killed, "failover01");
        assert!(
            r.events.iter().any(|e| e.what.contains("is DOWN")),
            "{:?}",
            r.events
        );
        assert!(
            r.events
                .iter()
                .any(|e| e.what.starts_with(&format!("failover to {SEED_B}"))),
            "{:?}",
            r.events
        );
        assert_eq!(
            cloud
                .route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap())
                .as_deref(),
            Some(SEED_B_EXT)
        );
        let gap = r.gap_ms.expect("answers came back");
        assert!(gap < 1500, "gap {gap} ms\n{}", timeline(&r));
        assert!(r.samples.last().unwrap().answered_by.as_deref() == Some("failover02"));
        assert!(svg(&r).starts_with("<svg"));
    }
}
