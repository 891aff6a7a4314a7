//! The failover function's logic, shared by the Lambda entry point and `cloud-failover invoke`:
//! event → intent → declaration → run.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use serde_json::{json, Value};

use crate::declaration::Declaration;
use crate::error::FailoverError;
use crate::events::{self, Intent};
use crate::failover::{run, RunOutcome, RunRequest};
use crate::ports::{Ec2, ObjectStore};
use crate::state::Mode;

/// Every API operation `handle` can send (the failover function's IAM role grants exactly
/// these; `tests/e2e/iam.rs` checks the template against it).
pub const OPERATIONS: &[&str] = &[
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
    "DescribeAddresses",
    "AssociateAddress",
    "ReplaceRoute",
    "CreateRoute",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
    "ReplaceRouteTableAssociation",
    "ListBuckets",
    "GetBucketTagging",
    "HeadBucket",
    "GetObject",
    "PutObject",
];

/// Every API operation `handle_inspect` can send (the inspect function's role).
pub const INSPECT_OPERATIONS: &[&str] = &[
    "DescribeInstances",
    "DescribeInstanceStatus",
    "DescribeNetworkInterfaces",
    "DescribeRouteTables",
    "DescribeAddresses",
    "ListBuckets",
    "GetBucketTagging",
    "HeadBucket",
    "GetObject",
    "ListObjectsV2",
];

/// The probe function fails over in process: it needs what `handle` needs.
pub const PROBE_OPERATIONS: &[&str] = OPERATIONS;

/// Where a declaration lives: `s3://bucket/key` or a local file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// A local file (CLI only).
    File(PathBuf),
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(Location::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                }),
                _ => Err(format!("{s:?} is not s3://BUCKET/KEY")),
            };
        }
        if s.is_empty() || s.contains("://") {
            return Err(format!("{s:?} is not s3://BUCKET/KEY or a file path"));
        }
        Ok(Location::File(s.into()))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Reads and validates the declaration at `loc`.
pub async fn load_declaration(
    store: &dyn ObjectStore,
    loc: &Location,
) -> Result<Declaration, FailoverError> {
    let unavailable = |reason: String| FailoverError::DeclarationUnavailable {
        location: loc.to_string(),
        reason,
    };
    let bytes = match loc {
        Location::S3 { bucket, key } => {
            store
                .get_object(bucket, key)
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .ok_or_else(|| unavailable("no such object".into()))?
                .body
        }
        Location::File(path) => std::fs::read(path).map_err(|e| unavailable(e.to_string()))?,
    };
    let text = String::from_utf8(bytes).map_err(|_| unavailable("not UTF-8 text".into()))?;
    let decl = Declaration::parse(&text)?;
    for warning in &decl.warnings {
        tracing::warn!(%warning, "declaration");
    }
    Ok(decl)
}

/// Who is calling and by when it must answer.
#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// Lambda request id.
    pub request_id: Option<String>,
    /// Lambda deadline.
    pub deadline: Option<Instant>,
}

/// Handles one event: returns the run report (or why nothing was done) as JSON. The event
/// is validated before anything is read from the cloud.
pub async fn handle(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    declaration: &Location,
    event: &Value,
    invocation: Invocation,
) -> Result<Value, FailoverError> {
    let trigger = events::parse(event)?;
    tracing::info!(?trigger, "event received");
    let decl = load_declaration(store, declaration).await?;
    match trigger.intent(&decl.extension)? {
        Intent::Ignore { reason } => {
            tracing::info!(%reason, "ignored");
            Ok(json!({"status": "IGNORED", "reason": reason}))
        }
        Intent::Run {
            target,
            mode,
            trigger,
            force,
        } => {
            let outcome = run(
                ec2,
                store,
                &decl,
                RunRequest {
                    target,
                    mode,
                    trigger,
                    request_id: invocation.request_id,
                    force,
                    deadline: invocation.deadline,
                },
            )
            .await?
            .into_result()?;
            let mut out = serde_json::to_value(&outcome).expect("report serializes");
            // One top-level `status` on every answer, for SNS filter policies and callers:
            // SUCCEEDED | DRY_RUN | IN_PROGRESS | COOLDOWN (IGNORED above; failures are errors).
            if let RunOutcome::Completed(r) = &outcome {
                let status = match r.record.mode {
                    Mode::DryRun => "DRY_RUN",
                    Mode::Execute => "SUCCEEDED",
                };
                out["status"] = status.into();
            }
            Ok(out)
        }
    }
}

/// The probe function: probes the members until shortly before the next scheduled run (or the
/// Lambda deadline), failing over in process when the followed member goes down.
pub async fn handle_probe(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    declaration: &Location,
    invocation: Invocation,
) -> Result<Value, FailoverError> {
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(55);
    const RESERVE: std::time::Duration = std::time::Duration::from_secs(5);
    let decl = load_declaration(store, declaration).await?;
    let until = match invocation.deadline {
        Some(d) => (Instant::now() + WINDOW).min(d.checked_sub(RESERVE).unwrap_or(d)),
        None => Instant::now() + WINDOW,
    };
    let report = crate::probe::watch(ec2, store, &decl, until, invocation.deadline).await?;
    Ok(serde_json::to_value(&report).expect("report serializes"))
}

/// The inspect function: the same JSON as `cloud-failover inspect`.
pub async fn handle_inspect(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    declaration: &Location,
) -> Result<Value, FailoverError> {
    let decl = load_declaration(store, declaration).await?;
    let view = crate::inspect::inspect(ec2, store, &decl)
        .await
        .map_err(FailoverError::Discovery)?;
    Ok(serde_json::to_value(&view).expect("inspection serializes"))
}
