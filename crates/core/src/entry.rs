//! Helpers for the entry points only (the Lambda `main`s): the one place below them that
//! reads the environment.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::{self, AwsCloud, AwsOptions, ClientSettings};
use crate::handler::{load_declaration, Invocation, Location};

/// Reads `DECLARATION_URI` (required) and `AWS_ENDPOINT_URL` (for local runs), and builds the
/// SDK adapters once, before the first event.
pub async fn lambda_setup() -> Result<(AwsCloud, Location), String> {
    let declaration: Location = std::env::var("DECLARATION_URI")
        .map_err(|_| "DECLARATION_URI is not set (expected s3://BUCKET/KEY)".to_string())?
        .parse()
        .map_err(|e| format!("DECLARATION_URI: {e}"))?;
    let opts = AwsOptions {
        region: None,
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
    };
    let cloud = aws::connect(&opts).await;
    let cloud = for_declaration(cloud, &opts, &declaration).await?;
    Ok((cloud, declaration))
}

/// The adapters the declaration asks for: its PrivateLink endpoints (`endpointDnsName`), CA
/// bundle (`trustedCertBundle`) and bucket region. Read once, at cold start: a change to them
/// takes effect with the next cold start. A declaration that does not load is reported by
/// each invocation instead, so the base adapters are kept.
pub async fn for_declaration(
    cloud: AwsCloud,
    opts: &AwsOptions,
    declaration: &Location,
) -> Result<AwsCloud, String> {
    let Ok(decl) = load_declaration(&cloud.s3, declaration).await else {
        return Ok(cloud);
    };
    let settings = ClientSettings::from_declaration(&decl)?;
    if settings == ClientSettings::default() {
        return Ok(cloud);
    }
    Ok(aws::connect_for(opts, &settings, None).await)
}

/// The invocation from Lambda's request id and deadline (ms since the epoch).
pub fn invocation(request_id: String, deadline_epoch_ms: u64) -> Invocation {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|now| Duration::from_millis(deadline_epoch_ms).checked_sub(now))
        .map(|left| Instant::now() + left);
    Invocation {
        request_id: Some(request_id),
        deadline,
    }
}
