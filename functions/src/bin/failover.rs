//! The failover Lambda: parse the event, call the library. Configuration comes from the
//! environment: `DECLARATION_URI` (s3://BUCKET/KEY for one pair, s3://BUCKET/PREFIX/ for a
//! fleet) and, for local runs against an emulator, `AWS_ENDPOINT_URL`. A fleet's executor, or
//! any invocation by SQS, handles its events as a batch (`handle_fleet`); its index of the
//! fleet is kept between invocations.

use failover_core::aws;
use failover_core::fleet::Fleet;
use failover_core::handler::handle;
use failover_core::metrics;
use failover_functions::{
    diagnostic, invocation, lambda_setup, payload, run_batch, trust, RawEvent,
};
use lambda_runtime::{service_fn, Error};
use serde_json::Value;
use tokio::sync::Mutex;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, declaration) = (&setup.cloud, &setup.declaration);
    let fleet = &Mutex::new(Fleet::new(declaration.clone()));
    // Made when a queue first invokes the function (no cold-start cost otherwise).
    let queue = &tokio::sync::OnceCell::new();
    let options = &setup.options;
    lambda_runtime::run(service_fn(move |event: RawEvent| async move {
        let event = payload(event)?;
        let mut inv = invocation(event.context.request_id, event.context.deadline);
        inv.trust = trust(&event.context.invoked_function_arn);
        let batch = failover_core::events::sqs_messages(&event.payload).is_some();
        if batch || declaration.is_fleet() {
            // One batch at a time (the fleet's function runs with a concurrency of 1).
            let mut fleet = fleet.lock().await;
            let queue = queue.get_or_init(|| aws::connect_queue(options)).await;
            return run_batch(&cloud.ec2, &cloud.s3, queue, &mut fleet, event.payload, inv).await;
        }
        let result = handle(&cloud.ec2, &cloud.s3, declaration, &event.payload, inv).await;
        // CloudWatch Embedded Metric Format: one line on stdout per invocation.
        println!("{}", metrics::emf("failover", &result));
        result
            .map(|a| serde_json::to_value(a).unwrap_or(Value::Null))
            .map_err(diagnostic)
    }))
    .await
}
