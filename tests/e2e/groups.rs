//! Failover groups (`serverless.groups`) on moto through the CLI binary:
//! `examples/active-active/` (traffic-group-1 on A, traffic-group-2 on B), its routes (moto
//! ignores AssociateAddress's PrivateIpAddress, so the Elastic IPs' VIPs cannot be shown
//! here: the in-memory tests, `group_tests`, move them). inspect and doctor show one cluster
//! per group with its active unit; an announcement moves its group only; `execute` needs
//! `FILE#GROUP`; each group keeps its own history.

use failover_core::lab::Topology;
use serde_json::Value;

use crate::moto::Moto;
use crate::support::*;

const A: &str = "i-0aa0000000000000a";
const B: &str = "i-0bb0000000000000b";
const RTB1: &str = "rtb-0aa00000000000001";
const RTB2: &str = "rtb-0aa00000000000002";
const A_INT: &str = "eni-0aa000000000002";
const B_INT: &str = "eni-0bb000000000002";

#[tokio::test(flavor = "multi_thread")]
async fn each_group_fails_over_on_its_own_through_the_cli() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _calls) = moto.cloud().await;
    let profile: Value =
        serde_json::from_str(&repo_file("examples/active-active/profile.json")).unwrap();
    let topo: Topology = serde_json::from_value(profile["topology"].clone()).unwrap();
    let mut decl: Value =
        serde_json::from_str(&repo_file("examples/active-active/declaration.json")).unwrap();
    decl["failoverAddresses"]["enabled"] = false.into();
    for g in ["traffic-group-1", "traffic-group-2"] {
        decl["serverless"]["groups"][g]
            .as_object_mut()
            .unwrap()
            .remove("addresses");
    }
    let (ids, loc) = lab_with(&cloud, &topo, &decl.to_string()).await;
    let uri = loc.to_string();
    let run = |args: &[&str]| {
        let out = cli_on(&moto.endpoint, &[args, &["--output", "json"]].concat());
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (a, b) = (ids.real(A).to_string(), ids.real(B).to_string());
    let key = |g: &str| format!("{uri}#{g}");

    // inspect: one picture per group, each naming its active unit.
    let (c, out, err) = run(&["inspect", "--declaration", &uri]);
    assert_eq!(c, Some(0), "{out}{err}");
    let view: Value = serde_json::from_str(&out).unwrap();
    let active: Vec<(String, String)> = view["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["declaration"].as_str().unwrap().to_string(),
                c["active"].as_str().unwrap_or("none").to_string(),
            )
        })
        .collect();
    assert_eq!(
        active,
        [
            (key("traffic-group-1"), a.clone()),
            (key("traffic-group-2"), b.clone())
        ],
        "{view:#}"
    );

    // B announces traffic-group-1 (BIG-IP's own field): its route moves, the other stays.
    let dir = std::env::temp_dir().join(format!("cf-groups-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut event = crate::support::event(&ids, "appliance-active.json");
    event["detail"]["instanceId"] = b.clone().into();
    event["detail"]["trafficGroup"] = "/Common/traffic-group-1".into();
    let file = dir.join("announce.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let (c, out, err) = run(&["invoke", file.to_str().unwrap(), "--declaration", &uri]);
    assert_eq!(c, Some(0), "{out}{err}");
    let answers: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        answers["answers"].as_array().unwrap().len(),
        1,
        "{answers:#}"
    );
    assert_eq!(answers["answers"][0]["declaration"], key("traffic-group-1"));
    assert_eq!(answers["answers"][0]["status"], "SUCCEEDED", "{answers:#}");
    let (rtb1, rtb2) = (ids.real(RTB1), ids.real(RTB2));
    let (a_int, b_int) = (ids.real(A_INT), ids.real(B_INT));
    assert_eq!(
        route_target(&cloud, rtb1, "0.0.0.0/0").await.as_deref(),
        Some(b_int)
    );
    assert_eq!(
        route_target(&cloud, rtb2, "0.0.0.0/0").await.as_deref(),
        Some(b_int)
    );

    // An announcement naming no group moves nothing and names the field.
    event["detail"]
        .as_object_mut()
        .unwrap()
        .remove("trafficGroup");
    event["detail"]["instanceId"] = a.clone().into();
    std::fs::write(&file, event.to_string()).unwrap();
    let (c, out, err) = run(&["invoke", file.to_str().unwrap(), "--declaration", &uri]);
    assert_ne!(c, Some(0), "{out}{err}");
    assert!(format!("{out}{err}").contains("detail.group"), "{out}{err}");
    assert_eq!(
        route_target(&cloud, rtb1, "0.0.0.0/0").await.as_deref(),
        Some(b_int)
    );

    // execute acts on one group: FILE#GROUP, else a usage error naming the groups.
    let (c, _, err) = run(&["execute", "--declaration", &uri, "--target", &a]);
    assert_eq!(c, Some(2), "{err}");
    assert!(err.contains("traffic-group-1, traffic-group-2"), "{err}");
    let (c, out, err) = run(&[
        "execute",
        "--declaration",
        &key("traffic-group-2"),
        "--target",
        &a,
    ]);
    assert_eq!(c, Some(0), "{out}{err}");
    assert_eq!(
        route_target(&cloud, rtb2, "0.0.0.0/0").await.as_deref(),
        Some(a_int)
    );
    assert_eq!(
        route_target(&cloud, rtb1, "0.0.0.0/0").await.as_deref(),
        Some(b_int)
    );

    // Each group's history is its own (cluster bigip-aa.<group>).
    for (g, target) in [("traffic-group-1", &b), ("traffic-group-2", &a)] {
        let (c, out, err) = run(&["history", "--declaration", &key(g)]);
        assert_eq!(c, Some(0), "{out}{err}");
        let runs: Value = serde_json::from_str(&out).unwrap();
        let runs = runs.as_array().unwrap();
        assert_eq!(runs.len(), 1, "{g}: {runs:#?}");
        assert_eq!(runs[0]["target"], target.as_str(), "{g}");
    }

    // doctor: one cluster per group, each with the unit the cloud follows for it.
    let (_, out, err) = run(&["doctor", "--declaration", &uri]);
    let doc: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{doc:#}");
    for (c, unit) in clusters.iter().zip([&b, &a]) {
        let text = c.to_string();
        assert!(text.contains(unit.as_str()), "{c:#}");
    }
}
