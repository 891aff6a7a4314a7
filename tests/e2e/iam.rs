//! Least privilege, proved three ways for the failover function:
//! 1. the role in template.yaml grants exactly the IAM actions of `handler::OPERATIONS`
//!    (no missing permission, no extra one, no wildcard action); in fleet mode the role also
//!    gets what the queue's event source mapping needs, and nothing else (checked apart);
//! 2. the SDK adapters can send no operation the ports do not send (`ports::sendable`) (their clients
//!    carry an interceptor that refuses any other; one is sent to see it refused);
//! 3. what the end-to-end tests saw sent is within `handler::OPERATIONS` (`seed.rs`).

use std::collections::BTreeSet;

use failover_core::app::handler::{INSPECT_OPERATIONS, OPERATIONS, PROBE_OPERATIONS};
use failover_core::engine::ports::{iam_actions, sendable};
use serde_yaml::Value;

use crate::support::repo_file;

/// Untags `!If [cond, then, else]` to its `then` branch and other tags to their value.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) if t.tag == "If" => untag(&t.value.as_sequence().expect("!If list")[1]),
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

/// The two branches of `!If [condition, then, else]`, checking it tests `condition`.
fn if_branches<'a>(v: &'a Value, condition: &str) -> (&'a Value, &'a Value) {
    match v {
        Value::Tagged(t) if t.tag == "If" => {
            let list = t.value.as_sequence().expect("!If list");
            assert_eq!(list.len(), 3, "{v:?}");
            assert_eq!(list[0], condition, "{v:?}");
            (&list[1], &list[2])
        }
        other => panic!("not !If [{condition}, …]: {other:?}"),
    }
}

/// A value as YAML text (tags included), to look for the names it refers to.
fn shown(v: &Value) -> String {
    serde_yaml::to_string(v).unwrap()
}

/// A policy document: YAML, or JSON text through `!Sub` (where a parameter is part of a
/// condition key), with or without a map of variables. The text must be JSON once
/// substituted; `${ScopingTagKey}` becomes `SCOPING_TAG_KEY`, so the tests can see a
/// condition is keyed by the parameter (other variables stay as they are, inside strings).
fn document(doc: &Value) -> Value {
    match doc {
        Value::Tagged(t) if t.tag == "Sub" => {
            let text = match &t.value {
                Value::Sequence(list) => list[0].as_str().expect("!Sub [text, variables]"),
                text => text.as_str().expect("!Sub of a string"),
            };
            let text = text.replace("${ScopingTagKey}", "SCOPING_TAG_KEY");
            let json: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("policy text is not JSON ({e}):\n{text}"));
            serde_yaml::to_value(json).unwrap()
        }
        yaml => yaml.clone(),
    }
}

/// The policy documents of `function`'s role: SAM's `Policies`, or (the probe) the
/// `ManagedPolicyArns` and inline `Policies` of its own role. An optional policy
/// (`!If [cond, !Ref P, !Ref AWS::NoValue]`) counts as attached.
fn role_documents(template: &Value, function: &str) -> Vec<Value> {
    let props = &template["Resources"][function]["Properties"];
    let (managed, inline) = match &props["Role"] {
        Value::Null => (props["Policies"].clone(), Value::Null),
        Value::Tagged(t) if t.tag == "GetAtt" => {
            let role = t.value.as_str().unwrap().trim_end_matches(".Arn");
            let role = &template["Resources"][role];
            assert_eq!(role["Type"], "AWS::IAM::Role");
            let p = &role["Properties"];
            (p["ManagedPolicyArns"].clone(), p["Policies"].clone())
        }
        other => panic!("{function}'s role is {other:?}"),
    };
    let mut docs = Vec::new();
    for policy in managed.as_sequence().expect("policies") {
        // An inline policy, or `!Ref` to an AWS::IAM::ManagedPolicy of this template.
        docs.push(match untag(policy) {
            Value::String(name) if matches!(policy, Value::Tagged(_)) => {
                let res = &template["Resources"][name.as_str()];
                assert_eq!(res["Type"], "AWS::IAM::ManagedPolicy", "{name}");
                document(&res["Properties"]["PolicyDocument"])
            }
            Value::String(arn) => panic!("{function} uses a policy outside the template: {arn}"),
            inline => inline.clone(),
        });
    }
    for policy in inline.as_sequence().into_iter().flatten() {
        docs.push(policy["PolicyDocument"].clone());
    }
    docs
}

/// Whether a statement grants what Lambda itself does with the role (its logs, its
/// destination, the probe's network interfaces: Sid `Lambda…`), not what the code calls.
fn lambdas_own(s: &Value) -> bool {
    s["Sid"]
        .as_str()
        .is_some_and(|sid| sid.starts_with("Lambda"))
}

fn action_list(s: &Value) -> Vec<String> {
    match &s["Action"] {
        Value::String(a) => vec![a.clone()],
        Value::Sequence(list) => list
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect(),
        other => panic!("Action {other:?}"),
    }
}

/// The actions `function`'s code may call, and their Allow statements (Lambda's own and the
/// Deny statements apart).
fn actions_granted(function: &str) -> (BTreeSet<String>, Vec<Value>) {
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let mut actions = BTreeSet::new();
    let mut statements = Vec::new();
    for doc in role_documents(&template, function) {
        for s in doc["Statement"].as_sequence().expect("statements") {
            let s = untag(s).clone();
            if s["Effect"] == "Deny" || lambdas_own(&s) {
                continue;
            }
            assert_eq!(s["Effect"], "Allow");
            actions.extend(action_list(&s));
            statements.push(s);
        }
    }
    (actions, statements)
}

/// The role of `function` grants exactly the IAM actions of `operations` (+ `kms`).
fn grants_exactly(function: &str, operations: &[&str], kms: &[&str]) -> Vec<Value> {
    let (granted, statements) = actions_granted(function);
    let needed: BTreeSet<String> = iam_actions(operations.iter().copied())
        .into_iter()
        .chain(kms.iter().copied().map(String::from))
        .collect();
    let missing: Vec<_> = needed.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&needed).collect();
    assert!(missing.is_empty(), "{function}'s role lacks {missing:?}");
    assert!(
        extra.is_empty(),
        "{function}'s role grants more than its code calls: {extra:?}"
    );
    assert!(
        granted.iter().all(|a| !a.contains('*')),
        "wildcard action in {granted:?}"
    );
    statements
}

#[test]
fn inspect_and_probe_roles_grant_exactly_what_their_code_calls() {
    let statements = grants_exactly("InspectFunction", INSPECT_OPERATIONS, &["kms:Decrypt"]);
    assert!(
        statements
            .iter()
            .all(|s| !serde_yaml::to_string(&s["Action"]).unwrap().contains("Put")),
        "inspect is read-only"
    );
    grants_exactly(
        "ProbeFunction",
        PROBE_OPERATIONS,
        &["kms:GenerateDataKey", "kms:Decrypt"],
    );
    // The probe has its own role (SAM's would carry AWSLambdaVPCAccessExecutionRole, EC2
    // writes on every interface): what Lambda itself needs is the documented list, each
    // scoped (tests/iam/evaluate.py judges them request by request), and the code may not
    // use them (Deny on lambda:SourceFunctionArn).
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let probe = &template["Resources"]["ProbeFunction"]["Properties"];
    assert!(
        probe["Policies"].is_null(),
        "SAM would make the probe's role"
    );
    let docs = role_documents(&template, "ProbeFunction");
    let statements: Vec<&Value> = docs
        .iter()
        .flat_map(|d| d["Statement"].as_sequence().unwrap())
        .collect();
    let lambdas: BTreeSet<String> = statements
        .iter()
        .filter(|s| s["Effect"] == "Allow" && lambdas_own(s))
        .flat_map(|s| action_list(s))
        .collect();
    let documented = [
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "sns:Publish",
        "ec2:DescribeSubnets",
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
    ];
    assert_eq!(lambdas, documented.into_iter().map(String::from).collect());
    for s in statements
        .iter()
        .filter(|s| s["Effect"] == "Allow" && lambdas_own(s))
    {
        let writes = action_list(s)
            .iter()
            .any(|a| a.starts_with("ec2:") && !a.starts_with("ec2:Describe"));
        assert!(
            !writes || s["Resource"] != "*",
            "unscoped EC2 write for Lambda: {s:?}"
        );
    }
    let denied: Vec<&&Value> = statements
        .iter()
        .filter(|s| s["Effect"] == "Deny")
        .collect();
    assert!(
        denied.iter().all(|s| s["Condition"]["Null"]
            .get("lambda:SourceFunctionArn")
            .is_some()),
        "{denied:?}"
    );
    assert_eq!(denied.len(), 2);
}

#[test]
fn failover_role_grants_exactly_what_the_code_calls() {
    let statements = grants_exactly(
        "FailoverFunction",
        OPERATIONS,
        &["kms:GenerateDataKey", "kms:Decrypt"],
    );
    // Every mutating EC2 action is scoped by the stack's scoping tag (its key the ScopingTagKey
    // parameter) where AWS evaluates it: the EIP, the route table, the interface whose
    // addresses move. StringLike, so that a fleet's ScopingTagValue may be a pattern
    // (`fleet-*`); an exact value matches as StringEquals did.
    // Route tables and interfaces must also be in the pair's VPC (the fleet's VPCs).
    for (action, resource, in_vpc) in [
        ("ec2:ReplaceRoute", "route-table", true),
        ("ec2:CreateRoute", "route-table", true),
        ("ec2:AssociateAddress", "elastic-ip", false),
        ("ec2:AssignPrivateIpAddresses", "network-interface", true),
        ("ec2:UnassignPrivateIpAddresses", "network-interface", true),
        ("ec2:AssignIpv6Addresses", "network-interface", true),
        ("ec2:UnassignIpv6Addresses", "network-interface", true),
        ("ec2:ReplaceRouteTableAssociation", "route-table", true),
    ] {
        let grants: Vec<&Value> = statements
            .iter()
            .filter(|s| {
                let acts = serde_yaml::to_string(&s["Action"]).unwrap();
                let res = serde_yaml::to_string(&s["Resource"]).unwrap();
                acts.contains(action) && res.contains(&format!(":{resource}/*"))
            })
            .collect();
        assert!(!grants.is_empty(), "{action} on {resource} is not granted");
        for s in grants {
            assert!(
                s["Condition"]["StringLike"]
                    .get("aws:ResourceTag/SCOPING_TAG_KEY")
                    .is_some(),
                "{action} on {resource} is not conditioned on the scoping tag"
            );
            if in_vpc {
                assert_eq!(
                    s["Condition"]["ArnLike"]["ec2:Vpc"][0], "${VpcArns}",
                    "{action} on {resource} is not confined to the VPC"
                );
            }
        }
    }
    // CreateRoute only when the stack says it creates routes (createMissingRoutes).
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    assert_eq!(
        template["Resources"]["CreateRoutesPolicy"]["Condition"],
        "CreatesRoutes"
    );
    assert!(shown(&template["Conditions"]["CreatesRoutes"]).contains("CreateMissingRoutes"));
    assert_eq!(
        template["Parameters"]["CreateMissingRoutes"]["Default"],
        "false"
    );
    // The interface form of AssociateAddress only: nothing on instances.
    assert!(
        statements
            .iter()
            .all(|s| !shown(&s["Resource"]).contains(":instance/")),
        "AssociateAddress by InstanceId is never sent"
    );
    // Where the target is not tagged (the interface an EIP moves to, the subnet a table is
    // swapped onto), it is confined to the cluster's VPC; in fleet mode to the
    // fleet's VPCs (ArnLike on ARNs built from FleetVpcIds, template.yaml says why).
    for (action, resource) in [
        ("ec2:AssociateAddress", "network-interface"),
        ("ec2:ReplaceRouteTableAssociation", "subnet"),
    ] {
        let in_vpc: Vec<&serde_yaml::Value> = statements
            .iter()
            .filter(|s| {
                let acts = serde_yaml::to_string(&s["Action"]).unwrap();
                let res = serde_yaml::to_string(&s["Resource"]).unwrap();
                acts.contains(action) && res.contains(&format!(":{resource}/*"))
            })
            .collect();
        assert!(!in_vpc.is_empty(), "{action} on {resource} not granted");
        for s in in_vpc {
            let (fleet, single) = if_branches(&s["Condition"], "IsFleet");
            let vpc = shown(&single["ArnEquals"]["ec2:Vpc"]);
            assert!(
                vpc.contains(":vpc/${VpcId}"),
                "{action} on {resource} is not confined to the VPC: {s:?}"
            );
            let vpcs = shown(&fleet["ArnLike"]["ec2:Vpc"]);
            assert!(
                vpcs.contains("FleetVpcIds") && vpcs.contains(":vpc/"),
                "{action} on {resource} is not confined to the fleet's VPCs: {s:?}"
            );
        }
    }
}

/// The adapters' clients refuse, before anything is sent, every operation the ports do not
/// send (an interceptor installed by `aws::connect_for`): proved by sending one.
#[tokio::test]
async fn sdk_adapters_send_only_listed_operations() {
    use failover_core::aws::{self, AwsOptions, Emulator};
    // Nothing listens on port 9: a call that gets past the guard fails to connect instead.
    let cloud = aws::connect(&AwsOptions {
        region: Some("us-east-1".into()),
        endpoint_url: Some("http://127.0.0.1:9".into()),
        emulator: Some(Emulator::Moto),
    })
    .await;
    let refused = cloud.ec2.client().describe_vpcs().send().await.unwrap_err();
    let why = format!("{:?}", refused);
    assert!(
        why.contains("DescribeVpcs is not an operation the ports send"),
        "{why}"
    );
    let refused = cloud
        .s3
        .client()
        .delete_bucket()
        .bucket("b")
        .send()
        .await
        .unwrap_err();
    assert!(
        format!("{refused:?}").contains("DeleteBucket is not an operation the ports send"),
        "{refused:?}"
    );
    // A listed one passes the guard (and meets the closed port).
    let listed = cloud
        .ec2
        .client()
        .describe_route_tables()
        .send()
        .await
        .unwrap_err();
    assert!(!format!("{listed:?}").contains("sendable"), "{listed:?}");
    assert!(sendable("DescribeRouteTables"));
}

/// Who may trigger the failover function, as the template wires it: the alarm topic admits
/// only CloudWatch for this account's alarms; the appliance rule only the appliances'
/// source; the function gets the stack's alarm-name prefix; the sample events agree with it.
#[test]
fn triggers_admit_only_this_accounts_alarms_and_the_appliances() {
    use failover_core::app::events::DEFAULT_ALARM_NAME_PREFIX;
    use failover_core::engine::declaration::DEFAULT_APPLIANCE_SOURCE;

    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let res = &template["Resources"];
    let params = &template["Parameters"];
    assert_eq!(
        params["AlarmNamePrefix"]["Default"],
        DEFAULT_ALARM_NAME_PREFIX
    );
    assert_eq!(
        params["ApplianceSource"]["Default"],
        DEFAULT_APPLIANCE_SOURCE
    );

    let topic = &res["AlarmTopicPolicy"]["Properties"];
    let statements = topic["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 2);
    // Everyone else, the account's own principals included, is denied (they need no Allow).
    let deny = &statements[1];
    assert_eq!(
        (&deny["Effect"], &deny["Principal"], &deny["Action"]),
        (
            &Value::from("Deny"),
            &Value::from("*"),
            &Value::from("sns:Publish")
        )
    );
    assert_eq!(
        deny["Condition"]["ArnNotLike"]["aws:SourceArn"],
        statements[0]["Condition"]["ArnLike"]["aws:SourceArn"]
    );
    let s = &statements[0];
    assert_eq!(s["Principal"]["Service"], "cloudwatch.amazonaws.com");
    assert_eq!(s["Action"], "sns:Publish");
    assert!(s["Condition"]["StringEquals"]
        .get("aws:SourceAccount")
        .is_some());
    assert!(
        serde_yaml::to_string(&s["Condition"]["ArnLike"]["aws:SourceArn"])
            .unwrap()
            .contains("alarm:${AlarmNamePrefix}*")
    );

    let f = &res["FailoverFunction"]["Properties"];
    assert_eq!(
        serde_yaml::to_string(&f["Environment"]["Variables"]["ALARM_NAME_PREFIX"]).unwrap(),
        serde_yaml::to_string(&serde_yaml::from_str::<Value>("!Ref AlarmNamePrefix").unwrap())
            .unwrap()
    );
    // The rules are resources of their own (fleet mode sends them to the queue instead).
    let alarm_rule = shown(&res["FailoverFunctionAlarmStateChange"]["Properties"]["EventPattern"]);
    assert!(alarm_rule.contains("AlarmNamePrefix"), "{alarm_rule}");
    let (fleet, single) = if_branches(
        &res["FailoverFunctionApplianceActive"]["Properties"]["EventPattern"],
        "IsFleet",
    );
    for active in [fleet, single] {
        assert!(
            shown(&active["source"]).contains("ApplianceSource"),
            "the appliance rule filters no source"
        );
        assert_eq!(shown(&active["detail-type"]).trim(), "- Appliance Active");
    }
    let bus = &res["ApplianceBusPolicy"]["Properties"]["Statement"];
    assert!(serde_yaml::to_string(&bus["Principal"]["AWS"])
        .unwrap()
        .contains("ApplianceRoleArns"));
    let deny = &res["ApplianceBusDenyOthers"]["Properties"]["Statement"];
    assert_eq!(deny["Effect"], "Deny");
    assert_eq!(deny["Principal"], "*");
    assert!(
        serde_yaml::to_string(&deny["Condition"]["ArnNotEquals"]["aws:PrincipalArn"])
            .unwrap()
            .contains("ApplianceRoleArns")
    );

    for name in [
        "alarm-eventbridge.json",
        "alarm-ok-eventbridge.json",
        "alarm-sns.json",
        "alarm-action.json",
    ] {
        let text = repo_file(&format!("events/{name}"));
        let Ok(failover_core::app::events::Trigger::Alarm { name: alarm, .. }) =
            failover_core::app::events::parse_text(&text)
        else {
            panic!("{name}")
        };
        assert!(
            alarm.starts_with(DEFAULT_ALARM_NAME_PREFIX),
            "{name}: {alarm}"
        );
    }
    let active = repo_file("events/appliance-active.json");
    assert!(active.contains(&format!("\"source\": \"{DEFAULT_APPLIANCE_SOURCE}\"")));
}

/// A run that crashed holding the cluster lock must not block every trigger after it for
/// longer than one function timeout: the default lease fits the failover function's timeout,
/// in both modes (fleet mode: one invocation runs a batch, with a longer timeout; each
/// cluster's lock still has the default lease, renewed while its run goes on).
#[test]
fn the_default_lock_lease_fits_the_function_timeout() {
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let (fleet, single) = if_branches(
        &template["Resources"]["FailoverFunction"]["Properties"]["Timeout"],
        "IsFleet",
    );
    let lease = failover_core::engine::declaration::Extension::default().lock_lease_seconds;
    for timeout in [fleet, single] {
        let timeout = timeout.as_u64().expect("Timeout");
        assert!(
            lease <= timeout,
            "default lockLeaseSeconds {lease} s outlives the function timeout {timeout} s"
        );
    }
}

/// `retryFailover` has its meaning: a schedule, at the declaration's interval (the
/// `RetryFailoverInterval` parameter), invokes the failover function (fleet mode: through the
/// fleet queue); none when it is 0.
#[test]
fn the_retry_failover_schedule_invokes_the_failover_function() {
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let res = &template["Resources"];
    let rule = &res["RetryFailoverSchedule"];
    assert_eq!(rule["Condition"], "HasRetrySchedule");
    let expr = serde_yaml::to_string(&rule["Properties"]["ScheduleExpression"]).unwrap();
    assert!(
        expr.contains("rate(${RetryFailoverInterval} minutes)"),
        "{expr}"
    );
    let (fleet, single) = if_branches(&rule["Properties"]["Targets"][0]["Arn"], "IsFleet");
    assert!(shown(single).contains("FailoverFunction.Arn"), "{single:?}");
    assert!(shown(fleet).contains("FleetQueue.Arn"), "{fleet:?}");
    let permission = &res["RetryFailoverSchedulePermission"];
    assert_eq!(permission["Condition"], "RetryInvokesFunction");
    let when = shown(&template["Conditions"]["RetryInvokesFunction"]);
    assert!(
        when.contains("HasRetrySchedule") && when.contains("IsSinglePair"),
        "{when}"
    );
    assert_eq!(
        permission["Properties"]["Principal"],
        "events.amazonaws.com"
    );
    let p = &template["Parameters"]["RetryFailoverInterval"];
    assert_eq!(
        (p["Default"].as_u64(), p["MaxValue"].as_u64()),
        (Some(0), Some(1440))
    );
}

/// Route 53 health-check alarms get data in us-east-1 only: the checks (and their alarms) are
/// made there only, whatever the IPs given (helper-6's review of the deploy docs).
#[test]
fn route53_health_checks_only_in_us_east_1() {
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let conditions = &template["Conditions"];
    let shown = |v: &Value| serde_yaml::to_string(v).unwrap();
    assert!(
        shown(&conditions["IsUsEast1"]).contains("us-east-1")
            && shown(&conditions["IsUsEast1"]).contains("AWS::Region"),
        "{}",
        shown(&conditions["IsUsEast1"])
    );
    for c in ["HasHealthCheckA", "HasHealthCheckB"] {
        assert!(
            shown(&conditions[c]).contains("IsUsEast1"),
            "{c}: {}",
            shown(&conditions[c])
        );
    }
    for (name, r) in template["Resources"].as_mapping().unwrap() {
        let kind = r["Type"].as_str().unwrap_or_default();
        let route53 = kind == "AWS::Route53::HealthCheck"
            || shown(&r["Properties"]["Namespace"]).contains("AWS/Route53");
        if route53 {
            let cond = r["Condition"].as_str().unwrap_or_default();
            assert!(
                cond == "HasHealthCheckA" || cond == "HasHealthCheckB",
                "{name:?} is made outside us-east-1 too (Condition {cond:?})"
            );
        }
    }
}

#[test]
fn the_scoping_tag_key_is_one_parameter_of_the_stack() {
    // The key the IAM conditions on is the ScopingTagKey parameter (default CFE's), and every
    // function knows it (SCOPING_TAG_KEY) to say when a declaration scopes by another.
    let text = repo_file("template.yaml");
    let template: Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(
        template["Parameters"]["ScopingTagKey"]["Default"],
        failover_core::engine::declaration::LABEL_KEY
    );
    for function in ["FailoverFunction", "ProbeFunction", "InspectFunction"] {
        let var = &template["Resources"][function]["Properties"]["Environment"]["Variables"]
            ["SCOPING_TAG_KEY"];
        match var {
            Value::Tagged(t) => assert_eq!(
                (t.tag.to_string(), &t.value),
                ("!Ref".into(), &Value::from("ScopingTagKey")),
                "{function}"
            ),
            other => panic!("{function}: SCOPING_TAG_KEY is {other:?}"),
        }
    }
    for literal in [
        "ResourceTag/f5_cloud_failover_label",
        "Key: f5_cloud_failover_label",
    ] {
        assert!(!text.contains(literal), "{literal}: use the parameter");
    }
}

#[test]
fn the_template_names_the_key_layout_of_the_code() {
    // IAM (state, history, lock writes) and the history lifecycle rule use keys::PREFIX.
    let text = repo_file("template.yaml");
    let prefix = failover_core::engine::keys::PREFIX;
    assert!(
        text.contains(&format!("/{prefix}/*")),
        "IAM resource under {prefix}/"
    );
    let history = failover_core::engine::keys::history_prefix("");
    assert!(
        text.contains(&format!("Prefix: {}", history.trim_end_matches('/'))),
        "lifecycle rule on {history}"
    );
}

/// Whether `v` refers to the resource or parameter `name` (`!Ref NAME`, `!GetAtt NAME.Attr`).
fn names(v: &Value, name: &str) -> bool {
    let text = shown(v);
    let reference = format!("!Ref {name}");
    text.contains(&format!("!GetAtt {name}."))
        || text.match_indices(&reference).any(|(i, _)| {
            !text[i + reference.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        })
}

/// The statement of a resource policy whose principal is the AWS `service`.
fn statement_for<'a>(statements: &'a [Value], service: &str) -> &'a Value {
    statements
        .iter()
        .find(|s| s["Principal"]["Service"] == service)
        .unwrap_or_else(|| panic!("no statement for {service}"))
}

/// Fleet mode: one stack for every pair of the account, one executor. Every
/// trigger goes to one SQS queue; the failover function takes it in batches at reserved
/// concurrency 1 and reports the messages to retry; only this stack's rules and alarm topic
/// may send to the queue; a single pair's stack keeps its direct wiring.
#[test]
fn fleet_mode_is_one_executor_fed_by_one_queue() {
    let template: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let res = &template["Resources"];
    let params = &template["Parameters"];

    // Fleet mode is a parameter, off by default: existing stacks stay single-pair.
    assert_eq!(params["DeclarationPrefix"]["Default"], "");
    assert!(shown(&template["Conditions"]["IsFleet"]).contains("DeclarationPrefix"));
    assert!(shown(&template["Conditions"]["IsSinglePair"]).contains("DeclarationPrefix"));
    // A single pair must still name its pair (the parameters may be empty only in fleet mode).
    let single_rule = shown(&template["Rules"]["SinglePairNamesItsPair"]);
    for p in ["MemberAInstanceId", "MemberBInstanceId", "VpcId"] {
        assert_eq!(params[p]["Default"], "", "{p}");
        assert!(
            single_rule.contains(p),
            "{p} is not required for a single pair"
        );
    }
    assert!(shown(&template["Rules"]["FleetNamesItsVpcs"]).contains("FleetVpcIds"));

    // Every function reads the prefix in fleet mode, the one declaration otherwise.
    for function in ["FailoverFunction", "ProbeFunction", "InspectFunction"] {
        let uri = &res[function]["Properties"]["Environment"]["Variables"]["DECLARATION_URI"];
        let (fleet, single) = if_branches(uri, "IsFleet");
        assert!(
            shown(fleet).contains("s3://${Bucket}/${DeclarationPrefix}"),
            "{function}: {fleet:?}"
        );
        assert!(
            shown(single).contains("s3://${Bucket}/${DeclarationKey}"),
            "{function}: {single:?}"
        );
    }

    // Every fleet-only resource exists in fleet mode only.
    for name in [
        "FleetQueue",
        "FleetDeadLetterQueue",
        "FleetQueuePolicy",
        "FleetQueueConsumerPolicy",
        "FleetEventSourceMapping",
        "FleetAlarmTopicSubscription",
        "FleetDeadLetterAlarm",
        "FleetBacklogAlarm",
    ] {
        assert_eq!(res[name]["Condition"], "IsFleet", "{name}");
    }

    // One executor: reserved concurrency 1 in fleet mode, none for a single pair.
    let f = &res["FailoverFunction"]["Properties"];
    assert!(
        f.get("Events").is_none(),
        "SAM events cannot be conditional: the triggers are resources of their own"
    );
    let (fleet, single) = if_branches(&f["ReservedConcurrentExecutions"], "IsFleet");
    assert_eq!(fleet.as_u64(), Some(1));
    assert!(shown(single).contains("AWS::NoValue"), "{single:?}");
    let (fleet_timeout, _) = if_branches(&f["Timeout"], "IsFleet");
    let fleet_timeout = fleet_timeout.as_u64().expect("Timeout");

    // The queue: encrypted, visible again after 6 function timeouts (AWS's advice for an
    // event source mapping), 5 receives before the dead-letter queue (AWS's advice with
    // reserved concurrency), which an alarm watches.
    let queue = &res["FleetQueue"];
    assert_eq!(queue["Type"], "AWS::SQS::Queue");
    let q = &queue["Properties"];
    assert_eq!(q["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert_eq!(q["VisibilityTimeout"].as_u64(), Some(6 * fleet_timeout));
    assert!(names(
        &q["RedrivePolicy"]["deadLetterTargetArn"],
        "FleetDeadLetterQueue"
    ));
    assert_eq!(q["RedrivePolicy"]["maxReceiveCount"].as_u64(), Some(5));
    let dlq = &res["FleetDeadLetterQueue"]["Properties"];
    assert_eq!(dlq["SqsManagedSseEnabled"].as_bool(), Some(true));
    assert!(dlq["MessageRetentionPeriod"].as_u64() > q["MessageRetentionPeriod"].as_u64());
    let alarm = &res["FleetDeadLetterAlarm"]["Properties"];
    assert_eq!(alarm["Namespace"], "AWS/SQS");
    assert_eq!(alarm["MetricName"], "ApproximateNumberOfMessagesVisible");
    assert!(names(
        &alarm["Dimensions"][0]["Value"],
        "FleetDeadLetterQueue"
    ));
    assert_eq!(alarm["ComparisonOperator"], "GreaterThanThreshold");
    assert_eq!(alarm["Threshold"].as_u64(), Some(0));
    assert!(names(&alarm["AlarmActions"], "OperatorAlarmTopic"));

    // The mapping: batches of up to 100 gathered for the window parameter (AWS wants at least
    // 1 s over a batch of 10), partial batch responses.
    let mapping = &res["FleetEventSourceMapping"];
    assert_eq!(mapping["Type"], "AWS::Lambda::EventSourceMapping");
    let m = &mapping["Properties"];
    assert!(names(&m["EventSourceArn"], "FleetQueue"));
    assert!(names(&m["FunctionName"], "FailoverFunction"));
    assert_eq!(m["BatchSize"].as_u64(), Some(100));
    assert_eq!(
        shown(&m["FunctionResponseTypes"]).trim(),
        "- ReportBatchItemFailures"
    );
    assert!(names(
        &m["MaximumBatchingWindowInSeconds"],
        "FleetBatchWindowSeconds"
    ));
    let window = &params["FleetBatchWindowSeconds"];
    assert_eq!(
        (
            window["Default"].as_u64(),
            window["MinValue"].as_u64(),
            window["MaxValue"].as_u64()
        ),
        (Some(1), Some(1), Some(5))
    );
    // The mapping polls with the function's role: exactly what Lambda documents it needs,
    // on this queue only (the code's own SQS call, ChangeMessageVisibility, is in OPERATIONS
    // and granted by FailoverPolicy, on this queue too).
    assert!(shown(&mapping["DependsOn"]).contains("FleetQueueConsumerPolicy"));
    let consumer = &res["FleetQueueConsumerPolicy"]["Properties"];
    assert!(names(&consumer["Roles"], "FailoverFunctionRole"));
    let statements = consumer["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap();
    assert_eq!(statements.len(), 1);
    let s = &statements[0];
    assert_eq!(s["Effect"], "Allow");
    let actions: BTreeSet<&str> = s["Action"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes"
        ])
    );
    assert!(names(&s["Resource"], "FleetQueue"));
    // The executor's own call: on this queue only, in fleet mode only.
    let (_, statements) = actions_granted("FailoverFunction");
    let sooner = statements
        .iter()
        .find(|s| s["Sid"] == "RetryFailedMessagesSooner")
        .expect("the ChangeMessageVisibility statement");
    assert_eq!(sooner["Action"], "sqs:ChangeMessageVisibility");
    assert!(names(&sooner["Resource"], "FleetQueue"));
    let conditional = res["FailoverPolicy"]["Properties"]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|s| match s {
            Value::Tagged(t) if t.tag == "If" => {
                t.value[0] == "IsFleet" && t.value[1]["Sid"] == "RetryFailedMessagesSooner"
            }
            _ => false,
        });
    assert!(conditional, "granted in fleet mode only");
    // A message's error reaches the operators through the answers' metrics (EMF).
    let errors = &res["FleetErrorsAlarm"]["Properties"];
    assert_eq!(errors["Namespace"], failover_core::app::metrics::NAMESPACE);
    assert_eq!(errors["MetricName"], "Errors");
    assert_eq!(errors["Dimensions"][0]["Value"], "failover");
    let emf = failover_core::app::metrics::emf(
        "failover",
        &Err(failover_core::FailoverError::Unroutable("x".into())),
    );
    assert_eq!(emf["Errors"], 1);
    assert_eq!(emf["Function"], "failover");

    // Every trigger: to the queue in fleet mode, to the function otherwise; the function's
    // invoke permission exists for a single pair only.
    let rules = [
        (
            "FailoverFunctionAlarmStateChange",
            "FailoverFunctionAlarmStateChangePermission",
        ),
        (
            "FailoverFunctionMemberStateChange",
            "FailoverFunctionMemberStateChangePermission",
        ),
        (
            "FailoverFunctionApplianceActive",
            "FailoverFunctionApplianceActivePermission",
        ),
        ("RetryFailoverSchedule", "RetryFailoverSchedulePermission"),
    ];
    for (rule, permission) in rules {
        assert_eq!(res[rule]["Type"], "AWS::Events::Rule", "{rule}");
        let targets = res[rule]["Properties"]["Targets"].as_sequence().unwrap();
        assert_eq!(targets.len(), 1, "{rule}");
        let (fleet, single) = if_branches(&targets[0]["Arn"], "IsFleet");
        assert!(names(fleet, "FleetQueue"), "{rule}: {fleet:?}");
        assert!(names(single, "FailoverFunction"), "{rule}: {single:?}");
        let p = &res[permission];
        assert_eq!(p["Type"], "AWS::Lambda::Permission", "{permission}");
        let when = p["Condition"].as_str().unwrap();
        assert!(
            when == "IsSinglePair" || shown(&template["Conditions"][when]).contains("IsSinglePair"),
            "{permission} exists in fleet mode (Condition {when})"
        );
        assert!(names(&p["Properties"]["SourceArn"], rule), "{permission}");
    }
    // A fleet's rules cannot list every pair's instances: they match states (and the
    // appliances' source); the function ignores instances no declaration owns. A single
    // pair's still list its two members.
    for rule in [
        "FailoverFunctionMemberStateChange",
        "FailoverFunctionApplianceActive",
    ] {
        let (fleet, single) = if_branches(&res[rule]["Properties"]["EventPattern"], "IsFleet");
        for member in ["MemberAInstanceId", "MemberBInstanceId"] {
            assert!(!shown(fleet).contains(member), "{rule}: {fleet:?}");
            assert!(shown(single).contains(member), "{rule}: {single:?}");
        }
    }
    let (fleet, single) = if_branches(
        &res["FailoverFunctionMemberStateChange"]["Properties"]["EventPattern"],
        "IsFleet",
    );
    assert_eq!(fleet["detail"]["state"], single["detail"]["state"]);

    // Classic alarm actions: the alarm topic invokes the function (single pair) or feeds the
    // queue with SNS's envelope (not raw: the function checks the topic in it).
    let to_function = &res["FailoverFunctionClassicAlarmAction"];
    assert_eq!(to_function["Condition"], "IsSinglePair");
    assert_eq!(to_function["Properties"]["Protocol"], "lambda");
    assert_eq!(
        res["FailoverFunctionClassicAlarmActionPermission"]["Condition"],
        "IsSinglePair"
    );
    let to_queue = &res["FleetAlarmTopicSubscription"]["Properties"];
    assert_eq!(to_queue["Protocol"], "sqs");
    assert!(names(&to_queue["Endpoint"], "FleetQueue"));
    assert!(names(&to_queue["TopicArn"], "AlarmTopic"));
    assert_ne!(to_queue["RawMessageDelivery"].as_bool(), Some(true));

    // Who may send to the queue: EventBridge for this stack's rules only, SNS for the alarm
    // topic only; nobody else.
    let policy = &res["FleetQueuePolicy"]["Properties"];
    assert!(names(&policy["Queues"], "FleetQueue"));
    let statements = policy["PolicyDocument"]["Statement"].as_sequence().unwrap();
    assert_eq!(statements.len(), 3);
    for s in statements {
        assert_eq!(s["Action"], "sqs:SendMessage");
        assert!(names(&s["Resource"], "FleetQueue"));
    }
    // Everyone but those sources (and DeployerRoleArns) is denied, the account's principals
    // included (tests/iam/evaluate.py sends the requests).
    let deny = &statements[2];
    assert_eq!(
        (&deny["Effect"], &deny["Principal"]),
        (&Value::from("Deny"), &Value::from("*"))
    );
    let (with_deployers, without) = if_branches(&deny["Condition"], "HasDeployers");
    for c in [with_deployers, without] {
        let sources = shown(&c["ArnNotEquals"]["aws:SourceArn"]);
        assert!(
            names(&c["ArnNotEquals"]["aws:SourceArn"], "AlarmTopic"),
            "{sources}"
        );
        assert!(
            sources.contains("FailoverFunctionApplianceActive.Arn"),
            "{sources}"
        );
    }
    assert!(names(
        &with_deployers["ArnNotLike"]["aws:PrincipalArn"],
        "DeployerRoleArns"
    ));
    let statements = &statements[..2];
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
    }
    let events = &statement_for(statements, "events.amazonaws.com")["Condition"]["ArnEquals"]
        ["aws:SourceArn"];
    let sources = events.as_sequence().expect("a list of rule ARNs");
    assert_eq!(sources.len(), rules.len());
    for (rule, _) in rules {
        assert!(
            sources.iter().any(|arn| names(arn, rule)),
            "{rule} may not send to the queue"
        );
    }
    // The optional schedule's ARN is there only when the schedule is.
    let schedule = sources
        .iter()
        .find(|arn| names(arn, "RetryFailoverSchedule"))
        .unwrap();
    let (made, _) = if_branches(schedule, "HasRetrySchedule");
    assert!(names(made, "RetryFailoverSchedule"));
    let topic =
        &statement_for(statements, "sns.amazonaws.com")["Condition"]["ArnEquals"]["aws:SourceArn"];
    assert!(names(topic, "AlarmTopic"), "{topic:?}");

    // The executor may read every declaration under the prefix (and list it: s3:ListBucket,
    // ListObjectsV2, is granted on the bucket).
    assert!(OPERATIONS.contains(&"ListObjectsV2"));
    let (_, statements) = actions_granted("FailoverFunction");
    let read = statements
        .iter()
        .find(|s| s["Action"] == "s3:GetObject")
        .expect("s3:GetObject");
    let declaration = &read["Resource"][0];
    let (fleet, single) = if_branches(declaration, "IsFleet");
    assert!(shown(fleet).contains("/${DeclarationPrefix}*"), "{fleet:?}");
    assert!(shown(single).contains("/${DeclarationKey}"), "{single:?}");
}

/// templates/pair.yaml (fleet mode: deployed once per pair) makes a pair's status-check alarms
/// as the single-pair stack makes its own: the same name (the stack's prefix, the instance
/// id), metric, dimension and thresholds, so the function routes each to the pair that owns
/// the instance.
#[test]
fn the_pair_template_makes_the_stacks_status_check_alarms() {
    let stack: Value = serde_yaml::from_str(&repo_file("template.yaml")).unwrap();
    let pair: Value = serde_yaml::from_str(&repo_file("templates/pair.yaml")).unwrap();
    assert_eq!(
        pair["Parameters"]["AlarmNamePrefix"]["Default"],
        stack["Parameters"]["AlarmNamePrefix"]["Default"]
    );
    for alarm in ["StatusCheckAlarmA", "StatusCheckAlarmB"] {
        let ours = &pair["Resources"][alarm]["Properties"];
        let theirs = &stack["Resources"][alarm]["Properties"];
        for key in [
            "AlarmName",
            "Namespace",
            "MetricName",
            "Dimensions",
            "Statistic",
            "Period",
            "EvaluationPeriods",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
        ] {
            assert!(!ours[key].is_null(), "{alarm}.{key}");
            assert_eq!(ours[key], theirs[key], "{alarm}.{key}");
        }
    }
}
