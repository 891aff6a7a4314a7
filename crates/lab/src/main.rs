//! `cf-lab`: the developer's lab on a local moto server (never shipped; see the crate docs).
//! `up` builds the field report's topology, `drill` runs its experiment locally, `floor`
//! measures one failover against moto's own time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand, ValueEnum};
use failover_core::app::events::{Trust, DEFAULT_ALARM_NAME_PREFIX};
use failover_core::app::handler::{handle, Invocation, Location};
use failover_core::aws::{self, AwsOptions, CallLog, Emulator};
use failover_core::engine::declaration::{Declaration, Encryption};
use failover_core::engine::ports::ObjectStore;
use failover_core::lab::{Topology, SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT, SEED_RTB};
use failover_lab::drill::{self, Appliance, DrillConfig};
use failover_lab::emulator::{has_moto, python_in, MotoServer};
use serde_json::Value;

const SEED_DECLARATION: &str =
    include_str!("../../../examples/seed-article/declaration-after.json");
const SEED_ALARM: &str = include_str!("../../../events/alarm-eventbridge.json");

#[derive(Parser, Debug)]
#[command(
    version,
    about = "The developer's lab on a local moto server (not shipped)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the field report's topology on a running emulator and print the id map
    /// (logical → emulator ids).
    Up {
        /// The emulator (a local moto server): http://127.0.0.1:PORT.
        #[arg(long, env = "AWS_ENDPOINT_URL")]
        endpoint_url: String,
        /// Copy IN to OUT with logical ids replaced by the emulator's (repeatable), as IN:OUT.
        #[arg(long = "rewrite", value_name = "IN:OUT")]
        rewrite: Vec<String>,
        /// Instead of the seed, a fleet of N pairs (a VPC each, one addressing plan), their
        /// declarations under s3://fleet-shared/fleet/ (the first three keep their state in
        /// that bucket); writes each pair's alarm event into --events.
        #[arg(long, value_name = "N")]
        fleet: Option<usize>,
        /// With --fleet: where to write alarm-pair-N.json (unit A of pair N fails).
        #[arg(long, value_name = "DIR", default_value = ".")]
        events: PathBuf,
        /// Instead of the seed, an appliance profile's pair (examples/profiles/*/profile.json).
        #[arg(long, value_name = "FILE", conflicts_with = "fleet")]
        profile: Option<PathBuf>,
        /// With --profile: the pair as before any setup (no scoping tags, source/destination
        /// check on), for `cloud-failover init`.
        #[arg(long, requires = "profile")]
        bare: bool,
    },
    /// Re-date sample event files in place: their times move to now, order and spacing kept
    /// (an event older than maxEventAgeSeconds, or than the cluster's last decision, is
    /// IGNORED).
    Date {
        /// Event files.
        files: Vec<PathBuf>,
    },
    /// The field report's experiment, locally: moto, two loopback appliances, a client every
    /// 100 ms, the active one killed, the probe failing over; prints the timeline and the gap.
    Drill {
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        /// Write an SVG plot of response time over the run.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Python with moto[server] (default: .venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
        /// Length of the run, seconds.
        #[arg(long, default_value_t = 8)]
        duration: u64,
        /// When the active appliance is killed, seconds.
        #[arg(long, default_value_t = 2)]
        kill_at: u64,
    },
    /// Start moto, build the seed, run the failover handler once on the sample alarm and
    /// report its wall time against the time moto itself spent answering (JSON).
    Floor {
        /// Python with moto[server] (default: .venv/bin/python, else python3).
        #[arg(long)]
        python: Option<PathBuf>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Json,
    Table,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Up {
            endpoint_url,
            rewrite,
            fleet: Some(n),
            events,
            ..
        } if rewrite.is_empty() => up_fleet(&endpoint_url, n, &events).await,
        Command::Up {
            endpoint_url,
            rewrite,
            fleet,
            profile,
            bare,
            ..
        } => match fleet {
            Some(_) => Err("--fleet writes its own declarations: no --rewrite".into()),
            None => {
                let topo = match profile {
                    Some(file) => {
                        let text = std::fs::read_to_string(&file)
                            .map_err(|e| format!("--profile {}: {e}", file.display()))?;
                        let t = Topology::from_profile(&text)
                            .map_err(|e| format!("--profile {}: {e}", file.display()))?;
                        if bare {
                            t.bare()
                        } else {
                            t
                        }
                    }
                    None => Topology::seed(),
                };
                up(&endpoint_url, &rewrite, &topo).await
            }
        },
        Command::Drill {
            output,
            plot,
            python,
            duration,
            kill_at,
        } => run_drill(output, plot.as_deref(), python, duration, kill_at).await,
        Command::Floor { python } => floor(python).await,
        Command::Date { files } => {
            for f in files {
                let text =
                    std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
                std::fs::write(&f, failover_core::lab::fresh(&text))
                    .map_err(|e| format!("{}: {e}", f.display()))?;
            }
            Ok(())
        }
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("json"));
}

async fn up(endpoint_url: &str, rewrite: &[String], topo: &Topology) -> Result<(), String> {
    let opts = AwsOptions {
        region: None,
        endpoint_url: Some(endpoint_url.to_string()),
        emulator: Some(Emulator::Moto),
    };
    if !is_loopback(endpoint_url) {
        return Err(
            "up creates resources: it runs only against a local emulator (--endpoint-url http://127.0.0.1:PORT)".into(),
        );
    }
    let cloud = aws::connect_tooling(&opts, None).await;
    let ids = failover_lab::builder::create(&cloud, topo)
        .await
        .map_err(|e| e.to_string())?;
    for spec in rewrite {
        let (from, to) = spec
            .split_once(':')
            .ok_or_else(|| format!("--rewrite: {spec:?} is not IN:OUT"))?;
        let text = std::fs::read_to_string(from).map_err(|e| format!("{from}: {e}"))?;
        // A sample event's times move to now: an older one would be IGNORED as stale.
        let text = failover_core::lab::fresh(&ids.rewrite(&text));
        std::fs::write(to, text).map_err(|e| format!("{to}: {e}"))?;
    }
    print_json(&serde_json::to_value(&ids).expect("json"));
    Ok(())
}

/// The bucket (and prefix) `up --fleet` puts the declarations in.
const FLEET_BUCKET: &str = "fleet-shared";

/// `up --fleet N`: N pairs of `lab::fleet_member`, their declarations and alarm events.
async fn up_fleet(endpoint_url: &str, n: usize, events: &Path) -> Result<(), String> {
    if !is_loopback(endpoint_url) {
        return Err(
            "up creates resources: it runs only against a local emulator (--endpoint-url http://127.0.0.1:PORT)".into(),
        );
    }
    if !(1..=250).contains(&n) {
        return Err("--fleet: 1 to 250 pairs".into());
    }
    let opts = AwsOptions {
        region: None,
        endpoint_url: Some(endpoint_url.to_string()),
        emulator: Some(Emulator::Moto),
    };
    let cloud = aws::connect_tooling(&opts, None).await;
    cloud
        .s3
        .client()
        .create_bucket()
        .bucket(FLEET_BUCKET)
        .send()
        .await
        .map_err(|e| format!("CreateBucket {FLEET_BUCKET}: {e}"))?;
    std::fs::create_dir_all(events).map_err(|e| format!("{}: {e}", events.display()))?;
    let mut pairs = Vec::new();
    for i in 0..n {
        let mut m = failover_core::lab::fleet_member(i, 2, 3);
        if i < 3 {
            m.declaration_json["externalStorage"]["scopingName"] = FLEET_BUCKET.into();
        }
        let ids = failover_lab::builder::create(&cloud, &m.topology)
            .await
            .map_err(|e| e.to_string())?;
        let key = format!("fleet/pair-{i}.json");
        cloud
            .s3
            .put_object(
                FLEET_BUCKET,
                &key,
                ids.rewrite(&m.declaration_json.to_string()).into_bytes(),
                &Encryption::None,
                None,
            )
            .await
            .map_err(|e| e.to_string())?;
        let alarm = failover_core::lab::fresh(
            &ids.rewrite(&SEED_ALARM.replace(SEED_A, &m.topology.instances[0].id)),
        );
        let file = events.join(format!("alarm-pair-{i}.json"));
        std::fs::write(&file, alarm).map_err(|e| format!("{}: {e}", file.display()))?;
        pairs.push(serde_json::json!({
            "declaration": format!("s3://{FLEET_BUCKET}/{key}"),
            "active": ids.real(&m.topology.instances[0].id),
            "standby": ids.real(&m.standby),
            "event": file,
            "ids": ids,
        }));
    }
    print_json(&serde_json::json!({
        "declarations": format!("s3://{FLEET_BUCKET}/fleet/"),
        "pairs": pairs,
    }));
    Ok(())
}

/// Whether `url` names this machine (`up` refuses anything else: it creates resources): a
/// loopback address or `localhost`, with no user part (`http://127.0.0.1@example.com`).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(h) => h.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn start_moto(python: Option<PathBuf>) -> Result<MotoServer, String> {
    let python = python.unwrap_or_else(|| python_in(Path::new(".venv")));
    if !has_moto(&python) {
        return Err(format!(
            "{} has no moto: run `make drill` (installs moto[server] into .venv) or pass --python",
            python.display()
        ));
    }
    MotoServer::start(&python).map_err(|e| format!("starting moto: {e}"))
}

async fn run_drill(
    output: Output,
    plot: Option<&Path>,
    python: Option<PathBuf>,
    duration: u64,
    kill_at: u64,
) -> Result<(), String> {
    if kill_at >= duration {
        return Err("--kill-at must be before the end of --duration".into());
    }
    let moto = start_moto(python)?;
    let endpoint = moto.endpoint.clone();
    let opts = AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint.clone()),
        emulator: Some(Emulator::Moto),
    };
    let cloud = aws::connect_tooling(&opts, None).await;
    let ids = failover_lab::builder::create(&cloud, &Topology::seed())
        .await
        .map_err(|e| e.to_string())?;
    let io = |e: std::io::Error| e.to_string();
    let a = Appliance::start("failover01.www.non-97.net")
        .await
        .map_err(io)?;
    let b = Appliance::start("failover02.www.non-97.net")
        .await
        .map_err(io)?;
    let mut v: Value =
        serde_json::from_str(&ids.rewrite(SEED_DECLARATION)).expect("embedded declaration");
    v["serverless"] = serde_json::json!({
        "clusterName": "drill",
        "cooldownSeconds": 0,
        "probe": {
            "kind": "http", "path": "/",
            "intervalMs": 200, "timeoutMs": 300, "failuresToDown": 2, "successesToUp": 1,
            "targets": {ids.real(SEED_A): a.addr.to_string(), ids.real(SEED_B): b.addr.to_string()}
        }
    });
    let decl = Declaration::from_value(&v).map_err(|e| e.to_string())?;
    eprintln!(
        "drill: moto at {endpoint}; appliances {} at {} and {} at {}",
        a.name, a.addr, b.name, b.addr
    );
    eprintln!("drill: the data path is SIMULATED: each request goes to the appliance the route table's next hop names");
    let appliances: std::collections::BTreeMap<String, Appliance> = [
        (ids.real(SEED_A_EXT).to_string(), a),
        (ids.real(SEED_B_EXT).to_string(), b),
    ]
    .into();
    let cfg = DrillConfig {
        duration: Duration::from_secs(duration),
        kill_at: Duration::from_secs(kill_at),
        ..DrillConfig::default()
    };
    let report = drill::run(
        &cloud.ec2,
        &cloud.s3,
        &decl,
        ids.real(SEED_RTB),
        "0.0.0.0/0".parse().expect("cidr"),
        &appliances,
        &cfg,
    )
    .await
    .map_err(|e| e.to_string())?;
    match output {
        Output::Json => print_json(&serde_json::to_value(&report).expect("json")),
        Output::Table => println!("{}", drill::timeline(&report).trim_end()),
    }
    if let Some(path) = plot {
        std::fs::write(path, drill::svg(&report))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("drill: plot written to {}", path.display());
    }
    match report.gap_ms {
        Some(g) if g <= 5000 => Ok(()),
        Some(g) => Err(format!("gap without answers {g} ms is over the 5 s goal")),
        None => Err("answers never came back".into()),
    }
}

/// Wall time of one seed failover through the handler vs moto's own time (exchanges in flight).
async fn floor(python: Option<PathBuf>) -> Result<(), String> {
    let moto = start_moto(python)?;
    let log = CallLog::default();
    let opts = AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(moto.endpoint.clone()),
        emulator: Some(Emulator::Moto),
    };
    let cloud = aws::connect_tooling(&opts, Some(log.clone())).await;
    let ids = failover_lab::builder::create(&cloud, &Topology::seed())
        .await
        .map_err(|e| e.to_string())?;
    cloud
        .s3
        .put_object(
            "cfe-state-bigip-ha",
            "declaration.json",
            ids.rewrite(SEED_DECLARATION).into_bytes(),
            &Encryption::None,
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
    let loc = Location::S3 {
        bucket: "cfe-state-bigip-ha".into(),
        key: "declaration.json".into(),
    };
    let event: Value =
        serde_json::from_str(&failover_core::lab::fresh(&ids.rewrite(SEED_ALARM))).expect("event");
    let (home, _) = aws::caller_identity(&opts)
        .await
        .map_err(|e| format!("cannot tell this account and region: {e}"))?;
    let invocation = Invocation {
        trust: Trust {
            home: Some(home),
            alarm_name_prefix: DEFAULT_ALARM_NAME_PREFIX.to_string(),
        },
        ..Invocation::default()
    };
    log.clear();
    let start = Instant::now();
    let out = handle(&cloud.ec2, &cloud.s3, &loc, &event, invocation)
        .await
        .map_err(|e| e.to_string())?;
    let end = Instant::now();
    let wall = end - start;
    let busy = log.busy(start, end);
    let exchanges = log.exchanges();
    let sum: Duration = exchanges.iter().map(|e| e.2).sum();
    print_json(&serde_json::json!({
        "status": out.status().as_str(),
        "operations": out.report().map_or(0, |r| r.record.operations.len()),
        "calls": exchanges.len(),
        "wallMs": wall.as_secs_f64() * 1000.0,
        "motoBusyMs": busy.as_secs_f64() * 1000.0,
        "sumOfCallLatenciesMs": sum.as_secs_f64() * 1000.0,
        "ownMs": (wall.saturating_sub(busy)).as_secs_f64() * 1000.0,
    }));
    Ok(())
}
