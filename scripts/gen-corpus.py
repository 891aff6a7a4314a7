#!/usr/bin/env python3
"""Writes tests/corpus/: malformed declarations and events, each with the start of the error
it must produce (tests/corpus/expected.tsv). Run from the repository root; the output is
committed, so this only documents (and can regenerate) the corpus."""
import copy, json, os

root = os.path.join(os.path.dirname(__file__), "..")
base = json.load(open(os.path.join(root, "examples/seed-article/declaration-after.json")))
out = os.path.join(root, "tests/corpus")
rows = []

def put(kind, name, text, expect):
    path = f"{kind}/{name}.json"
    os.makedirs(os.path.join(out, kind), exist_ok=True)
    with open(os.path.join(out, path), "w") as f:
        f.write(text)
    rows.append((path, expect))

def decl(name, expect, mutate=None, text=None):
    if text is None:
        d = copy.deepcopy(base)
        mutate(d)
        text = json.dumps(d, indent=2)
    put("declarations", name, text, expect)

G = lambda d: d["failoverRoutes"]["routeGroupDefinitions"][0]
ENC = lambda d: d["externalStorage"]["encryption"]["serverSide"]
def eip_groups(groups):
    def m(d):
        d["failoverAddresses"]["addressGroupDefinitions"] = groups
    return m
EIP = {"type": "elasticIpAddress", "scopingAddress": "98.80.114.203", "vipAddresses": ["10.0.0.101", "10.0.4.101"]}

decl("truncated", "declaration: is not valid JSON", text=json.dumps(base)[:200])
decl("empty", "declaration: is not valid JSON", text="")
decl("array", "declaration: expected an object", text="[]")
decl("class-wrong", "class:", lambda d: d.update({"class": "ADC"}))
decl("class-missing", "class: is required", lambda d: d.pop("class"))
decl("environment-azure", "environment:", lambda d: d.update({"environment": "azure"}))
decl("environment-missing", "environment: is required", lambda d: d.pop("environment"))
decl("environment-number", "environment: \"1\" is not supported", lambda d: d.update({"environment": 1}))
decl("environment-array", "environment: expected a string", lambda d: d.update({"environment": ["aws"]}))
decl("schema-version-short", "schemaVersion:", lambda d: d.update({"schemaVersion": "1.0"}))
decl("schema-version-number", "schemaVersion: \"1\" is not a released CFE schema version", lambda d: d.update({"schemaVersion": 1.0}))
decl("schema-version-unreleased", "schemaVersion: \"9.9.9\" is not a released CFE schema version", lambda d: d.update({"schemaVersion": "9.9.9"}))
decl("schema-version-object", "schemaVersion: expected a string", lambda d: d.update({"schemaVersion": {"v": "1.0.0"}}))
decl("unknown-top-level", "failoverAddress: unknown property", lambda d: d.update({"failoverAddress": {}}))
decl("log-level-loud", "controls.logLevel:", lambda d: d["controls"].update({"logLevel": "loud"}))
decl("controls-unknown", "controls.level: unknown property", lambda d: d["controls"].update({"level": "info"}))
decl("storage-missing", "externalStorage: is required", lambda d: d.pop("externalStorage"))
decl("storage-both-scopes", "externalStorage: give scopingName or scopingTags, not both", lambda d: d["externalStorage"].update({"scopingName": "state-bucket"}))
decl("storage-no-scope", "externalStorage: needs scopingName", lambda d: d["externalStorage"].pop("scopingTags"))
decl("storage-bad-bucket", "externalStorage.scopingName:", lambda d: (d["externalStorage"].pop("scopingTags"), d["externalStorage"].update({"scopingName": "my bucket!"})))
decl("storage-tags-empty", "externalStorage.scopingTags: must name at least one tag", lambda d: d["externalStorage"].update({"scopingTags": {}}))
# A number is read as its text (CFE's schema leaves tag values untyped); a list is no tag value.
decl("storage-tag-list", "externalStorage.scopingTags.f5_cloud_failover_label: expected a tag value string", lambda d: d["externalStorage"].update({"scopingTags": {"f5_cloud_failover_label": ["a"]}}))
decl("sse-algorithm-des", "externalStorage.encryption.serverSide.algorithm:", lambda d: ENC(d).update({"algorithm": "DES"}))
decl("sse-key-number-list", "externalStorage.encryption.serverSide.keyId: expected a string", lambda d: ENC(d).update({"algorithm": "aws:kms", "keyId": [1]}))
decl("sse-enabled-string", "externalStorage.encryption.serverSide.enabled: expected true or false", lambda d: ENC(d).update({"enabled": "yes"}))
decl("state-file-slash", "externalStorage.stateFileName:", lambda d: d["externalStorage"].update({"stateFileName": "a/b.json"}))
decl("state-file-dotdot", "externalStorage.stateFileName: \"..\" is not a file name", lambda d: d["externalStorage"].update({"stateFileName": ".."}))
decl("class-twice", "declaration: has the key \"class\" twice in one object", text=json.dumps(base).replace('"class": "Cloud_Failover"', '"class": "Cloud_Failover", "class": "Cloud_Failover"', 1))
decl("state-file-empty", "externalStorage.stateFileName:", lambda d: d["externalStorage"].update({"stateFileName": ""}))
decl("addresses-enabled-yes", "failoverAddresses.enabled: expected true or false", lambda d: d["failoverAddresses"].update({"enabled": "yes"}))
decl("addresses-no-scope", "failoverAddresses: needs scopingTags or addressGroupDefinitions", lambda d: d["failoverAddresses"].pop("scopingTags"))
decl("addresses-require-without-tags", "failoverAddresses.requireScopingTags: is true but no scopingTags", lambda d: (d["failoverAddresses"].pop("scopingTags"), d["failoverAddresses"].update({"requireScopingTags": True, "addressGroupDefinitions": [EIP]})))
decl("address-groups-empty", "failoverAddresses.addressGroupDefinitions: must not be empty", eip_groups([]))
decl("address-group-type", "failoverAddresses.addressGroupDefinitions[0].type:", eip_groups([dict(EIP, type="floatingIp")]))
decl("eip-not-an-ip", "failoverAddresses.addressGroupDefinitions[0].scopingAddress:", eip_groups([dict(EIP, scopingAddress="not-an-ip")]))
decl("eip-ipv6", "failoverAddresses.addressGroupDefinitions[0].scopingAddress:", eip_groups([dict(EIP, scopingAddress="2600:1f18::1")]))
decl("eip-one-vip", "failoverAddresses.addressGroupDefinitions[0].vipAddresses: needs one VIP per unit", eip_groups([dict(EIP, vipAddresses=["10.0.0.101"])]))
decl("eip-vip-duplicate", "failoverAddresses.addressGroupDefinitions[0].vipAddresses[1]:", eip_groups([dict(EIP, vipAddresses=["10.0.0.101", "10.0.0.101"])]))
decl("eip-vip-ipv6", "failoverAddresses.addressGroupDefinitions[0].vipAddresses[1]:", eip_groups([dict(EIP, vipAddresses=["10.0.0.101", "fd00::101"])]))
decl("eip-vips-missing", "failoverAddresses.addressGroupDefinitions[0].vipAddresses: is required", eip_groups([{"type": "elasticIpAddress", "scopingAddress": "98.80.114.203"}]))
decl("nic-address-missing", "failoverAddresses.addressGroupDefinitions[0].scopingAddress: is required", eip_groups([{"type": "networkInterfaceAddress"}]))
decl("eip-defined-twice", "failoverAddresses.addressGroupDefinitions[1].scopingAddress:", eip_groups([EIP, EIP]))
decl("route-groups-empty", "failoverRoutes.routeGroupDefinitions: must not be empty", lambda d: d["failoverRoutes"].update({"routeGroupDefinitions": []}))
decl("route-table-id-bad", "failoverRoutes.routeGroupDefinitions[0].scopingName: expected a string", lambda d: G(d).update({"scopingName": ["rtb-060adeaa8fe5b2bbb"]}))
decl("route-table-name", "failoverRoutes.routeGroupDefinitions[0].scopingName: \"myroutetable-1\" is not a route table id (rtb-…)", lambda d: G(d).update({"scopingName": "myroutetable-1"}))
decl("route-group-both-scopes", "failoverRoutes.routeGroupDefinitions[0]: give scopingName or scopingTags, not both", lambda d: G(d).update({"scopingTags": {"a": "b"}}))
decl("ranges-missing", "failoverRoutes.scopingAddressRanges: is required", lambda d: d.update({"failoverRoutes": {"scopingTags": {"f5_cloud_failover_label": "x"}, "defaultNextHopAddresses": G(d)["defaultNextHopAddresses"]}}))
decl("ranges-empty", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges: must not be empty", lambda d: G(d).update({"scopingAddressRanges": []}))
decl("range-prefix-33", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].range: \"10.0.0.0/33\" is not a CIDR", lambda d: G(d).update({"scopingAddressRanges": [{"range": "10.0.0.0/33"}]}))
decl("range-ipv6-prefix-129", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].range:", lambda d: G(d).update({"scopingAddressRanges": [{"range": "::/129"}]}))
decl("range-number", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].range: \"0\" is not a CIDR", lambda d: G(d).update({"scopingAddressRanges": [{"range": 0}]}))
decl("range-no-prefix", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].range:", lambda d: G(d).update({"scopingAddressRanges": [{"range": "10.0.0.0"}]}))
decl("ranges-duplicate", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[1].range:", lambda d: G(d).update({"scopingAddressRanges": [{"range": "0.0.0.0/0"}, {"range": "0.0.0.0/0"}]}))
decl("range-unknown-prop", "failoverRoutes.routeGroupDefinitions[0].scopingAddressRanges[0].nextHop: unknown property", lambda d: G(d).update({"scopingAddressRanges": [{"range": "0.0.0.0/0", "nextHop": "10.0.0.11"}]}))
decl("discovery-type-dynamic", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.discoveryType:", lambda d: G(d)["defaultNextHopAddresses"].update({"discoveryType": "dynamic"}))
decl("static-items-empty", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: must not be empty", lambda d: G(d)["defaultNextHopAddresses"].update({"items": []}))
decl("static-items-bad-ip", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items[1]: \"10.0.4.300\" is not an IP address", lambda d: G(d)["defaultNextHopAddresses"].update({"items": ["10.0.0.11", "10.0.4.300"]}))
decl("static-items-duplicate", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items[1]:", lambda d: G(d)["defaultNextHopAddresses"].update({"items": ["10.0.0.11", "10.0.0.11"]}))
decl("static-items-missing", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: is required", lambda d: G(d)["defaultNextHopAddresses"].pop("items"))
decl("static-items-object", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: expected an array", lambda d: G(d)["defaultNextHopAddresses"].update({"items": {"a": "10.0.0.11"}}))
decl("route-tag-with-items", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: is only valid with discoveryType \"static\"", lambda d: G(d)["defaultNextHopAddresses"].update({"discoveryType": "routeTag"}))
decl("static-items-eleven", "failoverRoutes.routeGroupDefinitions[0].defaultNextHopAddresses.items: has 11 items", lambda d: G(d)["defaultNextHopAddresses"].update({"items": [f"10.0.0.{i}" for i in range(11, 22)]}))
decl("groups-and-top-level-tags", "failoverRoutes.scopingTags: cannot be combined with routeGroupDefinitions", lambda d: d["failoverRoutes"].update({"scopingTags": {"a": "b"}}))
decl("routes-no-scope", "failoverRoutes: needs routeGroupDefinitions or scopingTags", lambda d: d["failoverRoutes"].pop("routeGroupDefinitions"))
decl("route-groups-same-scope", "failoverRoutes.routeGroupDefinitions[1]: selects the same route tables", lambda d: d["failoverRoutes"]["routeGroupDefinitions"].append(copy.deepcopy(G(d))))
decl("retry-interval-zero", "retryFailover.interval: expected a whole number", lambda d: d.update({"retryFailover": {"enabled": True, "interval": 0}}))
decl("retry-unknown-prop", "retryFailover.every: unknown property", lambda d: d.update({"retryFailover": {"enabled": True, "every": 5}}))
decl("cluster-name-bad", "serverless.clusterName:", lambda d: d.update({"serverless": {"clusterName": "bad name!"}}))
decl("cluster-name-reserved", 'serverless.clusterName: "lock" is reserved', lambda d: d.update({"serverless": {"clusterName": "lock"}}))
decl("max-concurrency-huge", "serverless.maxConcurrency: expected a whole number from 1 to 64", lambda d: d.update({"serverless": {"maxConcurrency": 1000}}))
decl("alarm-target-eni", "serverless.alarmTargets.bigip-a: \"eni-0603a4992d0579540\" is not an instance id", lambda d: d.update({"serverless": {"alarmTargets": {"bigip-a": "eni-0603a4992d0579540"}}}))
decl("serverless-unknown-prop", "serverless.cooldown: unknown property", lambda d: d.update({"serverless": {"cooldown": 5}}))
decl("lock-lease-short", "serverless.lockLeaseSeconds: expected a whole number from 10 to 900", lambda d: d.update({"serverless": {"lockLeaseSeconds": 5}}))
decl("appliance-source-aws", "serverless.applianceSources[0]: \"aws.ec2\" is not an event source", lambda d: d.update({"serverless": {"applianceSources": ["aws.ec2"]}}))
decl("failback-to-bad", "serverless.failbackTo:", lambda d: d.update({"serverless": {"failbackTo": "failover01"}}))

def ev(name, expect, obj=None, text=None):
    put("events", name, text if text is not None else json.dumps(obj, indent=2), expect)

def eb(detail_type, detail, source="aws.ec2"):
    return {"version": "0", "id": "1", "detail-type": detail_type, "source": source, "account": "123456789012",
            "time": "2026-11-29T07:00:00Z", "region": "us-east-1", "resources": [], "detail": detail}

alarm = json.load(open(os.path.join(root, "events/alarm-eventbridge.json")))
sns = json.load(open(os.path.join(root, "events/alarm-sns.json")))
msg = json.loads(sns["Records"][0]["Sns"]["Message"])

ev("truncated", "event: is not valid JSON", text=json.dumps(alarm)[:120])
ev("empty", "event: is not valid JSON", text="")
ev("array", "event: expected a JSON object", [])
ev("string", "event: expected a JSON object", "failover")
ev("unknown-shape", "event: unrecognized event", {"hello": 1})
ev("direct-action-go", "action:", {"action": "go", "target": "i-061cbb31a5158ad30"})
ev("direct-target-eni", "target:", {"action": "execute", "target": "eni-04bec0335a47b26c3"})
ev("direct-target-missing", "event: missing field `target`", {"action": "execute"})
ev("direct-unknown-field", "event: unknown field `targets`", {"action": "execute", "target": "i-061cbb31a5158ad30", "targets": []})
ev("direct-target-number", "event: invalid type", {"action": "execute", "target": 42})
ev("eventbridge-s3", "detail-type:", eb("Object Created", {}, "aws.s3"))
a = copy.deepcopy(alarm); a["detail"].pop("alarmName")
ev("alarm-no-name", "detail: missing field `alarmName`", a)
a = copy.deepcopy(alarm); a["detail"]["state"]["value"] = "BROKEN"
ev("alarm-state-broken", "detail: unknown variant `BROKEN`", a)
ev("ec2-no-instance", "detail: missing field `instance-id`", eb("EC2 Instance State-change Notification", {"state": "stopped"}))
ev("ec2-volume-id", "detail.instance-id:", eb("EC2 Instance State-change Notification", {"instance-id": "vol-0123456789abcdef0", "state": "stopped"}))
ev("active-no-instance", "detail: missing field `instanceId`", eb("Appliance Active", {"hostName": "bigip"}, "bigip.failover"))
ev("active-bad-instance", "detail.instanceId:", eb("Appliance Active", {"instanceId": "failover02"}, "bigip.failover"))
s = copy.deepcopy(sns); s["Records"].append(copy.deepcopy(s["Records"][0]))
ev("sns-two-records", "Records: expected exactly one SNS record", s)
s = copy.deepcopy(sns); s["Records"][0]["Sns"]["Message"] = "ALARM: bigip-a"
ev("sns-message-text", "Records[0].Sns.Message: is not a CloudWatch alarm notification", s)
s = copy.deepcopy(sns); m = dict(msg); m.pop("NewStateValue"); s["Records"][0]["Sns"]["Message"] = json.dumps(m)
ev("sns-message-no-state", "Records[0].Sns.Message: is not a CloudWatch alarm notification", s)
ev("sns-no-records", "Records: expected exactly one SNS record", {"Records": []})
ev("alarm-action-data-string", "alarmData:", {"source": "aws.cloudwatch", "time": "2026-11-29T07:00:00.000+0000", "alarmData": "ALARM"})
ev("direct-target-twice", "event: has the key \"target\" twice in one object (line 1, column 63)", text='{"action": "execute", "target": "i-055fd78af29715fbf", "target": "i-061cbb31a5158ad30"}')
ev("detail-type-number", "event: invalid type", {"detail-type": 7, "source": "x", "detail": {}})

with open(os.path.join(out, "expected.tsv"), "w") as f:
    f.write("# file\tthe error message must start with this\n")
    for path, expect in rows:
        f.write(f"{path}\t{expect}\n")
print(f"{sum(1 for p, _ in rows if p.startswith('declarations'))} declarations, {sum(1 for p, _ in rows if p.startswith('events'))} events")
