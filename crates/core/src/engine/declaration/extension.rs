//! The `serverless` extension block and its health-probe settings.

use std::net::IpAddr;

use serde_json::Value;

use super::cursor::{show, show_str, Obj, Path};
use super::{
    DeclarationError, Extension, ProbeConfig, ProbeKind, MAX_LOCK_LEASE_SECONDS,
    RESERVED_CLUSTER_NAMES,
};

pub(super) fn parse_extension(
    v: &Value,
    p: Path,
    route_groups: usize,
) -> Result<Extension, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let mut ext = Extension::default();
    if let Some((name, p)) = o.opt_str("clusterName")? {
        let ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if RESERVED_CLUSTER_NAMES.contains(&name) {
            return Err(p.err(format!(
                "{} is reserved: the lock and history objects live under f5cloudfailover/{name}/ (a cluster of that name would write its state file there)",
                show_str(name)
            )));
        }
        if !ok {
            return Err(p.err(format!(
                "{} is not a cluster name (1-64 of A-Z a-z 0-9 - _ .)",
                show_str(name)
            )));
        }
        ext.cluster_name = name.to_string();
    }
    if let Some((v, p)) = o.opt("alarmTargets") {
        let map = v
            .as_object()
            .ok_or_else(|| p.err(format!("expected an object, got {}", show(v))))?;
        for (alarm, target) in map {
            let tp = p.key(alarm);
            let id = target.as_str().ok_or_else(|| {
                tp.err(format!(
                    "expected an instance id string, got {}",
                    show(target)
                ))
            })?;
            if !is_instance_id(id) {
                return Err(tp.err(format!("{} is not an instance id (i-…)", show_str(id))));
            }
            ext.alarm_targets.insert(alarm.clone(), id.to_string());
        }
    }
    if let Some(n) = o.opt_int("maxConcurrency", 1, 64)? {
        ext.max_concurrency = n as usize;
    }
    if let Some(n) = o.opt_int("lockLeaseSeconds", 10, MAX_LOCK_LEASE_SECONDS)? {
        ext.lock_lease_seconds = n;
    }
    if let Some(n) = o.opt_int("cooldownSeconds", 0, 86_400)? {
        ext.cooldown_seconds = n;
    }
    if let Some(n) = o.opt_int("verifySeconds", 0, 60)? {
        ext.verify_seconds = n;
    }
    if let Some(n) = o.opt_int("maxEventAgeSeconds", 0, 86_400)? {
        ext.max_event_age_seconds = n;
    }
    if let Some((id, p)) = o.opt_str("failbackTo")? {
        if !is_instance_id(id) {
            return Err(p.err(format!("{} is not an instance id (i-…)", show_str(id))));
        }
        ext.failback_to = Some(id.to_string());
    }
    if let Some(n) = o.opt_int("mutationRate", 1, 1000)? {
        ext.mutation_rate = n;
    }
    if let Some(n) = o.opt_int("mutationBurst", 1, 1000)? {
        ext.mutation_burst = n;
    }
    if let Some(v) = o.opt_bool("associationSwap")? {
        ext.association_swap = v;
    }
    if let Some((v, cp)) = o.opt("createMissingRoutes") {
        ext.create_missing_routes = match v {
            Value::Bool(true) => (0..route_groups).collect(),
            Value::Bool(false) => Default::default(),
            Value::Array(items) => {
                let mut set = std::collections::BTreeSet::new();
                for (i, item) in items.iter().enumerate() {
                    let ip = cp.idx(i);
                    match item.as_u64() {
                        Some(n) if (n as usize) < route_groups => {
                            set.insert(n as usize);
                        }
                        _ => {
                            return Err(ip.err(format!(
                                "expected the index of a route group (0 to {}), got {}",
                                route_groups.saturating_sub(1),
                                show(item)
                            )))
                        }
                    }
                }
                set
            }
            other => {
                return Err(cp.err(format!(
                    "expected true, false or a list of route group indexes, got {}",
                    show(other)
                )))
            }
        };
    }
    if let Some(v) = o.opt_bool("takeOverGatewayRoutes")? {
        ext.take_over_gateway_routes = v;
    }
    if let Some((id, p)) = o.opt_str("vpcId")? {
        if !is_vpc_id(id) {
            return Err(p.err(format!("{} is not a VPC id (vpc-…)", show_str(id))));
        }
        ext.vpc_id = Some(id.to_string());
    }
    if let Some((items, _)) = o.opt_array("applianceSources", 1, 10)? {
        ext.appliance_sources.clear();
        for (v, p) in items {
            let source = v
                .as_str()
                .ok_or_else(|| p.err(format!("expected a string, got {}", show(v))))?;
            // EventBridge reserves `aws.*` for AWS services; PutEvents cannot send it.
            let ok = (1..=256).contains(&source.len())
                && !source.starts_with("aws.")
                && source.bytes().all(|b| b.is_ascii_graphic());
            if !ok {
                return Err(p.err(format!(
                    "{} is not an event source (1-256 printable characters, not aws.*)",
                    show_str(source)
                )));
            }
            if ext.appliance_sources.iter().any(|s| s == source) {
                return Err(p.err(format!("{} is listed twice", show_str(source))));
            }
            ext.appliance_sources.push(source.to_string());
        }
    }
    if let Some((v, p)) = o.opt("probe") {
        ext.probe = Some(parse_probe(v, p)?);
    }
    if let Some((v, p)) = o.opt("groups") {
        ext.groups = super::groups::parse_groups(v, p)?;
    }
    o.finish()?;
    Ok(ext)
}

pub(super) fn parse_probe(v: &Value, p: Path) -> Result<ProbeConfig, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let mut cfg = ProbeConfig::default();
    if let Some((kind, kp)) = o.opt_str("kind")? {
        cfg.kind = match kind {
            "tcp" => ProbeKind::Tcp,
            "http" => ProbeKind::Http,
            "https" => ProbeKind::Https,
            other => {
                return Err(kp.err(format!(
                    "{} is not \"tcp\", \"http\" or \"https\"",
                    show_str(other)
                )))
            }
        };
    }
    if cfg.kind == ProbeKind::Https {
        cfg.port = 443;
    }
    if let Some(n) = o.opt_int("port", 1, 65535)? {
        cfg.port = n as u16;
    }
    if let Some(v) = o.opt_bool("tlsVerify")? {
        cfg.tls_verify = v;
    }
    if let Some((path, pp)) = o.opt_str("path")? {
        if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(pp.err(format!("{} is not a path starting with /", show_str(path))));
        }
        cfg.path = path.to_string();
    }
    if let Some(n) = o.opt_int("expectStatus", 100, 599)? {
        cfg.expect_status = n as u16;
    }
    if let Some((body, bp)) = o.opt_str("expectBody")? {
        if body.trim().is_empty() {
            return Err(bp.err("is empty: name the whole text the page serves when the unit is active (e.g. ACTIVE)"));
        }
        // The probe compares the whole trimmed body; say so where a substring would mislead.
        let word = body.trim().to_ascii_uppercase();
        if let Some(neg) = ["IN", "NOT ", "UN", "NON"]
            .iter()
            .map(|p| format!("{p}{word}"))
            .find(|n| {
                [
                    "INACTIVE",
                    "NOT ACTIVE",
                    "UNHEALTHY",
                    "NOT UP",
                    "NOT READY",
                    "UNAVAILABLE",
                    "NONACTIVE",
                ]
                .contains(&n.as_str())
            })
        {
            bp.warn(format!(
                "{} is part of {neg:?}: the probe counts a unit up only when the whole page (trimmed) is {}, so serve exactly that when active and anything else (e.g. {neg}) otherwise",
                show_str(body),
                show_str(body)
            ));
        }
        cfg.expect_body = Some(body.to_string());
    }
    if let Some(n) = o.opt_int("intervalMs", 100, 60_000)? {
        cfg.interval_ms = n;
    }
    if let Some(n) = o.opt_int("timeoutMs", 50, 30_000)? {
        cfg.timeout_ms = n;
    }
    if let Some(n) = o.opt_int("failuresToDown", 1, 100)? {
        cfg.failures_to_down = n as u32;
    }
    if let Some(n) = o.opt_int("successesToUp", 1, 100)? {
        cfg.successes_to_up = n as u32;
    }
    if let Some((v, tp)) = o.opt("targets") {
        let map = v.as_object().ok_or_else(|| {
            tp.err(format!(
                "expected an object of instance id to ip:port, got {}",
                show(v)
            ))
        })?;
        for (id, addr) in map {
            let ap = tp.key(id);
            if !is_instance_id(id) {
                return Err(ap.err("the key is not an instance id (i-…)"));
            }
            let text = addr.as_str().ok_or_else(|| {
                ap.err(format!(
                    "expected \"ip:port\" or \"ip\", got {}",
                    show(addr)
                ))
            })?;
            let sock = text
                .parse::<std::net::SocketAddr>()
                .or_else(|_| {
                    text.parse::<IpAddr>()
                        .map(|ip| std::net::SocketAddr::new(ip, cfg.port))
                })
                .map_err(|_| ap.err(format!("{} is not \"ip:port\" or \"ip\"", show_str(text))))?;
            cfg.targets.insert(id.clone(), sock);
        }
    }
    o.finish()?;
    Ok(cfg)
}

/// True for strings shaped like an EC2 instance id.
pub fn is_instance_id(s: &str) -> bool {
    let hex = s.strip_prefix("i-").unwrap_or("");
    (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` looks like a VPC id (`vpc-` and 8 or 17 hex digits).
pub fn is_vpc_id(s: &str) -> bool {
    let hex = s.strip_prefix("vpc-").unwrap_or("");
    (8..=17).contains(&hex.len()) && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::Declaration;
    use crate::testing::declaration::{with, AFTER};

    #[test]
    fn extension_defaults_and_overrides() {
        let d = Declaration::parse(AFTER).unwrap();
        assert_eq!(d.extension, Extension::default());
        let d = with(|v| {
            v["serverless"] = serde_json::json!({
                "clusterName": "web-pair",
                "alarmTargets": {"bigip-a-status": "i-055fd78af29715fbf"},
                "maxConcurrency": 4
            })
        })
        .unwrap();
        assert_eq!(d.extension.cluster_name, "web-pair");
        assert_eq!(d.extension.max_concurrency, 4);
        let e = with(|v| v["serverless"] = serde_json::json!({"alarmTargets": {"x": "eni-1"}}))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "serverless.alarmTargets.x: \"eni-1\" is not an instance id (i-…)"
        );
    }
}
