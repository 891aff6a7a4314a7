//! Shared steps: build the lab, upload a declaration, read the cloud back through the SDK.

use aws_sdk_ec2::types::Filter;
use failover_core::app::events::{Home, Trust};
use failover_core::app::handler::{Invocation, Location};
use failover_core::aws::AwsCloud;
use failover_core::engine::answer::Answer;
use failover_core::engine::declaration::Encryption;
use failover_core::engine::ports::ObjectStore;
use failover_core::engine::state::RunRecord;
use failover_core::lab::Topology;
use failover_lab::builder::{self as lab, LabIds};
use serde_json::Value;

/// Where tests keep the declaration in the lab bucket.
pub const DECLARATION_KEY: &str = "declarations/cluster.json";

/// The repository root (this test target belongs to crates/cli).
pub const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A file of the repository, as text; a sample event's times moved to now (`lab::fresh`:
/// an event older than `serverless.maxEventAgeSeconds` is not acted on).
pub fn repo_file(rel: &str) -> String {
    let text = std::fs::read_to_string(format!("{ROOT}/{rel}")).unwrap();
    if rel.starts_with("events/") || rel.starts_with("tests/corpus/") {
        failover_core::lab::fresh(&text)
    } else {
        text
    }
}

/// Creates `topo`, uploads the declaration file `decl` rewritten to the emulator's ids.
pub async fn lab_with(cloud: &AwsCloud, topo: &Topology, decl: &str) -> (LabIds, Location) {
    let ids = lab::create(cloud, topo).await.expect("lab");
    let text = ids.rewrite(decl);
    cloud
        .s3
        .put_object(
            &topo.bucket.name,
            DECLARATION_KEY,
            text.into_bytes(),
            &Encryption::None,
            None,
        )
        .await
        .unwrap();
    let loc = Location::S3 {
        bucket: topo.bucket.name.clone(),
        key: DECLARATION_KEY.into(),
    };
    (ids, loc)
}

/// The field report's topology with the working declaration (`declaration-after.json`).
pub async fn seed_lab(cloud: &AwsCloud) -> (Topology, LabIds, Location) {
    let topo = Topology::seed();
    let decl = repo_file("examples/seed-article/declaration-after.json");
    let (ids, loc) = lab_with(cloud, &topo, &decl).await;
    (topo, ids, loc)
}

/// An event file from `events/`, rewritten to the emulator's ids.
pub fn event(ids: &LabIds, name: &str) -> Value {
    serde_json::from_str(&ids.rewrite(&repo_file(&format!("events/{name}")))).unwrap()
}

/// The ENI a route points at, read through the SDK.
pub async fn route_target(cloud: &AwsCloud, table: &str, dest: &str) -> Option<String> {
    let out = cloud
        .ec2
        .client()
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("route-table-id")
                .values(table)
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.route_tables()[0]
        .routes()
        .iter()
        .find(|r| {
            r.destination_cidr_block() == Some(dest)
                || r.destination_ipv6_cidr_block() == Some(dest)
        })
        .and_then(|r| r.network_interface_id().map(str::to_string))
}

/// The ENI an EIP is associated with (moto reports no reliable private IP: compare ENIs).
pub async fn eip_eni(cloud: &AwsCloud, allocation_id: &str) -> Option<String> {
    let out = cloud
        .ec2
        .client()
        .describe_addresses()
        .allocation_ids(allocation_id)
        .send()
        .await
        .unwrap();
    out.addresses()[0]
        .network_interface_id()
        .map(str::to_string)
}

/// The state file, parsed.
pub async fn state_file(cloud: &AwsCloud, bucket: &str) -> Option<Value> {
    cloud
        .s3
        .get_object(
            bucket,
            &failover_core::engine::keys::state_object(
                "default",
                failover_core::engine::declaration::DEFAULT_STATE_FILE,
            ),
        )
        .await
        .unwrap()
        .map(|o| serde_json::from_slice(&o.body).unwrap())
}

/// Runs the failover handler on an event file of `events/` (ids rewritten to the lab's).
pub async fn on(
    cloud: &AwsCloud,
    loc: &Location,
    ids: &LabIds,
    name: &str,
) -> Result<Answer, failover_core::FailoverError> {
    failover_core::app::handler::handle(
        &cloud.ec2,
        &cloud.s3,
        loc,
        &event(ids, name),
        invocation(None),
    )
    .await
}

/// The run record of a SUCCEEDED or DRY_RUN answer (any other fails the test).
pub fn record(answer: &Answer) -> &RunRecord {
    &answer
        .report()
        .unwrap_or_else(|| panic!("no run report: {answer}"))
        .record
}

/// moto's account and the lab's region: where the sample events say they come from.
pub fn home() -> Home {
    Home {
        account: "123456789012".into(),
        region: "us-east-1".into(),
    }
}

/// An invocation of the function deployed in [`home`], with the stack's default prefix.
pub fn invocation(request_id: Option<&str>) -> Invocation {
    Invocation {
        request_id: request_id.map(str::to_string),
        deadline: None,
        trust: Trust::at(home()),
        budget: None,
    }
}

/// `cloud-failover ARGS` against the moto server at `endpoint`, run to its end.
pub fn cli_on(endpoint: &str, args: &[&str]) -> std::process::Output {
    cloud_failover()
        .args(args)
        .args(["--endpoint-url", endpoint, "--region", "us-east-1"])
        .output()
        .unwrap()
}

/// The `cloud-failover` binary, told that its endpoints are moto (`--endpoint-url` alone no
/// longer turns the emulator's shims on).
pub fn cloud_failover() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-failover"));
    c.env(failover_core::aws::EMULATOR_ENV, "moto");
    c
}
