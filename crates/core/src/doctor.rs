//! Doctor: checks a deployment against the pitfalls that cost the field report its time
//! (source/destination check on, VIPs as next hops, a route table without its scoping tag)
//! and the rest of what a failover needs, one line per check with the fix.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::declaration::{AddressGroup, Declaration, Encryption, NextHops, Scope};
use crate::discovery::{discover, ips_from_tag, Snapshot, SELF_IPS_TAG};
use crate::error::CloudError;
use crate::inspect::picture;
use crate::lock::{lock_key, LockBody};
use crate::plan::plan;
use crate::ports::{DryRun, Ec2, ObjectStore};

/// The scoping tag key of CFE deployments (and of this project's IAM conditions).
pub const LABEL_KEY: &str = "f5_cloud_failover_label";

/// A check's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Verdict {
    /// Fine.
    Pass,
    /// Works, but worth fixing.
    Warn,
    /// A failover would not work (fully).
    Fail,
}

/// One check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Short name.
    pub name: &'static str,
    /// Result.
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// How to fix it (for WARN and FAIL).
    pub fix: Option<String>,
}

fn check(name: &'static str, problems: Vec<(Verdict, String, String)>, ok: String) -> Check {
    let worst = problems.iter().map(|p| p.0).max_by_key(|v| *v as u8);
    match worst {
        None => Check {
            name,
            verdict: Verdict::Pass,
            detail: ok,
            fix: None,
        },
        Some(verdict) => {
            let detail: Vec<&str> = problems.iter().map(|p| p.1.as_str()).collect();
            let fixes: BTreeSet<&str> = problems.iter().map(|p| p.2.as_str()).collect();
            Check {
                name,
                verdict,
                detail: detail.join("; "),
                fix: Some(fixes.into_iter().collect::<Vec<_>>().join("; ")),
            }
        }
    }
}

/// The `f5_cloud_failover_label` value the declaration scopes by, if any.
pub fn label(decl: &Declaration) -> Option<String> {
    let mut scopes: Vec<&crate::declaration::Tags> = Vec::new();
    if let Some(a) = &decl.failover_addresses {
        scopes.push(&a.scoping_tags);
    }
    if let Scope::Tags(t) = &decl.external_storage.scope {
        scopes.push(t);
    }
    for g in decl.route_groups() {
        if let Scope::Tags(t) = &g.scope {
            scopes.push(t);
        }
    }
    scopes.iter().find_map(|t| t.get(LABEL_KEY).cloned())
}

/// Where the declaration scopes by tags without the key the stack's IAM policy conditions on
/// (`f5_cloud_failover_label`, template.yaml): discovery would find those resources, but the
/// function may not change them. One line per scope, naming its JSON path.
pub fn stack_tag_mismatches(decl: &Declaration) -> Vec<String> {
    let mut scopes: Vec<(String, &crate::declaration::Tags)> = Vec::new();
    if let Some(a) = &decl.failover_addresses {
        if !a.scoping_tags.is_empty() {
            scopes.push(("failoverAddresses.scopingTags".into(), &a.scoping_tags));
        }
    }
    for (i, g) in decl.route_groups().iter().enumerate() {
        if let Scope::Tags(t) = &g.scope {
            scopes.push((format!("failoverRoutes route group {i} scopingTags"), t));
        }
    }
    scopes
        .into_iter()
        .filter(|(_, t)| !t.contains_key(LABEL_KEY))
        .map(|(path, t)| {
            let keys: Vec<&str> = t.keys().map(String::as_str).collect();
            format!(
                "{path} scopes by {} but the stack's IAM policy allows changes only to resources tagged {LABEL_KEY}: those changes would be denied",
                keys.join(", ")
            )
        })
        .collect()
}

/// Runs every check.
pub async fn doctor(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    decl: &Declaration,
) -> Result<Vec<Check>, CloudError> {
    let snap = discover(ec2, store, decl).await?;
    let mut checks = static_checks(decl, &snap);
    checks.push(bucket_check(store, decl, &snap).await?);
    checks.push(permission_check(ec2, decl, &snap).await?);
    if let Some(bucket) = &snap.bucket {
        let lock = store
            .get_object(bucket, &lock_key(&decl.extension.cluster_name))
            .await?;
        let held = lock
            .and_then(|o| serde_json::from_slice::<LockBody>(&o.body).ok())
            .filter(|l| !l.is_free(chrono::Utc::now()));
        checks.push(match held {
            Some(l) => Check {
                name: "cluster-lock",
                verdict: Verdict::Warn,
                detail: format!("held by run {} until {}", l.owner, l.expires_at),
                fix: Some(
                    "a failover is running; if its runner died, the lease expires by itself".into(),
                ),
            },
            None => Check {
                name: "cluster-lock",
                verdict: Verdict::Pass,
                detail: "free".into(),
                fix: None,
            },
        });
    }
    Ok(checks)
}

/// The checks that need only the snapshot.
pub fn static_checks(decl: &Declaration, snap: &Snapshot) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(check(
        "scoping-tag-key",
        stack_tag_mismatches(decl)
            .into_iter()
            .map(|m| {
                (
                    Verdict::Fail,
                    m,
                    format!("tag the resources with {LABEL_KEY} and scope by it (the key the stack's IAM conditions on)"),
                )
            })
            .collect(),
        format!("the declaration scopes by {LABEL_KEY}, the key the stack's IAM policy conditions on"),
    ));
    let names: Vec<String> = snap
        .members
        .iter()
        .map(|m| {
            format!(
                "{} ({}, {}, {})",
                m.id,
                m.display_name(),
                m.availability_zone,
                m.state
            )
        })
        .collect();
    out.push(if snap.members.len() >= 2 {
        check(
            "members",
            vec![],
            format!("{} members: {}", names.len(), names.join(", ")),
        )
    } else {
        check(
            "members",
            vec![(
                Verdict::Fail,
                format!("{} member(s) found: {}", names.len(), names.join(", ")),
                "declare next hops / VIPs that are addresses of both units' interfaces".into(),
            )],
            String::new(),
        )
    });

    // Next hops: each must be the primary IP of a member interface with src/dst check off.
    let groups = decl.route_groups();
    let mut hop_problems = Vec::new();
    let mut sdc_problems = Vec::new();
    let mut hops_ok = BTreeSet::new();
    let mut routes_missing = Vec::new();
    for st in &snap.route_tables {
        let g = &groups[st.group];
        for r in &g.ranges {
            let absent = !st.table.routes.iter().any(|x| x.destination == r.range);
            if absent && !decl.extension.create_missing_routes.contains(&st.group) {
                routes_missing.push((
                    Verdict::Warn,
                    format!("{} has no route {}", st.table.id, r.range),
                    format!("create the route first (aws ec2 create-route --route-table-id {} …), or opt route group {} in to serverless.createMissingRoutes", st.table.id, st.group),
                ));
            }
            let items = match r.next_hops.as_ref().unwrap_or(&g.default_next_hops) {
                NextHops::Static(items) => items.clone(),
                NextHops::RouteTag => st
                    .table
                    .tags
                    .get(SELF_IPS_TAG)
                    .map(|v| ips_from_tag(v))
                    .unwrap_or_default(),
            };
            for ip in items {
                match snap.holder_of(ip) {
                    None => hop_problems.push((
                        Verdict::Fail,
                        format!("next hop {ip} is not an address of any member"),
                        "list the units' primary private IPs as next hops".to_string(),
                    )),
                    Some((m, n)) if ip.is_ipv4() && n.primary_ip != ip => hop_problems.push((
                        Verdict::Fail,
                        format!("next hop {ip} is a secondary IP (a VIP) of {} on {}; routes need the interface's primary IP {}", n.id, m.id, n.primary_ip),
                        format!("declare {} instead of {ip} (the field report's pitfall)", n.primary_ip),
                    )),
                    Some((m, n)) => {
                        hops_ok.insert(format!("{ip} ({} on {})", n.id, m.id));
                        if n.source_dest_check {
                            sdc_problems.push((
                                Verdict::Fail,
                                format!("source/destination check is on for {} ({ip}, {}): routed traffic to it is dropped (the report's 502s)", n.id, m.id),
                                format!("aws ec2 modify-network-interface-attribute --network-interface-id {} --no-source-dest-check", n.id),
                            ));
                        }
                    }
                }
            }
        }
    }
    let hops: Vec<String> = hops_ok.into_iter().collect();
    out.push(check(
        "next-hops-primary",
        hop_problems,
        if hops.is_empty() {
            "no route next hops declared".into()
        } else {
            format!("primary IPs: {}", hops.join(", "))
        },
    ));
    out.push(check(
        "source-dest-check",
        sdc_problems,
        "off on every next-hop interface".into(),
    ));

    // Route tables: exist, are tagged (the IAM role and CFE both need the tag), hold the ranges.
    let mut table_problems = Vec::new();
    for id in &snap.missing_route_tables {
        table_problems.push((
            Verdict::Fail,
            format!("route table {id} does not exist"),
            "fix scopingName".to_string(),
        ));
    }
    for &i in &snap.empty_tag_groups {
        table_problems.push((
            Verdict::Fail,
            format!("no route table carries the tags of route group {i}"),
            "tag the route table(s) with the group's scopingTags".to_string(),
        ));
    }
    let tables: Vec<&str> = snap
        .route_tables
        .iter()
        .map(|t| t.table.id.as_str())
        .collect();
    out.push(check(
        "route-tables",
        table_problems,
        format!(
            "in scope: {}",
            if tables.is_empty() {
                "none".to_string()
            } else {
                tables.join(", ")
            }
        ),
    ));
    let mut tag_problems = Vec::new();
    if let Some(value) = label(decl) {
        for st in &snap.route_tables {
            if st.table.tags.get(LABEL_KEY) != Some(&value) {
                tag_problems.push((
                    Verdict::Fail,
                    format!("route table {} lacks the scoping tag {LABEL_KEY}={value}: route failover did nothing in the field report until it had it, and the function's IAM role may not change it", st.table.id),
                    format!("aws ec2 create-tags --resources {} --tags Key={LABEL_KEY},Value={value}", st.table.id),
                ));
            }
        }
    }
    out.push(check(
        "route-table-tag",
        tag_problems,
        "every route table in scope carries the scoping tag".into(),
    ));
    out.push(check(
        "routes",
        routes_missing,
        "every declared range is in every table in scope".into(),
    ));

    // Elastic IPs: each member holds exactly one of its VIPs.
    let mut eip_problems = Vec::new();
    for ip in &snap.missing_elastic_ips {
        eip_problems.push((
            Verdict::Fail,
            format!("Elastic IP {ip} does not exist"),
            "fix addressGroupDefinitions".to_string(),
        ));
    }
    for ip in &snap.eips_without_vips {
        eip_problems.push((
            Verdict::Fail,
            format!("Elastic IP {ip} has the scoping tags but no f5_cloud_failover_vips tag"),
            "tag it f5_cloud_failover_vips=<VIP on unit A>,<VIP on unit B>".to_string(),
        ));
    }
    for e in &snap.elastic_ips {
        for m in &snap.members {
            let held: Vec<String> = e
                .vips
                .iter()
                .filter(|v| {
                    m.network_interfaces
                        .iter()
                        .any(|n| n.secondary_ips.contains(v))
                })
                .map(ToString::to_string)
                .collect();
            if held.len() != 1 {
                eip_problems.push((
                    Verdict::Fail,
                    format!(
                        "Elastic IP {}: member {} holds {} of its VIPs as secondary IPs ({})",
                        e.eip.public_ip,
                        m.id,
                        held.len(),
                        held.join(", ")
                    ),
                    "each unit needs exactly one of the EIP's VIPs as a secondary private IP"
                        .to_string(),
                ));
            }
        }
    }
    if let Some(a) = decl.addresses() {
        for g in &a.groups {
            if let AddressGroup::NetworkInterfaceAddress { scoping_address } = g {
                if snap.holder_of(*scoping_address).is_none() {
                    eip_problems.push((
                        Verdict::Fail,
                        format!("address {scoping_address} is on no member"),
                        "assign it to the active unit's interface".to_string(),
                    ));
                }
            }
        }
    }
    let eips: Vec<String> = snap
        .elastic_ips
        .iter()
        .map(|e| format!("{} ({} VIPs)", e.eip.public_ip, e.vips.len()))
        .collect();
    out.push(check(
        "elastic-ips",
        eip_problems,
        if eips.is_empty() {
            "no Elastic IPs in scope".into()
        } else {
            format!("VIP pairs resolve on both members: {}", eips.join(", "))
        },
    ));
    out
}

async fn bucket_check(
    store: &dyn ObjectStore,
    decl: &Declaration,
    snap: &Snapshot,
) -> Result<Check, CloudError> {
    let Some(bucket) = &snap.bucket else {
        return Ok(check(
            "state-bucket",
            vec![(
                Verdict::Fail,
                "no state bucket found".into(),
                "create it, or fix externalStorage (name or tags)".into(),
            )],
            String::new(),
        ));
    };
    let declared = match &decl.external_storage.encryption {
        Encryption::None => None,
        Encryption::Aes256 => Some("AES256"),
        Encryption::Kms { .. } => Some("aws:kms"),
    };
    let actual = store.bucket_encryption(bucket).await?;
    let mut problems = Vec::new();
    if !snap.extra_buckets.is_empty() {
        problems.push((
            Verdict::Warn,
            format!(
                "other buckets carry the same tags ({}); {bucket} is used",
                snap.extra_buckets.join(", ")
            ),
            "give each cluster its own bucket or use scopingName (CFE #147)".to_string(),
        ));
    }
    if let Some(want) = declared {
        if actual.as_deref() != Some(want) {
            problems.push((
                Verdict::Warn,
                format!(
                    "{bucket}'s default encryption is {} but the declaration writes with {want}",
                    actual.as_deref().unwrap_or("none")
                ),
                format!("aws s3api put-bucket-encryption --bucket {bucket} (SSEAlgorithm {want})"),
            ));
        }
    }
    Ok(check(
        "state-bucket",
        problems,
        format!(
            "{bucket}, default encryption {}",
            actual.as_deref().unwrap_or("none")
        ),
    ))
}

async fn permission_check(
    ec2: &dyn Ec2,
    decl: &Declaration,
    snap: &Snapshot,
) -> Result<Check, CloudError> {
    let active = picture(decl, snap, None).active;
    let Some(standby) = snap.members.iter().find(|m| Some(&m.id) != active.as_ref()) else {
        return Ok(check(
            "permissions",
            vec![(
                Verdict::Warn,
                "no standby member to plan a failover to".into(),
                "see members".into(),
            )],
            String::new(),
        ));
    };
    let p = match plan(decl, snap, &standby.id) {
        Ok(p) => p,
        Err(r) => {
            return Ok(check(
                "permissions",
                vec![(
                    Verdict::Fail,
                    format!("a failover to {} is refused: {r}", standby.id),
                    "fix the failing checks above".into(),
                )],
                String::new(),
            ))
        }
    };
    let mut problems = Vec::new();
    let mut allowed = Vec::new();
    let mut unchecked = BTreeSet::new();
    for op in &p.operations {
        let m = op.action.mutation();
        match ec2.dry_run(&m).await? {
            DryRun::Allowed => allowed.push(m.operation()),
            DryRun::Unchecked => {
                unchecked.insert(m.operation());
            }
            DryRun::Denied => problems.push((
                Verdict::Fail,
                format!("{} is denied ({})", m.operation(), op.id),
                format!(
                    "grant ec2:{} (see template.yaml; resources need the {LABEL_KEY} tag)",
                    m.operation()
                ),
            )),
        }
    }
    let mut ok = format!(
        "DryRun allowed {} call(s) of a failover to {}",
        allowed.len(),
        standby.id
    );
    if !unchecked.is_empty() {
        ok.push_str(&format!(
            "; not checkable here: {}",
            unchecked.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if p.operations.is_empty() {
        ok = format!("a failover to {} needs no call", standby.id);
    }
    Ok(check("permissions", problems, ok))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::{SEED_B_EXT, SEED_RTB};
    use crate::memory::MemoryCloud;

    const AFTER: &str = include_str!("../../../examples/seed-article/declaration-after.json");
    const SNAT_NONE: &str = include_str!("../../../examples/seed-article/cfe-snat-none.json");

    async fn run(cloud: &MemoryCloud, text: &str) -> Vec<Check> {
        doctor(cloud, cloud, &Declaration::parse(text).unwrap())
            .await
            .unwrap()
    }

    fn verdict(checks: &[Check], name: &str) -> Check {
        checks.iter().find(|c| c.name == name).unwrap().clone()
    }

    #[tokio::test]
    async fn healthy_seed_passes_everything() {
        let checks = run(&MemoryCloud::seed(), AFTER).await;
        for c in &checks {
            assert_eq!(c.verdict, Verdict::Pass, "{c:?}");
        }
        assert!(verdict(&checks, "permissions")
            .detail
            .contains("DryRun allowed 2 call(s)"));
    }

    #[tokio::test]
    async fn a_missing_route_warns_unless_its_group_opts_in_and_the_create_is_dry_run() {
        let with_range = |opt_in: bool| {
            let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                serde_json::json!([{"range": "0.0.0.0/0"}, {"range": "172.16.9.0/24"}]);
            v["serverless"] = serde_json::json!({"createMissingRoutes": opt_in});
            v.to_string()
        };
        let c = verdict(
            &run(&MemoryCloud::seed(), &with_range(false)).await,
            "routes",
        );
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert!(c.fix.unwrap().contains("serverless.createMissingRoutes"));
        let cloud = MemoryCloud::seed();
        let checks = run(&cloud, &with_range(true)).await;
        assert_eq!(verdict(&checks, "routes").verdict, Verdict::Pass);
        assert!(cloud.calls().iter().any(|c| c == "CreateRoute(DryRun)"));
        cloud.deny("CreateRoute");
        let c = verdict(&run(&cloud, &with_range(true)).await, "permissions");
        assert!(c.detail.contains("CreateRoute is denied"), "{c:?}");
    }

    #[tokio::test]
    async fn a_scoping_key_the_stack_does_not_allow_fails() {
        let mut v: serde_json::Value = serde_json::from_str(AFTER).unwrap();
        v["failoverAddresses"]["scopingTags"] = serde_json::json!({"team_ha": "web"});
        let checks = run(&MemoryCloud::seed(), &v.to_string()).await;
        let c = verdict(&checks, "scoping-tag-key");
        assert_eq!(c.verdict, Verdict::Fail, "{c:?}");
        assert!(
            c.detail.starts_with("failoverAddresses.scopingTags scopes by team_ha but the stack's IAM policy allows changes only to resources tagged f5_cloud_failover_label"),
            "{c:?}"
        );
        assert_eq!(
            verdict(&run(&MemoryCloud::seed(), AFTER).await, "scoping-tag-key").verdict,
            Verdict::Pass
        );
    }

    #[tokio::test]
    async fn names_the_three_pitfalls_of_the_field_report() {
        let c = verdict(
            &run(&MemoryCloud::seed(), SNAT_NONE).await,
            "next-hops-primary",
        );
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.detail
                .contains("next hop 10.0.4.101 is a secondary IP (a VIP)"),
            "{c:?}"
        );
        assert!(c
            .fix
            .unwrap()
            .contains("declare 10.0.4.11 instead of 10.0.4.101"));

        let cloud = MemoryCloud::seed();
        cloud.set_source_dest_check(SEED_B_EXT, true);
        let c = verdict(&run(&cloud, AFTER).await, "source-dest-check");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c
            .fix
            .unwrap()
            .contains("--network-interface-id eni-04bec0335a47b26c3 --no-source-dest-check"));

        let cloud = MemoryCloud::seed();
        cloud.untag_route_table(SEED_RTB, LABEL_KEY);
        let c = verdict(&run(&cloud, AFTER).await, "route-table-tag");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("lacks the scoping tag"), "{c:?}");
    }

    #[tokio::test]
    async fn denied_permission_fails() {
        let cloud = MemoryCloud::seed();
        cloud.deny("ReplaceRoute");
        let c = verdict(&run(&cloud, AFTER).await, "permissions");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.detail.contains("ReplaceRoute is denied"));
        assert_eq!(cloud.mutation_count(), 0, "DryRun only");
    }
}
