//! `outcomes[].attempts` is what AWS saw: the SDK's own retries count. A local endpoint
//! answers EC2's ReplaceRoute with a 503 first, then success; the SDK retries by itself, and
//! the executor's count (`ports::on_the_wire`) says 2, not 1.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use failover_core::aws::{self, AwsOptions};
use failover_core::engine::ports::{on_the_wire, Ec2Mutate, Mutation};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const UNAVAILABLE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>Unavailable</Code><Message>The server is overloaded</Message></Error></Errors><RequestID>6f0b6a0c-1a2b-4c3d-8e9f-0a1b2c3d4e5f</RequestID></Response>";
const REPLACED: &str = "<ReplaceRouteResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\"><requestId>59dbff89-35bd-4eac-99ed-be587EXAMPLE</requestId><return>true</return></ReplaceRouteResponse>";

/// Answers every request: the first `fail` with 503, then success; counts them.
async fn ec2_endpoint(fail: u32) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicU32::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let count = count.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    // One request per read is enough here: small bodies, no pipelining.
                    let n = match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    if !String::from_utf8_lossy(&buf[..n]).contains("Action=ReplaceRoute") {
                        continue; // the body of a request whose headers came first
                    }
                    let i = count.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = if i < fail {
                        ("503 Service Unavailable", UNAVAILABLE)
                    } else {
                        ("200 OK", REPLACED)
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/xml;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn attempts_count_the_sdks_own_retries() {
    let (endpoint, seen) = ec2_endpoint(1).await;
    let cloud = aws::connect(&AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some(endpoint),
        emulator: Some(aws::Emulator::Moto),
    })
    .await;
    let (result, attempts) = on_the_wire(cloud.ec2.mutate(&Mutation::ReplaceRoute {
        route_table_id: "rtb-060adeaa8fe5b2bbb".into(),
        destination: "0.0.0.0/0".parse().unwrap(),
        network_interface_id: "eni-04bec0335a47b26c3".into(),
    }))
    .await;
    result.unwrap();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        2,
        "the SDK retried the 503 by itself"
    );
    assert_eq!(attempts, 2, "and the count says so");
}
