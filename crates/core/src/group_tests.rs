//! Failover groups (`serverless.groups`, active-active) end to end on the in-memory cloud:
//! `examples/active-active/` (BIG-IP, traffic-group-1 active on A while traffic-group-2 is
//! active on B). Each group fails over alone, on its own announcement, under its own lock;
//! a unit leaving moves every group active on it; each group fails back to its home unit;
//! inspect shows each group's active unit. Everything goes through the failover function's
//! own entry (`handle_pair`) with events as AWS and the appliance send them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use crate::app::events::{Home, Trust};
use crate::app::handler::{handle_inspect, handle_pair, Invocation, Reply, Scope};
use crate::app::location::Location;
use crate::engine::answer::Answer;
use crate::engine::declaration::{Declaration, Encryption};
use crate::engine::failover::FailoverError;
use crate::engine::keys::state_object;
use crate::lab::Topology;
use crate::memory::MemoryCloud;
use crate::profile_tests::{differences, Expected};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
const TG1: &str = "traffic-group-1";
const TG2: &str = "traffic-group-2";

/// `examples/active-active/profile.json`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Profile {
    #[allow(dead_code)]
    about: Vec<String>,
    topology: Topology,
    units: [String; 2],
    /// Each group's items while each unit holds it.
    groups: BTreeMap<String, BTreeMap<String, Expected>>,
    /// Each group's home unit (its `failbackTo`).
    home: BTreeMap<String, String>,
}

struct Pair {
    p: Profile,
    cloud: MemoryCloud,
    loc: Location,
    inv: Invocation,
    bucket: String,
}

impl Pair {
    /// The example's pair, its declaration written with `patch` applied.
    fn new(name: &str, patch: impl FnOnce(&mut Value)) -> Pair {
        let dir = Path::new(ROOT).join("examples/active-active");
        let p: Profile =
            serde_json::from_str(&std::fs::read_to_string(dir.join("profile.json")).unwrap())
                .unwrap();
        let mut decl: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("declaration.json")).unwrap())
                .unwrap();
        patch(&mut decl);
        let file: PathBuf =
            std::env::temp_dir().join(format!("cf-groups-{name}-{}.json", std::process::id()));
        std::fs::write(&file, decl.to_string()).unwrap();
        let cloud = MemoryCloud::from_topology(&p.topology);
        let bucket = p.topology.bucket.name.clone();
        Pair {
            p,
            cloud,
            loc: Location::File(file),
            inv: Invocation {
                trust: Trust::at(Home {
                    account: "123456789012".into(),
                    region: "us-east-1".into(),
                }),
                ..Invocation::default()
            },
            bucket,
        }
    }

    fn unit(&self, i: usize) -> &str {
        &self.p.units[i]
    }

    /// Where the cloud differs from "`group` is active on `unit`".
    async fn off(&self, group: &str, unit: &str) -> Vec<String> {
        differences(&self.cloud, &self.p.groups[group][unit]).await
    }

    async fn assert_active(&self, group: &str, unit: &str) {
        let off = self.off(group, unit).await;
        assert!(off.is_empty(), "{group} is not on {unit}: {off:?}");
    }

    /// Each answer to `event`, by cluster key.
    async fn send(&self, event: Value) -> BTreeMap<String, Result<Answer, FailoverError>> {
        let reply = handle_pair(
            &self.cloud,
            &self.cloud,
            &self.loc,
            &event,
            self.inv.clone(),
        )
        .await
        .unwrap();
        self.cloud.settle();
        let Reply::Fleet(report) = reply else {
            panic!("a grouped declaration answers per group")
        };
        report
            .clusters
            .into_iter()
            .map(|c| (c.cluster.unwrap_or_default(), c.result))
            .collect()
    }

    /// The declaration as written to its file.
    fn text(&self) -> String {
        match &self.loc {
            Location::File(f) => std::fs::read_to_string(f).unwrap(),
            other => unreachable!("{other}"),
        }
    }

    /// Lock `name`, taken as another run (`owner`) takes it.
    async fn hold(&self, name: &str, owner: &str) -> crate::engine::lock::Acquire<'_> {
        crate::engine::lock::acquire(
            &self.cloud,
            &self.bucket,
            name,
            owner,
            None,
            std::time::Duration::from_secs(60),
            &Encryption::Aes256,
        )
        .await
        .unwrap()
    }

    /// An operator's run (forced) of `d` to `target`.
    async fn run(&self, d: &Declaration, target: &str) -> crate::engine::failover::RunOutcome {
        let mut req = crate::engine::request::RunRequest::new(
            crate::engine::request::TargetSpec::Instance(target.to_string()),
            crate::engine::request::Mode::Execute,
            "test",
        );
        req.force = true;
        let out = crate::engine::failover::run(&self.cloud, &self.cloud, d, req)
            .await
            .unwrap();
        self.cloud.settle();
        out
    }

    /// The key of `group`'s cluster.
    fn key(&self, group: &str) -> String {
        format!("{}#{group}", self.loc)
    }
}

/// An "Appliance Active" event from `unit`, for `group` (BIG-IP's own field names it).
fn announcement(unit: &str, group: Option<&str>) -> Value {
    let text = crate::lab::fresh(
        &std::fs::read_to_string(format!("{ROOT}/events/appliance-active.json")).unwrap(),
    );
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["detail"]["instanceId"] = unit.into();
    match group {
        Some(g) => v["detail"]["trafficGroup"] = format!("/Common/{g}").into(),
        None => {
            v["detail"].as_object_mut().unwrap().remove("trafficGroup");
        }
    }
    v
}

/// An EC2 state change of `unit` to `state`.
fn state_change(unit: &str, state: &str) -> Value {
    let text = crate::lab::fresh(
        &std::fs::read_to_string(format!("{ROOT}/events/ec2-state-change.json")).unwrap(),
    );
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["detail"]["instance-id"] = unit.into();
    v["detail"]["state"] = state.into();
    v["resources"][0] = format!("arn:aws:ec2:us-east-1:123456789012:instance/{unit}").into();
    v
}

fn succeeded(r: &Result<Answer, FailoverError>) -> bool {
    matches!(r, Ok(Answer::Succeeded(_)))
}

/// The acceptance test of issue 26's item 6: two groups fail over independently.
#[tokio::test(start_paused = true)]
async fn two_groups_fail_over_independently() {
    let pair = Pair::new("independent", |_| {});
    let (a, b) = (pair.unit(0).to_string(), pair.unit(1).to_string());
    assert_eq!(
        (pair.p.home[TG1].as_str(), pair.p.home[TG2].as_str()),
        (a.as_str(), b.as_str())
    );
    // GIVEN traffic-group-1 on A and traffic-group-2 on B
    pair.assert_active(TG1, &a).await;
    pair.assert_active(TG2, &b).await;
    // inspect shows each group's active unit
    let Reply::Fleet(view) =
        handle_inspect(&pair.cloud, &pair.cloud, &Scope::new(pair.loc.clone()))
            .await
            .unwrap()
    else {
        panic!("one picture per group")
    };
    let active: BTreeMap<String, Option<String>> = view
        .clusters
        .iter()
        .map(|c| {
            (
                c.cluster.clone().unwrap(),
                c.result.as_ref().unwrap().active.clone(),
            )
        })
        .collect();
    assert_eq!(
        active,
        BTreeMap::from([
            (pair.key(TG1), Some(a.clone())),
            (pair.key(TG2), Some(b.clone()))
        ])
    );

    // ... and lists the group's own items only: its Elastic IP and its table's route
    for c in &view.clusters {
        let v = c.result.as_ref().unwrap();
        let group = c.cluster.as_deref().unwrap().rsplit('#').next().unwrap();
        let want = &pair.p.groups[group][v.active.as_deref().unwrap()];
        let routes: Vec<&str> = v.routes.iter().map(|r| r.route_table_id.as_str()).collect();
        assert_eq!(routes, [want.routes[0].0.as_str()], "{group}");
        assert_eq!(v.elastic_ips.len(), 1, "{group}: {:?}", v.elastic_ips);
    }

    // WHEN B announces it became active for traffic-group-1
    pair.cloud.reset_calls();
    let answers = pair.send(announcement(&b, Some(TG1))).await;
    // THEN only traffic-group-1's cluster answers, and only its items moved
    assert_eq!(answers.keys().collect::<Vec<_>>(), [&pair.key(TG1)]);
    assert!(succeeded(&answers[&pair.key(TG1)]), "{answers:?}");
    pair.assert_active(TG1, &b).await;
    pair.assert_active(TG2, &b).await;
    assert_eq!(
        pair.cloud.mutation_count(),
        2,
        "the group's EIP and route only"
    );
    // Each group's state file is its own (cluster <clusterName>.<group>).
    let state = |g: &str| {
        pair.cloud.object(
            &pair.bucket,
            &state_object(&format!("bigip-aa.{g}"), "f5cloudfailoverstate.json"),
        )
    };
    assert!(state(TG1).is_some() && state(TG2).is_none());

    // An announcement that names no group, or a group the pair lacks, moves nothing and
    // says which field to set.
    pair.cloud.reset_calls();
    for (group, says) in [
        (None, "names no failover group"),
        (Some("tg9"), "\"tg9\", which its pair"),
    ] {
        let answers = pair.send(announcement(&a, group)).await;
        let e = answers
            .values()
            .next()
            .unwrap()
            .as_ref()
            .unwrap_err()
            .to_string();
        assert!(e.contains(says) && e.contains("detail.group"), "{e}");
    }
    assert_eq!(pair.cloud.mutation_count(), 0);

    // WHEN traffic-group-2's lock is held by another run, A announces both groups
    let decl = Declaration::parse(&pair.text()).unwrap();
    assert!(decl.is_grouped());
    let held = pair.hold(&format!("bigip-aa.{TG2}"), "another-run").await;
    assert!(matches!(held, crate::engine::lock::Acquire::Held(_)));
    let tg2 = pair.send(announcement(&a, Some(TG2))).await;
    let tg1 = pair.send(announcement(&a, Some(TG1))).await;
    // THEN traffic-group-2 waits for its lock (the announcement is retried), while
    // traffic-group-1, under a lock of its own, moves back to A
    assert!(
        matches!(&tg2[&pair.key(TG2)], Err(FailoverError::Deferred { .. })),
        "{tg2:?}"
    );
    assert!(succeeded(&tg1[&pair.key(TG1)]), "{tg1:?}");
    pair.assert_active(TG1, &a).await;
    pair.assert_active(TG2, &b).await;
    if let crate::engine::lock::Acquire::Held(lease) = held {
        lease.release().await.unwrap();
    }
    let tg2 = pair.send(announcement(&a, Some(TG2))).await;
    assert!(succeeded(&tg2[&pair.key(TG2)]), "{tg2:?}");
    pair.assert_active(TG2, &a).await;
}

/// A unit leaving moves every group active on it, at once (each group under its own locks:
/// the members' lock is the group's too, or the second group would wait a retry); its return
/// brings home the groups whose `failbackTo` it is, and only those.
#[tokio::test(start_paused = true)]
async fn a_unit_leaving_moves_its_groups_and_each_fails_back_home() {
    // No cooldown between the two moves of traffic-group-1 (the default 60 s would, rightly,
    // hold an automatic failback that soon).
    let pair = Pair::new("home", |d| d["serverless"]["cooldownSeconds"] = 0.into());
    let (a, b) = (pair.unit(0).to_string(), pair.unit(1).to_string());
    // GIVEN both groups on A
    let answers = pair.send(announcement(&a, Some(TG2))).await;
    assert!(answers.values().all(succeeded), "{answers:?}");
    pair.assert_active(TG1, &a).await;
    pair.assert_active(TG2, &a).await;
    // WHEN A stops, EC2 answering as slowly as it does (the two groups' runs overlap)
    pair.cloud.delay("*", std::time::Duration::from_millis(50));
    pair.cloud.set_instance_state(&a, "stopped");
    pair.cloud.reset_calls();
    let answers = pair.send(state_change(&a, "stopping")).await;
    // THEN both groups' clusters answer, and both move to B
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.values().all(succeeded), "{answers:?}");
    pair.assert_active(TG1, &b).await;
    pair.assert_active(TG2, &b).await;
    assert_eq!(pair.cloud.mutation_count(), 4, "each group's EIP and route");
    // WHEN A runs again: traffic-group-1 fails back to its home, traffic-group-2 stays on B
    pair.cloud.set_instance_state(&a, "running");
    let answers = pair.send(state_change(&a, "running")).await;
    assert!(succeeded(&answers[&pair.key(TG1)]), "{answers:?}");
    assert!(
        matches!(answers.get(&pair.key(TG2)), Some(Ok(Answer::Ignored(_)))),
        "{answers:?}"
    );
    pair.assert_active(TG1, &a).await;
    pair.assert_active(TG2, &b).await;
}

/// An Elastic IP found by tag that no group names is never moved: the plan of each group
/// warns of it, doctor WARNs with the fix, and neither group's failover touches it.
#[tokio::test(start_paused = true)]
async fn an_elastic_ip_in_no_group_is_warned_of_and_left_alone() {
    // traffic-group-2 names a typo instead of its Elastic IP (52.0.6.2, tagged): in no group.
    let pair = Pair::new("nogroup", |d| {
        d["serverless"]["groups"][TG2]["addresses"] = serde_json::json!(["52.0.6.99"]);
    });
    let parts = Declaration::parse(&pair.text()).unwrap().per_group();
    let (a, b) = (pair.unit(0).to_string(), pair.unit(1).to_string());
    for (_, d) in &parts {
        let checks = crate::ops::doctor::doctor(
            &pair.cloud,
            &pair.cloud,
            d,
            crate::engine::declaration::LABEL_KEY,
            "declaration.json",
            &[],
        )
        .await
        .unwrap();
        let eips = checks.iter().find(|c| c.name == "elastic-ips").unwrap();
        assert_eq!(eips.verdict, crate::ops::doctor::Verdict::Warn, "{eips:?}");
        assert!(
            eips.detail.contains("52.0.6.2 is in no failover group"),
            "{eips:?}"
        );
        // The typo, under its own group only.
        let typo = "address 52.0.6.99 of group traffic-group-2 is no Elastic IP in scope";
        assert_eq!(
            eips.detail.contains(typo),
            d.extension.group.as_deref() == Some(TG2),
            "{eips:?}"
        );
    }
    // traffic-group-2 to A: its route moves, the Elastic IP in no group stays on B.
    let tg2 = &parts
        .iter()
        .find(|(g, _)| g.as_deref() == Some(TG2))
        .unwrap()
        .1;
    let out = pair.run(tg2, &a).await;
    let crate::engine::failover::RunOutcome::Completed(r) = out else {
        panic!("{out:?}")
    };
    assert!(
        r.plan
            .warnings
            .iter()
            .any(|w| w.contains("address 52.0.6.2 is in no failover group")),
        "{:?}",
        r.plan.warnings
    );
    let want = &pair.p.groups[TG2];
    assert!(differences(
        &pair.cloud,
        &Expected {
            eips: vec![],
            ..want[&a].clone()
        }
    )
    .await
    .is_empty());
    assert!(differences(
        &pair.cloud,
        &Expected {
            routes: vec![],
            ..want[&b].clone()
        }
    )
    .await
    .is_empty());
}

/// A pair's groups run beside each other, never beside a run of the same pair under another
/// name: the whole pair (the declaration before groups were added), or a group this
/// declaration does not name (renamed mid-run). Such a run holds its members' lock; the
/// group's run steps aside (the announcement is retried), and so does the whole pair's run
/// beside a live group's.
#[tokio::test(start_paused = true)]
async fn a_group_never_runs_beside_the_same_pair_under_another_name() {
    let pair = Pair::new("renamed", |_| {});
    let members = [pair.unit(0).to_string(), pair.unit(1).to_string()];
    let b = members[1].clone();
    for other in [None, Some("traffic-group-old")] {
        let name = crate::engine::lock::members_lock_name(&members, other);
        let held = pair.hold(&name, "a-run-under-another-name").await;
        pair.cloud.reset_calls();
        let answers = pair.send(announcement(&b, Some(TG1))).await;
        match &answers[&pair.key(TG1)] {
            Err(FailoverError::Deferred { message, .. }) => {
                assert!(message.contains(&name), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(pair.cloud.mutation_count(), 0, "{other:?}");
        if let crate::engine::lock::Acquire::Held(lease) = held {
            lease.release().await.unwrap();
        }
    }
    // The whole pair's run (a declaration without groups) beside a live group's lock.
    let name = crate::engine::lock::members_lock_name(&members, Some(TG2));
    let _held = pair.hold(&name, "a-group-run").await;
    let mut whole: Value = serde_json::from_str(&pair.text()).unwrap();
    whole["serverless"]
        .as_object_mut()
        .unwrap()
        .remove("groups");
    let whole = Declaration::from_value(&whole).unwrap();
    match pair.run(&whole, &b).await {
        crate::engine::failover::RunOutcome::Skipped(s) => {
            assert!(s.message.contains(&name), "{}", s.message)
        }
        other => panic!("{other:?}"),
    }
    // A sibling group's live lock (traffic-group-2, of this declaration) does not stop it.
    let answers = pair.send(announcement(&b, Some(TG1))).await;
    assert!(answers.values().all(succeeded), "{answers:?}");
}

/// One pair in two declarations of a fleet, one with groups and one without: an event for its
/// units is neither's, whatever group it names (the grouped pair's other groups would be
/// moved by the ungrouped one). An operator naming a group of a pair that has none is refused.
#[tokio::test(start_paused = true)]
async fn a_pair_in_a_grouped_and_an_ungrouped_declaration_is_neithers() {
    let pair = Pair::new("mixed", |_| {});
    let b = pair.unit(1).to_string();
    let dir = std::env::temp_dir().join(format!("cf-groups-mixed-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = pair.text();
    let mut whole: Value = serde_json::from_str(&text).unwrap();
    whole["serverless"] = serde_json::json!({"clusterName": "web"});
    std::fs::write(dir.join("aa.json"), &text).unwrap();
    std::fs::write(dir.join("web.json"), whole.to_string()).unwrap();
    let mut fleet = crate::app::fleet::Fleet::new(Location::Dir(dir.clone()));
    for group in [None, Some(TG1)] {
        pair.cloud.reset_calls();
        let answers = crate::app::handler::handle_fleet(
            &pair.cloud,
            &pair.cloud,
            &mut fleet,
            &[announcement(&b, group)],
            pair.inv.clone(),
        )
        .await;
        let e = answers[0][0].result.as_ref().unwrap_err().to_string();
        assert!(
            e.contains("claimed by more than one cluster"),
            "{group:?}: {e}"
        );
        assert_eq!(pair.cloud.mutation_count(), 0);
    }
    // A direct invoke naming a group, to the pair without groups.
    let web = Location::File(dir.join("web.json"));
    let direct = serde_json::json!({"action": "execute", "target": b, "group": TG1});
    let e = handle_pair(&pair.cloud, &pair.cloud, &web, &direct, pair.inv.clone())
        .await
        .unwrap_err();
    assert!(matches!(e, FailoverError::Refused(_)), "{e}");
    assert!(
        e.to_string().contains("names none (serverless.groups)"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The probe probes each group with the group's own settings: traffic-group-1's page on A
/// stops answering (A lost that group's service) while traffic-group-2's answers on both;
/// traffic-group-1 alone moves to B. (Real time: the probe's window, about two seconds.)
#[tokio::test]
async fn the_probe_fails_over_the_group_whose_unit_is_down_for_it() {
    let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = open.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = open.accept().await {
            drop(s);
        }
    });
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (a, b) = ("i-0aa0000000000000a", "i-0bb0000000000000b");
    let probe = |ta: &str, tb: &str| {
        serde_json::json!({"kind": "tcp", "intervalMs": 100, "timeoutMs": 200,
            "failuresToDown": 2, "successesToUp": 1, "targets": {a: ta, b: tb}})
    };
    let pair = Pair::new("probe", |d| {
        d["serverless"]["groups"][TG1]["probe"] = probe(&down, &up);
        d["serverless"]["groups"][TG2]["probe"] = probe(&up, &up);
    });
    let inv = Invocation {
        deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(7)),
        ..pair.inv.clone()
    };
    let reply = crate::app::handler::handle_probe(
        &pair.cloud,
        &pair.cloud,
        &Scope::new(pair.loc.clone()),
        inv,
    )
    .await
    .unwrap();
    pair.cloud.settle();
    let Reply::Fleet(report) = reply else {
        panic!("one probe per group")
    };
    let said: BTreeMap<String, Vec<String>> = report
        .clusters
        .into_iter()
        .map(|c| {
            let events = c
                .result
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.what)
                .collect();
            (c.cluster.unwrap(), events)
        })
        .collect();
    assert!(
        said[&pair.key(TG1)]
            .iter()
            .any(|w| w.starts_with(&format!("failover to {b}")) && w.contains("SUCCEEDED")),
        "{said:#?}"
    );
    assert!(
        !said[&pair.key(TG2)]
            .iter()
            .any(|w| w.starts_with("failover")),
        "{said:#?}"
    );
    pair.assert_active(TG1, b).await;
    pair.assert_active(TG2, b).await;
}
