//! Many clusters, one deployment: every declaration under a prefix (or in a directory) is one
//! cluster, with its own lock, state file, history and cooldown. An event goes to the cluster
//! that owns its instance or alarm; the index that says so is kept between invocations and
//! refreshed when a declaration's ETag changes (its members are found by the same discovery a
//! run makes, and looked for again when an event names an instance no cluster owns).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use tokio::time::Instant;

use crate::engine::budget::DISCOVERIES_IN_FLIGHT;

use crate::app::events::{instance_id_in, Intent, Trigger, Trust};
use crate::app::location::Location;
use crate::engine::budget::Budget;
use crate::engine::declaration::{Declaration, Extension, MAX_DECLARATION_BYTES};
use crate::engine::discovery::member_ids;
use crate::engine::failover::FailoverError;
use crate::engine::keys;
use crate::engine::pace::Pacing;
use crate::engine::ports::{Ec2Describe, Listed, ObjectStore};
use crate::engine::state::shared_keys;

/// Declarations read from S3 at once (S3 serves thousands of GETs a second per prefix).
const DECLARATION_READS_IN_FLIGHT: usize = 64;

/// How old a cluster's member list may be before an event naming an instance no cluster owns
/// has it looked up again (an appliance replaced since).
pub const MEMBERS_MAX_AGE: Duration = Duration::from_secs(60);

/// One cluster of the fleet.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// The declaration's key under the prefix (or its file name), and `#<group>` for one
    /// failover group of a declaration with `serverless.groups`: names the cluster.
    pub key: String,
    /// The declaration's key (the same for every group of one declaration).
    pub declared: String,
    /// The failover group this cluster is, if the declaration names groups.
    pub group: Option<String>,
    /// The declaration's ETag (or a hash of a file's text) when it was read.
    pub etag: Option<String>,
    /// The declaration.
    pub declaration: Arc<Declaration>,
    /// Its members (instance ids), as discovery found them, and when.
    members: Option<(BTreeSet<String>, Instant)>,
}

impl Cluster {
    /// Its members as last discovered (empty before the first discovery).
    pub fn members(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .flat_map(|(m, _)| m.iter().map(String::as_str))
    }

    fn owns(&self, trigger: &Trigger) -> bool {
        self.claims(trigger)
            && match trigger {
                Trigger::ApplianceActive { .. } => self.takes(trigger.group(), false),
                Trigger::Direct { .. } => self.takes(trigger.group(), true),
                _ => true,
            }
    }

    /// Whether what `trigger` names (its instance or alarm) is this cluster's pair's, whatever
    /// group it names.
    fn claims(&self, trigger: &Trigger) -> bool {
        let member = |id: &str| self.members.as_ref().is_some_and(|(m, _)| m.contains(id));
        match trigger {
            Trigger::Alarm {
                name, instance_ids, ..
            } => {
                self.declaration.extension.alarm_targets.contains_key(name)
                    || instance_ids.iter().any(|i| member(i))
                    || (instance_ids.is_empty() && instance_id_in(name).is_some_and(|i| member(&i)))
            }
            Trigger::InstanceState { instance_id, .. }
            | Trigger::ApplianceActive { instance_id, .. } => member(instance_id),
            Trigger::Direct { target, .. } => member(target),
            Trigger::Schedule { .. } => true,
        }
    }

    /// Whether an event naming `group` (or none) is this cluster's, its instance aside: an
    /// ungrouped pair's whatever it names (a box may always name its traffic group; an
    /// operator's command naming one is refused when acted on); a group's when it names that
    /// group, or names none and is an operator's command (`operator`: every group).
    fn takes(&self, group: Option<&str>, operator: bool) -> bool {
        match (&self.group, group) {
            (None, _) => true,
            (Some(mine), Some(named)) => mine == named,
            (Some(_), None) => operator,
        }
    }
}

/// A cluster's key: the declaration's, and `#<group>` for one of its groups.
pub fn cluster_key(declared: &str, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("{declared}#{g}"),
        None => declared.to_string(),
    }
}

/// Where an event goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// To these clusters (one, except the schedule, which goes to every cluster).
    To(Vec<String>),
    /// Nowhere: no cluster owns what it names (the reason says what).
    Nowhere(String),
}

/// A declaration as last read.
#[derive(Debug)]
struct Loaded {
    /// `None` after a failed read: read again at the next refresh.
    etag: Option<String>,
    /// The declaration, when it parses.
    declaration: Option<Arc<Declaration>>,
    /// Why it cannot serve, if it cannot (does not parse, too large, its own endpoints).
    problem: Option<String>,
}

/// One cluster's result in a fleet's answer: its declaration's key (none when the event went
/// to no cluster), the SQS message it answers, and what was done there. As JSON: the
/// result's own fields (or `status: ERROR` with `errorType` and `errorMessage`), plus
/// `declaration` and `messageId`.
#[derive(Debug)]
pub struct ClusterResult<T> {
    /// The cluster (its declaration's key).
    pub cluster: Option<String>,
    /// The SQS message whose event this answers.
    pub message_id: Option<String>,
    /// What was done there.
    pub result: Result<T, FailoverError>,
}

impl<T: serde::Serialize> serde::Serialize for ClusterResult<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let found = match &self.result {
            Ok(t) => Ok(serde_json::to_value(t).map_err(S::Error::custom)?),
            Err(e) => Err((e.error_type(), e.to_string())),
        };
        serde::Serialize::serialize(
            &result_json(found, self.cluster.as_deref(), self.message_id.as_deref()),
            serializer,
        )
    }
}

/// One cluster's result as JSON, as [`ClusterResult`] shows it (the CLI's fleet output too):
/// what was found, its own fields, or `status: ERROR` with `errorType` and `errorMessage`;
/// plus `declaration` (the key; an answer's own `cluster` is its clusterName) and `messageId`.
pub fn result_json(
    found: Result<serde_json::Value, (&str, String)>,
    declaration: Option<&str>,
    message_id: Option<&str>,
) -> serde_json::Value {
    let mut v = found.unwrap_or_else(|(error_type, message)| {
        serde_json::json!({"status": "ERROR", "errorType": error_type, "errorMessage": message})
    });
    if let Some(obj) = v.as_object_mut() {
        if let Some(key) = declaration {
            obj.insert("declaration".into(), key.into());
        }
        if let Some(id) = message_id {
            obj.insert("messageId".into(), id.into());
        }
    }
    v
}

/// A fleet's answer: each cluster's result, and the declarations left out, with why.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetReport<T> {
    /// Each cluster's result, by key.
    pub clusters: Vec<ClusterResult<T>>,
    /// Declarations that do not load or clash: key → why.
    pub broken: BTreeMap<String, String>,
}

impl<T> FleetReport<T> {
    /// The first cluster's failure, if any.
    pub fn first_error(&self) -> Option<&FailoverError> {
        self.clusters.iter().find_map(|c| c.result.as_ref().err())
    }
}

/// The clusters of a fleet, as last read.
#[derive(Debug)]
pub struct Fleet {
    /// Where the declarations are.
    pub location: Location,
    /// The clusters whose declarations load, by key.
    pub clusters: BTreeMap<String, Cluster>,
    /// Declarations left out, key → why: those that do not load, those that cannot serve in a
    /// fleet, and every one that would share a state file or lock with another.
    pub broken: BTreeMap<String, String>,
    /// The left-out declarations that parse, with their members: an event for one of their
    /// instances is refused, naming why, not IGNORED.
    held: BTreeMap<String, Cluster>,
    /// Every declaration as last read, by key (read again when its ETag changes).
    loaded: BTreeMap<String, Loaded>,
    /// The executor's budget, kept between invocations as the account's buckets are.
    budget: Option<Arc<Budget>>,
}

impl Fleet {
    /// An empty fleet at `location` (read by [`Fleet::refresh`]).
    pub fn new(location: Location) -> Fleet {
        Fleet {
            location,
            clusters: BTreeMap::new(),
            broken: BTreeMap::new(),
            held: BTreeMap::new(),
            loaded: BTreeMap::new(),
            budget: None,
        }
    }

    /// The fleet of one declaration at `location`, already read (a pair with failover groups:
    /// one cluster per group), without reading it again.
    pub fn of(location: Location, declaration: Declaration) -> Fleet {
        let mut fleet = Fleet::new(location);
        fleet.loaded.insert(
            fleet.location.to_string(),
            Loaded {
                etag: None,
                declaration: Some(Arc::new(declaration)),
                problem: None,
            },
        );
        fleet.settle();
        fleet
    }

    /// Lists the declarations (`*.json`) and reads those new or changed since the last
    /// refresh (by ETag); forgets those gone. A location with none is an error (a mistyped
    /// prefix must not answer every event IGNORED). A declaration that does not load or
    /// cannot serve in a fleet, and both of two that would share a state file or lock, are
    /// left out (`broken`, named with why): two clusters on one lock have no right answer,
    /// and which one was there first is not something S3 can tell.
    pub async fn refresh(&mut self, store: &dyn ObjectStore) -> Result<(), FailoverError> {
        let location = self.location.clone();
        let listed = list(store, &location).await?;
        if listed.is_empty() {
            return Err(unavailable(
                &location.to_string(),
                "no declaration (*.json) under it",
            ));
        }
        let keep: BTreeSet<&String> = listed.iter().map(|o| &o.key).collect();
        self.loaded.retain(|k, _| keep.contains(k));
        let changed: Vec<&Listed> = listed
            .iter()
            .filter(|o| {
                o.etag.is_none() || self.loaded.get(&o.key).map(|l| &l.etag) != Some(&o.etag)
            })
            .collect();
        // Read at once, a bounded number at a time: a cold start of a large fleet waits for
        // S3's latency once per batch, not once per declaration.
        let read: Vec<(&Listed, Result<Loaded, FailoverError>)> =
            stream::iter(changed.into_iter().map(|o| {
                let location = &location;
                async move { (o, load(store, location, o).await) }
            }))
            .buffered(DECLARATION_READS_IN_FLIGHT)
            .collect()
            .await;
        for (o, read) in read {
            let loaded = match read {
                Ok(loaded) => loaded,
                // Not read (a throttle, a lost answer): the copy read before stands, to be
                // read again at the next refresh; without one the fleet cannot be known (this
                // declaration may share a lock with another): try again.
                Err(e) => match self.loaded.remove(&o.key) {
                    Some(before) if before.declaration.is_some() => {
                        tracing::warn!(declaration = %o.key, error = %e, "not read again: the copy read before stands");
                        Loaded {
                            etag: None,
                            ..before
                        }
                    }
                    _ => return Err(e),
                },
            };
            self.loaded.insert(o.key.clone(), loaded);
        }
        self.settle();
        Ok(())
    }

    /// The clusters and the left-out declarations from what was read; members kept for
    /// declarations that did not change.
    fn settle(&mut self) {
        let previous: BTreeMap<String, Cluster> = std::mem::take(&mut self.clusters)
            .into_iter()
            .chain(std::mem::take(&mut self.held))
            .collect();
        // Every cluster the declarations are: one per declaration, or one per failover group.
        let parts: Vec<(Cluster, Option<&String>)> = self
            .loaded
            .iter()
            .filter_map(|(k, l)| Some((k, l, l.declaration.as_ref()?)))
            .flat_map(|(declared, l, d)| {
                let groups: Vec<(Option<String>, Arc<Declaration>)> = if d.is_grouped() {
                    d.per_group()
                        .into_iter()
                        .map(|(g, d)| (g, Arc::new(d)))
                        .collect()
                } else {
                    vec![(None, d.clone())]
                };
                let previous = &previous;
                groups.into_iter().map(move |(group, declaration)| {
                    let key = cluster_key(declared, group.as_deref());
                    let members = previous
                        .get(&key)
                        .filter(|c| c.etag == l.etag)
                        .and_then(|c| c.members.clone());
                    let cluster = Cluster {
                        key,
                        declared: declared.clone(),
                        group,
                        etag: l.etag.clone(),
                        declaration,
                        members,
                    };
                    (cluster, l.problem.as_ref())
                })
            })
            .collect();
        let mut broken: BTreeMap<String, String> = self
            .loaded
            .iter()
            .filter_map(|(k, l)| Some((k.clone(), l.problem.clone()?)))
            .collect();
        for (c, problem) in &parts {
            if problem.is_some() {
                self.held.insert(c.key.clone(), c.clone());
                continue;
            }
            // Two clusters on one lock or state file (a group's own are `<clusterName>.<group>`).
            let clash: Vec<String> = parts
                .iter()
                .filter(|(o, p)| o.declared != c.declared && p.is_none())
                .filter_map(|(o, _)| {
                    let why = shared_keys(&c.declaration, &o.declaration)
                        .into_iter()
                        .next()?;
                    Some(format!("{}: {why}", o.key))
                })
                .collect();
            if clash.is_empty() {
                self.clusters.insert(c.key.clone(), c.clone());
            } else {
                broken.insert(
                    c.key.clone(),
                    format!(
                        "shares a state file or lock with {} (both are left out while they do)",
                        clash.join("; ")
                    ),
                );
                self.held.insert(c.key.clone(), c.clone());
            }
        }
        self.broken = broken;
    }

    /// The budget the executor's runs share: the one kept from earlier invocations (its
    /// buckets spent as the account's are), its pacing set to the fleet's as it is now.
    pub fn budget(&mut self) -> Arc<Budget> {
        let keys: Vec<String> = self.clusters.keys().cloned().collect();
        let pacing = self.pacing(&keys);
        let b = self
            .budget
            .get_or_insert_with(|| Arc::new(Budget::new(pacing)));
        b.pacer.set_pacing(pacing);
        b.clone()
    }

    /// Discovers the members of every cluster whose list is missing or older than `max_age`
    /// (a few clusters at a time). A cluster whose discovery fails keeps its old list; the
    /// failures are returned (cluster key, error).
    pub async fn discover_members(
        &mut self,
        ec2: &dyn Ec2Describe,
        max_age: Duration,
    ) -> Vec<(String, String)> {
        self.discover_where(ec2, |c| {
            c.members
                .as_ref()
                .is_none_or(|(_, at)| at.elapsed() >= max_age)
        })
        .await
    }

    /// The clusters not yet discovered (a cold start).
    pub fn undiscovered(&self) -> usize {
        self.declarations().filter(|c| c.members.is_none()).count()
    }

    /// Discovers, among the clusters not yet discovered, those an event naming `instances`
    /// may be for: whose address scoping tags an interface of one of them carries, or whose
    /// `alarmTargets` name one. At a cold start this routes an event by what it names, with a
    /// few clusters' discovery instead of every one's; the others are discovered when an event
    /// is owned by none of those found (as before), or a later invocation needs them.
    pub async fn discover_candidates(
        &mut self,
        ec2: &dyn Ec2Describe,
        instances: &[crate::engine::model::Instance],
    ) -> Vec<(String, String)> {
        let named = |c: &Cluster| {
            let decl = &c.declaration;
            let by_alarm = decl
                .extension
                .alarm_targets
                .values()
                .any(|t| instances.iter().any(|i| &i.id == t));
            let by_tags = decl.addresses().is_some_and(|a| {
                !a.scoping_tags.is_empty()
                    && instances
                        .iter()
                        .flat_map(|i| &i.network_interfaces)
                        .any(|n| crate::engine::discovery::matches(&n.tags, &a.scoping_tags))
            });
            by_alarm || by_tags
        };
        self.discover_where(ec2, |c| c.members.is_none() && named(c))
            .await
    }

    /// Discovers the members of the clusters `pick` selects (a few at a time).
    async fn discover_where(
        &mut self,
        ec2: &dyn Ec2Describe,
        pick: impl Fn(&Cluster) -> bool,
    ) -> Vec<(String, String)> {
        let stale: Vec<(String, Arc<Declaration>)> = self
            .clusters
            .values()
            .chain(self.held.values())
            .filter(|c| pick(c))
            .map(|c| (c.key.clone(), c.declaration.clone()))
            .collect();
        let found: Vec<_> = stream::iter(stale.into_iter().map(|(key, decl)| async move {
            let ids = member_ids(ec2, &decl).await;
            (key, ids.map(|ids| ids.into_iter().collect()))
        }))
        .buffer_unordered(DISCOVERIES_IN_FLIGHT)
        .collect()
        .await;
        let mut failures = Vec::new();
        for (key, members) in found {
            let cluster = match self.clusters.get_mut(&key) {
                Some(c) => Some(c),
                None => self.held.get_mut(&key),
            };
            match (members, cluster) {
                (Ok(m), Some(c)) => c.members = Some((m, Instant::now())),
                (Err(e), _) => failures.push((key, e.to_string())),
                _ => {}
            }
        }
        failures
    }

    /// Instances more than one cluster counts as a member (each with those clusters' keys):
    /// their events could go to neither.
    pub fn shared_members(&self) -> BTreeMap<String, Vec<String>> {
        let mut by_member: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for c in self.clusters.values() {
            for m in c.members() {
                let keys = by_member.entry(m.to_string()).or_default();
                // A pair's failover groups share their members.
                if !keys.contains(&c.declared) {
                    keys.push(c.declared.clone());
                }
            }
        }
        by_member.retain(|_, keys| keys.len() > 1);
        by_member
    }

    /// Whether some cluster would act on `trigger` if it owned what it names (its intent under
    /// that cluster's declaration is not to ignore it): only then is an event no cluster owns
    /// worth looking up the members again for.
    /// A declaration left out (`broken`) counts with the defaults (its own are unknown).
    pub fn would_act(&self, trigger: &Trigger, trust: &Trust) -> bool {
        let acts = |ext: &Extension| !matches!(trigger.intent(ext, trust), Intent::Ignore { .. });
        self.clusters
            .values()
            .any(|c| acts(&c.declaration.extension))
            || self.held.values().any(|c| acts(&c.declaration.extension))
            || (self.unread().next().is_some() && acts(&Extension::default()))
    }

    /// Every declaration that parses, serving or left out.
    pub fn declarations(&self) -> impl Iterator<Item = &Cluster> {
        self.clusters.values().chain(self.held.values())
    }

    /// The left-out declarations that do not parse (their pairs unknown), with why.
    pub fn unread(&self) -> impl Iterator<Item = (&String, &String)> {
        self.broken.iter().filter(|(k, _)| {
            !self
                .held
                .values()
                .any(|c| c.key == **k || c.declared == **k)
        })
    }

    /// The clusters that own what `trigger` names, by the index as it is.
    pub fn owners(&self, trigger: &Trigger) -> Vec<String> {
        self.clusters
            .values()
            .filter(|c| c.owns(trigger))
            .map(|c| c.key.clone())
            .collect()
    }

    /// Where `trigger` goes: the one cluster owning its instance or alarm, or each failover
    /// group of that pair the event is for (the schedule: every cluster). Owned by none →
    /// `Nowhere` (a grouped pair's announcement naming no group or another: refused, naming
    /// the field); claimed by two declarations → a configuration error naming both.
    pub fn route(&self, trigger: &Trigger) -> Result<Route, FailoverError> {
        let owners = self.owners(trigger);
        if matches!(trigger, Trigger::Schedule { .. }) {
            return Ok(Route::To(owners));
        }
        let held: Vec<String> = self
            .held
            .values()
            .filter(|c| c.owns(trigger))
            .map(|c| {
                let why = self
                    .broken
                    .get(&c.key)
                    .or_else(|| self.broken.get(&c.declared));
                format!("{} ({})", c.key, why.map_or("", String::as_str))
            })
            .collect();
        if !held.is_empty() {
            return Err(FailoverError::Fleet(format!(
                "{} belongs to a declaration left out: {}",
                named(trigger),
                held.join("; ")
            )));
        }
        // Two declarations whose pairs have the instance or alarm (two pairs sharing a unit, or
        // one pair declared with groups and without): the event is neither's, whatever group
        // it names.
        let claimants: Vec<&str> = self
            .clusters
            .values()
            .filter(|c| c.claims(trigger))
            .map(|c| c.declared.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if claimants.len() > 1 {
            return Err(FailoverError::Fleet(format!(
                "{} is claimed by more than one cluster: {}; give each pair its own addresses, route tables and alarms",
                named(trigger),
                claimants.join(", ")
            )));
        }
        if owners.is_empty() {
            if let Some(e) = self.group_not_named(trigger) {
                return Err(e);
            }
            return Ok(Route::Nowhere(match &self.location {
                l if l.is_fleet() => format!(
                    "no cluster of the fleet ({} declarations) owns {}",
                    self.clusters.len(),
                    named(trigger)
                ),
                _ => format!("{} is not this cluster's", named(trigger)),
            }));
        }
        // One pair's cluster, or each of its failover groups the event is for (they share
        // their members; each moves its own items).
        Ok(Route::To(owners))
    }

    /// Why an event for a grouped pair's unit is no group's: an announcement that names no
    /// group (which of the unit's groups became active is the box's to say), or a group the
    /// pair does not have.
    fn group_not_named(&self, trigger: &Trigger) -> Option<FailoverError> {
        let instance = match trigger {
            Trigger::ApplianceActive { instance_id, .. } => instance_id,
            Trigger::Direct { target, .. } => target,
            _ => return None,
        };
        let groups: Vec<&Cluster> = self
            .clusters
            .values()
            .filter(|c| c.group.is_some())
            .filter(|c| {
                c.members
                    .as_ref()
                    .is_some_and(|(m, _)| m.contains(instance))
            })
            .collect();
        let first = groups.first()?;
        let names: Vec<&str> = groups.iter().filter_map(|c| c.group.as_deref()).collect();
        let field = match trigger {
            Trigger::ApplianceActive { .. } => "detail.group, or BIG-IP's detail.trafficGroup",
            _ => "group",
        };
        Some(FailoverError::Refused(vec![match trigger.group() {
            None => format!(
                "{} names no failover group, and its pair ({}) has several: {}; the announcement names the group the unit became active for ({field})",
                named(trigger),
                first.declared,
                names.join(", ")
            ),
            Some(g) => format!(
                "{} names failover group {g:?}, which its pair ({}) does not have ({field}; its groups: {})",
                named(trigger),
                first.declared,
                names.join(", ")
            ),
        }]))
    }

    /// One cluster's path, mapped over the fleet as last read ([`Fleet::refresh`]): `run` on
    /// each cluster `selects` keeps, `in_flight` at a time, in key order; an error when no
    /// declaration loads.
    pub async fn map<T, F, Fut>(
        &self,
        selects: impl Fn(&Declaration) -> bool,
        in_flight: usize,
        run: F,
    ) -> Result<FleetReport<T>, FailoverError>
    where
        F: Fn(Arc<Declaration>) -> Fut,
        Fut: std::future::Future<Output = Result<T, FailoverError>>,
    {
        if self.clusters.is_empty() {
            return Err(FailoverError::Fleet(format!(
                "no declaration of the fleet loads: {}",
                left_out(self.broken.iter())
            )));
        }
        let chosen: Vec<(String, Arc<Declaration>)> = self
            .clusters
            .values()
            .filter(|c| selects(&c.declaration))
            .map(|c| (c.key.clone(), c.declaration.clone()))
            .collect();
        let run = &run;
        let clusters = stream::iter(chosen.into_iter().map(|(key, decl)| async move {
            let span = tracing::info_span!("cluster", cluster = %key);
            ClusterResult {
                result: tracing::Instrument::instrument(run(decl), span).await,
                cluster: Some(key),
                message_id: None,
            }
        }))
        .buffered(in_flight.max(1))
        .collect()
        .await;
        Ok(FleetReport {
            clusters,
            broken: self.broken.clone(),
        })
    }

    /// The pacing one executor uses for the account: the most cautious of `keys`' declarations.
    pub fn pacing(&self, keys: &[String]) -> Pacing {
        keys.iter()
            .filter_map(|k| self.clusters.get(k))
            .map(|c| Pacing {
                rate: c.declaration.extension.mutation_rate as f64,
                burst: c.declaration.extension.mutation_burst as f64,
            })
            .reduce(|a, b| Pacing {
                rate: a.rate.min(b.rate),
                burst: a.burst.min(b.burst),
            })
            .unwrap_or_default()
    }
}

/// What a trigger names, for a reason.
fn named(trigger: &Trigger) -> String {
    match trigger {
        Trigger::Alarm {
            name, instance_ids, ..
        } => match instance_ids.as_slice() {
            [] => format!("alarm {name:?}"),
            ids => format!("alarm {name:?} (on {})", ids.join(", ")),
        },
        Trigger::InstanceState { instance_id, .. }
        | Trigger::ApplianceActive { instance_id, .. } => format!("instance {instance_id}"),
        Trigger::Direct { target, .. } => format!("instance {target}"),
        Trigger::Schedule { .. } => "the schedule".into(),
    }
}

fn unavailable(location: &str, reason: &str) -> FailoverError {
    FailoverError::DeclarationUnavailable {
        location: location.into(),
        reason: reason.into(),
    }
}

/// The declarations at a fleet location: every `*.json` object (any case) under a prefix
/// but this project's own records (`f5cloudfailover/`); a directory's `*.json` files, named by
/// file name and tagged by a hash of their text.
async fn list(store: &dyn ObjectStore, location: &Location) -> Result<Vec<Listed>, FailoverError> {
    let json = |key: &str| key.to_ascii_lowercase().ends_with(".json");
    match location {
        Location::Prefix { bucket, prefix } => Ok(store
            .list_objects(bucket, prefix)
            .await
            .map_err(|e| unavailable(&location.to_string(), &e.to_string()))?
            .into_iter()
            .filter(|o| json(&o.key) && !o.key.starts_with(&format!("{}/", keys::PREFIX)))
            .collect()),
        Location::Dir(dir) => {
            let entries = std::fs::read_dir(dir)
                .map_err(|e| unavailable(&location.to_string(), &e.to_string()))?;
            let mut out = Vec::new();
            for e in entries.flatten() {
                let key = e.file_name().to_string_lossy().into_owned();
                // Through symlinks, as the files are read.
                let meta = std::fs::metadata(e.path()).ok();
                if !json(&key) || !meta.as_ref().is_some_and(|m| m.is_file()) {
                    continue;
                }
                let size = meta.as_ref().map_or(0, |m| m.len());
                let text = if size <= MAX_DECLARATION_BYTES as u64 {
                    std::fs::read(e.path()).unwrap_or_default()
                } else {
                    Vec::new()
                };
                out.push(Listed {
                    key,
                    etag: Some(format!("{:x}-{size}", fnv(&text))),
                    size,
                });
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        }
        one => Ok(vec![Listed {
            key: one.to_string(),
            etag: None,
            size: 0,
        }]),
    }
}

/// The declaration `o` names, read and judged (too large: not read); an error when it could
/// not be read at all.
async fn load(
    store: &dyn ObjectStore,
    location: &Location,
    o: &Listed,
) -> Result<Loaded, FailoverError> {
    let etag = o.etag.clone();
    if o.size > MAX_DECLARATION_BYTES as u64 {
        return Ok(Loaded {
            etag,
            declaration: None,
            problem: Some(format!(
                "is {} bytes, more than the {MAX_DECLARATION_BYTES} a declaration may have: not read",
                o.size
            )),
        });
    }
    match read(store, location, &o.key).await {
        Ok(decl) => Ok(Loaded {
            etag,
            // One declaration (an SQS batch in single-pair mode) keeps its settings: the
            // function's clients follow them.
            problem: location.is_fleet().then(|| own_endpoints(&decl)).flatten(),
            declaration: Some(Arc::new(decl)),
        }),
        Err(FailoverError::Declaration(e)) => Ok(Loaded {
            etag,
            declaration: None,
            problem: Some(format!("invalid declaration: {e}")),
        }),
        Err(e) => Err(e),
    }
}

/// Why a declaration cannot serve in a fleet, if it cannot: it sets its own endpoints or CA
/// certificates (a fleet's pairs share the function's clients).
fn own_endpoints(decl: &Declaration) -> Option<String> {
    let own = decl.own_endpoints();
    (!own.is_empty()).then(|| {
        format!(
            "sets {}: a fleet's pairs share the function's endpoints and CA certificates; remove them, or give this pair a stack of its own",
            own.join(", ")
        )
    })
}

/// Reads and validates the declaration `key` of `location`.
async fn read(
    store: &dyn ObjectStore,
    location: &Location,
    key: &str,
) -> Result<Declaration, FailoverError> {
    let one = match location {
        Location::Prefix { bucket, .. } => Location::S3 {
            bucket: bucket.clone(),
            key: key.into(),
        },
        Location::Dir(dir) => Location::File(dir.join(key)),
        one => one.clone(),
    };
    crate::app::location::load_declaration(store, &one).await
}

/// FNV-1a: a file's content tag (not a security hash).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
    })
}

/// Declarations left out, each with why: `key (why); …`.
pub fn left_out<'a>(declarations: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    declarations
        .map(|(k, why)| format!("{k} ({why})"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::events::{Home, Trust};
    use crate::app::handler::{handle_fleet, Invocation};
    use crate::engine::answer::Answer;
    use crate::engine::answer::Status;
    use crate::engine::declaration::Encryption;
    use crate::lab::{fleet_member, FleetMember, SEED_A};
    use crate::memory::MemoryCloud;
    use serde_json::Value;

    const BUCKET: &str = "fleet-state-0";

    /// `n` clusters in one account (one VPC each, one addressing plan), their declarations
    /// under `fleet/` in the first cluster's state bucket.
    async fn account(n: usize) -> (MemoryCloud, Vec<FleetMember>) {
        let cloud = MemoryCloud::new();
        let fleet: Vec<FleetMember> = (0..n).map(|i| fleet_member(i, 2, 3)).collect();
        for (i, c) in fleet.iter().enumerate() {
            cloud.add_topology(&c.topology);
            put(&cloud, &format!("pair-{i}.json"), &c.declaration_json).await;
        }
        (cloud, fleet)
    }

    async fn put(cloud: &MemoryCloud, name: &str, v: &Value) {
        cloud
            .put_object(
                BUCKET,
                &format!("fleet/{name}"),
                v.to_string().into_bytes(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
    }

    fn location() -> Location {
        "s3://fleet-state-0/fleet/".parse().unwrap()
    }

    /// Cluster `c`'s unit A fails its status checks (the alarm's EventBridge event).
    fn alarm_on(instance: &str) -> Value {
        let text = crate::lab::fresh(include_str!("../../../../events/alarm-eventbridge.json"))
            .replace(SEED_A, instance);
        crate::engine::json::parse(&text).unwrap()
    }

    fn invocation() -> Invocation {
        Invocation {
            trust: Trust::at(Home {
                account: "123456789012".into(),
                region: "us-east-1".into(),
            }),
            ..Invocation::default()
        }
    }

    fn only(answers: &[Vec<ClusterResult<Answer>>], i: usize) -> &ClusterResult<Answer> {
        let [one] = answers[i].as_slice() else {
            panic!("event {i}: {:?}", answers[i])
        };
        one
    }

    fn follows_standby(cloud: &MemoryCloud, c: &FleetMember) -> bool {
        let default = "0.0.0.0/0".parse().unwrap();
        c.tables
            .iter()
            .all(|t| cloud.route_target(t, default).as_deref() == Some(c.standby_eni.as_str()))
            && cloud
                .elastic_ip(c.eip)
                .and_then(|e| e.network_interface_id)
                .as_deref()
                == Some(c.standby_eni.as_str())
    }

    /// Three pairs with one addressing plan: each alarm fails over its own cluster and no
    /// other; the same alarm names no cluster's instance after a refresh finds nothing new.
    #[tokio::test]
    async fn each_event_goes_to_the_cluster_that_owns_its_instance() {
        let (cloud, members) = account(3).await;
        let mut fleet = Fleet::new(location());
        let a1 = members[1].topology.instances[0].id.clone();
        let answers =
            handle_fleet(&cloud, &cloud, &mut fleet, &[alarm_on(&a1)], invocation()).await;
        let one = only(&answers, 0);
        assert_eq!(one.cluster.as_deref(), Some("fleet/pair-1.json"));
        let answer = one.result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Succeeded, "{answer}");
        assert!(follows_standby(&cloud, &members[1]));
        assert!(!follows_standby(&cloud, &members[0]));
        assert!(!follows_standby(&cloud, &members[2]));
        let planned = answer.report().unwrap().plan.operations.len();
        assert_eq!(planned, 1 + 2 * 3);

        // Both other pairs' alarms in one batch: both fail over, each its own.
        let (a0, a2) = (
            members[0].topology.instances[0].id.clone(),
            members[2].topology.instances[0].id.clone(),
        );
        cloud.reset_calls();
        let answers = handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[alarm_on(&a0), alarm_on(&a2)],
            invocation(),
        )
        .await;
        assert_eq!(
            only(&answers, 0).cluster.as_deref(),
            Some("fleet/pair-0.json")
        );
        assert_eq!(
            only(&answers, 1).cluster.as_deref(),
            Some("fleet/pair-2.json")
        );
        assert!(members.iter().all(|c| follows_standby(&cloud, c)));
        assert_eq!(cloud.mutation_count(), 2 * planned, "{:?}", cloud.calls());
        // The index was kept: no declaration read again (same ETags), no membership discovery.
        let gets = cloud.calls().iter().filter(|c| *c == "GetObject").count();
        let lists = cloud
            .calls()
            .iter()
            .filter(|c| *c == "ListObjectsV2")
            .count();
        // The fleet's listing, and each run's of its pair's members' locks.
        assert_eq!(lists, 1 + 2, "{:?}", cloud.calls());
        assert!(
            gets <= 2 * 2,
            "only the runs' state files (and lock reads), not the declarations: {:?}",
            cloud.calls()
        );
    }

    /// An EC2 state change no cluster would act on (an instance starting that no declaration
    /// fails back to) costs no lookup; one that would (an unknown instance stopping) has the
    /// members looked up again, at most once a minute.
    /// An appliance of pair 1 cannot announce pair 2's instance: each pair's declaration lists
    /// its own `applianceSources`, and its appliances' role may put events with that source
    /// only (the bus policy's `events:source` condition); an announcement from pair 1's source
    /// naming pair 2's instance is IGNORED and flagged, and pair 2 stays where it is.
    #[tokio::test]
    async fn an_announcement_binds_to_its_own_pairs_source() {
        let cloud = MemoryCloud::new();
        let fleet_members: Vec<FleetMember> = (0..2).map(|i| fleet_member(i, 1, 1)).collect();
        for (i, c) in fleet_members.iter().enumerate() {
            cloud.add_topology(&c.topology);
            let mut v = c.declaration_json.clone();
            v["serverless"]["applianceSources"] =
                serde_json::json!([format!("bigip.failover.pair-{i}")]);
            put(&cloud, &format!("pair-{i}.json"), &v).await;
        }
        let announce = |source: &str, instance: &str| {
            let mut e = crate::engine::json::parse(&crate::lab::fresh(include_str!(
                "../../../../events/appliance-active.json"
            )))
            .unwrap();
            e["source"] = source.into();
            e["detail"]["instanceId"] = instance.into();
            e
        };
        let mut fleet = Fleet::new(location());
        let forged = announce("bigip.failover.pair-0", &fleet_members[1].standby);
        let answers = handle_fleet(&cloud, &cloud, &mut fleet, &[forged], invocation()).await;
        let one = only(&answers, 0);
        let answer = one.result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Ignored, "{answer}");
        assert!(
            answer.to_string().contains("bigip.failover.pair-0"),
            "{answer}"
        );
        assert!(!follows_standby(&cloud, &fleet_members[1]));
        // Its own source is carried out.
        let own = announce("bigip.failover.pair-1", &fleet_members[1].standby);
        let answers = handle_fleet(&cloud, &cloud, &mut fleet, &[own], invocation()).await;
        let answer = only(&answers, 0).result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Succeeded, "{answer}");
        assert!(follows_standby(&cloud, &fleet_members[1]));
    }

    /// A neighbour's scope problem never stops a healthy pair. Two pairs in two VPCs with one
    /// addressing plan: pair 1's declaration has only its EIP (no routes), and its VPC comes
    /// from the interface holding its own tagged EIP, not from every interface holding the
    /// same VIPs (pair 0's too); both pairs' alarms are carried out, each its own. A pair
    /// whose scope spans VPCs (a route table that lost its tag, next hops held in both) is
    /// left out of routing and named; the other pair's alarm still runs.
    #[tokio::test]
    async fn a_neighbours_scope_never_blocks_a_pair() {
        let cloud = MemoryCloud::new();
        let pairs: Vec<FleetMember> = (0..2).map(|i| fleet_member(i, 1, 1)).collect();
        for c in &pairs {
            cloud.add_topology(&c.topology);
        }
        put(&cloud, "pair-0.json", &pairs[0].declaration_json).await;
        let mut eip_only = pairs[1].declaration_json.clone();
        eip_only.as_object_mut().unwrap().remove("failoverRoutes");
        put(&cloud, "pair-1.json", &eip_only).await;
        let mut fleet = Fleet::new(location());
        let alarms: Vec<Value> = pairs
            .iter()
            .map(|p| alarm_on(&p.topology.instances[0].id))
            .collect();
        let answers = handle_fleet(&cloud, &cloud, &mut fleet, &alarms, invocation()).await;
        for (i, p) in pairs.iter().enumerate() {
            let a = only(&answers, i);
            assert_eq!(a.cluster.as_deref(), Some(&*format!("fleet/pair-{i}.json")));
            let answer = a.result.as_ref().unwrap();
            assert_eq!(answer.status(), Status::Succeeded, "{answer}");
            let eip = cloud.elastic_ip(p.eip).unwrap();
            assert_eq!(eip.network_interface_id.as_deref(), Some(&*p.standby_eni));
        }
        // Pair 1 by routes only, its table untagged: its next hops are held in both VPCs.
        let cloud = MemoryCloud::new();
        for c in &pairs {
            cloud.add_topology(&c.topology);
        }
        put(&cloud, "pair-0.json", &pairs[0].declaration_json).await;
        let mut routes_only = pairs[1].declaration_json.clone();
        routes_only
            .as_object_mut()
            .unwrap()
            .remove("failoverAddresses");
        put(&cloud, "pair-1.json", &routes_only).await;
        cloud.untag_route_table(&pairs[1].tables[0], crate::lab::SEED_TAG.0);
        let mut fleet = Fleet::new(location());
        let answers = handle_fleet(&cloud, &cloud, &mut fleet, &alarms[..1], invocation()).await;
        let answer = only(&answers, 0).result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Succeeded, "{answer}");
        assert!(follows_standby(&cloud, &pairs[0]));
    }

    #[tokio::test]
    async fn only_an_event_a_cluster_would_act_on_is_looked_up() {
        let (cloud, _) = account(2).await;
        let mut fleet = Fleet::new(location());
        let state = |id: &str, state: &str| {
            let mut e = crate::engine::json::parse(&crate::lab::fresh(include_str!(
                "../../../../events/ec2-state-change.json"
            )))
            .unwrap();
            e["detail"]["instance-id"] = id.into();
            e["detail"]["state"] = state.into();
            e
        };
        let stranger = "i-0123456789abcdef0";
        let age = |fleet: &mut Fleet| {
            for c in fleet.clusters.values_mut() {
                c.members = c.members.take().map(|(m, at)| (m, at - MEMBERS_MAX_AGE));
            }
        };
        let describes = |cloud: &MemoryCloud| {
            cloud
                .calls()
                .iter()
                .filter(|c| c.starts_with("Describe"))
                .count()
        };
        // The index is built, then its members are a minute old.
        handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[state(stranger, "running")],
            invocation(),
        )
        .await;
        age(&mut fleet);
        cloud.reset_calls();
        let answers = handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[state(stranger, "running")],
            invocation(),
        )
        .await;
        assert_eq!(
            only(&answers, 0).result.as_ref().unwrap().status(),
            Status::Ignored
        );
        assert_eq!(
            describes(&cloud),
            0,
            "nobody fails back to it: {:?}",
            cloud.calls()
        );
        let answers = handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[state(stranger, "stopping")],
            invocation(),
        )
        .await;
        assert_eq!(
            only(&answers, 0).result.as_ref().unwrap().status(),
            Status::Ignored
        );
        assert!(
            describes(&cloud) > 0,
            "a member may have been replaced: {:?}",
            cloud.calls()
        );
        // Looked up: fresh for a minute.
        cloud.reset_calls();
        handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[state(stranger, "stopping")],
            invocation(),
        )
        .await;
        assert_eq!(describes(&cloud), 0, "{:?}", cloud.calls());
    }

    /// An instance no cluster owns is IGNORED with the reason; one two clusters claim is
    /// refused, naming both.
    #[tokio::test]
    async fn no_owner_is_ignored_and_two_owners_are_refused() {
        let (cloud, members) = account(2).await;
        let mut fleet = Fleet::new(location());
        let answers = handle_fleet(
            &cloud,
            &cloud,
            &mut fleet,
            &[alarm_on("i-0123456789abcdef0")],
            invocation(),
        )
        .await;
        let one = only(&answers, 0);
        let answer = one.result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Ignored, "{answer}");
        assert!(
            answer
                .to_string()
                .contains("no cluster of the fleet (2 declarations) owns alarm"),
            "{answer}"
        );
        assert_eq!(cloud.mutation_count(), 0);

        // A second declaration for pair 0 under another cluster name: both claim its units.
        let mut twin = members[0].declaration_json.clone();
        twin["serverless"]["clusterName"] = "pair-0-again".into();
        put(&cloud, "pair-0-again.json", &twin).await;
        let a0 = members[0].topology.instances[0].id.clone();
        let answers =
            handle_fleet(&cloud, &cloud, &mut fleet, &[alarm_on(&a0)], invocation()).await;
        let e = only(&answers, 0).result.as_ref().unwrap_err();
        assert_eq!(e.error_type(), "FleetConfiguration", "{e}");
        assert!(
            e.to_string()
                .contains("fleet/pair-0-again.json, fleet/pair-0.json"),
            "{e}"
        );
        assert_eq!(cloud.mutation_count(), 0);
    }

    /// A declaration is read again only when its ETag changes; one that does not load, or
    /// shares a lock with another, is named, and an event it could own is an error, not
    /// IGNORED.
    #[tokio::test]
    async fn declarations_are_read_again_by_etag_and_broken_ones_are_named() {
        let (cloud, members) = account(2).await;
        let mut fleet = Fleet::new(location());
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(fleet.clusters.len(), 2);
        cloud.reset_calls();
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(cloud.calls(), ["ListObjectsV2"]);

        put(
            &cloud,
            "pair-1.json",
            &serde_json::json!({"class": "Cloud_Failover"}),
        )
        .await;
        cloud.reset_calls();
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(cloud.calls(), ["ListObjectsV2", "GetObject"]);
        assert_eq!(fleet.clusters.len(), 1);
        assert!(
            fleet.broken["fleet/pair-1.json"].contains("invalid declaration"),
            "{:?}",
            fleet.broken
        );
        let a1 = members[1].topology.instances[0].id.clone();
        let answers =
            handle_fleet(&cloud, &cloud, &mut fleet, &[alarm_on(&a1)], invocation()).await;
        let e = only(&answers, 0).result.as_ref().unwrap_err();
        assert_eq!(e.error_type(), "FleetConfiguration", "{e}");
        assert!(
            e.to_string()
                .contains("fleet/pair-1.json (invalid declaration"),
            "{e}"
        );
        // An event no declaration would act on (an instance starting) stays IGNORED.
        let mut starting = crate::engine::json::parse(&crate::lab::fresh(include_str!(
            "../../../../events/ec2-state-change.json"
        )))
        .unwrap();
        starting["detail"]["instance-id"] = a1.clone().into();
        starting["detail"]["state"] = "running".into();
        let answers = handle_fleet(&cloud, &cloud, &mut fleet, &[starting], invocation()).await;
        let answer = only(&answers, 0).result.as_ref().unwrap();
        assert_eq!(answer.status(), Status::Ignored, "{answer}");

        // Pair 1 fixed, but with pair 0's cluster name in the same bucket: one lock for two
        // pairs has no right answer, and S3 cannot tell which came first (its LastModified is
        // the last write): both are left out, named, and their instances' events refused.
        let mut same = members[1].declaration_json.clone();
        same["serverless"]["clusterName"] = "fleet-0".into();
        same["externalStorage"]["scopingName"] = "fleet-state-0".into();
        put(&cloud, "pair-1.json", &same).await;
        fleet.refresh(&cloud).await.unwrap();
        assert!(fleet.clusters.is_empty(), "{:?}", fleet.clusters.keys());
        for (key, other) in [
            ("fleet/pair-0.json", "fleet/pair-1.json"),
            ("fleet/pair-1.json", "fleet/pair-0.json"),
        ] {
            assert!(
                fleet.broken[key]
                    .starts_with(&format!("shares a state file or lock with {other}: ")),
                "{:?}",
                fleet.broken
            );
        }
        let a0 = members[0].topology.instances[0].id.clone();
        let answers =
            handle_fleet(&cloud, &cloud, &mut fleet, &[alarm_on(&a0)], invocation()).await;
        let e = only(&answers, 0).result.as_ref().unwrap_err();
        assert_eq!(e.error_type(), "FleetConfiguration", "{e}");
        assert!(e.to_string().contains("belongs to a declaration left out: fleet/pair-0.json (shares a state file or lock with fleet/pair-1.json"), "{e}");
        // An edit of either changes nothing while they clash (no flip-flop by write time).
        let mut edited = members[0].declaration_json.clone();
        edited["serverless"]["cooldownSeconds"] = 30.into();
        put(&cloud, "pair-0.json", &edited).await;
        fleet.refresh(&cloud).await.unwrap();
        assert!(fleet.clusters.is_empty(), "{:?}", fleet.clusters.keys());

        // Fixed: both load again.
        put(&cloud, "pair-1.json", &members[1].declaration_json).await;
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(fleet.clusters.len(), 2, "{:?}", fleet.broken);
        assert!(fleet.broken.is_empty());
    }

    /// A prefix with no declaration is an error, never a fleet that ignores every event; an
    /// object too large for a declaration is not read; other objects and this project's own
    /// records are not declarations; a declaration with its own endpoints is left out, named.
    #[tokio::test]
    async fn what_a_prefix_holds_is_a_declaration_or_said_why_not() {
        let (cloud, members) = account(2).await;
        let mut empty = Fleet::new("s3://fleet-state-0/Fleet/".parse().unwrap());
        let answers = handle_fleet(
            &cloud,
            &cloud,
            &mut empty,
            &[alarm_on(SEED_A)],
            invocation(),
        )
        .await;
        let e = only(&answers, 0).result.as_ref().unwrap_err();
        assert_eq!(e.error_type(), "DeclarationUnavailable", "{e}");
        assert_eq!(
            e.to_string(),
            "cannot read the declaration from s3://fleet-state-0/Fleet/: no declaration (*.json) under it"
        );

        let store = |key: &str, body: Vec<u8>| {
            let cloud = &cloud;
            let key = format!("fleet/{key}");
            async move {
                cloud
                    .put_object(BUCKET, &key, body, &Encryption::None, None)
                    .await
                    .unwrap();
            }
        };
        store("README.txt", b"not a declaration".to_vec()).await;
        store(
            "huge.json",
            vec![b' '; crate::engine::declaration::MAX_DECLARATION_BYTES + 1],
        )
        .await;
        let mut own = members[1].declaration_json.clone();
        own["serverless"]["clusterName"] = "own-endpoints".into();
        own["externalStorage"]["scopingName"] = "fleet-state-1.s3.eu-west-1.amazonaws.com".into();
        store("own.JSON", own.to_string().into_bytes()).await;
        cloud
            .put_object(
                BUCKET,
                "f5cloudfailover/fleet-0/f5cloudfailoverstate.json",
                b"{}".to_vec(),
                &Encryption::None,
                None,
            )
            .await
            .unwrap();
        let mut fleet = Fleet::new("s3://fleet-state-0/".parse().unwrap());
        cloud.reset_calls();
        fleet.refresh(&cloud).await.unwrap();
        let gets = cloud.calls().iter().filter(|c| *c == "GetObject").count();
        assert_eq!(gets, 3, "pair-0, pair-1 and own.JSON: {:?}", cloud.calls());
        assert_eq!(fleet.clusters.len(), 2, "{:?}", fleet.broken);
        assert!(
            fleet.broken["fleet/huge.json"].contains("not read"),
            "{:?}",
            fleet.broken
        );
        assert!(
            fleet.broken["fleet/own.JSON"]
                .starts_with("sets a region in externalStorage.scopingName"),
            "{:?}",
            fleet.broken
        );
        assert_eq!(fleet.broken.len(), 2, "{:?}", fleet.broken);
    }

    /// The executor's budget is kept between invocations (its buckets spent as the
    /// account's are), also when the fleet's pacing changes.
    #[tokio::test]
    async fn the_budget_outlives_an_invocation() {
        let (cloud, members) = account(2).await;
        let mut fleet = Fleet::new(location());
        fleet.refresh(&cloud).await.unwrap();
        let first = fleet.budget();
        assert!(Arc::ptr_eq(&first, &fleet.budget()));
        let mut slower = members[1].declaration_json.clone();
        slower["serverless"]["mutationRate"] = 2.into();
        put(&cloud, "pair-1.json", &slower).await;
        fleet.refresh(&cloud).await.unwrap();
        let second = fleet.budget();
        assert!(Arc::ptr_eq(&first, &second), "kept, not made anew full");
        assert_eq!(second.pacer.pacing().rate, 2.0);
    }

    /// A declaration that could not be read (a throttle, a lost answer): at a cold start
    /// the fleet cannot be known (it may share a lock with another), so the refresh fails
    /// and the events are tried again; in a warm index the copy read before stands and is
    /// read again at the next refresh.
    #[tokio::test]
    async fn a_declaration_not_read_is_read_again() {
        use crate::engine::error::ErrorKind;
        use crate::memory::FaultTiming;
        let (cloud, members) = account(2).await;
        let mut fleet = Fleet::new(location());
        cloud.inject(
            "GetObject",
            ErrorKind::Throttled,
            FaultTiming::BeforeEffect,
            1,
        );
        let e = fleet.refresh(&cloud).await.unwrap_err();
        assert_eq!(e.error_type(), "DeclarationUnavailable", "{e}");
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(fleet.clusters.len(), 2, "{:?}", fleet.broken);

        // Warm: pair 1 edited, its re-read throttled: the copy before stands, then the edit.
        let mut edited = members[1].declaration_json.clone();
        edited["serverless"]["cooldownSeconds"] = 7.into();
        put(&cloud, "pair-1.json", &edited).await;
        cloud.inject(
            "GetObject",
            ErrorKind::Throttled,
            FaultTiming::BeforeEffect,
            1,
        );
        fleet.refresh(&cloud).await.unwrap();
        let cooldown = |f: &Fleet| {
            f.clusters["fleet/pair-1.json"]
                .declaration
                .extension
                .cooldown_seconds
        };
        assert_ne!(cooldown(&fleet), 7);
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(cooldown(&fleet), 7);
        assert!(fleet.broken.is_empty());
    }

    /// FNV-1a, 64 bits: the published test vectors.
    #[test]
    fn fnv_is_fnv_1a() {
        assert_eq!(fnv(b""), 0xcbf29ce484222325);
        assert_eq!(fnv(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv(b"foobar"), 0x85944171f73967e8);
    }

    /// Members: none before discovery; a cold start discovers only the clusters an event's
    /// instances are tagged for (by their interfaces' address scoping tags), the rest later;
    /// an instance two clusters count is named with both.
    #[tokio::test]
    async fn a_cold_start_discovers_the_named_clusters_first() {
        let (cloud, members) = account(3).await;
        let mut fleet = Fleet::new(location());
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(fleet.undiscovered(), 3);
        assert!(fleet.declarations().all(|c| c.members().next().is_none()));
        let named = cloud
            .describe_instances(&[crate::engine::model::Filter::new(
                "instance-id",
                [&members[1].topology.instances[0].id],
            )])
            .await
            .unwrap();
        let failures = fleet.discover_candidates(&cloud, &named).await;
        assert!(failures.is_empty(), "{failures:?}");
        assert_eq!(fleet.undiscovered(), 2);
        let found: Vec<(String, Vec<String>)> = fleet
            .declarations()
            .filter(|c| c.members().next().is_some())
            .map(|c| (c.key.clone(), c.members().map(str::to_string).collect()))
            .collect();
        let ids = |m: &FleetMember| {
            let mut v: Vec<String> = m.topology.instances.iter().map(|i| i.id.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(found, [("fleet/pair-1.json".to_string(), ids(&members[1]))]);
        assert!(fleet
            .discover_members(&cloud, Duration::MAX)
            .await
            .is_empty());
        assert_eq!(fleet.undiscovered(), 0);
        assert!(fleet.shared_members().is_empty());
        // pair-0's declaration a second time: its members are two clusters'.
        let mut twin = members[0].declaration_json.clone();
        twin["serverless"]["clusterName"] = "twin".into();
        put(&cloud, "twin.json", &twin).await;
        fleet.refresh(&cloud).await.unwrap();
        fleet.discover_members(&cloud, Duration::ZERO).await;
        let shared = fleet.shared_members();
        assert_eq!(shared.len(), 2, "{shared:?}");
        for keys in shared.values() {
            assert_eq!(
                keys,
                &[
                    "fleet/pair-0.json".to_string(),
                    "fleet/twin.json".to_string()
                ]
            );
        }
    }

    /// A fleet's report names its first failing cluster's error.
    #[test]
    fn the_report_names_the_first_failure() {
        let ok = |k: &str| ClusterResult {
            cluster: Some(k.into()),
            message_id: None,
            result: Ok(1),
        };
        let err = ClusterResult {
            cluster: Some("b".into()),
            message_id: None,
            result: Err(FailoverError::Failed("b failed".into())),
        };
        let clean = FleetReport {
            clusters: vec![ok("a")],
            broken: BTreeMap::new(),
        };
        assert!(clean.first_error().is_none());
        let report = FleetReport {
            clusters: vec![ok("a"), err, ok("c")],
            broken: BTreeMap::new(),
        };
        assert_eq!(
            report.first_error().unwrap().to_string(),
            FailoverError::Failed("b failed".into()).to_string()
        );
    }

    /// A refresh reads only what changed (by ETag); a declaration that cannot be read again
    /// keeps the copy read before, and is read again at the next refresh; without a good
    /// copy, the refresh fails.
    #[tokio::test]
    async fn a_refresh_reads_what_changed_and_keeps_a_good_copy_it_cannot_read() {
        use crate::engine::error::ErrorKind;
        use crate::memory::FaultTiming;
        let (cloud, members) = account(2).await;
        let gets = |c: &MemoryCloud| c.calls().iter().filter(|c| *c == "GetObject").count();
        let mut fleet = Fleet::new(location());
        fleet.refresh(&cloud).await.unwrap();
        cloud.reset_calls();
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(gets(&cloud), 0, "nothing changed");
        let mut changed = members[1].declaration_json.clone();
        changed["controls"]["logLevel"] = "error".into();
        put(&cloud, "pair-1.json", &changed).await;
        cloud.inject(
            "GetObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            1,
        );
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(
            fleet.declarations().count(),
            2,
            "the copy read before stands"
        );
        cloud.clear_faults();
        cloud.reset_calls();
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(gets(&cloud), 1, "read again");
        // A declaration that never loaded, changed and not readable: the fleet cannot be known.
        put(
            &cloud,
            "pair-1.json",
            &serde_json::json!({"class": "Cloud_Failover"}),
        )
        .await;
        fleet.refresh(&cloud).await.unwrap();
        assert_eq!(fleet.declarations().count(), 1);
        put(
            &cloud,
            "pair-1.json",
            &serde_json::json!({"class": "Cloud_Failover", "x": 1}),
        )
        .await;
        cloud.inject(
            "GetObject",
            ErrorKind::Transient,
            FaultTiming::BeforeEffect,
            1,
        );
        assert!(fleet.refresh(&cloud).await.is_err());
    }

    /// A cold start's candidates by `alarmTargets`: the cluster whose alarm names an event's
    /// instance is discovered, not the others.
    #[tokio::test]
    async fn a_cold_start_discovers_the_cluster_whose_alarm_names_the_instance() {
        let (cloud, members) = account(3).await;
        let a1 = members[1].topology.instances[0].id.clone();
        let mut with_alarm = members[1].declaration_json.clone();
        with_alarm["serverless"]["alarmTargets"] = serde_json::json!({"pair-1-a-down": a1});
        put(&cloud, "pair-1.json", &with_alarm).await;
        let mut fleet = Fleet::new(location());
        fleet.refresh(&cloud).await.unwrap();
        // The instance as the event names it: no interface (no tag to go by).
        let bare = crate::engine::model::Instance {
            id: a1.clone(),
            state: "running".into(),
            availability_zone: String::new(),
            instance_type: String::new(),
            tags: Default::default(),
            network_interfaces: Vec::new(),
        };
        assert!(fleet.discover_candidates(&cloud, &[bare]).await.is_empty());
        let found: Vec<String> = fleet
            .declarations()
            .filter(|c| c.members().next().is_some())
            .map(|c| c.key.clone())
            .collect();
        assert_eq!(found, ["fleet/pair-1.json"]);
    }

    /// A fleet in a directory: its `*.json` files (any case; not a directory named so, nor
    /// another file), each tagged by its text; one as large as a declaration may be is read,
    /// one byte more is left out, said.
    #[tokio::test]
    async fn a_directory_fleet_lists_its_json_files_and_leaves_out_the_too_large() {
        let cloud = MemoryCloud::seed();
        let dir = std::env::temp_dir().join(format!("cf-fleet-dir-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub.json")).unwrap();
        let seed = crate::testing::plan::AFTER;
        std::fs::write(dir.join("A.JSON"), seed).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a declaration").unwrap();
        let at_limit = format!("{seed}{}", " ".repeat(MAX_DECLARATION_BYTES - seed.len()));
        std::fs::write(dir.join("limit.json"), &at_limit).unwrap();
        let loc = Location::Dir(dir.clone());
        let listed = list(&cloud, &loc).await.unwrap();
        let keys: Vec<&str> = listed.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["A.JSON", "limit.json"]);
        assert_eq!(
            listed[0].etag,
            Some(format!("{:x}-{}", fnv(seed.as_bytes()), seed.len()))
        );
        let read = load(&cloud, &loc, &listed[1]).await.unwrap();
        assert!(read.declaration.is_some(), "{:?}", read.problem);
        std::fs::write(dir.join("limit.json"), format!("{at_limit} ")).unwrap();
        let listed = list(&cloud, &loc).await.unwrap();
        let big = load(&cloud, &loc, &listed[1]).await.unwrap();
        assert!(big.declaration.is_none());
        assert!(big.problem.unwrap().contains("more than the"), "too large");
        assert_eq!(
            listed[1].etag,
            Some(format!("{:x}-{}", fnv(b""), MAX_DECLARATION_BYTES + 1))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
