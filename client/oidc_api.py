"""mlflow-oidc-auth's REST API on a stack with `auth: oidc`, from the client's standard library.

Calls authenticate as the stack's admin (`admin_username` with `admin_password`: the host keeps that
account as an internal service account whose access token is the password in SSM), or with an identity
provider token (Bearer), which the plugin requires for issuing access tokens. Every refusal becomes one
`OidcApiError` line naming the cause and the fix.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from naming import Outputs

from .outputs import require

REQUEST_TIMEOUT_SECONDS = 30
USERS = "/api/2.0/mlflow/users"
CURRENT_USER = "/api/2.0/mlflow/users/current"
PERMISSIONS = "/api/2.0/mlflow/permissions"


class OidcApiError(RuntimeError):
    """A refusal, explained: the message names the cause and the fix."""


def quoted(part: str) -> str:
    return urllib.parse.quote(part, safe="")


@dataclass(frozen=True)
class Credentials:
    """Who calls: `authorization` is the header's value; `who` names them in messages."""

    tracking_uri: str
    authorization: str
    who: str
    admin: bool  # the stack's admin from the outputs, rather than a person's own token

    @classmethod
    def stack_admin(cls, outputs: Mapping[str, Any]) -> Credentials:
        values = require(outputs, [Outputs.TRACKING_URI, Outputs.ADMIN_USERNAME, Outputs.ADMIN_PASSWORD])
        username, password = values[Outputs.ADMIN_USERNAME], values[Outputs.ADMIN_PASSWORD]
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        return cls(values[Outputs.TRACKING_URI].rstrip("/"), f"Basic {token}", f"the stack's admin {username!r}",
                   admin=True)

    @classmethod
    def identity_token(cls, outputs: Mapping[str, Any], token: str) -> Credentials:
        tracking_uri = require(outputs, [Outputs.TRACKING_URI])[Outputs.TRACKING_URI]
        return cls(tracking_uri.rstrip("/"), f"Bearer {token}", "your identity provider token", admin=False)


class OidcApi:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    @property
    def tracking_uri(self) -> str:
        return self.credentials.tracking_uri

    def call(self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None,
             subject: str = "") -> Any:
        url = self.tracking_uri + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": self.credentials.authorization, "Content-Type": "application/json",
            "Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
                text = response.read().decode(errors="replace")
        except urllib.error.HTTPError as error:
            raise self._explain(error.code, error.read().decode(errors="replace"), path, subject) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise OidcApiError(f"cannot reach {self.tracking_uri}: {reason}; check that the stack is up "
                               "(mlflow-aws smoke) and that your address is in allowedCidrs") from None
        if not text.strip():
            return {}
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise OidcApiError(f"{path} answered with something other than JSON ({text[:80]!r}): is "
                               f"{self.tracking_uri} an mlflow-aws server with auth oidc?") from None

    def _explain(self, status: int, text: str, path: str, subject: str) -> OidcApiError:
        detail = text.strip()
        try:
            document = json.loads(text)
            if isinstance(document, dict):
                detail = str(document.get("detail") or document.get("message") or detail)
        except json.JSONDecodeError:
            pass
        who = self.credentials.who
        if status == 401 and self.credentials.admin:
            return OidcApiError(f"the server refused {who} (HTTP 401): the outputs are older than the admin "
                                "password, or the host has not finished starting; read them again with "
                                "`pulumi stack output --json --show-secrets`")
        if status == 401:
            return OidcApiError(f"the server refused {who} (HTTP 401): it is expired, or was issued to another "
                                "client or by another issuer than the stack's oidcIssuer; get a new one")
        if status == 403:
            return OidcApiError(f"{who} may not do that (HTTP 403: {detail})")
        if status == 404:
            return OidcApiError(f"{subject or path} was not found (HTTP 404: {detail})")
        if status == 409:
            return OidcApiError(f"{subject or path}: {detail} (HTTP 409)")
        return OidcApiError(f"{path} failed with HTTP {status}: {detail[:300]}")
