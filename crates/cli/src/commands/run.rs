//! `plan`, `execute` (a run from the CLI) and `invoke` (the failover Lambda's handler on an
//! event file, the same code path).

use std::path::Path;
use std::time::{Duration, Instant};

use failover_core::app::fleet::ClusterResult;
use failover_core::app::fleet::Fleet;
use failover_core::app::handler::{handle_fleet, handle_pair, Invocation, Reply};
use failover_core::aws;
use failover_core::engine::answer::Answer;
use failover_core::engine::failover::{run, RunOutcome};
use failover_core::engine::request::{Mode, RunRequest};
use serde_json::Value;

use super::{location, open, target, trust, Context};
use crate::exit::CliError;
use crate::render::{self, say_line};

/// `plan --target T`: a dry run (no mutating call, no write).
pub async fn plan(ctx: &Context<'_>, declaration: &str, to: &str) -> Result<(), CliError> {
    run_from_cli(ctx, declaration, to, Mode::DryRun, None).await
}

/// `execute --target T [--force] [--deadline S]`: an operator's explicit command, carried out
/// within the cooldown too (damping is for automatic triggers; `--force` is kept for scripts
/// that pass it).
pub async fn execute(
    ctx: &Context<'_>,
    declaration: &str,
    to: &str,
    _force: bool,
    deadline: u64,
) -> Result<(), CliError> {
    run_from_cli(ctx, declaration, to, Mode::Execute, Some(deadline)).await
}

/// One run from the CLI: a skip exits with its status's code, a FAILED run with 1.
async fn run_from_cli(
    ctx: &Context<'_>,
    declaration: &str,
    to: &str,
    mode: Mode,
    deadline: Option<u64>,
) -> Result<(), CliError> {
    let t = target(to)?;
    let (cloud, decl) = open(&ctx.opts, declaration).await?;
    let mut req = RunRequest::new(t, mode, "cli");
    if mode == Mode::Execute {
        req.force = true;
        req.requested_by = Some(match aws::caller_identity(&ctx.opts).await {
            Ok((_, arn)) => format!("cloud-failover execute by {arn}"),
            Err(e) => format!("cloud-failover execute (caller unknown: {e})"),
        });
    }
    req.deadline = deadline.map(|s| Instant::now() + Duration::from_secs(s));
    let outcome = run(&cloud.ec2, &cloud.s3, &decl, req).await?;
    render::show_outcome(ctx.output, &outcome);
    if let RunOutcome::Skipped(skip) = &outcome {
        return Err(CliError::skipped(skip));
    }
    outcome.into_result()?;
    Ok(())
}

/// `invoke EVENT`: the failover function's answer; IN_PROGRESS, COOLDOWN and IGNORED exit
/// with their own codes.
pub async fn invoke(
    ctx: &Context<'_>,
    event: &Path,
    declaration: &str,
    alarm_name_prefix: &str,
) -> Result<(), CliError> {
    let loc = location(declaration)?;
    if let (_, Some(g)) = super::split_group(declaration) {
        return Err(CliError::usage(format!(
            "--declaration: invoke takes no #GROUP (#{g}): the event names its failover group (an announcement's detail.group, a direct invoke's group)"
        )));
    }
    let text = std::fs::read_to_string(event)
        .map_err(|e| CliError::new(format!("{}: {e}", event.display())))?;
    // Checked before any cloud client exists: a bad event touches nothing.
    let invalid =
        |e: failover_core::app::events::EventError| CliError::new(format!("invalid event: {e}"));
    // The reader the Lambdas use for their payloads (a key given twice is refused).
    let payload: Value = failover_core::app::events::parse_json(&text).map_err(invalid)?;
    let batch = match failover_core::app::events::sqs_messages(&payload) {
        Some(messages) => messages
            .map_err(invalid)?
            .into_iter()
            .map(|m| m.event)
            .collect(),
        None => {
            failover_core::app::events::parse_text(&text).map_err(invalid)?;
            vec![payload.clone()]
        }
    };
    let cloud = aws::connect(&ctx.opts).await;
    let invocation = Invocation {
        trust: trust(&ctx.opts, alarm_name_prefix).await?,
        ..Invocation::default()
    };
    if loc.is_fleet() || batch.len() != 1 || batch[0] != payload {
        // The fleet's executor (or the function invoked by its queue): every event routed.
        let mut fleet = Fleet::new(loc);
        let answers = handle_fleet(&cloud.ec2, &cloud.s3, &mut fleet, &batch, invocation).await;
        return show_fleet(ctx, answers.into_iter().flatten().collect());
    }
    let cloud = for_declaration(cloud, &ctx.opts, &loc)
        .await
        .map_err(|e| CliError::new(e.to_string()))?;
    match handle_pair(&cloud.ec2, &cloud.s3, &loc, &payload, invocation).await? {
        Reply::One(answer) => shown(ctx, &answer),
        // A pair with failover groups: each group's answer.
        Reply::Fleet(report) => show_fleet(ctx, report.clusters),
    }
}

/// Shows `answer`; IN_PROGRESS, COOLDOWN and IGNORED as their exit codes.
fn shown(ctx: &Context<'_>, answer: &Answer) -> Result<(), CliError> {
    render::show_answer(ctx.output, answer);
    verdict(answer)
}

/// IN_PROGRESS, COOLDOWN and IGNORED as their exit codes.
fn verdict(answer: &Answer) -> Result<(), CliError> {
    match answer {
        Answer::Succeeded(_) | Answer::DryRun(_) => Ok(()),
        Answer::InProgress(skip) | Answer::Cooldown(skip) => Err(CliError::skipped(skip)),
        Answer::Ignored(ignored) => Err(CliError::ignored(ignored)),
    }
}

/// A fleet's answers: under headings (table), or one JSON document `{"answers": […]}` (each
/// as the fleet's function answers it, naming its declaration); the first that is not a
/// success decides the exit code.
fn show_fleet(ctx: &Context<'_>, answers: Vec<ClusterResult<Answer>>) -> Result<(), CliError> {
    let json = ctx.output == crate::args::Output::Json;
    if json {
        render::print_json(&serde_json::json!({ "answers": answers }));
    }
    let mut first = None;
    for a in answers {
        if !json {
            say_line(&format!(
                "== {} ==",
                a.cluster.as_deref().unwrap_or("no cluster")
            ));
        }
        // An answer is shown once (a skip's exit code comes with it); an error is said.
        let outcome = match a.result {
            Ok(answer) if json => verdict(&answer),
            Ok(answer) => shown(ctx, &answer),
            Err(e) => {
                let e = CliError::from(e);
                if !json {
                    say_line(&e.to_string());
                }
                Err(e)
            }
        };
        if let Err(e) = outcome {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// The adapters the declaration at `declaration` asks for (see `aws::with_settings`); the base
/// adapters when it does not load (each invocation reports that).
async fn for_declaration(
    cloud: aws::AwsCloud,
    opts: &aws::AwsOptions,
    declaration: &failover_core::Location,
) -> Result<aws::AwsCloud, aws::SettingsError> {
    match failover_core::app::location::load_declaration(&cloud.s3, declaration).await {
        Ok(decl) => aws::with_settings(cloud, opts, &decl).await,
        Err(_) => Ok(cloud),
    }
}
