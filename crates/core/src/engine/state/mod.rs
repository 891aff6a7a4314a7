//! The state log: CFE's `f5cloudfailoverstate.json` (same shape, so CFE tooling reads it),
//! extended with a `serverless` block, plus one history object per run.

pub mod cfe;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::engine::declaration::{Declaration, Scope, EXTENSION_KEY};
use crate::engine::discovery::{recover_prefix_eips, DetachedEip, DetachedPrefix};
use crate::engine::error::CloudError;
use crate::engine::execute::Outcome;
use crate::engine::keys::{history_key, history_prefix, state_key, state_object};
use crate::engine::plan::{Action, Operation, Plan};
use crate::engine::ports::ObjectStore;
use crate::engine::request::{Mode, RunRequest};

/// How far in the future a recorded time (a last failover, CFE's RUNNING) may be (clock skew between writers) before
/// it is disregarded rather than damping every failover until that time.
pub const CLOCK_SKEW_SECONDS: i64 = 60;

/// CFE's task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Mutations are being sent.
    Running,
    /// Every operation verified.
    Succeeded,
    /// Some operation failed or did not verify; the next run converges.
    Failed,
    /// Every planned operation verified, but items were left out (each named with its
    /// reason in `skipped`): not one of CFE's states, which treat it as not running.
    Partial,
    /// A dry run: planned only (never written to the state file; not one of CFE's states).
    DryRun,
}

impl TaskState {
    /// CFE's spelling (`RUNNING`, `SUCCEEDED`, `FAILED`), for logs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "RUNNING",
            TaskState::Succeeded => "SUCCEEDED",
            TaskState::Failed => "FAILED",
            TaskState::Partial => "PARTIAL",
            TaskState::DryRun => "DRY_RUN",
        }
    }
}

/// One run, as recorded in the state file's `serverless` block and in the history object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// Unique run id.
    pub run_id: String,
    /// `serverless.clusterName`.
    pub cluster: String,
    /// What triggered the run, e.g. `alarm:bigip-a-status`.
    pub trigger: String,
    /// Lambda request id, when invoked by Lambda.
    pub request_id: Option<String>,
    /// Execute or dry run.
    pub mode: Mode,
    /// Target instance id (what was asked, in words, when it could not be resolved).
    pub target: String,
    /// Target's `Name` tag.
    pub target_name: String,
    /// CFE task state.
    pub task_state: TaskState,
    /// Human summary.
    pub message: String,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time (absent while RUNNING).
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time in ms (absent while RUNNING).
    pub duration_ms: Option<u64>,
    /// Planned operations.
    pub operations: Vec<Operation>,
    /// Outcomes (empty while RUNNING).
    pub outcomes: Vec<Outcome>,
    /// Items found already in place.
    pub in_place: Vec<String>,
    /// Planner warnings.
    pub warnings: Vec<String>,
    /// Items the plan left out, each with the reason (the run ends PARTIAL).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    /// Refusal reasons, when the planner refused.
    pub refusal: Vec<String>,
    /// The run id of an earlier run left RUNNING or FAILED that this one converges.
    pub recovers: Option<String>,
    /// The last failover that changed something (kept across runs, for flap damping).
    pub last_failover: Option<LastFailover>,
    /// The unit the appliance pair last announced active (kept across runs): the box's own
    /// view, which `inspect` compares the cloud with.
    pub last_announcement: Option<LastFailover>,
    /// The time of the newest event whose decision was carried out (kept across runs): an
    /// alarm or announcement dated before it is older news and is not acted on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_event_at: Option<DateTime<Utc>>,
    /// The cluster's members when the run started (tells one cluster's record from another's).
    pub members: Vec<String>,
    /// Whether damping was skipped (an operator's explicit command, the appliance's own
    /// announcement, or `force`).
    pub forced: bool,
    /// Who asked for a forced run: the operator's identity (STS), the appliance's source, or
    /// the direct invoke's request.
    pub requested_by: Option<String>,
    /// EIPs a prefix release left unassociated that this run found only through the previous
    /// state file: carried forward until a run puts them back (a refusal does not lose them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detached_eips: Vec<DetachedEip>,
    /// Prefixes a stopped run released that no member holds: carried forward until a run
    /// assigns each to the target's interface in its subnet.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub detached_prefixes: Vec<DetachedPrefix>,
}

/// When the cluster last failed over, and to whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastFailover {
    /// The member made active.
    pub target: String,
    /// When the run finished.
    pub at: DateTime<Utc>,
}

/// The appliance pair's last announcement a state file keeps (the box's own view).
pub fn last_announcement(state: &Value) -> Option<LastFailover> {
    let v = state.get(EXTENSION_KEY)?.get("lastAnnouncement")?;
    serde_json::from_value(v.clone()).ok()
}

impl RunRecord {
    /// A record for a run starting now.
    pub fn new(run_id: String, decl: &Declaration, req: &RunRequest) -> RunRecord {
        RunRecord {
            run_id,
            cluster: decl.extension.cluster_name.clone(),
            trigger: req.trigger.clone(),
            request_id: req.request_id.clone(),
            mode: req.mode,
            target: req.target.asked(),
            target_name: String::new(),
            task_state: TaskState::Running,
            message: String::new(),
            started_at: Utc::now(),
            finished_at: None,
            duration_ms: None,
            operations: Vec::new(),
            outcomes: Vec::new(),
            in_place: Vec::new(),
            warnings: Vec::new(),
            skipped: Vec::new(),
            refusal: Vec::new(),
            recovers: None,
            last_failover: None,
            last_announcement: None,
            last_event_at: None,
            members: Vec::new(),
            forced: req.force,
            requested_by: req.requested_by.clone(),
            detached_eips: Vec::new(),
            detached_prefixes: Vec::new(),
        }
    }

    /// Sets the task state and message from the outcomes.
    pub fn conclude(&mut self) {
        let failed: Vec<&str> = self
            .outcomes
            .iter()
            .filter(|o| !o.verified)
            .map(|o| o.operation.as_str())
            .collect();
        if failed.is_empty() && !self.skipped.is_empty() {
            self.task_state = TaskState::Partial;
            self.message = format!(
                "{} operation(s) done and verified; {} item(s) left out: {}",
                self.operations.len(),
                self.skipped.len(),
                self.skipped.join("; ")
            );
        } else if failed.is_empty() {
            self.task_state = TaskState::Succeeded;
            // Everything planned is back where it belongs: nothing left to carry forward.
            self.detached_eips.clear();
            self.detached_prefixes.clear();
            self.message = if self.operations.is_empty() && self.in_place.is_empty() {
                // Not "converged": nothing managed was found (e.g. no table in scope).
                format!(
                    "nothing to change: no managed item found ({})",
                    self.warnings.join("; ")
                )
            } else if self.operations.is_empty() {
                "already converged: nothing to change".into()
            } else {
                format!("{} operation(s) done and verified", self.operations.len())
            };
        } else {
            self.task_state = TaskState::Failed;
            self.message = format!(
                "{} of {} operation(s) not verified ({}); the next run converges",
                failed.len(),
                self.operations.len(),
                failed.join(", ")
            );
        }
        if self.outcomes.iter().any(|o| o.verified) {
            self.last_failover = Some(LastFailover {
                target: self.target.clone(),
                at: Utc::now(),
            });
        }
    }

    /// Stamps the end time and duration.
    pub fn finish(&mut self, clock: std::time::Instant) {
        self.finished_at = Some(Utc::now());
        self.duration_ms = Some(clock.elapsed().as_millis() as u64);
    }

    /// Copies the plan into the record.
    pub fn with_plan(mut self, plan: &Plan) -> RunRecord {
        self.target = plan.target.clone();
        self.target_name = plan.target_name.clone();
        self.operations = plan.operations.clone();
        self.in_place = plan.in_place.clone();
        self.warnings.extend(plan.warnings.iter().cloned());
        self.skipped = plan.skipped.clone();
        self
    }
}

/// CFE's timestamp format (`2025-07-17T15:38:42.875Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Why a state file is not this cluster's own record, if it is not: another cluster's name, or
/// members none of which are ours (two declarations resolving to one key). A file without our
/// `serverless` block (CFE's own) is not judged here.
pub fn foreign_record(state: &Value, cluster: &str, members: &[String]) -> Option<String> {
    let ext = state.get(EXTENSION_KEY)?;
    let theirs = ext
        .get("cluster")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if theirs != cluster {
        return Some(format!("it records cluster {theirs:?}, not {cluster:?}"));
    }
    let recorded: Vec<&str> = ext
        .get("members")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if recorded.is_empty()
        || members.is_empty()
        || recorded.iter().any(|m| members.iter().any(|o| o == m))
    {
        return None;
    }
    Some(format!(
        "it records members {} and this cluster's are {}",
        recorded.join(", "),
        members.join(", ")
    ))
}

/// Warnings when two declarations would share a state file or a lock: the same cluster name
/// and state file name, with bucket scopes one bucket could satisfy. A declaration with
/// failover groups is each of its groups' clusters (`<clusterName>.<group>`).
pub fn shared_keys(a: &Declaration, b: &Declaration) -> Vec<String> {
    let same_bucket = match (&a.external_storage.scope, &b.external_storage.scope) {
        (Scope::Name(x), Scope::Name(y)) => x == y,
        (Scope::Tags(x), Scope::Tags(y)) => x.iter().all(|(k, v)| y.get(k).is_none_or(|w| w == v)),
        _ => true,
    };
    if !same_bucket {
        return Vec::new();
    }
    let mut out = Vec::new();
    for x in a.cluster_names() {
        for y in b.cluster_names() {
            let (sx, sy) = (
                state_object(&x, &a.external_storage.state_file_name),
                state_object(&y, &b.external_storage.state_file_name),
            );
            if sx == sy {
                out.push(format!(
                    "both declarations write the state file {sx} in the same bucket: give each cluster its own serverless.clusterName (or externalStorage.stateFileName)"
                ));
            }
            if x == y {
                out.push(format!(
                    "both declarations take the lock of cluster {x:?}: one pair's failover waits for the other's; give each its own serverless.clusterName"
                ));
            }
        }
    }
    out
}

/// One run from the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Run id.
    pub run_id: String,
    /// Trigger.
    pub trigger: String,
    /// Target.
    pub target: String,
    /// Result.
    pub task_state: String,
    /// Summary.
    pub message: String,
    /// Start.
    pub started_at: String,
    /// Wall time.
    pub duration_ms: Option<u64>,
    /// The target's `Name` tag (the appliance's host name).
    #[serde(default)]
    pub target_name: String,
    /// Who asked for it, when the trigger alone does not say (the operator's ARN, the Lambda
    /// request of a direct invoke or an announcement).
    #[serde(default)]
    pub requested_by: Option<String>,
}

impl RunSummary {
    /// Who or what triggered the run: the alarm, the announcing unit, the probe, or the
    /// operator (`cloud-failover execute by` the caller's ARN).
    pub fn who(&self) -> &str {
        self.requested_by.as_deref().unwrap_or(&self.trigger)
    }
}

/// The cluster's most recent runs, newest first (only those that did not succeed when
/// `failed_only`: FAILED runs and refusals).
pub async fn read_history(
    store: &dyn ObjectStore,
    bucket: &str,
    cluster: &str,
    limit: usize,
    failed_only: bool,
) -> Result<Vec<RunSummary>, CloudError> {
    let mut keys = store.list_keys(bucket, &history_prefix(cluster)).await?;
    keys.sort();
    keys.reverse();
    let mut out = Vec::new();
    // Read in pages of `limit`, so a filter still finds `limit` matches.
    for page in keys.chunks(limit.max(1)) {
        let objects =
            futures::future::try_join_all(page.iter().map(|k| store.get_object(bucket, k))).await?;
        out.extend(
            objects
                .into_iter()
                .flatten()
                .filter_map(|o| serde_json::from_slice::<RunSummary>(&o.body).ok())
                .filter(|r| !failed_only || r.task_state != "SUCCEEDED"),
        );
        if out.len() >= limit {
            break;
        }
    }
    out.truncate(limit);
    Ok(out)
}

/// What a state file says about EIPs the cloud may no longer show: an unfinished run's
/// (RUNNING, FAILED or PARTIAL) Elastic IP moves, read from CFE's `publicAddresses` (written
/// so by CFE and by us alike), and the detached EIPs a record carried forward
/// (`serverless.detachedEips`: a refused run's, a reset's).
pub fn unfinished_eip_moves(state: &Value) -> Vec<DetachedEip> {
    let unfinished = matches!(
        state.get("taskState").and_then(Value::as_str),
        Some("RUNNING" | "FAILED" | "PARTIAL")
    );
    let moves = state
        .pointer("/failoverOperations/addresses/publicAddresses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|_| unfinished)
        .filter_map(|(_, v)| {
            Some(DetachedEip {
                allocation_id: v.get("AllocationId")?.as_str()?.to_string(),
                address: v
                    .pointer("/target/PrivateIpAddress")?
                    .as_str()?
                    .parse()
                    .ok()?,
            })
        });
    moves.chain(carried(state, "detachedEips")).collect()
}

/// What a record carries forward under `key` of its `serverless` block (a refused run's or a
/// reset's record keeps what the next run must still put back).
fn carried<T: serde::de::DeserializeOwned>(state: &Value, key: &str) -> Vec<T> {
    state
        .get(EXTENSION_KEY)
        .and_then(|e| e.get(key))
        .and_then(|v| serde_json::from_value::<Vec<T>>(v.clone()).ok())
        .unwrap_or_default()
}

/// The prefixes an unfinished run released (its `releasePrefix` operations) and those a
/// record carries forward (`serverless.detachedPrefixes`): where each belongs, once no member
/// holds it.
pub fn unfinished_prefix_moves(state: &Value) -> Vec<DetachedPrefix> {
    let unfinished = matches!(
        state.get("taskState").and_then(Value::as_str),
        Some("RUNNING" | "FAILED" | "PARTIAL")
    );
    let released = state
        .get(EXTENSION_KEY)
        .and_then(|e| e.get("operations"))
        .and_then(|v| serde_json::from_value::<Vec<Operation>>(v.clone()).ok())
        .unwrap_or_default()
        .into_iter()
        .filter(|_| unfinished)
        .filter_map(|op| match op.action {
            Action::ReleasePrefix {
                network_interface_id,
                prefix,
                ..
            } => Some(DetachedPrefix {
                prefix,
                network_interface_id,
            }),
            _ => None,
        });
    let mut out: Vec<DetachedPrefix> = released.chain(carried(state, "detachedPrefixes")).collect();
    out.dedup_by(|a, b| a.prefix == b.prefix);
    out
}

/// Adds to `snap` what an unfinished run's state file knows and the cloud no longer shows:
/// the EIPs a prefix release detached (see [`recover_prefix_eips`]). Runs, dry runs, inspect
/// and doctor all plan from the snapshot this leaves. Another cluster's file is not read.
pub async fn recall_detached_eips(
    ec2: &dyn crate::engine::ports::Ec2Describe,
    decl: &Declaration,
    state: Option<&Value>,
    snap: &mut crate::engine::discovery::Snapshot,
) -> Result<(), CloudError> {
    let Some(state) = state else { return Ok(()) };
    let members: Vec<String> = snap.members.iter().map(|m| m.id.clone()).collect();
    if foreign_record(state, &decl.extension.cluster_name, &members).is_some() {
        return Ok(());
    }
    let held = |p: &crate::engine::net::Cidr| {
        snap.members
            .iter()
            .flat_map(|m| &m.network_interfaces)
            .any(|n| n.ipv4_prefixes.contains(p))
    };
    let declared: Vec<crate::engine::net::Cidr> = decl
        .addresses()
        .map(|a| a.prefixes().collect())
        .unwrap_or_default();
    snap.released_prefixes = unfinished_prefix_moves(state)
        .into_iter()
        .filter(|d| declared.contains(&d.prefix) && !held(&d.prefix))
        .collect();
    let moves = unfinished_eip_moves(state);
    if moves.is_empty() {
        return Ok(());
    }
    recover_prefix_eips(ec2, decl, &moves, snap).await
}

/// Where and how the state log is written.
pub struct StateLog<'a> {
    /// The store.
    pub store: &'a dyn ObjectStore,
    /// The state bucket.
    pub bucket: String,
    /// The declaration (key and encryption).
    pub decl: &'a Declaration,
}

impl StateLog<'_> {
    /// Writes the state file for `record`.
    pub async fn write_state(&self, record: &RunRecord) -> Result<(), CloudError> {
        self.put(&state_key(self.decl), &cfe::state_file(record))
            .await
    }

    /// Writes the run's history object; returns its key.
    pub async fn write_history(&self, record: &RunRecord) -> Result<String, CloudError> {
        let key = history_key(&record.cluster, record.started_at, &record.run_id);
        self.put(&key, record).await?;
        Ok(key)
    }

    /// Writes `value` as JSON at `key` with the declared encryption.
    async fn put(&self, key: &str, value: &impl Serialize) -> Result<(), CloudError> {
        let body = serde_json::to_vec_pretty(value).expect("json");
        let encryption = &self.decl.external_storage.encryption;
        self.store
            .put_object(&self.bucket, key, body, encryption, None)
            .await
            .map(|_| ())
    }

    /// Rewrites the state file as a clean slate (`cloud-failover reset`): SUCCEEDED, no
    /// operations, no last failover (so no cooldown), saying who reset it. The appliance pair's
    /// last announcement in `previous` (the box's view, not ours) is kept.
    pub async fn reset_state(&self, by: &str, previous: Option<&Value>) -> Result<(), CloudError> {
        let announced = previous
            .and_then(|p| p.get(EXTENSION_KEY))
            .and_then(|e| e.get("lastAnnouncement"))
            .cloned()
            .unwrap_or(Value::Null);
        // What only the log knows (EIPs and prefixes a stopped run detached) survives a reset:
        // the next run puts them back.
        let eips = previous.map(unfinished_eip_moves).unwrap_or_default();
        let prefixes = previous.map(unfinished_prefix_moves).unwrap_or_default();
        let v = json!({
            "taskState": TaskState::Succeeded,
            "message": format!("Reset by {by}"),
            "timestamp": timestamp(Utc::now()),
            "instance": "",
            "failoverOperations": {},
            EXTENSION_KEY: {
                "cluster": self.decl.extension.cluster_name,
                "reset": true,
                "lastAnnouncement": announced,
                "detachedEips": eips,
                "detachedPrefixes": prefixes,
            },
        });
        self.put(&state_key(self.decl), &v).await
    }

    /// Reads the current state file, if any.
    pub async fn read_state(&self) -> Result<Option<Value>, CloudError> {
        let obj = self
            .store
            .get_object(&self.bucket, &state_key(self.decl))
            .await?;
        Ok(obj.and_then(|o| serde_json::from_slice(&o.body).ok()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryCloud;

    /// Amazon S3 API Reference, "Error responses"
    /// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html): GetObject in a
    /// bucket that does not exist fails with 404 `NoSuchBucket`. A missing state bucket is an
    /// error naming it, never "no state file, no lock".
    #[tokio::test]
    async fn a_missing_state_bucket_is_an_error_naming_it() {
        // GIVEN a declaration whose state bucket is gone
        let cloud = MemoryCloud::seed();
        let decl = Declaration::parse(include_str!(
            "../../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        let log = StateLog {
            store: &cloud,
            bucket: "cfe-state-gone".into(),
            decl: &decl,
        };
        // WHEN the state file and the lock are read THEN both fail, naming the bucket
        let e = log.read_state().await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("NoSuchBucket"));
        assert!(
            e.to_string()
                .contains("bucket cfe-state-gone does not exist"),
            "{e}"
        );
        let e = crate::engine::lock::current_holder(&cloud, "cfe-state-gone", "default")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("bucket cfe-state-gone does not exist"),
            "{e}"
        );
    }

    /// CFE's spelling of each task state, the same as its JSON.
    #[test]
    fn task_states_are_spelt_as_cfe_and_their_json() {
        use TaskState::*;
        for (s, word) in [
            (Running, "RUNNING"),
            (Succeeded, "SUCCEEDED"),
            (Failed, "FAILED"),
            (Partial, "PARTIAL"),
            (DryRun, "DRY_RUN"),
        ] {
            assert_eq!(s.as_str(), word);
            assert_eq!(serde_json::to_value(s).unwrap(), word);
        }
    }

    /// The box's last word, read back from a state file: none when absent or unreadable.
    #[test]
    fn the_last_announcement_is_read_from_the_state_file() {
        let said = serde_json::json!({EXTENSION_KEY: {"lastAnnouncement": {
            "target": "i-061cbb31a5158ad30", "at": "2026-12-06T17:00:00Z"}}});
        let got = last_announcement(&said).unwrap();
        assert_eq!(got.target, "i-061cbb31a5158ad30");
        assert_eq!(got.at.to_rfc3339(), "2026-12-06T17:00:00+00:00");
        for none in [
            serde_json::json!({}),
            serde_json::json!({EXTENSION_KEY: {}}),
            serde_json::json!({EXTENSION_KEY: {"lastAnnouncement": {"target": 7}}}),
        ] {
            assert!(last_announcement(&none).is_none(), "{none}");
        }
    }

    /// A finished record has its end time and its duration.
    #[test]
    fn finish_stamps_the_end_and_the_duration() {
        let decl = Declaration::parse(crate::testing::plan::AFTER).unwrap();
        let req = RunRequest::new(
            crate::engine::request::TargetSpec::Instance("i-1".into()),
            crate::engine::request::Mode::Execute,
            "test",
        );
        let mut r = RunRecord::new("r1".into(), &decl, &req);
        assert!(r.finished_at.is_none() && r.duration_ms.is_none());
        r.finish(std::time::Instant::now() - std::time::Duration::from_millis(1500));
        assert!(r.finished_at.unwrap() >= r.started_at);
        assert!(r.duration_ms.unwrap() >= 1500, "{:?}", r.duration_ms);
    }

    /// The state log of the seed's bucket.
    fn seed_log<'a>(cloud: &'a MemoryCloud, decl: &'a Declaration) -> StateLog<'a> {
        StateLog {
            store: cloud,
            bucket: "cfe-state-bigip-ha".into(),
            decl,
        }
    }

    fn decl_with(patch: impl FnOnce(&mut Value)) -> Declaration {
        crate::testing::plan::patched(patch)
    }

    /// Two declarations share a state file and a lock when one bucket could satisfy both
    /// scopes (the same name; tags neither contradicts) and they name the same cluster.
    #[test]
    fn shared_keys_when_one_bucket_could_serve_both() {
        let by_name = |n: &str| decl_with(|v| v["externalStorage"] = json!({"scopingName": n}));
        let by_tags = |t: Value| decl_with(|v| v["externalStorage"] = json!({"scopingTags": t}));
        let both = |a: &Declaration, b: &Declaration| shared_keys(a, b).len();
        assert_eq!(both(&by_name("bucket-one"), &by_name("bucket-one")), 2);
        assert_eq!(both(&by_name("bucket-one"), &by_name("bucket-two")), 0);
        assert_eq!(
            both(
                &by_tags(json!({"k": "v"})),
                &by_tags(json!({"k": "v", "j": "w"}))
            ),
            2
        );
        assert_eq!(
            both(&by_tags(json!({"k": "v"})), &by_tags(json!({"k": "x"}))),
            0
        );
        assert_eq!(both(&by_name("bucket-one"), &by_tags(json!({"k": "v"}))), 2);
        let other = decl_with(|v| {
            v["externalStorage"] = json!({"scopingName": "bucket-one"});
            v["serverless"] = json!({"clusterName": "web2"});
        });
        let w = shared_keys(&by_name("bucket-one"), &other);
        assert!(w.is_empty(), "{w:?}");
    }

    /// A declaration with failover groups is one cluster per group, `<clusterName>.<group>`:
    /// another declaration named like one of its groups shares that group's lock and state.
    #[test]
    fn a_groups_cluster_clashes_with_a_declaration_of_its_name() {
        let grouped = decl_with(|v| {
            v["serverless"] = json!({"clusterName": "web", "groups": {
                "tg1": {"routes": ["0.0.0.0/0"]}, "tg2": {"addresses": ["10.0.0.50"]}}})
        });
        let named = |name: &str| decl_with(|v| v["serverless"] = json!({"clusterName": name}));
        assert_eq!(grouped.cluster_names(), ["web.tg1", "web.tg2"]);
        let w = shared_keys(&grouped, &named("web.tg2"));
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("f5cloudfailover/web.tg2/f5cloudfailoverstate.json"),
            "{w:?}"
        );
        assert!(shared_keys(&grouped, &named("web")).is_empty());
        assert_eq!(
            shared_keys(&grouped, &grouped).len(),
            4,
            "each group with itself"
        );
    }

    fn record(
        decl: &Declaration,
        id: &str,
        minutes: i64,
        state: TaskState,
        by: Option<&str>,
    ) -> RunRecord {
        let req = RunRequest::new(
            crate::engine::request::TargetSpec::Instance("i-1".into()),
            Mode::Execute,
            "alarm",
        );
        let mut r = RunRecord::new(id.into(), decl, &req);
        r.started_at = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::minutes(minutes);
        r.task_state = state;
        r.requested_by = by.map(str::to_string);
        r
    }

    /// History: newest first, `limit` of them, only the ones that did not succeed when asked
    /// (read page by page, so a filter still finds `limit`), an unreadable object skipped;
    /// who ran each: whoever asked, else the trigger.
    #[tokio::test]
    async fn history_is_newest_first_limited_and_filtered() {
        use crate::engine::ports::ObjectStore;
        let cloud = MemoryCloud::seed();
        let decl = Declaration::parse(crate::testing::plan::AFTER).unwrap();
        let log = seed_log(&cloud, &decl);
        for (id, m, st, by) in [
            ("r1", 1, TaskState::Failed, None),
            (
                "r2",
                2,
                TaskState::Succeeded,
                Some("arn:aws:iam::1:user/op"),
            ),
            ("r3", 3, TaskState::Succeeded, None),
            ("r4", 4, TaskState::Partial, None),
            ("r5", 5, TaskState::Succeeded, None),
        ] {
            log.write_history(&record(&decl, id, m, st, by))
                .await
                .unwrap();
        }
        let prefix = crate::engine::keys::history_prefix(&decl.extension.cluster_name);
        cloud
            .put_object(
                "cfe-state-bigip-ha",
                &format!("{prefix}29991231T000000.000Z-x.json"),
                b"not json".to_vec(),
                &crate::engine::declaration::Encryption::None,
                None,
            )
            .await
            .unwrap();
        let ids = |v: Vec<RunSummary>| v.into_iter().map(|r| r.run_id).collect::<Vec<_>>();
        let cluster = &decl.extension.cluster_name;
        let h = |limit, failed| read_history(&cloud, "cfe-state-bigip-ha", cluster, limit, failed);
        assert_eq!(ids(h(2, false).await.unwrap()), ["r5", "r4"]);
        assert_eq!(
            ids(h(10, false).await.unwrap()),
            ["r5", "r4", "r3", "r2", "r1"]
        );
        assert_eq!(ids(h(2, true).await.unwrap()), ["r4", "r1"]);
        assert_eq!(ids(h(1, true).await.unwrap()), ["r4"]);
        let all = h(10, false).await.unwrap();
        assert_eq!(all[3].who(), "arn:aws:iam::1:user/op");
        assert_eq!(all[0].who(), "alarm");
    }

    fn failed_state(state: &str) -> Value {
        json!({
            "taskState": state,
            "failoverOperations": {"addresses": {"publicAddresses": {
                "3.3.3.3": {"AllocationId": "eipalloc-1", "target": {"PrivateIpAddress": "10.0.0.50"}}
            }}},
            EXTENSION_KEY: {
                "detachedEips": [{"allocationId": "eipalloc-2", "address": "10.0.0.51"}],
                "detachedPrefixes": [{"prefix": "10.0.0.64/28", "networkInterfaceId": "eni-2"}],
                "operations": [
                    {"id": "prefix-release:10.0.0.48/28", "wave": 0, "why": "",
                     "action": {"type": "releasePrefix", "networkInterfaceId": "eni-1",
                                "prefix": "10.0.0.48/28", "toNetworkInterfaceId": "eni-3"}},
                    {"id": "prefix-release:10.0.0.48/28", "wave": 0, "why": "",
                     "action": {"type": "releasePrefix", "networkInterfaceId": "eni-1",
                                "prefix": "10.0.0.48/28", "toNetworkInterfaceId": "eni-3"}}
                ]
            }
        })
    }

    /// An unfinished run's moves (RUNNING, FAILED, PARTIAL) are what the log still knows; a
    /// finished run's are done. What a record carries forward counts either way. A prefix is
    /// named once.
    #[test]
    fn unfinished_moves_are_read_from_an_unfinished_runs_state() {
        let eip = |id: &str, ip: &str| DetachedEip {
            allocation_id: id.into(),
            address: ip.parse().unwrap(),
        };
        let pre = |p: &str, eni: &str| DetachedPrefix {
            prefix: p.parse().unwrap(),
            network_interface_id: eni.into(),
        };
        for st in ["RUNNING", "FAILED", "PARTIAL"] {
            let s = failed_state(st);
            assert_eq!(
                unfinished_eip_moves(&s),
                [
                    eip("eipalloc-1", "10.0.0.50"),
                    eip("eipalloc-2", "10.0.0.51")
                ],
                "{st}"
            );
            assert_eq!(
                unfinished_prefix_moves(&s),
                [pre("10.0.0.48/28", "eni-1"), pre("10.0.0.64/28", "eni-2")],
                "{st}"
            );
        }
        let done = failed_state("SUCCEEDED");
        assert_eq!(
            unfinished_eip_moves(&done),
            [eip("eipalloc-2", "10.0.0.51")]
        );
        assert_eq!(
            unfinished_prefix_moves(&done),
            [pre("10.0.0.64/28", "eni-2")]
        );
    }

    /// A reset is a clean slate that keeps the box's last word and what only the log knows.
    #[tokio::test]
    async fn a_reset_keeps_the_boxs_word_and_what_only_the_log_knows() {
        let cloud = MemoryCloud::seed();
        let decl = Declaration::parse(crate::testing::plan::AFTER).unwrap();
        let log = seed_log(&cloud, &decl);
        let mut prev = failed_state("FAILED");
        prev[EXTENSION_KEY]["lastAnnouncement"] =
            json!({"target": "i-b", "at": "2026-12-06T10:00:00Z"});
        log.reset_state("arn:aws:iam::1:user/op", Some(&prev))
            .await
            .unwrap();
        let s = log.read_state().await.unwrap().unwrap();
        assert_eq!(s["taskState"], "SUCCEEDED");
        assert_eq!(s["message"], "Reset by arn:aws:iam::1:user/op");
        let ext = &s[EXTENSION_KEY];
        assert_eq!(ext["reset"], true);
        assert_eq!(ext["lastAnnouncement"]["target"], "i-b");
        assert_eq!(ext["detachedEips"].as_array().unwrap().len(), 2);
        assert_eq!(ext["detachedPrefixes"].as_array().unwrap().len(), 2);
        assert_eq!(last_announcement(&s).unwrap().target, "i-b");
    }

    /// An unfinished run's detached prefix EIPs and released prefixes join the snapshot
    /// (released ones only while no member holds them, and only declared ones); another
    /// cluster's record is not read.
    #[tokio::test]
    async fn recall_adds_what_an_unfinished_run_detached() {
        use crate::lab::EipSpec;
        let mut topo = crate::testing::same_az_with_prefix();
        topo.elastic_ips.push(EipSpec {
            allocation_id: "eipalloc-1".into(),
            public_ip: "3.3.3.3".parse().unwrap(),
            tags: crate::lab::tags([crate::lab::SEED_TAG]),
            associated_with: None,
        });
        let cloud = MemoryCloud::from_topology(&topo);
        let d = crate::testing::plan::prefix_declaration(|_| ());
        let mut state = failed_state("FAILED");
        state[EXTENSION_KEY]["cluster"] = d.extension.cluster_name.clone().into();
        let mut snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        recall_detached_eips(&cloud, &d, Some(&state), &mut snap)
            .await
            .unwrap();
        assert_eq!(snap.detached_eips().len(), 1, "{:?}", snap.prefix_eips);
        assert!(
            snap.released_prefixes.is_empty(),
            "A holds 10.0.0.48/28: {:?}",
            snap.released_prefixes
        );
        // The prefix released and held by no one: named.
        let mut t = crate::testing::same_az_with_prefix();
        for i in &mut t.instances {
            for n in &mut i.interfaces {
                n.prefixes.clear();
            }
        }
        let bare = MemoryCloud::from_topology(&t);
        let mut snap = crate::engine::discovery::discover(&bare, &bare, &d)
            .await
            .unwrap();
        recall_detached_eips(&bare, &d, Some(&state), &mut snap)
            .await
            .unwrap();
        assert_eq!(
            snap.released_prefixes.len(),
            1,
            "{:?}",
            snap.released_prefixes
        );
        // Another cluster's record: nothing read.
        let mut foreign = state.clone();
        foreign[EXTENSION_KEY]["cluster"] = "someone-else".into();
        let mut snap = crate::engine::discovery::discover(&cloud, &cloud, &d)
            .await
            .unwrap();
        recall_detached_eips(&cloud, &d, Some(&foreign), &mut snap)
            .await
            .unwrap();
        assert!(snap.detached_eips().is_empty());
    }
}
