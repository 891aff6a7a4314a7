//! Triggers: every event shape the failover function accepts, and the intent each one carries
//! (fail over to whom, or do nothing and why). Envelopes are typed with `aws_lambda_events`
//! (`EventBridgeEvent`, `SnsEvent`, `InstanceStateChange`); the CloudWatch alarm bodies have
//! their own lenient types below, because the crate's alarm types require what CloudWatch
//! leaves out or sends as null (`AlarmDescription: null`, `Unit: null`, no `TreatMissingData`,
//! no `Trigger` for composite alarms, no `metricStat` on metric-math expressions, no
//! `actionsSuppressor` on most composite alarms).
//!
//! Who may trigger what is decided here, in one place: [`Trigger::untrusted`] (the event's
//! account and region must be the function's own) and [`Trigger::intent`] (alarm names in
//! `serverless.alarmTargets` or under the stack's prefix, appliance sources in
//! `serverless.applianceSources`).

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use aws_lambda_events::cloudwatch_events::ec2::InstanceStateChange;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::SnsEvent;
use aws_lambda_events::sqs::SqsEvent;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

use crate::declaration::{is_instance_id, Extension};
use crate::request::Mode;
use crate::request::TargetSpec;
use crate::text::printable;

/// Largest event accepted, in bytes (Lambda's async payload limit is 256 KiB).
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// `detail-type` of the appliance's own "I am now active" EventBridge event.
pub const APPLIANCE_ACTIVE: &str = "Appliance Active";
/// `detail-type` of CloudWatch alarm state changes on EventBridge.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
/// `detail-type` of EC2 instance state changes on EventBridge.
pub const EC2_STATE_CHANGE: &str = "EC2 Instance State-change Notification";
/// `detail-type` of EventBridge schedules (the `retryFailover` reconcile).
pub const SCHEDULED_EVENT: &str = "Scheduled Event";
/// The stack's default alarm-name prefix (template parameter `AlarmNamePrefix`).
pub const DEFAULT_ALARM_NAME_PREFIX: &str = "cloud-failover-";

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

impl AlarmVia {
    fn label(self) -> &'static str {
        match self {
            AlarmVia::EventBridge => "event-bridge",
            AlarmVia::Sns => "sns",
            AlarmVia::AlarmAction => "alarm-action",
        }
    }
}

/// An alarm's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    /// `ALARM`.
    Alarm,
    /// `OK`.
    Ok,
    /// `INSUFFICIENT_DATA`.
    InsufficientData,
}

impl std::fmt::Display for AlarmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlarmState::Alarm => "ALARM",
            AlarmState::Ok => "OK",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        })
    }
}

/// How far ahead of the function's clock an event's time may be (the sender's clock skew).
pub const EVENT_CLOCK_SKEW_SECONDS: i64 = 60;

/// Every account and region an event states about where it comes from (envelope fields and
/// ARNs). An event is acted on only when all of them are the function's own.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// Account ids stated.
    pub accounts: Vec<String>,
    /// Regions stated.
    pub regions: Vec<String>,
    /// What the event says that only a forgery says (an AWS event type from a source that is
    /// not that AWS service, an SNS record not from SNS).
    pub forged: Vec<String>,
    /// When the event says it happened: EventBridge's `time`, SNS's `Timestamp`, an alarm
    /// action's `time` (a message read from SQS carries the original event's, not the
    /// delivery's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// EventBridge's `replay-name`: "EventBridge adds this field to events when it replays
    /// them" from an archive (Amazon EventBridge User Guide, "Replaying archived events").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<String>,
}

impl Origin {
    /// Notes `what` unless `have` is `want`.
    fn expect(mut self, field: &str, have: &str, want: &str) -> Self {
        if have != want {
            self.forged
                .push(format!("{field} is {:?}, not {want:?}", printable(have)));
        }
        self
    }

    fn account(mut self, a: Option<&str>) -> Self {
        if let Some(a) = a.filter(|a| !a.is_empty()) {
            if !self.accounts.iter().any(|x| x == a) {
                self.accounts.push(a.to_string());
            }
        }
        self
    }

    fn region(mut self, r: Option<&str>) -> Self {
        if let Some(r) = r.filter(|r| !r.is_empty()) {
            if !self.regions.iter().any(|x| x == r) {
                self.regions.push(r.to_string());
            }
        }
        self
    }

    /// Adds the region and account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`).
    fn arn(self, arn: Option<&str>) -> Self {
        match arn.and_then(arn_region_account) {
            Some((region, account)) => self.region(Some(region)).account(Some(account)),
            None => self,
        }
    }
}

/// The region and account of an ARN.
fn arn_region_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_), Some(_), Some(region), Some(account), Some(_)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((region, account))
}

/// The function's own account and region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Home {
    /// Account id.
    pub account: String,
    /// Region.
    pub region: String,
}

impl Home {
    /// From the invoked function's ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`).
    pub fn from_function_arn(arn: &str) -> Option<Home> {
        let (region, account) = arn_region_account(arn)?;
        (!region.is_empty() && !account.is_empty()).then(|| Home {
            account: account.into(),
            region: region.into(),
        })
    }
}

/// What the function trusts: its own account and region, and the stack's alarm-name prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trust {
    /// The function's account and region; unknown: no event that states an origin is acted on.
    pub home: Option<Home>,
    /// Alarms whose name starts with this (or that `serverless.alarmTargets` maps) may fail over.
    pub alarm_name_prefix: String,
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            home: None,
            alarm_name_prefix: DEFAULT_ALARM_NAME_PREFIX.into(),
        }
    }
}

impl Trust {
    /// Trusts events from `home`, with the default alarm-name prefix.
    pub fn at(home: Home) -> Trust {
        Trust {
            home: Some(home),
            ..Trust::default()
        }
    }
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
        /// New state.
        state: AlarmState,
        /// `InstanceId` dimensions of its metrics.
        instance_ids: Vec<String>,
        /// Where it says it comes from.
        origin: Origin,
    },
    /// An EC2 instance changed state.
    InstanceState {
        /// Instance.
        instance_id: String,
        /// New state.
        state: String,
        /// Where it says it comes from.
        origin: Origin,
    },
    /// An appliance announced it is now active.
    ApplianceActive {
        /// The appliance's instance.
        instance_id: String,
        /// The event's `source`.
        source: String,
        /// Where it says it comes from.
        origin: Origin,
    },
    /// The `retryFailover` schedule fired.
    Schedule {
        /// Where it says it comes from.
        origin: Origin,
    },
    /// A direct invoke (authenticated by IAM: `lambda:InvokeFunction`).
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
    /// Converge drift on the member the last failover made active (`retryFailover`).
    Reconcile {
        /// Trigger label for the record.
        trigger: String,
    },
    /// Nothing to do.
    Ignore {
        /// Why.
        reason: String,
    },
}

fn ignore(reason: String) -> Intent {
    Intent::Ignore { reason }
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

/// A metric alarm's, metric-math alarm's or composite alarm's data, as CloudWatch sends it on
/// EventBridge (`detail`) and to a Lambda alarm action (`alarmData`). Only what is used is
/// read; everything else may be absent or null.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmData {
    alarm_name: String,
    state: AlarmStateData,
    #[serde(default)]
    configuration: Option<AlarmConfiguration>,
}

#[derive(Debug, Deserialize)]
struct AlarmStateData {
    value: AlarmState,
}

#[derive(Debug, Default, Deserialize)]
struct AlarmConfiguration {
    /// Metric alarms: one entry; metric math: expressions and metrics; composite: absent.
    #[serde(default)]
    metrics: Option<Vec<MetricQuery>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetricQuery {
    /// Absent on expressions (`"expression": "SUM(METRICS())"`).
    #[serde(default)]
    metric_stat: Option<MetricStat>,
}

#[derive(Debug, Deserialize)]
struct MetricStat {
    metric: MetricName,
}

#[derive(Debug, Deserialize)]
struct MetricName {
    #[serde(default)]
    dimensions: Option<BTreeMap<String, String>>,
}

/// The Lambda-alarm-action payload around `alarmData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlarmAction {
    #[serde(default)]
    account_id: Option<String>,
    /// `2023-08-04T12:36:15.490+0000` (CloudWatch's form: no colon in the offset).
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
    #[serde(default)]
    region: Option<String>,
    alarm_data: AlarmData,
}

/// A CloudWatch alarm notification in an SNS message (metric, metric-math and composite
/// alarms). `Region` is a display name ("US East (N. Virginia)"): the region comes from ARNs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarm {
    alarm_name: String,
    new_state_value: AlarmState,
    #[serde(rename = "AWSAccountId", default)]
    aws_account_id: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
    /// Absent on composite alarms.
    #[serde(default)]
    trigger: Option<SnsAlarmTrigger>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmTrigger {
    /// Single-metric alarms.
    #[serde(default)]
    dimensions: Option<Vec<SnsDimension>>,
    /// Metric-math alarms.
    #[serde(default)]
    metrics: Option<Vec<SnsMetricQuery>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsMetricQuery {
    #[serde(default)]
    metric_stat: Option<SnsMetricStat>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsMetricStat {
    metric: SnsMetric,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsMetric {
    #[serde(default)]
    dimensions: Option<Vec<SnsDimension>>,
}

/// CloudWatch writes `{"value": …, "name": …}` (lower case) in SNS notifications; the
/// capitalized spelling of its API is accepted too.
#[derive(Debug, Deserialize)]
struct SnsDimension {
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Value")]
    value: String,
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
    crate::json::parse(text).map_err(|e| bad("event", e.to_string()))
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
/// EventBridge puts the event itself in the body; SNS (without raw delivery) its
/// notification, which is given the shape of SNS's own Lambda event; a body that is not JSON
/// is kept as text (and refused by [`parse`]).
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
            let event = match crate::json::parse(&body) {
                Ok(b) if b.get("Type").and_then(Value::as_str) == Some("Notification") => {
                    serde_json::json!({"Records": [{
                        "EventSource": "aws:sns",
                        "EventVersion": "1.0",
                        "EventSubscriptionArn": r.event_source_arn.clone().unwrap_or_default(),
                        "Sns": b,
                    }]})
                }
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
    let p: SnsAlarm = crate::json::parse(&record.sns.message)
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
        .map_err(|err| {
            bad(
                "Records[0].Sns.Message",
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
        .arn(Some(&record.sns.topic_arn))
        .arn(Some(&record.event_subscription_arn))
        .expect("EventSource", &record.event_source, "aws:sns");
    origin.at = Some(record.sns.timestamp);
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

fn alarm(via: AlarmVia, d: AlarmData, origin: Origin) -> Trigger {
    let dims = d
        .configuration
        .unwrap_or_default()
        .metrics
        .into_iter()
        .flatten()
        .filter_map(|m| m.metric_stat)
        .filter_map(|s| s.metric.dimensions?.remove("InstanceId"));
    Trigger::Alarm {
        via,
        name: d.alarm_name,
        state: d.state.value,
        instance_ids: dedup(dims),
        origin,
    }
}

/// The first instance id written in an alarm name (e.g. `cloud-failover-i-0abc…-health`),
/// for alarms without an `InstanceId` dimension such as Route 53 health-check alarms.
pub fn instance_id_in(name: &str) -> Option<String> {
    let b = name.as_bytes();
    (0..b.len()).find_map(|i| {
        // Bytes, not `str` slices: a name may hold non-ASCII characters anywhere (a slice
        // inside one would panic); an id is ASCII, so the one returned is a valid slice.
        let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if !boundary || !b[i..].starts_with(b"i-") {
            return None;
        }
        let hex = b[i + 2..]
            .iter()
            .take_while(|c| c.is_ascii_hexdigit())
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
    /// Where the event says it comes from (`None` for direct invokes, which IAM authenticates).
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            Trigger::Alarm { origin, .. }
            | Trigger::InstanceState { origin, .. }
            | Trigger::ApplianceActive { origin, .. }
            | Trigger::Schedule { origin } => Some(origin),
            Trigger::Direct { .. } => None,
        }
    }

    /// The instances the event names (an alarm's `InstanceId` dimensions, or the one in its
    /// name; the instance of a state change or announcement; a direct invoke's target).
    pub fn instance_ids(&self) -> Vec<String> {
        match self {
            Trigger::Alarm {
                name, instance_ids, ..
            } if instance_ids.is_empty() => instance_id_in(name).into_iter().collect(),
            Trigger::Alarm { instance_ids, .. } => instance_ids.clone(),
            Trigger::InstanceState { instance_id, .. }
            | Trigger::ApplianceActive { instance_id, .. } => vec![instance_id.clone()],
            Trigger::Direct { target, .. } => vec![target.clone()],
            Trigger::Schedule { .. } => Vec::new(),
        }
    }

    /// When the event says it happened (`None` for direct invokes and events without a time).
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.origin().and_then(|o| o.at)
    }

    /// Why this event is too old, too new or replayed to act on now, if it is: older than
    /// `serverless.maxEventAgeSeconds`, further ahead than [`EVENT_CLOCK_SKEW_SECONDS`], or
    /// replayed from an EventBridge archive. An operator's direct invoke has no such bound.
    pub fn stale(&self, ext: &Extension, now: DateTime<Utc>) -> Option<String> {
        let origin = self.origin()?;
        if let Some(replay) = &origin.replay {
            return Some(format!(
                "replayed by EventBridge (replay-name {:?}): an old decision is not acted on again",
                printable(replay)
            ));
        }
        let Some(at) = origin.at else {
            // EventBridge, SNS and CloudWatch's alarm action always date what they deliver.
            return Some(
                "the event states no time (EventBridge's time, SNS's Timestamp, the alarm action's time): not acted on"
                    .into(),
            );
        };
        let age = (now - at).num_seconds();
        if age < -EVENT_CLOCK_SKEW_SECONDS {
            return Some(format!(
                "the event is dated {at}, {} s ahead of this function's clock (more than the {EVENT_CLOCK_SKEW_SECONDS} s clock skew allowed)",
                -age
            ));
        }
        let bound = ext.max_event_age_seconds;
        (bound > 0 && age > bound as i64).then(|| {
            format!(
                "the event is dated {at}, {age} s ago: older than serverless.maxEventAgeSeconds ({bound} s)"
            )
        })
    }

    /// Why this event must not be acted on, if it must not: it states no account or region,
    /// or one that is not the function's own. Needs nothing but the event and `trust`, so the
    /// handler checks it before any cloud call.
    pub fn untrusted(&self, trust: &Trust) -> Option<String> {
        let origin = self.origin()?;
        let Some(home) = &trust.home else {
            return Some(
                "the function's own account and region are unknown: no event from outside is trusted"
                    .into(),
            );
        };
        if let Some(f) = origin.forged.first() {
            return Some(format!("the event's {f}: not trusted"));
        }
        if origin.accounts.is_empty() || origin.regions.is_empty() {
            return Some("the event states no account or no region: not trusted".into());
        }
        if let Some(a) = origin.accounts.iter().find(|a| **a != home.account) {
            return Some(format!(
                "the event comes from account {a}, not this function's account {}",
                home.account
            ));
        }
        if let Some(r) = origin.regions.iter().find(|r| **r != home.region) {
            return Some(format!(
                "the event comes from region {r}, not this function's region {}",
                home.region
            ));
        }
        None
    }

    /// What this trigger asks for, given the declaration's extension block and what the
    /// function trusts. Everything that is not acted on is an `Ignore` with the reason.
    pub fn intent(&self, ext: &Extension, trust: &Trust) -> Intent {
        if let Some(reason) = self.untrusted(trust) {
            return ignore(reason);
        }
        if let Some(reason) = self.stale(ext, crate::clock::now()) {
            return ignore(reason);
        }
        match self {
            Trigger::Alarm {
                via,
                name,
                state,
                instance_ids,
                ..
            } => alarm_intent(ext, trust, *via, name, *state, instance_ids),
            Trigger::InstanceState {
                instance_id, state, ..
            } => instance_state_intent(ext, instance_id, state),
            Trigger::ApplianceActive {
                instance_id,
                source,
                ..
            } => appliance_active_intent(ext, instance_id, source),
            // Whether the declaration's `retryFailover` is enabled is the handler's to check.
            Trigger::Schedule { .. } => Intent::Reconcile {
                trigger: "reconcile (retryFailover)".into(),
            },
            // An operator's explicit command: carried out, undamped (`force` is implied and
            // kept only for old callers).
            Trigger::Direct { mode, target, .. } => Intent::Run {
                target: TargetSpec::Instance(target.clone()),
                mode: *mode,
                trigger: "direct".into(),
                force: true,
            },
        }
    }
}

/// An EC2 state change's intent: a member leaving fails over; `failbackTo` running fails back.
fn instance_state_intent(ext: &Extension, instance_id: &str, state: &str) -> Intent {
    match state {
        "stopping" | "stopped" | "shutting-down" | "terminated" => Intent::Run {
            target: TargetSpec::PeerOf(instance_id.to_string()),
            mode: Mode::Execute,
            trigger: format!("ec2:{instance_id} {}", printable(state)),
            force: false,
        },
        "running" if ext.failback_to.as_deref() == Some(instance_id) => Intent::Run {
            target: TargetSpec::Instance(instance_id.to_string()),
            mode: Mode::Execute,
            trigger: format!("ec2:{instance_id} running (failback)"),
            force: false,
        },
        _ => ignore(format!(
            "{instance_id} is {}: no failover (no automatic failback)",
            printable(state)
        )),
    }
}

/// An "Appliance Active" event's intent, from a source `serverless.applianceSources` lists.
fn appliance_active_intent(ext: &Extension, instance_id: &str, source: &str) -> Intent {
    if !ext.appliance_sources.iter().any(|s| s == source) {
        return ignore(format!(
            "\"Appliance Active\" from source {source:?}, which serverless.applianceSources does not list ({})",
            ext.appliance_sources.join(", ")
        ));
    }
    // The pair's own HA decided who is active: the cloud follows, undamped.
    Intent::Run {
        target: TargetSpec::Instance(instance_id.to_string()),
        mode: Mode::Execute,
        trigger: format!("active:{instance_id} from {}", printable(source)),
        force: true,
    }
}

/// An alarm's intent: only alarms `serverless.alarmTargets` maps or that carry the stack's
/// prefix, and only when they name exactly one member.
fn alarm_intent(
    ext: &Extension,
    trust: &Trust,
    via: AlarmVia,
    name: &str,
    state: AlarmState,
    instance_ids: &[String],
) -> Intent {
    // Matched raw; shown escaped (it reaches logs, tables and the state file).
    let shown = printable(name);
    let mapped = ext.alarm_targets.get(name);
    if mapped.is_none() && !name.starts_with(&trust.alarm_name_prefix) {
        return ignore(format!(
            "alarm {name:?} is neither in serverless.alarmTargets nor named with the stack's prefix {:?}",
            trust.alarm_name_prefix
        ));
    }
    if state != AlarmState::Alarm && ext.failback_to.is_none() {
        return ignore(format!(
            "alarm {shown} is {state}: no failover (no automatic failback)"
        ));
    }
    let member = match (mapped, instance_ids) {
        (Some(id), _) => id.clone(),
        (None, [one]) if is_instance_id(one) => one.clone(),
        (None, [one]) => {
            return ignore(format!(
                "alarm {name:?} watches {one:?}, which is not an instance id; map it in serverless.alarmTargets"
            ))
        }
        (None, []) => match instance_id_in(name) {
            Some(id) => id,
            None => {
                return ignore(format!(
                    "alarm {name:?} maps to no member: no InstanceId dimension, no instance id in its name and no serverless.alarmTargets entry"
                ))
            }
        },
        (None, many) => {
            return ignore(format!(
                "alarm {name:?} watches several instances ({}); map it in serverless.alarmTargets",
                many.join(", ")
            ))
        }
    };
    let trigger = format!("alarm:{shown} {state} via {}", via.label());
    match state {
        AlarmState::Alarm => Intent::Run {
            target: TargetSpec::PeerOf(member),
            mode: Mode::Execute,
            trigger,
            force: false,
        },
        AlarmState::Ok if ext.failback_to.as_deref() == Some(member.as_str()) => Intent::Run {
            target: TargetSpec::Instance(member),
            mode: Mode::Execute,
            trigger: format!("{trigger} (failback)"),
            force: false,
        },
        _ => ignore(format!("alarm {shown} is {state}: no failover")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fleet's queue as Lambda delivers it (AWS's SQS event shape): an EventBridge event,
    /// an SNS notification as SNS writes it to a queue (`SigningCertURL`, no raw delivery) and
    /// an EC2 state change, each found in its message.
    #[test]
    fn the_fleet_queues_messages_hold_the_events() {
        let v = crate::json::parse(&crate::lab::fresh(include_str!(
            "../../../../events/fleet-sqs.json"
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
        let sns = crate::json::parse(&crate::lab::fresh(include_str!(
            "../../../../events/alarm-sns.json"
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

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    /// A file of the repository; a sample event's times moved to now (`lab::fresh`).
    fn file(rel: &str) -> String {
        let text = std::fs::read_to_string(format!("{ROOT}/{rel}"))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        crate::lab::fresh(&text)
    }

    fn sample(name: &str) -> Trigger {
        parse_text(&file(&format!("events/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn home() -> Trust {
        Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        })
    }

    fn intent(name: &str) -> Intent {
        sample(name).intent(&Extension::default(), &home())
    }

    fn reason(i: Intent) -> String {
        match i {
            Intent::Ignore { reason } => reason,
            other => panic!("expected an Ignore, got {other:?}"),
        }
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
                    assert_eq!(state, AlarmState::Alarm);
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

    /// GIVEN CloudWatch's real notification shapes (null or missing description, unit, ARN,
    /// TreatMissingData; lowercase dimension keys; composite and metric-math alarms) over SNS,
    /// EventBridge and the Lambda alarm action, WHEN parsed, THEN each is a trigger and asks for
    /// what `tests/corpus/alarms/expected.tsv` says (never an InvalidEvent).
    #[test]
    fn every_real_alarm_shape_parses_and_asks_for_the_right_thing() {
        let index = file("tests/corpus/alarms/expected.tsv");
        let rows: Vec<(&str, &str)> = index
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once('\t'))
            .collect();
        assert!(rows.len() >= 14, "{} shapes", rows.len());
        for (name, expect) in rows {
            let trigger = parse_text(&file(&format!("tests/corpus/alarms/{name}")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(matches!(trigger, Trigger::Alarm { .. }), "{name}");
            match (trigger.intent(&Extension::default(), &home()), expect) {
                (Intent::Run { target, .. }, e) if e.starts_with("run: peer of ") => {
                    let member = e.trim_start_matches("run: peer of ").to_string();
                    assert_eq!(target, TargetSpec::PeerOf(member), "{name}");
                }
                (Intent::Ignore { reason }, e) if e.starts_with("ignored: ") => {
                    let start = e.trim_start_matches("ignored: ");
                    assert!(reason.starts_with(start), "{name}: {reason:?}");
                }
                (got, e) => panic!("{name}: expected {e}, got {got:?}"),
            }
        }
    }

    #[test]
    fn composite_alarms_follow_their_mapping() {
        let t = parse_text(&file(
            "tests/corpus/alarms/eventbridge-composite-suppressor.json",
        ))
        .unwrap();
        let mut ext = Extension::default();
        ext.alarm_targets
            .insert("cloud-failover-service-aggregated".into(), B.into());
        assert_eq!(
            t.intent(&ext, &home()),
            Intent::Run {
                target: TargetSpec::PeerOf(B.into()),
                mode: Mode::Execute,
                trigger: "alarm:cloud-failover-service-aggregated ALARM via event-bridge".into(),
                force: false,
            }
        );
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
            origin: Origin::default()
                .account(Some("123456789012"))
                .region(Some("us-east-1")),
        };
        assert!(matches!(
            t.intent(&Extension::default(), &home()),
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

    /// The pair's own HA decided: its announcement is never damped by the cooldown.
    #[test]
    fn appliance_announcements_are_not_damped() {
        assert!(matches!(
            intent("appliance-active.json"),
            Intent::Run { force: true, .. }
        ));
    }

    #[test]
    fn alarm_mapping_overrides_dimensions() {
        let mut ext = Extension::default();
        ext.alarm_targets
            .insert("cloud-failover-i-055fd78af29715fbf-status".into(), B.into());
        match sample("alarm-eventbridge.json").intent(&ext, &home()) {
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

    /// A forged SNS alarm: another account and region, a name outside the stack's prefix.
    fn forged_sns(account: &str, region: &str, name: &str) -> Trigger {
        let text = file("events/alarm-sns.json")
            .replace("123456789012", account)
            .replace("us-east-1", region)
            .replace("cloud-failover-i-055fd78af29715fbf-status", name);
        parse_text(&text).unwrap()
    }

    #[test]
    fn events_from_another_account_or_region_are_ignored() {
        let ext = Extension::default();
        let r = reason(
            forged_sns("999999999999", "eu-west-1", "x-i-055fd78af29715fbf").intent(&ext, &home()),
        );
        assert!(r.contains("account 999999999999"), "{r}");
        let r = reason(
            forged_sns(
                "123456789012",
                "eu-west-1",
                "cloud-failover-i-055fd78af29715fbf-status",
            )
            .intent(&ext, &home()),
        );
        assert!(r.contains("region eu-west-1"), "{r}");
        // One forged claim is enough: the topic is ours but the alarm's ARN is not.
        let text = file("events/alarm-sns.json").replace(
            "arn:aws:cloudwatch:us-east-1:123456789012",
            "arn:aws:cloudwatch:us-east-1:999999999999",
        );
        let r = reason(parse_text(&text).unwrap().intent(&ext, &home()));
        assert!(r.contains("account 999999999999"), "{r}");
        for name in [
            "ec2-state-change.json",
            "appliance-active.json",
            "alarm-action.json",
        ] {
            let text = file(&format!("events/{name}")).replace("123456789012", "999999999999");
            let r = reason(parse_text(&text).unwrap().intent(&ext, &home()));
            assert!(r.contains("account 999999999999"), "{name}: {r}");
        }
        let text = file("events/alarm-eventbridge.json")
            .replace("\"region\": \"us-east-1\"", "\"region\": \"eu-west-1\"");
        let r = reason(parse_text(&text).unwrap().intent(&ext, &home()));
        assert!(r.contains("region eu-west-1"), "{r}");
    }

    #[test]
    fn events_without_a_known_home_or_origin_are_ignored() {
        let ext = Extension::default();
        let r = reason(sample("alarm-eventbridge.json").intent(&ext, &Trust::default()));
        assert!(r.contains("account and region are unknown"), "{r}");
        // Neither the envelope nor a resource ARN states the account.
        let text = file("events/ec2-state-change.json")
            .replace("\"account\": \"123456789012\",", "")
            .replace(
                "\"resources\": [\"arn:aws:ec2:us-east-1:123456789012:instance/i-055fd78af29715fbf\"],",
                "",
            );
        let r = reason(parse_text(&text).unwrap().intent(&ext, &home()));
        assert!(r.contains("states no account"), "{r}");
        // Direct invokes are authenticated by IAM, not by their payload.
        assert!(matches!(
            sample("direct-execute.json").intent(&ext, &Trust::default()),
            Intent::Run { .. }
        ));
    }

    #[test]
    fn sns_alarms_obey_the_alarm_name_allow_list() {
        let ext = Extension::default();
        let t = forged_sns("123456789012", "us-east-1", "unrelated-i-055fd78af29715fbf");
        let r = reason(t.intent(&ext, &home()));
        assert!(
            r.starts_with("alarm \"unrelated-i-055fd78af29715fbf\" is neither in serverless.alarmTargets nor named with the stack's prefix \"cloud-failover-\""),
            "{r}"
        );
        let mut mapped = Extension::default();
        mapped
            .alarm_targets
            .insert("unrelated-i-055fd78af29715fbf".into(), A.into());
        assert!(matches!(t.intent(&mapped, &home()), Intent::Run { .. }));
        let custom = Trust {
            alarm_name_prefix: "unrelated-".into(),
            ..home()
        };
        assert!(matches!(t.intent(&ext, &custom), Intent::Run { .. }));
    }

    #[test]
    fn appliance_announcements_only_from_listed_sources() {
        let text = file("events/appliance-active.json").replace("bigip.failover", "evil.attacker");
        let t = parse_text(&text).unwrap();
        let r = reason(t.intent(&Extension::default(), &home()));
        assert_eq!(
            r,
            "\"Appliance Active\" from source \"evil.attacker\", which serverless.applianceSources does not list (bigip.failover)"
        );
        let ext = Extension {
            appliance_sources: vec!["evil.attacker".into()],
            ..Extension::default()
        };
        assert!(matches!(t.intent(&ext, &home()), Intent::Run { .. }));
    }

    /// An alarm name (or event field) with a newline and an ESC sequence must not forge a
    /// log line or repaint a terminal: labels and reasons carry it escaped.
    #[test]
    fn control_characters_in_alarm_names_are_escaped() {
        let evil = "cloud-failover-i-055fd78af29715fbf\n2026-11-29T07:00:00Z INFO forged\u{1b}[2J";
        let t = forged_sns(
            "123456789012",
            "us-east-1",
            "cloud-failover-i-055fd78af29715fbf-status",
        );
        let Trigger::Alarm {
            via,
            state,
            instance_ids,
            origin,
            ..
        } = t
        else {
            panic!()
        };
        let t = Trigger::Alarm {
            via,
            name: evil.into(),
            state,
            instance_ids,
            origin,
        };
        match t.intent(&Extension::default(), &home()) {
            Intent::Run { trigger, .. } => {
                assert!(!trigger.chars().any(char::is_control), "{trigger:?}");
                assert!(
                    trigger.contains("\\n2026-11-29T07:00:00Z INFO forged\\u{1b}[2J"),
                    "{trigger}"
                );
            }
            other => panic!("{other:?}"),
        }
        let Trigger::Alarm {
            via,
            name,
            instance_ids,
            origin,
            ..
        } = t
        else {
            panic!()
        };
        let ok = Trigger::Alarm {
            via,
            name,
            state: AlarmState::Ok,
            instance_ids,
            origin,
        };
        let r = reason(ok.intent(&Extension::default(), &home()));
        assert!(!r.chars().any(char::is_control), "{r:?}");
        let text = file("events/appliance-active.json")
            .replace("bigip.failover", "bigip.failover\\u001b[31m");
        let t = parse_text(&text).unwrap();
        let r = reason(t.intent(&Extension::default(), &home()));
        assert!(!r.chars().any(char::is_control), "{r:?}");
    }

    #[test]
    fn function_arns_give_the_home() {
        assert_eq!(
            Home::from_function_arn(
                "arn:aws:lambda:eu-central-1:111122223333:function:cf-failover:live"
            ),
            Some(Home {
                account: "111122223333".into(),
                region: "eu-central-1".into()
            })
        );
        assert_eq!(Home::from_function_arn(""), None);
        assert_eq!(Home::from_function_arn("arn:aws:lambda:::function:x"), None);
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

    /// Adversarial review of issue 10: a prefixed alarm name with a non-ASCII character
    /// panicked (a `str` slice inside "ü"); it is mapped by name or ignored, never a crash.
    #[test]
    fn non_ascii_alarm_names_do_not_panic() {
        assert_eq!(instance_id_in("cloud-failover-zürich-health"), None);
        assert_eq!(
            instance_id_in("cloud-failover-ä-i-055fd78af29715fbf-health").as_deref(),
            Some("i-055fd78af29715fbf")
        );
        assert_eq!(instance_id_in("ü"), None);
    }

    /// Adversarial review of issue 10: fields of the envelope that only a forgery sets are
    /// checked too (resources ARNs, an AWS event type from another source, the SNS record's
    /// source and subscription).
    #[test]
    fn forged_envelope_fields_are_not_trusted() {
        let trust = Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        });
        let untrusted = |text: String| parse_text(&text).unwrap().untrusted(&trust);
        let eb = file("events/alarm-eventbridge.json");
        assert_eq!(untrusted(eb.clone()), None);
        let r = untrusted(eb.replace(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm",
            "arn:aws:cloudwatch:eu-west-1:123456789012:alarm",
        ));
        assert!(r.unwrap().contains("region eu-west-1"));
        let r = untrusted(eb.replace("\"aws.cloudwatch\"", "\"custom.cloudwatch\""));
        assert!(r.unwrap().contains("source is \"custom.cloudwatch\""));
        let ec2 = file("events/ec2-state-change.json");
        let r = untrusted(ec2.replace("\"source\": \"aws.ec2\"", "\"source\": \"evil\""));
        assert!(r.is_some());
        let r = untrusted(ec2.replace(
            "aws:ec2:us-east-1:123456789012",
            "aws:ec2:us-east-1:210987654321",
        ));
        assert!(r.unwrap().contains("account 210987654321"));
        let sns = file("events/alarm-sns.json");
        assert_eq!(untrusted(sns.clone()), None);
        let r = untrusted(sns.replace("\"aws:sns\"", "\"aws:sqs\""));
        assert!(r.unwrap().contains("EventSource"));
        let r = untrusted(sns.replace(
            "arn:aws:sns:us-east-1:123456789012:cloud-failover-alarms:2bcfbf39",
            "arn:aws:sns:us-west-2:123456789012:cloud-failover-alarms:2bcfbf39",
        ));
        assert!(r.unwrap().contains("region us-west-2"));
    }

    /// EventBridge, SNS and the alarm action always date what they deliver: an event without
    /// a time (hand-made or forged) is not acted on.
    #[test]
    fn an_event_without_a_time_is_not_acted_on() {
        let mut v = crate::json::parse(&file("events/alarm-eventbridge.json")).unwrap();
        v.as_object_mut().unwrap().remove("time");
        let r = reason(parse(&v).unwrap().intent(&Extension::default(), &home()));
        assert!(r.contains("states no time"), "{r}");
    }
}
