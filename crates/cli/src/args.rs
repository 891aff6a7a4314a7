//! The argument model: every command and flag of `cloud-failover` (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use failover_core::app::events::DEFAULT_ALARM_NAME_PREFIX;

#[derive(Parser, Debug)]
#[command(
    name = "cloud-failover",
    version,
    about = "Serverless cloud failover for appliance pairs on AWS",
    after_help = "Exit codes: 0 success (SUCCEEDED, DRY_RUN, doctor without FAIL); 1 an error, a FAILED run or a doctor FAIL; \
2 bad arguments; 3 IN_PROGRESS (another run holds the lock); 4 COOLDOWN; 5 IGNORED (invoke); \
6 refused by the planner (nothing changed); 7 inspect: the cloud is split, or the box says \
the other unit is active; 8 no state bucket; 9 unlock/reset found a live run's lock (use --force); \
10 deferred (retry); 11 PARTIAL (what could move moved; the items left out are named); \
12 inspect: the cloud follows a unit that is down (stopped or failing its status checks)."
)]
pub struct Cli {
    /// Endpoint override (e.g. a local moto server); path-style S3 is used with it.
    #[arg(long, global = true, env = "AWS_ENDPOINT_URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (else the standard chain).
    #[arg(long, global = true, env = "AWS_REGION")]
    pub region: Option<String>,
    /// The endpoint is this local emulator: account for its known deviations (dummy
    /// credentials, moto's quirks, see the README). Never guessed from the endpoint.
    #[arg(long, global = true, env = "CLOUD_FAILOVER_EMULATOR", value_parser = ["moto"])]
    pub emulator: Option<String>,
    /// Output format (default: a table on a terminal, JSON when piped).
    #[arg(long, global = true, value_enum)]
    pub output: Option<Output>,
    /// Log level on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, default_value = "warn")]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// The scoping tag key the stack's IAM policy conditions on (its ScopingTagKey): validate
    /// and doctor say where the declaration scopes by another.
    #[arg(long, global = true, env = "SCOPING_TAG_KEY", default_value = failover_core::engine::declaration::LABEL_KEY,
          value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub scoping_tag_key: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Json,
    Table,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Validate a declaration file (no cloud access).
    Validate {
        /// Declaration file.
        file: PathBuf,
        /// Other clusters' declarations (files, or a fleet's directory): fail when one would
        /// share its state file or lock.
        #[arg(long)]
        against: Vec<PathBuf>,
    },
    /// Propose a declaration from the pair's two instance ids (A, active now, first): the
    /// Elastic IPs on them and the routes of their VPC at them, interfaces paired by device
    /// index. Writes it, prints the tags it needs (--apply: sets them), validates it, and
    /// after --apply runs doctor on it. Exit 1 on a doctor FAIL.
    Init {
        /// The two units: A (active now), B.
        #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
        instances: Vec<String>,
        /// The scoping tag's value (its key is --scoping-tag-key: the stack's ScopingTagKey).
        #[arg(long)]
        label: String,
        /// Only these route tables (default: every table of the VPC with a route at a unit).
        #[arg(long, value_delimiter = ',')]
        route_tables: Vec<String>,
        /// Only these Elastic IPs, by allocation id or address (default: every one on a unit).
        #[arg(long, value_delimiter = ',')]
        eips: Vec<String>,
        /// Where to write the declaration.
        #[arg(long, default_value = "declaration.json")]
        out: PathBuf,
        /// Set the tags and turn source/destination check off, then run doctor.
        #[arg(long)]
        apply: bool,
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
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Target instance id (becomes active), or `peer`: the other member of the one the
        /// cloud follows now.
        #[arg(long)]
        target: String,
    },
    /// Fail over to TARGET.
    Execute {
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
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
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Release it even though its lease is still running (its run is then fenced).
        #[arg(long)]
        force: bool,
    },
    /// Release the lock and rewrite the state file as a clean slate (CFE's /reset): no last
    /// failover (so no cooldown), no RUNNING or FAILED run to recover.
    Reset {
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Also when a live run holds the lock.
        #[arg(long)]
        force: bool,
    },
    /// The cluster's runs from the history, newest first.
    History {
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Only runs that did not succeed (FAILED, PARTIAL, refused).
        #[arg(long)]
        failed: bool,
        /// Another cluster in the same bucket (default: the declaration's clusterName).
        #[arg(long)]
        cluster: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Times in this machine's time zone (default: UTC).
        #[arg(long)]
        local_time: bool,
    },
    /// Run the failover Lambda's handler once on an event file (same code path).
    Invoke {
        /// Event JSON file (see events/).
        event: PathBuf,
        /// Declaration: s3://BUCKET/KEY or a file; a fleet: s3://BUCKET/PREFIX/ or a directory.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// Alarms named with this prefix (or mapped in serverless.alarmTargets) may fail over.
        #[arg(long, env = "ALARM_NAME_PREFIX", default_value = DEFAULT_ALARM_NAME_PREFIX)]
        alarm_name_prefix: String,
    },
    /// Show members, whom each managed route and EIP follows, and the last state.
    Inspect {
        /// Declaration: s3://BUCKET/KEY or a file; a fleet: s3://BUCKET/PREFIX/ or a directory.
        /// With serverless.groups, one section per group; FILE#GROUP for one.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
    },
    /// Check the deployment: pitfalls, scope, bucket, permissions (EC2 DryRun). Exit 1 on FAIL.
    Doctor {
        /// Declaration: s3://BUCKET/KEY or a file; a fleet: s3://BUCKET/PREFIX/ or a directory.
        /// With serverless.groups, one section per group; FILE#GROUP for one.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
        /// The probe's subnets (the stack's ProbeSubnetIds, comma-separated): checked to reach
        /// EC2 and S3 without the appliance (the units' way to EventBridge is always checked).
        #[arg(long, value_delimiter = ',')]
        probe_subnets: Vec<String>,
    },
    /// Print the state file (f5cloudfailoverstate.json) the last run wrote.
    State {
        /// Declaration: s3://BUCKET/KEY or a file (in a fleet, the pair's own); FILE#GROUP for
        /// one failover group of a declaration with serverless.groups.
        #[arg(long, env = "DECLARATION_URI")]
        declaration: String,
    },
}

impl Command {
    /// Whether the command talks to AWS (all but `validate`).
    pub fn uses_the_cloud(&self) -> bool {
        !matches!(self, Command::Validate { .. })
    }
}
