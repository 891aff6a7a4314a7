//! `validate` and `declare`: a declaration file, checked (and uploaded).

use std::path::{Path, PathBuf};

use failover_core::app::fleet::Fleet;
use failover_core::app::handler::Location;
use failover_core::aws;
use failover_core::engine::ports::ObjectStore;
use failover_core::Declaration;

use super::Context;
use crate::exit::CliError;
use crate::render;

/// `validate FILE [--against OTHER…]`: no cloud access; warnings on stderr.
pub fn validate(ctx: &Context<'_>, file: &Path, against: &[PathBuf]) -> Result<(), CliError> {
    let read = |file: &Path, named: bool| {
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
    let mut clashes = 0;
    for other in fleet_files(against)? {
        if same_file(file, &other) {
            continue;
        }
        let other_decl = match read(&other, true) {
            Ok(d) => d,
            // In a directory, another file that does not load is not this one's problem.
            Err(e) if against.iter().any(|a| a.is_dir() && other.starts_with(a)) => {
                stderr!("warning: skipped {}: {e}", other.display());
                continue;
            }
            Err(e) => return Err(e),
        };
        for w in failover_core::engine::state::shared_keys(&decl, &other_decl) {
            stderr!("error: {} and {}: {w}", file.display(), other.display());
            clashes += 1;
        }
    }
    for w in &decl.warnings {
        stderr!("warning: {w}");
    }
    for w in failover_core::engine::declaration::stack_tag_mismatches(&decl, ctx.scoping_tag_key) {
        stderr!("warning: {w}");
    }
    render::show_declaration(ctx.output, file, &decl);
    if clashes > 0 {
        // One of a fleet's pairs would lose its failover to this one (or this one to it).
        return Err(CliError::new(format!(
            "{}: would share a state file or lock with another cluster ({clashes})",
            file.display()
        )));
    }
    Ok(())
}

/// `--against`: files, and every `*.json` of a directory (a fleet's declarations).
fn fleet_files(against: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for a in against {
        if !a.is_dir() {
            out.push(a.clone());
            continue;
        }
        let entries =
            std::fs::read_dir(a).map_err(|e| CliError::new(format!("{}: {e}", a.display())))?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .is_some_and(|x| x.eq_ignore_ascii_case("json"))
                    && p.metadata().is_ok_and(|m| {
                        m.len() <= failover_core::engine::declaration::MAX_DECLARATION_BYTES as u64
                    })
            })
            .collect();
        files.sort();
        out.extend(files);
    }
    Ok(out)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// `declare FILE --to s3://BUCKET/KEY`: validates, then uploads.
pub async fn declare(ctx: &Context<'_>, file: &Path, to: &str) -> Result<(), CliError> {
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
    let cloud = aws::connect(&ctx.opts).await;
    siblings_allow(&cloud, &bucket, &key, &decl).await?;
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
    render::show_uploaded(ctx.output, &bucket, &key, &decl);
    Ok(())
}

/// The declarations beside `key` (a fleet's, under the same prefix) that `decl` would share
/// a state file or lock with: any, and nothing is uploaded (the pair already there would lose
/// its failover to the newcomer's clash).
async fn siblings_allow(
    cloud: &aws::AwsCloud,
    bucket: &str,
    key: &str,
    decl: &Declaration,
) -> Result<(), CliError> {
    let prefix = key.rsplit_once('/').map_or("", |(p, _)| p);
    if prefix.is_empty() {
        return Ok(());
    }
    let mut fleet = Fleet::new(Location::Prefix {
        bucket: bucket.into(),
        prefix: format!("{prefix}/"),
    });
    if fleet.refresh(&cloud.s3).await.is_err() {
        // Nothing there yet (or nothing readable): nothing to clash with.
        return Ok(());
    }
    let others = fleet
        .declarations()
        .map(|c| &c.key)
        .chain(fleet.unread().map(|(k, _)| k))
        .any(|k| k != key);
    if !others {
        // This key alone (a single pair's declaration, replaced): no fleet beside it.
        return Ok(());
    }
    if !key.to_ascii_lowercase().ends_with(".json") {
        return Err(CliError::new(format!(
            "not uploaded: s3://{bucket}/{key} is beside a fleet's declarations, and a fleet reads only *.json keys"
        )));
    }
    let own = decl.own_endpoints();
    if !own.is_empty() {
        return Err(CliError::new(format!(
            "not uploaded: s3://{bucket}/{key} is beside a fleet's declarations, and it sets {}: a fleet's pairs share the function's endpoints and CA certificates",
            own.join(", ")
        )));
    }
    let clashes: Vec<String> = fleet
        .declarations()
        .filter(|c| c.key != key)
        .flat_map(|c| {
            failover_core::engine::state::shared_keys(decl, &c.declaration)
                .into_iter()
                .map(move |w| format!("{}: {w}", c.key))
        })
        .collect();
    if clashes.is_empty() {
        return Ok(());
    }
    Err(CliError::new(format!(
        "not uploaded: s3://{bucket}/{key} would share a state file or lock with a declaration beside it: {}",
        clashes.join("; ")
    )))
}

/// `init`'s arguments.
pub struct InitArgs<'a> {
    /// `--instances`: A, B.
    pub instances: &'a [String],
    /// `--label`.
    pub label: &'a str,
    /// `--route-tables`.
    pub route_tables: &'a [String],
    /// `--eips`.
    pub eips: &'a [String],
    /// `--out`.
    pub out: &'a Path,
    /// `--apply`.
    pub apply: bool,
}

/// `init --instances A,B --label V [--apply]`: propose, write, (apply,) validate, (doctor).
pub async fn init(ctx: &Context<'_>, args: InitArgs<'_>) -> Result<(), CliError> {
    use failover_core::ops::init::{apply, propose, InitError, InitRequest};
    let units: [String; 2] = args
        .instances
        .to_vec()
        .try_into()
        .map_err(|got: Vec<String>| {
            CliError::usage(format!(
                "--instances: two instance ids, A (active now) then B; got {}",
                got.len()
            ))
        })?;
    if args.label.is_empty() {
        return Err(CliError::usage(
            "--label: the scoping tag's value, not empty",
        ));
    }
    let req = InitRequest {
        units,
        tag: (ctx.scoping_tag_key.to_string(), args.label.to_string()),
        route_tables: args.route_tables.to_vec(),
        eips: args.eips.to_vec(),
    };
    let cloud = aws::connect(&ctx.opts).await;
    let proposal = propose(&cloud.ec2, &req).await.map_err(|e| match e {
        InitError::Request(m) => CliError::usage(m),
        InitError::Cloud(e) => CliError::new(e.to_string()),
    })?;
    let text = serde_json::to_string_pretty(&proposal.declaration).unwrap_or_default() + "\n";
    // Validated before it is written: a file init leaves always loads.
    let decl = Declaration::parse(&text)
        .map_err(|e| CliError::new(format!("the proposed declaration does not validate: {e}")))?;
    std::fs::write(args.out, &text)
        .map_err(|e| CliError::new(format!("--out {}: {e}", args.out.display())))?;
    if args.apply {
        apply(&cloud.ec2, &proposal)
            .await
            .map_err(|e| CliError::new(format!("applying the changes: {e}")))?;
    }
    let checks = if args.apply {
        let at = args.out.display().to_string();
        Some(
            failover_core::ops::doctor::doctor(
                &cloud.ec2,
                &cloud.s3,
                &decl,
                ctx.scoping_tag_key,
                &at,
                &[],
            )
            .await
            .map_err(|e| CliError::new(e.to_string()))?,
        )
    } else {
        None
    };
    render::show_init(
        ctx.output,
        args.out,
        &proposal,
        args.apply,
        checks.as_deref(),
    );
    match checks {
        Some(c)
            if c.iter()
                .any(|c| c.verdict == failover_core::ops::doctor::Verdict::Fail) =>
        {
            Err(CliError::new("doctor: FAIL (see above)"))
        }
        _ => Ok(()),
    }
}
