"""The policy pack run the way the Pulumi CLI runs it: `python -m pulumi.policy <engine> policy/` in a
child process, talked to over its analyzer gRPC interface on 127.0.0.1.

This is the only test that runs policy/__main__.py, and it does so in a child process it stops in
teardown: PolicyPack() serves until it is killed.
"""

from __future__ import annotations

import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest
from google.protobuf import empty_pb2, struct_pb2  # type: ignore[import-untyped]
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy import rules
from tests.support.servers import stop

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
START_TIMEOUT_S = 60
RPC_TIMEOUT_S = 30
URN = "urn:pulumi:dev::mlflow-aws::{type}::{name}"


def read_port(process: subprocess.Popen[bytes]) -> int:
    """The pack prints its port on stdout once it serves; wait for that line, bounded."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"the policy pack exited with {process.returncode}: {stderr}")
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline().decode().strip()
            if line.isdigit():
                return int(line)
            raise AssertionError(f"the policy pack printed {line!r} instead of its port")
    raise AssertionError(f"the policy pack printed no port within {START_TIMEOUT_S}s")


@pytest.fixture(scope="module")
def analyzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    # Run from an unrelated directory: the pack must import its own modules, not the repository's.
    process = subprocess.Popen(
        [sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", str(POLICY_DIR)],
        cwd=tmp_path_factory.mktemp("pack"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    channel = None
    try:
        port = read_port(process)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        if channel is not None:
            channel.close()
        stop(process)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


def analyze(stub: analyzer_pb2_grpc.AnalyzerStub, resource_type: str, props: dict[str, Any]) -> list[Any]:
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type, properties=struct(props), urn=URN.format(type=resource_type, name="r"), name="r"
    )
    return list(stub.Analyze(request, timeout=RPC_TIMEOUT_S).diagnostics)


def test_pack_serves_every_policy_as_mandatory(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=RPC_TIMEOUT_S)
    assert info.name == "mlflow-aws-guardrails"
    policies = {policy.name: policy for policy in info.policies}
    assert set(policies) == {rule.name for rule in rules.RESOURCE_RULES} | {
        "data-protection", "s3-bucket-complete", "lb-security-groups"}
    assert {policy.enforcementLevel for policy in policies.values()} == {analyzer_pb2.MANDATORY}
    assert "protectData" in policies["data-protection"].configSchema.properties


def test_pack_blocks_a_bad_resource(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    diagnostics = analyze(analyzer, rules.EC2_INSTANCE, {"rootBlockDevice": {"encrypted": True}})
    assert [(d.policyName, d.enforcementLevel) for d in diagnostics] == [
        ("ec2-imdsv2-encrypted-volumes", analyzer_pb2.MANDATORY)
    ]
    assert "httpTokens" in diagnostics[0].message


def test_pack_passes_a_good_resource(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    props = {"metadataOptions": {"httpTokens": "required"}, "rootBlockDevice": {"encrypted": True}}
    assert analyze(analyzer, rules.EC2_INSTANCE, props) == []


def test_pack_neither_blocks_nor_fails_on_values_unknown_in_preview(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unknown_bool = "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7"
    props = {"publiclyAccessible": unknown_bool, "storageEncrypted": unknown_bool}
    assert analyze(analyzer, rules.RDS_INSTANCE, props) == []


def test_pack_reads_protect_data_from_its_config(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    unprotected = {"storageEncrypted": True, "deletionProtection": False, "skipFinalSnapshot": True}
    assert analyze(analyzer, rules.RDS_INSTANCE, unprotected) == []
    config = analyzer_pb2.PolicyConfig(
        enforcementLevel=analyzer_pb2.MANDATORY, properties=struct({"protectData": True})
    )
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={"data-protection": config}))
    try:
        names = {d.policyName for d in analyze(analyzer, rules.RDS_INSTANCE, unprotected)}
        assert names == {"data-protection"}
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={}), timeout=RPC_TIMEOUT_S)


def test_pack_flags_a_bucket_without_companions(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    bucket_urn = URN.format(type=rules.BUCKET, name="artifacts")
    resources = [
        analyzer_pb2.AnalyzerResource(type=rules.BUCKET, urn=bucket_urn, name="artifacts",
                                      properties=struct({"bucket": "artifacts-1a2b"})),
        analyzer_pb2.AnalyzerResource(
            type=rules.PUBLIC_ACCESS_BLOCK, urn=URN.format(type=rules.PUBLIC_ACCESS_BLOCK, name="pab"), name="pab",
            properties=struct({"bucket": "artifacts-1a2b", **{flag: True for flag in rules.PUBLIC_ACCESS_FLAGS}}),
        ),
    ]
    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), timeout=RPC_TIMEOUT_S)
    assert {(d.policyName, d.urn) for d in response.diagnostics} == {("s3-bucket-complete", bucket_urn)}
    assert sorted(d.message.splitlines()[-1] for d in response.diagnostics) == [
        "bucket artifacts-1a2b has no BucketServerSideEncryptionConfiguration attached",
        "bucket artifacts-1a2b has no BucketVersioning attached",
    ]
