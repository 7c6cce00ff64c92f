"""ServerSecrets: the MLflow admin credentials, the Flask secret key and the AI gateway's key-encryption
passphrase, generated and put in SSM; with auth oidc, the identity provider's client secret too (from config).

The host reads them at boot; the admin password is also a secret stack output for the client.
Letters and digits only, so the password needs no quoting in an env file or a URL.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

import naming
from components.parameters import parameter_versions, put_parameters

ADMIN_PASSWORD_LENGTH = 32
FLASK_SECRET_KEY_LENGTH = 64
# MLflow derives the key that wraps the gateway's stored provider API keys from this passphrase. It
# must never change once secrets are stored (they would no longer decrypt): generated once per stack.
GATEWAY_KEK_PASSPHRASE_LENGTH = 64


@dataclass
class ServerSecretsArgs:
    ssm_prefix: str
    admin_username: str
    # auth oidc: `pulumi config set --secret oidcClientSecret`, read as a secret Output, put as a SecureString.
    oidc_client_secret: pulumi.Input[str] | None = None


class ServerSecrets(pulumi.ComponentResource):
    admin_username: str
    admin_password: pulumi.Output[str]
    # The SSM versions of what the running server re-reads at its next start (the admin's name and password,
    # the OIDC client secret): a rename or a new value changes it, and ServerRestart restarts MLflow.
    restart_revision: pulumi.Output[str]

    def __init__(self, name: str, args: ServerSecretsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlflow-aws:auth:ServerSecrets", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        admin_password = random.RandomPassword(
            f"{name}-admin-password", length=ADMIN_PASSWORD_LENGTH, special=False, opts=child
        )
        flask_secret_key = random.RandomPassword(
            f"{name}-flask-secret-key", length=FLASK_SECRET_KEY_LENGTH, special=False, opts=child
        )
        gateway_kek_passphrase = random.RandomPassword(
            f"{name}-gateway-kek-passphrase", length=GATEWAY_KEK_PASSPHRASE_LENGTH, special=False, opts=child
        )
        values: list[tuple[naming.SsmParameter, pulumi.Input[str]]] = [
            (naming.ADMIN_USERNAME, args.admin_username),
            (naming.ADMIN_PASSWORD, admin_password.result),
            (naming.FLASK_SECRET_KEY, flask_secret_key.result),
            (naming.GATEWAY_KEK_PASSPHRASE, gateway_kek_passphrase.result),
        ]
        if args.oidc_client_secret is not None:
            values.append((naming.OIDC_CLIENT_SECRET, pulumi.Output.secret(args.oidc_client_secret)))
        parameters = put_parameters(name, args.ssm_prefix, values, described_as="MLflow server", parent=self)

        self.admin_username = args.admin_username
        self.admin_password = pulumi.Output.secret(admin_password.result)
        restart_on = [naming.ADMIN_USERNAME, naming.ADMIN_PASSWORD, naming.OIDC_CLIENT_SECRET]
        self.restart_revision = parameter_versions(*(parameters[p] for p in restart_on if p in parameters))
        self.register_outputs({"admin_username": self.admin_username, "admin_password": self.admin_password})
