//! Trust: an event's stated origin and time against the function's own account, region and clock.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::declaration::Extension;
pub use crate::engine::model::Home;
use crate::engine::text::printable;

use super::{Trigger, DEFAULT_ALARM_NAME_PREFIX};

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
    pub(super) fn expect(mut self, field: &str, have: &str, want: &str) -> Self {
        if have != want {
            self.forged
                .push(format!("{field} is {:?}, not {want:?}", printable(have)));
        }
        self
    }

    pub(super) fn account(mut self, a: Option<&str>) -> Self {
        if let Some(a) = a.filter(|a| !a.is_empty()) {
            if !self.accounts.iter().any(|x| x == a) {
                self.accounts.push(a.to_string());
            }
        }
        self
    }

    pub(super) fn region(mut self, r: Option<&str>) -> Self {
        if let Some(r) = r.filter(|r| !r.is_empty()) {
            if !self.regions.iter().any(|x| x == r) {
                self.regions.push(r.to_string());
            }
        }
        self
    }

    /// Adds the region and account of an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`).
    pub(super) fn arn(self, arn: Option<&str>) -> Self {
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

impl Trigger {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::events::*;
    use crate::engine::declaration::Extension;
    pub use crate::engine::model::Home;
    use crate::testing::events::{file, forged_sns, home, reason, sample};

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
        // Either half missing is no home.
        assert_eq!(
            Home::from_function_arn("arn:aws:lambda:eu-central-1::function:x"),
            None
        );
        assert_eq!(
            Home::from_function_arn("arn:aws:lambda::111122223333:function:x"),
            None
        );
    }

    /// Fields of the envelope that only a forgery sets are
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
        let mut v = crate::engine::json::parse(&file("events/alarm-eventbridge.json")).unwrap();
        v.as_object_mut().unwrap().remove("time");
        let r = reason(parse(&v).unwrap().intent(&Extension::default(), &home()));
        assert!(r.contains("states no time"), "{r}");
    }

    /// The age bounds to the second: as old as maxEventAgeSeconds is fresh, a second more is
    /// stale (0: no bound); as far ahead as the clock skew allowed is fine, a second more is
    /// not.
    #[test]
    fn event_age_bounds_hold_to_the_second() {
        let t = crate::testing::events::sample("alarm-eventbridge.json");
        let at = t.origin().unwrap().at.unwrap();
        let mut ext = crate::engine::declaration::Extension {
            max_event_age_seconds: 60,
            ..Default::default()
        };
        let secs = chrono::Duration::seconds;
        assert_eq!(t.stale(&ext, at + secs(60)), None);
        assert!(t
            .stale(&ext, at + secs(61))
            .unwrap()
            .contains("older than serverless.maxEventAgeSeconds (60 s)"));
        ext.max_event_age_seconds = 0;
        assert_eq!(t.stale(&ext, at + secs(86_400)), None, "no bound");
        let skew = EVENT_CLOCK_SKEW_SECONDS;
        assert_eq!(t.stale(&ext, at - secs(skew)), None);
        assert!(t
            .stale(&ext, at - secs(skew + 1))
            .unwrap()
            .contains("ahead of this function's clock"));
    }
}
