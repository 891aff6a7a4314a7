//! AWS SDK adapters for the ports, and client setup (region and credentials the standard way,
//! an endpoint override for local emulators, path-style S3 when overridden).

#[cfg(test)]
mod answers;
pub mod ec2;
pub mod s3;
pub mod sqs;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef,
};
use aws_sdk_ec2::config::{ConfigBag, Credentials, Intercept};
use aws_sdk_ec2::error::ProvideErrorMetadata;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;

use crate::engine::declaration::Declaration;
use crate::engine::error::{CloudError, ErrorKind};
use crate::engine::ports::MUTATING_OPERATIONS;

pub use ec2::AwsEc2;
pub use s3::AwsS3;

/// Region used against an emulator when none is given.
pub const EMULATOR_REGION: &str = "us-east-1";

/// How to reach AWS (or an emulator).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AwsOptions {
    /// Region; else the standard chain (environment, profile, instance metadata).
    pub region: Option<String>,
    /// Endpoint override (`--endpoint-url` / `AWS_ENDPOINT_URL`), e.g. a moto server.
    pub endpoint_url: Option<String>,
    /// The emulator behind the endpoint, when it is one.
    pub emulator: Option<Emulator>,
}

impl AwsOptions {
    /// Whether the emulator's known deviations are accounted for (said explicitly, never
    /// guessed from the endpoint): dummy credentials and a default region, so nothing asks
    /// instance metadata, and the adapter's moto shims.
    pub fn is_emulator(&self) -> bool {
        self.active_emulator().is_some()
    }

    /// The emulator, when there is also an endpoint to reach it at: without one the calls go
    /// to AWS, which gets AWS's behaviour and real credentials, never the emulator's.
    pub fn active_emulator(&self) -> Option<Emulator> {
        self.emulator.filter(|_| self.endpoint_url.is_some())
    }
}

/// A local AWS emulator whose deviations the adapters account for (`--emulator moto`,
/// `CLOUD_FAILOVER_EMULATOR=moto`). Its shims live in the adapters only: the engine above the
/// ports sees AWS's behaviour or an honest "unknown".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emulator {
    /// moto (`python -m moto.server`): AssociateAddress ignores `PrivateIpAddress` and
    /// DescribeAddresses reports the interface's primary IP; the ENI filter
    /// `addresses.private-ip-address` matches primary IPs only; some calls take effect despite
    /// `DryRun`.
    Moto,
}

/// The environment variable that names the emulator (`moto`), for the Lambdas under a local
/// runtime and for the scripts.
pub const EMULATOR_ENV: &str = "CLOUD_FAILOVER_EMULATOR";

/// What the adapters cannot be set up from, naming the setting.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// An emulator name other than `moto`.
    #[error("{0:?} is not a known emulator (moto)")]
    UnknownEmulator(String),
    /// `CLOUD_FAILOVER_EMULATOR` names an unknown emulator.
    #[error("{EMULATOR_ENV}: {0}")]
    Environment(Box<SettingsError>),
    /// `trustedCertBundle` is a file that holds no PEM certificate.
    #[error("trustedCertBundle: {0} holds no PEM certificate")]
    NotPem(String),
    /// `trustedCertBundle` cannot be read.
    #[error("trustedCertBundle: {path}: {source}")]
    Unreadable {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl std::str::FromStr for Emulator {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Emulator, SettingsError> {
        match s {
            "moto" => Ok(Emulator::Moto),
            other => Err(SettingsError::UnknownEmulator(other.into())),
        }
    }
}

impl Emulator {
    /// The emulator `CLOUD_FAILOVER_EMULATOR` names, if any (an unknown name is an error).
    pub fn from_env() -> Result<Option<Emulator>, SettingsError> {
        match std::env::var(EMULATOR_ENV) {
            Ok(v) if !v.is_empty() => v
                .parse()
                .map(Some)
                .map_err(|e| SettingsError::Environment(Box::new(e))),
            _ => Ok(None),
        }
    }
}

/// What the declaration says about reaching AWS (CFE's `externalStorage.endpointDnsName`,
/// `failoverAddresses.endpointDnsName`, `trustedCertBundle`, and the region of a
/// virtual-host bucket name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSettings {
    /// EC2 interface endpoint host (AWS PrivateLink): EC2 calls go to `https://HOST`.
    pub ec2_endpoint: Option<String>,
    /// S3 interface endpoint host: S3 calls go to `https://bucket.HOST` (virtual-host style,
    /// as CFE and AWS's PrivateLink guide do).
    pub s3_endpoint: Option<String>,
    /// The state bucket's region, when the declaration names it.
    pub s3_region: Option<String>,
    /// PEM CA certificates the clients trust instead of the system's (as CFE's `ca` option).
    pub ca_bundle: Option<Vec<u8>>,
}

impl ClientSettings {
    /// The settings `decl` asks for. The CA bundle file is read here; a missing file is
    /// ignored with a warning, as CFE ignored it.
    pub fn from_declaration(decl: &Declaration) -> Result<ClientSettings, SettingsError> {
        let ca_bundle = match &decl.trusted_cert_bundle {
            None => None,
            Some(path) => match std::fs::read(path) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    Some(pem)
                }
                Ok(_) => return Err(SettingsError::NotPem(path.clone())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    tracing::warn!(%path, "trustedCertBundle: no such file; the system's CA certificates are used (as CFE did)");
                    None
                }
                Err(source) => {
                    return Err(SettingsError::Unreadable {
                        path: path.clone(),
                        source,
                    })
                }
            },
        };
        Ok(ClientSettings {
            ec2_endpoint: decl
                .failover_addresses
                .as_ref()
                .and_then(|a| a.endpoint_dns_name.clone()),
            s3_endpoint: decl.external_storage.endpoint_dns_name.clone(),
            s3_region: decl.external_storage.bucket_region.clone(),
            ca_bundle,
        })
    }
}

/// The two SDK adapters, sharing one configuration.
#[derive(Clone, Debug)]
pub struct AwsCloud {
    /// EC2 adapter.
    pub ec2: AwsEc2,
    /// S3 adapter.
    pub s3: AwsS3,
}

/// Records the name of every API operation sent through the clients, and how long each
/// HTTP exchange took (an SDK interceptor, so it works against AWS and emulators alike).
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<String>>>, Arc<Mutex<Vec<Exchange>>>);

/// One HTTP exchange: operation, when it was sent, how long until the response.
pub type Exchange = (String, std::time::Instant, Duration);

/// When the current attempt went on the wire (kept in the request's config bag).
#[derive(Debug, Clone, Copy)]
struct SentAt(std::time::Instant);

impl aws_smithy_types::config_bag::Storable for SentAt {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl CallLog {
    /// Each exchange (request sent to response received).
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.1.lock().expect("call log").clone()
    }

    /// How long at least one exchange was in flight between `from` and `to`.
    pub fn busy(&self, from: std::time::Instant, to: std::time::Instant) -> Duration {
        let mut spans: Vec<(std::time::Instant, std::time::Instant)> = self
            .exchanges()
            .iter()
            .map(|(_, s, d)| ((*s).max(from), (*s + *d).min(to)))
            .filter(|(s, e)| s < e)
            .collect();
        spans.sort();
        let mut total = Duration::ZERO;
        let mut current: Option<(std::time::Instant, std::time::Instant)> = None;
        for (s, e) in spans {
            match &mut current {
                Some((_, ce)) if s <= *ce => *ce = (*ce).max(e),
                _ => {
                    if let Some((cs, ce)) = current {
                        total += ce - cs;
                    }
                    current = Some((s, e));
                }
            }
        }
        if let Some((cs, ce)) = current {
            total += ce - cs;
        }
        total
    }

    /// Operation names, in order sent.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().expect("call log").clone()
    }

    /// How many mutating EC2 calls were sent.
    pub fn mutation_count(&self) -> usize {
        self.calls()
            .iter()
            .filter(|c| MUTATING_OPERATIONS.contains(&c.as_str()))
            .count()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.0.lock().expect("call log").clear();
        self.1.lock().expect("call log").clear();
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "CallLog"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            self.0.lock().expect("call log").push(m.name().to_string());
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(SentAt(std::time::Instant::now()));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let sent = cfg.load::<SentAt>().map(|s| s.0);
        let name = cfg.load::<Metadata>().map(|m| m.name().to_string());
        if let (Some(sent), Some(name)) = (sent, name) {
            self.1
                .lock()
                .expect("call log")
                .push((name, sent, sent.elapsed()));
        }
        Ok(())
    }
}

/// How long one attempt may take before the SDK abandons it and tries again.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Attempts the clients make for one call, the first included (the SDK's standard retry mode,
/// whose own default is 3): a throttled or transient failure is sent again after a backoff.
pub const SDK_MAX_ATTEMPTS: u32 = 4;

/// The clients' timeouts: connecting, one attempt, and the whole call (`ports::CALL_TIMEOUT`).
pub(crate) fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(attempt)
        .operation_timeout(crate::engine::ports::CALL_TIMEOUT)
        .build()
}

/// Reports each request the EC2 client puts on the wire, its own retries included
/// (`ports::sent_on_the_wire`), so an outcome's `attempts` is what AWS saw.
#[derive(Debug)]
struct WireAttempts;

impl Intercept for WireAttempts {
    fn name(&self) -> &'static str {
        "WireAttempts"
    }

    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        crate::engine::ports::sent_on_the_wire();
        Ok(())
    }
}

/// Loads the SDK configuration and builds both adapters.
pub async fn connect(opts: &AwsOptions) -> AwsCloud {
    connect_with(opts, None).await
}

/// Like [`connect`], recording every call in `log` when given.
pub async fn connect_with(opts: &AwsOptions, log: Option<CallLog>) -> AwsCloud {
    connect_for(opts, &ClientSettings::default(), log).await
}

/// The adapters for a declaration: its endpoints, CA bundle and bucket region applied on top
/// of `opts` (they win over `opts.endpoint_url`).
pub async fn connect_for(
    opts: &AwsOptions,
    settings: &ClientSettings,
    log: Option<CallLog>,
) -> AwsCloud {
    let (ec2_config, s3_config) = sdk_configs(opts, settings, log).await;
    AwsCloud {
        ec2: AwsEc2::new(
            aws_sdk_ec2::Client::from_conf(ec2_config.to_builder().interceptor(OnlyListed).build()),
            opts.active_emulator(),
        ),
        s3: AwsS3::new(aws_sdk_s3::Client::from_conf(
            s3_config.to_builder().interceptor(OnlyListed).build(),
        )),
    }
}

/// The fleet queue's adapter (its client, like the others, sends only what the ports send:
/// `ports::sendable`).
pub async fn connect_queue(opts: &AwsOptions) -> sqs::AwsSqs {
    let config = sdk_config(opts, &ClientSettings::default()).await;
    sqs::AwsSqs::new(aws_sdk_sqs::Client::from_conf(
        aws_sdk_sqs::config::Builder::from(&config)
            .interceptor(OnlyListed)
            .build(),
    ))
}

/// Like [`connect_queue`], its client free to send any operation (tests make queues).
pub async fn connect_queue_tooling(opts: &AwsOptions) -> sqs::AwsSqs {
    let config = sdk_config(opts, &ClientSettings::default()).await;
    sqs::AwsSqs::new(aws_sdk_sqs::Client::new(&config))
}

/// Adapters whose clients may send any operation: for the developer tooling and the tests
/// that build topologies through the SDK (`crates/lab`). What ships uses [`connect_for`],
/// whose clients send only what the ports send (`ports::sendable`).
pub async fn connect_tooling(opts: &AwsOptions, log: Option<CallLog>) -> AwsCloud {
    let (ec2_config, s3_config) = sdk_configs(opts, &ClientSettings::default(), log).await;
    AwsCloud {
        ec2: AwsEc2::new(
            aws_sdk_ec2::Client::from_conf(ec2_config),
            opts.active_emulator(),
        ),
        s3: AwsS3::new(aws_sdk_s3::Client::from_conf(s3_config)),
    }
}

/// Refuses, before anything is serialized or sent, every operation the ports do not send
/// (`ports::sendable`): the adapters can send nothing else, whatever their code says, so the IAM role
/// that grants exactly that list is enough (tests/e2e/iam.rs sends an unlisted one).
#[derive(Debug)]
struct OnlyListed;

impl Intercept for OnlyListed {
    fn name(&self) -> &'static str {
        "OnlyListed"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg.load::<Metadata>().map(|m| m.name().to_string());
        match name {
            Some(op) if crate::engine::ports::sendable(&op) => Ok(()),
            Some(op) => Err(format!(
                "{op} is not an operation the ports send (ports::sendable): the adapters may not send it"
            )
            .into()),
            None => Err("an operation without a name: the adapters may not send it".into()),
        }
    }
}

/// Who the caller is (STS `GetCallerIdentity`): the CLI's `invoke` trusts events from its
/// account and region, as the Lambda trusts its own function's; `execute` records its ARN.
pub async fn caller_identity(
    opts: &AwsOptions,
) -> Result<(crate::engine::model::Home, String), CloudError> {
    let config = sdk_config(opts, &ClientSettings::default()).await;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
        CloudError::new(
            "GetCallerIdentity",
            ErrorKind::Rejected,
            "NoRegion",
            "no region configured (--region or AWS_REGION)",
        )
    })?;
    let out = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| cloud_error("GetCallerIdentity", e))?;
    let home = crate::engine::model::Home {
        account: out.account().unwrap_or_default().to_string(),
        region,
    };
    Ok((home, out.arn().unwrap_or("unknown").to_string()))
}

/// One SDK configuration for every client: region, endpoint, retries, timeouts, credentials,
/// and the declaration's CA bundle when it names one.
async fn sdk_config(opts: &AwsOptions, settings: &ClientSettings) -> aws_config::SdkConfig {
    let mut http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
    if let Some(pem) = &settings.ca_bundle {
        let store = tls::TrustStore::empty().with_pem_certificate(pem.clone());
        http = http.tls_context(
            tls::TlsContext::builder()
                .with_trust_store(store)
                .build()
                .expect("a TLS context from a trust store"),
        );
    }
    let http = http.build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS))
        .timeout_config(timeouts(ATTEMPT_TIMEOUT));
    let emulator = opts.is_emulator();
    if let Some(region) = &opts.region {
        loader = loader.region(Region::new(region.clone()));
    } else if emulator {
        loader = loader.region(Region::new(EMULATOR_REGION));
    }
    if let Some(url) = &opts.endpoint_url {
        loader = loader.endpoint_url(url.clone());
    }
    if emulator {
        loader = loader.credentials_provider(Credentials::new(
            "testing", "testing", None, None, "emulator",
        ));
    }
    loader.load().await
}

/// The EC2 and S3 client configurations: the shared one, the declaration's endpoints and
/// bucket region, the wire-attempt counter, and the call log when given.
async fn sdk_configs(
    opts: &AwsOptions,
    settings: &ClientSettings,
    log: Option<CallLog>,
) -> (aws_sdk_ec2::Config, aws_sdk_s3::Config) {
    let config = sdk_config(opts, settings).await;
    let mut s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(config.endpoint_url().is_some());
    let mut ec2_config = aws_sdk_ec2::config::Builder::from(&config).interceptor(WireAttempts);
    if let Some(host) = &settings.ec2_endpoint {
        ec2_config = ec2_config.endpoint_url(format!("https://{host}"));
    }
    if let Some(host) = &settings.s3_endpoint {
        s3_config = s3_config
            .endpoint_url(format!("https://bucket.{host}"))
            .force_path_style(false);
    }
    if let Some(region) = &settings.s3_region {
        s3_config = s3_config.region(Region::new(region.clone()));
    }
    if let Some(log) = log {
        s3_config = s3_config.interceptor(log.clone());
        ec2_config = ec2_config.interceptor(log);
    }
    (ec2_config.build(), s3_config.build())
}

/// The adapters `decl` asks for: its PrivateLink endpoints (`endpointDnsName`), CA bundle
/// (`trustedCertBundle`) and bucket region; `cloud` itself when it asks for none. The Lambdas
/// apply them at cold start: a change takes effect with the next cold start.
pub async fn with_settings(
    cloud: AwsCloud,
    opts: &AwsOptions,
    decl: &crate::engine::declaration::Declaration,
) -> Result<AwsCloud, SettingsError> {
    let settings = ClientSettings::from_declaration(decl)?;
    if settings == ClientSettings::default() {
        return Ok(cloud);
    }
    Ok(connect_for(opts, &settings, None).await)
}

/// Converts an SDK error into a `CloudError`, keeping the code, message and source.
pub fn cloud_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    // A timeout is a call given up on while it may still land: the executor must know.
    let code = match &err {
        SdkError::TimeoutError(_) => Some(crate::engine::ports::TIMED_OUT.to_string()),
        _ => err.code().map(str::to_string),
    };
    let message = err.message().map(str::to_string).unwrap_or_else(|| {
        use std::error::Error;
        let mut text = err.to_string();
        let mut src = err.source();
        while let Some(s) = src {
            text = format!("{text}: {s}");
            src = s.source();
        }
        in_words(&text)
    });
    let status = err.raw_response().map(|r| r.status().as_u16());
    let kind = classify(&err, code.as_deref(), status);
    CloudError {
        operation,
        kind,
        code,
        message,
        source: Some(Box::new(err)),
    }
}

/// The SDK's chain of errors for a request that was never answered, in words an operator acts
/// on ("dispatch failure: other: …" says neither what failed nor what to do).
fn in_words(chain: &str) -> String {
    let lower = chain.to_ascii_lowercase();
    if lower.contains("credential") {
        return format!(
            "no usable AWS credentials: set AWS_PROFILE (and run aws sso login if it is an SSO profile), or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or run where a role is attached (the SDK said: {chain})"
        );
    }
    if lower.starts_with("dispatch failure") {
        return format!(
            "the request could not be sent (no network path to the endpoint, a wrong --endpoint-url or region, or a proxy refusing it): {chain}"
        );
    }
    chain.to_string()
}

fn classify<E, R>(err: &SdkError<E, R>, code: Option<&str>, status: Option<u16>) -> ErrorKind {
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            return ErrorKind::Transient
        }
        _ => {}
    }
    match code.unwrap_or("") {
        "RequestLimitExceeded"
        | "Throttling"
        | "ThrottlingException"
        | "SlowDown"
        | "TooManyRequestsException" => ErrorKind::Throttled,
        "PreconditionFailed" => ErrorKind::PreconditionFailed,
        "ConditionalRequestConflict" => ErrorKind::Conflict,
        "NoSuchBucket" | "NoSuchKey" | "NotFound" => ErrorKind::NotFound,
        c if c.ends_with(".NotFound") => ErrorKind::NotFound,
        "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable" => {
            ErrorKind::Transient
        }
        _ => match status {
            Some(412) => ErrorKind::PreconditionFailed,
            Some(404) => ErrorKind::NotFound,
            Some(429) => ErrorKind::Throttled,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Rejected,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unanswered request says what to do in words, not the SDK's "dispatch failure: other".
    #[test]
    fn an_unsent_request_is_said_in_words() {
        let creds = in_words("dispatch failure: other: failed to load credentials: no providers in chain provided credentials");
        assert!(
            creds.starts_with("no usable AWS credentials: set AWS_PROFILE"),
            "{creds}"
        );
        let net = in_words("dispatch failure: io error: error trying to connect: tcp connect error: Connection refused");
        assert!(net.starts_with("the request could not be sent"), "{net}");
        assert_eq!(in_words("AccessDenied"), "AccessDenied");
    }

    /// Found by an adversarial review: the SDK's own operation timeout fires first at
    /// `CALL_TIMEOUT`; its error must say "timed out" so the run keeps its lock (the call may
    /// still land), as the executor's own timeout does.
    #[test]
    fn an_sdk_timeout_is_a_call_that_may_still_land() {
        let e: SdkError<aws_sdk_ec2::operation::replace_route::ReplaceRouteError, HttpResponse> =
            SdkError::timeout_error(
                "operation timeout (all attempts including retries) occurred after 30s",
            );
        let c = cloud_error("ReplaceRoute", e);
        assert_eq!(c.code.as_deref(), Some(crate::engine::ports::TIMED_OUT));
        assert_eq!(c.kind, ErrorKind::Transient);
    }

    #[test]
    fn the_emulator_is_said_never_guessed() {
        // A loopback endpoint (a fault proxy, a TLS-inspecting proxy to real AWS) is not moto.
        let o = |u: &str, emulator| AwsOptions {
            region: None,
            endpoint_url: Some(u.into()),
            emulator,
        };
        assert!(!o("http://127.0.0.1:5000", None).is_emulator());
        assert!(o("http://127.0.0.1:5000", Some(Emulator::Moto)).is_emulator());
        assert!(!AwsOptions::default().is_emulator());
        assert_eq!("moto".parse::<Emulator>().unwrap(), Emulator::Moto);
        assert!("localstack".parse::<Emulator>().is_err());
    }

    /// Records each request's URI and signature scope, then stops it before it is sent.
    #[derive(Clone, Debug, Default)]
    struct Capture(Arc<Mutex<Vec<String>>>);

    impl Intercept for Capture {
        fn name(&self) -> &'static str {
            "Capture"
        }
        fn read_before_transmit(
            &self,
            ctx: &BeforeTransmitInterceptorContextRef<'_>,
            _: &RuntimeComponents,
            _: &mut ConfigBag,
        ) -> Result<(), BoxError> {
            let req = ctx.request();
            let auth = req.headers().get("authorization").unwrap_or_default();
            let scope = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split(',').next())
                .unwrap_or_default();
            let body = req
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {scope} {body}", req.uri()));
            Err("captured, not sent".into())
        }
    }

    fn decl(patch: serde_json::Value) -> Declaration {
        let mut v: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../examples/seed-article/declaration-after.json"
        ))
        .unwrap();
        for (k, x) in patch.as_object().unwrap() {
            match x {
                serde_json::Value::Object(m) if v[k].is_object() => {
                    for (k2, x2) in m {
                        let obj = v[k].as_object_mut().unwrap();
                        if x2.is_null() {
                            obj.remove(k2);
                        } else {
                            obj.insert(k2.clone(), x2.clone());
                        }
                    }
                }
                _ => v[k] = x.clone(),
            }
        }
        Declaration::from_value(&v).unwrap()
    }

    #[tokio::test]
    async fn declared_private_link_endpoints_and_bucket_region_reach_the_clients() {
        // GIVEN a declaration with CFE 2.4's endpointDnsName for S3 and EC2 and a
        // virtual-host bucket name in another region
        let d = decl(serde_json::json!({
            "externalStorage": {
                "scopingTags": null,
                "scopingName": "cfe-state.bucket.vpce-0a1b-2c3d.s3.us-gov-west-1.vpce.amazonaws.com",
                "endpointDnsName": "vpce-0a1b-2c3d.s3.us-gov-west-1.vpce.amazonaws.com"
            },
            "failoverAddresses": {
                "endpointDnsName": "*.vpce-0e1f-2a3b.ec2.us-gov-west-1.vpce.amazonaws.com"
            }
        }));
        let settings = ClientSettings::from_declaration(&d).unwrap();
        // (an emulator endpoint in opts gives dummy credentials: nothing asks instance metadata)
        let opts = AwsOptions {
            region: None,
            endpoint_url: Some("http://127.0.0.1:9".into()),
            emulator: Some(Emulator::Moto),
        };
        let (ec2, s3) = sdk_configs(&opts, &settings, None).await;
        let seen = Capture::default();
        let ec2 =
            aws_sdk_ec2::Client::from_conf(ec2.to_builder().interceptor(seen.clone()).build());
        let s3 = aws_sdk_s3::Client::from_conf(s3.to_builder().interceptor(seen.clone()).build());
        // WHEN each client makes a call (stopped before it leaves the process)
        let _ = ec2.describe_instances().send().await;
        let _ = s3.head_bucket().bucket("cfe-state").send().await;
        // THEN EC2 goes to its interface endpoint, S3 to the bucket's, signed for its region
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(
            seen[0].starts_with("https://vpce-0e1f-2a3b.ec2.us-gov-west-1.vpce.amazonaws.com/ "),
            "{seen:?}"
        );
        assert!(
            seen[1].starts_with(
                "https://cfe-state.bucket.vpce-0a1b-2c3d.s3.us-gov-west-1.vpce.amazonaws.com/ "
            ),
            "{seen:?}"
        );
        assert!(
            seen[1].contains("/us-gov-west-1/s3/aws4_request"),
            "{seen:?}"
        );
    }

    /// PEM text of a DER certificate (the test needs no base64 crate).
    fn pem(der: &[u8]) -> String {
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut text = String::new();
        for chunk in der.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..4 {
                text.push(if i <= chunk.len() {
                    B64[(n >> (18 - 6 * i) & 63) as usize] as char
                } else {
                    '='
                });
            }
        }
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        )
    }

    #[tokio::test]
    async fn the_clients_trust_the_declared_ca_bundle() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        use tokio_rustls::rustls::{crypto::ring, ServerConfig};
        // GIVEN an HTTPS endpoint on loopback whose certificate a private CA signed (as behind
        // a TLS-inspecting proxy or a private endpoint)
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut s) = acceptor.accept(tcp).await {
                        let mut buf = [0u8; 4096];
                        let _ = s.read(&mut buf).await;
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        let _ = s.shutdown().await;
                    }
                });
            }
        });
        let opts = AwsOptions {
            region: None,
            endpoint_url: Some(format!("https://{addr}")),
            emulator: Some(Emulator::Moto),
        };
        let store = |settings: ClientSettings| {
            let opts = opts.clone();
            async move { connect_for(&opts, &settings, None).await.s3 }
        };
        use crate::engine::ports::ObjectStore;
        // WHEN the clients are built without the bundle, THEN the certificate is not trusted
        let plain = store(ClientSettings::default()).await;
        assert!(plain.bucket_exists("cfe-state").await.is_err());
        // WHEN they are built with trustedCertBundle's CA, THEN the call goes through
        let trusting = store(ClientSettings {
            ca_bundle: Some(pem(ca.der()).into_bytes()),
            ..ClientSettings::default()
        })
        .await;
        assert!(trusting.bucket_exists("cfe-state").await.unwrap());
    }

    #[tokio::test]
    async fn prefix_moves_are_sent_as_ec2_expects() {
        // (moto has no delegated prefixes: the requests are checked here, stopped before sending)
        use crate::engine::ports::{Ec2Mutate, Mutation};
        let opts = AwsOptions {
            region: None,
            endpoint_url: Some("http://127.0.0.1:9".into()),
            emulator: Some(Emulator::Moto),
        };
        let (ec2, _) = sdk_configs(&opts, &ClientSettings::default(), None).await;
        let seen = Capture::default();
        let client =
            aws_sdk_ec2::Client::from_conf(ec2.to_builder().interceptor(seen.clone()).build());
        let adapter = AwsEc2::new(client, None);
        let p: crate::engine::net::Cidr = "10.0.0.48/28".parse().unwrap();
        let eni = |id: &str| id.to_string();
        assert!(adapter
            .mutate(&Mutation::UnassignIpv4Prefixes {
                network_interface_id: eni("eni-0a"),
                prefixes: vec![p],
            })
            .await
            .is_err());
        assert!(adapter
            .mutate(&Mutation::AssignIpv4Prefixes {
                network_interface_id: eni("eni-0b"),
                prefixes: vec![p],
            })
            .await
            .is_err());
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for (req, action, eni) in [
            (&seen[0], "UnassignPrivateIpAddresses", "eni-0a"),
            (&seen[1], "AssignPrivateIpAddresses", "eni-0b"),
        ] {
            assert!(req.contains(&format!("Action={action}&")), "{req}");
            assert!(req.contains(&format!("NetworkInterfaceId={eni}")), "{req}");
            assert!(req.contains("Ipv4Prefix.1=10.0.0.48%2F28"), "{req}");
            assert!(!req.contains("AllowReassignment"), "{req}");
        }
    }

    /// IPv6 addresses go out as AssignIpv6Addresses / UnassignIpv6Addresses with
    /// `Ipv6Addresses.N` (EC2 API Reference), never as `PrivateIpAddress.N` of
    /// AssignPrivateIpAddresses. (moto answers 500 to the `ipv6-addresses.ipv6-address`
    /// filter: the requests are checked here, stopped before sending; the moves themselves on
    /// the in-memory cloud.)
    #[tokio::test]
    async fn ipv6_moves_are_sent_as_ec2_expects() {
        use crate::engine::ports::{Ec2Mutate, Mutation};
        let opts = AwsOptions {
            region: None,
            endpoint_url: Some("http://127.0.0.1:9".into()),
            emulator: Some(Emulator::Moto),
        };
        let (ec2, _) = sdk_configs(&opts, &ClientSettings::default(), None).await;
        let seen = Capture::default();
        let client =
            aws_sdk_ec2::Client::from_conf(ec2.to_builder().interceptor(seen.clone()).build());
        let adapter = AwsEc2::new(client, None);
        let v6: std::net::IpAddr = "2600:1f18:1:1::101".parse().unwrap();
        assert!(adapter
            .mutate(&Mutation::UnassignIpv6 {
                network_interface_id: "eni-0a".into(),
                ips: vec![v6],
            })
            .await
            .is_err());
        assert!(adapter
            .mutate(&Mutation::AssignIpv6 {
                network_interface_id: "eni-0b".into(),
                ips: vec![v6],
            })
            .await
            .is_err());
        let seen = seen.0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        for (req, action, eni) in [
            (&seen[0], "UnassignIpv6Addresses", "eni-0a"),
            (&seen[1], "AssignIpv6Addresses", "eni-0b"),
        ] {
            assert!(req.contains(&format!("Action={action}&")), "{req}");
            assert!(req.contains(&format!("NetworkInterfaceId={eni}")), "{req}");
            assert!(
                req.contains("Ipv6Addresses.1=2600%3A1f18%3A1%3A1%3A%3A101"),
                "{req}"
            );
            assert!(!req.contains("PrivateIpAddress"), "{req}");
        }
    }

    #[test]
    fn trusted_cert_bundle_is_read_from_its_file() {
        let dir = std::env::temp_dir().join(format!("cf-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Only read and checked for a PEM certificate here; the TLS stack parses it.
        let text =
            "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX\n-----END CERTIFICATE-----\n";
        let pem = dir.join("ca.pem");
        std::fs::write(&pem, text).unwrap();
        let bundle = |path: &std::path::Path| {
            ClientSettings::from_declaration(&decl(
                serde_json::json!({"trustedCertBundle": path.to_str().unwrap()}),
            ))
        };
        assert_eq!(
            bundle(&pem).unwrap().ca_bundle,
            Some(text.as_bytes().to_vec())
        );
        // CFE ignored a bundle file that does not exist.
        assert_eq!(bundle(&dir.join("none.pem")).unwrap().ca_bundle, None);
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = bundle(&junk).unwrap_err();
        assert!(e.to_string().starts_with("trustedCertBundle: "), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
