//! Triggers: every event shape the failover function accepts, typed with `aws_lambda_events`,
//! and the intent each one carries (fail over to whom, or do nothing and why).

use aws_lambda_events::cloudwatch_alarms::{
    CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmStateValue,
};
use aws_lambda_events::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::{CloudWatchAlarmPayload, SnsEvent};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::declaration::{is_instance_id, Extension};
use crate::failover::TargetSpec;
use crate::state::Mode;

/// Largest event accepted, in bytes (Lambda's async payload limit is 256 KiB).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// `detail-type` of the appliance's own "I am now active" EventBridge event.
pub const APPLIANCE_ACTIVE: &str = "Appliance Active";
/// `detail-type` of CloudWatch alarm state changes on EventBridge.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
/// `detail-type` of EC2 instance state changes on EventBridge.
pub const EC2_STATE_CHANGE: &str = "EC2 Instance State-change Notification";

/// An event that is not one the function accepts, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct EventError {
    /// The field (JSON path) at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

fn bad(field: &str, message: impl Into<String>) -> EventError {
    EventError {
        field: field.into(),
        message: message.into(),
    }
}

/// How an alarm reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlarmVia {
    /// EventBridge "CloudWatch Alarm State Change".
    EventBridge,
    /// SNS notification (classic alarm action).
    Sns,
    /// Lambda as the alarm action (direct payload).
    AlarmAction,
}

/// A parsed trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "kind"
)]
pub enum Trigger {
    /// A CloudWatch alarm changed state.
    Alarm {
        /// Delivery path.
        via: AlarmVia,
        /// Alarm name.
        name: String,
        /// New state: `ALARM`, `OK` or `INSUFFICIENT_DATA`.
        state: String,
        /// `InstanceId` dimensions of its metrics.
        instance_ids: Vec<String>,
    },
    /// An EC2 instance changed state.
    InstanceState {
        /// Instance.
        instance_id: String,
        /// New state.
        state: String,
    },
    /// An appliance announced it is now active.
    ApplianceActive {
        /// The appliance's instance.
        instance_id: String,
        /// The event's `source`.
        source: String,
    },
    /// A direct invoke.
    Direct {
        /// Execute or dry run.
        mode: Mode,
        /// Target instance.
        target: String,
        /// Skip the cooldown.
        force: bool,
    },
}

/// What a trigger asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    tag = "intent"
)]
pub enum Intent {
    /// Run a failover.
    Run {
        /// Target.
        target: TargetSpec,
        /// Execute or dry run.
        mode: Mode,
        /// Trigger label for the record.
        trigger: String,
        /// Skip the cooldown (direct invokes with `"force": true`).
        force: bool,
    },
    /// Nothing to do.
    Ignore {
        /// Why.
        reason: String,
    },
}

/// The direct-invoke payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    action: String,
    target: String,
    #[serde(default)]
    force: bool,
}

/// The detail of the appliance's "I am now active" event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplianceDetail {
    instance_id: String,
}

fn typed<T: DeserializeOwned>(v: &Value, field: &str) -> Result<T, EventError> {
    serde_json::from_value(v.clone()).map_err(|e| bad(field, e.to_string()))
}

fn instance_id(id: &str, field: &str) -> Result<String, EventError> {
    if is_instance_id(id) {
        Ok(id.to_string())
    } else {
        Err(bad(field, format!("{id:?} is not an instance id (i-…)")))
    }
}

/// Parses event text.
pub fn parse_text(text: &str) -> Result<Trigger, EventError> {
    if text.len() > MAX_EVENT_BYTES {
        return Err(bad(
            "event",
            format!(
                "is {} bytes, more than the {MAX_EVENT_BYTES} allowed",
                text.len()
            ),
        ));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        bad(
            "event",
            format!(
                "is not valid JSON (line {}, column {}: {e})",
                e.line(),
                e.column()
            ),
        )
    })?;
    parse(&v)
}

/// Recognizes and parses an event.
pub fn parse(v: &Value) -> Result<Trigger, EventError> {
    let Some(obj) = v.as_object() else {
        return Err(bad("event", "expected a JSON object"));
    };
    if obj.contains_key("Records") {
        return parse_sns(v);
    }
    if obj.contains_key("detail-type") {
        return parse_eventbridge(v);
    }
    if obj.contains_key("alarmData") {
        let a: CloudWatchAlarm<Value, Value> = typed(v, "alarmData")?;
        return Ok(alarm(AlarmVia::AlarmAction, &a.alarm_data));
    }
    if obj.contains_key("action") {
        let d: Direct = typed(v, "event")?;
        let mode = match d.action.as_str() {
            "execute" => Mode::Execute,
            "dry-run" => Mode::DryRun,
            other => {
                return Err(bad(
                    "action",
                    format!("{other:?} is not \"execute\" or \"dry-run\""),
                ))
            }
        };
        return Ok(Trigger::Direct {
            mode,
            target: instance_id(&d.target, "target")?,
            force: d.force,
        });
    }
    Err(bad(
        "event",
        "unrecognized event: expected an EventBridge event (detail-type), an SNS notification (Records), a CloudWatch alarm action (alarmData) or a direct invoke ({\"action\", \"target\"})",
    ))
}

fn parse_sns(v: &Value) -> Result<Trigger, EventError> {
    let e: SnsEvent = typed(v, "Records")?;
    let [record] = e.records.as_slice() else {
        return Err(bad(
            "Records",
            format!("expected exactly one SNS record, got {}", e.records.len()),
        ));
    };
    let p: CloudWatchAlarmPayload = serde_json::from_str(&record.sns.message).map_err(|err| {
        bad(
            "Records[0].Sns.Message",
            format!("is not a CloudWatch alarm notification: {err}"),
        )
    })?;
    let dims = p
        .trigger
        .dimensions
        .iter()
        .chain(
            p.trigger
                .metrics
                .iter()
                .filter_map(|m| m.metric_stat.as_ref())
                .flat_map(|s| &s.metric.dimensions),
        )
        .filter(|d| d.name == "InstanceId")
        .map(|d| d.value.clone());
    Ok(Trigger::Alarm {
        via: AlarmVia::Sns,
        name: p.alarm_name.clone(),
        state: p.new_state_value.clone(),
        instance_ids: dedup(dims),
    })
}

fn parse_eventbridge(v: &Value) -> Result<Trigger, EventError> {
    let e: EventBridgeEvent<Value> = typed(v, "event")?;
    match e.detail_type.as_str() {
        ALARM_STATE_CHANGE => {
            let d: CloudWatchAlarmData<Value, Value> = typed(&e.detail, "detail")?;
            Ok(alarm(AlarmVia::EventBridge, &d))
        }
        EC2_STATE_CHANGE => {
            let d: InstanceStateChange = typed(&e.detail, "detail")?;
            Ok(Trigger::InstanceState {
                instance_id: instance_id(&d.instance_id, "detail.instance-id")?,
                state: d.state,
            })
        }
        APPLIANCE_ACTIVE => {
            let d: ApplianceDetail = typed(&e.detail, "detail")?;
            Ok(Trigger::ApplianceActive {
                instance_id: instance_id(&d.instance_id, "detail.instanceId")?,
                source: e.source,
            })
        }
        other => Err(bad(
            "detail-type",
            format!(
                "{other:?} is not supported (expected {ALARM_STATE_CHANGE:?}, {EC2_STATE_CHANGE:?} or {APPLIANCE_ACTIVE:?})"
            ),
        )),
    }
}

fn alarm(via: AlarmVia, d: &CloudWatchAlarmData<Value, Value>) -> Trigger {
    let state = match d.state.as_ref().map(|s| &s.value) {
        Some(CloudWatchAlarmStateValue::Alarm) => "ALARM",
        Some(CloudWatchAlarmStateValue::Ok) => "OK",
        _ => "INSUFFICIENT_DATA",
    };
    let dims = d.configuration["metrics"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["metricStat"]["metric"]["dimensions"]["InstanceId"].as_str())
        .map(str::to_string);
    Trigger::Alarm {
        via,
        name: d.alarm_name.clone(),
        state: state.into(),
        instance_ids: dedup(dims),
    }
}

/// The first instance id written in an alarm name (e.g. `cloud-failover-i-0abc…-health`),
/// for alarms without an `InstanceId` dimension such as Route 53 health-check alarms.
pub fn instance_id_in(name: &str) -> Option<String> {
    let b = name.as_bytes();
    (0..b.len()).find_map(|i| {
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if !boundary || !name[i..].starts_with("i-") {
            return None;
        }
        let hex = name[i + 2..]
            .bytes()
            .take_while(u8::is_ascii_hexdigit)
            .count();
        let end = i + 2 + hex;
        let closed = end == b.len() || !b[end].is_ascii_alphanumeric();
        ((8..=17).contains(&hex) && closed).then(|| name[i..end].to_string())
    })
}

fn dedup(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

impl Trigger {
    /// What this trigger asks for, given the declaration's extension block.
    pub fn intent(&self, ext: &Extension) -> Result<Intent, EventError> {
        Ok(match self {
            Trigger::Alarm {
                via,
                name,
                state,
                instance_ids,
            } => {
                if state != "ALARM" && ext.failback_to.is_none() {
                    return Ok(Intent::Ignore {
                        reason: format!(
                            "alarm {name} is {state}: no failover (no automatic failback)"
                        ),
                    });
                }
                let member = match ext.alarm_targets.get(name) {
                    Some(id) => id.clone(),
                    None => match instance_ids.as_slice() {
                        [one] => instance_id(one, "InstanceId dimension")?,
                        [] => match instance_id_in(name) {
                            Some(id) => id,
                            None => {
                                return Err(bad(
                                    "alarm",
                                    format!("alarm {name:?} has no InstanceId dimension, no instance id in its name and no serverless.alarmTargets entry"),
                                ))
                            }
                        },
                        many => {
                            return Err(bad(
                                "alarm",
                                format!("alarm {name:?} watches several instances ({}); map it in serverless.alarmTargets", many.join(", ")),
                            ))
                        }
                    },
                };
                let via = serde_json::to_value(via).expect("enum");
                let trigger = format!("alarm:{name} {state} via {}", via.as_str().unwrap_or("?"));
                if state == "ALARM" {
                    Intent::Run {
                        target: TargetSpec::PeerOf(member),
                        mode: Mode::Execute,
                        trigger,
                        force: false,
                    }
                } else if state == "OK" && ext.failback_to.as_deref() == Some(member.as_str()) {
                    Intent::Run {
                        target: TargetSpec::Instance(member),
                        mode: Mode::Execute,
                        trigger: format!("{trigger} (failback)"),
                        force: false,
                    }
                } else {
                    Intent::Ignore {
                        reason: format!("alarm {name} is {state}: no failover"),
                    }
                }
            }
            Trigger::InstanceState { instance_id, state } => match state.as_str() {
                "stopping" | "stopped" | "shutting-down" | "terminated" => Intent::Run {
                    target: TargetSpec::PeerOf(instance_id.clone()),
                    mode: Mode::Execute,
                    trigger: format!("ec2:{instance_id} {state}"),
                    force: false,
                },
                "running" if ext.failback_to.as_deref() == Some(instance_id.as_str()) => {
                    Intent::Run {
                        target: TargetSpec::Instance(instance_id.clone()),
                        mode: Mode::Execute,
                        trigger: format!("ec2:{instance_id} running (failback)"),
                        force: false,
                    }
                }
                _ => Intent::Ignore {
                    reason: format!(
                        "{instance_id} is {state}: no failover (no automatic failback)"
                    ),
                },
            },
            Trigger::ApplianceActive {
                instance_id,
                source,
            } => Intent::Run {
                target: TargetSpec::Instance(instance_id.clone()),
                mode: Mode::Execute,
                trigger: format!("active:{instance_id} from {source}"),
                force: false,
            },
            Trigger::Direct {
                mode,
                target,
                force,
            } => Intent::Run {
                target: TargetSpec::Instance(target.clone()),
                mode: *mode,
                trigger: if *force {
                    "direct (forced)".into()
                } else {
                    "direct".into()
                },
                force: *force,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Trigger {
        let path = format!("{}/../../events/{name}", env!("CARGO_MANIFEST_DIR"));
        parse_text(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn intent(name: &str) -> Intent {
        sample(name).intent(&Extension::default()).unwrap()
    }

    const A: &str = "i-055fd78af29715fbf";
    const B: &str = "i-061cbb31a5158ad30";

    #[test]
    fn alarms_in_alarm_fail_over_to_the_peer_of_their_instance() {
        for (file, via) in [
            ("alarm-eventbridge.json", AlarmVia::EventBridge),
            ("alarm-sns.json", AlarmVia::Sns),
            ("alarm-action.json", AlarmVia::AlarmAction),
        ] {
            match sample(file) {
                Trigger::Alarm {
                    via: v,
                    state,
                    instance_ids,
                    ..
                } => {
                    assert_eq!(v, via, "{file}");
                    assert_eq!(state, "ALARM");
                    assert_eq!(instance_ids, vec![A.to_string()]);
                }
                other => panic!("{file}: {other:?}"),
            }
            match intent(file) {
                Intent::Run { target, mode, .. } => {
                    assert_eq!(target, TargetSpec::PeerOf(A.into()));
                    assert_eq!(mode, Mode::Execute);
                }
                other => panic!("{file}: {other:?}"),
            }
        }
    }

    #[test]
    fn ok_alarm_and_running_instance_do_nothing() {
        assert!(matches!(
            intent("alarm-ok-eventbridge.json"),
            Intent::Ignore { .. }
        ));
        let t = Trigger::InstanceState {
            instance_id: A.into(),
            state: "running".into(),
        };
        assert!(matches!(
            t.intent(&Extension::default()).unwrap(),
            Intent::Ignore { .. }
        ));
    }

    #[test]
    fn state_change_active_and_direct_events() {
        assert!(matches!(intent("ec2-state-change.json"),
            Intent::Run { target: TargetSpec::PeerOf(ref i), .. } if i == A));
        assert!(matches!(intent("appliance-active.json"),
            Intent::Run { target: TargetSpec::Instance(ref i), .. } if i == B));
        assert!(matches!(intent("direct-dry-run.json"),
            Intent::Run { target: TargetSpec::Instance(ref i), mode: Mode::DryRun, .. } if i == B));
        assert!(matches!(
            intent("direct-execute.json"),
            Intent::Run {
                mode: Mode::Execute,
                ..
            }
        ));
    }

    #[test]
    fn alarm_mapping_overrides_dimensions() {
        let mut ext = Extension::default();
        ext.alarm_targets
            .insert("bigip-a-status-check".into(), B.into());
        match sample("alarm-eventbridge.json").intent(&ext).unwrap() {
            Intent::Run { target, .. } => assert_eq!(target, TargetSpec::PeerOf(B.into())),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn instance_ids_are_found_in_alarm_names() {
        assert_eq!(
            instance_id_in("cloud-failover-i-055fd78af29715fbf-health").as_deref(),
            Some(A)
        );
        assert_eq!(instance_id_in("i-061cbb31a5158ad30").as_deref(), Some(B));
        assert_eq!(instance_id_in("multi-i-12"), None);
        assert_eq!(instance_id_in("hi-055fd78af29715fbf"), None);
    }

    #[test]
    fn bad_events_name_the_field() {
        let e = parse_text(r#"{"action": "go", "target": "i-061cbb31a5158ad30"}"#).unwrap_err();
        assert_eq!(e.field, "action");
        let e = parse_text(r#"{"action": "execute", "target": "eni-1"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "target: \"eni-1\" is not an instance id (i-…)"
        );
        let e =
            parse_text(r#"{"detail-type": "Object Created", "source": "aws.s3", "detail": {}}"#)
                .unwrap_err();
        assert_eq!(e.field, "detail-type");
        let e = parse_text(r#"{"hello": 1}"#).unwrap_err();
        assert_eq!(e.field, "event");
        let e = parse_text("{\"action\": ").unwrap_err();
        assert!(e.message.starts_with("is not valid JSON"), "{e}");
        let e =
            parse_text(r#"{"action": "execute", "target": "i-061cbb31a5158ad30", "forced": true}"#)
                .unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }
}
