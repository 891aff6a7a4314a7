//! The health-probe Lambda (scheduled every minute): probes the members for one window and
//! fails over in process; for a fleet, every cluster that declares a probe, at once.
//! Environment as for the failover function.

use failover_core::app::handler::{handle_probe, Scope};
use failover_functions::{diagnostic, invocation, lambda_setup, payload, RawEvent};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let cloud = &setup.cloud;
    let scope = &Scope::new(setup.declaration.clone());
    lambda_runtime::run(service_fn(move |event: RawEvent| async move {
        let event = payload(event)?;
        let inv = invocation(event.context.request_id, event.context.deadline);
        handle_probe(&cloud.ec2, &cloud.s3, scope, inv)
            .await
            .map_err(diagnostic)
    }))
    .await
}
