"""With auth oidc: mlflow-oidc-auth's settings (its environment variables, mlflow_oidc_auth/config.py), as far
as the user data decides them. No secret here: the configure step adds the client secret (SSM), the
session key (the stack's Flask secret key, shared by every host) and the database URI.
"""

from __future__ import annotations

from userdata import layout
from userdata.settings import HostSettings

# The plugin's callback route (mlflow_oidc_auth/routers/auth.py CALLBACK), below the tracking URI.
CALLBACK_PATH = "/callback"
# Secrets the configure step writes beside these, by the plugin's names.
CLIENT_SECRET_VARIABLE = "OIDC_CLIENT_SECRET"
SESSION_KEY_VARIABLE = "SECRET_KEY"
DATABASE_VARIABLE = "OIDC_USERS_DB_URI"


def redirect_uri(s: HostSettings) -> str:
    return f"{s.tracking_uri}{CALLBACK_PATH}"


def plugin_environment(s: HostSettings) -> dict[str, str]:
    """The plugin's settings for this stack, by its environment variable names."""
    oidc = s.oidc
    if oidc is None:
        raise ValueError("plugin_environment needs auth oidc settings")
    return {
        "OIDC_DISCOVERY_URL": oidc.discovery_url,
        # Bearer tokens (MLFLOW_TRACKING_TOKEN) must be this issuer's, issued to this client: without an
        # audience the plugin would take a token the provider issued to any other application.
        "OIDC_ISSUER": oidc.issuer,
        "OIDC_CLIENT_ID": oidc.client_id,
        "OIDC_AUDIENCE": oidc.client_id,
        # Explicit, so no request's Host or X-Forwarded-* header decides where the provider sends the code.
        "OIDC_REDIRECT_URI": redirect_uri(s),
        "OIDC_SCOPE": oidc.scopes,
        "OIDC_GROUPS_ATTRIBUTE": oidc.groups_claim,
        # Comma-separated lists (config.py refuses a group name with a comma).
        "OIDC_GROUP_NAME": ",".join(oidc.allowed_groups),
        "OIDC_ADMIN_GROUP_NAME": oidc.admin_group,
        # The stack's defaultPermission, as basic-auth's default_permission (READ or NO_PERMISSIONS).
        "DEFAULT_MLFLOW_PERMISSION": s.default_permission,
        "SESSION_COOKIE_SECURE": "true" if s.tracking_uri.startswith("https://") else "false",
        # A person opening the UI goes straight to the provider; API routes still answer 401 JSON.
        "AUTOMATIC_LOGIN_REDIRECT": "true",
        # nginx on the same host is the one proxy whose X-Forwarded-* headers the plugin believes.
        "TRUSTED_PROXIES": f"{layout.MLFLOW_BIND_HOST}/32",
    }
