//! The inspect Lambda: who is active, drift, the lock and the last runs (the same JSON as
//! `cloud-failover inspect`); for a fleet, every cluster's. Environment as for the failover
//! function.

use failover_core::fleet::Fleet;
use failover_core::handler::{handle_inspect, handle_inspect_fleet};
use failover_functions::{diagnostic, lambda_setup, payload, RawEvent};
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
        payload(event)?;
        let answer = if declaration.is_fleet() {
            let mut fleet = fleet.lock().await;
            handle_inspect_fleet(&cloud.ec2, &cloud.s3, &mut fleet)
                .await
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        } else {
            handle_inspect(&cloud.ec2, &cloud.s3, declaration)
                .await
                .map(|v| serde_json::to_value(v).unwrap_or(Value::Null))
        };
        answer.map_err(diagnostic)
    }))
    .await
}
