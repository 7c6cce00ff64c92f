"""Run moto's ThreadedMotoServer on 127.0.0.1 in its own process (so the 200 MB uploads it stores never
compete with the test client for one interpreter), with authorization on.

Before it serves, it creates the tests' admin identity (an IAM user allowed everything, made through
moto's own IAM backend, as no request can be made before an identity exists), installs
tests/support/moto_authorization.py for `--host-role`, and turns authorization on for every request.
Then it prints one JSON line (its port and the admin's access key) and serves until its standard input
closes. Run as `python -m tests.support.moto_process --host-role NAME` from the repository's root.
"""

from __future__ import annotations

import argparse
import json
import sys

ADMIN_USER = "mlflow-aws-tests-admin"
ADMIN_POLICY = json.dumps({"Version": "2012-10-17",
                           "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})


def create_admin() -> tuple[str, str, str]:
    """(user ARN, access key id, secret access key) of the tests' admin, in moto's default account."""
    from moto.core.models import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    user = iam.create_user(region_name="us-east-1", user_name=ADMIN_USER)
    iam.put_user_policy(ADMIN_USER, "everything", ADMIN_POLICY)
    key = iam.create_access_key(ADMIN_USER)
    return user.arn, key.access_key_id, key.secret_access_key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-role", required=True, help="the role the host's processes sign with")
    arguments = parser.parse_args()

    from moto import settings
    from moto.server import ThreadedMotoServer

    from tests.support import moto_authorization

    admin_arn, access_key_id, secret_access_key = create_admin()
    moto_authorization.install(arguments.host_role)
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(json.dumps({"port": server.get_host_and_port()[1], "admin_arn": admin_arn,
                      "admin_access_key_id": access_key_id, "admin_secret_access_key": secret_access_key}),
          flush=True)
    try:
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
