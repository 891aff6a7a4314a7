//! `validate` and `declare`: a declaration file, checked (and uploaded).

use std::path::{Path, PathBuf};

use failover_core::aws;
use failover_core::handler::Location;
use failover_core::ports::ObjectStore;
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
    for other in against {
        for w in failover_core::state::shared_keys(&decl, &read(other, true)?) {
            stderr!("warning: {} and {}: {w}", file.display(), other.display());
        }
    }
    for w in &decl.warnings {
        stderr!("warning: {w}");
    }
    for w in failover_core::doctor::stack_tag_mismatches(&decl, ctx.scoping_tag_key) {
        stderr!("warning: {w}");
    }
    render::show_declaration(ctx.output, file, &decl);
    Ok(())
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
