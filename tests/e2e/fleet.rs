//! On moto: a fleet of six pairs in one account (a VPC each, all with one addressing
//! plan; three sharing one state bucket), their declarations under one prefix, failed over by
//! concurrent alarms through the fleet's executor and the real SDK.

use std::collections::BTreeSet;

use failover_core::app::fleet::ClusterResult;
use failover_core::app::fleet::Fleet;
use failover_core::app::handler::handle_fleet;
use failover_core::app::location::Location;
use failover_core::aws::AwsCloud;
use failover_core::engine::answer::Answer;
use failover_core::engine::answer::Status;
use failover_core::engine::declaration::Encryption;
use failover_core::engine::ports::ObjectStore;
use failover_core::lab::{fleet_member, FleetMember, SEED_A};
use failover_lab::builder::{self as lab, LabIds};
use serde_json::Value;

use crate::moto::Moto;
use crate::support::*;

/// The state bucket three clusters share (and where the fleet's declarations are).
const SHARED: &str = "fleet-shared";

/// Every id-like token of `text` (`rtb-…`, `eni-…`, `eipalloc-…`, `i-…`).
fn ids_in(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|t| {
            ["rtb-", "eni-", "eipalloc-", "i-"]
                .iter()
                .any(|p| t.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// `count` pairs built on moto, their declarations under `s3://fleet-shared/fleet/` (the
/// first three keep their state in that bucket too).
async fn fleet_lab(cloud: &AwsCloud, count: usize) -> Vec<(FleetMember, LabIds)> {
    cloud
        .s3
        .client()
        .create_bucket()
        .bucket(SHARED)
        .send()
        .await
        .unwrap();
    let mut members: Vec<(FleetMember, LabIds)> = Vec::new();
    for n in 0..count {
        let mut m = fleet_member(n, 2, 3);
        if n < 3 {
            m.declaration_json["externalStorage"]["scopingName"] = SHARED.into();
        }
        let ids = lab::create(cloud, &m.topology).await.expect("lab");
        let text = ids.rewrite(&m.declaration_json.to_string());
        cloud
            .s3
            .put_object(
                SHARED,
                &format!("fleet/pair-{n}.json"),
                text.into_bytes(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        members.push((m, ids));
    }
    members
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fleet_fails_over_by_concurrent_alarms_each_cluster_on_its_own() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, log) = moto.cloud().await;
    let members = fleet_lab(&cloud, 6).await;
    let alarm = |(m, ids): &(FleetMember, LabIds)| -> Value {
        let text =
            repo_file("events/alarm-eventbridge.json").replace(SEED_A, &m.topology.instances[0].id);
        serde_json::from_str(&ids.rewrite(&text)).unwrap()
    };
    let location: Location = format!("s3://{SHARED}/fleet/").parse().unwrap();

    // Four alarms reach the executor in one batch while two more reach a second invocation.
    log.clear();
    let batch: Vec<Value> = members[..4].iter().map(alarm).collect();
    let other: Vec<Value> = members[4..].iter().map(alarm).collect();
    let (mut one, mut two) = (Fleet::new(location.clone()), Fleet::new(location));
    let (a, b) = tokio::join!(
        handle_fleet(&cloud.ec2, &cloud.s3, &mut one, &batch, invocation(None)),
        handle_fleet(&cloud.ec2, &cloud.s3, &mut two, &other, invocation(None)),
    );
    let answers: Vec<ClusterResult<Answer>> = a
        .into_iter()
        .chain(b)
        .map(|mut v| {
            assert_eq!(v.len(), 1, "{v:?}");
            v.remove(0)
        })
        .collect();

    let mut planned = 0;
    for (n, (answer, (m, ids))) in answers.iter().zip(&members).enumerate() {
        assert_eq!(
            answer.cluster.as_deref(),
            Some(format!("fleet/pair-{n}.json").as_str())
        );
        let a = answer
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("pair {n}: {e}"));
        assert_eq!(a.status(), Status::Succeeded, "pair {n}: {a}");
        let report = a.report().unwrap();
        assert_eq!(report.record.target, ids.real(&m.standby), "pair {n}");
        planned += report.plan.operations.len();
        // Only this cluster's resources in its plan.
        let own: BTreeSet<String> = ids.0.values().cloned().collect();
        for op in &report.plan.operations {
            let touched = ids_in(&serde_json::to_string(&op.action).unwrap());
            assert!(
                touched.is_subset(&own),
                "pair {n} touches another's: {touched:?}"
            );
        }
        // Its EIP and every table follow its own standby.
        assert_eq!(
            eip_eni(&cloud, ids.real(&m.topology.elastic_ips[0].allocation_id))
                .await
                .as_deref(),
            Some(ids.real(&m.standby_eni)),
            "pair {n}"
        );
        for t in &m.tables {
            for dest in ["0.0.0.0/0", "172.16.0.0/24", "172.16.1.0/24"] {
                assert_eq!(
                    route_target(&cloud, ids.real(t), dest).await.as_deref(),
                    Some(ids.real(&m.standby_eni)),
                    "pair {n} {t} {dest}"
                );
            }
        }
        // Its own state file, also in the shared bucket.
        let bucket = if n < 3 {
            SHARED.to_string()
        } else {
            m.topology.bucket.name.clone()
        };
        let key = failover_core::engine::keys::state_object(
            &format!("fleet-{n}"),
            "f5cloudfailoverstate.json",
        );
        let state = cloud
            .s3
            .get_object(&bucket, &key)
            .await
            .unwrap()
            .expect("state file");
        let state: Value = serde_json::from_slice(&state.body).unwrap();
        assert_eq!(
            state["serverless"]["cluster"],
            format!("fleet-{n}"),
            "{state}"
        );
    }
    assert_eq!(planned, 6 * (1 + 2 * 3));
    assert_eq!(log.mutation_count(), planned, "{:?}", log.calls());
}

/// `doctor` and `inspect` over a fleet: every cluster under its heading, then the fleet's own
/// checks; a second declaration claiming a pair's units fails them, naming both.
#[tokio::test(flavor = "multi_thread")]
async fn doctor_and_inspect_cover_every_cluster_of_the_fleet() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let members = fleet_lab(&cloud, 3).await;
    let run = |command: &str| {
        let out = cloud_failover()
            .args([
                command,
                "--declaration",
                "s3://fleet-shared/fleet/",
                "--output",
                "table",
            ])
            .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run("inspect");
    assert_eq!(code, Some(0), "{out}{err}");
    for n in 0..3 {
        assert!(
            out.contains(&format!(
                "== fleet/pair-{n}.json ==\ncluster fleet-{n} · active: "
            )),
            "{out}"
        );
    }
    let (_, out, err) = run("doctor");
    assert!(out.contains("== fleet ==\n"), "{out}");
    assert!(out.contains("PASS  fleet-members"), "{out}{err}");
    assert!(out.contains("PASS  fleet-declarations"), "{out}{err}");
    // JSON: one document.
    let json = cloud_failover()
        .args(["inspect", "--declaration", "s3://fleet-shared/fleet/"])
        .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&json.stdout).expect("one JSON document");
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3, "{doc}");
    assert_eq!(clusters[2]["declaration"], "fleet/pair-2.json");
    assert_eq!(clusters[2]["cluster"], "fleet-2", "{doc}");
    assert!(doc["broken"].is_object(), "{doc}");

    // invoke over the fleet, JSON: one document, each answer naming its declaration.
    let (m, ids) = &members[0];
    let event = std::env::temp_dir().join(format!("cf-fleet-alarm-{}.json", std::process::id()));
    let text =
        repo_file("events/alarm-eventbridge.json").replace(SEED_A, &m.topology.instances[0].id);
    std::fs::write(&event, ids.rewrite(&text)).unwrap();
    let out = cloud_failover()
        .args([
            "invoke",
            event.to_str().unwrap(),
            "--declaration",
            "s3://fleet-shared/fleet/",
        ])
        .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(
        doc["answers"][0]["declaration"], "fleet/pair-0.json",
        "{doc}"
    );
    assert_eq!(doc["answers"][0]["status"], "SUCCEEDED", "{doc}");
    assert_eq!(doc["answers"][0]["cluster"], "fleet-0", "{doc}");
    std::fs::remove_file(&event).unwrap();

    let mut twin = m.declaration_json.clone();
    twin["serverless"]["clusterName"] = "pair-0-again".into();
    cloud
        .s3
        .put_object(
            SHARED,
            "fleet/pair-0-again.json",
            ids.rewrite(&twin.to_string()).into_bytes(),
            &Encryption::None,
            None,
        )
        .await
        .unwrap();
    let (code, out, err) = run("doctor");
    assert_eq!(code, Some(1), "{out}{err}");
    let a = ids.real(&m.topology.instances[0].id);
    assert!(
        out.contains("FAIL  fleet-members")
            && out.contains(&format!(
                "{a} is a member of fleet/pair-0-again.json and fleet/pair-0.json"
            )),
        "{out}"
    );
}

/// The executor has a failed message delivered again sooner than the queue's visibility
/// timeout: ChangeMessageVisibility through the shipped adapter (its queue URL made from
/// the event's queue ARN), on moto's SQS.
#[tokio::test(flavor = "multi_thread")]
async fn a_failed_message_comes_back_when_the_executor_says() {
    use failover_core::engine::ports::Queue;
    let Some(moto) = Moto::start() else { return };
    let tooling = failover_core::aws::connect_queue_tooling(&moto.options()).await;
    let sqs = tooling.client();
    let url = sqs
        .create_queue()
        .queue_name("cloud-failover-fleet")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sqs.send_message()
        .queue_url(&url)
        .message_body(repo_file("events/alarm-eventbridge.json"))
        .send()
        .await
        .unwrap();
    let receive = || async {
        sqs.receive_message()
            .queue_url(&url)
            .visibility_timeout(1800)
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default()
    };
    let first = receive().await;
    let handle = first[0].receipt_handle.clone().unwrap();
    assert!(
        receive().await.is_empty(),
        "hidden for the visibility timeout"
    );

    let queue = failover_core::aws::connect_queue(&moto.options()).await;
    queue
        .retry_after(&arn, &handle, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(receive().await.len(), 1, "delivered again at once");
}

/// Adding a pair by `declare` (docs/fleet.md) with a copy-paste slip, its `clusterName`
/// another pair's in the same bucket: refused before the upload, since the newcomer would be
/// left out of the fleet; `validate --against` a fleet's directory fails the same way.
#[tokio::test(flavor = "multi_thread")]
async fn declare_refuses_a_pair_that_would_clash_with_the_fleet() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let members = fleet_lab(&cloud, 2).await;
    let dir = std::env::temp_dir().join(format!("cf-fleet-declare-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("fleet")).unwrap();
    let (m1, ids1) = &members[1];
    let mut slip = m1.declaration_json.clone();
    slip["serverless"]["clusterName"] = "fleet-0".into();
    let web1 = dir.join("web1.json");
    std::fs::write(&web1, ids1.rewrite(&slip.to_string())).unwrap();
    let (m0, ids0) = &members[0];
    std::fs::write(
        dir.join("fleet/pair-0.json"),
        ids0.rewrite(&m0.declaration_json.to_string()),
    )
    .unwrap();

    let out = cloud_failover()
        .args(["declare", web1.to_str().unwrap()])
        .args(["--to", "s3://fleet-shared/fleet/web1.json"])
        .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("not uploaded: s3://fleet-shared/fleet/web1.json would share a state file or lock with a declaration beside it: fleet/pair-0.json"),
        "{err}"
    );
    let there = cloud
        .s3
        .get_object(SHARED, "fleet/web1.json")
        .await
        .unwrap();
    assert!(there.is_none(), "nothing uploaded");

    let out = cloud_failover()
        .args(["validate", web1.to_str().unwrap(), "--against"])
        .arg(dir.join("fleet"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("pair-0.json: both declarations"));

    // A single pair's declaration, with its own CA bundle, replaced where it is: no fleet
    // beside it, so nothing of a fleet's rules applies.
    let mut own = m0.declaration_json.clone();
    own["trustedCertBundle"] = "/config/ssl/ssl.crt/ca-bundle.crt".into();
    let single = dir.join("single.json");
    std::fs::write(&single, ids0.rewrite(&own.to_string())).unwrap();
    for _ in 0..2 {
        let out = cloud_failover()
            .args(["declare", single.to_str().unwrap()])
            .args(["--to", "s3://fleet-shared/single/declaration.json"])
            .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
