//! Triggers: every event shape the failover function accepts, and the intent each one carries
//! (fail over to whom, or do nothing and why). Envelopes are typed with `aws_lambda_events`
//! (`EventBridgeEvent`, `SnsEvent`, `InstanceStateChange`); the CloudWatch alarm bodies have
//! their own lenient types (`alarm.rs`), because the crate's alarm types require what CloudWatch
//! leaves out or sends as null (`AlarmDescription: null`, `Unit: null`, no `TreatMissingData`,
//! no `Trigger` for composite alarms, no `metricStat` on metric-math expressions, no
//! `actionsSuppressor` on most composite alarms).
//!
//! Who may trigger what is decided here, in one place: [`Trigger::untrusted`] (the event's
//! account and region must be the function's own) and [`Trigger::intent`] (alarm names in
//! `serverless.alarmTargets` or under the stack's prefix, appliance sources in
//! `serverless.applianceSources`).

mod alarm;
mod envelope;
mod intent;
mod trust;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::engine::request::Mode;

pub use alarm::instance_id_in;
pub use envelope::{parse, parse_json, parse_text, sqs_messages, Queued};
pub use intent::Intent;
pub use trust::{Home, Origin, Trust, EVENT_CLOCK_SKEW_SECONDS};

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

pub use crate::engine::error::EventError;

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
        /// `detail.group`: the failover group it is active for (absent: the pair's only one).
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<String>,
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
        /// The failover group to move (absent: every group of the pair).
        #[serde(skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
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

    /// The failover group the event names, if any (an announcement's `detail.group`, a
    /// direct invoke's `group`).
    pub fn group(&self) -> Option<&str> {
        match self {
            Trigger::ApplianceActive { group, .. } | Trigger::Direct { group, .. } => {
                group.as_deref()
            }
            _ => None,
        }
    }

    /// When the event says it happened (`None` for direct invokes and events without a time).
    pub fn at(&self) -> Option<DateTime<Utc>> {
        self.origin().and_then(|o| o.at)
    }
}
