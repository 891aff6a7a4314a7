//! The appliance's own announcement, from the box: `examples/bigip/announce-active.sh` (curl
//! `--aws-sigv4` with the instance role's credentials from IMDSv2) against a local endpoint
//! that plays IMDS and EventBridge. The request must carry a valid SigV4 signature for
//! `events` in the instance's region, signed with the role's session credentials, no secret
//! may be on a curl command line (`ps` shows those to any local user), and the event
//! EventBridge would deliver must fail over to that unit, undamped.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use failover_core::app::events::{self, Intent};
use failover_core::engine::declaration::Extension;
use failover_core::engine::request::TargetSpec;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::support::{home, invocation, ROOT};

const INSTANCE: &str = "i-061cbb31a5158ad30";
const KEY: &str = "ASIAEXAMPLEKEY123456";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const SESSION: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN==";

/// One HTTP request as received.
#[derive(Clone, Debug)]
struct Request {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

async fn read_request(stream: &mut tokio::net::TcpStream) -> Request {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed before the headers ended");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap().split(' ');
    let (method, path) = (
        first.next().unwrap().to_string(),
        first.next().unwrap().to_string(),
    );
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await.unwrap();
        body.extend_from_slice(&chunk[..n]);
    }
    Request {
        method,
        path,
        headers,
        body,
    }
}

/// Answers as IMDSv2 (token required) and as EventBridge; keeps the PutEvents requests.
async fn serve(listener: TcpListener, seen: Arc<Mutex<Vec<Request>>>) {
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        let req = read_request(&mut stream).await;
        let token_ok = req
            .headers
            .get("x-aws-ec2-metadata-token")
            .map(String::as_str)
            == Some("TOKEN");
        let (status, body) = match (req.method.as_str(), req.path.as_str()) {
            ("PUT", "/latest/api/token") => (200, "TOKEN".to_string()),
            ("GET", _) if !token_ok => (401, String::new()),
            ("GET", "/latest/meta-data/instance-id") => (200, INSTANCE.into()),
            ("GET", "/latest/meta-data/placement/region") => (200, "us-east-1".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => (200, "bigip-ha-role".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/bigip-ha-role") => (
                200,
                format!(
                    "{{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-11-29T06:00:00Z\",\n  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"{KEY}\",\n  \"SecretAccessKey\" : \"{SECRET}\",\n  \"Token\" : \"{SESSION}\",\n  \"Expiration\" : \"2026-11-29T12:00:00Z\"\n}}"
                ),
            ),
            ("POST", "/") => {
                seen.lock().unwrap().push(req.clone());
                (200, "{\"FailedEntryCount\":0,\"Entries\":[{\"EventId\":\"11710aed-b79e-4468-a20b-bb3c0c3b4860\"}]}".into())
            }
            _ => (404, String::new()),
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await.unwrap();
        stream.shutdown().await.ok();
    }
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Checks the request's SigV4 signature independently of curl (AWS's documented algorithm).
fn verify_sigv4(req: &Request) {
    let auth = &req.headers["authorization"];
    let rest = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .unwrap_or_else(|| panic!("not SigV4: {auth}"));
    let parts: BTreeMap<&str, &str> = rest
        .split(',')
        .filter_map(|p| p.trim().split_once('='))
        .collect();
    let scope = parts["Credential"]
        .strip_prefix(&format!("{KEY}/"))
        .unwrap();
    let [date, region, service, "aws4_request"] = scope.split('/').collect::<Vec<_>>()[..] else {
        panic!("credential scope {scope}")
    };
    assert_eq!((region, service), ("us-east-1", "events"));
    let signed = parts["SignedHeaders"];
    for must in ["host", "x-amz-date", "x-amz-security-token", "x-amz-target"] {
        assert!(
            signed.split(';').any(|h| h == must),
            "{must} not signed: {signed}"
        );
    }
    assert_eq!(req.headers["x-amz-security-token"], SESSION);
    let canonical_headers: String = signed
        .split(';')
        .map(|h| format!("{h}:{}\n", req.headers[h]))
        .collect();
    let canonical = format!(
        "{}\n{}\n\n{canonical_headers}\n{signed}\n{}",
        req.method,
        req.path,
        sha256_hex(&req.body)
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{}\n{scope}\n{}",
        req.headers["x-amz-date"],
        sha256_hex(canonical.as_bytes())
    );
    let k = hmac(format!("AWS4{SECRET}").as_bytes(), date);
    let k = hmac(&k, region);
    let k = hmac(&k, service);
    let k = hmac(&k, "aws4_request");
    assert_eq!(
        parts["Signature"],
        hex::encode(hmac(&k, &to_sign)),
        "bad signature"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_appliance_announces_itself_with_a_signed_put_events() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, seen.clone()));

    // A curl first in PATH that records its command line (what `ps` shows any local user),
    // then runs the real one.
    let dir = std::env::temp_dir().join(format!("announce-argv-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let real = Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .unwrap();
    let real = String::from_utf8(real.stdout).unwrap().trim().to_string();
    assert!(!real.is_empty(), "no curl");
    let argv_log = dir.join("argv");
    let _ = std::fs::remove_file(&argv_log);
    let wrapper = dir.join("curl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{real}' \"$@\"\n",
            argv_log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let script = format!("{ROOT}/examples/bigip/announce-active.sh");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("sh")
            .arg(script)
            .env("PATH", path)
            .env("IMDS_ENDPOINT", &endpoint)
            .env("EVENTS_ENDPOINT", &endpoint)
            .env_remove("EVENT_BUS")
            .env_remove("APPLIANCE_SOURCE")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // No secret on any curl's command line: the keys, the session token and the IMDS token
    // went in on standard input (curl -K -).
    let argv = std::fs::read_to_string(&argv_log).unwrap();
    assert_eq!(
        argv.lines().count(),
        6,
        "token, 4 metadata reads, PutEvents:\n{argv}"
    );
    for secret in [KEY, SECRET, SESSION, "TOKEN"] {
        assert!(
            !argv.contains(secret),
            "{secret} on a command line:\n{argv}"
        );
    }
    assert!(
        argv.lines().last().unwrap().contains("--aws-sigv4"),
        "{argv}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let requests = seen.lock().unwrap().clone();
    let [req] = &requests[..] else {
        panic!("{} PutEvents requests", requests.len())
    };
    assert_eq!(req.headers["x-amz-target"], "AWSEvents.PutEvents");
    assert_eq!(req.headers["content-type"], "application/x-amz-json-1.1");
    verify_sigv4(req);

    // What EventBridge delivers for that entry, in this account and region.
    let put: serde_json::Value = serde_json::from_slice(&req.body).unwrap();
    let entry = &put["Entries"][0];
    assert_eq!(entry["EventBusName"], "default");
    let delivered = serde_json::json!({
        "version": "0",
        "id": "11710aed-b79e-4468-a20b-bb3c0c3b4860",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": home().account,
        // EventBridge stamps the time it received the entry.
        "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": home().region,
        "resources": [],
        "detail": serde_json::from_str::<serde_json::Value>(entry["Detail"].as_str().unwrap()).unwrap(),
    });
    let trigger = events::parse(&delivered).unwrap();
    match trigger.intent(&Extension::default(), &invocation(None).trust) {
        Intent::Run { target, force, .. } => {
            assert_eq!(target, TargetSpec::Instance(INSTANCE.into()));
            assert!(force, "the appliance's own decision is never damped");
        }
        other => panic!("{other:?}"),
    }

    // GROUP (or the first argument): the failover group the unit became active for (a
    // declaration with serverless.groups); a value that is no group name sends nothing.
    let endpoint = format!(
        "http://{}",
        req.headers.get("host").cloned().unwrap_or_default()
    );
    let announce = |group: &'static str| {
        let (script, endpoint) = (
            format!("{ROOT}/examples/bigip/announce-active.sh"),
            endpoint.clone(),
        );
        tokio::task::spawn_blocking(move || {
            Command::new("sh")
                .arg(script)
                .env("IMDS_ENDPOINT", &endpoint)
                .env("EVENTS_ENDPOINT", &endpoint)
                .env("GROUP", group)
                .env_remove("EVENT_BUS")
                .env_remove("APPLIANCE_SOURCE")
                .output()
                .unwrap()
        })
    };
    let out = announce("traffic-group-2").await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("as active for traffic-group-2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = announce("a b;").await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a group name"));
    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "the bad GROUP sent nothing");
    let put: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    let detail = &put["Entries"][0]["Detail"];
    let mut delivered = delivered;
    delivered["detail"] = serde_json::from_str(detail.as_str().unwrap()).unwrap();
    assert_eq!(
        events::parse(&delivered).unwrap().group(),
        Some("traffic-group-2")
    );
}
