//! The health-probe Lambda (scheduled every minute): probes the members for one window and
//! fails over in process; for a fleet, every cluster that declares a probe, at once.
//! Environment as for the failover function.

use failover_core::fleet::Fleet;
use failover_core::handler::{handle_probe, handle_probe_fleet};
use failover_functions::{diagnostic, invocation, lambda_setup, payload, RawEvent};
use lambda_runtime::{service_fn, Error};
use serde_json::Value;
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, declaration) = (&setup.cloud, &setup.declaration);
    let fleet = &Mutex::new(Fleet::new(declaration.clone()));
    lambda_runtime::run(service_fn(move |event: RawEvent| async move {
        let event = payload(event)?;
        let inv = invocation(event.context.request_id, event.context.deadline);
        let answer = if declaration.is_fleet() {
            let mut fleet = fleet.lock().await;
            handle_probe_fleet(&cloud.ec2, &cloud.s3, &mut fleet, inv)
                .await
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        } else {
            handle_probe(&cloud.ec2, &cloud.s3, declaration, inv)
                .await
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        };
        answer.map_err(diagnostic)
    }))
    .await
}
