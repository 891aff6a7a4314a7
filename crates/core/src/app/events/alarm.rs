//! CloudWatch alarm bodies, read leniently, and the instances an alarm names.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::trust::Origin;
use super::{AlarmState, AlarmVia, Trigger};

/// A metric alarm's, metric-math alarm's or composite alarm's data, as CloudWatch sends it on
/// EventBridge (`detail`) and to a Lambda alarm action (`alarmData`). Only what is used is
/// read; everything else may be absent or null.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AlarmData {
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
pub(super) struct AlarmAction {
    #[serde(default)]
    pub(super) account_id: Option<String>,
    /// `2023-08-04T12:36:15.490+0000` (CloudWatch's form: no colon in the offset).
    #[serde(default)]
    pub(super) time: Option<String>,
    #[serde(default)]
    pub(super) alarm_arn: Option<String>,
    #[serde(default)]
    pub(super) region: Option<String>,
    pub(super) alarm_data: AlarmData,
}

/// A CloudWatch alarm notification in an SNS message (metric, metric-math and composite
/// alarms). `Region` is a display name ("US East (N. Virginia)"): the region comes from ARNs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnsAlarm {
    pub(super) alarm_name: String,
    pub(super) new_state_value: AlarmState,
    #[serde(rename = "AWSAccountId", default)]
    pub(super) aws_account_id: Option<String>,
    #[serde(default)]
    pub(super) alarm_arn: Option<String>,
    /// Absent on composite alarms.
    #[serde(default)]
    pub(super) trigger: Option<SnsAlarmTrigger>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnsAlarmTrigger {
    /// Single-metric alarms.
    #[serde(default)]
    pub(super) dimensions: Option<Vec<SnsDimension>>,
    /// Metric-math alarms.
    #[serde(default)]
    pub(super) metrics: Option<Vec<SnsMetricQuery>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnsMetricQuery {
    #[serde(default)]
    pub(super) metric_stat: Option<SnsMetricStat>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnsMetricStat {
    pub(super) metric: SnsMetric,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SnsMetric {
    #[serde(default)]
    pub(super) dimensions: Option<Vec<SnsDimension>>,
}

/// CloudWatch writes `{"value": …, "name": …}` (lower case) in SNS notifications; the
/// capitalized spelling of its API is accepted too.
#[derive(Debug, Deserialize)]
pub(super) struct SnsDimension {
    #[serde(alias = "Name")]
    pub(super) name: String,
    #[serde(alias = "Value")]
    pub(super) value: String,
}

pub(super) fn alarm(via: AlarmVia, d: AlarmData, origin: Origin) -> Trigger {
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

pub(super) fn dedup(ids: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::events::*;
    use crate::engine::declaration::Extension;
    use crate::engine::request::{Mode, TargetSpec};
    use crate::testing::events::{file, home, intent, sample, A, B};

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
    fn instance_ids_are_found_in_alarm_names() {
        assert_eq!(
            instance_id_in("cloud-failover-i-055fd78af29715fbf-health").as_deref(),
            Some(A)
        );
        assert_eq!(instance_id_in("i-061cbb31a5158ad30").as_deref(), Some(B));
        assert_eq!(instance_id_in("multi-i-12"), None);
        assert_eq!(instance_id_in("hi-055fd78af29715fbf"), None);
    }

    /// A prefixed alarm name with a non-ASCII character once panicked (a `str` slice inside
    /// "ü"); it is mapped by name or ignored, never a crash.
    #[test]
    fn non_ascii_alarm_names_do_not_panic() {
        assert_eq!(instance_id_in("cloud-failover-zürich-health"), None);
        assert_eq!(
            instance_id_in("cloud-failover-ä-i-055fd78af29715fbf-health").as_deref(),
            Some("i-055fd78af29715fbf")
        );
        assert_eq!(instance_id_in("ü"), None);
    }
}
