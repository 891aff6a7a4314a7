#!/usr/bin/env python3
"""aws-drill: the field report's experiment on a real AWS account, in one command.

    kit.py run      build the lab (lab.yaml), deploy cloud-failover against it, measure through
                    the Elastic IP (from here) and through the route (from the lab's client),
                    stop the active unit, print the timeline and the gap per path, plot it, and
                    tear everything down (also on Ctrl-C or failure)
    kit.py cleanup  delete what an interrupted run left (stacks, buckets) by its names and tags
    kit.py plan     what a run creates and what it costs; makes no call

`--endpoint-url http://127.0.0.1:PORT` runs the same steps against moto (.ci/run does, through
test-on-moto.sh): moto's CloudFormation, EC2 and S3 stand in for AWS, the real failover
bootstrap runs under a local Lambda runtime API, and the traffic is simulated from where the
EIP and the route point (docs/aws-drill.md says what else differs). boto3 and the standard
library only. See docs/aws-drill.md.
"""

import argparse
import datetime
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import probe  # noqa: E402  (scripts/aws-drill/probe.py: the measurement, shared with the client)

try:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
except ImportError:  # `plan` needs no AWS
    boto3 = None
    ClientError = BotoCoreError = NoCredentialsError = type("NoBoto", (Exception,), {})

PREFIX = "cfdrill-"
RUN_TAG = "cloud-failover-drill"
LABEL_KEY = "f5_cloud_failover_label"
DECLARATION_KEY = "cloud-failover/declaration.json"
STATE_DIR = os.environ.get("AWS_DRILL_STATE_DIR") or os.path.join(ROOT, ".aws-drill")  # runs not yet torn down
# template.yaml's FailoverFunctionMemberStateChange rule (single pair): the states it passes on.
# The moto run emulates that rule; test-on-moto.sh checks that this list is still the template's.
MEMBER_STATES = ["stopping", "stopped", "shutting-down", "terminated", "running"]

# List prices in us-east-1 at the time of writing (November 2026), to be checked on the AWS
# pricing pages for your region. docs/aws-drill.md shows the same arithmetic.
PRICES = {
    "t3.nano": 0.0052, "t3.micro": 0.0104, "t3a.nano": 0.0047, "t3a.micro": 0.0094,
    "t4g.nano": 0.0042, "t4g.micro": 0.0084,
    "public_ipv4_hour": 0.005,
    "gp3_gb_month": 0.08,
    "s3_put_per_1000": 0.005,
    "s3_get_per_1000": 0.0004,
}
RUN_HOURS = 0.5  # a run keeps its instances 20-30 minutes; billed per second (60 s minimum)


def log(msg):
    print(f"[{datetime.datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def now_ms():
    return int(time.time() * 1000)


class KitError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Where the kit works: real AWS or moto
# --------------------------------------------------------------------------------------------

class Cloud:
    def __init__(self, region, endpoint_url=None):
        if boto3 is None:
            raise KitError("boto3 is missing: run the kit with .venv-sam/bin/python (make aws-drill does)")
        self.endpoint_url = endpoint_url
        self.moto = endpoint_url is not None
        if self.moto:
            region = region or "us-east-1"
            self.session = boto3.session.Session(
                region_name=region, aws_access_key_id="testing", aws_secret_access_key="testing")
        else:
            self.session = boto3.session.Session(region_name=region)
            region = self.session.region_name
            if not region:
                raise KitError("no region: set AWS_REGION or pass --region")
        self.region = region
        self._clients = {}
        self._lock = threading.Lock()

    def client(self, name):
        with self._lock:
            if name not in self._clients:
                kw = {"endpoint_url": self.endpoint_url} if self.moto else {}
                if name == "s3" and self.moto:
                    from botocore.config import Config
                    kw["config"] = Config(s3={"addressing_style": "path"})
                self._clients[name] = self.session.client(name, **kw)
            return self._clients[name]

    def env(self):
        """The environment for the CLI, SAM and the local function."""
        env = dict(os.environ, AWS_REGION=self.region, AWS_DEFAULT_REGION=self.region)
        if self.moto:
            env.update(AWS_ENDPOINT_URL=self.endpoint_url, AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_EC2_METADATA_DISABLED="true",
                       CLOUD_FAILOVER_EMULATOR="moto")
            env.pop("AWS_PROFILE", None)
            env.pop("AWS_SESSION_TOKEN", None)
        return env


class Run:
    """One run's names; everything it makes starts with cfdrill-<id>."""

    def __init__(self, run_id):
        self.id = run_id
        self.label = f"{PREFIX}{run_id}"
        self.lab_stack = f"{PREFIX}{run_id}-lab"
        self.cf_stack = f"{PREFIX}{run_id}-cf"
        self.state_file = os.path.join(STATE_DIR, f"{run_id}.json")

    def remember(self, cloud, **extra):
        os.makedirs(STATE_DIR, exist_ok=True)
        data = {"runId": self.id, "region": cloud.region, "endpointUrl": cloud.endpoint_url,
                "stacks": [self.cf_stack, self.lab_stack], "started": datetime.datetime.now().isoformat()}
        data.update(extra)
        with open(self.state_file, "w") as f:
            json.dump(data, f, indent=1)

    def forget(self):
        if os.path.exists(self.state_file):
            os.remove(self.state_file)


# --------------------------------------------------------------------------------------------
# CloudFormation
# --------------------------------------------------------------------------------------------

def stack_status(cloud, name):
    try:
        return cloud.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def stack_failure_reasons(cloud, name, limit=8):
    try:
        events = cloud.client("cloudformation").describe_stack_events(StackName=name)["StackEvents"]
    except ClientError:
        return []
    return [f"{e.get('LogicalResourceId')}: {e.get('ResourceStatusReason')}"
            for e in events if e.get("ResourceStatus", "").endswith("FAILED")][:limit]


def wait_stack(cloud, name, timeout=1800, poll=None):
    poll = poll or (0.2 if cloud.moto else 10)
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        s = stack_status(cloud, name)
        if s is None:
            return None
        status = s["StackStatus"]
        if status != last:
            log(f"  {name}: {status}")
            last = status
        if not status.endswith("_IN_PROGRESS"):
            return s
        time.sleep(poll)
    raise KitError(f"{name} still {last} after {timeout} s")


def outputs(stack):
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def resources(cloud, name):
    rs = cloud.client("cloudformation").describe_stack_resources(StackName=name)["StackResources"]
    return {r["LogicalResourceId"]: r.get("PhysicalResourceId") for r in rs if r.get("LogicalResourceId")}


def create_lab(cloud, run, allowed_cidr, instance_type, image_param, azs):
    with open(os.path.join(HERE, "lab.yaml")) as f:
        body = f.read()
    params = {"Label": run.label, "AllowedCidr": allowed_cidr, "InstanceType": instance_type,
              "ImageId": image_param, "AzA": azs[0], "AzB": azs[1]}
    log(f"lab stack {run.lab_stack}: VPC, 3 subnets, units A and B ({instance_type}), EIP, web route table, client")
    cloud.client("cloudformation").create_stack(
        StackName=run.lab_stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()],
        Tags=[{"Key": RUN_TAG, "Value": run.id}], OnFailure="ROLLBACK")  # keeps the events that say why; teardown deletes it
    s = wait_stack(cloud, run.lab_stack)
    if s is None or s["StackStatus"] != "CREATE_COMPLETE":
        reasons = stack_failure_reasons(cloud, run.lab_stack)
        raise KitError(f"lab stack not created ({s and s['StackStatus']}): " + "; ".join(reasons))
    return outputs(s)


# --------------------------------------------------------------------------------------------
# moto: what its CloudFormation leaves out
# --------------------------------------------------------------------------------------------

def moto_realize(cloud, run, out):
    """moto's CloudFormation creates every resource of lab.yaml but ignores some properties:
    the ENIs' fixed IPs and secondary IP, their source/destination check and tags, the
    instances' NetworkInterfaces (they land in the default VPC), the EIP's tags and
    association, the route table's tags. Make those as the template says through moto's EC2
    API (units A and B are launched again on their interfaces); verify_lab then checks the
    result as it checks a real lab."""
    ec2 = cloud.client("ec2")
    res = resources(cloud, run.lab_stack)
    cfn_unit = ec2.describe_instances(InstanceIds=[out["UnitA"]])["Reservations"][0]["Instances"][0]
    new = dict(out)
    for unit in ("A", "B"):
        inst = ec2.run_instances(
            ImageId=cfn_unit["ImageId"], InstanceType=cfn_unit["InstanceType"], MinCount=1, MaxCount=1,
            SubnetId=res[f"Subnet{unit}"], PrivateIpAddress=out[f"Primary{unit}"],
            SecurityGroupIds=[res["ApplianceSecurityGroup"]],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [
                {"Key": "Name", "Value": f"{run.label}-unit-{unit.lower()}"}, {"Key": RUN_TAG, "Value": run.id}]}],
        )["Instances"][0]
        eni = inst["NetworkInterfaces"][0]["NetworkInterfaceId"]
        ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, PrivateIpAddresses=[out[f"Vip{unit}"]])
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni, SourceDestCheck={"Value": False})
        ec2.create_tags(Resources=[eni], Tags=[{"Key": LABEL_KEY, "Value": run.label},
                                               {"Key": "Name", "Value": f"{run.label}-{unit.lower()}-external"}])
        new[f"Unit{unit}"], new[f"Eni{unit}"] = inst["InstanceId"], eni
    ec2.create_tags(Resources=[out["EipAllocationId"]], Tags=[
        {"Key": LABEL_KEY, "Value": run.label},
        {"Key": "f5_cloud_failover_vips", "Value": f"{out['VipA']},{out['VipB']}"}])
    ec2.associate_address(AllocationId=out["EipAllocationId"], NetworkInterfaceId=new["EniA"],
                          PrivateIpAddress=out["VipA"], AllowReassociation=True)
    ec2.create_tags(Resources=[out["WebRouteTableId"]], Tags=[{"Key": LABEL_KEY, "Value": run.label}])
    ec2.replace_route(RouteTableId=out["WebRouteTableId"], DestinationCidrBlock="0.0.0.0/0",
                      NetworkInterfaceId=new["EniA"])
    return new


def verify_lab(cloud, run, out):
    """The lab as the failover needs it (the field report's pitfalls included); [] when so."""
    ec2 = cloud.client("ec2")
    problems = []
    enis = {n["NetworkInterfaceId"]: n for n in ec2.describe_network_interfaces(
        NetworkInterfaceIds=[out["EniA"], out["EniB"]])["NetworkInterfaces"]}
    for unit in ("A", "B"):
        n = enis.get(out[f"Eni{unit}"])
        if n is None:
            problems.append(f"unit {unit}: interface {out[f'Eni{unit}']} missing")
            continue
        ips = {p["PrivateIpAddress"]: p.get("Primary") for p in n["PrivateIpAddresses"]}
        if ips.get(out[f"Primary{unit}"]) is not True:
            problems.append(f"unit {unit}: {out[f'Primary{unit}']} is not the primary IP of {n['NetworkInterfaceId']}")
        if out[f"Vip{unit}"] not in ips or ips[out[f"Vip{unit}"]]:
            problems.append(f"unit {unit}: VIP {out[f'Vip{unit}']} is not a secondary IP of {n['NetworkInterfaceId']}")
        if n.get("SourceDestCheck", True):
            problems.append(f"unit {unit}: source/destination check is on for {n['NetworkInterfaceId']}")
        tags = {t["Key"]: t["Value"] for t in n.get("TagSet", [])}
        if tags.get(LABEL_KEY) != run.label:
            problems.append(f"unit {unit}: {n['NetworkInterfaceId']} lacks {LABEL_KEY}={run.label}")
        if n.get("Attachment", {}).get("InstanceId") != out[f"Unit{unit}"]:
            problems.append(f"unit {unit}: {n['NetworkInterfaceId']} is not attached to {out[f'Unit{unit}']}")
    a = ec2.describe_addresses(AllocationIds=[out["EipAllocationId"]])["Addresses"][0]
    tags = {t["Key"]: t["Value"] for t in a.get("Tags", [])}
    if tags.get(LABEL_KEY) != run.label:
        problems.append(f"EIP {a['PublicIp']} lacks {LABEL_KEY}={run.label}")
    if tags.get("f5_cloud_failover_vips") != f"{out['VipA']},{out['VipB']}":
        problems.append(f"EIP {a['PublicIp']}: f5_cloud_failover_vips is {tags.get('f5_cloud_failover_vips')!r}")
    if a.get("NetworkInterfaceId") != out["EniA"]:
        problems.append(f"EIP {a['PublicIp']} is not on unit A's interface")
    elif not cloud.moto and a.get("PrivateIpAddress") != out["VipA"]:  # moto reports the primary IP
        problems.append(f"EIP {a['PublicIp']} is on {a.get('PrivateIpAddress')}, not the VIP {out['VipA']}")
    rt = ec2.describe_route_tables(RouteTableIds=[out["WebRouteTableId"]])["RouteTables"][0]
    tags = {t["Key"]: t["Value"] for t in rt.get("Tags", [])}
    if tags.get(LABEL_KEY) != run.label:
        problems.append(f"route table {rt['RouteTableId']} lacks {LABEL_KEY}={run.label}")
    default = [r for r in rt["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"]
    if not default or default[0].get("NetworkInterfaceId") != out["EniA"]:
        problems.append(f"route table {rt['RouteTableId']}: 0.0.0.0/0 does not go to unit A's interface")
    return problems


# --------------------------------------------------------------------------------------------
# The failover stack: sam build + deploy on AWS; on moto, the real bootstrap run locally
# --------------------------------------------------------------------------------------------

def lambda_arch(requested=None):
    """(architecture, cargo-lambda compiler) this machine builds: scripts/lambda-arch.sh."""
    cmd = ["bash", os.path.join(ROOT, "scripts", "lambda-arch.sh"), "--fresh"] + ([requested] if requested else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise KitError(r.stderr.strip() or "scripts/lambda-arch.sh failed")
    arch, compiler = r.stdout.split()
    return arch, compiler


def sam_build(sam, arch, compiler, build_dir, config_file):
    log(f"sam build (Architecture={arch}, cargo-lambda compiler {compiler}) into {os.path.relpath(build_dir, ROOT)}")
    env = dict(os.environ, CARGO_LAMBDA_COMPILER=compiler, SAM_CLI_TELEMETRY="0")
    env["PATH"] = os.path.dirname(sam) + os.pathsep + env.get("PATH", "")
    subprocess.run([sam, "build", "--beta-features", "--template-file", os.path.join(ROOT, "template.yaml"),
                    "--build-dir", build_dir, "--config-file", config_file,
                    "--parameter-overrides", f"Architecture={arch}"], cwd=ROOT, env=env, check=True)


def sam_deploy(cloud, run, sam, arch, build_dir, config_file, lab):
    params = {
        "Architecture": arch, "ScopingTagValue": run.label, "VpcId": lab["VpcId"],
        "MemberAInstanceId": lab["UnitA"], "MemberBInstanceId": lab["UnitB"],
        "CreateStatusCheckAlarms": "false", "CreateDashboard": "false", "LogRetentionDays": "1",
    }
    log(f"failover stack {run.cf_stack}: sam deploy (the project's template.yaml against the lab)")
    env = dict(cloud.env(), SAM_CLI_TELEMETRY="0")
    subprocess.run([sam, "deploy", "--template-file", os.path.join(build_dir, "template.yaml"),
                    "--config-file", config_file, "--stack-name", run.cf_stack, "--region", cloud.region,
                    "--s3-bucket", lab["LabBucket"], "--s3-prefix", "sam",
                    "--capabilities", "CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND",
                    "--no-confirm-changeset", "--no-fail-on-empty-changeset",
                    "--tags", f"{RUN_TAG}={run.id}",
                    "--parameter-overrides"] + [f"{k}={v}" for k, v in params.items()],
                   cwd=ROOT, env=env, check=True)
    s = stack_status(cloud, run.cf_stack)
    if not s or s["StackStatus"] not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise KitError(f"failover stack not deployed: {s and s['StackStatus']}: "
                       + "; ".join(stack_failure_reasons(cloud, run.cf_stack)))
    return outputs(s)


class LocalLambda:
    """The Lambda runtime API (next, response, error) on loopback, and the function's real
    bootstrap under it: moto has no Lambda that runs provided.al2023 without Docker."""

    API = "/2018-06-01/runtime"

    def __init__(self, bootstrap, env, function_arn, log_path, timeout_s=60):
        self.bootstrap, self.env, self.arn, self.log_path, self.timeout_s = bootstrap, env, function_arn, log_path, timeout_s
        self.events = queue.Queue()
        self.results = {}
        self.done = {}
        kit = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, code, body=b"", headers=None):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path != f"{kit.API}/invocation/next":
                    return self._reply(404)
                rid, event = kit.events.get()
                self._reply(200, json.dumps(event).encode(), {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": rid,
                    "Lambda-Runtime-Deadline-Ms": str(now_ms() + kit.timeout_s * 1000),
                    "Lambda-Runtime-Invoked-Function-Arn": kit.arn,
                    "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}",
                })

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path[len(kit.API):].strip("/").split("/")
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
                    rid = parts[1]
                    try:
                        payload = json.loads(body or b"null")
                    except ValueError:
                        payload = body.decode("utf-8", "replace")
                    kit.results[rid] = (parts[2] == "response", payload)
                    if rid in kit.done:
                        kit.done[rid].set()
                    return self._reply(202, b"{}")
                if parts[:2] == ["init", "error"]:
                    log(f"  local function: init error {body[:300]!r}")
                    return self._reply(202, b"{}")
                return self._reply(404)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.proc = None

    def start(self):
        name = self.arn.rsplit(":", 1)[-1]
        env = dict(self.env, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{self.server.server_address[1]}",
                   AWS_LAMBDA_FUNCTION_NAME=name, AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128", AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{name}",
                   AWS_LAMBDA_LOG_STREAM_NAME="local", LAMBDA_TASK_ROOT=os.path.dirname(self.bootstrap))
        self.logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.bootstrap], env=env, stdout=self.logf, stderr=subprocess.STDOUT)

    def invoke(self, event):
        rid = str(uuid.uuid4())
        self.done[rid] = threading.Event()
        self.events.put((rid, event))
        if not self.done[rid].wait(self.timeout_s + 5):
            return False, {"errorType": "Timeout", "errorMessage": f"no answer in {self.timeout_s} s"}
        return self.results.pop(rid)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.server.shutdown()
        if self.proc:
            self.logf.close()


class MemberStateRule(threading.Thread):
    """template.yaml's MemberStateChange EventBridge rule, for moto (which sends no EC2 events):
    watches the members' states and delivers the event EventBridge would to the function."""

    def __init__(self, cloud, members, account, deliver, poll=0.2):
        super().__init__(daemon=True)
        self.cloud, self.members, self.account, self.deliver, self.poll = cloud, members, account, deliver, poll
        self.halt = threading.Event()

    def run(self):
        ec2 = self.cloud.client("ec2")
        seen = {}
        while not self.halt.is_set():
            try:
                for r in ec2.describe_instances(InstanceIds=self.members)["Reservations"]:
                    for i in r["Instances"]:
                        iid, state = i["InstanceId"], i["State"]["Name"]
                        if iid in seen and seen[iid] != state and state in MEMBER_STATES:
                            threading.Thread(target=self.deliver, args=(self.event(iid, state),), daemon=True).start()
                        seen[iid] = state
            except Exception as e:  # keep watching; the report shows what happened
                log(f"  event rule: {e}")
            self.halt.wait(self.poll)

    def event(self, iid, state):
        region = self.cloud.region
        return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "EC2 Instance State-change Notification",
                "source": "aws.ec2", "account": self.account,
                "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": region, "resources": [f"arn:aws:ec2:{region}:{self.account}:instance/{iid}"],
                "detail": {"instance-id": iid, "state": state}}


class MotoStack:
    """What the failover stack is on moto: its state bucket (tagged, encrypted, versioned) and
    its failover function (the real bootstrap, LocalLambda) fed by MemberStateRule."""

    def __init__(self, cloud, run, lab, bootstrap, workdir, recorder):
        self.cloud, self.run, self.lab, self.bootstrap, self.workdir, self.recorder = cloud, run, lab, bootstrap, workdir, recorder
        self.bucket = f"{run.cf_stack}-statebucket-moto"
        self.function = self.rule = None

    def deploy(self):
        s3 = self.cloud.client("s3")
        log(f"failover stack {self.run.cf_stack} (moto stand-in): state bucket {self.bucket}, the failover bootstrap on a local runtime API")
        s3.create_bucket(Bucket=self.bucket)
        s3.put_bucket_tagging(Bucket=self.bucket, Tagging={"TagSet": [
            {"Key": LABEL_KEY, "Value": self.run.label}, {"Key": RUN_TAG, "Value": self.run.id}]})
        s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(Bucket=self.bucket, ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
        name = f"{self.run.cf_stack}-failover"
        return {"StateBucketName": self.bucket, "DeclarationUri": f"s3://{self.bucket}/{DECLARATION_KEY}",
                "FailoverFunctionName": name}

    def start(self, stack_out, account):
        name = stack_out["FailoverFunctionName"]
        arn = f"arn:aws:lambda:{self.cloud.region}:{account}:function:{name}"
        env = dict(self.cloud.env(), DECLARATION_URI=stack_out["DeclarationUri"], ALARM_NAME_PREFIX="cloud-failover-")
        self.function = LocalLambda(self.bootstrap, env, arn, os.path.join(self.workdir, "function.log"))
        self.function.start()

        def deliver(event):
            what = f"{event['detail']['instance-id']} {event['detail']['state']}"
            self.recorder.event(f"EventBridge: EC2 state change ({what}) -> failover function")
            ok, payload = self.function.invoke(event)
            if ok:
                summary = payload.get("status") if isinstance(payload, dict) else payload
                msg = payload.get("message") or payload.get("reason") or "" if isinstance(payload, dict) else ""
                self.recorder.event(f"failover function answered {summary}: {msg}"[:160])
            else:
                self.recorder.event(f"failover function failed: {payload.get('errorType')}: {payload.get('errorMessage')}"[:200])

        self.rule = MemberStateRule(self.cloud, [self.lab["UnitA"], self.lab["UnitB"]], account, deliver)
        self.rule.start()

    def stop(self):
        if self.rule:
            self.rule.halt.set()
        if self.function:
            self.function.stop()


# --------------------------------------------------------------------------------------------
# The declaration and the CLI
# --------------------------------------------------------------------------------------------

def declaration(run, lab, state_bucket):
    """CFE's declaration for the lab (the field report's working one: next hops are the
    primary IPs), plus the serverless block's VPC."""
    return {
        "class": "Cloud_Failover",
        "environment": "aws",
        "schemaVersion": "1.0.0",
        "controls": {"class": "Controls", "logLevel": "info"},
        "externalStorage": {
            "scopingName": state_bucket,
            "encryption": {"serverSide": {"enabled": True, "algorithm": "AES256"}},
        },
        "failoverAddresses": {"enabled": True, "scopingTags": {LABEL_KEY: run.label}},
        "failoverRoutes": {
            "enabled": True,
            "routeGroupDefinitions": [{
                "scopingName": lab["WebRouteTableId"],
                "scopingAddressRanges": [{"range": "0.0.0.0/0"}],
                "defaultNextHopAddresses": {"discoveryType": "static", "items": [lab["PrimaryA"], lab["PrimaryB"]]},
            }],
        },
        "serverless": {"vpcId": lab["VpcId"]},
    }


class Cli:
    def __init__(self, path, cloud, declaration_uri=None):
        self.path, self.cloud, self.uri = path, cloud, declaration_uri

    def __call__(self, *args, check=True, quiet=False):
        env = self.cloud.env()
        if self.uri:
            env["DECLARATION_URI"] = self.uri
        r = subprocess.run([self.path, *args], env=env, capture_output=True, text=True)
        if not quiet:
            for line in (r.stdout + r.stderr).rstrip().splitlines():
                print(f"    {line}")
        if check and r.returncode != 0:
            raise KitError(f"cloud-failover {args[0]} exited {r.returncode}")
        return r


# --------------------------------------------------------------------------------------------
# Traffic: the two paths, real or simulated
# --------------------------------------------------------------------------------------------

class Recorder:
    """Events on the kit's clock (ms since the epoch), for the timeline."""

    def __init__(self):
        self.events = []
        self._lock = threading.Lock()

    def event(self, what, at=None):
        at = at or now_ms()
        with self._lock:
            self.events.append((at, what))
        log(f"  ** {what}")


class ControlPlaneWatch(threading.Thread):
    """Every second: the units' states and where the EIP and the route point (what AWS's API
    says, next to what the traffic saw)."""

    def __init__(self, cloud, lab, recorder, poll=1.0):
        super().__init__(daemon=True)
        self.cloud, self.lab, self.recorder, self.poll = cloud, lab, recorder, poll
        self.halt = threading.Event()
        self.unit_of_eni = {lab["EniA"]: "unit A", lab["EniB"]: "unit B"}

    def snapshot(self):
        ec2 = self.cloud.client("ec2")
        snap = {}
        for r in ec2.describe_instances(InstanceIds=[self.lab["UnitA"], self.lab["UnitB"]])["Reservations"]:
            for i in r["Instances"]:
                unit = "unit A" if i["InstanceId"] == self.lab["UnitA"] else "unit B"
                snap[f"{unit} is"] = i["State"]["Name"]
        a = ec2.describe_addresses(AllocationIds=[self.lab["EipAllocationId"]])["Addresses"][0]
        snap["EIP on"] = self.unit_of_eni.get(a.get("NetworkInterfaceId"), a.get("NetworkInterfaceId") or "nothing")
        rt = ec2.describe_route_tables(RouteTableIds=[self.lab["WebRouteTableId"]])["RouteTables"][0]
        route = next((r for r in rt["Routes"] if r.get("DestinationCidrBlock") == "0.0.0.0/0"), {})
        target = self.unit_of_eni.get(route.get("NetworkInterfaceId"), route.get("NetworkInterfaceId") or "none")
        snap["route 0.0.0.0/0 to"] = f"{target} ({route.get('State', '?')})"
        return snap

    def run(self):
        last = {}
        while not self.halt.is_set():
            try:
                snap = self.snapshot()
                for k, v in snap.items():
                    if last.get(k) != v:
                        self.recorder.event(f"API: {k} {v}")
                last = snap
            except Exception as e:
                log(f"  watch: {e}")
            self.halt.wait(self.poll)


class EipPath:
    """Through the Elastic IP from this machine: HTTP every 0.1 s (probe.Prober)."""
    name = "eip"

    def __init__(self, fetch, workdir):
        self.log = os.path.join(workdir, "eip.log")
        self.prober = probe.Prober(fetch, self.log)

    def start(self):
        self.prober.start()

    def rows(self):
        with open(self.log) as f:
            return probe.parse_log(f.read())

    def stop(self):
        self.prober.stop()


class RoutePath:
    """Through the web subnet's route, from the client instance: its probe log in the lab
    bucket (client/route.log), uploaded every 2 s; client/stop ends it."""
    name = "route"

    def __init__(self, cloud, bucket, client_thread=None):
        self.cloud, self.bucket, self.client_thread = cloud, bucket, client_thread
        self._text = ""

    def start(self):
        pass

    def rows(self):
        try:
            body = self.cloud.client("s3").get_object(Bucket=self.bucket, Key="client/route.log")["Body"].read()
            self._text = body.decode("utf-8", "replace")
        except ClientError:
            pass
        return probe.parse_log(self._text)

    def stop(self, wait_s=15):
        """Asks the client to stop; waits (a while) for its last upload, which has every line."""
        self.cloud.client("s3").put_object(Bucket=self.bucket, Key="client/stop", Body=b"stop\n")
        if self.client_thread:  # the simulated client: its thread ends after the last upload
            self.client_thread.join(wait_s)
            self.rows()
            return
        before = len(self.rows())
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and len(self.rows()) <= before:
            time.sleep(2)


def simulated_fetch(cloud, lab, via):
    """moto has no packets: a request 'answers' like the unit the EIP (via='eip') or the route
    (via='route') points at would: 200 naming it while it runs, no answer otherwise."""
    ec2 = cloud.client("ec2")
    unit_of_eni = {lab["EniA"]: ("A", lab["UnitA"]), lab["EniB"]: ("B", lab["UnitB"])}

    def fetch():
        if via == "eip":
            eni = ec2.describe_addresses(AllocationIds=[lab["EipAllocationId"]])["Addresses"][0].get("NetworkInterfaceId")
        else:
            rt = ec2.describe_route_tables(RouteTableIds=[lab["WebRouteTableId"]])["RouteTables"][0]
            eni = next((r.get("NetworkInterfaceId") for r in rt["Routes"]
                        if r.get("DestinationCidrBlock") == "0.0.0.0/0"), None)
        if eni not in unit_of_eni:
            raise probe.NoAnswer(f"{via} points at {eni or 'nothing'}")
        unit, iid = unit_of_eni[eni]
        state = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]["State"]["Name"]
        if state != "running":
            time.sleep(0.05)
            raise probe.NoAnswer(f"timed out (unit {unit} is {state})")
        return 200, f"unit {unit} {iid}"

    return fetch


def start_simulated_client(cloud, lab, workdir):
    """The lab client's loop (probe.run_client) on this machine, for moto: the simulated
    route path, uploading its log to the lab bucket as the real client does."""
    s3 = cloud.client("s3")
    path = os.path.join(workdir, "client-route.log")
    prober = probe.Prober(simulated_fetch(cloud, lab, "route"), path)

    def upload():
        with open(path, "rb") as f:
            s3.put_object(Bucket=lab["LabBucket"], Key="client/route.log", Body=f.read())

    def stopped():
        try:
            s3.head_object(Bucket=lab["LabBucket"], Key="client/stop")
            return True
        except ClientError:
            return False

    t = threading.Thread(target=probe.run_client, args=(prober, upload, stopped), kwargs={"every": 0.5}, daemon=True)
    t.start()
    return t


def public_cidr():
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open("https://checkip.amazonaws.com", timeout=10) as r:
        ip = r.read().decode().strip()
    return f"{ip}/32"


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

def answered(row):
    return row[2] == 200


def who(row):
    """'unit A' from 'unit A i-…'; the error otherwise."""
    if answered(row):
        return " ".join(row[3].split()[:2])
    return f"no answer ({row[3]})"


def gap(rows, stop_ms):
    """As `make drill` measures it: from the last answer before the first unanswered request
    sent after the stop, to the first answer after it (answer times: sent + latency)."""
    first_fail = next((i for i, r in enumerate(rows) if r[0] >= stop_ms and not answered(r)), None)
    if first_fail is None:
        after = next((r for r in rows if r[0] >= stop_ms and answered(r)), None)
        return {"gapMs": 0 if after else None, "unanswered": 0,
                "lastAnswer": None, "nextAnswer": after and {"at": after[0] + after[1], "by": who(after)}}
    before = next((r for r in reversed(rows[:first_fail]) if answered(r)), None)
    after = next((r for r in rows[first_fail:] if answered(r)), None)
    end = rows.index(after) if after else len(rows)
    result = {
        "unanswered": sum(1 for r in rows[first_fail:end] if not answered(r)),
        "lastAnswer": before and {"at": before[0] + before[1], "by": who(before)},
        "nextAnswer": after and {"at": after[0] + after[1], "by": who(after)},
    }
    result["gapMs"] = (after[0] + after[1] - (before[0] + before[1])) if before and after else None
    return result


def runs_of(rows):
    """Consecutive requests with the same outcome, as (first index, last index)."""
    out = []
    for i, r in enumerate(rows):
        if out and who(rows[out[-1][1]]) == who(r):
            out[-1] = (out[-1][0], i)
        else:
            out.append((i, i))
    return out


def timeline(paths, events, stop_ms):
    """Events and runs of like requests, in time order (seconds from the stop)."""
    items = [(at, 0, f"** {what}") for at, what in events]
    for name, rows in paths.items():
        for i, j in runs_of(rows):
            first, last = rows[i], rows[j]
            lat = sorted(r[1] for r in rows[i:j + 1])
            span = f"{(first[0] - stop_ms) / 1000:+9.3f}s .. {(last[0] - stop_ms) / 1000:+9.3f}s"
            what = f"200 from {who(first)}" if answered(first) else who(first)
            items.append((first[0], 1, f"{name:<5} {what:<44} x{j - i + 1:<5} ({span}, median {lat[len(lat) // 2]} ms)"))
    return "\n".join(f"{(at - stop_ms) / 1000:+9.3f}s  {text}" for at, _, text in sorted(items))


def gap_line(name, g):
    if g["gapMs"] is None and g["nextAnswer"] is None:
        return f"{name:<5}: no answer came back before the drill ended ({g['unanswered']} requests unanswered)"
    if g["unanswered"] == 0:
        return f"{name:<5}: no request went unanswered; first answer after the stop from {g['nextAnswer']['by']}"
    return (f"{name:<5}: gap without answers {g['gapMs'] / 1000:.3f} s ({g['unanswered']} requests unanswered; "
            f"last answer from {g['lastAnswer']['by'] if g['lastAnswer'] else '-'}, next from {g['nextAnswer']['by']})")


def svg(paths, events, stop_ms, gaps, title):
    """Response time per request, one lane per path; requests without answer in red on the
    lane's axis, the gap shaded, the stop and the API's changes as vertical lines."""
    w, lane_h, pad, top = 960.0, 170.0, 60.0, 50.0
    marks = [(at, what[len("API: "):]) for at, what in events
             if at >= stop_ms and (what.startswith("API: EIP on") or what.startswith("API: route"))][:8]
    bottom = top + lane_h * len(paths) - 20
    h = bottom + 14 + 13 * len(marks) + 14
    all_rows = [r for rows in paths.values() for r in rows]
    if not all_rows:
        return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>\n"
    t0 = min(r[0] for r in all_rows)
    t1 = max(max(r[0] for r in all_rows), t0 + 1)
    x = lambda t: pad + (w - 2 * pad) * (t - t0) / (t1 - t0)  # noqa: E731
    esc = lambda s: str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")  # noqa: E731
    color = {"unit A": "#2663c9", "unit B": "#2a9d4a"}
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" font-family="sans-serif" font-size="12">',
         '<rect width="100%" height="100%" fill="white"/>',
         f'<text x="{pad}" y="22" font-size="14">{esc(title)}</text>',
         f'<text x="{pad}" y="38" fill="#555">response time per request (0.1 s apart); red: no answer; blue: unit A, green: unit B</text>']
    for lane, (name, rows) in enumerate(paths.items()):
        y0 = top + lane * lane_h + 10
        y1 = y0 + lane_h - 40
        ok = [r[1] for r in rows if answered(r)] or [1]
        ymax = max(max(ok), 1)
        y = lambda ms: y1 - (y1 - y0) * min(ms, ymax) / ymax  # noqa: E731
        g = gaps[name]
        if g["lastAnswer"] and g["nextAnswer"] and g["unanswered"]:
            s.append(f'<rect x="{x(g["lastAnswer"]["at"]):.1f}" y="{y0:.1f}" width="{x(g["nextAnswer"]["at"]) - x(g["lastAnswer"]["at"]):.1f}" height="{y1 - y0:.1f}" fill="#fdd"/>')
        s.append(f'<line x1="{pad}" y1="{y1:.1f}" x2="{w - pad}" y2="{y1:.1f}" stroke="black"/>')
        s.append(f'<line x1="{pad}" y1="{y0:.1f}" x2="{pad}" y2="{y1:.1f}" stroke="black"/>')
        s.append(f'<text x="{pad - 6}" y="{y0 + 4:.1f}" text-anchor="end">{ymax} ms</text>')
        s.append(f'<text x="{pad - 6}" y="{y1 + 4:.1f}" text-anchor="end">0</text>')
        for k in range(6):
            t = t0 + (t1 - t0) * k / 5
            s.append(f'<text x="{x(t):.1f}" y="{y1 + 14:.1f}" text-anchor="middle" fill="#555">{(t - stop_ms) / 1000:+.1f} s</text>')
        label = gap_line(name, g)
        s.append(f'<text x="{pad + 4}" y="{y0 - 2:.1f}" font-weight="bold">{esc(label)}</text>')
        for r in rows:
            if answered(r):
                c = color.get(who(r), "#888")
                s.append(f'<circle cx="{x(r[0]):.1f}" cy="{y(r[1]):.1f}" r="1.6" fill="{c}"/>')
            else:
                s.append(f'<line x1="{x(r[0]):.1f}" y1="{y1:.1f}" x2="{x(r[0]):.1f}" y2="{y1 - 6:.1f}" stroke="#d22"/>')
    s.append(f'<line x1="{x(stop_ms):.1f}" y1="{top:.1f}" x2="{x(stop_ms):.1f}" y2="{bottom:.1f}" stroke="red" stroke-dasharray="4"/>')
    s.append(f'<text x="{x(stop_ms) + 3:.1f}" y="{bottom + 14:.1f}" fill="red">unit A stopped (StopInstances)</text>')
    for row, (at, what) in enumerate(marks, start=1):
        s.append(f'<line x1="{x(at):.1f}" y1="{top:.1f}" x2="{x(at):.1f}" y2="{bottom:.1f}" stroke="#999" stroke-dasharray="2"/>')
        s.append(f'<text x="{x(at) + 3:.1f}" y="{bottom + 14 + 13 * row:.1f}" fill="#666">API: {esc(what)} ({(at - stop_ms) / 1000:+.1f} s)</text>')
    s.append("</svg>")
    return "\n".join(s) + "\n"


# --------------------------------------------------------------------------------------------
# Teardown (run's finally, and cleanup)
# --------------------------------------------------------------------------------------------

def empty_bucket(cloud, bucket):
    s3 = cloud.client("s3")
    try:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            objs = [{"Key": v["Key"], "VersionId": v["VersionId"]}
                    for v in page.get("Versions", []) + page.get("DeleteMarkers", [])]
            for i in range(0, len(objs), 1000):
                s3.delete_objects(Bucket=bucket, Delete={"Objects": objs[i:i + 1000], "Quiet": True})
    except ClientError as e:
        if "NoSuchBucket" not in str(e):
            raise


def delete_bucket(cloud, bucket):
    empty_bucket(cloud, bucket)
    try:
        cloud.client("s3").delete_bucket(Bucket=bucket)
        log(f"  deleted bucket {bucket}")
    except ClientError as e:
        if "NoSuchBucket" not in str(e):
            raise


def delete_stack(cloud, name):
    s = stack_status(cloud, name)
    if s is None or s["StackStatus"] == "DELETE_COMPLETE":
        return
    log(f"deleting stack {name}")
    cloud.client("cloudformation").delete_stack(StackName=name)
    s = wait_stack(cloud, name, timeout=1800)
    if s is not None and s["StackStatus"] != "DELETE_COMPLETE":
        raise KitError(f"{name}: {s['StackStatus']}: " + "; ".join(stack_failure_reasons(cloud, name)))


def teardown(cloud, run_id):
    """Deletes everything run `run_id` made, in an order that cannot trip over what the
    failover changed: the failover stack (no more failovers; its state bucket is retained by
    CloudFormation and deleted here), the run's instances, the EIP taken off whichever unit
    holds it (CloudFormation's association id is stale once the EIP moved), the lab bucket
    emptied, the lab stack, the buckets; then a check that nothing of the run is left.
    Returns the errors ([] when nothing is left)."""
    run = Run(run_id)
    errors = []

    def step(what, fn, *a):
        try:
            fn(*a)
        except Exception as e:  # go on: each step removes what it can
            errors.append(f"{what}: {e}")
            log(f"  ! {what}: {e}")

    remembered = {}
    if os.path.exists(run.state_file):
        with open(run.state_file) as f:
            remembered = json.load(f)
    ec2 = cloud.client("ec2")
    buckets = set()
    for name in (run.cf_stack, run.lab_stack):
        try:
            if stack_status(cloud, name):
                for logical, physical in resources(cloud, name).items():
                    if logical in ("StateBucket", "LabBucket") and physical:
                        buckets.add(physical)
        except ClientError as e:
            errors.append(f"{name}: {e}")
    step(f"delete {run.cf_stack}", delete_stack, cloud, run.cf_stack)

    def instances(states):
        return [i["InstanceId"] for r in ec2.describe_instances(Filters=[
            {"Name": f"tag:{RUN_TAG}", "Values": [run.id]},
            {"Name": "instance-state-name", "Values": states}])["Reservations"] for i in r["Instances"]]

    def terminate():
        doomed = instances(["pending", "running", "stopping", "stopped"])
        if doomed:
            log(f"terminating {' '.join(doomed)}")
            ec2.terminate_instances(InstanceIds=doomed)
            if not cloud.moto:
                ec2.get_waiter("instance_terminated").wait(InstanceIds=doomed, WaiterConfig={"Delay": 10, "MaxAttempts": 60})
    step("terminate the run's instances", terminate)

    def disassociate():
        for a in ec2.describe_addresses(Filters=[{"Name": f"tag:{LABEL_KEY}", "Values": [run.label]}])["Addresses"]:
            if a.get("AssociationId"):
                log(f"disassociating {a['PublicIp']}")
                ec2.disassociate_address(AssociationId=a["AssociationId"])
    step("disassociate the EIP", disassociate)
    for b in sorted(buckets):
        if b.startswith(run.lab_stack):
            step(f"empty {b}", empty_bucket, cloud, b)
    if cloud.moto:
        # moto's CloudFormation drops the stack but deletes few of its EC2 resources (not the
        # interfaces, gateway, route tables, endpoint, EIP, so not the VPC): sweep them.
        try:
            delete_stack(cloud, run.lab_stack)
        except (KitError, ClientError) as e:
            log(f"  moto: its CloudFormation dropped the stack, not its VPC ({type(e).__name__}: "
                f"{str(e)[-60:]}); sweeping the VPC through EC2")
        step("moto: sweep the lab's VPC", moto_sweep, cloud, run, remembered.get("lab", {}))
    else:
        step(f"delete {run.lab_stack}", delete_stack, cloud, run.lab_stack)

    def listed_buckets():
        return [b["Name"] for b in cloud.client("s3").list_buckets().get("Buckets", [])
                if b["Name"].startswith(f"{run.label}-")]
    try:
        buckets.update(listed_buckets())
    except ClientError as e:
        errors.append(f"list buckets: {e}")
    for b in sorted(buckets):
        step(f"delete bucket {b}", delete_bucket, cloud, b)
    if not errors:
        left = leftovers(cloud, run)
        errors.extend(f"left: {x}" for x in left)
        for x in left:
            log(f"  ! still there: {x}")
    if not errors:
        run.forget()
    return errors


def leftovers(cloud, run):
    """What of run `run` still exists: stacks, buckets, instances, VPCs, EIPs."""
    ec2 = cloud.client("ec2")
    left = [f"stack {n} ({s['StackStatus']})" for n in (run.cf_stack, run.lab_stack)
            for s in [stack_status(cloud, n)] if s and s["StackStatus"] != "DELETE_COMPLETE"]
    left += [f"bucket {b['Name']}" for b in cloud.client("s3").list_buckets().get("Buckets", [])
             if b["Name"].startswith(f"{run.label}-")]
    left += [f"instance {i['InstanceId']} ({i['State']['Name']})" for r in ec2.describe_instances(Filters=[
        {"Name": f"tag:{RUN_TAG}", "Values": [run.id]}])["Reservations"] for i in r["Instances"]
        if i["State"]["Name"] != "terminated"]
    left += [f"VPC {v['VpcId']}" for v in ec2.describe_vpcs(Filters=[{"Name": f"tag:{RUN_TAG}", "Values": [run.id]}])["Vpcs"]]
    left += [f"EIP {a['PublicIp']}" for a in ec2.describe_addresses(Filters=[
        {"Name": f"tag:{LABEL_KEY}", "Values": [run.label]}])["Addresses"]]
    return left


def moto_sweep(cloud, run, lab):
    """moto only: delete what its CloudFormation left of the lab, through EC2."""
    ec2 = cloud.client("ec2")
    for v in ec2.describe_vpcs(Filters=[{"Name": f"tag:{RUN_TAG}", "Values": [run.id]}])["Vpcs"]:
        vpc = [{"Name": "vpc-id", "Values": [v["VpcId"]]}]
        ids = [e["VpcEndpointId"] for e in ec2.describe_vpc_endpoints(Filters=vpc)["VpcEndpoints"]]
        if ids:
            ec2.delete_vpc_endpoints(VpcEndpointIds=ids)
        for n in ec2.describe_network_interfaces(Filters=vpc)["NetworkInterfaces"]:
            ec2.delete_network_interface(NetworkInterfaceId=n["NetworkInterfaceId"])
        for g in ec2.describe_internet_gateways(Filters=[{"Name": "attachment.vpc-id", "Values": [v["VpcId"]]}])["InternetGateways"]:
            ec2.detach_internet_gateway(InternetGatewayId=g["InternetGatewayId"], VpcId=v["VpcId"])
            ec2.delete_internet_gateway(InternetGatewayId=g["InternetGatewayId"])
        for t in ec2.describe_route_tables(Filters=vpc)["RouteTables"]:
            if any(a.get("Main") for a in t.get("Associations", [])):
                continue
            for a in t.get("Associations", []):
                ec2.disassociate_route_table(AssociationId=a["RouteTableAssociationId"])
            ec2.delete_route_table(RouteTableId=t["RouteTableId"])
        for sn in ec2.describe_subnets(Filters=vpc)["Subnets"]:
            ec2.delete_subnet(SubnetId=sn["SubnetId"])
        for g in ec2.describe_security_groups(Filters=vpc)["SecurityGroups"]:
            if g["GroupName"] != "default":
                ec2.delete_security_group(GroupId=g["GroupId"])
        ec2.delete_vpc(VpcId=v["VpcId"])
    allocations = {a["AllocationId"] for a in ec2.describe_addresses(Filters=[
        {"Name": f"tag:{LABEL_KEY}", "Values": [run.label]}])["Addresses"]}
    if lab.get("EipAllocationId"):
        allocations.add(lab["EipAllocationId"])
    for alloc in allocations:
        try:
            ec2.release_address(AllocationId=alloc)
        except ClientError as e:
            if "NotFound" not in str(e):
                raise


def find_runs(cloud):
    """Run ids with a stack or bucket left in this region (names cfdrill-<id>-…)."""
    ids = set()
    cfn = cloud.client("cloudformation")
    for page in cfn.get_paginator("describe_stacks").paginate():
        for s in page["Stacks"]:
            tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
            if s["StackName"].startswith(PREFIX) and RUN_TAG in tags and s["StackStatus"] != "DELETE_COMPLETE":
                ids.add(tags[RUN_TAG])
    for b in cloud.client("s3").list_buckets().get("Buckets", []):
        parts = b["Name"].split("-")
        if b["Name"].startswith(PREFIX) and len(parts) > 2 and parts[2] in ("lab", "cf"):
            ids.add(parts[1])
    return sorted(ids)


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def cost_lines(instance_type, hours=RUN_HOURS):
    """One run's cost, item by item (docs/aws-drill.md has the same arithmetic)."""
    p = PRICES
    ec2 = 3 * p[instance_type] * hours
    ip = p["public_ipv4_hour"] * hours
    ebs = 3 * 8 * p["gp3_gb_month"] / 730 * hours
    puts = hours * 3600 / 2  # the client uploads its log every 2 s and looks for client/stop as often
    gets = 15 * 60 * 2  # the kit reads the client's log every 0.5 s while it waits (15 min at most)
    s3 = (puts * p["s3_put_per_1000"] + (puts + gets) * p["s3_get_per_1000"]) / 1000
    alarm = 0.10 * hours / 730
    total = ec2 + ip + ebs + s3 + alarm
    return [
        f"  3 instances: 3 x {hours} h x ${p[instance_type]}/h ({instance_type})       = ${ec2:.4f}",
        f"  1 public IPv4 (the EIP): {hours} h x ${p['public_ipv4_hour']}/h          = ${ip:.4f}",
        f"  3 root volumes: 3 x 8 GB x ${p['gp3_gb_month']}/GB-month x {hours} h / 730 h = ${ebs:.4f}",
        f"  S3: {puts:.0f} PUT x ${p['s3_put_per_1000']}/1000 + {puts + gets:.0f} GET/HEAD x ${p['s3_get_per_1000']}/1000 = ${s3:.4f}",
        f"  1 CloudWatch alarm (the stack's StackFailuresAlarm): $0.10 x {hours} h / 730 h = ${alarm:.5f}",
        "  Lambda, EventBridge, CloudFormation, SNS, SQS, logs, a few MB out: within free tiers or $0.00",
        "  no NAT gateway, no interface endpoint (S3 gateway endpoint: free), no dashboard",
        f"  total: about ${total:.2f} per run (list prices in us-east-1, November 2026: check yours)",
    ]


def cmd_plan(a):
    print("aws-drill run: what it creates (all named cfdrill-<run id>-…, tagged cloud-failover-drill=<run id>)")
    print("  lab stack (scripts/aws-drill/lab.yaml): VPC 10.0.0.0/16; external subnets 10.0.0.0/24 (AZ 1) and")
    print("    10.0.4.0/24 (AZ 2), web subnet 10.0.8.0/24 (AZ 1); units A and B (primary 10.0.0.11 / 10.0.4.11,")
    print("    VIP 10.0.0.101 / 10.0.4.101, source/dest check off); the EIP on A's VIP; the web subnet's")
    print("    0.0.0.0/0 to A's interface; an S3 gateway endpoint; the client; the lab bucket")
    print("  failover stack (template.yaml, sam build + sam deploy): the failover function and its triggers,")
    print("    state bucket, topics, queue, its failure alarm (no status-check alarms, no dashboard)")
    print("then: both paths answer from unit A -> stop unit A -> until both answer from unit B (or --timeout)")
    print("  -> timeline, gap per path, plot -> everything deleted (also on Ctrl-C; `make aws-drill-clean` after a kill -9)")
    print("cost of one run:")
    for line in cost_lines(a.instance_type):
        print(line)
    return 0


def confirm(cloud, a, account):
    if cloud.moto or a.yes:
        return
    print(f"This creates billable resources in account {account}, region {cloud.region}, for about 20-30 minutes:")
    for line in cost_lines(a.instance_type):
        print(line)
    if not sys.stdin.isatty():
        raise KitError("not a terminal: pass --yes (make aws-drill YES=1) to go ahead")
    if input("Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
        raise KitError("not confirmed")


class Interrupted(BaseException):
    pass


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def cmd_preflight(a):
    """Credentials and region, before anything is built or created (make aws-drill runs it first)."""
    cloud = Cloud(a.region, a.endpoint_url)
    account = cloud.client("sts").get_caller_identity()["Account"]
    log(f"account {account}, region {cloud.region}: ready")
    return 0


def cmd_run(a):
    cloud = Cloud(a.region, a.endpoint_url)
    account = cloud.client("sts").get_caller_identity()["Account"]
    if not os.access(a.cli, os.X_OK):
        raise KitError(f"the CLI {a.cli} is missing: cargo build --release -p cloud-failover (make aws-drill does)")
    if cloud.moto and not os.access(a.bootstrap or "", os.X_OK):
        raise KitError("--bootstrap: the failover Lambda's bootstrap (target/debug/failover) is needed on moto")
    confirm(cloud, a, account)
    run = Run(a.run_id or secrets.token_hex(3))
    workdir = tempfile.mkdtemp(prefix=f"{run.label}-")
    log(f"run {run.id} in account {account}, region {cloud.region}{' (moto at ' + cloud.endpoint_url + ')' if cloud.moto else ''}; work files in {workdir}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    recorder = Recorder()
    parts = {}
    status = 1
    try:
        status = experiment(cloud, run, a, account, workdir, recorder, parts)
    except Interrupted as e:
        log(f"interrupted ({e}): tearing down")
    except subprocess.CalledProcessError as e:
        log(f"failed: {' '.join(map(str, e.cmd[:3]))} … exited {e.returncode}: tearing down")
    except (KitError, ClientError) as e:
        log(f"failed: {e}: tearing down")
    except Exception:  # a bug or something unforeseen: say where, and still tear down
        log("failed:\n" + traceback.format_exc().rstrip() + "\ntearing down")
    finally:
        for p in ("eip", "watch", "stack"):
            try:
                if p in parts:
                    parts[p].stop() if p != "watch" else parts[p].halt.set()
            except Exception:
                pass
        if a.keep:
            log(f"--keep: left in place; `make aws-drill-clean` (kit.py cleanup --run-id {run.id}) deletes it")
        else:
            status = finish_teardown(cloud, run) or status
    return status


def finish_teardown(cloud, run):
    presses = []

    def second(signum, frame):
        presses.append(signum)
        if len(presses) == 1:
            log("teardown in progress; interrupt again to abandon it (then: make aws-drill-clean)")
        else:
            raise Interrupted("abandoned")

    signal.signal(signal.SIGINT, second)
    signal.signal(signal.SIGTERM, second)
    try:
        errors = teardown(cloud, run.id)
    except Interrupted:
        log(f"teardown abandoned: `make aws-drill-clean` deletes what run {run.id} left")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if errors:
        log(f"teardown left something: {len(errors)} error(s) above; `make aws-drill-clean` tries again")
        return 1
    log(f"teardown done: nothing of run {run.id} is left")
    return 0


def experiment(cloud, run, a, account, workdir, recorder, parts):
    allowed = a.allowed_cidr or ("203.0.113.1/32" if cloud.moto else public_cidr())
    image = f"/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-{'arm64' if a.instance_type.startswith('t4g') else 'x86_64'}"
    build_dir = os.path.join(ROOT, ".aws-sam", "aws-drill")
    config_file = os.path.join(workdir, "samconfig.toml")
    with open(config_file, "w") as f:  # not the repository's samconfig.toml: nothing of yours applies
        f.write("version = 0.1\n")
    if not cloud.moto:
        arch, compiler = lambda_arch(a.lambda_arch)
        sam_build(a.sam, arch, compiler, build_dir, config_file)  # before anything billable exists
    run.remember(cloud)
    lab = create_lab(cloud, run, allowed, a.instance_type, image, (a.az_a, a.az_b))
    run.remember(cloud, lab=lab)
    if cloud.moto:
        lab = moto_realize(cloud, run, lab)
    problems = verify_lab(cloud, run, lab)
    if problems:
        raise KitError("the lab is not as the failover needs it: " + "; ".join(problems))
    log(f"lab ready: unit A {lab['UnitA']} (active), unit B {lab['UnitB']}, EIP {lab['EipPublicIp']}, web route table {lab['WebRouteTableId']}")

    if cloud.moto:
        stack = MotoStack(cloud, run, lab, a.bootstrap, workdir, recorder)
        parts["stack"] = stack
        stack_out = stack.deploy()
    else:
        stack_out = sam_deploy(cloud, run, a.sam, arch, build_dir, config_file, lab)
    uri = stack_out["DeclarationUri"]
    cli = Cli(a.cli, cloud, uri)
    decl_path = os.path.join(workdir, "declaration.json")
    with open(decl_path, "w") as f:
        json.dump(declaration(run, lab, stack_out["StateBucketName"]), f, indent=2)
    log(f"declaration -> {uri}")
    cli("declare", decl_path, "--to", uri, "--output", "table")
    if cloud.moto:
        stack.start(stack_out, account)

    cloud.client("s3").upload_file(os.path.join(HERE, "probe.py"), lab["LabBucket"], "client/probe.py")
    if not cloud.moto:
        log("waiting for both units' EC2 status checks (the failover never goes to a unit failing them)")
        cloud.client("ec2").get_waiter("instance_status_ok").wait(
            InstanceIds=[lab["UnitA"], lab["UnitB"]], WaiterConfig={"Delay": 10, "MaxAttempts": 60})
    log("cloud-failover doctor")
    r = cli("doctor", "--output", "table", check=False)
    if r.returncode != 0 and not cloud.moto:
        raise KitError("doctor found a FAIL: the drill would not measure the failover")

    # Traffic: through the EIP from here, through the route from the client.
    if cloud.moto:
        eip = EipPath(simulated_fetch(cloud, lab, "eip"), workdir)
        route = RoutePath(cloud, lab["LabBucket"], start_simulated_client(cloud, lab, workdir))
    else:
        eip = EipPath(probe.http_fetch(f"http://{lab['EipPublicIp']}/", probe.TIMEOUT), workdir)
        route = RoutePath(cloud, lab["LabBucket"])
    parts["eip"] = eip
    eip.start()
    watch = ControlPlaneWatch(cloud, lab, recorder, poll=0.5 if cloud.moto else 1.0)
    parts["watch"] = watch
    watch.start()

    log("waiting until both paths answer from unit A")
    wait_for(lambda: all(last_answers(p.rows(), "unit A", 5) for p in (eip, route)),
             a.ready_timeout, "both paths answering from unit A", progress=lambda: progress(eip, route))
    time.sleep(2 if cloud.moto else 5)  # a baseline

    stop_ms = now_ms()
    cloud.client("ec2").stop_instances(InstanceIds=[lab["UnitA"]])
    recorder.event(f"StopInstances {lab['UnitA']} (unit A)", at=stop_ms)
    log(f"waiting until both paths answer from unit B (at most {a.timeout} s)")
    try:
        wait_for(lambda: all(last_answers(p.rows(), "unit B", 3) for p in (eip, route)),
                 a.timeout, "both paths answering from unit B", progress=lambda: progress(eip, route))
        time.sleep(1 if cloud.moto else 5)  # a tail
        complete = True
    except KitError as e:
        log(f"  {e}: reporting what was measured")
        complete = False
    eip.stop()
    route.stop()
    watch.halt.set()

    log("the runs the failover function made (cloud-failover history)")
    hist = cli("history", "--output", "json", "--limit", "5", check=False, quiet=True)
    with open(os.path.join(workdir, "history.json"), "w") as f:
        f.write(hist.stdout)
    for at, what in history_events(hist.stdout):
        recorder.event(what, at=at)
    cli("inspect", "--output", "table", check=False)

    paths = {"eip": eip.rows(), "route": route.rows()}
    gaps = {name: gap(rows, stop_ms) for name, rows in paths.items()}
    events = sorted(recorder.events)
    print()
    print(f"== timeline (seconds from StopInstances; eip: this machine -> {lab['EipPublicIp']}, route: the client -> {lab['ServiceAddress']})")
    print(timeline(paths, events, stop_ms))
    print()
    print("== gap without answers, per path")
    for name in paths:
        print(gap_line(name, gaps[name]))
    print("the field report measured about 130 s per failover with CFE" + (" (moto: simulated traffic, see docs/aws-drill.md)" if cloud.moto else ""))
    title = f"cloud-failover aws-drill {run.id}, {cloud.region}{' (moto, simulated traffic)' if cloud.moto else ''}: unit A stopped"
    with open(a.plot, "w") as f:
        f.write(svg(paths, events, stop_ms, gaps, title))
    with open(a.json, "w") as f:
        json.dump({"runId": run.id, "region": cloud.region, "moto": cloud.moto, "stoppedAt": stop_ms,
                   "lab": lab, "gaps": gaps, "events": events,
                   "paths": {k: [list(r) for r in v] for k, v in paths.items()}}, f, indent=1)
    log(f"wrote {a.plot} and {a.json}")
    return 0 if complete else 1


def last_answers(rows, unit, n):
    tail = rows[-n:]
    return len(tail) == n and all(answered(r) and who(r) == unit for r in tail)


def progress(eip, route):
    parts = []
    for p in (eip, route):
        rows = p.rows()
        parts.append(f"{p.name}: {who(rows[-1]) if rows else 'nothing yet'}")
    return ", ".join(parts)


def wait_for(cond, timeout, what, progress=None, poll=0.5):
    deadline = time.monotonic() + timeout
    next_note = time.monotonic() + 15
    while time.monotonic() < deadline:
        if cond():
            return
        if progress and time.monotonic() >= next_note:
            log(f"  … {progress()}")
            next_note = time.monotonic() + 15
        time.sleep(poll)
    raise KitError(f"no {what} after {timeout} s")


def history_events(text):
    """(ms, what) for the runs `cloud-failover history --output json` lists (their start and
    end, on the function's clock)."""
    try:
        runs = json.loads(text or "[]")
    except ValueError:
        return []
    out = []
    for r in runs if isinstance(runs, list) else []:
        if not isinstance(r, dict) or not r.get("startedAt"):
            continue
        ts = re.sub(r"(\.\d{6})\d+", r"\1", str(r["startedAt"])).replace("Z", "+00:00")
        try:
            at = int(datetime.datetime.fromisoformat(ts).timestamp() * 1000)
        except ValueError:
            continue
        out.append((at, f"history: run {r.get('runId', '')} ({r.get('trigger', '')} -> {r.get('target', '')}) started"))
        if r.get("durationMs") is not None:
            out.append((at + int(r["durationMs"]), f"history: run {r.get('runId', '')} {r.get('taskState', '')}: {r.get('message', '')}"[:160]))
    return out


def remembered_regions():
    """Regions of real runs this machine started and did not see torn down (.aws-drill/)."""
    regions = set()
    if os.path.isdir(STATE_DIR):
        for name in os.listdir(STATE_DIR):
            try:
                with open(os.path.join(STATE_DIR, name)) as f:
                    data = json.load(f)
            except (OSError, ValueError):
                continue
            if not data.get("endpointUrl") and data.get("region"):
                regions.add(data["region"])
    return regions


def cmd_cleanup(a):
    regions = [a.region] if a.region or a.endpoint_url else []
    if not a.endpoint_url and not a.region_only:
        regions += sorted(remembered_regions() - set(regions))
    if not regions:
        raise KitError("no region: set AWS_REGION or pass --region")
    status = 0
    for region in regions:
        cloud = Cloud(region, a.endpoint_url)
        ids = [a.run_id] if a.run_id else find_runs(cloud)
        if not ids:
            log(f"nothing of aws-drill left in {cloud.region}")
            continue
        for run_id in ids:
            log(f"cleaning up run {run_id} in {cloud.region}")
            errors = teardown(cloud, run_id)
            if errors:
                status = 1
                for e in errors:
                    log(f"  ! {e}")
    log("done" if status == 0 else "some of it is still there (see above); run again, or delete it in the console")
    return status


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    common.add_argument("--endpoint-url", help="a moto server on loopback: run the steps there (simulated traffic)")
    sub.add_parser("preflight", parents=[common], help="check credentials and region (no change)")
    r = sub.add_parser("run", parents=[common], help="the whole experiment, then teardown")
    r.add_argument("--cli", default=os.path.join(ROOT, "target", "release", "cloud-failover"))
    r.add_argument("--bootstrap", help="moto only: the failover Lambda's bootstrap (target/debug/failover)")
    r.add_argument("--sam", default=shutil.which("sam") or os.path.join(ROOT, ".venv-sam", "bin", "sam"))
    r.add_argument("--lambda-arch", choices=["x86_64", "arm64"], help="default: what this machine builds (scripts/lambda-arch.sh)")
    r.add_argument("--instance-type", default="t3.nano", choices=sorted(k for k in PRICES if "." in k))
    r.add_argument("--az-a", default="", help="AZ of unit A and the web subnet (default: the region's first)")
    r.add_argument("--az-b", default="", help="AZ of unit B (default: the region's second)")
    r.add_argument("--allowed-cidr", help="who may reach the EIP (default: this machine's public IP, from checkip.amazonaws.com)")
    r.add_argument("--timeout", type=float, default=300, help="seconds to wait for both paths to answer from unit B")
    r.add_argument("--ready-timeout", type=float, default=900, help="seconds to wait for both paths to answer from unit A")
    r.add_argument("--plot", default="aws-drill.svg")
    r.add_argument("--json", default="aws-drill.json")
    r.add_argument("--keep", action="store_true", help="leave everything in place (cleanup deletes it later)")
    r.add_argument("--yes", action="store_true", help="do not ask before creating billable resources")
    r.add_argument("--run-id", help=argparse.SUPPRESS)
    c = sub.add_parser("cleanup", parents=[common], help="delete what interrupted runs left")
    c.add_argument("--run-id", help="only this run (default: every cfdrill-* run in the region)")
    c.add_argument("--region-only", action="store_true",
                   help="only --region / AWS_REGION (default: also the regions of runs .aws-drill/ remembers)")
    pl = sub.add_parser("plan", help="what a run creates and costs (no AWS call)")
    pl.add_argument("--instance-type", default="t3.nano", choices=sorted(k for k in PRICES if "." in k))
    a = p.parse_args(argv)
    try:
        return {"run": cmd_run, "cleanup": cmd_cleanup, "plan": cmd_plan,
                "preflight": cmd_preflight}[a.cmd](a)
    except KitError as e:
        log(f"error: {e}")
        return 1
    except NoCredentialsError:
        log("error: no AWS credentials: configure them (aws configure, AWS_PROFILE or the "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY variables); nothing was created")
        return 1
    except (ClientError, BotoCoreError) as e:
        log(f"error: AWS refused or could not be reached: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
