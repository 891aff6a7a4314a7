//! Fixtures shared by more than one module's tests.

use crate::lab::{tags, Topology, SEED_A_EXT, SEED_B_EXT, SEED_TAG};

/// Same-AZ pair: both units' external ENIs in one subnet; the VIP moves as a secondary IP.
pub(crate) fn same_az() -> Topology {
    let mut topo = Topology::seed();
    let b = &mut topo.instances[1];
    b.az = "us-east-1a".into();
    b.interfaces[1].subnet = "subnet-a-external".into();
    b.interfaces[1].primary = "10.0.0.12".parse().unwrap();
    b.interfaces[1].secondary.clear();
    for (i, n) in [(0usize, SEED_A_EXT), (1, SEED_B_EXT)] {
        let iface = topo.instances[i]
            .interfaces
            .iter_mut()
            .find(|x| x.id == n)
            .unwrap();
        iface.tags = tags([SEED_TAG, ("f5_cloud_failover_nic_map", "external")]);
    }
    topo.elastic_ips[0]
        .tags
        .insert("f5_cloud_failover_vips".into(), "10.0.0.101".into());
    topo
}

/// Same-AZ pair with the prefix 10.0.0.48/28 delegated to A's external interface.
pub(crate) fn same_az_with_prefix() -> Topology {
    let mut topo = same_az();
    topo.instances[0]
        .interfaces
        .iter_mut()
        .find(|x| x.id == SEED_A_EXT)
        .unwrap()
        .prefixes = vec!["10.0.0.48/28".parse().unwrap()];
    topo
}

/// The association-swap pair: one route table per member, and a declaration that swaps them.
pub(crate) mod swap {
    use serde_json::json;

    use crate::engine::declaration::Declaration;
    use crate::engine::plan::MEMBER_TAG;
    use crate::lab::{tags, Topology, SEED_A, SEED_B, SEED_B_EXT, SEED_TAG};

    /// The seed with twin tables: A's (the seed's, both web subnets) and B's.
    pub(crate) fn twins() -> Topology {
        let mut topo = Topology::seed();
        topo.route_tables[0]
            .tags
            .insert(MEMBER_TAG.into(), SEED_A.into());
        let mut b = topo.route_tables[0].clone();
        b.id = "rtb-0bbbbbbbbbbbbbbbb".into();
        b.tags = tags([SEED_TAG, (MEMBER_TAG, SEED_B)]);
        b.routes = vec![("0.0.0.0/0".parse().unwrap(), SEED_B_EXT.into())];
        b.subnets = vec![];
        topo.route_tables.push(b);
        topo
    }

    /// The seed's declaration with one tag-scoped route group and `associationSwap` on.
    pub(crate) fn decl() -> Declaration {
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["failoverRoutes"] = json!({
            "scopingTags": {SEED_TAG.0: SEED_TAG.1},
            "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
            "defaultNextHopAddresses": {"discoveryType": "static", "items": ["10.0.0.11", "10.0.4.11"]}
        });
        v["serverless"] = json!({"associationSwap": true});
        Declaration::from_value(&v).unwrap()
    }
}

/// The seed article's declaration, as parsed by the declaration tests.
pub(crate) mod declaration {
    use serde_json::Value;

    use crate::engine::declaration::{Declaration, DeclarationError};

    /// The seed article's declaration after the fix (A and B, one route table, one EIP).
    pub(crate) const AFTER: &str =
        include_str!("../../../examples/seed-article/declaration-after.json");

    /// [`AFTER`] with `patch` applied, validated.
    pub(crate) fn with(patch: impl FnOnce(&mut Value)) -> Result<Declaration, DeclarationError> {
        let mut v: Value = serde_json::from_str(AFTER).unwrap();
        patch(&mut v);
        Declaration::from_value(&v)
    }
}

/// The planner's tests: the seed's declaration, patched, planned on a cloud.
pub(crate) mod plan {
    use serde_json::Value;

    use crate::engine::declaration::Declaration;
    use crate::engine::discovery::discover;
    use crate::engine::net::Cidr;
    use crate::engine::plan::{plan, Plan, Refusal};
    use crate::engine::ports::{Ec2Describe, ObjectStore};

    pub(crate) use super::declaration::AFTER;

    pub(crate) fn decl(text: &str) -> Declaration {
        Declaration::parse(text).unwrap()
    }

    /// [`AFTER`] with `patch` applied.
    pub(crate) fn patched(patch: impl FnOnce(&mut Value)) -> Declaration {
        super::declaration::with(patch).unwrap()
    }

    /// Discovers `cloud` and plans the failover to `target`.
    pub(crate) async fn plan_on<C: Ec2Describe + ObjectStore>(
        cloud: &C,
        d: &Declaration,
        target: &str,
    ) -> Result<Plan, Refusal> {
        let snap = discover(cloud, cloud, d).await.unwrap();
        plan(d, &snap, target)
    }

    pub(crate) fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    /// CFE 2.2+'s form for the same-AZ pair ([`super::same_az_with_prefix`]): the prefix
    /// 10.0.0.48/28 as a `networkInterfaceAddress`, next hops the units' primary IPs; then
    /// `more`.
    pub(crate) fn prefix_declaration(more: impl FnOnce(&mut Value)) -> Declaration {
        patched(|v| {
            v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
                serde_json::json!(["10.0.0.11", "10.0.0.12"]);
            v["failoverAddresses"]["addressGroupDefinitions"] = serde_json::json!([
                {"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.48/28"}
            ]);
            more(v);
        })
    }

    /// A plan that left items out, as the reasons it gives for them (an item the
    /// target cannot take is skipped, the rest still moves; the run ends PARTIAL).
    pub(crate) fn skipped(p: Plan) -> Refusal {
        assert!(!p.skipped.is_empty(), "nothing skipped: {p:?}");
        Refusal { reasons: p.skipped }
    }
}

/// The sample events of `events/` and the function's home they come from.
pub(crate) mod events {
    use crate::app::events::{parse_text, Home, Intent, Trigger, Trust};
    use crate::engine::declaration::Extension;

    const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

    /// A file of the repository; a sample event's times moved to now (`lab::fresh`).
    pub(crate) fn file(rel: &str) -> String {
        let text = std::fs::read_to_string(format!("{ROOT}/{rel}"))
            .unwrap_or_else(|e| panic!("{rel}: {e}"));
        crate::lab::fresh(&text)
    }

    pub(crate) fn sample(name: &str) -> Trigger {
        parse_text(&file(&format!("events/{name}"))).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    pub(crate) fn home() -> Trust {
        Trust::at(Home {
            account: "123456789012".into(),
            region: "us-east-1".into(),
        })
    }

    pub(crate) fn intent(name: &str) -> Intent {
        sample(name).intent(&Extension::default(), &home())
    }

    pub(crate) fn reason(i: Intent) -> String {
        match i {
            Intent::Ignore { reason } => reason,
            other => panic!("expected an Ignore, got {other:?}"),
        }
    }

    pub(crate) const A: &str = "i-055fd78af29715fbf";
    pub(crate) const B: &str = "i-061cbb31a5158ad30";

    /// A forged SNS alarm: another account and region, a name outside the stack's prefix.
    pub(crate) fn forged_sns(account: &str, region: &str, name: &str) -> Trigger {
        let text = file("events/alarm-sns.json")
            .replace("123456789012", account)
            .replace("us-east-1", region)
            .replace("cloud-failover-i-055fd78af29715fbf-status", name);
        parse_text(&text).unwrap()
    }
}
