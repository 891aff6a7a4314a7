//! The failover Lambda: parse the event, call the library. Configuration comes from the
//! environment: `DECLARATION_URI` (s3://BUCKET/KEY, required) and, for local runs against an
//! emulator, `AWS_ENDPOINT_URL`.

use failover_core::handler::handle;
use failover_core::metrics;
use failover_functions::{diagnostic, invocation, lambda_setup, trust};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, declaration) = (&setup.cloud, &setup.declaration);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let mut inv = invocation(event.context.request_id, event.context.deadline);
        inv.trust = trust(&event.context.invoked_function_arn);
        let result = handle(&cloud.ec2, &cloud.s3, declaration, &event.payload, inv).await;
        // CloudWatch Embedded Metric Format: one line on stdout per invocation.
        println!("{}", metrics::emf("failover", &result));
        result.map_err(diagnostic)
    }))
    .await
}
