"""The user data stays well inside EC2's 16 KiB (DESIGN decision 16): a feature that needs more room puts
its files among the host's files (userdata.host_files, the object the bootstrap fetches), not in the
user data."""

from __future__ import annotations

import base64

import pytest

import userdata
from tools import golden

BUDGET_BYTES = 15 * 1024  # of EC2's 16 KiB: the rest is the margin a hurried change must not eat


@pytest.mark.parametrize("case", golden.CASES, ids=[case.name for case in golden.CASES])
def test_the_gzipped_user_data_stays_under_15_kib(case: golden.Case) -> None:
    size = len(base64.b64decode(userdata.ec2_user_data_base64(golden.settings_of(case))))
    assert size <= BUDGET_BYTES, (
        f"{case.name}: the user data is {size} bytes gzipped, over the {BUDGET_BYTES}-byte budget of EC2's "
        f"{userdata.EC2_USER_DATA_LIMIT}: put the new content among the host's files (userdata.host_files), "
        "which travel in S3 beside the user data (DESIGN decision 16), not in the cloud-config document")
