//! The inspect Lambda: who is active, drift, the lock and the last runs (the same JSON as
//! `cloud-failover inspect`). Environment as for the failover function.

use failover_core::handler::handle_inspect;
use failover_functions::{diagnostic, lambda_setup};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, declaration) = (&setup.cloud, &setup.declaration);
    lambda_runtime::run(service_fn(move |_event: LambdaEvent<Value>| async move {
        handle_inspect(&cloud.ec2, &cloud.s3, declaration)
            .await
            .map_err(diagnostic)
    }))
    .await
}
