//! The bad-input corpus (`tests/corpus/`, made by `scripts/gen-corpus.py`): every malformed
//! declaration and event gets a clear error naming the field, through the library, the
//! failover handler (typed error, zero mutating calls) and the CLI (non-zero exit).

use std::process::Command;

use failover_core::app::events;
use failover_core::app::handler::{handle, Invocation, Location};
use failover_core::engine::answer::{Answer, Ignored, Status};
use failover_core::engine::declaration::Encryption;
use failover_core::engine::ports::ObjectStore;
use failover_core::memory::MemoryCloud;
use failover_core::Declaration;

use crate::support::{invocation, repo_file};

const BUCKET: &str = "cfe-state-bigip-ha";

fn corpus(kind: &str) -> Vec<(String, String, String)> {
    let index = repo_file("tests/corpus/expected.tsv");
    index
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
        .filter(|(path, _)| path.starts_with(kind))
        .map(|(path, expect)| {
            let text = repo_file(&format!("tests/corpus/{path}"));
            (path.to_string(), text, expect.to_string())
        })
        .collect()
}

fn cli() -> Command {
    let mut c = crate::support::cloud_failover();
    // Loopback only: nothing here may reach a real endpoint (none is needed).
    c.args([
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--region",
        "us-east-1",
    ]);
    c
}

#[tokio::test]
async fn every_bad_declaration_is_named_and_touches_nothing() {
    let cases = corpus("declarations/");
    assert!(cases.len() >= 50, "{} declarations", cases.len());
    let alarm: serde_json::Value =
        serde_json::from_str(&repo_file("events/direct-execute.json")).unwrap();
    for (path, text, expect) in &cases {
        let err = Declaration::parse(text).expect_err(path).to_string();
        assert!(
            err.starts_with(expect.as_str()),
            "{path}: {err:?} does not start with {expect:?}"
        );

        let cloud = MemoryCloud::seed();
        cloud
            .put_object(
                BUCKET,
                "declaration.json",
                text.clone().into_bytes(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let loc = Location::S3 {
            bucket: BUCKET.into(),
            key: "declaration.json".into(),
        };
        cloud.reset_calls();
        let e = handle(&cloud, &cloud, &loc, &alarm, Invocation::default())
            .await
            .expect_err(path);
        assert_eq!(e.error_type(), "InvalidDeclaration", "{path}: {e}");
        assert_eq!(
            cloud.calls(),
            vec!["GetObject"],
            "{path}: only the declaration is read"
        );

        let file = format!("{}/tests/corpus/{path}", crate::support::ROOT);
        let out = cli().args(["validate", &file]).output().unwrap();
        assert!(!out.status.success(), "{path}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{path}: one line: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: invalid declaration: {expect}")),
            "{path}: {stderr}"
        );
    }
}

#[tokio::test]
async fn every_bad_event_is_named_and_touches_nothing() {
    let cases = corpus("events/");
    assert!(cases.len() >= 20, "{} events", cases.len());
    let decl_file = format!(
        "{}/examples/seed-article/declaration-after.json",
        crate::support::ROOT
    );
    for (path, text, expect) in &cases {
        let err = events::parse_text(text).expect_err(path).to_string();
        assert!(
            err.starts_with(expect.as_str()),
            "{path}: {err:?} does not start with {expect:?}"
        );

        if let Ok(value) = failover_core::engine::json::parse(text) {
            let cloud = MemoryCloud::seed();
            let loc = Location::File(decl_file.clone().into());
            let e = handle(&cloud, &cloud, &loc, &value, Invocation::default())
                .await
                .expect_err(path);
            assert_eq!(e.error_type(), "InvalidEvent", "{path}: {e}");
            assert!(cloud.calls().is_empty(), "{path}: {:?}", cloud.calls());
        }

        let file = format!("{}/tests/corpus/{path}", crate::support::ROOT);
        let out = cli()
            .args(["invoke", &file, "--declaration", &decl_file])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{path}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with(&format!("error: invalid event: {expect}")),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn huge_inputs_are_refused_by_size() {
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(1 << 20));
    let e = Declaration::parse(&big).unwrap_err().to_string();
    assert!(
        e.starts_with("declaration: is 1048587 bytes, more than the 1048576 allowed"),
        "{e}"
    );
    let e = events::parse_text(&big).unwrap_err().to_string();
    assert!(
        e.starts_with("event: is 1048587 bytes, more than the 262144 allowed"),
        "{e}"
    );
}

/// Every real CloudWatch alarm shape (`tests/corpus/alarms/`) through the failover handler:
/// the ones that name a member fail over (SUCCEEDED), the others answer IGNORED with the
/// reason and make no cloud call — never InvalidEvent, so nothing lands in the failure queue.
#[tokio::test]
async fn every_real_alarm_shape_is_answered_through_the_handler() {
    let index = repo_file("tests/corpus/alarms/expected.tsv");
    let decl = Location::File(
        format!(
            "{}/examples/seed-article/declaration-after.json",
            crate::support::ROOT
        )
        .into(),
    );
    let mut cases = 0;
    for (name, expect) in index
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('\t'))
    {
        let event: serde_json::Value =
            serde_json::from_str(&repo_file(&format!("tests/corpus/alarms/{name}"))).unwrap();
        let cloud = MemoryCloud::seed();
        let out = handle(&cloud, &cloud, &decl, &event, invocation(None))
            .await
            .unwrap_or_else(|e| panic!("{name}: {} {e}", e.error_type()));
        if let Some(start) = expect.strip_prefix("ignored: ") {
            let Answer::Ignored(Ignored { reason, .. }) = &out else {
                panic!("{name}: {out}")
            };
            assert!(reason.starts_with(start), "{name}: {reason}");
            assert!(cloud.calls().is_empty(), "{name}: {:?}", cloud.calls());
        } else {
            assert_eq!(out.status(), Status::Succeeded, "{name}: {out}");
        }
        cases += 1;
    }
    assert!(cases >= 14, "{cases} shapes");
}

/// The field's forged events: an SNS alarm with an unrelated name from another account and
/// region, and an "Appliance Active" from `source: evil.attacker`. Both executed failovers;
/// now both are IGNORED with the reason, making no cloud call.
#[tokio::test]
async fn forged_events_are_ignored_without_a_cloud_call() {
    let decl = Location::File(
        format!(
            "{}/examples/seed-article/declaration-after.json",
            crate::support::ROOT
        )
        .into(),
    );
    let forged_alarm = repo_file("events/alarm-sns.json")
        .replace("123456789012", "999999999999")
        .replace("us-east-1", "eu-west-1")
        .replace(
            "cloud-failover-i-055fd78af29715fbf-status",
            "ops-i-055fd78af29715fbf",
        );
    let forged_active =
        repo_file("events/appliance-active.json").replace("bigip.failover", "evil.attacker");
    let same_account_unrelated = repo_file("events/alarm-sns.json").replace(
        "cloud-failover-i-055fd78af29715fbf-status",
        "ops-i-055fd78af29715fbf",
    );
    for (what, text, reason) in [
        (
            "forged SNS alarm",
            forged_alarm,
            "the event comes from account 999999999999",
        ),
        (
            "evil.attacker",
            forged_active,
            "\"Appliance Active\" from source \"evil.attacker\"",
        ),
        (
            "unrelated alarm name",
            same_account_unrelated,
            "alarm \"ops-i-055fd78af29715fbf\" is neither",
        ),
    ] {
        let event: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cloud = MemoryCloud::seed();
        let out = handle(&cloud, &cloud, &decl, &event, invocation(None))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let Answer::Ignored(ignored) = &out else {
            panic!("{what}: {out}")
        };
        assert!(ignored.reason.starts_with(reason), "{what}: {out}");
        assert!(cloud.calls().is_empty(), "{what}: {:?}", cloud.calls());
    }
}
