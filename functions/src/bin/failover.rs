//! The failover Lambda: parse the event, call the library. Configuration comes from the
//! environment: `DECLARATION_URI` (s3://BUCKET/KEY for one pair, s3://BUCKET/PREFIX/ for a
//! fleet) and, for local runs against an emulator, `AWS_ENDPOINT_URL`. A fleet's executor, or
//! any invocation by SQS, handles its events as a batch (`handle_fleet`); its index of the
//! fleet is kept between invocations.

use failover_core::app::handler::Scope;
use failover_core::aws;
use failover_functions::{invocation, lambda_setup, payload, respond, trust, RawEvent};
use lambda_runtime::{service_fn, Error};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let setup = lambda_setup().await?;
    setup.init_tracing();
    let (cloud, options) = (&setup.cloud, &setup.options);
    let scope = &Scope::new(setup.declaration.clone());
    // Made when a queue first invokes the function (no cold-start cost otherwise).
    let queue = &tokio::sync::OnceCell::new();
    lambda_runtime::run(service_fn(move |event: RawEvent| async move {
        let event = payload(event)?;
        let mut inv = invocation(event.context.request_id, event.context.deadline);
        inv.trust = trust(&event.context.invoked_function_arn);
        let queue = queue.get_or_init(|| aws::connect_queue(options));
        respond(cloud, scope, queue, event.payload, inv).await
    }))
    .await
}
