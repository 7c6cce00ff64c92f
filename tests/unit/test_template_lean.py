"""The host gets the templates without their comment lines, and the user data compresses like zlib -9."""

from __future__ import annotations

import dataclasses
import gzip
import zlib

import pytest

import userdata
from userdata import deflate
from userdata.settings import HostSettings
from userdata.template import TEMPLATES, lean

SETTINGS = HostSettings(
    project="mlflow-aws", stack="dev", region="eu-west-1", ssm_prefix="/mlflow-aws/dev",
    artifact_bucket="mlflow-aws-dev-artifacts-0123abcd", host_files_bucket="mlflow-aws-dev-host-files-0123abcd",
    public_hostname="203-0-113-10.sslip.io",
    public_ip="203.0.113.10", mlflow_version="3.17.2", instance_memory_mib=2048, tls="letsencrypt",
)


def test_shell_comment_lines_go_and_the_shebang_and_inline_hashes_stay():
    text = "#!/bin/bash\n# why\n  # indented why\necho '#not a comment' # trailing\n"
    assert lean("x.sh", text) == "#!/bin/bash\necho '#not a comment' # trailing\n"


def test_a_shell_here_document_is_refused_because_its_hash_lines_could_be_data():
    with pytest.raises(ValueError, match="here-document"):
        lean("x.sh", "cat <<'EOF'\n# data\nEOF\n")


@pytest.mark.parametrize("name", ["site.conf", "mlflow.service", "mlflow.timer"])
def test_nginx_and_systemd_comment_lines_go(name):
    assert lean(name, "# why\n[Unit]\n  # more\nA=b\n") == "[Unit]\nA=b\n"


def test_other_kinds_are_left_alone():
    assert lean("notes.txt", "# kept\n") == "# kept\n"


def test_every_template_kind_is_known_to_lean():
    kinds = (".sh", ".conf", ".service", ".timer", ".toml", ".ini")
    unknown = [p.name for p in TEMPLATES.rglob("*") if p.is_file() and not p.name.endswith(kinds)]
    assert unknown == []


def test_no_rendered_file_keeps_a_comment_line_of_its_template():
    for file in userdata.host_files(SETTINGS):
        lines = file.content.splitlines()
        assert not [line for line in lines[1:] if line.lstrip().startswith("# ")], file.path


def test_code_lengths_respect_the_limit_and_form_a_complete_code():
    fibonacci = [1, 1]
    while len(fibonacci) < 30:
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    lengths = deflate.code_lengths(fibonacci, 15)
    assert max(lengths) == 15
    assert sum(2.0 ** -length for length in lengths if length) == 1.0


@pytest.mark.parametrize("frequencies", [[0, 0, 0], [0, 5, 0], [9, 0, 0, 1]])
def test_fewer_than_two_used_symbols_still_get_a_complete_code(frequencies):
    lengths = deflate.code_lengths(frequencies, 15)
    assert sum(2.0 ** -length for length in lengths if length) == 1.0


@pytest.mark.parametrize("tls", ["off", "letsencrypt"])
def test_the_user_data_compresses_within_two_percent_of_zlib_level_9(tls):
    document = userdata.render(dataclasses.replace(SETTINGS, tls=tls)).encode()
    ours = deflate.gzip_bytes(document)
    assert gzip.decompress(ours) == document
    assert len(ours) <= 1.02 * (len(zlib.compress(document, 9)) + 12)
