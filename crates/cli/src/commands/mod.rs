//! One function per command: parse its arguments, build the AWS adapters, call one library
//! function, hand the result to a renderer, and end with the outcome's exit code.
//! `declaration`: validate, declare; `run`: plan, execute, invoke; `cluster`: inspect,
//! unlock, reset, history, doctor, state.

mod cluster;
mod declaration;
mod run;

pub use cluster::{doctor, history, inspect, reset, state, unlock, HistoryFilter};
pub use declaration::{declare, init, validate, InitArgs};
pub use run::{execute, invoke, plan};

use failover_core::app::events::Trust;
use failover_core::app::fleet::{cluster_key, result_json, Fleet};
use failover_core::app::handler::{load_declaration, Location};
use failover_core::aws::{self, AwsCloud, AwsOptions};
use failover_core::engine::discovery::resolve_bucket;
use failover_core::engine::request::TargetSpec;
use failover_core::{Declaration, FailoverError};
use serde_json::Value;

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
            output: cli.output.unwrap_or_else(|| {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    Output::Table
                } else {
                    Output::Json
                }
            }),
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

/// `--declaration` (without a `#GROUP` suffix), or exit 2.
fn location(s: &str) -> Result<Location, CliError> {
    let (loc, group) = split_group(s);
    let loc = loc
        .parse::<Location>()
        .map_err(|e| CliError::usage(format!("--declaration: {e}")))?;
    match group {
        Some(g) if loc.is_fleet() => Err(CliError::usage(format!(
            "--declaration: #{g}: a fleet takes no #GROUP (name the pair's declaration: KEY#GROUP)"
        ))),
        _ => Ok(loc),
    }
}

/// `--declaration FILE#GROUP`: one failover group of a declaration with `serverless.groups`
/// (as inspect and doctor name each group's cluster).
fn split_group(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('#') {
        Some((loc, g))
            if !loc.is_empty() && failover_core::engine::declaration::is_group_name(g) =>
        {
            (loc, Some(g))
        }
        _ => (s, None),
    }
}

/// The one cluster `--declaration` names: the declaration, or the failover group named by its
/// `#GROUP` suffix (required when the declaration names groups), or exit 2.
fn narrow(declaration: &str, decl: Declaration) -> Result<Declaration, CliError> {
    let group = split_group(declaration).1;
    if !decl.is_grouped() {
        return match group {
            Some(g) => Err(CliError::usage(format!(
                "--declaration: #{g}: the declaration names no failover groups (serverless.groups)"
            ))),
            None => Ok(decl),
        };
    }
    let names: Vec<String> = decl.extension.groups.keys().cloned().collect();
    let Some(g) = group else {
        return Err(CliError::usage(format!(
            "--declaration: the declaration names failover groups ({}): name one as {declaration}#GROUP",
            names.join(", ")
        )));
    };
    decl.group(g).ok_or_else(|| {
        CliError::usage(format!(
            "--declaration: #{g} is not a failover group of the declaration ({})",
            names.join(", ")
        ))
    })
}

/// The SDK adapters and the declaration at `loc` (read through them when it is in S3).
/// The SDK adapters follow the declaration's endpoints, CA bundle and bucket region.
/// A declaration with failover groups gives the group `--declaration`'s `#GROUP` names.
async fn open(opts: &AwsOptions, declaration: &str) -> Result<(AwsCloud, Declaration), CliError> {
    let loc = location(declaration)?;
    let cloud = aws::connect(opts).await;
    let decl = narrow(declaration, load_declaration(&cloud.s3, &loc).await?)?;
    shaped(cloud, opts, decl).await
}

/// `cloud` shaped by `decl`'s endpoints, CA bundle and bucket region.
async fn shaped(
    cloud: AwsCloud,
    opts: &AwsOptions,
    decl: Declaration,
) -> Result<(AwsCloud, Declaration), CliError> {
    let cloud = aws::with_settings(cloud, opts, &decl)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    Ok((cloud, decl))
}

/// One cluster to look at: its name (the declaration's location, or its key in a fleet), the
/// SDK adapters shaped by its declaration, and the declaration.
struct Opened {
    name: String,
    /// Where its declaration is (in a fleet, the pair's own), as a command names it.
    declared_at: String,
    cloud: AwsCloud,
    decl: Declaration,
}

/// Every cluster at `loc`: its one declaration, or each declaration of a fleet (a prefix or
/// a directory) that loads; and, for a fleet, those that do not, each with why, and the fleet
/// as read (for its own checks).
/// A declaration with failover groups is each of its groups (a fleet of one pair), unless
/// `--declaration` names one (`FILE#GROUP`).
async fn open_all(
    opts: &AwsOptions,
    declaration: &str,
) -> Result<(Vec<Opened>, Vec<(String, String)>, Option<Fleet>), CliError> {
    let loc = &location(declaration)?;
    let base = aws::connect(opts).await;
    let fleet = if loc.is_fleet() {
        let mut fleet = Fleet::new(loc.clone());
        fleet.refresh(&base.s3).await?;
        fleet
    } else {
        let decl = load_declaration(&base.s3, loc).await?;
        if !decl.is_grouped() || split_group(declaration).1.is_some() {
            let (cloud, decl) = shaped(base, opts, narrow(declaration, decl)?).await?;
            let one = Opened {
                name: declaration.to_string(),
                declared_at: declaration.to_string(),
                cloud,
                decl,
            };
            return Ok((vec![one], Vec::new(), None));
        }
        // Grouped, no group named: every group, as a fleet's clusters.
        Fleet::of(loc.clone(), decl)
    };
    let mut out = Vec::new();
    for (name, c) in &fleet.clusters {
        let cloud = aws::with_settings(base.clone(), opts, &c.declaration)
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        let decl = (*c.declaration).clone();
        let declared_at = cluster_key(&loc.member(&c.declared).to_string(), c.group.as_deref());
        let name = name.clone();
        out.push(Opened {
            name,
            declared_at,
            cloud,
            decl,
        });
    }
    let broken = fleet.broken.clone().into_iter().collect();
    Ok((out, broken, Some(fleet)))
}

/// Runs `each` for every cluster at `loc` and shows what it found with `show`: one
/// declaration as ever; a fleet's clusters under headings (table output) or gathered into
/// the JSON document `{"clusters": […], "broken": {…}, …}` the caller prints (each cluster as
/// the functions show it: `fleet::result_json`)
/// (its `fleet` entries added), returned here with the fleet as read. Fails with the first
/// cluster's failure, or for a declaration that does not load.
async fn for_each_cluster<T, F, Fut>(
    ctx: &Context<'_>,
    declaration: &str,
    each: F,
    show: fn(Output, &T),
) -> (
    serde_json::Map<String, Value>,
    Result<(), CliError>,
    Option<Fleet>,
)
where
    T: serde::Serialize,
    F: Fn(Opened) -> Fut,
    Fut: std::future::Future<Output = Result<(T, Result<(), CliError>), CliError>>,
{
    let mut doc = serde_json::Map::new();
    let (clusters, broken, read) = match open_all(&ctx.opts, declaration).await {
        Ok(all) => all,
        Err(e) => return (doc, Err(e), None),
    };
    let (fleet, table) = (read.is_some(), ctx.output == Output::Table);
    let mut items = Vec::new();
    let mut first = None;
    for c in clusters {
        let name = c.name.clone();
        if fleet && table {
            crate::render::say_line(&format!("== {name} =="));
        }
        let verdict = match each(c).await {
            Ok((found, verdict)) => {
                if !fleet || table {
                    show(ctx.output, &found);
                } else {
                    let found = serde_json::to_value(&found).unwrap_or_default();
                    items.push(result_json(Ok(found), Some(&name), None));
                }
                verdict
            }
            Err(e) => {
                if fleet && table {
                    crate::render::say_line(&e.to_string());
                }
                items.push(result_json(
                    Err(("Error", e.to_string())),
                    Some(&name),
                    None,
                ));
                Err(e)
            }
        };
        if let Err(e) = verdict {
            first.get_or_insert(e);
        }
    }
    for (name, why) in &broken {
        if table {
            crate::render::say_line(&format!("== {name} ==\nFAIL  declaration       {why}"));
        }
    }
    doc.insert("clusters".into(), items.into());
    let broken_json: serde_json::Map<String, Value> = broken
        .iter()
        .map(|(name, why)| (name.clone(), why.as_str().into()))
        .collect();
    doc.insert("broken".into(), broken_json.into());
    let verdict = match (first, broken.first()) {
        (Some(e), _) => Err(e),
        (None, Some((name, why))) => Err(CliError::new(format!("{name}: {why}"))),
        (None, None) => Ok(()),
    };
    (doc, verdict, read)
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
    } else if failover_core::engine::declaration::is_instance_id(s) {
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
