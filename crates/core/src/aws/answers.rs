//! The SDK adapters against AWS's own answers, with `aws-smithy-mocks`: response bodies shaped
//! like the examples in AWS's API references, errors as EC2 and S3 send them, parsed by the
//! real SDK deserializers; nothing leaves the process. What is tested is ours: the error
//! classification the executor and the lock act on, and the SDK-to-model mappings.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::config::Credentials;
use aws_smithy_mocks::{create_mock_http_client, mock, MockResponseInterceptor, Rule, RuleMode};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;

use super::{AwsEc2, AwsS3};
use crate::engine::declaration::Encryption;
use crate::engine::error::ErrorKind;
use crate::engine::model::Filter;
use crate::engine::ports::{Ec2Describe, Ec2Mutate, ObjectStore, WriteCondition};

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(
        MockResponseInterceptor::new().rule_mode(RuleMode::Sequential),
        |i, r| i.with_rule(r),
    )
}

/// What every mocked client shares: a region, test credentials, the mock HTTP client, no
/// retries (one answer, one call).
fn shared() -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
            Credentials::new("AKID", "SECRET", None, None, "answers"),
        ))
        .http_client(create_mock_http_client())
        .retry_config(RetryConfig::disabled())
        .build()
}

fn ec2(rules: &[&Rule]) -> AwsEc2 {
    let conf = aws_sdk_ec2::config::Builder::from(&shared())
        .interceptor(interceptor(rules))
        .build();
    AwsEc2::new(aws_sdk_ec2::Client::from_conf(conf), None)
}

fn s3(rules: &[&Rule]) -> AwsS3 {
    let conf = aws_sdk_s3::config::Builder::from(&shared())
        .interceptor(interceptor(rules))
        .build();
    AwsS3::new(aws_sdk_s3::Client::from_conf(conf))
}

fn http(status: u16, body: &'static str) -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(status).expect("status"),
        SdkBody::from(body),
    )
}

/// An EC2 error as EC2 sends it (the Query protocol's `Response/Errors/Error`).
fn ec2_error(code: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>{code}</Code><Message>{code} (example)</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>"#
    )
}

#[tokio::test]
async fn ec2_errors_are_classified_as_the_executor_needs() {
    // GIVEN ReplaceRoute answered with each error EC2 documents for it
    for (status, code, kind) in [
        (503, "RequestLimitExceeded", ErrorKind::Throttled),
        (500, "InternalError", ErrorKind::Transient),
        (503, "Unavailable", ErrorKind::Transient),
        (400, "InvalidRouteTableID.NotFound", ErrorKind::NotFound),
        (403, "UnauthorizedOperation", ErrorKind::Rejected),
        (400, "InvalidParameterValue", ErrorKind::Rejected),
    ] {
        let body: &'static str = Box::leak(ec2_error(code).into_boxed_str());
        let rule = mock!(aws_sdk_ec2::Client::replace_route)
            .then_http_response(move || http(status, body));
        // WHEN the adapter sends it
        let e = ec2(&[&rule])
            .mutate(&crate::engine::ports::Mutation::ReplaceRoute {
                route_table_id: "rtb-0example".into(),
                destination: "0.0.0.0/0".parse().unwrap(),
                network_interface_id: "eni-0example".into(),
            })
            .await
            .unwrap_err();
        // THEN the code is kept and the kind is what the executor retries (or not) on
        assert_eq!(
            (e.kind, e.code.as_deref()),
            (kind, Some(code)),
            "{status} {code}: {e}"
        );
        assert_eq!(e.operation, "ReplaceRoute");
    }
}

#[tokio::test]
async fn s3_errors_are_classified_as_the_lock_needs() {
    // A conditional write that lost (412) is "busy", not a failure; SlowDown is throttling.
    let failed = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
        http(
            412,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition><RequestId>656c76696e6727732072657175657374</RequestId><HostId>Uuag1LuByRx9e6j5Onimru9pO4ZVKnJ2Qz7/C1NPcfTWAtRPfTaOFg==</HostId></Error>"#,
        )
    });
    let e = s3(&[&failed])
        .put_object(
            "cfe-state",
            "f5cloudfailover/lock/default.json",
            b"{}".to_vec(),
            &Encryption::Aes256,
            Some(WriteCondition::IfNoneMatch),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PreconditionFailed, "{e}");
    // Amazon S3 API Reference, "PutObject", If-Match / If-None-Match
    // (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html): "If a conflicting
    // operation occurs during the upload S3 returns a 409 ConditionalRequestConflict response.
    // On a 409 failure you should retry the upload." A conflict, to retry: no refusal.
    let conflict = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
        http(
            409,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is currently in progress against this resource. Please try again.</Message><RequestId>example</RequestId><HostId>example</HostId></Error>"#,
        )
    });
    let e = s3(&[&conflict])
        .put_object(
            "cfe-state",
            "f5cloudfailover/lock/default.json",
            b"{}".to_vec(),
            &Encryption::Aes256,
            Some(WriteCondition::IfMatch("\"etag\"".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::Conflict, Some("ConditionalRequestConflict")),
        "{e}"
    );
    let slow = mock!(aws_sdk_s3::Client::put_object).then_http_response(|| {
        http(
            503,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>4442587FB7D0A2F9</RequestId><HostId>example</HostId></Error>"#,
        )
    });
    let e = s3(&[&slow])
        .put_object("b", "k", Vec::new(), &Encryption::None, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
    // A missing key is no error to the state log: GetObject answers None.
    let missing = mock!(aws_sdk_s3::Client::get_object).then_http_response(|| {
        http(
            404,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>f5cloudfailover/f5cloudfailoverstate.json</Key><RequestId>example</RequestId><HostId>example</HostId></Error>"#,
        )
    });
    assert_eq!(
        s3(&[&missing])
            .get_object("b", "f5cloudfailover/f5cloudfailoverstate.json")
            .await
            .unwrap(),
        None
    );
}

/// EC2 API Reference, "AssignPrivateIpAddresses" and "UnassignPrivateIpAddresses"
/// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AssignPrivateIpAddresses.html,
/// https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_UnassignPrivateIpAddresses.html):
/// no `DryRun` request parameter, so nothing is sent and the answer is "unchecked".
#[tokio::test]
async fn calls_without_dry_run_are_unchecked_and_not_sent() {
    use crate::engine::ports::{DryRun, Mutation};
    // GIVEN a client that answers no call at all
    let client = ec2(&[]);
    let eni = "eni-0example".to_string();
    for m in [
        Mutation::AssignPrivateIps {
            network_interface_id: eni.clone(),
            ips: vec!["10.0.0.10".parse().unwrap()],
        },
        Mutation::AssignIpv4Prefixes {
            network_interface_id: eni.clone(),
            prefixes: vec!["10.0.0.48/28".parse().unwrap()],
        },
        Mutation::UnassignIpv4Prefixes {
            network_interface_id: eni.clone(),
            prefixes: vec!["10.0.0.48/28".parse().unwrap()],
        },
    ] {
        // WHEN doctor asks for a DryRun THEN the adapter answers Unchecked without a call
        assert_eq!(
            client.dry_run(&m).await.unwrap(),
            DryRun::Unchecked,
            "{m:?}"
        );
    }
}

/// Amazon S3 API Reference, "Error responses"
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html): `NoSuchBucket`, 404,
/// "The specified bucket does not exist". A missing state bucket is no "no state, no lock":
/// GetObject fails, naming the bucket; only `NoSuchKey` is an absent object.
#[tokio::test]
async fn a_missing_bucket_is_an_error_naming_it() {
    // GIVEN S3 answers GetObject with NoSuchBucket
    let missing = mock!(aws_sdk_s3::Client::get_object).then_http_response(|| {
        http(
            404,
            r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message><BucketName>cfe-state-gone</BucketName><RequestId>example</RequestId><HostId>example</HostId></Error>"#,
        )
    });
    // WHEN the state file is read
    let e = s3(&[&missing])
        .get_object(
            "cfe-state-gone",
            "f5cloudfailover/f5cloudfailoverstate.json",
        )
        .await
        .unwrap_err();
    // THEN an error naming the bucket
    assert_eq!(
        (e.kind, e.code.as_deref()),
        (ErrorKind::NotFound, Some("NoSuchBucket"))
    );
    assert!(e.to_string().contains("cfe-state-gone"), "{e}");
}

#[tokio::test]
async fn describe_addresses_maps_awss_example_answer() {
    // The DescribeAddresses example of the EC2 API reference (one VPC address, associated).
    let rule = mock!(aws_sdk_ec2::Client::describe_addresses).then_http_response(|| {
        http(
            200,
            r#"<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>f7de5e98-491a-4c19-a92d-908d6EXAMPLE</requestId>
   <addressesSet>
      <item>
         <publicIp>203.0.113.41</publicIp>
         <allocationId>eipalloc-08229861</allocationId>
         <domain>vpc</domain>
         <instanceId>i-0598c7d356eba48d7</instanceId>
         <associationId>eipassoc-f0229899</associationId>
         <networkInterfaceId>eni-ef229886</networkInterfaceId>
         <networkInterfaceOwnerId>053230519467</networkInterfaceOwnerId>
         <privateIpAddress>10.0.0.228</privateIpAddress>
         <tagSet>
            <item><key>f5_cloud_failover_label</key><value>bigip_high_availability_solution</value></item>
         </tagSet>
      </item>
      <item>
         <publicIp>198.51.100.7</publicIp>
         <allocationId>eipalloc-0b3c4d5e</allocationId>
         <domain>vpc</domain>
      </item>
   </addressesSet>
</DescribeAddressesResponse>"#,
        )
    });
    let eips = ec2(&[&rule])
        .describe_addresses(&[Filter::new("tag:f5_cloud_failover_label", ["x"])])
        .await
        .unwrap();
    assert_eq!(eips.len(), 2);
    let e = &eips[0];
    assert_eq!(e.allocation_id, "eipalloc-08229861");
    assert_eq!(e.public_ip.to_string(), "203.0.113.41");
    assert_eq!(e.association_id.as_deref(), Some("eipassoc-f0229899"));
    assert_eq!(e.network_interface_id.as_deref(), Some("eni-ef229886"));
    assert_eq!(
        e.private_ip.map(|i| i.to_string()).as_deref(),
        Some("10.0.0.228")
    );
    assert_eq!(
        e.tags.get("f5_cloud_failover_label").map(String::as_str),
        Some("bigip_high_availability_solution")
    );
    // An unassociated address has no interface, association or private IP.
    let free = &eips[1];
    assert_eq!(
        (
            free.association_id.as_deref(),
            free.network_interface_id.as_deref(),
            free.private_ip
        ),
        (None, None, None)
    );
}

#[tokio::test]
async fn describe_route_tables_maps_awss_example_answer() {
    // The DescribeRouteTables example (a table with the local route, a gateway route and a
    // route to an interface, one explicit subnet association), plus an IPv6 route.
    let rule = mock!(aws_sdk_ec2::Client::describe_route_tables).then_http_response(|| {
        http(
            200,
            r#"<DescribeRouteTablesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>6f570b0b-9c18-4b07-bdec-73740dcf861aEXAMPLE</requestId>
   <routeTableSet>
      <item>
         <routeTableId>rtb-13ad487a</routeTableId>
         <vpcId>vpc-11ad4878</vpcId>
         <ownerId>123456789012</ownerId>
         <routeSet>
            <item>
               <destinationCidrBlock>10.0.0.0/22</destinationCidrBlock>
               <gatewayId>local</gatewayId>
               <state>active</state>
               <origin>CreateRouteTable</origin>
            </item>
            <item>
               <destinationCidrBlock>0.0.0.0/0</destinationCidrBlock>
               <networkInterfaceId>eni-0603a4992d0579540</networkInterfaceId>
               <instanceId>i-055fd78af29715fbf</instanceId>
               <state>active</state>
               <origin>CreateRoute</origin>
            </item>
            <item>
               <destinationCidrBlock>192.0.2.0/24</destinationCidrBlock>
               <gatewayId>igw-eaad4883</gatewayId>
               <state>active</state>
               <origin>CreateRoute</origin>
            </item>
            <item>
               <destinationIpv6CidrBlock>::/0</destinationIpv6CidrBlock>
               <networkInterfaceId>eni-0603a4992d0579540</networkInterfaceId>
               <state>active</state>
               <origin>CreateRoute</origin>
            </item>
         </routeSet>
         <associationSet>
            <item>
               <routeTableAssociationId>rtbassoc-12ad487b</routeTableAssociationId>
               <routeTableId>rtb-13ad487a</routeTableId>
               <subnetId>subnet-15ad487c</subnetId>
               <main>false</main>
               <associationState><state>associated</state></associationState>
            </item>
         </associationSet>
         <tagSet>
            <item><key>f5_cloud_failover_label</key><value>bigip_high_availability_solution</value></item>
         </tagSet>
      </item>
   </routeTableSet>
</DescribeRouteTablesResponse>"#,
        )
    });
    let tables = ec2(&[&rule])
        .describe_route_tables(&[Filter::new("route-table-id", ["rtb-13ad487a"])])
        .await
        .unwrap();
    let t = &tables[0];
    assert_eq!(
        (t.id.as_str(), t.vpc_id.as_str()),
        ("rtb-13ad487a", "vpc-11ad4878")
    );
    let route = |d: &str| {
        t.routes
            .iter()
            .find(|r| r.destination.to_string() == d)
            .unwrap()
    };
    assert_eq!(route("10.0.0.0/22").other_target.as_deref(), Some("local"));
    assert_eq!(
        route("0.0.0.0/0").network_interface_id.as_deref(),
        Some("eni-0603a4992d0579540")
    );
    assert_eq!(
        route("192.0.2.0/24").other_target.as_deref(),
        Some("igw-eaad4883")
    );
    assert_eq!(
        route("::/0").network_interface_id.as_deref(),
        Some("eni-0603a4992d0579540")
    );
    assert_eq!(t.associations.len(), 1);
    assert_eq!(
        t.associations[0].subnet_id.as_deref(),
        Some("subnet-15ad487c")
    );
    assert!(!t.associations[0].main);
    assert!(t.tags.contains_key("f5_cloud_failover_label"));
}
