//! Reading an envelope (EventBridge, SNS, SQS, alarm action, direct invoke) into a [`Trigger`].

use aws_lambda_events::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::{SnsEvent, SnsMessage, SnsRecord};
use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use serde::{de::DeserializeOwned, Deserialize};
use serde_json::Value;

use crate::engine::declaration::is_instance_id;
use crate::engine::request::Mode;

use super::alarm::{alarm, dedup, AlarmAction, AlarmData, SnsAlarm};
use super::trust::Origin;
use super::{
    bad, AlarmVia, EventError, Trigger, ALARM_STATE_CHANGE, APPLIANCE_ACTIVE, EC2_STATE_CHANGE,
    MAX_EVENT_BYTES, SCHEDULED_EVENT,
};

/// The direct-invoke payload.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    action: String,
    target: String,
    #[serde(default)]
    force: bool,
    /// The failover group to move (a pair with `serverless.groups`); absent: every group.
    #[serde(default)]
    group: Option<String>,
}

/// The detail of the appliance's "I am now active" event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApplianceDetail {
    instance_id: String,
    /// The failover group the unit became active for.
    #[serde(default)]
    group: Option<String>,
    /// BIG-IP's traffic group (`/Common/traffic-group-1`): the group, without its partition,
    /// when `group` is absent.
    #[serde(default)]
    traffic_group: Option<String>,
}

/// A group name as an event carries it: what `serverless.groups` accepts.
fn group_name(g: Option<String>, field: &str) -> Result<Option<String>, EventError> {
    match g {
        Some(name) if !crate::engine::declaration::is_group_name(&name) => Err(bad(
            field,
            format!("{name:?} is not a group name (1-32 of A-Z a-z 0-9 - _)"),
        )),
        other => Ok(other),
    }
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
    parse(&parse_json(text)?)
}

/// Reads an invocation's JSON text with the strict reader (`json::parse`: a key given twice is
/// refused, naming it, where serde_json keeps the last value): the one reader of the CLI's
/// `invoke` and of the Lambdas' payloads.
pub fn parse_json(text: &str) -> Result<Value, EventError> {
    crate::engine::json::parse(text).map_err(|e| bad("event", e.to_string()))
}

/// One message of an SQS event (the fleet's queue).
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    /// Its id (`batchItemFailures` names it).
    pub message_id: String,
    /// Its receipt handle (to deliver it again sooner: `Queue::retry_after`).
    pub receipt_handle: Option<String>,
    /// The queue's ARN.
    pub queue_arn: Option<String>,
    /// How many times it has been received (`ApproximateReceiveCount`; 1 the first time).
    pub receive_count: u32,
    /// The event its body holds.
    pub event: Value,
}

/// The messages of an SQS event (the fleet's queue), or `None` when `v` is not one.
/// EventBridge puts the event itself in the body, SNS (without raw delivery) its notification:
/// either is kept as it is, for [`parse`]; a body that is not JSON is kept as text (and
/// refused by [`parse`]).
pub fn sqs_messages(v: &Value) -> Option<Result<Vec<Queued>, EventError>> {
    let records = v.get("Records")?.as_array()?;
    if records.first()?.get("eventSource")?.as_str()? != "aws:sqs" {
        return None;
    }
    let e: SqsEvent = match typed(v, "Records") {
        Ok(e) => e,
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(e
        .records
        .into_iter()
        .map(|r| {
            let body = r.body.unwrap_or_default();
            let event = match crate::engine::json::parse(&body) {
                Ok(b) => b,
                Err(_) => Value::String(body),
            };
            Queued {
                message_id: r.message_id.unwrap_or_default(),
                receipt_handle: r.receipt_handle,
                queue_arn: r.event_source_arn,
                receive_count: r
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(1),
                event,
            }
        })
        .collect()))
}

/// Recognizes and parses an event.
pub fn parse(v: &Value) -> Result<Trigger, EventError> {
    let Some(obj) = v.as_object() else {
        return Err(bad("event", "expected a JSON object"));
    };
    if obj.contains_key("Records") {
        return parse_sns(v);
    }
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        // An SNS notification as SNS writes it to a queue (an SQS message's body).
        let n: SnsMessage = typed(v, "event")?;
        return sns_alarm(&n, None);
    }
    if obj.contains_key("detail-type") {
        return parse_eventbridge(v);
    }
    if obj.contains_key("alarmData") {
        let a: AlarmAction = typed(v, "alarmData")?;
        let mut origin = Origin::default()
            .account(a.account_id.as_deref())
            .region(a.region.as_deref())
            .arn(a.alarm_arn.as_deref());
        origin.at = a
            .time
            .as_deref()
            .map(|t| event_time(t, "time"))
            .transpose()?;
        return Ok(alarm(AlarmVia::AlarmAction, a.alarm_data, origin));
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
            group: group_name(d.group, "group")?,
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
    sns_alarm(&record.sns, Some(record))
}

/// The CloudWatch alarm in an SNS notification; `record` is the SNS Lambda event's record
/// around it, absent when the notification came in an SQS message.
fn sns_alarm(n: &SnsMessage, record: Option<&SnsRecord>) -> Result<Trigger, EventError> {
    let field = match record {
        Some(_) => "Records[0].Sns.Message",
        None => "Message",
    };
    let p: SnsAlarm = crate::engine::json::parse(&n.message)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .map_err(|err| {
            bad(
                field,
                format!("is not a CloudWatch alarm notification: {err}"),
            )
        })?;
    let trigger = p.trigger.unwrap_or_default();
    let dims = trigger
        .dimensions
        .iter()
        .flatten()
        .chain(
            trigger
                .metrics
                .iter()
                .flatten()
                .filter_map(|m| m.metric_stat.as_ref())
                .flat_map(|s| s.metric.dimensions.iter().flatten()),
        )
        .filter(|d| d.name == "InstanceId")
        .map(|d| d.value.clone());
    let mut origin = Origin::default()
        .account(p.aws_account_id.as_deref())
        .arn(p.alarm_arn.as_deref())
        .arn(Some(&n.topic_arn));
    if let Some(record) = record {
        origin = origin.arn(Some(&record.event_subscription_arn)).expect(
            "EventSource",
            &record.event_source,
            "aws:sns",
        );
    }
    origin.at = Some(n.timestamp);
    Ok(Trigger::Alarm {
        via: AlarmVia::Sns,
        name: p.alarm_name,
        state: p.new_state_value,
        instance_ids: dedup(dims),
        origin,
    })
}

fn parse_eventbridge(v: &Value) -> Result<Trigger, EventError> {
    let e: EventBridgeEvent<Value> = typed(v, "event")?;
    let mut origin = Origin::default()
        .account(e.account.as_deref())
        .region(e.region.as_deref());
    origin.at = e.time;
    origin.replay = v
        .get("replay-name")
        .map(|r| r.as_str().map_or_else(|| r.to_string(), str::to_string));
    for r in e.resources.iter().flatten() {
        origin = origin.arn(Some(r));
    }
    match e.detail_type.as_str() {
        ALARM_STATE_CHANGE => {
            let d: AlarmData = typed(&e.detail, "detail")?;
            let origin = origin.expect("source", &e.source, "aws.cloudwatch");
            Ok(alarm(AlarmVia::EventBridge, d, origin))
        }
        EC2_STATE_CHANGE => {
            let d: InstanceStateChange = typed(&e.detail, "detail")?;
            Ok(Trigger::InstanceState {
                instance_id: instance_id(&d.instance_id, "detail.instance-id")?,
                state: d.state,
                origin: origin.expect("source", &e.source, "aws.ec2"),
            })
        }
        SCHEDULED_EVENT => Ok(Trigger::Schedule {
            origin: origin.expect("source", &e.source, "aws.events"),
        }),
        APPLIANCE_ACTIVE => {
            let d: ApplianceDetail = typed(&e.detail, "detail")?;
            Ok(Trigger::ApplianceActive {
                instance_id: instance_id(&d.instance_id, "detail.instanceId")?,
                group: match (d.group, d.traffic_group) {
                    (Some(g), Some(tg)) if tg.rsplit('/').next() != Some(g.as_str()) => {
                        return Err(bad(
                            "detail.group",
                            format!("{g:?} and detail.trafficGroup {tg:?} name different groups"),
                        ))
                    }
                    (Some(g), _) => group_name(Some(g), "detail.group")?,
                    (None, Some(tg)) => group_name(
                        tg.rsplit('/').next().map(str::to_string),
                        "detail.trafficGroup",
                    )?,
                    (None, None) => None,
                },
                source: e.source,
                origin,
            })
        }
        other => Err(bad(
            "detail-type",
            format!(
                "{other:?} is not supported (expected {ALARM_STATE_CHANGE:?}, {EC2_STATE_CHANGE:?}, {APPLIANCE_ACTIVE:?} or {SCHEDULED_EVENT:?})"
            ),
        )),
    }
}

/// An event's time: RFC 3339, or CloudWatch's `+0000` offset form.
fn event_time(t: &str, field: &str) -> Result<DateTime<Utc>, EventError> {
    DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| bad(field, format!("{t:?} is not a time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::events::file;

    /// The fleet's queue as Lambda delivers it (AWS's SQS event shape): an EventBridge event,
    /// an SNS notification as SNS writes it to a queue (`SigningCertURL`, no raw delivery) and
    /// an EC2 state change, each found in its message.
    #[test]
    fn the_fleet_queues_messages_hold_the_events() {
        let v = crate::engine::json::parse(&crate::lab::fresh(include_str!(
            "../../../../../events/fleet-sqs.json"
        )))
        .unwrap();
        let messages = sqs_messages(&v).expect("an SQS event").unwrap();
        let ids: Vec<&str> = messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "059f36b4-87a3-44ab-83d2-661975830a7d",
                "2e1424d4-f796-459a-8184-9c92662be6da",
                "c1a3e8f0-6b6e-4f0c-9d4e-0d7b3f1e2a55"
            ]
        );
        let triggers: Vec<Trigger> = messages.iter().map(|m| parse(&m.event).unwrap()).collect();
        assert_eq!(messages[0].receive_count, 1);
        assert_eq!(
            messages[0].queue_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:cloud-failover-fleet")
        );
        assert!(messages[0].receipt_handle.is_some());
        assert!(
            matches!(
                &triggers[0],
                Trigger::Alarm {
                    via: AlarmVia::EventBridge,
                    ..
                }
            ),
            "{:?}",
            triggers[0]
        );
        assert!(
            matches!(
                &triggers[1],
                Trigger::Alarm {
                    via: AlarmVia::Sns,
                    ..
                }
            ),
            "{:?}",
            triggers[1]
        );
        assert!(
            matches!(&triggers[2], Trigger::InstanceState { .. }),
            "{:?}",
            triggers[2]
        );
        // Not an SQS event: not taken for one.
        let sns = crate::engine::json::parse(&crate::lab::fresh(include_str!(
            "../../../../../events/alarm-sns.json"
        )))
        .unwrap();
        assert!(sqs_messages(&sns).is_none());
        // A body that is not JSON is refused by the parser, naming the event.
        let mut bad = v.clone();
        bad["Records"][0]["body"] = "not json".into();
        let messages = sqs_messages(&bad).unwrap().unwrap();
        assert!(parse(&messages[0].event)
            .unwrap_err()
            .to_string()
            .contains("event"));
    }

    /// An event saved by a Windows editor starts with a byte order mark; a key given twice
    /// must not silently mean its last value.
    #[test]
    fn a_bom_is_skipped_and_a_repeated_key_is_named() {
        let text = format!("\u{feff}{}", file("events/direct-execute.json"));
        assert!(matches!(parse_text(&text), Ok(Trigger::Direct { .. })));
        let e = parse_text(r#"{"action": "dry-run", "target": "i-055fd78af29715fbf", "target": "i-061cbb31a5158ad30"}"#)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "event: has the key \"target\" twice in one object (line 1, column 63)"
        );
        // Inside an SNS message too.
        let text = file("events/alarm-sns.json").replace(
            r#"\"NewStateValue\": \"ALARM\","#,
            r#"\"NewStateValue\": \"OK\", \"NewStateValue\": \"ALARM\","#,
        );
        let e = parse_text(&text).unwrap_err();
        assert!(
            e.message.contains("has the key \"NewStateValue\" twice"),
            "{e}"
        );
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

    /// An event as large as allowed is read; a byte more is refused, saying so.
    #[test]
    fn an_event_at_the_size_limit_is_read_a_byte_more_is_not() {
        let text = crate::testing::events::file("events/alarm-eventbridge.json");
        let at_limit = format!("{text}{}", " ".repeat(MAX_EVENT_BYTES - text.len()));
        assert!(parse_text(&at_limit).is_ok());
        let e = parse_text(&format!("{at_limit} ")).unwrap_err();
        assert!(e.to_string().contains("more than the"), "{e}");
    }

    /// The group an announcement is for: `detail.group`, else BIG-IP's `trafficGroup` without
    /// its partition (events/appliance-active.json carries `/Common/traffic-group-1`); a
    /// direct invoke's `group`. A name `serverless.groups` would not take is refused, named.
    #[test]
    fn announcements_and_direct_invokes_carry_their_group() {
        let text = file("events/appliance-active.json");
        let mut v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parse(&v).unwrap().group(), Some("traffic-group-1"));
        v["detail"]["group"] = "tg2".into();
        assert_eq!(
            parse(&v).unwrap_err().to_string(),
            "detail.group: \"tg2\" and detail.trafficGroup \"/Common/traffic-group-1\" name different groups"
        );
        v["detail"].as_object_mut().unwrap().remove("trafficGroup");
        assert_eq!(parse(&v).unwrap().group(), Some("tg2"));
        v["detail"]["group"] = "a b".into();
        assert_eq!(
            parse(&v).unwrap_err().to_string(),
            "detail.group: \"a b\" is not a group name (1-32 of A-Z a-z 0-9 - _)"
        );
        let d = serde_json::json!({"action": "execute", "target": "i-0123456789abcdef0", "group": "tg1"});
        assert_eq!(parse(&d).unwrap().group(), Some("tg1"));
        let d = serde_json::json!({"action": "execute", "target": "i-0123456789abcdef0"});
        assert_eq!(parse(&d).unwrap().group(), None);
    }
}
