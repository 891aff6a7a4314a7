//! The health-probe Lambda (scheduled every minute): probes the members for one window and
//! fails over in process. Environment as for the failover function.

use failover_core::handler::handle_probe;
use failover_functions::{diagnostic, invocation, lambda_setup};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, declaration) = (&setup.cloud, &setup.declaration);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let inv = invocation(event.context.request_id, event.context.deadline);
        handle_probe(&cloud.ec2, &cloud.s3, declaration, inv)
            .await
            .map_err(diagnostic)
    }))
    .await
}
