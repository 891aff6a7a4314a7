//! A moto server per test (see `failover_lab::emulator`).

use std::path::{Path, PathBuf};

use failover_core::aws::{self, AwsCloud, AwsOptions, CallLog};
use failover_lab::emulator::{has_moto, python_in, MotoServer};

/// A running moto server.
pub struct Moto {
    _server: MotoServer,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// The Python that has moto: the project's `.venv` (made by `make test`), else `python3`.
pub fn python() -> PathBuf {
    python_in(&Path::new(crate::support::ROOT).join(".venv"))
}

/// Tells `scripts/test.sh` (through the folder `CF_TEST_SKIPS` names) that this test was
/// skipped, so its closing line counts it as skipped, not passed.
fn record_skip() {
    if let Some(dir) = std::env::var_os("CF_TEST_SKIPS") {
        let name = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .replace("::", "-");
        let _ = std::fs::write(Path::new(&dir).join(name), "");
    }
}

impl Moto {
    /// Starts moto, or returns `None` (with a message) when it is not installed outside CI.
    /// In CI (`CI` set) a missing moto is a failure: `.ci/run` installs it.
    pub fn start() -> Option<Moto> {
        let python = python();
        if !has_moto(&python) {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto is not installed; run `make test` (it installs moto[server] into .venv)"
            );
            eprintln!("SKIPPED: moto is not installed; run `make test` to install it");
            record_skip();
            return None;
        }
        let server = MotoServer::start(&python).expect("start moto");
        Some(Moto {
            endpoint: server.endpoint.clone(),
            _server: server,
        })
    }

    /// SDK adapters pointed at this server, recording calls.
    pub async fn cloud(&self) -> (AwsCloud, CallLog) {
        let log = CallLog::default();
        let cloud = aws::connect_tooling(&self.options(), Some(log.clone())).await;
        (cloud, log)
    }

    /// Options for this server.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
            emulator: Some(aws::Emulator::Moto),
        }
    }
}
