//! CloudWatch Embedded Metric Format: one JSON line per invocation, which Lambda's log
//! pipeline turns into metrics (namespace `CloudFailover`, dimension `Function`).

use chrono::Utc;
use serde_json::{json, Value};

use crate::failover::FailoverError;

/// Metric namespace.
pub const NAMESPACE: &str = "CloudFailover";

/// The EMF document for one handler result.
pub fn emf(function: &str, result: &Result<Value, FailoverError>) -> Value {
    let count = |v: &Value, key: &str| v[key].as_array().map_or(0, Vec::len);
    let (planned, executed, failed, refusals, duration) = match result {
        Ok(v) => {
            let outcomes = v["outcomes"].as_array().cloned().unwrap_or_default();
            let verified = outcomes.iter().filter(|o| o["verified"] == true).count();
            (
                count(v, "operations"),
                verified,
                outcomes.len() - verified,
                0,
                v["durationMs"].as_u64().filter(|_| !outcomes.is_empty()),
            )
        }
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
    if let Ok(v) = result {
        doc["Status"] = v["status"].clone();
    }
    doc["_aws"]["CloudWatchMetrics"][0]["Metrics"] = metrics.into();
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executed_run_reports_duration_and_counts() {
        let v = json!({"status": "SUCCEEDED", "operations": [1, 2], "durationMs": 812,
                       "outcomes": [{"verified": true}, {"verified": false}]});
        let d = emf("failover", &Ok(v));
        assert_eq!(d["OperationsPlanned"], 2);
        assert_eq!(d["OperationsExecuted"], 1);
        assert_eq!(d["OperationsFailed"], 1);
        assert_eq!(d["FailoverDuration"], 812);
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
    }
}
