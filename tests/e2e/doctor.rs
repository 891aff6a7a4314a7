//! `doctor` names each pitfall of the field report, and `inspect` shows drift, on moto
//! through the CLI binary.

use std::process::Output;

use aws_sdk_ec2::types::{AttributeBooleanValue, Tag};
use failover_core::lab::{Topology, SEED_A, SEED_B_EXT, SEED_RTB};
use serde_json::Value;

use crate::moto::Moto;
use crate::support::*;

struct Lab {
    moto: Moto,
    dir: std::path::PathBuf,
}

impl Lab {
    fn run(&self, args: &[&str]) -> Output {
        crate::support::cli_on(&self.moto.endpoint, args)
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().to_string()
    }

    fn doctor(&self, decl: &str) -> (bool, Vec<Value>) {
        let out = self.run(&["doctor", "--declaration", &self.file(decl)]);
        let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
        (out.status.success(), checks.as_array().unwrap().clone())
    }
}

fn find<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks.iter().find(|c| c["name"] == name).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_pitfall_and_inspect_shows_drift() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let (ids, _) = lab_with(&cloud, &Topology::seed(), "{}").await;
    let dir = std::env::temp_dir().join(format!("cf-doctor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, src) in [
        ("after.json", "examples/seed-article/declaration-after.json"),
        ("snat-none.json", "examples/seed-article/cfe-snat-none.json"),
    ] {
        std::fs::write(dir.join(name), ids.rewrite(&repo_file(src))).unwrap();
    }
    let lab = Lab { moto, dir };
    let ec2 = cloud.ec2.client();

    // Healthy: no FAIL (the moto bucket has no default encryption: a WARN).
    calls.clear();
    let (ok, checks) = lab.doctor("after.json");
    assert!(ok, "{checks:#?}");
    assert_eq!(find(&checks, "next-hops-primary")["verdict"], "PASS");
    assert!(find(&checks, "permissions")["detail"]
        .as_str()
        .unwrap()
        .contains("DryRun allowed 1 call(s)"));

    // Pitfall 1: VIPs as next hops.
    let (ok, checks) = lab.doctor("snat-none.json");
    assert!(!ok);
    let c = find(&checks, "next-hops-primary");
    assert_eq!(c["verdict"], "FAIL");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains("declare 10.0.4.11 instead of 10.0.4.101"),
        "{c}"
    );

    // Pitfall 2: source/destination check left on.
    let b_ext = ids.real(SEED_B_EXT);
    ec2.modify_network_interface_attribute()
        .network_interface_id(b_ext)
        .source_dest_check(AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .unwrap();
    let (ok, checks) = lab.doctor("after.json");
    assert!(!ok);
    let c = find(&checks, "source-dest-check");
    assert_eq!(c["verdict"], "FAIL");
    assert!(c["detail"].as_str().unwrap().contains(b_ext), "{c}");
    ec2.modify_network_interface_attribute()
        .network_interface_id(b_ext)
        .source_dest_check(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();

    // Pitfall 3: the route table without its scoping tag.
    let rtb = ids.real(SEED_RTB);
    ec2.delete_tags()
        .resources(rtb)
        .tags(Tag::builder().key("f5_cloud_failover_label").build())
        .send()
        .await
        .unwrap();
    let (ok, checks) = lab.doctor("after.json");
    assert!(!ok);
    let c = find(&checks, "route-table-tag");
    assert_eq!(c["verdict"], "FAIL");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .contains(&format!("create-tags --resources {rtb}")),
        "{c}"
    );
    assert_eq!(calls.mutation_count(), 0, "doctor changes nothing");
    ec2.create_tags()
        .resources(rtb)
        .tags(
            Tag::builder()
                .key("f5_cloud_failover_label")
                .value("bigip_high_availability_solution")
                .build(),
        )
        .send()
        .await
        .unwrap();

    // The probe behind the appliance: in the web subnet, whose 0.0.0.0/0 the declaration
    // swaps, it reaches EC2 and S3 only through the unit (DescribeVpcEndpoints through the
    // SDK); with an S3 gateway endpoint and an EC2 interface endpoint, it does not.
    let web = ids.real("subnet-web-a");
    let probe = |lab: &Lab| -> Value {
        let out = lab.run(&[
            "doctor",
            "--declaration",
            &lab.file("after.json"),
            "--probe-subnets",
            web,
        ]);
        let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
        find(checks.as_array().unwrap(), "api-paths").clone()
    };
    let c = probe(&lab);
    assert_eq!(c["verdict"], "FAIL", "{c}");
    assert!(
        c["detail"].as_str().unwrap().contains(&format!(
            "probe subnet {web} reaches ec2 only through the appliance"
        )),
        "{c}"
    );
    let vpc = ids.real("vpc-0287f01407d1276f0");
    // An interface endpoint with private DNS in the web subnet.
    let interface_endpoint = |service: &'static str| {
        ec2.create_vpc_endpoint()
            .vpc_id(vpc)
            .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Interface)
            .service_name(format!("com.amazonaws.us-east-1.{service}"))
            .subnet_ids(web)
            .private_dns_enabled(true)
            .send()
    };
    ec2.create_vpc_endpoint()
        .vpc_id(vpc)
        .vpc_endpoint_type(aws_sdk_ec2::types::VpcEndpointType::Gateway)
        .service_name("com.amazonaws.us-east-1.s3")
        .route_table_ids(rtb)
        .send()
        .await
        .unwrap();
    interface_endpoint("ec2").await.unwrap();
    // The units' subnets use the VPC's main table, local routes only: no way to EventBridge
    // (a WARN while no announcement is on record), until an events endpoint serves them.
    let c = probe(&lab);
    assert_eq!(c["verdict"], "WARN", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("has no way to EventBridge")
            && !c["detail"].as_str().unwrap().contains("probe subnet"),
        "{c}"
    );
    interface_endpoint("events").await.unwrap();
    let c = probe(&lab);
    assert_eq!(c["verdict"], "PASS", "{c}");

    // Inspect: A is active; after a manual route change the route follows B: drift.
    let inspect = |lab: &Lab| -> Value {
        serde_json::from_slice(
            &lab.run(&["inspect", "--declaration", &lab.file("after.json")])
                .stdout,
        )
        .unwrap()
    };
    let v = inspect(&lab);
    assert_eq!(v["active"], ids.real(SEED_A));
    assert_eq!(v["drift"], false);
    assert_eq!(v["verdict"], "AGREES", "{v:#}");
    ec2.replace_route()
        .route_table_id(rtb)
        .destination_cidr_block("0.0.0.0/0")
        .network_interface_id(b_ext)
        .send()
        .await
        .unwrap();
    let v = inspect(&lab);
    assert_eq!(v["drift"], true, "{v:#}");
    assert_eq!(v["active"], Value::Null);
    assert_eq!(
        v["routes"][0]["member"],
        ids.real(failover_core::lab::SEED_B)
    );
    assert_eq!(v["elasticIps"][0]["member"], ids.real(SEED_A));
    assert_eq!(v["verdict"], "SPLIT", "{v:#}");
    let split = lab.run(&["inspect", "--declaration", &lab.file("after.json")]);
    assert_eq!(split.status.code(), Some(7));

    // The route back on A, then A stops and no trigger is delivered: the cloud follows a dead
    // unit. Inspect says so in its verdict and exit code (12), never "agrees".
    ec2.replace_route()
        .route_table_id(rtb)
        .destination_cidr_block("0.0.0.0/0")
        .network_interface_id(ids.real(failover_core::lab::SEED_A_EXT))
        .send()
        .await
        .unwrap();
    ec2.stop_instances()
        .instance_ids(ids.real(SEED_A))
        .send()
        .await
        .unwrap();
    let out = lab.run(&["inspect", "--declaration", &lab.file("after.json")]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(v["verdict"], "FOLLOWS_DOWN", "{v:#}");
    assert_eq!(out.status.code(), Some(12), "{err}");
    assert!(
        err.contains("FOLLOWS_DOWN") && err.contains("goes nowhere"),
        "{err}"
    );

    // (An EIP on a VIP the scoping tags miss is doctor's `unscoped-eips` FAIL: tested on the
    // in-memory cloud, since moto ignores AssociateAddress's PrivateIpAddress and so never
    // puts an EIP on a VIP.)
}
