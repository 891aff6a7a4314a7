//! The renderers: each command's result as JSON (the default) or a table for a person.
//! Commands decide what to show; these decide how.

use std::path::Path;

use failover_core::app::inspect::Inspection;
use failover_core::engine::answer::{Answer, Status};
use failover_core::engine::failover::{RunOutcome, RunReport};
use failover_core::engine::lock::Unlocked;
use failover_core::engine::state::RunSummary;
use failover_core::engine::text::printable;
use failover_core::ops::doctor::Check;
use failover_core::Declaration;
use serde::Serialize;
use serde_json::Value;

use crate::args::Output;

/// Prints `v` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(v: &T) {
    let v = serde_json::to_value(v).expect("json");
    say!("{}", serde_json::to_string_pretty(&v).expect("json"));
}

/// One line of text on stdout.
pub fn say_line(line: &str) {
    say!("{line}");
}

/// `validate`: the declaration as read, or one line.
pub fn show_declaration(output: Output, file: &Path, decl: &Declaration) {
    match output {
        Output::Json => print_json(decl),
        Output::Table => say!("{}: valid ({})", file.display(), summary(decl)),
    }
}

/// `declare`: where the declaration went.
pub fn show_uploaded(output: Output, bucket: &str, key: &str, decl: &Declaration) {
    match output {
        Output::Json => {
            print_json(&serde_json::json!({"uploaded": format!("s3://{bucket}/{key}")}))
        }
        Output::Table => say!("uploaded s3://{bucket}/{key} ({})", summary(decl)),
    }
}

/// A declaration in one line: its cluster, route groups and addresses.
fn summary(d: &Declaration) -> String {
    let eips = d.addresses().map(|a| a.groups.len()).unwrap_or(0);
    let routes: usize = d.route_groups().iter().map(|g| g.ranges.len()).sum();
    let clusters = d.cluster_names();
    let cluster = match clusters.as_slice() {
        [one] => format!("cluster {one}"),
        many => format!(
            "{} failover groups: clusters {}",
            many.len(),
            many.join(", ")
        ),
    };
    format!(
        "{cluster}, {} route group(s) with {routes} range(s), addresses {}{}",
        d.route_groups().len(),
        if d.addresses().is_some() { "on" } else { "off" },
        if eips > 0 {
            format!(" ({eips} explicit group(s))")
        } else {
            String::new()
        }
    )
}

/// What the failover function answered (`invoke`): its JSON, or a table.
pub fn show_answer(output: Output, answer: &Answer) {
    if output == Output::Json {
        return print_json(answer);
    }
    match answer {
        Answer::Succeeded(r) | Answer::DryRun(r) => print_report(r),
        Answer::InProgress(s) | Answer::Cooldown(s) => say!("{}: {}", s.status, s.message),
        Answer::Ignored(i) => say!("{}: {}", Status::Ignored, i.reason),
    }
}

/// What a run did (`plan`, `execute`): its JSON, or a table.
pub fn show_outcome(output: Output, outcome: &RunOutcome) {
    if output == Output::Json {
        return print_json(outcome);
    }
    match outcome {
        RunOutcome::Completed(r) => print_report(r),
        RunOutcome::Skipped(s) => say!("{}: {}", s.status, s.message),
    }
}

/// The table of a run report: the run, then each operation with its outcome, what was in
/// place, the warnings.
fn print_report(r: &RunReport) {
    let record = &r.record;
    say!(
        "{} {} → {} ({}) · {} · {}",
        record.task_state.as_str(),
        record.mode.as_str(),
        record.target,
        record.target_name,
        record.message,
        record
            .duration_ms
            .map(|d| format!("{d} ms"))
            .unwrap_or_default()
    );
    for op in &record.operations {
        let outcome = record.outcomes.iter().find(|o| o.operation == op.id);
        let status = match outcome {
            Some(o) if o.verified => "done".to_string(),
            Some(o) => format!("FAILED: {}", o.error.as_deref().unwrap_or("not verified")),
            None => "planned".to_string(),
        };
        say!("  [{status}] {}\n      {}", op.id, op.why);
    }
    for i in &record.in_place {
        say!("  [in place] {i}");
    }
    for w in &record.warnings {
        say!("  [warning] {w}");
    }
}

/// `inspect`: the picture, as JSON or a table.
pub fn show_inspection(output: Output, view: &Inspection) {
    match output {
        Output::Json => print_json(view),
        Output::Table => print_inspection(view),
    }
}

/// The table of `inspect`. History objects and the state file are read back from S3 (they may
/// predate escaping, or be written by anyone with access): their text is escaped here too.
fn print_inspection(v: &Inspection) {
    say!(
        "cluster {} · active: {} · {}",
        printable(&v.cluster),
        v.active.as_deref().unwrap_or("none (split or unmanaged)"),
        v.verdict.as_str()
    );
    for m in &v.members {
        let down = if m.state == "running" && !m.healthy {
            format!(" ({})", failover_core::engine::picture::why_down(&m.state))
        } else {
            String::new()
        };
        say!(
            "  member {} {} {}{down} {}",
            m.id,
            m.name,
            m.state,
            m.availability_zone
        );
    }
    for r in &v.routes {
        say!(
            "  route {} {} → {} ({})",
            r.route_table_id,
            r.destination,
            r.target,
            r.member.as_deref().unwrap_or("no member's interface")
        );
    }
    for e in &v.elastic_ips {
        let on = match (&e.private_ip, &e.network_interface_id) {
            (Some(ip), Some(eni)) => format!("{ip} on {eni}"),
            (None, Some(eni)) => format!("{eni} (private IP not reported)"),
            _ => "associated with nothing: it answers no one".to_string(),
        };
        let whose = match (&e.member, &e.network_interface_id) {
            (Some(m), _) => format!(" ({m})"),
            (None, Some(_)) => " (an interface of no member)".to_string(),
            (None, None) => String::new(),
        };
        say!("  eip {} → {on}{whose}", e.public_ip);
    }
    if let Some(l) = &v.lock {
        say!("  lock held by run {} until {}", l.body.owner, l.held_until);
    }
    for r in &v.recent_runs {
        say!(
            "  run {} {} {} → {} ({}) {}: {}",
            printable(&r.started_at),
            printable(&r.run_id),
            printable(r.who()),
            printable(&r.target),
            r.duration_ms.map(|d| format!("{d} ms")).unwrap_or_default(),
            printable(&r.task_state),
            printable(&r.message)
        );
    }
    if let Some(s) = &v.last_state {
        say!(
            "  state {} at {} on {}: {}",
            printable(s["taskState"].as_str().unwrap_or("?")),
            printable(s["timestamp"].as_str().unwrap_or("?")),
            printable(s["instance"].as_str().unwrap_or("?")),
            printable(s["message"].as_str().unwrap_or(""))
        );
    }
    if let Some(b) = &v.box_says {
        say!(
            "  the box says: {} active (announced {}); {}",
            printable(&b.target),
            failover_core::engine::state::timestamp(b.at),
            match v.agrees_with_box {
                Some(true) => "the cloud agrees",
                Some(false) => "the cloud DISAGREES",
                None => "not counted: that unit is down now or no member",
            }
        );
    }
    for w in &v.left_alone {
        say!("  left alone: {}", printable(w));
    }
    say!(
        "verdict: {} — {}",
        v.verdict.as_str(),
        printable(&v.verdict_detail)
    );
}

/// `unlock`, `reset`: what became of the lock (and, for `reset`, which state file was reset).
pub fn show_unlocked(output: Output, out: &Unlocked, cluster: &str, state_file: Option<&str>) {
    let reset = if state_file.is_some() {
        "; state file reset"
    } else {
        ""
    };
    match output {
        Output::Json => {
            let mut value = serde_json::to_value(out).expect("json");
            if let Some(key) = state_file {
                value["stateFile"] = key.into();
            }
            print_json(&value)
        }
        Output::Table => match out {
            Unlocked::Released { holder } => say!(
                "released the lock of cluster {cluster} (held by run {}){reset}",
                holder.body.owner
            ),
            _ => say!("the lock of cluster {cluster} was free{reset}"),
        },
    }
}

/// `history`: the runs, newest first: when (to the second, UTC or local), the outcome, who or
/// what triggered it, the target with its host name, and what happened.
pub fn show_history(output: Output, runs: &[RunSummary], local_time: bool) {
    match output {
        Output::Json => print_json(runs),
        Output::Table if runs.is_empty() => say!("no runs yet"),
        Output::Table => {
            for r in runs {
                let name = if r.target_name.is_empty() || r.target_name == r.target {
                    String::new()
                } else {
                    format!(" ({})", printable(&r.target_name))
                };
                say!(
                    "{}  {:<11} {}\n    → {}{name}: {}",
                    when(&r.started_at, local_time),
                    printable(&r.task_state),
                    printable(r.who()),
                    printable(&r.target),
                    printable(&r.message)
                );
            }
        }
    }
}

/// A recorded time to the second: UTC (`2026-12-06T03:12:09Z`), or this machine's zone.
fn when(recorded: &str, local_time: bool) -> String {
    match recorded.parse::<chrono::DateTime<chrono::Utc>>() {
        Ok(t) if local_time => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S %z")
            .to_string(),
        Ok(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        Err(_) => printable(recorded).into_owned(),
    }
}

/// `doctor`: each check with its verdict, and the fix for what is not PASS.
pub fn show_checks(output: Output, checks: &[Check]) {
    match output {
        Output::Json => print_json(checks),
        Output::Table => {
            for c in checks {
                say!("{:<4}  {:<18} {}", c.verdict.as_str(), c.name, c.detail);
                if let Some(fix) = &c.fix {
                    say!("      {:<18} fix: {fix}", "");
                }
            }
        }
    }
}

/// `init`: what was found, the declaration written, the changes (made, or to make), and
/// doctor's checks after `--apply`.
pub fn show_init(
    output: Output,
    out: &std::path::Path,
    p: &failover_core::ops::init::Proposal,
    applied: bool,
    checks: Option<&[Check]>,
) {
    if output == Output::Json {
        print_json(&serde_json::json!({
            "declarationFile": out.display().to_string(),
            "proposal": p,
            "commands": p.commands(),
            "applied": applied,
            "doctor": checks,
        }));
        return;
    }
    for n in &p.notes {
        say!("- {n}");
    }
    say!("wrote {} (valid)", out.display());
    if applied {
        say!("applied: {} change(s)", p.commands().len());
        for c in p.commands() {
            say!("  {c}");
        }
    } else {
        say!("the changes it needs (--apply makes them):");
        for c in p.commands() {
            say!("  {c}");
        }
        say!(
            "then: cloud-failover doctor --declaration {}",
            failover_core::ops::doctor::shell_word(&out.display().to_string())
        );
    }
    if let Some(checks) = checks {
        show_checks(output, checks);
    }
}

/// `state`: the state file as S3 has it.
pub fn show_state(output: Output, state: &Value) {
    if output == Output::Json {
        return print_json(state);
    }
    let text = |v: &Value| {
        v.as_str()
            .map(|s| printable(s).into_owned())
            .unwrap_or_else(|| "-".into())
    };
    let ext = &state["serverless"];
    say!(
        "{}  {}  {} · {}",
        text(&state["taskState"]),
        text(&state["timestamp"]),
        text(&state["instance"]),
        text(&state["message"])
    );
    if ext.is_object() {
        say!(
            "run {} · trigger {} · target {} ({})",
            text(&ext["runId"]),
            text(&ext["trigger"]),
            text(&ext["target"]),
            text(&ext["targetName"])
        );
        for (what, key) in [
            ("last failover", "lastFailover"),
            ("last announcement", "lastAnnouncement"),
        ] {
            if ext[key].is_object() {
                say!(
                    "{what}: {} at {}",
                    text(&ext[key]["target"]),
                    text(&ext[key]["at"])
                );
            }
        }
        for item in ext["skipped"].as_array().into_iter().flatten() {
            say!("left out: {}", text(item));
        }
        if let Some(by) = ext["requestedBy"].as_str() {
            say!("requested by {}", printable(by));
        }
    } else {
        say!("(written by CFE: no serverless block)");
    }
}
