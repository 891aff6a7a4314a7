//! `failoverAddresses`: Elastic IPs, secondary addresses and prefixes that follow the active unit.

use serde_json::Value;

use crate::engine::net::{Cidr, CidrError};

use super::cursor::{ip_value, show_str, Obj, Path};
use super::{parse_endpoint, AddressGroup, DeclarationError, FailoverAddresses};

pub(super) fn parse_addresses(v: &Value, p: Path) -> Result<FailoverAddresses, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let enabled = o.opt_bool("enabled")?.unwrap_or(true);
    let endpoint_dns_name = parse_endpoint(&mut o, "ec2")?;
    let scoping_tags = o.opt_tags("scopingTags")?;
    let require_scoping_tags = o.opt_bool("requireScopingTags")?.unwrap_or(false);
    let mut groups = Vec::new();
    if let Some((items, _)) = o.opt_array("addressGroupDefinitions", 1, 500)? {
        for (v, p) in items {
            let mut g = Obj::new(v, p)?;
            let (kind, kp) = g.req_str("type")?;
            if kind == "networkInterfaceAddress" {
                if let Some((Value::String(text), ap)) = g.opt("scopingAddress") {
                    if text.contains('/') {
                        let prefix: Cidr = text
                            .parse()
                            .map_err(|e: CidrError| ap.err(format!("{} {e}", show_str(text))))?;
                        if prefix.is_ipv6() {
                            return Err(ap.err(format!(
                                "{} is not an IPv4 prefix (only IPv4 prefixes move between interfaces)",
                                show_str(text)
                            )));
                        }
                        if prefix.prefix() != 28 {
                            ap.warn(format!(
                                "{} is not a /28: EC2 delegates IPv4 prefixes as /28 only, so no interface holds it",
                                show_str(text)
                            ));
                        }
                        if let Some((_, vp)) = g.opt("vipAddresses") {
                            vp.warn("is ignored for networkInterfaceAddress (as CFE does): the scopingAddress itself moves");
                        }
                        g.finish()?;
                        let group = AddressGroup::NetworkInterfacePrefix { prefix };
                        if groups.contains(&group) {
                            return Err(ap.err(format!("{} is defined twice", show_str(text))));
                        }
                        groups.push(group);
                        continue;
                    }
                }
            }
            let (addr, ap) = g.req_ip("scopingAddress")?;
            let group = match kind {
                "elasticIpAddress" => {
                    if !addr.is_ipv4() {
                        return Err(ap.err(format!("\"{addr}\" is not an IPv4 Elastic IP")));
                    }
                    let (vips, vp) = g.req_array("vipAddresses", 1, 10)?;
                    let mut vip_addresses = Vec::new();
                    for (v, p) in vips {
                        let ip = ip_value(v, &p)?;
                        if !ip.is_ipv4() {
                            return Err(p.err(format!("\"{ip}\" is not an IPv4 address")));
                        }
                        if vip_addresses.contains(&ip) {
                            return Err(p.err(format!("\"{ip}\" is listed twice")));
                        }
                        vip_addresses.push(ip);
                    }
                    if vip_addresses.len() < 2 {
                        return Err(vp.err("needs one VIP per unit (at least 2)"));
                    }
                    AddressGroup::ElasticIpAddress {
                        scoping_address: addr,
                        vip_addresses,
                    }
                }
                "networkInterfaceAddress" => {
                    // CFE's schema allows vipAddresses here and its own tests send them; its
                    // same-AZ move uses only scopingAddress.
                    if let Some((_, vp)) = g.opt("vipAddresses") {
                        vp.warn("is ignored for networkInterfaceAddress (as CFE does): the scopingAddress itself moves");
                    }
                    AddressGroup::NetworkInterfaceAddress {
                        scoping_address: addr,
                    }
                }
                other => {
                    return Err(kp.err(format!(
                        "{} is not \"elasticIpAddress\" or \"networkInterfaceAddress\"",
                        show_str(other)
                    )))
                }
            };
            g.finish()?;
            let dup = groups.iter().any(|x: &AddressGroup| match (x, &group) {
                (
                    AddressGroup::ElasticIpAddress {
                        scoping_address: a, ..
                    },
                    AddressGroup::ElasticIpAddress {
                        scoping_address: b, ..
                    },
                )
                | (
                    AddressGroup::NetworkInterfaceAddress { scoping_address: a },
                    AddressGroup::NetworkInterfaceAddress { scoping_address: b },
                ) => a == b,
                _ => false,
            });
            if dup {
                return Err(ap.err(format!("\"{addr}\" is defined twice")));
            }
            groups.push(group);
        }
    }
    if scoping_tags.is_none() && groups.is_empty() {
        return Err(o.path.err("needs scopingTags or addressGroupDefinitions"));
    }
    if require_scoping_tags && scoping_tags.is_none() {
        return Err(o
            .path
            .key("requireScopingTags")
            .err("is true but no scopingTags are given"));
    }
    o.finish()?;
    Ok(FailoverAddresses {
        enabled,
        scoping_tags: scoping_tags.unwrap_or_default(),
        require_scoping_tags,
        groups,
        endpoint_dns_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::declaration::with;

    #[test]
    fn vip_addresses_on_a_network_interface_group_are_accepted_and_ignored() {
        // CFE's own functional tests send them (exampleDeclarationAwsPrivateLink.stache).
        let d = with(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([{
                "type": "networkInterfaceAddress",
                "scopingAddress": "10.0.0.101",
                "vipAddresses": ["10.0.0.101", "10.0.4.101"]
            }])
        })
        .unwrap();
        assert_eq!(
            d.addresses().unwrap().groups,
            vec![AddressGroup::NetworkInterfaceAddress {
                scoping_address: "10.0.0.101".parse().unwrap()
            }]
        );
        assert!(
            d.warnings[0].starts_with(
                "failoverAddresses.addressGroupDefinitions[0].vipAddresses: is ignored"
            ),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn an_ipv4_prefix_is_a_network_interface_address() {
        let group = |addr: &str| {
            with(|v| {
                v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                    {"type": "networkInterfaceAddress", "scopingAddress": addr}
                ])
            })
        };
        let d = group("10.0.12.48/28").unwrap();
        assert_eq!(
            d.addresses().unwrap().groups,
            vec![AddressGroup::NetworkInterfacePrefix {
                prefix: "10.0.12.48/28".parse().unwrap()
            }]
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
        let d = group("10.0.12.32/27").unwrap();
        assert!(d.warnings[0].contains("is not a /28"), "{:?}", d.warnings);
        let e = group("10.0.12.49/28").unwrap_err();
        assert_eq!(
            e.to_string(),
            "failoverAddresses.addressGroupDefinitions[0].scopingAddress: \"10.0.12.49/28\" has host bits set (did you mean 10.0.12.48/28?)"
        );
        let e = group("2001:db8::/64").unwrap_err();
        assert!(e.message.contains("is not an IPv4 prefix"), "{e}");
        // An elastic IP is still an address, never a prefix.
        let e = with(|v| {
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                {"type": "elasticIpAddress", "scopingAddress": "10.0.12.48/28", "vipAddresses": ["10.0.0.101", "10.0.4.101"]}
            ])
        })
        .unwrap_err();
        assert!(e.message.contains("is not an IP address"), "{e}");
    }
}
