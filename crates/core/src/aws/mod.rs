//! AWS SDK adapters for the ports, and client setup (region and credentials the standard way,
//! an endpoint override for local emulators, path-style S3 when overridden).

pub mod ec2;
pub mod emulator;
pub mod lab;
pub mod s3;

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

use crate::error::{CloudError, ErrorKind};
use crate::ports::MUTATING_OPERATIONS;

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
}

impl AwsOptions {
    /// True when the endpoint is on this machine (a local emulator such as moto): then
    /// dummy credentials and a default region are used, so nothing asks instance metadata,
    /// and the emulator's known deviations are accounted for.
    pub fn is_emulator(&self) -> bool {
        let Some(url) = &self.endpoint_url else {
            return false;
        };
        let rest = url.split("://").nth(1).unwrap_or(url);
        let host = rest.split('/').next().unwrap_or("");
        let host = if let Some(h) = host.strip_prefix('[') {
            h.split(']').next().unwrap_or("")
        } else {
            host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
        };
        host == "localhost" || host == "::1" || host.starts_with("127.")
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

/// The clients' timeouts: connecting, one attempt, and the whole call (`ports::CALL_TIMEOUT`).
pub(crate) fn timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(attempt)
        .operation_timeout(crate::ports::CALL_TIMEOUT)
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
        crate::ports::sent_on_the_wire();
        Ok(())
    }
}

/// Loads the SDK configuration and builds both adapters.
pub async fn connect(opts: &AwsOptions) -> AwsCloud {
    connect_with(opts, None).await
}

/// Like [`connect`], recording every call in `log` when given.
pub async fn connect_with(opts: &AwsOptions, log: Option<CallLog>) -> AwsCloud {
    let emulator = opts.is_emulator();
    let config = sdk_config(opts).await;
    let mut s3_config = aws_sdk_s3::config::Builder::from(&config)
        .force_path_style(config.endpoint_url().is_some());
    let mut ec2_config = aws_sdk_ec2::config::Builder::from(&config).interceptor(WireAttempts);
    if let Some(log) = log {
        s3_config = s3_config.interceptor(log.clone());
        ec2_config = ec2_config.interceptor(log);
    }
    let s3_config = s3_config.build();
    AwsCloud {
        ec2: AwsEc2::new(aws_sdk_ec2::Client::from_conf(ec2_config.build()), emulator),
        s3: AwsS3::new(aws_sdk_s3::Client::from_conf(s3_config)),
    }
}

/// The account (STS `GetCallerIdentity`) and region of the caller: the CLI's `invoke` trusts
/// events from there, as the Lambda trusts its own function's account and region.
pub async fn caller_home(opts: &AwsOptions) -> Result<crate::events::Home, CloudError> {
    let config = sdk_config(opts).await;
    let region = config.region().map(|r| r.to_string()).ok_or_else(|| {
        CloudError::new(
            "GetCallerIdentity",
            ErrorKind::Rejected,
            "NoRegion",
            "no region configured (--region or AWS_REGION)",
        )
    })?;
    let sts = aws_sdk_sts::Client::new(&config);
    let out = sts
        .get_caller_identity()
        .send()
        .await
        .map_err(|e| cloud_error("GetCallerIdentity", e))?;
    let account = out.account().unwrap_or_default().to_string();
    Ok(crate::events::Home { account, region })
}

/// One SDK configuration for every client: region, endpoint, retries, timeouts, credentials.
async fn sdk_config(opts: &AwsOptions) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::standard().with_max_attempts(4))
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

/// Converts an SDK error into a `CloudError`, keeping the code, message and source.
pub(crate) fn cloud_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = err.code().map(str::to_string);
    let message = err.message().map(str::to_string).unwrap_or_else(|| {
        use std::error::Error;
        let mut text = err.to_string();
        let mut src = err.source();
        while let Some(s) = src {
            text = format!("{text}: {s}");
            src = s.source();
        }
        text
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

    #[test]
    fn emulator_means_loopback_endpoint() {
        let o = |u: &str| AwsOptions {
            region: None,
            endpoint_url: Some(u.into()),
        };
        assert!(o("http://127.0.0.1:5000").is_emulator());
        assert!(o("http://localhost:5000/").is_emulator());
        assert!(o("http://[::1]:5000").is_emulator());
        assert!(!o("https://ec2.us-east-1.amazonaws.com").is_emulator());
        assert!(!AwsOptions::default().is_emulator());
    }
}
