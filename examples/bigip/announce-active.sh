#!/bin/sh
# Announces "this unit is now active" to cloud-failover: one EventBridge PutEvents, signed
# (SigV4, curl --aws-sigv4, curl >= 7.75) with the instance role's temporary credentials from
# IMDSv2. Run it on the unit that has just become active, e.g. from BIG-IP's
# /config/failover/active. The role needs the stack's ApplianceAnnouncePolicy (output
# ApplianceAnnouncePolicyArn); the event's source must be listed in the declaration's
# serverless.applianceSources (default bigip.failover).
#
# Environment (all optional): EVENT_BUS (default: default; the stack's ApplianceEventBusArn
# when it made one), APPLIANCE_SOURCE (bigip.failover; in a fleet, the pair's own, e.g.
# bigip.failover.web1: docs/fleet.md), GROUP (or the first argument; not two different ones: the
# failover group the unit became active for, when the declaration names serverless.groups, e.g.
# traffic-group-2 or BIG-IP's /Common/traffic-group-2, partition dropped: docs/active-active.md),
# IMDS_ENDPOINT and EVENTS_ENDPOINT (overrides, for tests against a
# local endpoint).
# Exit 0 when EventBridge accepted the event; non-zero (with the answer on stderr) otherwise.
#
# No secret is ever on a command line (any local user sees those in ps): the IMDS token, the
# access key, the secret key and the session token reach curl on its standard input, as a
# config file (curl -K -), from shell variables (printf is a shell builtin: no process).
set -eu

# BIG-IP's /Common/traffic-group-1: the name without its partition.
from_env=${GROUP:-}
from_arg=${1:-}
if [ -n "$from_env" ] && [ -n "$from_arg" ] && [ "${from_env##*/}" != "${from_arg##*/}" ]; then
  echo "announce failed: GROUP=$from_env and the argument $from_arg name two groups: give one" >&2; exit 2
fi
named=${from_env:-$from_arg}
group=${named##*/}
if [ -n "$named" ] && [ -z "$group" ]; then
  echo "announce failed: GROUP \"$named\" is not a group name (A-Z a-z 0-9 - _)" >&2; exit 2
fi
case $group in
  *[!A-Za-z0-9_-]*) echo "announce failed: GROUP \"$group\" is not a group name (A-Z a-z 0-9 - _)" >&2; exit 2 ;;
esac
if [ ${#group} -gt 32 ]; then
  echo "announce failed: GROUP \"$group\" is longer than 32 characters" >&2; exit 2
fi

imds=${IMDS_ENDPOINT:-http://169.254.169.254}
# Instance metadata answers at once or not at all: 5 s each, then curl's own error (28).
token=$(curl -sfS --max-time 5 -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 60" "$imds/latest/api/token")
md() {
  printf 'header = "X-aws-ec2-metadata-token: %s"\n' "$token" |
    curl -sfS --max-time 5 -K - "$imds/latest/meta-data/$1"
}

instance=$(md instance-id)
region=$(md placement/region)
roles=$(md iam/security-credentials/ 2>/dev/null) || roles=
role=$(printf '%s\n' "$roles" | head -n 1)
if [ -z "$role" ]; then
  echo "announce failed: the instance has no IAM role (instance metadata lists none): attach the announcing role" >&2
  exit 1
fi
creds=$(md "iam/security-credentials/$role" | tr -d '\n')
field() { printf '%s' "$creds" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"; }
key=$(field AccessKeyId)
secret=$(field SecretAccessKey)
session=$(field Token)

bus=${EVENT_BUS:-default}
source=${APPLIANCE_SOURCE:-bigip.failover}
endpoint=${EVENTS_ENDPOINT:-https://events.$region.amazonaws.com}
if [ -n "$group" ]; then
  detail=$(printf '{\\"instanceId\\":\\"%s\\",\\"group\\":\\"%s\\"}' "$instance" "$group")
else
  detail=$(printf '{\\"instanceId\\":\\"%s\\"}' "$instance")
fi
body=$(printf '{"Entries":[{"EventBusName":"%s","Source":"%s","DetailType":"Appliance Active","Detail":"%s"}]}' \
  "$bus" "$source" "$detail")

answer=$(printf 'user = "%s:%s"\nheader = "X-Amz-Security-Token: %s"\n' "$key" "$secret" "$session" |
  curl -sS --max-time 10 --aws-sigv4 "aws:amz:$region:events" -K - \
    -H "Content-Type: application/x-amz-json-1.1" \
    -H "X-Amz-Target: AWSEvents.PutEvents" \
    --data-binary "$body" "$endpoint/")
case $answer in
  *'"FailedEntryCount":0'*|*'"FailedEntryCount": 0'*) echo "announced $instance as active${group:+ for $group} ($source)" ;;
  *) echo "announce failed: $answer" >&2; exit 1 ;;
esac
