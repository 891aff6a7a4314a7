//! Inspect: which member the cloud currently follows, per route and per Elastic IP, and the
//! last state the log recorded (the picture is `engine::picture`'s).

use crate::engine::declaration::Declaration;
use crate::engine::discovery::discover;
use crate::engine::error::CloudError;
use crate::engine::lock::current_holder;
use crate::engine::picture::RECENT_RUNS;
pub use crate::engine::picture::{
    picture, CloudVerdict, EipView, Follow, Inspection, MemberView, RouteView, RunSummary,
};
use crate::engine::ports::{Ec2Describe, ObjectStore};
use crate::engine::state::{read_history, recall_detached_eips, StateLog};
use serde_json::Value;

/// Builds the picture from one snapshot (plus the state file).
pub async fn inspect(
    ec2: &dyn Ec2Describe,
    store: &dyn ObjectStore,
    decl: &Declaration,
) -> Result<Inspection, CloudError> {
    let mut snap = discover(ec2, store, decl).await?;
    let Some(bucket) = snap.bucket.clone() else {
        return Ok(picture(decl, &snap, None));
    };
    let log = StateLog {
        store,
        bucket: bucket.clone(),
        decl,
    };
    let cluster = &decl.extension.cluster_name;
    let (state, lock, runs) = futures::try_join!(
        log.read_state(),
        current_holder(store, &bucket, cluster),
        read_history(store, &bucket, cluster, RECENT_RUNS, false),
    )?;
    recall_detached_eips(ec2, decl, state.as_ref(), &mut snap).await?;
    let box_says = state
        .as_ref()
        .and_then(crate::engine::state::last_announcement);
    let last_state = state.map(|s| {
        let mut v = serde_json::Map::new();
        for k in ["taskState", "timestamp", "instance", "message"] {
            v.insert(k.into(), s[k].clone());
        }
        Value::Object(v)
    });
    let mut view = picture(decl, &snap, last_state).with_box(box_says);
    view.lock = lock;
    view.recent_runs = runs;
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::probe::{decide, Health};
    use crate::lab::{SEED_A, SEED_A_EXT, SEED_B, SEED_B_EXT};
    use crate::memory::MemoryCloud;
    use std::collections::BTreeMap;

    async fn view(cloud: &MemoryCloud, d: &Declaration) -> Inspection {
        inspect(cloud, cloud, d).await.unwrap()
    }

    fn healthy(ids: &[&str]) -> BTreeMap<String, Health> {
        ids.iter()
            .map(|id| {
                let mut h = Health::new();
                h.up = true;
                h.successes = 1;
                (id.to_string(), h)
            })
            .collect()
    }

    /// In association-swap mode the twins' routes point at both members by design.
    /// Before the fix inspect always saw drift (active none) and the probe "repaired" a healthy
    /// cluster; routes only, the tie went to the larger instance id (B).
    #[tokio::test]
    async fn swap_mode_follows_the_twin_the_subnets_use() {
        let mut topo = crate::testing::swap::twins();
        topo.elastic_ips.clear();
        let cloud = MemoryCloud::from_topology(&topo);
        let d = crate::testing::swap::decl();
        let v = view(&cloud, &d).await;
        assert_eq!(v.active.as_deref(), Some(SEED_A), "{:?}", v.follows);
        assert!(!v.drift);
        assert_eq!(decide(&v, &healthy(&[SEED_A, SEED_B])), None);
    }

    /// A same-AZ pair whose failover objects are a VIP (secondary IP) and a route:
    /// a VIP left on the other unit is drift; the VIP alone decides who is followed.
    #[tokio::test]
    async fn secondary_ips_count_in_who_is_followed() {
        let cloud = MemoryCloud::from_topology(&crate::testing::same_az());
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v["failoverAddresses"] = serde_json::json!({
            "enabled": true,
            "addressGroupDefinitions": [{"type": "networkInterfaceAddress", "scopingAddress": "10.0.0.101"}]
        });
        v["failoverRoutes"]["routeGroupDefinitions"][0]["defaultNextHopAddresses"]["items"] =
            serde_json::json!(["10.0.0.11", "10.0.0.12"]);
        let d = Declaration::from_value(&v).unwrap();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active.as_deref(), Some(SEED_A));
        // The VIP moves to B behind the cluster's back: the route still follows A.
        cloud
            .assign_private_ips(SEED_B_EXT, &["10.0.0.101".parse().unwrap()], true)
            .await
            .unwrap();
        cloud.settle();
        let pic = view(&cloud, &d).await;
        assert!(pic.drift, "{:?}", pic.follows);
        assert_eq!(pic.active, None);
        // Each member has one item: a tie, so the probe does not pick by id.
        assert_eq!(decide(&pic, &healthy(&[SEED_A, SEED_B])), None);
        // With the route moved as well, B is followed; A down means nothing to do.
        cloud
            .replace_route(
                "rtb-060adeaa8fe5b2bbb",
                "0.0.0.0/0".parse().unwrap(),
                SEED_B_EXT,
            )
            .await
            .unwrap();
        cloud.settle();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active.as_deref(), Some(SEED_B));
        let _ = SEED_A_EXT;
    }

    /// Found by an adversarial review: an EIP whose one VIP no member holds answers no one;
    /// inspect says so (left alone: its VIPs are on no member) rather than "all is well".
    #[tokio::test]
    async fn an_eip_no_member_can_take_is_shown() {
        let mut topo = crate::testing::same_az();
        topo.instances[0].interfaces[1].secondary.clear();
        topo.elastic_ips[0].associated_with = None;
        let cloud = MemoryCloud::from_topology(&topo);
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        v.as_object_mut().unwrap().remove("failoverRoutes");
        let d = Declaration::from_value(&v).unwrap();
        let pic = view(&cloud, &d).await;
        assert_eq!(pic.active, None);
        assert!(
            pic.left_alone
                .iter()
                .any(|w| w.contains("98.80.114.203") && w.contains("none of its VIPs")),
            "{:?}",
            pic.left_alone
        );
    }
}
