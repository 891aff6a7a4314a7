//! The cluster as it is: `inspect`, `history`, `doctor`, `state`; and its lock and state
//! file set straight: `unlock`, `reset`.

use std::time::Duration;

use failover_core::app::fleet::Fleet;
use failover_core::app::inspect::{CloudVerdict, Inspection};
use failover_core::aws::AwsCloud;
use failover_core::engine::keys::state_key;
use failover_core::engine::lock::Unlocked;
use failover_core::engine::state::{read_history, StateLog};
use failover_core::engine::text::printable;
use failover_core::ops::doctor::{Check, Verdict};
use failover_core::{Declaration, FailoverError};
use serde_json::Value;

use super::{bucket, for_each_cluster, location, open, Context};
use crate::args::Output;
use crate::exit::{self, CliError};
use crate::render;

/// `inspect`: exit 8 without a state bucket, 7 on drift (or when the cloud disagrees with
/// the appliance pair's last announcement).
/// Over a fleet, every cluster in turn.
pub async fn inspect(ctx: &Context<'_>, declaration: &str) -> Result<(), CliError> {
    let loc = location(declaration)?;
    let (doc, verdict, read) = for_each_cluster(
        ctx,
        declaration,
        |c| inspect_one(c.cloud, c.decl),
        render::show_inspection,
    )
    .await;
    if (loc.is_fleet() || read.is_some()) && ctx.output == Output::Json {
        render::print_json(&doc);
    }
    verdict
}

/// One cluster's picture, and its verdict.
async fn inspect_one(
    cloud: AwsCloud,
    decl: Declaration,
) -> Result<(Inspection, Result<(), CliError>), CliError> {
    let view = failover_core::app::inspect::inspect(&cloud.ec2, &cloud.s3, &decl)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    let verdict = verdict(&view);
    Ok((view, verdict))
}

/// `inspect`'s verdict on one cluster.
fn verdict(view: &Inspection) -> Result<(), CliError> {
    if view.bucket.is_none() {
        return Err(CliError::from(FailoverError::NoStateBucket(
            "so there is no state, history or lock to show".into(),
        )));
    }
    let code = match view.verdict {
        CloudVerdict::Agrees | CloudVerdict::NothingManaged => return Ok(()),
        CloudVerdict::FollowsDown => exit::FOLLOWS_DOWN,
        CloudVerdict::Split | CloudVerdict::DisagreesWithBox => exit::DRIFT,
    };
    let detail = failover_core::engine::text::printable(&view.verdict_detail);
    Err(CliError::status(code, view.verdict.as_str(), &detail))
}

/// `unlock [--force]`: releases the cluster lock (a live run's only with --force).
pub async fn unlock(ctx: &Context<'_>, declaration: &str, force: bool) -> Result<(), CliError> {
    release(ctx, declaration, force, false).await
}

/// `reset [--force]`: releases the lock and rewrites the state file as a clean slate.
pub async fn reset(ctx: &Context<'_>, declaration: &str, force: bool) -> Result<(), CliError> {
    release(ctx, declaration, force, true).await
}

async fn release(
    ctx: &Context<'_>,
    declaration: &str,
    force: bool,
    reset: bool,
) -> Result<(), CliError> {
    let (cloud, decl) = open(&ctx.opts, declaration).await?;
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
    let reset_from = if reset {
        let previous = log
            .read_state()
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        if let Some(host) = previous
            .as_ref()
            .and_then(failover_core::engine::state::cfe::running)
        {
            if !force {
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
    let out = failover_core::engine::lock::unlock(&cloud.s3, &bucket, cluster, enc, force)
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
    // The members' own lock, which a run takes beside the cluster's (found by discovering the
    // members, as a run does): released the same way.
    if let Ok(members) = failover_core::engine::discovery::member_ids(&cloud.ec2, &decl).await {
        if !members.is_empty() {
            let group = decl.extension.group.as_deref();
            let name = failover_core::engine::lock::members_lock_name(&members, group);
            let also = failover_core::engine::lock::unlock(&cloud.s3, &bucket, &name, enc, force)
                .await
                .map_err(|e| CliError::new(e.to_string()))?;
            if let Unlocked::Held { holder } = also {
                return Err(CliError::status(
                    exit::LOCK_HELD,
                    "LOCK_HELD",
                    &format!(
                        "run {} holds the lock of these members ({}) until {}; if its runner died, use --force",
                        holder.body.owner,
                        members.join(", "),
                        holder.held_until
                    ),
                ));
            }
        }
    }
    let mut state_file = None;
    if let Some(previous) = &reset_from {
        log.reset_state("cloud-failover reset", previous.as_ref())
            .await
            .map_err(|e| CliError::new(e.to_string()))?;
        state_file = Some(format!("s3://{bucket}/{}", state_key(&decl)));
    }
    render::show_unlocked(ctx.output, &out, cluster, state_file.as_deref());
    Ok(())
}

/// `history [--failed] [--cluster C] [--limit N]`: the runs, newest first.
pub async fn history(
    ctx: &Context<'_>,
    declaration: &str,
    filter: HistoryFilter<'_>,
) -> Result<(), CliError> {
    let (cloud, decl) = open(&ctx.opts, declaration).await?;
    let bucket = bucket(&cloud, &decl).await?;
    let cluster = filter.cluster.unwrap_or(&decl.extension.cluster_name);
    let runs = read_history(&cloud.s3, &bucket, cluster, filter.limit, filter.failed)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    render::show_history(ctx.output, &runs, filter.local_time);
    Ok(())
}

/// Which runs `history` shows, and how.
pub struct HistoryFilter<'a> {
    /// Only those that did not succeed.
    pub failed: bool,
    /// Another cluster of the bucket.
    pub cluster: Option<&'a str>,
    /// How many.
    pub limit: usize,
    /// Times in the local time zone.
    pub local_time: bool,
}

/// `doctor`: exit 1 when a check fails. Over a fleet, every cluster in turn (a declaration
/// that does not load fails).
pub async fn doctor(
    ctx: &Context<'_>,
    declaration: &str,
    probe_subnets: &[String],
) -> Result<(), CliError> {
    let loc = location(declaration)?;
    let (mut doc, each, read) = for_each_cluster(
        ctx,
        declaration,
        |c| doctor_one(ctx, c.cloud, c.decl, c.declared_at, probe_subnets),
        |output, checks: &Vec<Check>| render::show_checks(output, checks),
    )
    .await;
    if !loc.is_fleet() {
        // One pair (with failover groups: one section per group), no fleet to check.
        if read.is_some() && ctx.output == Output::Json {
            render::print_json(&doc);
        }
        return each;
    }
    // The fleet as the clusters' checks read it (not listed and read a second time).
    let shared = match read {
        Some(fleet) => fleet_members(ctx, fleet, &mut doc).await,
        None => Ok(()), // not read: `each` is that error
    };
    if ctx.output == Output::Json {
        render::print_json(&doc);
    }
    each.and(shared)
}

/// The fleet's own checks (`doctor::fleet_checks`).
async fn fleet_members(
    ctx: &Context<'_>,
    mut fleet: Fleet,
    doc: &mut serde_json::Map<String, Value>,
) -> Result<(), CliError> {
    let cloud = failover_core::aws::connect(&ctx.opts).await;
    let failures = fleet.discover_members(&cloud.ec2, Duration::MAX).await;
    let checks = failover_core::ops::doctor::fleet_checks(&fleet, &failures);
    if ctx.output == Output::Table {
        render::say_line("== fleet ==");
        render::show_checks(ctx.output, &checks);
    }
    doc.insert(
        "fleet".into(),
        serde_json::to_value(&checks).unwrap_or_default(),
    );
    failed(&checks, "fleet ")
}

/// One cluster's checks, and the verdict on them.
async fn doctor_one(
    ctx: &Context<'_>,
    cloud: AwsCloud,
    decl: Declaration,
    declared_at: String,
    probe_subnets: &[String],
) -> Result<(Vec<Check>, Result<(), CliError>), CliError> {
    let checks = failover_core::ops::doctor::doctor(
        &cloud.ec2,
        &cloud.s3,
        &decl,
        ctx.scoping_tag_key,
        &declared_at,
        probe_subnets,
    )
    .await
    .map_err(|e| CliError::new(e.to_string()))?;
    let verdict = failed(&checks, "");
    Ok((checks, verdict))
}

/// Fails when a check failed.
fn failed(checks: &[Check], which: &str) -> Result<(), CliError> {
    match checks.iter().filter(|c| c.verdict == Verdict::Fail).count() {
        0 => Ok(()),
        n => Err(CliError::new(format!("doctor: {n} {which}check(s) failed"))),
    }
}

/// `state`: the state file the last run wrote (as stored, or its summary as a table).
pub async fn state(ctx: &Context<'_>, declaration: &str) -> Result<(), CliError> {
    let (cloud, decl) = open(&ctx.opts, declaration).await?;
    let state = read_state(&cloud, &decl).await?;
    render::show_state(ctx.output, &state);
    Ok(())
}

async fn read_state(cloud: &AwsCloud, decl: &Declaration) -> Result<Value, CliError> {
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
