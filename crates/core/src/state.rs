//! The state log: CFE's `f5cloudfailoverstate.json` (same shape, so CFE tooling reads it),
//! extended with a `serverless` block, plus one history object per run.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::declaration::{Declaration, EXTENSION_KEY};
use crate::error::CloudError;
use crate::execute::Outcome;
use crate::failover::RunRequest;
use crate::plan::{Action, Operation, Plan};
use crate::ports::ObjectStore;

/// Prefix of every object this project writes (CFE's).
pub const PREFIX: &str = "f5cloudfailover";

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
}

/// Whether a run changes the cloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Plan and execute.
    Execute,
    /// Plan only: no mutating call and no write.
    DryRun,
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
    /// Target instance id (empty when it could not be resolved).
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
    /// Refusal reasons, when the planner refused.
    pub refusal: Vec<String>,
    /// The run id of an earlier run left RUNNING or FAILED that this one converges.
    pub recovers: Option<String>,
    /// The last failover that changed something (kept across runs, for flap damping).
    pub last_failover: Option<LastFailover>,
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

impl RunRecord {
    /// A record for a run starting now.
    pub fn new(run_id: String, decl: &Declaration, req: &RunRequest) -> RunRecord {
        RunRecord {
            run_id,
            cluster: decl.extension.cluster_name.clone(),
            trigger: req.trigger.clone(),
            request_id: req.request_id.clone(),
            mode: req.mode,
            target: String::new(),
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
            refusal: Vec::new(),
            recovers: None,
            last_failover: None,
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
        if failed.is_empty() {
            self.task_state = TaskState::Succeeded;
            self.message = if self.operations.is_empty() {
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
        self.warnings = plan.warnings.clone();
        self
    }
}

/// CFE's timestamp format (`2025-07-17T15:38:42.875Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Key of the state file.
pub fn state_key(decl: &Declaration) -> String {
    format!("{PREFIX}/{}", decl.external_storage.state_file_name)
}

/// Key of a run's history object (sorts by time).
pub fn history_key(record: &RunRecord) -> String {
    format!(
        "{PREFIX}/history/{}/{}-{}.json",
        record.cluster,
        record.started_at.format("%Y%m%dT%H%M%S%.3fZ"),
        record.run_id
    )
}

/// One `interfaces.{disassociate,associate}[].addresses` entry exactly as CFE 2.2+ writes it
/// (`_checkForNicOperations`): `address`, `publicAddress` only when an Elastic IP is associated,
/// and `ipVersion` as a number (CFE ≥ 2.2 drops entries without it when it replays the file).
fn interface_address(ip: std::net::IpAddr, public: Option<&std::net::IpAddr>) -> Value {
    let mut entry = json!({"address": ip.to_string()});
    if let Some(p) = public {
        entry["publicAddress"] = p.to_string().into();
    }
    entry["ipVersion"] = if ip.is_ipv6() { 6 } else { 4 }.into();
    entry
}

/// The state file body in CFE's shape.
pub fn cfe_state(record: &RunRecord) -> Value {
    let mut public = Map::new();
    let mut disassociate = Vec::new();
    let mut associate = Vec::new();
    let mut routes = Vec::new();
    for op in &record.operations {
        match &op.action {
            Action::AssociateAddress {
                allocation_id,
                public_ip,
                network_interface_id,
                private_ip,
                current_association_id,
                current_private_ip,
                ..
            } => {
                public.insert(
                    public_ip.to_string(),
                    json!({
                        "current": {
                            "PrivateIpAddress": current_private_ip.map(|i| i.to_string()),
                            "AssociationId": current_association_id,
                        },
                        "target": {
                            "PrivateIpAddress": private_ip.to_string(),
                            "NetworkInterfaceId": network_interface_id,
                        },
                        "AllocationId": allocation_id,
                    }),
                );
            }
            // No CFE field for it: recorded in the serverless block only.
            Action::SwapAssociation { .. } => {}
            Action::AssignPrivateIps {
                network_interface_id,
                from_network_interface_id,
                ips,
                public_ips,
            } => {
                let addrs: Vec<Value> = ips
                    .iter()
                    .map(|ip| interface_address(*ip, public_ips.get(ip)))
                    .collect();
                disassociate.push(
                    json!({"networkInterfaceId": from_network_interface_id, "addresses": addrs}),
                );
                associate
                    .push(json!({"networkInterfaceId": network_interface_id, "addresses": addrs}));
            }
            // CFE 2.2+: `{address: <prefix>, ipVersion: 4, prefix: true}`.
            Action::ReleasePrefix {
                network_interface_id,
                prefix,
                ..
            } => disassociate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": [{"address": prefix.to_string(), "ipVersion": 4, "prefix": true}],
            })),
            Action::AssignPrefix {
                network_interface_id,
                prefix,
                ..
            } => associate.push(json!({
                "networkInterfaceId": network_interface_id,
                "addresses": [{"address": prefix.to_string(), "ipVersion": 4, "prefix": true}],
            })),
            Action::ReplaceRoute {
                route_table_id,
                destination,
                network_interface_id,
                next_hop_address,
                ..
            }
            | Action::CreateRoute {
                route_table_id,
                destination,
                network_interface_id,
                next_hop_address,
            } => routes.push(json!({
                "routeTableId": route_table_id,
                "networkInterfaceId": network_interface_id,
                "routeAddress": destination.to_string(),
                "nextHopAddress": next_hop_address.to_string(),
                "ipVersion": if destination.is_ipv6() { "6" } else { "4" },
            })),
        }
    }
    let message = match record.task_state {
        TaskState::Running => "Failover running".to_string(),
        TaskState::Succeeded => "Failover Complete".to_string(),
        TaskState::Failed => format!("Failover failed: {}", record.message),
    };
    let mut v = json!({
        "taskState": record.task_state,
        "message": message,
        "timestamp": timestamp(record.finished_at.unwrap_or(record.started_at)),
        "instance": record.target_name,
        "failoverOperations": {
            "addresses": {
                "publicAddresses": public,
                "interfaces": {"disassociate": disassociate, "associate": associate},
                "loadBalancerAddresses": {},
            },
            "routes": {"operations": routes},
        },
    });
    v[EXTENSION_KEY] = serde_json::to_value(record).expect("record serializes");
    v
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
        self.put(&state_key(self.decl), &cfe_state(record)).await
    }

    /// Writes the run's history object; returns its key.
    pub async fn write_history(&self, record: &RunRecord) -> Result<String, CloudError> {
        let key = history_key(record);
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

    /// Reads the current state file, if any.
    pub async fn read_state(&self) -> Result<Option<Value>, CloudError> {
        let obj = self
            .store
            .get_object(&self.bucket, &state_key(self.decl))
            .await?;
        Ok(obj.and_then(|o| serde_json::from_slice(&o.body).ok()))
    }
}
