//! The inspect Lambda: who is active, drift, the lock and the last runs (the same JSON as
//! `cloud-failover inspect`); for a fleet, every cluster's. Environment as for the failover
//! function.

use failover_core::app::handler::{handle_inspect, Scope};
use failover_functions::{diagnostic, lambda_setup, payload, RawEvent};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let cloud = &setup.cloud;
    let scope = &Scope::new(setup.declaration.clone());
    lambda_runtime::run(service_fn(move |event: RawEvent| async move {
        payload(event)?;
        handle_inspect(&cloud.ec2, &cloud.s3, scope)
            .await
            .map_err(diagnostic)
    }))
    .await
}
