//! Helpers for the entry points only (the Lambda `main`s): the one place below them that
//! reads the environment.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::aws::{self, AwsCloud, AwsOptions};
use crate::events::{Home, Trust, DEFAULT_ALARM_NAME_PREFIX};
use crate::handler::{Invocation, Location};

/// Reads `DECLARATION_URI` (required) and `AWS_ENDPOINT_URL` (for local runs), and builds the
/// SDK adapters once, before the first event.
pub async fn lambda_setup() -> Result<(AwsCloud, Location), String> {
    let declaration: Location = std::env::var("DECLARATION_URI")
        .map_err(|_| "DECLARATION_URI is not set (expected s3://BUCKET/KEY)".to_string())?
        .parse()
        .map_err(|e| format!("DECLARATION_URI: {e}"))?;
    let cloud = aws::connect(&AwsOptions {
        region: None,
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
    })
    .await;
    Ok((cloud, declaration))
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
        trust: Trust::default(),
    }
}

/// What the failover function trusts: its own account and region, from the invoked function's
/// ARN, and the stack's alarm-name prefix (`ALARM_NAME_PREFIX`, set by the template from its
/// `AlarmNamePrefix` parameter; default `cloud-failover-`). Local Lambda emulators pass no
/// real ARN (`cargo lambda watch` says `function-arn`): only then are `AWS_ACCOUNT_ID` and
/// `AWS_REGION` used, when both are set (`scripts/invoke-local.sh` sets moto's).
pub fn trust(invoked_function_arn: &str) -> Trust {
    let home = Home::from_function_arn(invoked_function_arn).or_else(|| {
        match (std::env::var("AWS_ACCOUNT_ID"), std::env::var("AWS_REGION")) {
            (Ok(account), Ok(region)) if !account.is_empty() && !region.is_empty() => {
                Some(Home { account, region })
            }
            _ => None,
        }
    });
    if home.is_none() {
        tracing::warn!(
            arn = %invoked_function_arn,
            "the invoked function ARN names no account and region: no event from outside is trusted"
        );
    }
    Trust {
        home,
        alarm_name_prefix: std::env::var("ALARM_NAME_PREFIX")
            .unwrap_or_else(|_| DEFAULT_ALARM_NAME_PREFIX.to_string()),
    }
}
