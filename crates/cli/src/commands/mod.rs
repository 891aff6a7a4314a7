//! One function per command: parse its arguments, build the AWS adapters, call one library
//! function, hand the result to a renderer, and end with the outcome's exit code.
//! `declaration`: validate, declare; `run`: plan, execute, invoke; `cluster`: inspect,
//! unlock, reset, history, doctor, state.

mod cluster;
mod declaration;
mod run;

pub use cluster::{doctor, history, inspect, reset, state, unlock};
pub use declaration::{declare, validate};
pub use run::{execute, invoke, plan};

use failover_core::aws::{self, AwsCloud, AwsOptions};
use failover_core::discovery::resolve_bucket;
use failover_core::events::Trust;
use failover_core::handler::{load_declaration, Location};
use failover_core::request::TargetSpec;
use failover_core::{Declaration, FailoverError};

use crate::args::{Cli, Output};
use crate::exit::CliError;

/// The global flags every command may use.
pub struct Context<'a> {
    /// `--output`.
    pub output: Output,
    /// `--endpoint-url`, `--region`.
    pub opts: AwsOptions,
    /// `--scoping-tag-key`.
    pub scoping_tag_key: &'a str,
}

impl<'a> Context<'a> {
    /// The global flags of `cli`.
    pub fn of(cli: &'a Cli) -> Context<'a> {
        Context {
            output: cli.output,
            opts: AwsOptions {
                region: cli.region.clone(),
                endpoint_url: cli.endpoint_url.clone(),
                emulator: cli
                    .emulator
                    .as_deref()
                    .map(|e| e.parse().expect("clap checked it")),
            },
            scoping_tag_key: &cli.scoping_tag_key,
        }
    }
}

/// `--declaration`, or exit 2.
fn location(s: &str) -> Result<Location, CliError> {
    s.parse::<Location>()
        .map_err(|e| CliError::usage(format!("--declaration: {e}")))
}

/// The SDK adapters and the declaration at `loc` (read through them when it is in S3).
/// The SDK adapters follow the declaration's endpoints, CA bundle and bucket region.
async fn open(opts: &AwsOptions, loc: &Location) -> Result<(AwsCloud, Declaration), CliError> {
    let cloud = aws::connect(opts).await;
    let decl = load_declaration(&cloud.s3, loc).await?;
    let cloud = aws::with_settings(cloud, opts, &decl)
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

/// `--target`: an instance id or `peer`, or exit 2.
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
async fn bucket(cloud: &AwsCloud, decl: &Declaration) -> Result<String, CliError> {
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
