"""A small IAM policy evaluator: enough of AWS's documented evaluation logic to judge the
policies this template writes, and nothing it does not use (an unknown operator is an error,
never a silent "no match").

- Effect Allow/Deny; an explicit Deny anywhere wins, then an Allow, else the implicit deny.
- Action/NotAction with * and ? (case-insensitive); Resource/NotResource ARNs matched segment by
  segment (the six colon-separated parts), * and ? within a part.
- Condition: every operator in a block must hold, every key of an operator must hold; a
  list of values is an OR. String{Equals,NotEquals,Like,NotLike}, Arn{Equals,Like,NotEquals,
  NotLike} (ArnEquals takes wildcards as ArnLike does), Bool, Null, the IfExists suffix (a
  missing key holds) and the ForAnyValue:/ForAllValues: prefixes. A key missing from the
  request fails a condition, except that a negated operator (...Not...) then holds, as AWS's
  "Condition operators" page says.
- Resource policies: Principal "*", {"AWS": ARN | account | "*"}, {"Service": name}. Within
  one account an identity's Allow or the resource policy's Allow suffices; across accounts
  both are needed; a service principal has only the resource policy.
Source: IAM User Guide, "Policy evaluation logic" and "IAM JSON policy elements: Condition
operators"."""

from __future__ import annotations

import re
from dataclasses import dataclass, field


def _glob(pattern: str, text: str, ignore_case: bool = False) -> bool:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text, re.S | (re.I if ignore_case else 0)) is not None


def arn_matches(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    p, a = pattern.split(":", 5), arn.split(":", 5)
    return len(p) == len(a) == 6 and all(_glob(x, y) for x, y in zip(p, a))


def _list(v) -> list:
    return v if isinstance(v, list) else [v]


def _text(v) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


def _arn(requested: str, pattern: str) -> bool:
    return arn_matches(pattern, requested)


_MATCH = {
    "StringEquals": lambda r, v: r == v,
    "StringLike": lambda r, v: _glob(v, r),
    "StringEqualsIgnoreCase": lambda r, v: r.lower() == v.lower(),
    "ArnEquals": _arn,
    "ArnLike": _arn,
    "Bool": lambda r, v: r.lower() == v.lower(),
}
_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotLike": "StringLike",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
}


def condition_holds(operator: str, key: str, values, context: dict) -> bool:
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":", 1)
    if_exists = operator.endswith("IfExists")
    base = operator[: -len("IfExists")] if if_exists else operator
    values = [_text(v) for v in _list(values)]
    ctx = {k.lower(): v for k, v in context.items()}
    present = key.lower() in ctx
    if base == "Null":
        return (not present) == (values[0].lower() == "true")
    if not present:
        return if_exists or base in _NEGATED or qualifier == "ForAllValues"
    requested = [_text(v) for v in _list(ctx[key.lower()])]
    negated = base in _NEGATED
    match = _MATCH.get(_NEGATED.get(base, base))
    if match is None:
        raise NotImplementedError(f"condition operator {operator}")
    hit = lambda r: any(match(r, v) for v in values)  # noqa: E731
    if qualifier == "ForAllValues":
        result = all(hit(r) for r in requested)
    else:  # ForAnyValue, or a single-valued key
        result = any(hit(r) for r in requested)
    return not result if negated else result


def conditions_hold(block: dict, context: dict) -> bool:
    return all(
        condition_holds(op, key, values, context)
        for op, keys in (block or {}).items()
        for key, values in keys.items()
    )


@dataclass
class Request:
    """One authorization: an action on one resource, with the request's context keys. An API
    call that names several resources (AssociateAddress: the EIP and the interface) is several
    Requests, all of which must be allowed."""

    action: str
    resource: str
    context: dict = field(default_factory=dict)
    principal: dict = field(default_factory=dict)  # {"AWS": arn} or {"Service": name}

    def account(self) -> str | None:
        arn = self.principal.get("AWS")
        return arn.split(":")[4] if arn else None


def _principal_matches(spec, request: Request) -> bool:
    if spec == "*":
        return True
    for kind, values in spec.items():
        for v in _list(values):
            if kind == "Service" and request.principal.get("Service") == v:
                return True
            if kind == "AWS" and "AWS" in request.principal:
                who = request.principal["AWS"]
                if v == "*" or v == who or v in (request.account(), f"arn:aws:iam::{request.account()}:root"):
                    return True
    return False


def statement_applies(s: dict, request: Request, resource_policy: bool = False) -> bool:
    if "Action" in s:
        if not any(_glob(a, request.action, True) for a in _list(s["Action"])):
            return False
    elif any(_glob(a, request.action, True) for a in _list(s["NotAction"])):
        return False
    if "Resource" in s:
        if not any(arn_matches(r, request.resource) for r in _list(s["Resource"])):
            return False
    elif "NotResource" in s:
        if any(arn_matches(r, request.resource) for r in _list(s["NotResource"])):
            return False
    if resource_policy:
        if "Principal" in s and not _principal_matches(s["Principal"], request):
            return False
        if "NotPrincipal" in s:
            raise NotImplementedError("NotPrincipal")
    return conditions_hold(s.get("Condition", {}), request.context)


def decide(documents: list, request: Request, resource_policy: bool = False) -> str:
    """'Deny' (explicit), 'Allow', or 'None' (no statement applies) for one set of policies."""
    verdict = "None"
    for doc in documents:
        for s in _list(doc["Statement"]):
            if statement_applies(s, request, resource_policy):
                if s["Effect"] == "Deny":
                    return "Deny"
                verdict = "Allow"
    return verdict


def allowed(request: Request, identity: list, resource: dict | None, resource_account: str) -> bool:
    """Whether AWS would allow `request`: `identity` is the caller's identity policies (none for
    a service principal), `resource` the target's resource policy if it has one."""
    mine = decide(identity, request) if "AWS" in request.principal else "None"
    theirs = decide([resource], request, True) if resource else "None"
    if "Deny" in (mine, theirs):
        return False
    if "Service" in request.principal:
        return theirs == "Allow"
    if request.account() == resource_account:
        return "Allow" in (mine, theirs)
    return mine == "Allow" and theirs == "Allow"
