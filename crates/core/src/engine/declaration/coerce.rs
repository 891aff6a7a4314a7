//! CFE's type coercions: scalars of the wrong JSON type converted as its validator did.

use serde_json::Value;

use super::cursor::{show, Path};

/// The JSON type CFE's schema gives a scalar property.
#[derive(Clone, Copy)]
enum Want {
    Bool,
    Int,
    Str,
}

/// Where CFE's schema (v1.0–v2.5) types a scalar: `*` is any array item. The `serverless`
/// block is ours and is not coerced.
const CFE_SCALARS: &[(&str, Want)] = &[
    ("class", Want::Str),
    ("schemaVersion", Want::Str),
    ("$schema", Want::Str),
    ("environment", Want::Str),
    ("trustedCertBundle", Want::Str),
    ("controls.class", Want::Str),
    ("controls.logLevel", Want::Str),
    ("externalStorage.scopingName", Want::Str),
    ("externalStorage.stateFileName", Want::Str),
    ("externalStorage.endpointDnsName", Want::Str),
    ("externalStorage.encryption.serverSide.enabled", Want::Bool),
    ("externalStorage.encryption.serverSide.algorithm", Want::Str),
    ("externalStorage.encryption.serverSide.keyId", Want::Str),
    ("failoverAddresses.enabled", Want::Bool),
    ("failoverAddresses.requireScopingTags", Want::Bool),
    ("failoverAddresses.endpointDnsName", Want::Str),
    ("failoverRoutes.enabled", Want::Bool),
    ("failoverRoutes.scopingAddressRanges.*.range", Want::Str),
    (
        "failoverRoutes.scopingAddressRanges.*.nextHopAddresses.discoveryType",
        Want::Str,
    ),
    (
        "failoverRoutes.defaultNextHopAddresses.discoveryType",
        Want::Str,
    ),
    ("failoverRoutes.routeGroupDefinitions.*.scopingName", Want::Str),
    (
        "failoverRoutes.routeGroupDefinitions.*.scopingAddressRanges.*.range",
        Want::Str,
    ),
    (
        "failoverRoutes.routeGroupDefinitions.*.scopingAddressRanges.*.nextHopAddresses.discoveryType",
        Want::Str,
    ),
    (
        "failoverRoutes.routeGroupDefinitions.*.defaultNextHopAddresses.discoveryType",
        Want::Str,
    ),
    ("retryFailover.enabled", Want::Bool),
    ("retryFailover.interval", Want::Int),
];

/// Converts scalars of the wrong JSON type as CFE's validator did (Ajv 6 with
/// `coerceTypes: true`), with one warning per converted field: to a boolean from "true" /
/// "false", 1 / 0 and null; to an integer from a numeric string, a boolean and null; to a
/// string from a number, a boolean and null. Anything else is left for the parser to reject.
pub(super) fn coerce_cfe_types(value: &mut Value, root: &Path) {
    for (pattern, want) in CFE_SCALARS {
        let parts: Vec<&str> = pattern.split('.').collect();
        coerce_at(value, &parts, root.clone(), *want);
    }
}

fn coerce_at(v: &mut Value, parts: &[&str], path: Path, want: Want) {
    let Some((first, rest)) = parts.split_first() else {
        if let Some(new) = coerced(v, want) {
            path.warn(format!(
                "{} read as {new} (CFE converts types; write it as {new})",
                show(v)
            ));
            *v = new;
        }
        return;
    };
    if *first == "*" {
        if let Value::Array(items) = v {
            for (i, item) in items.iter_mut().enumerate() {
                coerce_at(item, rest, path.idx(i), want);
            }
        }
    } else if let Some(child) = v.as_object_mut().and_then(|m| m.get_mut(*first)) {
        coerce_at(child, rest, path.key(first), want);
    }
}

fn coerced(v: &Value, want: Want) -> Option<Value> {
    match (want, v) {
        (Want::Bool, Value::String(s)) if s == "true" => Some(Value::Bool(true)),
        (Want::Bool, Value::String(s)) if s == "false" => Some(Value::Bool(false)),
        (Want::Bool, Value::Number(n)) if n.as_f64() == Some(1.0) => Some(Value::Bool(true)),
        (Want::Bool, Value::Number(n)) if n.as_f64() == Some(0.0) => Some(Value::Bool(false)),
        (Want::Bool, Value::Null) => Some(Value::Bool(false)),
        (Want::Int, Value::String(s)) => {
            let n: f64 = s.trim().parse().ok()?;
            (!s.trim().is_empty() && n.is_finite() && n.fract() == 0.0 && n.abs() < 9.0e15)
                .then(|| Value::from(n as i64))
        }
        (Want::Int, Value::Bool(b)) => Some(Value::from(u8::from(*b))),
        (Want::Int, Value::Null) => Some(Value::from(0)),
        (Want::Str, Value::Number(n)) => {
            Some(Value::String(match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => i.to_string(),
                (_, Some(u), _) => u.to_string(),
                (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => (f as i64).to_string(),
                _ => n.to_string(),
            }))
        }
        (Want::Str, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (Want::Str, Value::Null) => Some(Value::String(String::new())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::declaration::with;
    use serde_json::Value;

    #[test]
    fn cfe_type_coercion_converts_strings_and_warns_per_field() {
        // GIVEN F5's OpenAPI example form: booleans and integers written as strings
        let d = with(|v| {
            v["failoverAddresses"]["enabled"] = "true".into();
            v["failoverRoutes"]["enabled"] = "false".into();
            v["retryFailover"] = serde_json::json!({"enabled": "true", "interval": "5"});
        })
        .unwrap();
        // THEN they mean what they meant under CFE, with a warning naming each field
        assert!(d.failover_addresses.as_ref().unwrap().enabled);
        assert!(!d.failover_routes.as_ref().unwrap().enabled);
        let retry = d.retry_failover.as_ref().unwrap();
        assert!(retry.enabled);
        assert_eq!(retry.interval_minutes, 5);
        let fields: Vec<&str> = d
            .warnings
            .iter()
            .map(|w| w.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "failoverAddresses.enabled",
                "failoverRoutes.enabled",
                "retryFailover.enabled",
                "retryFailover.interval"
            ]
        );
        assert_eq!(
            d.warnings[3],
            "retryFailover.interval: a string (\"5\") read as 5 (CFE converts types; write it as 5)"
        );
        // Ajv's other conversions: 1/0 and null to booleans, numbers to strings.
        let d = with(|v| {
            v["failoverAddresses"]["requireScopingTags"] = 0.into();
            v["failoverRoutes"]["enabled"] = Value::Null;
        })
        .unwrap();
        assert!(!d.addresses().unwrap().require_scoping_tags);
        assert!(d.route_groups().is_empty());
        // What Ajv would not convert stays an error naming the path.
        let e = with(|v| v["failoverAddresses"]["enabled"] = "yes".into()).unwrap_err();
        assert_eq!(e.path, "failoverAddresses.enabled");
        let e = with(|v| v["retryFailover"] = serde_json::json!({"interval": "5.5"})).unwrap_err();
        assert_eq!(e.path, "retryFailover.interval");
        // The serverless block is ours: no conversion there.
        let e = with(|v| v["serverless"] = serde_json::json!({"maxConcurrency": "4"})).unwrap_err();
        assert_eq!(e.path, "serverless.maxConcurrency");
    }
}
