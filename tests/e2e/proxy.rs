//! A fault-injecting HTTP proxy between the SDK and moto: the faults real networks make,
//! where they hurt. A rule matches requests (method, path, headers) and, for its next `times`
//! matches, loses the response after moto applied the request, answers a status without
//! forwarding it, or holds it past the client's timeout before forwarding it. Everything else passes through.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One request as the proxy saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// `GET`, `PUT`, …
    pub method: String,
    /// Path and query.
    pub path: String,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// Body bytes (as sent, chunk framing removed).
    pub body: Vec<u8>,
}

impl Seen {
    /// A header's value (name in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a rule does to a matching request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Forward it (moto applies it), then close the connection without an answer.
    LoseResponse,
    /// Answer this status and body without forwarding.
    Answer(u16, &'static str),
    /// Hold the request this long, then forward it (it lands after the client gave up).
    Hold(std::time::Duration),
}

type Matcher = Box<dyn Fn(&Seen) -> bool + Send + Sync>;

struct Rule {
    matches: Matcher,
    fault: Fault,
    times: u32,
}

#[derive(Default)]
struct Shared {
    rules: Vec<Rule>,
    seen: Vec<(Seen, Option<Fault>)>,
}

/// A running proxy (stopped when dropped).
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream = upstream
            .strip_prefix("http://")
            .expect("http upstream")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, upstream.clone(), s.clone()));
            }
        });
        FaultProxy {
            endpoint,
            shared,
            task,
        }
    }

    /// Applies `fault` to the next `times` requests that `matches`.
    pub fn rule(
        &self,
        matches: impl Fn(&Seen) -> bool + Send + Sync + 'static,
        fault: Fault,
        times: u32,
    ) {
        self.shared.lock().unwrap().rules.push(Rule {
            matches: Box::new(matches),
            fault,
            times,
        });
    }

    /// The requests seen so far that `matches`, with the fault applied to each.
    pub fn seen(&self, matches: impl Fn(&Seen) -> bool) -> Vec<(Seen, Option<Fault>)> {
        let sh = self.shared.lock().unwrap();
        sh.seen
            .iter()
            .filter(|(r, _)| matches(r))
            .cloned()
            .collect()
    }

    /// How many matching rules are still armed (0 once every fault struck).
    pub fn armed(&self) -> u32 {
        self.shared
            .lock()
            .unwrap()
            .rules
            .iter()
            .map(|r| r.times)
            .sum()
    }
}

async fn serve(conn: TcpStream, upstream: String, shared: Arc<Mutex<Shared>>) {
    let mut client = BufReader::new(conn);
    loop {
        let Some((head, req)) = read_request(&mut client).await else {
            return;
        };
        let fault = {
            let mut sh = shared.lock().unwrap();
            let fault = sh
                .rules
                .iter_mut()
                .find(|r| r.times > 0 && (r.matches)(&req))
                .map(|r| {
                    r.times -= 1;
                    r.fault.clone()
                });
            sh.seen.push((req.clone(), fault.clone()));
            fault
        };
        if let Some(Fault::Answer(status, body)) = fault {
            let text = format!(
                "HTTP/1.1 {status} Injected\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if client.get_mut().write_all(text.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        if let Some(Fault::Hold(d)) = fault {
            // The client gives up meanwhile; the request still lands, as a delayed one does.
            tokio::time::sleep(d).await;
        }
        let Some(answer) = forward(&upstream, &head, &req.body).await else {
            return;
        };
        if matches!(fault, Some(Fault::LoseResponse)) {
            // Applied upstream; the client never hears of it.
            return;
        }
        // Passed on as moto framed it (it may end at EOF): then this connection closes.
        let _ = client.get_mut().write_all(&answer).await;
        return;
    }
}

/// Reads one request: its head (as text, `Connection: close` set for upstream) and parsed form.
async fn read_request(client: &mut BufReader<TcpStream>) -> Option<(String, Seen)> {
    let mut request_line = String::new();
    if client.read_line(&mut request_line).await.ok()? == 0 {
        return None;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        client.read_line(&mut line).await.ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let body = if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let mut body = Vec::new();
        loop {
            let mut size = String::new();
            client.read_line(&mut size).await.ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            client.read_exact(&mut chunk).await.ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
        body
    } else {
        let n: usize = get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; n];
        client.read_exact(&mut body).await.ok()?;
        body
    };
    let mut head = request_line.clone();
    for (k, v) in &headers {
        if k == "connection" || k == "transfer-encoding" || k == "content-length" {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    ));
    Some((
        head,
        Seen {
            method,
            path,
            headers,
            body,
        },
    ))
}

/// Sends one request upstream on its own connection and reads the answer to its end.
async fn forward(upstream: &str, head: &str, body: &[u8]) -> Option<Vec<u8>> {
    let mut up = TcpStream::connect(upstream).await.ok()?;
    up.write_all(head.as_bytes()).await.ok()?;
    up.write_all(body).await.ok()?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).await.ok()?;
    Some(answer)
}
