//! `failoverRoutes`: the route groups, their ranges and next hops.

use serde_json::Value;

use crate::engine::net::{Cidr, CidrError};

use super::cursor::{ip_value, show_str, Obj, Path};
use super::{
    parse_scope, AddressRange, DeclarationError, FailoverRoutes, NextHops, RouteGroup, Scope,
};

pub(super) fn parse_routes(v: &Value, p: Path) -> Result<FailoverRoutes, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let enabled = o.opt_bool("enabled")?.unwrap_or(true);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("routeGroupDefinitions", 1, 100)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            // CFE accepted any string and compared it with route table ids: a table's name
            // matched nothing, so every failover left its routes alone. Refused on paper.
            let scope = parse_scope(&mut g, "a route table id", check_rtb)?;
            let ranges = if g.map.contains_key("scopingAddressRanges") {
                parse_ranges(&mut g)?
            } else {
                // CFE's schema allows it, and CFE defaults the range to "all"; on AWS, v2.4.0
                // then looked each route's CIDR up in the string "all" (cloud.js:1086) and
                // updated none. Nothing is managed here either, rather than every route.
                g.path.key("scopingAddressRanges").warn(
                    "not given: this route group manages no route (CFE's default range \"all\" updated no route on AWS); list the destinations to fail over, e.g. [{\"range\": \"0.0.0.0/0\"}]",
                );
                Vec::new()
            };
            let default_next_hops = parse_default_hops(&mut g)?;
            let gp = g.path.clone();
            g.finish()?;
            if groups.iter().any(|x: &RouteGroup| x.scope == scope) {
                return Err(gp.err("selects the same route tables as an earlier group"));
            }
            groups.push(RouteGroup {
                scope,
                ranges,
                default_next_hops,
            });
        }
        for key in [
            "scopingTags",
            "scopingAddressRanges",
            "defaultNextHopAddresses",
        ] {
            if o.map.contains_key(key) {
                return Err(o
                    .path
                    .key(key)
                    .err("cannot be combined with routeGroupDefinitions (move it into a group)"));
            }
        }
    } else if !enabled
        && ![
            "scopingTags",
            "scopingAddressRanges",
            "defaultNextHopAddresses",
        ]
        .iter()
        .any(|k| o.map.contains_key(*k))
    {
        // `{"enabled": false}` alone: valid under CFE's schema, nothing to fail over.
    } else {
        let tags = o
            .opt_tags("scopingTags")?
            .ok_or_else(|| o.path.err("needs routeGroupDefinitions or scopingTags"))?;
        let ranges = parse_ranges(&mut o)?;
        let default_next_hops = parse_default_hops(&mut o)?;
        groups.push(RouteGroup {
            scope: Scope::Tags(tags),
            ranges,
            default_next_hops,
        });
    }
    o.finish()?;
    Ok(FailoverRoutes { enabled, groups })
}

fn check_rtb(name: &str) -> Result<(), String> {
    let hex = name.strip_prefix("rtb-").unwrap_or("");
    // EC2's ids are lower-case hex: a capital never matches a table.
    if (8..=17).contains(&hex.len())
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    Err(format!(
        "is not a route table id (rtb-…): CFE compared scopingName with route table ids, so it matched no table and no route failed over; give the table's id (aws ec2 describe-route-tables --filters Name=tag:Name,Values={} --query 'RouteTables[].RouteTableId'), or select the table with scopingTags",
        shell_word(name)
    ))
}

/// `s` as one shell word in a suggested command.
fn shell_word(s: &str) -> String {
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn parse_ranges(o: &mut Obj<'_>) -> Result<Vec<AddressRange>, DeclarationError> {
    let (items, _) = o.req_array("scopingAddressRanges", 1, 200)?;
    let mut ranges: Vec<AddressRange> = Vec::new();
    for (v, p) in items {
        // CFE 0.9.1 took plain strings here; later schemas an object with `range`.
        let (text, rp, mut r) = match v {
            Value::String(text) => {
                p.warn("a plain string is CFE 0.9's form: read as {\"range\": …}");
                (text.as_str(), p, None)
            }
            _ => {
                let mut r = Obj::new(v, p)?;
                let (text, rp) = r.req_str("range")?;
                (text, rp, Some(r))
            }
        };
        let range: Cidr = match text.parse() {
            Ok(c) => c,
            Err(CidrError::HostBits(net)) => {
                // CFE accepts it and compares it with the routes' CIDRs as text: no EC2 route
                // has host bits, so it matched nothing. It still matches nothing here.
                rp.warn(format!(
                    "{} has host bits set, so no route matches it (as under CFE); did you mean {net}?",
                    show_str(text)
                ));
                if let Some(r) = r.as_mut() {
                    r.opt("nextHopAddresses");
                }
                if let Some(r) = r {
                    r.finish()?;
                }
                continue;
            }
            Err(e) => return Err(rp.err(format!("{} {e}", show_str(text)))),
        };
        if ranges.iter().any(|x| x.range == range) {
            return Err(rp.err(format!("{} is listed twice", show_str(text))));
        }
        let next_hops = match r.as_mut().and_then(|r| r.opt("nextHopAddresses")) {
            Some((v, p)) => Some(parse_next_hops(v, p)?),
            None => None,
        };
        if let Some(r) = r {
            r.finish()?;
        }
        ranges.push(AddressRange { range, next_hops });
    }
    Ok(ranges)
}

fn parse_default_hops(o: &mut Obj<'_>) -> Result<NextHops, DeclarationError> {
    match o.opt("defaultNextHopAddresses") {
        Some((v, p)) => parse_next_hops(v, p),
        None => Ok(NextHops::RouteTag),
    }
}

fn parse_next_hops(v: &Value, p: Path) -> Result<NextHops, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let (kind, kp) = match o.opt_str("discoveryType")? {
        Some(k) => k,
        None => ("routeTag", o.path.key("discoveryType")),
    };
    let hops = match kind {
        "static" => {
            let (items, _) = o.req_array("items", 1, 10)?;
            let mut ips = Vec::new();
            for (v, p) in items {
                let ip = ip_value(v, &p)?;
                if ips.contains(&ip) {
                    return Err(p.err(format!("\"{ip}\" is listed twice")));
                }
                ips.push(ip);
            }
            NextHops::Static(ips)
        }
        "routeTag" => {
            if o.map.contains_key("items") {
                return Err(o
                    .path
                    .key("items")
                    .err("is only valid with discoveryType \"static\" (routeTag reads the route table's f5_self_ips tag)"));
            }
            NextHops::RouteTag
        }
        other => {
            return Err(kp.err(format!(
                "{} is not \"static\" or \"routeTag\"",
                show_str(other)
            )))
        }
    };
    o.opt_array("items", 0, 10)?;
    o.finish()?;
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use crate::testing::declaration::with;

    #[test]
    fn bad_cidr_names_path_and_value() {
        let e = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"range": "10.0.0.0/33"}))
        })
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[1].range: \"10.0.0.0/33\" is not a CIDR"
        );
    }

    #[test]
    fn disabled_routes_need_nothing_else_as_under_cfe() {
        let d = with(|v| v["failoverRoutes"] = serde_json::json!({"enabled": false})).unwrap();
        assert!(d.route_groups().is_empty());
        // Enabled, or with route settings, the group still has to be complete.
        let e = with(|v| v["failoverRoutes"] = serde_json::json!({"enabled": true})).unwrap_err();
        assert!(
            e.to_string()
                .contains("needs routeGroupDefinitions or scopingTags"),
            "{e}"
        );
        assert!(with(|v| {
            v["failoverRoutes"] =
                serde_json::json!({"enabled": false, "scopingAddressRanges": [{"range": "0.0.0.0/0"}]})
        })
        .is_err());
    }

    #[test]
    fn cfe_0_9_string_ranges_and_host_bit_ranges_load() {
        let d = with(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["scopingAddressRanges"] =
                serde_json::json!(["0.0.0.0/0", {"range": "192.168.1.1/24"}])
        })
        .unwrap();
        let ranges: Vec<String> = d.route_groups()[0]
            .ranges
            .iter()
            .map(|r| r.range.to_string())
            .collect();
        // The host-bit range matched no route under CFE (text comparison); it is left out.
        assert_eq!(ranges, ["0.0.0.0/0"]);
        assert_eq!(d.warnings.len(), 2, "{:?}", d.warnings);
        assert!(d.warnings[1].contains("did you mean 192.168.1.0/24?"));
    }
}
