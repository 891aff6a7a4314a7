//! What a trigger asks for: run a failover, reconcile, or ignore it and why.

use serde::Serialize;

use crate::engine::declaration::{is_instance_id, Extension};
use crate::engine::request::{Mode, TargetSpec};
use crate::engine::text::printable;

use super::alarm::instance_id_in;
use super::trust::Trust;
use super::{AlarmState, AlarmVia, Trigger};

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

impl Trigger {
    /// What this trigger asks for, given the declaration's extension block and what the
    /// function trusts. Everything that is not acted on is an `Ignore` with the reason.
    pub fn intent(&self, ext: &Extension, trust: &Trust) -> Intent {
        if let Some(reason) = self.untrusted(trust) {
            return ignore(reason);
        }
        if let Some(reason) = self.stale(ext, crate::engine::clock::now()) {
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
    use crate::app::events::*;
    use crate::engine::declaration::Extension;
    use crate::engine::request::{Mode, TargetSpec};
    use crate::testing::events::{file, forged_sns, home, intent, reason, sample, A, B};

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

    /// `failbackTo` fails back to that unit only: its EC2 state running, its alarm back to OK;
    /// the other unit's do nothing, and without `failbackTo` nothing does.
    #[test]
    fn failback_is_to_the_failback_unit_only() {
        let to_a = Extension {
            failback_to: Some(A.into()),
            ..Default::default()
        };
        let to_b = Extension {
            failback_to: Some(B.into()),
            ..Default::default()
        };
        let running = parse_text(
            &file("events/ec2-state-change.json").replace("\"stopping\"", "\"running\""),
        )
        .unwrap();
        let ok = sample("alarm-ok-eventbridge.json");
        for t in [&running, &ok] {
            match t.intent(&to_a, &home()) {
                Intent::Run { target, .. } => assert_eq!(target, TargetSpec::Instance(A.into())),
                other => panic!("{other:?}"),
            }
            assert!(matches!(t.intent(&to_b, &home()), Intent::Ignore { .. }));
            assert!(matches!(
                t.intent(&Extension::default(), &home()),
                Intent::Ignore { .. }
            ));
        }
    }

    /// An alarm whose one dimension is not an instance id is not taken for one.
    #[test]
    fn an_alarm_dimension_that_is_no_instance_id_is_ignored_with_the_fix() {
        let t = parse_text(&file("events/alarm-eventbridge.json").replace(
            "\"InstanceId\": \"i-055fd78af29715fbf\"",
            "\"InstanceId\": \"web-1\"",
        ))
        .unwrap();
        assert!(reason(t.intent(&Extension::default(), &home()))
            .contains("which is not an instance id; map it in serverless.alarmTargets"),);
        assert_eq!(t.instance_ids(), ["web-1"]);
        assert_eq!(sample("alarm-eventbridge.json").instance_ids(), [A]);
        // No dimension: the instance in the alarm's name.
        let named = parse_text(
            &file("events/alarm-eventbridge.json")
                .replace("{\"InstanceId\": \"i-055fd78af29715fbf\"}", "{}"),
        )
        .unwrap();
        assert_eq!(named.instance_ids(), [A]);
        assert_eq!(sample("ec2-state-change.json").instance_ids(), [A]);
        assert_eq!(
            sample("schedule-reconcile.json").instance_ids(),
            Vec::<String>::new()
        );
    }
}
