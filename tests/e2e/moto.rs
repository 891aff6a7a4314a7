//! A moto server per test: started on a free loopback port, stopped on drop.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use failover_core::aws::{self, AwsCloud, AwsOptions, CallLog};

/// A running moto server.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// The Python that has moto: the project's `.venv` (made by `make test`), else `python3`.
pub fn python() -> PathBuf {
    let venv = PathBuf::from(crate::support::ROOT).join(".venv/bin/python");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

fn moto_installed() -> bool {
    Command::new(python())
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Moto {
    /// Starts moto, or returns `None` (with a message) when it is not installed outside CI.
    /// In CI (`CI` set) a missing moto is a failure: `.ci/run` installs it.
    pub fn start() -> Option<Moto> {
        if !moto_installed() {
            assert!(
                std::env::var_os("CI").is_none(),
                "moto is not installed; run `make test` (it installs moto[server] into .venv)"
            );
            eprintln!("SKIPPED: moto is not installed; run `make test` to install it");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// SDK adapters pointed at this server, recording calls.
    pub async fn cloud(&self) -> (AwsCloud, CallLog) {
        let log = CallLog::default();
        let cloud = aws::connect_with(&self.options(), Some(log.clone())).await;
        (cloud, log)
    }

    /// Options for this server.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            region: Some("us-east-1".into()),
            endpoint_url: Some(self.endpoint.clone()),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
