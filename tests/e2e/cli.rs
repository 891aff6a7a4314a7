//! The `cloud-failover` binary: exit codes and one-line errors, and the seed's pitfall on moto.

use std::process::Command;

use failover_core::lab::{Topology, SEED_B};

use crate::moto::Moto;
use crate::support::*;

fn cli() -> Command {
    cloud_failover()
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
    // A stack deployed with that key (ScopingTagKey, known to the CLI as SCOPING_TAG_KEY)
    // agrees with the declaration, and then disagrees with the default key.
    let out = cli()
        .args(["validate", &file])
        .env("SCOPING_TAG_KEY", "F5_CLOUD_FAILOVER_LABEL")
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("stack's IAM policy"), "{err}");
    let seed = format!("{}/examples/seed-article/declaration-after.json", ROOT);
    let out = cli()
        .args(["validate", &seed, "--scoping-tag-key", "team_ha"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("resources tagged team_ha (ScopingTagKey)"),
        "{err}"
    );
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
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad argument exits 2, as clap's own"
    );
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--target: \"eni-1\" is not an instance id"));
}

/// CFE's AWS provider compared a route group's `scopingName` with route table ids
/// (abstract/cloud.js:225-244; awsProviderTests.js:1884 'update routes using route name', CFE
/// v2.4.0, commit 21356468): a table's name, like CFE's own placeholder `myroutetable-1`,
/// matched nothing and no route ever failed over. validate, declare, doctor and plan refuse
/// it alike when they read it, with the fix, and declare uploads nothing: its endpoint here
/// is a closed port, which any call would have reached first.
#[test]
fn a_route_table_given_by_name_is_refused_by_every_command() {
    let dir = std::env::temp_dir().join(format!("cf-rtb-name-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["myroutetable-1", "12345"] {
        let file = dir.join(format!("{name}.json"));
        let text = repo_file("examples/seed-article/declaration-after.json")
            .replace("rtb-060adeaa8fe5b2bbb", name);
        std::fs::write(&file, text).unwrap();
        let file = file.to_string_lossy().to_string();
        let want = format!(
            "failoverRoutes.routeGroupDefinitions[0].scopingName: \"{name}\" is not a route table id (rtb-…): "
        );
        let commands: [&[&str]; 4] = [
            &["validate", &file],
            &[
                "declare",
                &file,
                "--to",
                "s3://cfe-state-bigip-ha/cloud-failover/declaration.json",
            ],
            &["doctor", "--declaration", &file],
            &["plan", "--declaration", &file, "--target", SEED_B],
        ];
        for args in commands {
            let out = cli()
                .args([
                    "--endpoint-url",
                    "http://127.0.0.1:9",
                    "--region",
                    "us-east-1",
                ])
                .args(args)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
            assert!(err.contains(&want), "{args:?}: {err}");
            assert!(
                err.contains("aws ec2 describe-route-tables --filters Name=tag:Name,Values="),
                "{args:?}: {err}"
            );
            assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        }
    }
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
    let run = |args: &[&str]| cli_on(&moto.endpoint, args);
    calls.clear();
    // The route is left out (its next hop is a VIP), the EIP would move: PARTIAL, exit 11.
    let out = run(&["plan", "--declaration", &snat_none, "--target", &b]);
    assert_eq!(
        out.status.code(),
        Some(11),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// On moto through the binary: an exit code per outcome, `--target peer`,
/// `unlock`, `reset`, `history`, and no panic on a closed stdout.
#[tokio::test(flavor = "multi_thread")]
async fn operator_commands_and_exit_codes() {
    use failover_core::engine::declaration::Encryption;
    use failover_core::engine::ports::ObjectStore;
    use failover_core::lab::SEED_A;
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let topo = Topology::seed();
    let after_text = repo_file("examples/seed-article/declaration-after.json");
    let (ids, _) = lab_with(&cloud, &topo, &after_text).await;
    let dir = std::env::temp_dir().join(format!("cf-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, ids.rewrite(text)).unwrap();
        p.to_string_lossy().to_string()
    };
    let after = write("after.json", &after_text);
    let snat_none = write(
        "snat-none.json",
        &repo_file("examples/seed-article/cfe-snat-none.json"),
    );
    let mut v: serde_json::Value = serde_json::from_str(&after_text).unwrap();
    let storage = v["externalStorage"].as_object_mut().unwrap();
    storage.remove("scopingTags");
    storage.insert("scopingName".into(), "no-such-bucket".into());
    let nowhere = write("nowhere.json", &v.to_string());
    let fresh_b_stops = || {
        write(
            "b-stops.json",
            &repo_file("events/ec2-state-change.json").replace(SEED_A, SEED_B),
        )
    };
    let fresh_ok = || write("ok.json", &repo_file("events/alarm-ok-eventbridge.json"));
    let (a, b) = (ids.real(SEED_A).to_string(), ids.real(SEED_B).to_string());
    let run = |args: &[&str]| cli_on(&moto.endpoint, args);
    let code = |args: &[&str]| {
        let out = run(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };

    // --target peer: the other member of the one followed (A): B.
    let (c, out, err) = code(&["execute", "--declaration", &after, "--target", "peer"]);
    assert_eq!(c, Some(0), "{out}{err}");
    assert!(out.contains(&format!("\"target\": \"{b}\"")), "{out}");
    // An operator's execute is forced, and by whom is recorded (STS).
    assert!(out.contains("\"forced\": true"), "{out}");
    assert!(out.contains("cloud-failover execute by arn:aws:"), "{out}");
    // Right after, back to A: obeyed although within the cooldown.
    let (c, out, err) = code(&["execute", "--declaration", &after, "--target", &a]);
    assert_eq!(c, Some(0), "{out}{err}");
    let (c, out, err) = code(&["execute", "--declaration", &after, "--target", &b]);
    assert_eq!(c, Some(0), "{out}{err}");

    // A trigger saying the followed unit (B) failed, inside the cooldown: deferred (exit 10),
    // so Lambda retries it rather than dropping it.
    // (Events are dated when written: after the operator's commands above, which are
    // decisions in time too.)
    let b_stops = fresh_b_stops();
    let (c, _, err) = code(&["invoke", &b_stops, "--declaration", &after]);
    assert_eq!(c, Some(10), "{err}");
    assert!(err.contains("COOLDOWN"), "{err}");

    // IGNORED, exit 5; refused, exit 6; drift, exit 7; no bucket, exit 8; PARTIAL, exit 11.
    let ok_event = fresh_ok();
    let (c, _, err) = code(&["invoke", &ok_event, "--declaration", &after]);
    assert_eq!(c, Some(5), "{err}");
    let (c, _, err) = code(&[
        "execute",
        "--declaration",
        &snat_none,
        "--target",
        &a,
        "--force",
    ]);
    assert_eq!(c, Some(11), "{err}");
    assert!(err.contains("failover PARTIAL"), "{err}");
    let (c, _, err) = code(&[
        "execute",
        "--declaration",
        &after,
        "--target",
        "i-0123456789abcdef0",
        "--force",
    ]);
    assert_eq!(c, Some(6), "{err}");
    // The PARTIAL run moved the EIP to A and left the route on B: drift.
    let (c, _, err) = code(&["inspect", "--declaration", &after]);
    assert_eq!(c, Some(7), "{err}");
    let (c, _, err) = code(&["state", "--declaration", &nowhere]);
    assert_eq!(c, Some(8), "{err}");

    // history --failed: the refusal and the PARTIAL run, not the successes.
    let (c, out, _) = code(&["history", "--declaration", &after, "--failed"]);
    assert_eq!(c, Some(0));
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");
    assert_eq!(runs[0]["taskState"], "FAILED");
    assert_eq!(
        runs[0]["target"], "i-0123456789abcdef0",
        "a refusal keeps its target"
    );
    assert_eq!(runs[1]["taskState"], "PARTIAL");
    // The table names who did what, to the second, with host names beside instance ids.
    let (_, table, _) = code(&["history", "--declaration", &after, "--output", "table"]);
    assert!(
        table.contains("cloud-failover execute by arn:aws:"),
        "{table}"
    );
    let first = table.lines().next().unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&first[..20], "%Y-%m-%dT%H:%M:%SZ").is_ok(),
        "{table}"
    );
    assert!(table.contains(&format!("→ {b} (")), "{table}");
    let (_, out, _) = code(&["history", "--declaration", &after]);
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 5, "{runs:#}");

    // A live lock: IN_PROGRESS (3); unlock refuses (9) unless forced.
    let lock = serde_json::json!({
        "owner": "other-run", "acquiredAt": "2026-11-29T00:00:00Z",
        "expiresAt": (chrono::Utc::now() + chrono::Duration::seconds(300)).to_rfc3339(),
        "released": false, "writeId": "w"
    });
    cloud
        .s3
        .put_object(
            &topo.bucket.name,
            &failover_core::engine::keys::lock_key("default"),
            serde_json::to_vec(&lock).unwrap(),
            &Encryption::None,
            None,
        )
        .await
        .unwrap();
    let (c, _, err) = code(&[
        "execute",
        "--declaration",
        &after,
        "--target",
        &a,
        "--force",
    ]);
    assert_eq!(c, Some(3), "{err}");
    let (c, _, err) = code(&["unlock", "--declaration", &after]);
    assert_eq!(c, Some(9), "{err}");
    assert!(err.contains("other-run"), "{err}");
    // A crashed run also leaves its members' lock (taken beside the cluster's): reset --force
    // releases both, or every run would answer IN_PROGRESS until its lease ran out.
    let members = failover_core::engine::lock::members_lock_name(&[a.clone(), b.clone()], None);
    cloud
        .s3
        .put_object(
            &topo.bucket.name,
            &failover_core::engine::keys::lock_key(&members),
            serde_json::to_vec(&lock).unwrap(),
            &Encryption::None,
            None,
        )
        .await
        .unwrap();
    // reset --force: the lock released and the state a clean slate, so no cooldown either.
    let (c, _, err) = code(&["reset", "--declaration", &after, "--force"]);
    assert_eq!(c, Some(0), "{err}");
    let (_, state, _) = code(&["state", "--declaration", &after]);
    assert!(state.contains("Reset by cloud-failover reset"), "{state}");
    let b_stops = fresh_b_stops();
    let (c, out, err) = code(&["invoke", &b_stops, "--declaration", &after]);
    assert_eq!(c, Some(0), "{out}{err}");

    // CFE itself failing over (its own state file, RUNNING): reset refuses without --force.
    let cfe_running = serde_json::json!({
        "taskState": "RUNNING", "message": "Failover running",
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "instance": "failover01.www.non-97.net", "failoverOperations": {}
    });
    cloud
        .s3
        .put_object(
            &topo.bucket.name,
            &failover_core::engine::keys::state_object(
                "default",
                failover_core::engine::declaration::DEFAULT_STATE_FILE,
            ),
            serde_json::to_vec(&cfe_running).unwrap(),
            &Encryption::None,
            None,
        )
        .await
        .unwrap();
    let (c, _, err) = code(&["reset", "--declaration", &after]);
    assert_eq!(c, Some(9), "{err}");
    assert!(err.contains("CFE on failover01.www.non-97.net"), "{err}");
    let (c, _, err) = code(&["reset", "--declaration", &after, "--force"]);
    assert_eq!(c, Some(0), "{err}");

    // A closed stdout is no panic (exit 101): SIGPIPE ends the process quietly.
    let mut child = cli()
        .args([
            "history",
            "--declaration",
            &after,
            "--endpoint-url",
            &moto.endpoint,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A closed stderr does not end a failover half way (adversarial review): the run
    // finishes and records its outcome, with every log line dropped.
    let mut child = cli()
        .args(["--log-level", "debug", "execute", "--declaration", &after])
        .args(["--target", "peer", "--endpoint-url", &moto.endpoint])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let (_, state, _) = code(&["state", "--declaration", &after]);
    assert!(state.contains("\"taskState\": \"SUCCEEDED\""), "{state}");
}

/// `invoke` trusts what the Lambda trusts: events from the caller's own account (STS
/// GetCallerIdentity, moto's 123456789012) and region. The sample alarm fails over; the same
/// alarm from another region, or under `--region` of another region, is IGNORED.
#[tokio::test(flavor = "multi_thread")]
async fn invoke_trusts_the_callers_account_and_region() {
    let Some(moto) = Moto::start() else { return };
    let (cloud, _) = moto.cloud().await;
    let (topo, ids, _) = seed_lab(&cloud).await;
    let uri = format!("s3://{}/{DECLARATION_KEY}", topo.bucket.name);
    let dir = std::env::temp_dir().join(format!("cf-invoke-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let alarm = dir.join("alarm.json");
    std::fs::write(&alarm, ids.rewrite(&repo_file("events/alarm-sns.json"))).unwrap();
    let invoke = |region: &str| {
        let out = cli()
            .args(["invoke", alarm.to_str().unwrap(), "--declaration", &uri])
            .args(["--endpoint-url", &moto.endpoint, "--region", region])
            .output()
            .unwrap();
        let v = serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        // IGNORED exits 5, success 0 (README "Exit codes").
        let want = if v["status"] == "IGNORED" { 5 } else { 0 };
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        v
    };
    let out = invoke("eu-west-1");
    assert_eq!(out["status"], "IGNORED", "{out}");
    assert!(
        out["reason"].as_str().unwrap().starts_with(
            "the event comes from region us-east-1, not this function's region eu-west-1"
        ),
        "{out}"
    );
    let out = invoke("us-east-1");
    assert_eq!(out["status"], "SUCCEEDED", "{out}");
}

#[test]
fn empty_variables_are_unset_and_the_emulator_needs_an_endpoint() {
    let file = format!("{ROOT}/examples/seed-article/declaration-after.json");
    // `export SCOPING_TAG_KEY=$(…)` that found nothing, an empty emulator variable: as unset.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-failover"))
        .args(["validate", &file])
        .env("SCOPING_TAG_KEY", "")
        .env("CLOUD_FAILOVER_EMULATOR", "")
        .env("AWS_ENDPOINT_URL", "")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Dummy credentials are never sent to AWS: without an endpoint the switch is ignored.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cloud-failover"))
        .args([
            "--emulator",
            "moto",
            "--region",
            "us-east-1",
            "inspect",
            "--declaration",
            &file,
        ])
        .env_remove("AWS_ENDPOINT_URL")
        // No credentials anywhere: the call fails before anything is sent.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--emulator without --endpoint-url is ignored"),
        "{err}"
    );
    assert!(!out.status.success());
    assert!(!err.contains("testing"), "no dummy credentials: {err}");
}
