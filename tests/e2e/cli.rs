//! The `cloud-failover` binary: exit codes and one-line errors, and the seed's pitfall on moto.

use std::process::Command;

use failover_core::lab::{Topology, SEED_B};

use crate::moto::Moto;
use crate::support::*;

fn cli() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cloud-failover"))
}

#[test]
fn validate_prints_what_loads_but_deserves_a_look() {
    // F5's OpenAPI form ("enabled": "true") and a scoping key the stack's IAM does not allow.
    let file = format!(
        "{}/tests/corpus/cfe/v0.9-example-string-ranges.json",
        crate::support::ROOT
    );
    let out = cli().args(["validate", &file]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(
            "warning: failoverRoutes.scopingAddressRanges[0]: a plain string is CFE 0.9's form"
        ),
        "{err}"
    );
    assert!(err.contains("warning: failoverAddresses.scopingTags scopes by F5_CLOUD_FAILOVER_LABEL but the stack's IAM policy allows changes only to resources tagged f5_cloud_failover_label"), "{err}");
    let file = format!(
        "{}/tests/corpus/cfe/v2.5-openapi-tag-discovery.json",
        crate::support::ROOT
    );
    let out = cli().args(["validate", &file]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("warning: failoverAddresses.enabled: a string (\"true\") read as true"),
        "{err}"
    );
}

#[test]
fn validate_names_the_json_path_of_a_broken_declaration() {
    let dir = std::env::temp_dir().join(format!("cf-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    let text = repo_file("examples/seed-article/declaration-after.json")
        .replace("\"0.0.0.0/0\"", "\"10.0.0.0/33\"");
    std::fs::write(&bad, text).unwrap();
    let out = cli().arg("validate").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim(),
        "error: invalid declaration: failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].range: \"10.0.0.0/33\" is not a CIDR"
    );
    let good = format!(
        "{}/examples/seed-article/declaration-after.json",
        crate::support::ROOT
    );
    let out = cli()
        .args(["validate", &good, "--output", "table"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout).unwrap().contains("valid"));
    let out = cli()
        .args(["plan", "--declaration", &good, "--target", "eni-1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--target: \"eni-1\" is not an instance id"));
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_refuses_vips_as_next_hops_and_execute_then_inspect() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, calls) = moto.cloud().await;
    let topo = Topology::seed();
    let (ids, _) = lab_with(&cloud, &topo, "{}").await;
    let dir = std::env::temp_dir().join(format!("cf-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, src: &str| {
        let p = dir.join(name);
        std::fs::write(&p, ids.rewrite(&repo_file(src))).unwrap();
        p.to_string_lossy().to_string()
    };
    let snat_none = write("snat-none.json", "examples/seed-article/cfe-snat-none.json");
    let after = write("after.json", "examples/seed-article/declaration-after.json");
    let b = ids.real(SEED_B).to_string();
    let run = |args: &[&str]| {
        cli()
            .args(args)
            .args(["--endpoint-url", &moto.endpoint, "--region", "us-east-1"])
            .output()
            .unwrap()
    };
    calls.clear();
    let out = run(&["plan", "--declaration", &snat_none, "--target", &b]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("next hop 10.0.4.101 is a secondary IP"),
        "{err}"
    );
    assert!(err.contains("primary private IP (10.0.4.11)"), "{err}");

    // Upload with `declare`, then execute from S3 and inspect.
    let uri = format!("s3://{}/declarations/after.json", topo.bucket.name);
    let out = run(&["declare", &after, "--to", &uri]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "execute",
        "--declaration",
        &uri,
        "--target",
        &b,
        "--output",
        "table",
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("SUCCEEDED execute"), "{text}");
    let out = run(&["inspect", "--declaration", &uri]);
    let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["active"], b.as_str());
    assert_eq!(view["drift"], false);
    assert_eq!(view["lastState"]["taskState"], "SUCCEEDED");
}
