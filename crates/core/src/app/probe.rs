//! The health probe: probes every member every few hundred milliseconds (TCP connect or an
//! HTTP GET with expected status and body), calls a member down after k consecutive failures
//! and up after m successes, and when the member the cloud follows is down and a peer is up,
//! fails over in process (same lock, plan, execute, state log). It also repairs drift: when
//! routes and EIPs in scope do not all follow one member, it converges them on a healthy one.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpStream;

use crate::app::inspect::picture;
use crate::engine::budget::Budget;
use crate::engine::declaration::{Declaration, ProbeConfig, ProbeKind};
use crate::engine::discovery::discover;
use crate::engine::failover::FailoverError;
use crate::engine::failover::{run, RunOutcome};
use crate::engine::ports::{Ec2, ObjectStore};
use crate::engine::request::Mode;
use crate::engine::request::{RunRequest, TargetSpec};
use crate::engine::state::TaskState;

/// How often the probe re-reads who the cloud follows (besides after each failover).
const REFRESH: Duration = Duration::from_secs(15);

/// One member's health with hysteresis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// Current verdict.
    pub up: bool,
    /// Consecutive failures.
    pub failures: u32,
    /// Consecutive successes.
    pub successes: u32,
}

impl Default for Health {
    fn default() -> Health {
        Health::new()
    }
}

impl Health {
    /// A member not probed yet (counted up).
    pub fn new() -> Health {
        Health {
            up: true,
            failures: 0,
            successes: 0,
        }
    }

    /// Records one probe; returns true when the verdict changed.
    pub fn record(&mut self, ok: bool, cfg: &ProbeConfig) -> bool {
        if ok {
            self.successes += 1;
            self.failures = 0;
            if !self.up && self.successes >= cfg.successes_to_up {
                self.up = true;
                return true;
            }
        } else {
            self.failures += 1;
            self.successes = 0;
            if self.up && self.failures >= cfg.failures_to_down {
                self.up = false;
                return true;
            }
        }
        false
    }
}

/// Probes one address once.
pub async fn probe_once(cfg: &ProbeConfig, addr: SocketAddr) -> bool {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    tokio::time::timeout(timeout, attempt(cfg, addr))
        .await
        .unwrap_or(false)
}

async fn attempt(cfg: &ProbeConfig, addr: SocketAddr) -> bool {
    let answer = match cfg.kind {
        ProbeKind::Tcp => return TcpStream::connect(addr).await.is_ok(),
        ProbeKind::Http => http_get(addr, &cfg.path).await,
        ProbeKind::Https => https_get(addr, &cfg.path, cfg.tls_verify).await,
    };
    match answer {
        Ok((status, body)) => {
            status == cfg.expect_status
                && cfg
                    .expect_body
                    .as_deref()
                    .is_none_or(|want| body_matches(&body, want))
        }
        Err(_) => false,
    }
}

/// Whether a page's body says `want`: the whole body, trimmed, is `want` (a page saying
/// `INACTIVE` is not `ACTIVE`, as a substring match would have it).
pub fn body_matches(body: &str, want: &str) -> bool {
    body.trim() == want.trim()
}

/// Why a probe's request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// No connection.
    #[error("{0}")]
    Connect(#[from] std::io::Error),
    /// No TLS session (or no TLS configuration).
    #[error("TLS: {0}")]
    Tls(String),
    /// The HTTP exchange failed.
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    /// The body could not be read (or is over the limit).
    #[error("body: {0}")]
    Body(String),
}

/// An HTTP/1.1 GET (no TLS): the status code and the body, or why it failed. hyper speaks
/// the protocol; what a probe accepts (status, body text) is ours.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<(u16, String), ProbeError> {
    let stream = TcpStream::connect(addr).await?;
    exchange(stream, addr, path).await
}

/// The same GET over TLS. With `verify` off the certificate is not checked (appliances'
/// management interfaces usually carry self-signed ones); the connection is still encrypted.
pub async fn https_get(
    addr: SocketAddr,
    path: &str,
    verify: bool,
) -> Result<(u16, String), ProbeError> {
    let tcp = TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(tls::config(verify).map_err(ProbeError::Tls)?);
    let name = tokio_rustls::rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| ProbeError::Tls(e.to_string()))?;
    exchange(stream, addr, path).await
}

/// Largest body read from a probe target (an ACTIVE page is a few bytes).
const MAX_BODY: usize = 64 * 1024;

/// One GET over `stream` with hyper's HTTP/1.1 client (chunked and sized bodies alike): the
/// status code and the body (at most [`MAX_BODY`] bytes), or why it failed.
async fn exchange<S>(stream: S, addr: SocketAddr, path: &str) -> Result<(u16, String), ProbeError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    use http_body_util::{BodyExt, Empty, Limited};
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, addr.to_string())
        .header(hyper::header::USER_AGENT, "cloud-failover")
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ProbeError::Body(e.to_string()))?
        .to_bytes();
    connection.abort();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Something the probe did.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeEvent {
    /// Milliseconds since the window started.
    pub at_ms: u64,
    /// What happened.
    pub what: String,
}

/// A probe window's summary.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// Probe rounds done.
    pub rounds: u32,
    /// Health at the end, by member.
    pub health: BTreeMap<String, Health>,
    /// Verdict changes and failovers.
    pub events: Vec<ProbeEvent>,
}

/// Probes until `until`, failing over in process when needed; a failover it starts honours
/// `deadline` (the Lambda's) as the failover function's runs do.
pub async fn watch(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    until: Instant,
    deadline: Option<Instant>,
    budget: Option<Arc<Budget>>,
) -> Result<ProbeReport, FailoverError> {
    let cfg = decl.extension.probe.clone().ok_or_else(|| {
        FailoverError::Refused(vec!["the declaration has no serverless.probe block".into()])
    })?;
    let start = Instant::now();
    let at = || start.elapsed().as_millis() as u64;
    let mut report = ProbeReport {
        rounds: 0,
        health: BTreeMap::new(),
        events: Vec::new(),
    };
    let mut view = None;
    let mut refreshed = Instant::now();
    let interval = Duration::from_millis(cfg.interval_ms);
    let mut backoff = Backoff::default();
    let mut last_action: Option<String> = None;
    // The deadline and shared budget of every failover the probe runs.
    let limits = RunRequest {
        deadline,
        budget,
        ..RunRequest::new(TargetSpec::Peer, Mode::Execute, "probe")
    };
    while Instant::now() + interval < until {
        let tick = Instant::now();
        if view.is_none() || refreshed.elapsed() > REFRESH {
            let snap = discover(ec2, store, decl)
                .await
                .map_err(FailoverError::Discovery)?;
            let targets = addresses(&cfg, &snap);
            view = Some((picture(decl, &snap, None), targets));
            refreshed = Instant::now();
        }
        let (pic, targets) = view.as_ref().expect("set above");
        let cfg_ref = &cfg;
        let results = futures::future::join_all(
            targets
                .iter()
                .map(|(id, addr)| async move { (id.clone(), probe_once(cfg_ref, *addr).await) }),
        )
        .await;
        report.rounds += 1;
        for (id, ok) in results {
            let h = report.health.entry(id.clone()).or_default();
            if h.record(ok, &cfg) {
                let what = format!("{id} is {}", if h.up { "UP" } else { "DOWN" });
                tracing::warn!(member = %id, up = h.up, "health changed");
                report.events.push(ProbeEvent { at_ms: at(), what });
                backoff.something_changed();
            }
        }
        if let Some((target, why)) = decide(pic, &report.health).filter(|_| backoff.may_try()) {
            let (what, done) =
                try_failover(ec2, store, decl, &target, &why, &limits, &mut backoff).await;
            if last_action.as_ref() != Some(&what) {
                tracing::warn!(%what, "probe acted");
                report.events.push(ProbeEvent {
                    at_ms: at(),
                    what: what.clone(),
                });
                last_action = Some(what);
            }
            if done {
                view = None;
            }
        }
        if let Some(rest) = interval.checked_sub(tick.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    Ok(report)
}

/// First wait after a failover attempt that did not complete (lock held, cooldown, refused,
/// failed); it doubles up to [`BACKOFF_MAX`] while nothing changes.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between two attempts while nothing changes.
pub const BACKOFF_MAX: Duration = REFRESH;

/// When the probe may try a failover again. A refused target is retried as a dry run first,
/// so a refusal that stays the same writes no further history.
#[derive(Debug)]
struct Backoff {
    next_at: Option<Instant>,
    step: Duration,
    refused: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            next_at: None,
            step: BACKOFF_FIRST,
            refused: false,
        }
    }
}

impl Backoff {
    fn may_try(&self) -> bool {
        self.next_at.is_none_or(|t| Instant::now() >= t)
    }

    fn wait(&mut self) {
        self.next_at = Some(Instant::now() + self.step);
        self.step = (self.step * 2).min(BACKOFF_MAX);
    }

    /// A member's health changed: try at once (a refusal is still checked dry first).
    fn something_changed(&mut self) {
        self.next_at = None;
        self.step = BACKOFF_FIRST;
    }

    fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

/// One failover attempt by the probe; returns what happened and whether the cloud may have
/// changed (so the view is read again).
async fn try_failover(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
    target: &str,
    why: &str,
    limits: &RunRequest,
    backoff: &mut Backoff,
) -> (String, bool) {
    let request = |mode| RunRequest {
        target: TargetSpec::Instance(target.to_string()),
        mode,
        trigger: format!("probe: {why}"),
        ..limits.clone()
    };
    if backoff.refused {
        if let Err(e) = run(ec2, store, decl, request(Mode::DryRun)).await {
            backoff.wait();
            return (format!("failover to {target} ({why}) failed: {e}"), false);
        }
    }
    match run(ec2, store, decl, request(Mode::Execute)).await {
        Ok(RunOutcome::Completed(r)) => {
            if r.record.task_state == TaskState::Succeeded {
                backoff.succeeded();
            } else {
                backoff.refused = false;
                backoff.wait();
            }
            let what = format!(
                "failover to {target} ({why}): {} — {}",
                r.record.task_state.as_str(),
                r.record.message
            );
            (what, true)
        }
        Ok(RunOutcome::Skipped(s)) => {
            backoff.wait();
            (
                format!("failover to {target} ({why}) skipped: {}", s.message),
                false,
            )
        }
        Err(e) => {
            backoff.refused = matches!(e, FailoverError::Refused(_));
            backoff.wait();
            (format!("failover to {target} ({why}) failed: {e}"), true)
        }
    }
}

/// Where each member is probed: `probe.targets`, else its first interface's primary IP.
fn addresses(
    cfg: &ProbeConfig,
    snap: &crate::engine::discovery::Snapshot,
) -> Vec<(String, SocketAddr)> {
    snap.members
        .iter()
        .filter_map(|m| {
            let addr = match cfg.targets.get(&m.id) {
                Some(a) => *a,
                None => SocketAddr::new(m.network_interfaces.first()?.primary_ip, cfg.port),
            };
            Some((m.id.clone(), addr))
        })
        .collect()
}

/// Whom to fail over to, and why: the followed member is down and a peer is up, or the
/// cloud is split (drift) and a member is up.
pub fn decide(
    pic: &crate::app::inspect::Inspection,
    health: &BTreeMap<String, Health>,
) -> Option<(String, String)> {
    let up = |id: &str| health.get(id).is_some_and(|h| h.up && h.successes > 0);
    // Down by the probe's own answers, or by EC2 (stopped, failing its status checks): the
    // picture's verdict, as inspect and doctor show it.
    let down = |id: &str| {
        !health.get(id).is_none_or(|h| h.up)
            || (pic.verdict == crate::engine::picture::CloudVerdict::FollowsDown
                && pic.active.as_deref() == Some(id))
    };
    match &pic.active {
        Some(active) if down(active) => pic
            .members
            .iter()
            .find(|m| m.id != *active && m.state == "running" && up(&m.id))
            .map(|m| (m.id.clone(), format!("{active} is down"))),
        Some(_) => None,
        None if pic.drift => {
            // Converge on the healthy member most managed items already follow; on a tie
            // nothing moves (never a choice by id order).
            let running = |id: &str| {
                pic.members
                    .iter()
                    .any(|m| m.id == id && m.state == "running")
            };
            let mut healthy: Vec<&crate::app::inspect::Follow> = pic
                .follows
                .iter()
                .filter(|f| running(&f.member) && up(&f.member) && f.blocked.is_empty())
                .collect();
            healthy.sort_by_key(|f| std::cmp::Reverse(f.in_place));
            match healthy.as_slice() {
                [best, next, ..] if next.in_place == best.in_place => None,
                [best, ..] => Some((best.member.clone(), "drift repair".to_string())),
                [] => None,
            }
        }
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn cfg() -> ProbeConfig {
        ProbeConfig::default()
    }

    #[tokio::test(start_paused = true)]
    async fn https_probe_with_and_without_certificate_checks() {
        use std::sync::Arc;
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio_rustls::rustls::{crypto::ring, ServerConfig};
        let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![ck.cert.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 1024];
                        let _ = s.read(&mut buf).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nACTIVE")
                            .await;
                        let _ = s.shutdown().await;
                    }
                });
            }
        });
        let mut c = cfg();
        c.kind = ProbeKind::Https;
        c.expect_body = Some("ACTIVE".into());
        c.tls_verify = false;
        assert!(
            probe_once(&c, addr).await,
            "self-signed accepted without checks"
        );
        c.tls_verify = true;
        assert!(
            !probe_once(&c, addr).await,
            "self-signed refused with checks"
        );
    }

    #[test]
    fn hysteresis_needs_k_failures_and_m_successes() {
        let c = cfg();
        let mut h = Health::new();
        for _ in 1..c.failures_to_down {
            assert!(!h.record(false, &c));
        }
        assert!(h.record(false, &c), "k-th failure flips to down");
        assert!(!h.up);
        for _ in 1..c.successes_to_up {
            assert!(!h.record(true, &c));
        }
        assert!(h.record(true, &c));
        assert!(h.up);
    }

    /// A failover the probe starts late in its window stops sending before the
    /// Lambda deadline and records FAILED, instead of being cut off mid-wave.
    #[tokio::test(start_paused = true)]
    async fn the_probes_failover_honours_the_lambda_deadline() {
        use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_RTB};
        use crate::memory::MemoryCloud;
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move { while up.accept().await.is_ok() {} });
        let down_addr = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["serverless"] = serde_json::json!({"probe": {
            "kind": "tcp", "intervalMs": 100, "timeoutMs": 200, "failuresToDown": 2, "successesToUp": 1,
            "targets": {SEED_A: down_addr.to_string(), SEED_B: up_addr.to_string()}
        }});
        let decl = Declaration::from_value(&v).unwrap();
        let cloud = MemoryCloud::seed();
        // The route change hangs far past the deadline.
        cloud.delay("ReplaceRoute", Duration::from_secs(120));
        let now = Instant::now();
        let deadline = now + crate::engine::execute::DEADLINE_RESERVE + Duration::from_secs(3);
        let report = watch(
            &cloud,
            &cloud,
            &decl,
            now + Duration::from_secs(2),
            Some(deadline),
            None,
        )
        .await
        .unwrap();
        let failover = report
            .events
            .iter()
            .find(|e| e.what.starts_with("failover to"))
            .expect("the probe failed over");
        assert!(failover.what.contains("FAILED"), "{}", failover.what);
        assert!(
            failover.what.contains("not verified (route:"),
            "{}",
            failover.what
        );
        // What could be done was done: the EIP moved; the route stayed on A.
        assert_eq!(
            cloud
                .route_target(SEED_RTB, "0.0.0.0/0".parse().unwrap())
                .unwrap(),
            SEED_A_EXT
        );
    }

    /// A probe whose A is down and B up, probing every 100 ms for `secs` seconds.
    async fn watch_a_down(cloud: &crate::memory::MemoryCloud, secs: u64) -> ProbeReport {
        use crate::lab::{SEED_A, SEED_B};
        let up = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let up_addr = up.local_addr().unwrap();
        tokio::spawn(async move { while up.accept().await.is_ok() {} });
        let down_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["serverless"] = serde_json::json!({"probe": {
            "kind": "tcp", "intervalMs": 100, "timeoutMs": 200, "failuresToDown": 2, "successesToUp": 1,
            "targets": {SEED_A: down_addr.to_string(), SEED_B: up_addr.to_string()}
        }});
        let decl = Declaration::from_value(&v).unwrap();
        watch(
            cloud,
            cloud,
            &decl,
            Instant::now() + Duration::from_secs(secs),
            None,
            None,
        )
        .await
        .unwrap()
    }

    /// While another run holds the lock the probe backs off (before the fix it
    /// tried every tick: ~30 lock attempts and discoveries in 3 s).
    #[tokio::test]
    async fn the_probe_backs_off_while_the_lock_is_held() {
        let cloud = crate::memory::MemoryCloud::seed();
        let _other =
            crate::engine::lock::held_by(&cloud, "other-run", Duration::from_secs(120)).await;
        cloud.reset_calls();
        let report = watch_a_down(&cloud, 3).await;
        let tries = cloud.calls().iter().filter(|c| *c == "PutObject").count();
        assert!((1..=3).contains(&tries), "{tries} lock attempts in 3 s");
        let skipped: Vec<&ProbeEvent> = report
            .events
            .iter()
            .filter(|e| e.what.contains("skipped"))
            .collect();
        assert_eq!(
            skipped.len(),
            1,
            "one event per distinct outcome: {:?}",
            report.events
        );
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// The probe reads the same verdict as inspect and doctor: a followed unit EC2 reports
    /// stopped is down even while something still answers at its probe address.
    #[tokio::test(start_paused = true)]
    async fn a_followed_unit_ec2_reports_stopped_is_down_for_the_probe() {
        let cloud = crate::memory::MemoryCloud::seed();
        let d = crate::engine::declaration::Declaration::parse(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        cloud.set_instance_state(crate::lab::SEED_A, "stopped");
        let snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        let pic = picture(&d, &snap, None);
        assert_eq!(
            pic.verdict,
            crate::engine::picture::CloudVerdict::FollowsDown
        );
        let answering = Health {
            up: true,
            failures: 0,
            successes: 3,
        };
        let health: BTreeMap<String, Health> = [crate::lab::SEED_A, crate::lab::SEED_B]
            .into_iter()
            .map(|id| (id.to_string(), answering.clone()))
            .collect();
        let (to, why) = decide(&pic, &health).expect("a failover");
        assert_eq!(to, crate::lab::SEED_B);
        assert!(why.contains("is down"), "{why}");
    }

    /// A refused failover is recorded once, then checked dry while it stays refused.
    #[tokio::test(start_paused = true)]
    async fn a_refused_failover_writes_one_history_record() {
        let cloud = crate::memory::MemoryCloud::seed();
        cloud.set_impaired(crate::lab::SEED_B, true);
        watch_a_down(&cloud, 3).await;
        let history = crate::engine::ports::ObjectStore::list_keys(
            &cloud,
            "cfe-state-bigip-ha",
            &crate::engine::keys::history_prefix("default"),
        )
        .await
        .unwrap();
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(cloud.mutation_count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_chunked_page_on_a_kept_alive_connection_is_read_as_http() {
        // GIVEN a page served as HTTP/1.1 servers commonly do: chunked, connection kept open
        // (the hand-written client before hyper read up to EOF and saw the chunk sizes)
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nACT\r\n3\r\nIVE\r\n0\r\n\r\n")
                        .await;
                    // keep the connection open well past the probe's timeout
                    tokio::time::sleep(Duration::from_secs(30)).await;
                });
            }
        });
        let mut c = cfg();
        c.kind = ProbeKind::Http;
        c.expect_body = Some("ACTIVE".into());
        // THEN the body is the decoded page, read without waiting for the connection to close
        assert_eq!(
            http_get(addr, "/").await.unwrap(),
            (200, "ACTIVE".to_string())
        );
        assert!(probe_once(&c, addr).await);
    }

    /// The dead-in-function unit serves `INACTIVE`: with `expectBody: "ACTIVE"` it is not up
    /// (a substring match counted it up, and kept the cloud on it).
    #[test]
    fn the_active_page_is_matched_whole() {
        assert!(body_matches("ACTIVE\n", "ACTIVE"));
        assert!(body_matches("  ACTIVE ", "ACTIVE"));
        assert!(!body_matches("INACTIVE", "ACTIVE"));
        assert!(!body_matches("NOT ACTIVE", "ACTIVE"));
        assert!(!body_matches("<html>ACTIVE</html>", "ACTIVE"));
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["serverless"] = serde_json::json!({"probe": {"kind": "http", "expectBody": "ACTIVE"}});
        let warnings = crate::engine::declaration::Declaration::from_value(&v)
            .unwrap()
            .warnings;
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("is part of \"INACTIVE\"")),
            "{warnings:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn http_probe_checks_status_and_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nACTIVE",
                    )
                    .await;
            }
        });
        let mut c = cfg();
        c.kind = ProbeKind::Http;
        c.expect_body = Some("ACTIVE".into());
        assert!(probe_once(&c, addr).await);
        c.expect_body = Some("STANDBY".into());
        assert!(!probe_once(&c, addr).await);
        c.expect_body = None;
        c.expect_status = 204;
        assert!(!probe_once(&c, addr).await);
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(
            !probe_once(&c, closed).await,
            "nothing listens there any more"
        );
    }
}

mod tls {
    //! rustls client configurations (ring), with or without certificate checks.
    use std::sync::{Arc, OnceLock};

    use tokio_rustls::rustls::client::danger::{
        HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
    };
    use tokio_rustls::rustls::crypto::{
        ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider,
    };
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use tokio_rustls::rustls::{
        ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
    };

    /// Accepts any certificate; signatures are still checked.
    #[derive(Debug)]
    struct AnyCertificate(Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    /// The configuration, built once per kind.
    pub(super) fn config(verify: bool) -> Result<Arc<ClientConfig>, String> {
        static CHECKED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        static UNCHECKED: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
        let cell = if verify { &CHECKED } else { &UNCHECKED };
        cell.get_or_init(|| build(verify)).clone()
    }

    fn build(verify: bool) -> Result<Arc<ClientConfig>, String> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = if verify {
            let mut roots = RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        };
        Ok(Arc::new(config))
    }
}
