//! `cloud-failover`: the operator CLI. Each command parses its arguments, builds the AWS
//! adapters and calls one library function; output is JSON or a table, errors are one line
//! on stderr with a non-zero exit.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use failover_core::answer::{Answer, Status};
use failover_core::aws::{self, AwsOptions};
use failover_core::discovery::resolve_bucket;
use failover_core::doctor::{doctor, Verdict};
use failover_core::events::{Trust, DEFAULT_ALARM_NAME_PREFIX};
use failover_core::failover::{run, RunOutcome, RunReport};
use failover_core::handler::{handle, load_declaration, Invocation, Location};
use failover_core::inspect::{inspect, Inspection};
use failover_core::keys::state_key;
use failover_core::lock::{unlock, Unlocked};
use failover_core::ports::ObjectStore;
use failover_core::request::Mode;
use failover_core::request::{RunRequest, TargetSpec};
use failover_core::state::{read_history, StateLog};
use failover_core::text::printable;
use failover_core::{Declaration, FailoverError};
use serde_json::Value;

#[derive(Parser, Debug)]
#[command(
    name = "cloud-failover",
    version,
    about = "Serverless cloud failover for appliance pairs on AWS"
)]
struct Cli {
    /// Endpoint override (e.g. a local moto server); path-style S3 is used with it.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    endpoint_url: Option<String>,
    /// AWS region (else the standard chain).
    #[arg(long, global = true, env = "AWS_REGION")]
    region: Option<String>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value = "json")]
    output: Output,
    /// Log level on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// The scoping tag key the stack's IAM policy conditions on (its ScopingTagKey): validate
    /// and doctor say where the declaration scopes by another.
    #[arg(long, global = true, env = "SCOPING_TAG_KEY", default_value = failover_core::doctor::LABEL_KEY,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    scoping_tag_key: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Json,
    Table,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a declaration file (no cloud access).
    Validate {
        /// Declaration file.
        file: PathBuf,
        /// Other clusters' declarations: warn when one would share its state file or lock.
        #[arg(long)]
        against: Vec<PathBuf>,
    },
    /// Validate a declaration, then upload it.
    Declare {
        /// Declaration file.
        file: PathBuf,
        /// Destination, s3://BUCKET/KEY.
        #[arg(long)]
        to: String,
    },
    /// Show the plan for a failover to TARGET (dry run: no mutating call, no write).
    Plan {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Target instance id (becomes active), or `peer`: the other member of the one the
        /// cloud follows now.
        #[arg(long)]
        target: String,
    },
    /// Fail over to TARGET.
    Execute {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Target instance id (becomes active), or `peer`: the other member of the one the
        /// cloud follows now.
        #[arg(long)]
        target: String,
        /// Accepted for old scripts: an explicit execute is always carried out, within the
        /// cooldown too (damping is for automatic triggers).
        #[arg(long)]
        force: bool,
        /// Stop sending mutations this many seconds from now (less a reserve to verify and
        /// record the outcome), as a Lambda's deadline does.
        #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(5..=3600))]
        deadline: u64,
    },
    /// Release the cluster lock (CFE's /reset for the lock). A live run's lock needs --force.
    Unlock {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Release it even though its lease is still running (its run is then fenced).
        #[arg(long)]
        force: bool,
    },
    /// Release the lock and rewrite the state file as a clean slate (CFE's /reset): no last
    /// failover (so no cooldown), no RUNNING or FAILED run to recover.
    Reset {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Also when a live run holds the lock.
        #[arg(long)]
        force: bool,
    },
    /// The cluster's runs from the history, newest first.
    History {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Only runs that did not succeed (FAILED, refused).
        #[arg(long)]
        failed: bool,
        /// Another cluster in the same bucket (default: the declaration's clusterName).
        #[arg(long)]
        cluster: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Run the failover Lambda's handler once on an event file (same code path).
    Invoke {
        /// Event JSON file (see events/).
        event: PathBuf,
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Alarms named with this prefix (or mapped in serverless.alarmTargets) may fail over.
        #[arg(long, env = "ALARM_NAME_PREFIX", default_value = DEFAULT_ALARM_NAME_PREFIX)]
        alarm_name_prefix: String,
    },
    /// Show members, whom each managed route and EIP follows, and the last state.
    Inspect {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
    },
    /// Check the deployment: pitfalls, scope, bucket, permissions (EC2 DryRun). Exit 1 on FAIL.
    Doctor {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
    },
    /// Print the state file (f5cloudfailoverstate.json) the last run wrote.
    State {
        /// Declaration: s3://BUCKET/KEY or a file.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
    },
}

/// Prints a line on stdout. A closed stdout (`cloud-failover history | head`) is no reason to
/// panic, nor to die of SIGPIPE half way through a failover: the line is dropped, the run goes
/// on, and its own outcome decides the exit code. (Logs on a closed stderr are dropped alike.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints a line on stderr, dropping it when stderr is closed (see `say!`).
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

/// Exit codes, one per outcome an operator or a script must tell apart (README "Exit codes").
mod exit {
    /// An error, a FAILED run, or a doctor FAIL.
    pub const FAILED: u8 = 1;
    /// A bad argument (clap's own code for its errors).
    pub const USAGE: u8 = 2;
    /// Another run holds the cluster lock (IN_PROGRESS).
    pub const IN_PROGRESS: u8 = 3;
    /// Flap damping skipped the failover (COOLDOWN).
    pub const COOLDOWN: u8 = 4;
    /// The event was not acted on (IGNORED).
    pub const IGNORED: u8 = 5;
    /// The planner refused (nothing changed).
    pub const REFUSED: u8 = 6;
    /// `inspect`: the cloud follows no single member (drift).
    pub const DRIFT: u8 = 7;
    /// The state bucket was not found.
    pub const NO_BUCKET: u8 = 8;
    /// `unlock`/`reset`: a live run holds the lock (use --force).
    pub const LOCK_HELD: u8 = 9;
    /// A skip while the cloud follows an unhealthy member: to be retried (FailoverDeferred).
    pub const DEFERRED: u8 = 10;

    use failover_core::failover::SkipStatus;

    /// The code for a run that stepped aside.
    pub fn of_skip(status: SkipStatus) -> u8 {
        match status {
            SkipStatus::InProgress => IN_PROGRESS,
            SkipStatus::Cooldown => COOLDOWN,
        }
    }
}

/// A failure worth one line on stderr, with its exit code.
struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// An error (exit 1).
    fn new(message: impl Into<String>) -> CliError {
        CliError {
            message: format!("error: {}", message.into()),
            code: exit::FAILED,
        }
    }

    /// A bad argument (exit 2, as clap's own).
    fn usage(message: impl Into<String>) -> CliError {
        CliError {
            message: format!("error: {}", message.into()),
            code: exit::USAGE,
        }
    }

    /// An outcome that is not an error but must not read as success (its own exit code).
    fn status(code: u8, status: &str, message: &str) -> CliError {
        CliError {
            message: format!("{status}: {message}"),
            code,
        }
    }
}

impl From<FailoverError> for CliError {
    fn from(e: FailoverError) -> Self {
        let code = match &e {
            FailoverError::Refused(_) => exit::REFUSED,
            FailoverError::NoStateBucket(_) => exit::NO_BUCKET,
            FailoverError::Deferred { .. } => exit::DEFERRED,
            _ => exit::FAILED,
        };
        CliError {
            message: format!("error: {e}"),
            code,
        }
    }
}

impl From<String> for CliError {
    fn from(e: String) -> Self {
        CliError::new(e)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            stderr!("{}", e.message);
            ExitCode::from(e.code)
        }
    }
}

fn init_logs(cli: &Cli) {
    // Progress lines (one per mutation wave) when a person watches stderr.
    let level = if std::io::stderr().is_terminal() {
        format!("{},progress=info", cli.log_level)
    } else {
        cli.log_level.clone()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed) is dropped, not reported on the
        // same closed stderr (which would panic).
        .log_internal_errors(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn location(s: &str) -> Result<Location, CliError> {
    s.parse::<Location>()
        .map_err(|e| CliError::usage(format!("--declaration: {e}")))
}

/// The SDK adapters and the declaration at `loc` (read through them when it is in S3).
/// The SDK adapters follow the declaration's endpoints, CA bundle and bucket region.
async fn open(opts: &AwsOptions, loc: &Location) -> Result<(aws::AwsCloud, Declaration), CliError> {
    let cloud = aws::connect(opts).await;
    let decl = load_declaration(&cloud.s3, loc).await?;
    let cloud = failover_core::aws::with_settings(cloud, opts, &decl)
        .await
        .map_err(CliError::new)?;
    Ok((cloud, decl))
}

/// What `invoke` trusts: events from the caller's own account (STS) and region, as the
/// Lambda trusts its function's.
async fn trust(opts: &AwsOptions, alarm_name_prefix: &str) -> Result<Trust, CliError> {
    let (home, _) = aws::caller_identity(opts)
        .await
        .map_err(|e| CliError::new(format!("cannot tell this account and region: {e}")))?;
    Ok(Trust {
        home: Some(home),
        alarm_name_prefix: alarm_name_prefix.to_string(),
    })
}

fn target(s: &str) -> Result<TargetSpec, CliError> {
    if s == "peer" {
        Ok(TargetSpec::Peer)
    } else if failover_core::declaration::is_instance_id(s) {
        Ok(TargetSpec::Instance(s.to_string()))
    } else {
        Err(CliError::usage(format!(
            "--target: {s:?} is not an instance id (i-…) or \"peer\""
        )))
    }
}

/// The state bucket, or exit 8.
async fn bucket(cloud: &aws::AwsCloud, decl: &Declaration) -> Result<String, CliError> {
    let (bucket, _) = resolve_bucket(&cloud.s3, &decl.external_storage.scope)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    bucket.ok_or_else(|| {
        CliError::from(FailoverError::NoStateBucket(format!(
            "externalStorage of cluster {} matches no bucket",
            decl.extension.cluster_name
        )))
    })
}

async fn dispatch(cli: &Cli) -> Result<(), CliError> {
    let opts = AwsOptions {
        region: cli.region.clone(),
        endpoint_url: cli.endpoint_url.clone(),
    };
    match &cli.command {
        Command::Validate { file, against } => {
            let read = |file: &PathBuf, named: bool| {
                let text = std::fs::read_to_string(file)
                    .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
                Declaration::parse(&text).map_err(|e| {
                    let which = if named {
                        format!("{}: ", file.display())
                    } else {
                        String::new()
                    };
                    CliError::new(format!("invalid declaration: {which}{e}"))
                })
            };
            let decl = read(file, false)?;
            for other in against {
                for w in failover_core::state::shared_keys(&decl, &read(other, true)?) {
                    stderr!("warning: {} and {}: {w}", file.display(), other.display());
                }
            }
            for w in &decl.warnings {
                stderr!("warning: {w}");
            }
            for w in failover_core::doctor::stack_tag_mismatches(&decl, &cli.scoping_tag_key) {
                stderr!("warning: {w}");
            }
            match cli.output {
                Output::Json => print_json(&serde_json::to_value(&decl).expect("json")),
                Output::Table => say!("{}: valid ({})", file.display(), summary(&decl)),
            }
            Ok(())
        }
        Command::Declare { file, to } => {
            let Location::S3 { bucket, key } = to
                .parse::<Location>()
                .map_err(|e| CliError::new(format!("--to: {e}")))?
            else {
                return Err(CliError::new(format!(
                    "--to: {to:?} is not s3://BUCKET/KEY"
                )));
            };
            let text = std::fs::read_to_string(file)
                .map_err(|e| CliError::new(format!("{}: {e}", file.display())))?;
            let decl = Declaration::parse(&text)
                .map_err(|e| CliError::new(format!("invalid declaration: {e}")))?;
            for w in &decl.warnings {
                stderr!("warning: {w}");
            }
            let cloud = aws::connect(&opts).await;
            cloud
                .s3
                .put_object(
                    &bucket,
                    &key,
                    text.into_bytes(),
                    &decl.external_storage.encryption,
                    None,
                )
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            match cli.output {
                Output::Json => {
                    print_json(&serde_json::json!({"uploaded": format!("s3://{bucket}/{key}")}))
                }
                Output::Table => say!("uploaded s3://{bucket}/{key} ({})", summary(&decl)),
            }
            Ok(())
        }
        Command::Plan {
            declaration,
            target: t,
        }
        | Command::Execute {
            declaration,
            target: t,
            ..
        } => {
            let (mode, force, deadline) = match &cli.command {
                Command::Execute {
                    force, deadline, ..
                } => (Mode::Execute, *force, Some(*deadline)),
                _ => (Mode::DryRun, false, None),
            };
            let loc = location(declaration)?;
            let t = target(t)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let mut req = RunRequest::new(t, mode, "cli");
            if mode == Mode::Execute {
                // An operator's explicit command is carried out: damping is for automatic
                // triggers (`--force` is kept for scripts that pass it).
                let _ = force;
                req.force = true;
                req.requested_by = Some(match aws::caller_identity(&opts).await {
                    Ok((_, arn)) => format!("cloud-failover execute by {arn}"),
                    Err(e) => format!("cloud-failover execute (caller unknown: {e})"),
                });
            }
            req.deadline =
                deadline.map(|s| std::time::Instant::now() + std::time::Duration::from_secs(s));
            let outcome = run(&cloud.ec2, &cloud.s3, &decl, req).await?;
            show_outcome(cli.output, &outcome);
            if let RunOutcome::Skipped(skip) = &outcome {
                return Err(CliError::status(
                    exit::of_skip(skip.status),
                    skip.status.as_str(),
                    &skip.message,
                ));
            }
            outcome.into_result()?;
            Ok(())
        }
        Command::Invoke {
            event,
            declaration,
            alarm_name_prefix,
        } => {
            let loc = location(declaration)?;
            let text = std::fs::read_to_string(event)
                .map_err(|e| CliError::new(format!("{}: {e}", event.display())))?;
            // Checked before any cloud client exists: a bad event touches nothing.
            failover_core::events::parse_text(&text)
                .map_err(|e| CliError::new(format!("invalid event: {e}")))?;
            let payload: Value = failover_core::json::parse(&text).expect("parsed above");
            let cloud = aws::connect(&opts).await;
            let cloud = failover_core::aws::for_declaration(cloud, &opts, &loc)
                .await
                .map_err(CliError::new)?;
            let invocation = Invocation {
                trust: trust(&opts, alarm_name_prefix).await?,
                ..Invocation::default()
            };
            let answer = handle(&cloud.ec2, &cloud.s3, &loc, &payload, invocation).await?;
            show_answer(cli.output, &answer);
            match &answer {
                Answer::Succeeded(_) | Answer::DryRun(_) => Ok(()),
                Answer::InProgress(skip) | Answer::Cooldown(skip) => Err(CliError::status(
                    exit::of_skip(skip.status),
                    skip.status.as_str(),
                    &skip.message,
                )),
                Answer::Ignored(i) => Err(CliError::status(
                    exit::IGNORED,
                    Status::Ignored.as_str(),
                    &i.reason,
                )),
            }
        }
        Command::Inspect { declaration } => {
            let loc = location(declaration)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let view = inspect(&cloud.ec2, &cloud.s3, &decl)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            match cli.output {
                Output::Json => print_json(&serde_json::to_value(&view).expect("json")),
                Output::Table => print_inspection(&view),
            }
            if view.bucket.is_none() {
                return Err(CliError::from(FailoverError::NoStateBucket(
                    "so there is no state, history or lock to show".into(),
                )));
            }
            if view.drift {
                return Err(CliError::status(
                    exit::DRIFT,
                    "DRIFT",
                    "the managed items do not all follow one member (see follows)",
                ));
            }
            if let (Some(false), Some(b)) = (view.agrees_with_box, &view.box_says) {
                return Err(CliError::status(
                    exit::DRIFT,
                    "DRIFT",
                    &format!(
                        "the cloud follows {}, but the appliance pair last announced {} active ({})",
                        view.active.as_deref().unwrap_or("no single member"),
                        b.target,
                        b.at
                    ),
                ));
            }
            Ok(())
        }
        Command::Unlock { declaration, force } | Command::Reset { declaration, force } => {
            let loc = location(declaration)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let bucket = bucket(&cloud, &decl).await?;
            let cluster = &decl.extension.cluster_name;
            let enc = &decl.external_storage.encryption;
            // `reset` reads the state first: CFE itself failing over (side by side during a
            // migration) is a live holder too, and the box's last announcement is kept.
            let log = StateLog {
                store: &cloud.s3,
                bucket: bucket.clone(),
                decl: &decl,
            };
            let reset_from = if matches!(cli.command, Command::Reset { .. }) {
                let previous = log
                    .read_state()
                    .await
                    .map_err(|e| CliError::new(e.to_string()))?;
                if let Some(host) = previous
                    .as_ref()
                    .and_then(failover_core::failover::cfe_running)
                {
                    if !*force {
                        return Err(CliError::status(
                            exit::LOCK_HELD,
                            "LOCK_HELD",
                            &format!("CFE on {} is failing over (its state file says RUNNING); if it died, use --force", printable(&host)),
                        ));
                    }
                }
                Some(previous)
            } else {
                None
            };
            let out = unlock(&cloud.s3, &bucket, cluster, enc, *force)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            if let Unlocked::Held { holder } = &out {
                return Err(CliError::status(
                    exit::LOCK_HELD,
                    "LOCK_HELD",
                    &format!(
                        "run {} holds the lock of cluster {cluster} until {}; if its runner died, use --force",
                        holder.body.owner, holder.held_until
                    ),
                ));
            }
            let mut value = serde_json::to_value(&out).expect("json");
            if let Some(previous) = &reset_from {
                log.reset_state("cloud-failover reset", previous.as_ref())
                    .await
                    .map_err(|e| CliError::new(e.to_string()))?;
                value["stateFile"] = format!("s3://{bucket}/{}", state_key(&decl)).into();
            }
            match cli.output {
                Output::Json => print_json(&value),
                Output::Table => match &out {
                    Unlocked::Released { holder } => say!(
                        "released the lock of cluster {cluster} (held by run {}){}",
                        holder.body.owner,
                        if value.get("stateFile").is_some() {
                            "; state file reset"
                        } else {
                            ""
                        }
                    ),
                    _ => say!(
                        "the lock of cluster {cluster} was free{}",
                        if value.get("stateFile").is_some() {
                            "; state file reset"
                        } else {
                            ""
                        }
                    ),
                },
            }
            Ok(())
        }
        Command::History {
            declaration,
            failed,
            cluster,
            limit,
        } => {
            let loc = location(declaration)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let bucket = bucket(&cloud, &decl).await?;
            let cluster = cluster.as_deref().unwrap_or(&decl.extension.cluster_name);
            let runs = read_history(&cloud.s3, &bucket, cluster, *limit, *failed)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            match cli.output {
                Output::Json => print_json(&serde_json::to_value(&runs).expect("json")),
                Output::Table => {
                    for r in &runs {
                        say!(
                            "{}  {:<9} {:<20} → {:<20} {}",
                            r.started_at,
                            r.task_state,
                            r.trigger,
                            r.target,
                            r.message
                        );
                    }
                }
            }
            Ok(())
        }
        Command::Doctor { declaration } => {
            let loc = location(declaration)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let checks = doctor(&cloud.ec2, &cloud.s3, &decl, &cli.scoping_tag_key)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            match cli.output {
                Output::Json => print_json(&serde_json::to_value(&checks).expect("json")),
                Output::Table => {
                    for c in &checks {
                        let v = serde_json::to_value(c.verdict).expect("json");
                        say!(
                            "{:<4}  {:<18} {}",
                            v.as_str().unwrap_or(""),
                            c.name,
                            c.detail
                        );
                        if let Some(fix) = &c.fix {
                            say!("      {:<18} fix: {fix}", "");
                        }
                    }
                }
            }
            let failed = checks.iter().filter(|c| c.verdict == Verdict::Fail).count();
            if failed > 0 {
                return Err(CliError::new(format!("doctor: {failed} check(s) failed")));
            }
            Ok(())
        }
        Command::State { declaration } => {
            let loc = location(declaration)?;
            let (cloud, decl) = open(&opts, &loc).await?;
            let state = read_state(&cloud, &decl).await?;
            print_json(&state);
            Ok(())
        }
    }
}

async fn read_state(cloud: &aws::AwsCloud, decl: &Declaration) -> Result<Value, CliError> {
    let bucket = bucket(cloud, decl).await?;
    let log = StateLog {
        store: &cloud.s3,
        bucket,
        decl,
    };
    log.read_state()
        .await
        .map_err(|e| CliError::new(e.to_string()))?
        .ok_or_else(|| CliError::new(format!("no state file at {}", state_key(decl))))
}

fn print_json(v: &Value) {
    say!("{}", serde_json::to_string_pretty(v).expect("json"));
}

fn summary(d: &Declaration) -> String {
    let eips = d.addresses().map(|a| a.groups.len()).unwrap_or(0);
    let routes: usize = d.route_groups().iter().map(|g| g.ranges.len()).sum();
    format!(
        "cluster {}, {} route group(s) with {routes} range(s), addresses {}{}",
        d.extension.cluster_name,
        d.route_groups().len(),
        if d.addresses().is_some() { "on" } else { "off" },
        if eips > 0 {
            format!(" ({eips} explicit group(s))")
        } else {
            String::new()
        }
    )
}

/// What the failover function answered (`invoke`): its JSON, or a table.
fn show_answer(output: Output, answer: &Answer) {
    if output == Output::Json {
        return print_json(&serde_json::to_value(answer).expect("json"));
    }
    match answer {
        Answer::Succeeded(r) | Answer::DryRun(r) => print_report(r),
        Answer::InProgress(s) | Answer::Cooldown(s) => say!("{}: {}", s.status, s.message),
        Answer::Ignored(i) => say!("{}: {}", Status::Ignored, i.reason),
    }
}

/// What a run did (`plan`, `execute`): its JSON, or a table.
fn show_outcome(output: Output, outcome: &RunOutcome) {
    if output == Output::Json {
        return print_json(&serde_json::to_value(outcome).expect("json"));
    }
    match outcome {
        RunOutcome::Completed(r) => print_report(r),
        RunOutcome::Skipped(s) => say!("{}: {}", s.status, s.message),
    }
}

/// The table of a run report: the run, then each operation with its outcome, what was in
/// place, the warnings.
fn print_report(r: &RunReport) {
    let record = &r.record;
    say!(
        "{} {} → {} ({}) · {} · {}",
        record.task_state.as_str(),
        record.mode.as_str(),
        record.target,
        record.target_name,
        record.message,
        record
            .duration_ms
            .map(|d| format!("{d} ms"))
            .unwrap_or_default()
    );
    for op in &record.operations {
        let outcome = record.outcomes.iter().find(|o| o.operation == op.id);
        let status = match outcome {
            Some(o) if o.verified => "done".to_string(),
            Some(o) => format!("FAILED: {}", o.error.as_deref().unwrap_or("not verified")),
            None => "planned".to_string(),
        };
        say!("  [{status}] {}\n      {}", op.id, op.why);
    }
    for i in &record.in_place {
        say!("  [in place] {i}");
    }
    for w in &record.warnings {
        say!("  [warning] {w}");
    }
}

/// The table of `inspect`. History objects and the state file are read back from S3 (they may
/// predate escaping, or be written by anyone with access): their text is escaped here too.
fn print_inspection(v: &Inspection) {
    say!(
        "cluster {} · active: {} · drift: {}",
        v.cluster,
        v.active.as_deref().unwrap_or("none (split or unmanaged)"),
        if v.drift { "YES" } else { "no" }
    );
    for m in &v.members {
        say!(
            "  member {} {} {} {}",
            m.id,
            m.name,
            m.state,
            m.availability_zone
        );
    }
    for r in &v.routes {
        say!(
            "  route {} {} → {} ({})",
            r.route_table_id,
            r.destination,
            r.target,
            r.member.as_deref().unwrap_or("not a member")
        );
    }
    for e in &v.elastic_ips {
        say!(
            "  eip {} → {} on {} ({})",
            e.public_ip,
            e.private_ip.as_deref().unwrap_or("-"),
            e.network_interface_id.as_deref().unwrap_or("-"),
            e.member.as_deref().unwrap_or("not a member")
        );
    }
    if let Some(l) = &v.lock {
        say!("  lock held by run {} until {}", l.body.owner, l.held_until);
    }
    for r in &v.recent_runs {
        say!(
            "  run {} {} {} → {} ({}) {}: {}",
            r.started_at,
            r.run_id,
            printable(&r.trigger),
            r.target,
            r.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
            r.task_state,
            printable(&r.message)
        );
    }
    if let Some(s) = &v.last_state {
        say!(
            "  state {} at {} on {}: {}",
            s["taskState"].as_str().unwrap_or("?"),
            s["timestamp"].as_str().unwrap_or("?"),
            printable(s["instance"].as_str().unwrap_or("?")),
            printable(s["message"].as_str().unwrap_or(""))
        );
    }
    if let Some(b) = &v.box_says {
        say!(
            "  the box says: {} active (announced {}); the cloud {}",
            b.target,
            b.at,
            if v.agrees_with_box == Some(true) {
                "agrees"
            } else {
                "DISAGREES"
            }
        );
    }
    for w in &v.left_alone {
        say!("  left alone: {}", printable(w));
    }
}
