"""The `auth: oidc` user data booted for real, once: cloud-init runs the document EC2 would receive, the install
step puts the pinned mlflow-oidc-auth into MLflow's venv, the configure step reads the client secret from SSM
(moto) and creates the plugin's database, and the server signs people in through a real provider on this
machine (oidc-provider-mock over HTTPS, which the container reaches over the shared network). A person's
access token then drives MLflow's stock client through nginx.

The test-only additions beside the seed, as in the other boot tests: the moto and metadata stand-ins, and
the provider's throwaway CA in the bundle mlflow.service trusts (a real provider's certificate is public).
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests

import naming
from tests.boot.conftest import require_boot
from tests.support import boot
from tests.support.boot_stack import BootedHost, boot_settings
from tests.support.oidc_loopback import ADMIN_GROUP, USERS_GROUP, create_token, sign_in
from tests.support.oidc_provider import OidcProvider, RegisteredClient
from userdata import layout
from userdata.settings import OidcSettings

pytestmark = pytest.mark.boot

FIRST_BOOT_TIMEOUT_SECONDS = 1200.0  # packages, MLflow and the plugin (cold download caches), schemas
ALICE = "alice@example.com"
ARTIFACT_BYTES = 10 * 1024 * 1024
TRUST_BUNDLE = f"{boot.TEST_DIR}/idp-ca-bundle.pem"


@dataclasses.dataclass
class OidcBoot:
    host: BootedHost
    idp: OidcProvider
    client: RegisteredClient


@pytest.fixture(scope="module")
def booted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcBoot]:
    require_boot()
    with OidcProvider(tmp_path_factory.mktemp("idp")) as idp, boot.boot_workdir("mlflow-aws-boot-oidc-") as workdir:
        idp.set_user(ALICE, groups=[USERS_GROUP])
        plain = boot_settings(tls="off")
        client = idp.register_client([f"{plain.tracking_uri}/callback"])
        # auth oidc over plain HTTP (config.py refuses it for a stack) keeps this boot free of certbot: the
        # provider accepts http://127.0.0.1/callback as real ones accept a localhost redirect URI.
        settings = dataclasses.replace(plain, auth="oidc", oidc=OidcSettings(
            issuer=idp.issuer, client_id=client.client_id, admin_group=ADMIN_GROUP, allowed_groups=(USERS_GROUP,)))
        trust = {"SSL_CERT_FILE": TRUST_BUNDLE, "REQUESTS_CA_BUNDLE": TRUST_BUNDLE, "PIP_CERT": TRUST_BUNDLE}
        bundle = boot.HOST_CA_BUNDLE.read_bytes() + b"\n" + idp.ca_certificate.read_bytes()
        host = BootedHost(settings, workdir, extra_files={TRUST_BUNDLE: bundle},
                          extra_drop_ins={layout.UNIT_NAME: trust})
        try:
            host.prepare()
            name = host.parameter_name(naming.OIDC_CLIENT_SECRET)
            host.stack.ssm_client().put_parameter(Name=name, Value=client.client_secret, Type="SecureString")
            host.stack.parameters[name] = client.client_secret
            host.start()
            host.running().wait_for_health(timeout=FIRST_BOOT_TIMEOUT_SECONDS)
            yield OidcBoot(host, idp, client)
        finally:
            host.close()


def test_the_host_installs_the_plugin_and_configures_its_database(booted):
    journal = booted.host.running().journal("--unit", layout.UNIT_NAME, "--output", "cat")
    assert f"read {len(naming.HOST_PARAMETERS) + len(naming.OIDC_HOST_PARAMETERS)} SSM parameters" in journal
    assert "mlflow-oidc-auth's schema is current" in journal
    assert f"created database {naming.OIDC_AUTH_DATABASE}" in journal


def test_an_api_request_without_credentials_gets_401_json(booted):
    answer = requests.get(f"{booted.host.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1",
                          headers={"Accept": "text/html"}, timeout=30)
    assert answer.status_code == 401 and answer.headers["content-type"].startswith("application/json")


def test_a_person_signs_in_and_their_token_drives_the_stock_client(booted, tmp_path):
    session = sign_in(booted.host.tracking_uri, booted.idp, ALICE)
    token = create_token(session, booted.host.tracking_uri, "boot")
    script = f"""
import json, os, mlflow
from mlflow import MlflowClient
mlflow.set_tracking_uri({booted.host.tracking_uri!r})
payload = os.path.join({str(tmp_path)!r}, "weights.bin")
with open(payload, "wb") as handle:
    handle.write(os.urandom({ARTIFACT_BYTES}))
mlflow.set_experiment("boot-oidc")
with mlflow.start_run() as run:
    mlflow.log_metric("loss", 0.5)
    mlflow.log_artifact(payload)
client = MlflowClient()
client.create_registered_model("boot-oidc-model")
version = client.create_model_version("boot-oidc-model", f"runs:/{{run.info.run_id}}/weights.bin", run.info.run_id)
back = client.download_artifacts(run.info.run_id, "weights.bin", {str(tmp_path / 'back')!r})
print(json.dumps({{"metric": client.get_run(run.info.run_id).data.metrics["loss"], "version": version.version,
                  "same": open(back, "rb").read() == open(payload, "rb").read()}}))
"""
    (tmp_path / "back").mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))},
           "MLFLOW_TRACKING_USERNAME": ALICE, "MLFLOW_TRACKING_PASSWORD": token, "NO_PROXY": "127.0.0.1,localhost"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"metric": 0.5, "version": "1", "same": True}


def test_the_client_secret_is_in_no_journal_log_or_rendered_file(booted):
    host = booted.host
    assert host.root is not None
    texts = {
        "journalctl -b": host.running().journal("--output", "export"),
        "user data": host.user_data,
        **{path: host.root.read(path) for path in ("/var/log/cloud-init.log", "/var/log/cloud-init-output.log")},
    }
    for where, text in texts.items():
        assert booted.client.client_secret not in text, where
