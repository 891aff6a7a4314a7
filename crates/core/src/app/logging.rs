//! The log level, one rule for the Lambdas: `RUST_LOG` (a local run) if set, else the
//! declaration's `controls.logLevel` (CFE's levels, [`crate::engine::declaration`]), else `info`.
//! The stack's `LoggingConfig.ApplicationLogLevel` is `TRACE` only so that Lambda drops
//! nothing the function writes: it is not a level of its own. The CLI takes `--log-level`.
//!
//! Whatever the level, the AWS SDK's crates (and the HTTP and TLS stacks under them) log at
//! most at `debug`: at `trace` they log every request's canonical form and signing, and the
//! resolved identity, whose debug form carries the access key id. The SDK's endpoint
//! resolution logs that identity at `debug` too: it is kept at `info`.

/// Targets and the most verbose level each may log at. A directive's target matches every
/// module path it begins (`aws_smithy` is every `aws_smithy_*` crate); the longer one wins.
pub const CAPS: &[(&str, &str)] = &[
    ("aws_smithy", "debug"),
    ("aws_sigv4", "debug"),
    ("aws_config", "debug"),
    ("aws_credential_types", "debug"),
    ("aws_runtime", "debug"),
    ("aws_sdk", "debug"),
    ("aws_types", "debug"),
    ("hyper", "debug"),
    ("h2", "debug"),
    ("rustls", "debug"),
    // "resolving endpoint endpoint_params=… Identity { … access_key_id: … }"
    (
        "aws_smithy_runtime::client::orchestrator::endpoints",
        "info",
    ),
];

/// The Lambdas' filter directives (see the module's rule).
pub fn lambda_filter(rust_log: Option<&str>, declared: Option<&str>) -> String {
    capped(rust_log.or(declared).unwrap_or("info"))
}

/// How verbose a level is (`off` 0 … `trace` 5); `None` for what is not a level.
fn verbosity(level: &str) -> Option<u8> {
    ["off", "error", "warn", "info", "debug", "trace"]
        .iter()
        .position(|l| l.eq_ignore_ascii_case(level))
        .map(|i| i as u8)
}

/// `filter` (an `EnvFilter` directive list) with each of [`CAPS`] never above its level: a
/// directive naming such a target more verbosely is lowered, and a default level more
/// verbose than a cap gets a directive for that target (unless the list names it).
pub fn capped(filter: &str) -> String {
    let cap_of = |target: &str| {
        CAPS.iter()
            .filter(|(t, _)| target.starts_with(t))
            .max_by_key(|(t, _)| t.len())
            .map(|(_, level)| *level)
    };
    let mut parts: Vec<String> = Vec::new();
    let mut default = verbosity("error");
    for part in filter.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some((target, level)) => match cap_of(target) {
                Some(cap) if verbosity(level) > verbosity(cap) => {
                    parts.push(format!("{target}={cap}"))
                }
                _ => parts.push(part.to_string()),
            },
            None => {
                default = verbosity(part);
                parts.push(part.to_string());
            }
        }
    }
    for (target, cap) in CAPS {
        let named = parts
            .iter()
            .any(|p| p.split_once('=').is_some_and(|(t, _)| t == *target));
        if !named && default > verbosity(cap) {
            parts.push(format!("{target}={cap}"));
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One S3 call (to a closed local port: it is signed, then fails to connect) under a
    /// subscriber with `filter`; what was logged.
    #[cfg(feature = "aws")]
    fn logs_of_one_call(filter: &str, key_id: &str) -> String {
        use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
        use std::sync::{Arc, Mutex};

        #[derive(Clone, Default)]
        struct Capture(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Capture {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
                    .build_https();
                let conf = aws_sdk_s3::Config::builder()
                    .behavior_version(BehaviorVersion::latest())
                    .http_client(http)
                    .region(Region::new("us-east-1"))
                    .endpoint_url("http://127.0.0.1:9")
                    .force_path_style(true)
                    .retry_config(aws_config::retry::RetryConfig::disabled())
                    .credentials_provider(Credentials::new(
                        key_id,
                        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYNOTLOGGED",
                        Some("SESSION-TOKEN-NOT-LOGGED".into()),
                        None,
                        "test",
                    ))
                    .build();
                let client = aws_sdk_s3::Client::from_conf(conf);
                let _ = client.get_object().bucket("b").key("k").send().await;
            });
        });
        let out = capture.0.lock().unwrap().clone();
        String::from_utf8(out).unwrap()
    }

    /// The field report's `silly` logged the access key id 180 times in two runs: the SDK's
    /// trace lines carry it. Capped, the same call logs the SDK at debug and never the key.
    #[cfg(feature = "aws")]
    #[test]
    fn no_access_key_id_in_the_logs_even_at_trace() {
        const KEY_ID: &str = "ASIAEXAMPLEKEYNOTLOGGED";
        // GIVEN the premise: uncapped, the SDK does log the key id at trace
        let uncapped = logs_of_one_call("trace", KEY_ID);
        assert!(
            uncapped.contains(KEY_ID),
            "the SDK no longer logs the key id at trace; this test proves nothing:\n{uncapped}"
        );
        // WHEN the declaration asks for silly (trace) or debug
        for declared in ["trace", "debug"] {
            let ours = logs_of_one_call(&lambda_filter(None, Some(declared)), KEY_ID);
            // THEN the SDK still logs (at debug), and no key id, secret or token is in it
            assert!(
                ours.lines()
                    .any(|l| l.contains(" DEBUG ") && l.contains(" aws_smithy_runtime::")),
                "{ours}"
            );
            assert!(!ours.contains(" TRACE "), "{ours}");
            for secret in [KEY_ID, "NOTLOGGED", "SESSION-TOKEN"] {
                let lines: Vec<&str> = ours.lines().filter(|l| l.contains(secret)).collect();
                assert!(
                    lines.is_empty(),
                    "{declared}: {secret} logged:\n{}",
                    lines.join("\n")
                );
            }
        }
    }

    #[test]
    fn the_declaration_decides_unless_rust_log_is_set() {
        // GIVEN a declaration asking for warn, and none
        assert_eq!(lambda_filter(None, Some("warn")), "warn");
        assert_eq!(lambda_filter(None, None), "info");
        // THEN RUST_LOG (a local run) overrides it
        assert_eq!(lambda_filter(Some("error"), Some("warn")), "error");
        assert_eq!(lambda_filter(Some("debug"), Some("warn")), capped("debug"));
    }

    #[test]
    fn the_sdk_never_logs_at_trace() {
        // GIVEN silly (trace): every SDK crate is capped at debug, endpoint resolution at info
        let f = lambda_filter(None, Some("trace"));
        assert!(f.starts_with("trace,"), "{f}");
        for (target, cap) in CAPS {
            assert!(f.contains(&format!(",{target}={cap}")), "{target}: {f}");
        }
        // AND debug caps only what logs the identity at debug
        assert_eq!(
            capped("debug"),
            "debug,aws_smithy_runtime::client::orchestrator::endpoints=info"
        );
        // AND an explicit trace for an SDK crate is lowered; other targets keep theirs
        assert_eq!(
            capped("warn,aws_sigv4=trace,failover_core=trace"),
            "warn,aws_sigv4=debug,failover_core=trace"
        );
        // AND a cap is not a floor
        assert_eq!(capped("warn"), "warn");
        assert!(capped("trace,hyper=warn").starts_with("trace,hyper=warn,aws_smithy=debug"));
        assert!(!capped("trace,hyper=warn").contains("hyper=debug"));
    }
}
