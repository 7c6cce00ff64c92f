"""moto authorizing requests the way AWS does for the calls the host makes; installed in the moto process
(tests/support/moto_process.py) before its server starts.

What moto 5.2.6 does by itself, once `settings.INITIAL_NO_AUTH_ACTION_COUNT` requests have passed (it is
infinite unless set; 0 authorizes every request): every request is authenticated (the SigV4 signature,
recomputed with the secret of an IAM user's access key or of an STS assumed-role session) and
authorized by moto's evaluator (moto/iam/access_control.py: IAMPolicy) against the caller's identity
policies, through one method, ActionAuthenticatorMixin._authenticate_and_authorize_action
(moto/core/authorization.py), called from two places:
- S3 (moto/s3/responses.py) for bucket and object requests, with the bucket's or the object's ARN;
- every other service whose responses go through BaseResponse.call_action (SSM, STS, IAM, EC2, RDS,
  CloudWatch, Route 53, ...), with the resource "*" unless the service defines _determine_resource
  (only IAM, STS and SQS do).
Not authorized at all: services that bypass call_action (DynamoDB); resource-based policies; policy
Conditions (moto's evaluator checks them only in role trust policies, and an identity statement with a
Condition evaluates as a Deny); NotResource (ignored, so the statement matches any resource).

Three things in that keep moto from judging the host's policy as AWS would, which this module changes:
1. The action is `<service>:<operation name>` (s3:ListObjectsV2, s3:HeadObject, s3:UploadPart), not the
   IAM action AWS authorizes the operation with (s3:ListBucket, s3:GetObject, s3:PutObject).
   -> The IAM actions come from host_programs/aws_calls.py; an operation not there keeps moto's name.
2. SSM's resource is "*", which no statement scoped to the stack's parameters matches: moto would deny
   every call the host's policy allows.
   -> The parameters the request names (Name, or each of Names) as ARNs, each one authorized.
   S3's DeleteObjects is authorized per key the same way (moto gives it the bucket's ARN).
3. A presigned S3 URL (query-string signature, no Authorization header) raises a KeyError: HTTP 500.
   -> Authorized as the identity that signed it (its access key and session token in the query),
   refused once expired; its signature itself is not recomputed (neither does moto).
And one addition: a call made with the host role's credentials that aws_calls.py does not declare is
refused, so the list stays complete.

Each decision is written to standard error ("moto-authorization: ..."), which MotoServer keeps in its log.
"""

from __future__ import annotations

import datetime
import json
import sys
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlparse

from host_programs import aws_calls

LOG_PREFIX = "moto-authorization:"
# The services whose errors botocore reads as JSON (their protocol): their AccessDenied is JSON too, and
# so are the authentication errors moto raises as XML for every service (the codes AWS's JSON services use).
JSON_PROTOCOLS = ("json", "rest-json")
JSON_AUTHENTICATION_ERRORS = {"InvalidClientTokenIdError": "UnrecognizedClientException",
                              "SignatureDoesNotMatchError": "InvalidSignatureException"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    principal: str
    operation: str
    permissions: tuple[tuple[str, str], ...]  # (action, resource) each required
    reason: str = ""

    def line(self) -> str:
        verdict = "allowed" if self.allowed else "DENIED"
        asked = ", ".join(f"{action} on {resource}" for action, resource in self.permissions)
        return f"{LOG_PREFIX} {verdict} {self.principal} {self.operation}: {asked}" + (
            f" ({self.reason})" if self.reason else "")


def parameter_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:ssm:{region}:{account}:parameter{name if name.startswith('/') else '/' + name}"


def ssm_resources(body: bytes, partition: str, region: str, account: str) -> list[str]:
    """The parameters an SSM request names, as ARNs; none for a request that names none."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return []
    names = request.get("Names") or ([request["Name"]] if "Name" in request else [])
    return [parameter_arn(partition, region, account, name) for name in names]


def deleted_keys(body: bytes) -> list[str]:
    """The keys of an S3 DeleteObjects request's XML body."""
    root = ElementTree.fromstring(body)
    return [element.text or "" for element in root.iter() if element.tag.rsplit("}", 1)[-1] == "Key"]


def required_permissions(service: str, operation: str, resource: str, body: bytes, *, partition: str,
                         region: str, account: str) -> tuple[tuple[str, str], ...]:
    """(IAM action, resource ARN) AWS would check for this request, each one."""
    actions = aws_calls.actions_for(f"{service}:{operation}") or (f"{service}:{operation}",)
    resources = [resource]
    if service == "ssm":
        resources = ssm_resources(body, partition, region, account) or [resource]
    elif service == "s3" and operation == "DeleteObjects":
        bucket = resource.rstrip("/")
        resources = [f"{bucket}/{key}" for key in deleted_keys(body)] or [resource]
    return tuple((action, arn) for action in actions for arn in resources)


def evaluate(policies: list[Any], permissions: tuple[tuple[str, str], ...]) -> str:
    """"" when moto's evaluator allows every permission under `policies` (any Deny wins), else why not."""
    from moto.iam.access_control import IAMPolicy, PermissionResult

    for action, resource in permissions:
        results = [IAMPolicy(policy).is_action_permitted(action, resource) for policy in policies]
        if PermissionResult.DENIED in results:
            return f"explicitly denied: {action} on {resource}"
        if PermissionResult.PERMITTED not in results:
            return f"no identity-based policy allows {action} on {resource}"
    return ""


def presigned_credentials(query: dict[str, list[str]]) -> tuple[str, str, str] | None:
    """(access key id, session token, service) of a presigned URL's query, SigV4 or SigV2; None if unsigned."""
    if "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0].split("/")
        return scope[0], query.get("X-Amz-Security-Token", [""])[0], scope[3]
    if "AWSAccessKeyId" in query:
        return query["AWSAccessKeyId"][0], query.get("x-amz-security-token", [""])[0], "s3"
    return None


def presigned_expired(query: dict[str, list[str]], now: datetime.datetime) -> bool:
    if "X-Amz-Date" in query:
        signed = datetime.datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
        return now > signed + datetime.timedelta(seconds=int(query.get("X-Amz-Expires", ["604800"])[0]))
    if "Expires" in query:
        return now.timestamp() > int(query["Expires"][0])
    return False


def install(host_role: str, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
            ) -> None:
    """Replace moto's authorization with `authorize` below; `host_role`: the role whose sessions may make
    only the calls aws_calls.py declares."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import (
        AccessDeniedError,
        InvalidClientTokenIdError,
        JsonRESTError,
        SignatureDoesNotMatchError,
    )
    from moto.core.utils import get_service_model
    from moto.iam.access_control import CreateAccessKeyFailure, create_access_key
    from moto.s3.exceptions import (
        BucketAccessDeniedError,
        S3AccessDeniedError,
        S3InvalidAccessKeyIdError,
        S3InvalidTokenError,
    )
    from moto.utilities.utils import get_partition

    def json_protocol(response: Any) -> bool:
        return get_service_model(response.boto3_service_name).metadata.get("protocol", "") in JSON_PROTOCOLS

    def refuse(response: Any, service: str, decision: Decision) -> None:
        if service == "s3":
            bucket = response.data.get("BucketName") if isinstance(response.data, dict) else None
            raise BucketAccessDeniedError(bucket=bucket) if bucket else S3AccessDeniedError()
        action = decision.permissions[0][0] if decision.permissions else decision.operation
        if json_protocol(response):
            raise JsonRESTError("AccessDeniedException", f"User: {decision.principal} is not authorized to "
                                f"perform: {action} because {decision.reason}")
        raise AccessDeniedError(user_arn=decision.principal, action=action)

    def authorize(response: Any, iam_request_cls: type, resource: str = "*") -> None:
        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            ActionAuthenticatorMixin.request_count += 1
            return
        if response.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        operation = response._get_action()
        account = response.current_account
        request = None
        if "Authorization" in response.headers:
            path = response.raw_path + (f"?{urlparse(response.uri).query}" if urlparse(response.uri).query else "")
            try:
                request = iam_request_cls(account_id=account, method=response.method, path=path,
                                          data=response.data, body=response.raw_body, headers=response.headers,
                                          action=operation)
                request.check_signature()
            except (InvalidClientTokenIdError, SignatureDoesNotMatchError) as error:
                if json_protocol(response):  # botocore reads these services' errors as JSON only
                    raise JsonRESTError(JSON_AUTHENTICATION_ERRORS[type(error).__name__], error.message) from None
                raise
            access_key, service, region = request._access_key, request._service, request._region
        else:
            query = parse_qs(urlparse(response.uri).query)
            signed = presigned_credentials(query)
            if signed is None:
                decision = Decision(False, "anonymous", operation, (), "the request is not signed")
                log(decision.line())
                refuse(response, "s3", decision)
                return
            key_id, token, service = signed
            region = response.region
            try:
                access_key = create_access_key(account_id=account, partition=get_partition(region),
                                               access_key_id=key_id,
                                               headers={"X-Amz-Security-Token": token} if token else {})
            except CreateAccessKeyFailure as failure:
                invalid = S3InvalidTokenError() if failure.reason == "InvalidToken" else S3InvalidAccessKeyIdError()
                raise invalid from None
            if presigned_expired(query, datetime.datetime.now(datetime.timezone.utc)):
                decision = Decision(False, access_key.arn, f"{service}:{operation}", (), "the URL has expired")
                log(decision.line())
                refuse(response, service, decision)
        permissions = required_permissions(service, operation, resource, response.raw_body or b"",
                                           partition=get_partition(region), region=region, account=account)
        reason = evaluate(access_key.collect_policies(), permissions)
        if not reason and request is not None and request._is_assuming_role_operation(resource):
            reason = "" if request._check_role_trust_relationship(resource) else "the role's trust policy refuses"
        undeclared = aws_calls.actions_for(f"{service}:{operation}") is None
        if not reason and undeclared and f":assumed-role/{host_role}/" in access_key.arn:
            reason = f"{service}:{operation} is not among the host's AWS calls (host_programs/aws_calls.py)"
        decision = Decision(not reason, access_key.arn, f"{service}:{operation}", permissions, reason)
        log(decision.line())
        if reason:
            refuse(response, service, decision)

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize  # type: ignore[method-assign,assignment]
