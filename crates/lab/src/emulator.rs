//! A local moto server process: started on a free loopback port, stopped on drop. Used by
//! the drill and the end-to-end tests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct MotoServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

/// The Python to run moto with: `venv`'s if it exists, else `python3`.
pub fn python_in(venv: &Path) -> PathBuf {
    let p = venv.join("bin/python");
    if p.exists() {
        p
    } else {
        PathBuf::from("python3")
    }
}

/// Whether `python` can import moto's server.
pub fn has_moto(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import moto.server"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl MotoServer {
    /// Starts `python -m moto.server` on a free loopback port and waits (60 s at most) until
    /// it accepts connections.
    pub fn start(python: &Path) -> std::io::Result<MotoServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new(python)
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
            .spawn()?;
        let emulator = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "moto did not start on port {port} within 60 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(emulator)
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
