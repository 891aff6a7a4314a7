//! CloudWatch Embedded Metric Format: one JSON line per invocation, which Lambda's log
//! pipeline turns into metrics (namespace `CloudFailover`, dimension `Function`).

use chrono::Utc;
use serde_json::{json, Value};

use crate::engine::answer::Answer;
use crate::engine::failover::FailoverError;

/// Metric namespace.
pub const NAMESPACE: &str = "CloudFailover";

/// The EMF document for one handler result.
pub fn emf(function: &str, result: &Result<Answer, FailoverError>) -> Value {
    let (planned, executed, failed, refusals, duration) = match result {
        Ok(answer) => match answer.report() {
            Some(r) => {
                let outcomes = &r.record.outcomes;
                let verified = outcomes.iter().filter(|o| o.verified).count();
                (
                    r.record.operations.len(),
                    verified,
                    outcomes.len() - verified,
                    0,
                    r.record.duration_ms.filter(|_| !outcomes.is_empty()),
                )
            }
            // A skip or an ignored event: nothing planned.
            None => (0, 0, 0, 0, None),
        },
        Err(FailoverError::Refused(_)) => (0, 0, 0, 1, None),
        Err(_) => (0, 0, 0, 0, None),
    };
    let mut metrics = vec![
        json!({"Name": "Runs", "Unit": "Count"}),
        json!({"Name": "OperationsPlanned", "Unit": "Count"}),
        json!({"Name": "OperationsExecuted", "Unit": "Count"}),
        json!({"Name": "OperationsFailed", "Unit": "Count"}),
        json!({"Name": "Refusals", "Unit": "Count"}),
        json!({"Name": "Errors", "Unit": "Count"}),
    ];
    let mut doc = json!({
        "_aws": {
            "Timestamp": Utc::now().timestamp_millis(),
            "CloudWatchMetrics": [{"Namespace": NAMESPACE, "Dimensions": [["Function"]], "Metrics": []}],
        },
        "Function": function,
        "Runs": 1,
        "OperationsPlanned": planned,
        "OperationsExecuted": executed,
        "OperationsFailed": failed,
        "Refusals": refusals,
        "Errors": u8::from(result.is_err()),
    });
    if let Some(ms) = duration {
        metrics.push(json!({"Name": "FailoverDuration", "Unit": "Milliseconds"}));
        doc["FailoverDuration"] = ms.into();
    }
    if let Ok(answer) = result {
        doc["Status"] = answer.status().as_str().into();
    }
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] = metrics.into();
    doc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::answer::Ignored;
    use crate::engine::declaration::Declaration;
    use crate::engine::execute::{CallStatus, Outcome};
    use crate::engine::failover::{run, RunOutcome};
    use crate::engine::request::{Mode, RunRequest, TargetSpec};
    use crate::lab::SEED_B;
    use crate::memory::MemoryCloud;

    const AFTER: &str = include_str!("../../../../examples/seed-article/declaration-after.json");

    /// A run of two operations, one verified and one not, as the failover function answers it.
    async fn executed() -> Answer {
        let cloud = MemoryCloud::seed();
        let req = RunRequest::new(TargetSpec::Instance(SEED_B.into()), Mode::DryRun, "test");
        let decl = Declaration::parse(AFTER).unwrap();
        let Ok(RunOutcome::Completed(mut r)) = run(&cloud, &cloud, &decl, req).await else {
            panic!("no plan");
        };
        assert_eq!(r.record.operations.len(), 2);
        r.record.mode = Mode::Execute;
        r.record.duration_ms = Some(812);
        r.record.outcomes = r
            .record
            .operations
            .iter()
            .enumerate()
            .map(|(i, op)| Outcome {
                operation: op.id.clone(),
                status: CallStatus::Succeeded,
                error: None,
                verified: i == 0,
                millis: 1,
                attempts: 1,
                in_flight: false,
                may_have_landed: true,
            })
            .collect();
        Answer::from(RunOutcome::Completed(r))
    }

    #[tokio::test]
    async fn executed_run_reports_duration_and_counts() {
        let d = emf("failover", &Ok(executed().await));
        assert_eq!(d["OperationsPlanned"], 2);
        assert_eq!(d["OperationsExecuted"], 1);
        assert_eq!(d["OperationsFailed"], 1);
        assert_eq!(d["FailoverDuration"], 812);
        assert_eq!(d["Status"], "SUCCEEDED");
        let names: Vec<&str> = d["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"FailoverDuration"));
        let r = emf("failover", &Err(FailoverError::Refused(vec!["x".into()])));
        assert_eq!(r["Refusals"], 1);
        assert_eq!(r["Errors"], 1);
        assert!(r.get("FailoverDuration").is_none());
        assert!(r.get("Status").is_none());
    }

    #[test]
    fn an_ignored_event_counts_a_run_and_nothing_else() {
        let ignored = Answer::Ignored(Ignored {
            reason: "not ours".into(),
            suspicious: false,
        });
        let d = emf("failover", &Ok(ignored));
        assert_eq!(d["Runs"], 1);
        assert_eq!(d["OperationsPlanned"], 0);
        assert_eq!(d["Errors"], 0);
        assert_eq!(d["Status"], "IGNORED");
        assert!(d.get("FailoverDuration").is_none());
    }
}
