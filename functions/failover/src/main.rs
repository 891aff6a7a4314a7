//! The failover Lambda: parse the event, call the library. Configuration comes from the
//! environment: `DECLARATION_URI` (s3://BUCKET/KEY, required) and, for local runs against an
//! emulator, `AWS_ENDPOINT_URL`.

use failover_core::aws::{self, AwsOptions};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use failover_core::handler::{handle, Invocation, Location};
use failover_core::metrics;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let declaration: Location = std::env::var("DECLARATION_URI")
        .map_err(|_| "DECLARATION_URI is not set (expected s3://BUCKET/KEY)")?
        .parse()
        .map_err(|e| format!("DECLARATION_URI: {e}"))?;
    let cloud = aws::connect(&AwsOptions {
        region: None,
        endpoint_url: std::env::var("AWS_ENDPOINT_URL").ok(),
    })
    .await;
    let (cloud, declaration) = (&cloud, &declaration);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let invocation = Invocation {
            deadline: deadline(event.context.deadline),
            request_id: Some(event.context.request_id),
        };
        let result = handle(
            &cloud.ec2,
            &cloud.s3,
            declaration,
            &event.payload,
            invocation,
        )
        .await;
        // CloudWatch Embedded Metric Format: one line on stdout per invocation.
        println!("{}", metrics::emf("failover", &result));
        result.map_err(|e| Diagnostic {
            error_type: e.error_type().to_string(),
            error_message: e.to_string(),
        })
    }))
    .await
}

/// Lambda's deadline (ms since the epoch) as an `Instant`.
fn deadline(epoch_ms: u64) -> Option<Instant> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
    let left = Duration::from_millis(epoch_ms).checked_sub(now)?;
    Some(Instant::now() + left)
}
