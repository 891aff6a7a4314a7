//! What the three Lambda `main`s share: the one place that reads their environment, the
//! cold-start setup, logging, the invocation's deadline and trust, and the one mapping of a
//! failure to Lambda's error answer.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::sqs::SqsBatchResponse;
use failover_core::app::events::{Home, Trust, DEFAULT_ALARM_NAME_PREFIX};
use failover_core::app::fleet::ClusterResult;
use failover_core::app::fleet::Fleet;
use failover_core::app::handler::{handle_fleet, handle_pair, Reply, Scope};
use failover_core::app::handler::{load_declaration, Invocation, Location};
use failover_core::app::{events, metrics};
use failover_core::aws::{self, AwsCloud, AwsOptions};
use failover_core::engine::answer::Answer;
use failover_core::engine::declaration::{stack_tag_mismatches, LABEL_KEY};
use failover_core::engine::ports::{Ec2, ObjectStore, Queue};
use failover_core::FailoverError;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;

/// An invocation as Lambda delivers it: the payload's JSON text, unread (see [`payload`]).
pub type RawEvent = LambdaEvent<Box<RawValue>>;

/// The invocation's payload, read by the CLI's strict reader (`events::parse_json`), not by
/// serde_json, which keeps the last of a key given twice: `{"target":"i-a","target":"i-b"}`
/// is an `InvalidEvent` naming the key, for every function alike.
pub fn payload(event: RawEvent) -> Result<LambdaEvent<Value>, Diagnostic> {
    let LambdaEvent { payload, context } = event;
    let value =
        events::parse_json(payload.get()).map_err(|e| diagnostic(FailoverError::Event(e)))?;
    Ok(LambdaEvent::new(value, context))
}

/// What a Lambda `main` sets up once, before the first event.
pub struct Setup {
    /// The SDK adapters (shaped by the declaration's endpoints, CA bundle, bucket region).
    pub cloud: AwsCloud,
    /// `DECLARATION_URI`.
    pub declaration: Location,
    /// Region, endpoint and emulator, for clients made later (the fleet's queue).
    pub options: AwsOptions,
    log_directive: Option<&'static str>,
    warnings: Vec<String>,
}

impl Setup {
    /// Starts logging (see [`init_tracing`]) and logs what the cold start found wrong with
    /// the configuration.
    pub fn init_tracing(&self) {
        init_tracing(self.log_directive);
        for w in &self.warnings {
            tracing::warn!(warning = %w, "configuration");
        }
    }
}

/// Why a Lambda cannot start (its cold start fails, naming the setting).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// `DECLARATION_URI` is missing.
    #[error("DECLARATION_URI is not set (expected s3://BUCKET/KEY)")]
    NoDeclaration,
    /// `DECLARATION_URI` is not a location.
    #[error("DECLARATION_URI: {0}")]
    Declaration(String),
    /// The emulator is named but no endpoint is.
    #[error(
        "{} is set but AWS_ENDPOINT_URL is not: dummy credentials are never sent to AWS",
        aws::EMULATOR_ENV
    )]
    EmulatorWithoutEndpoint,
    /// The adapters' settings (the emulator's name, the declaration's CA bundle).
    #[error(transparent)]
    Settings(#[from] aws::SettingsError),
}

/// Reads `DECLARATION_URI` (required), `AWS_ENDPOINT_URL` (for local runs) and
/// `SCOPING_TAG_KEY` (the stack's `ScopingTagKey`), and builds the SDK adapters once, before
/// the first event; keeps the declaration's `controls.logLevel` for [`Setup::init_tracing`],
/// and a warning for each scope the stack's IAM policy does not allow.
pub async fn lambda_setup() -> Result<Setup, SetupError> {
    let declaration: Location = std::env::var("DECLARATION_URI")
        .map_err(|_| SetupError::NoDeclaration)?
        .parse()
        .map_err(SetupError::Declaration)?;
    let opts = AwsOptions {
        region: None,
        endpoint_url: std::env::var("AWS_ENDPOINT_URL")
            .ok()
            .filter(|u| !u.is_empty()),
        emulator: aws::Emulator::from_env()?,
    };
    if opts.emulator.is_some() && opts.endpoint_url.is_none() {
        return Err(SetupError::EmulatorWithoutEndpoint);
    }
    let cloud = aws::connect(&opts).await;
    // Read once at cold start: a declaration that does not load is reported by each
    // invocation instead, so the base adapters and log level are kept.
    let Ok(decl) = load_declaration(&cloud.s3, &declaration).await else {
        return Ok(Setup {
            cloud,
            declaration,
            options: opts,
            log_directive: None,
            warnings: Vec::new(),
        });
    };
    let stack_key = std::env::var("SCOPING_TAG_KEY").unwrap_or_else(|_| LABEL_KEY.into());
    Ok(Setup {
        cloud: aws::with_settings(cloud, &opts, &decl).await?,
        declaration,
        options: opts,
        log_directive: Some(decl.log_directive()),
        warnings: stack_tag_mismatches(&decl, &stack_key),
    })
}

/// Sets up logging for a Lambda `main` (never for tests): the level by one rule
/// ([`failover_core::app::logging`]: `RUST_LOG`, else the declaration's `controls.logLevel`, else
/// `info`; the SDK's crates never above debug), JSON lines when `AWS_LAMBDA_LOG_FORMAT` is
/// `JSON` (as `lambda_runtime`'s default subscriber). Lambda's own `AWS_LAMBDA_LOG_LEVEL`
/// (the stack sets `TRACE`: drop nothing) is not a level here.
fn init_tracing(declared: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let rust_log = std::env::var("RUST_LOG").ok();
    let filter = failover_core::app::logging::lambda_filter(rust_log.as_deref(), declared);
    let fmt = tracing_subscriber::fmt()
        .with_target(false)
        .without_time()
        .with_env_filter(EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info")));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        fmt.json().init()
    } else {
        fmt.init()
    }
}

/// The invocation from Lambda's request id and deadline (ms since the epoch).
pub fn invocation(request_id: String, deadline_epoch_ms: u64) -> Invocation {
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|now| Duration::from_millis(deadline_epoch_ms).checked_sub(now))
        .map(|left| Instant::now() + left);
    Invocation {
        request_id: Some(request_id),
        deadline,
        trust: Trust::default(),
        budget: None,
    }
}

/// What the failover function trusts: its own account and region, from the invoked function's
/// ARN, and the stack's alarm-name prefix (`ALARM_NAME_PREFIX`, set by the template from its
/// `AlarmNamePrefix` parameter; default `cloud-failover-`). Local Lambda emulators pass no
/// real ARN (`cargo lambda watch` says `function-arn`): only then are `AWS_ACCOUNT_ID` and
/// `AWS_REGION` used, when both are set (`scripts/invoke-local.sh` sets moto's).
pub fn trust(invoked_function_arn: &str) -> Trust {
    let home = Home::from_function_arn(invoked_function_arn).or_else(|| {
        match (std::env::var("AWS_ACCOUNT_ID"), std::env::var("AWS_REGION")) {
            (Ok(account), Ok(region)) if !account.is_empty() && !region.is_empty() => {
                Some(Home { account, region })
            }
            _ => None,
        }
    });
    if home.is_none() {
        tracing::warn!(
            arn = %invoked_function_arn,
            "the invoked function ARN names no account and region: no event from outside is trusted"
        );
    }
    Trust {
        home,
        alarm_name_prefix: std::env::var("ALARM_NAME_PREFIX")
            .unwrap_or_else(|_| DEFAULT_ALARM_NAME_PREFIX.to_string()),
    }
}

/// Lambda's error answer for a failed invocation: the error's type name (`FailoverError`'s
/// variant, which the stack's alarms and the retry policy key on) and its message.
pub fn diagnostic(e: FailoverError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_string(),
        error_message: e.to_string(),
    }
}

/// How long a message whose event failed waits before it is delivered again: a minute per
/// delivery so far, at most five (Lambda retries an asynchronous invoke after 1 and 2
/// minutes; the queue's own visibility timeout, six times the function's, is far longer).
pub fn retry_delay(receive_count: u32) -> Duration {
    Duration::from_secs(60 * u64::from(receive_count.clamp(1, 5)))
}

/// The failover function's reply: a single pair's answer; a fleet's to a direct invoke (the
/// one cluster's, or each cluster's for the schedule); or an SQS batch's.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FailoverReply {
    /// A single pair's answer to its event.
    Answer(Answer),
    /// The one cluster's answer, its declaration named.
    Cluster(ClusterResult<Answer>),
    /// Each cluster's answer (the schedule).
    Answers {
        /// In the fleet's key order.
        answers: Vec<ClusterResult<Answer>>,
    },
    /// An SQS batch's.
    Batch(BatchReply),
}

/// An SQS batch's reply: the messages Lambda delivers again (AWS's `SqsBatchResponse`, for
/// `ReportBatchItemFailures`), and every event's answers, each naming its message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReply {
    /// `batchItemFailures`.
    #[serde(flatten)]
    pub response: SqsBatchResponse,
    /// Each event's answers.
    pub answers: Vec<ClusterResult<Answer>>,
}

/// One invocation of the failover function: an SQS batch (of a fleet's executor, or of a
/// pair's function by its queue) or any event of a fleet through `handle_fleet`; else the
/// pair's event through `handle`. Each answer writes its metrics line.
pub async fn respond(
    cloud: &AwsCloud,
    scope: &Scope,
    queue: impl std::future::Future<Output = &aws::sqs::AwsSqs>,
    payload: Value,
    inv: Invocation,
) -> Result<FailoverReply, Diagnostic> {
    if events::sqs_messages(&payload).is_none() && !scope.is_fleet() {
        let answer = match handle_pair(&cloud.ec2, &cloud.s3, scope.location(), &payload, inv).await
        {
            // A pair with failover groups: each group's answer, as a fleet's direct invoke.
            Ok(Reply::Fleet(report)) => {
                for a in &report.clusters {
                    println!("{}", metrics::emf("failover", &a.result));
                }
                return direct_response(report.clusters);
            }
            Ok(Reply::One(answer)) => Ok(answer),
            Err(e) => Err(e),
        };
        // CloudWatch Embedded Metric Format: one line on stdout per answer.
        println!("{}", metrics::emf("failover", &answer));
        return answer.map(FailoverReply::Answer).map_err(diagnostic);
    }
    let mut fleet = scope.fleet().await;
    run_batch(&cloud.ec2, &cloud.s3, queue.await, &mut fleet, payload, inv).await
}

/// One invocation of the fleet's executor (or of the function by its queue): the events of
/// an SQS batch, or the invocation's own event (a direct invoke), through `handle_fleet`.
/// A failed message is delivered again after [`retry_delay`] (`Queue::retry_after`).
pub async fn run_batch(
    ec2: &dyn Ec2,
    store: &dyn ObjectStore,
    queue: &dyn Queue,
    fleet: &mut Fleet,
    payload: Value,
    inv: Invocation,
) -> Result<FailoverReply, Diagnostic> {
    let messages = match events::sqs_messages(&payload) {
        Some(m) => Some(m.map_err(|e| diagnostic(FailoverError::Event(e)))?),
        None => None,
    };
    let events: Vec<Value> = match &messages {
        Some(m) => m.iter().map(|m| m.event.clone()).collect(),
        None => vec![payload],
    };
    let answers = handle_fleet(ec2, store, fleet, &events, inv).await;
    for a in answers.iter().flatten() {
        println!("{}", metrics::emf("failover", &a.result));
    }
    let Some(messages) = messages else {
        return direct_response(answers.into_iter().flatten().collect());
    };
    let mut reply = BatchReply {
        response: SqsBatchResponse::default(),
        answers: Vec::new(),
    };
    for (m, answers) in messages.iter().zip(answers) {
        if answers.iter().any(|a| a.result.is_err()) {
            reply.response.add_failure(m.message_id.clone());
            sooner(queue, m).await;
        }
        reply
            .answers
            .extend(answers.into_iter().map(|a| ClusterResult {
                message_id: Some(m.message_id.clone()),
                ..a
            }));
    }
    Ok(FailoverReply::Batch(reply))
}

/// Has a failed message delivered again after [`retry_delay`] (else it comes back after
/// the queue's visibility timeout: logged).
async fn sooner(queue: &dyn Queue, m: &events::Queued) {
    let (Some(arn), Some(handle)) = (&m.queue_arn, &m.receipt_handle) else {
        return;
    };
    let delay = retry_delay(m.receive_count);
    match queue.retry_after(arn, handle, delay).await {
        Ok(()) => {
            tracing::info!(message = %m.message_id, delay_s = delay.as_secs(), "delivered again later")
        }
        Err(e) => {
            tracing::warn!(message = %m.message_id, error = %e, "could not shorten the wait: the queue's visibility timeout applies")
        }
    }
}

/// A direct invoke's answer: its one answer (the cluster named), or its error; several (the
/// schedule) are `answers`, an error if any failed.
fn direct_response(mut answers: Vec<ClusterResult<Answer>>) -> Result<FailoverReply, Diagnostic> {
    if let Some(i) = answers.iter().position(|a| a.result.is_err()) {
        if let Err(e) = answers.swap_remove(i).result {
            return Err(diagnostic(e));
        }
    }
    Ok(match answers.len() {
        1 => FailoverReply::Cluster(answers.remove(0)),
        _ => FailoverReply::Answers { answers },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::app::events::{Home, Trust};
    use failover_core::app::handler::{Invocation, Location};
    use failover_core::engine::answer::Status;
    use failover_core::engine::error::CloudError;
    use failover_core::memory::MemoryCloud;
    use serde_json::json;
    use std::sync::Mutex;

    /// Records what it was asked to deliver again.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<(String, String, Duration)>>);

    #[async_trait::async_trait]
    impl Queue for Recorded {
        async fn retry_after(
            &self,
            queue_arn: &str,
            receipt_handle: &str,
            delay: Duration,
        ) -> Result<(), CloudError> {
            self.0
                .lock()
                .unwrap()
                .push((queue_arn.into(), receipt_handle.into(), delay));
            Ok(())
        }
    }

    /// The fleet's queue as Lambda delivers it (events/fleet-sqs.json, AWS's SQS event shape):
    /// the good messages are answered, the bad one is named in `batchItemFailures` and is
    /// delivered again in a minute (its second delivery in two), not after the queue's 30.
    #[tokio::test]
    async fn a_failed_message_is_named_and_delivered_again_soon() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
        let mut batch: Value = failover_core::engine::json::parse(&failover_core::lab::fresh(
            &std::fs::read_to_string(format!("{root}/events/fleet-sqs.json")).unwrap(),
        ))
        .unwrap();
        batch["Records"][1]["body"] = "{\"not\": \"an event\"}".into();
        batch["Records"][1]["attributes"]["ApproximateReceiveCount"] = "2".into();
        let cloud = MemoryCloud::seed();
        let queue = Recorded::default();
        let loc =
            Location::File(format!("{root}/examples/seed-article/declaration-after.json").into());
        let mut fleet = Fleet::new(loc);
        let inv = Invocation {
            trust: Trust::at(Home {
                account: "123456789012".into(),
                region: "us-east-1".into(),
            }),
            ..Invocation::default()
        };
        let reply = run_batch(&cloud, &cloud, &queue, &mut fleet, batch.clone(), inv)
            .await
            .unwrap();
        // The reply as Lambda sends it: AWS's SqsBatchResponse, with the answers beside it.
        let out = serde_json::to_value(&reply).unwrap();
        let failed = &batch["Records"][1];
        assert_eq!(
            out["batchItemFailures"],
            json!([{"itemIdentifier": failed["messageId"]}]),
            "{out}"
        );
        let answers = out["answers"].as_array().unwrap();
        assert_eq!(answers.len(), 3, "{out}");
        assert_eq!(answers[0]["status"], Status::Succeeded.as_str(), "{out}");
        assert_eq!(answers[1]["errorType"], "InvalidEvent", "{out}");
        assert_eq!(
            *queue.0.lock().unwrap(),
            [(
                failed["eventSourceARN"].as_str().unwrap().to_string(),
                failed["receiptHandle"].as_str().unwrap().to_string(),
                Duration::from_secs(120)
            )]
        );
        assert_eq!(retry_delay(1), Duration::from_secs(60));
        assert_eq!(retry_delay(9), Duration::from_secs(300));
    }

    /// serde_json (lambda_runtime's reader, RFC 8259 leaves duplicate names open) keeps the
    /// last of a key given twice; the CLI's reader refuses it. One reader for both.
    #[test]
    fn a_key_given_twice_is_an_invalid_event_as_in_the_cli() {
        // GIVEN an event naming two targets, as Lambda delivers it
        let text = r#"{"action": "execute", "target": "i-0a", "target": "i-0b"}"#;
        let raw = RawValue::from_string(text.to_string()).unwrap();
        let event = LambdaEvent::new(raw, lambda_runtime::Context::default());
        // WHEN the function reads its payload
        let e = payload(event).unwrap_err();
        // THEN it is refused as the CLI refuses it, naming the key
        assert_eq!(e.error_type, "InvalidEvent");
        assert!(e.error_message.contains("\"target\" twice"), "{e:?}");
        let cli = failover_core::app::events::parse_text(text).unwrap_err();
        assert!(e.error_message.contains(&cli.to_string()), "{e:?} vs {cli}");
        // AND a well-formed payload reads as serde_json reads it, context kept
        let raw = RawValue::from_string(r#"{"action": "execute", "target": "i-0b"}"#.into());
        let mut event = LambdaEvent::new(raw.unwrap(), lambda_runtime::Context::default());
        event.context.request_id = "req-1".into();
        let read = payload(event).unwrap();
        assert_eq!(read.payload, json!({"action": "execute", "target": "i-0b"}));
        assert_eq!(read.context.request_id, "req-1");
    }
}
