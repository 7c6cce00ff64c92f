"""Bad config stops `pulumi up` before any resource exists, with one error that lists every problem.

Each problem line names the key, the value given and what is accepted; these tests match that text,
never a generic word. Raw values arrive as the Pulumi CLI hands them to the program (strings, lists
as JSON) or as YAML gives them (native lists, bools, ints); both must mean the same thing.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import settings

import config
import instance_types
from config import CONFIG_KEY_NAMES, ConfigError, StackConfig, from_pulumi, from_stack_files, load_config

REGION = "eu-west-1"


def load(raw: Mapping[str, Any], region: str | None = REGION) -> StackConfig:
    return load_config(raw, project=config.PROJECT, stack="test", region=region)


def problems_for(raw: Mapping[str, Any], region: str | None = REGION) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(raw, region)
    return caught.value.problems


def the_problem(raw: Mapping[str, Any], region: str | None = REGION) -> str:
    """The single problem `raw` has: each case below is wrong in exactly one way."""
    problems = problems_for(raw, region)
    assert len(problems) == 1, problems
    return problems[0]


def assert_names(problem: str, key: str, value: str, *accepted: str) -> None:
    assert problem.startswith(f"{key}: "), problem
    assert value in problem, f"{value!r} not in {problem!r}"
    for text in accepted:
        assert text in problem, f"{text!r} not in {problem!r}"


# --- defaults and value forms -------------------------------------------------------------------


def test_defaults_give_a_valid_config() -> None:
    cfg = load({})
    assert cfg.instance_type.name == "t3.small"
    assert cfg.mlflow_version == "3.17.2"
    assert cfg.allowed_cidrs == ("0.0.0.0/0",)
    assert cfg.ssh_cidrs == () and not cfg.ssh_enabled and cfg.ssh_key_name == ""
    assert cfg.vpc_cidr == "10.20.0.0/16"
    assert (cfg.db_instance_class, cfg.db_engine_version, cfg.db_allocated_storage_gb) == ("db.t4g.micro", "17", 20)
    assert (cfg.db_multi_az, cfg.protect_data, cfg.client_access) == (False, False, False)
    assert (cfg.domain, cfg.hosted_zone_id, cfg.acme_email) == ("", "", "")
    assert cfg.tls == "letsencrypt"
    assert cfg.admin_username == "admin"
    assert cfg.region == REGION
    assert cfg.ssm_prefix == "/mlflow-aws/test"


def test_every_declared_default_is_itself_valid() -> None:
    defaults = {key.name: key.default for key in config.CONFIG_KEYS}
    assert load(defaults) == load({})


PULUMI_STRINGS = {
    "allowedCidrs": '["198.51.100.0/24", "0.0.0.0/0"]',
    "sshCidrs": '["192.0.2.0/28"]',
    "sshKeyName": "ops",
    "dbAllocatedStorageGb": "100",
    "dbEngineVersion": "16",
    "dbMultiAz": "true",
    "protectData": "True",
    "clientAccess": "false",
    "tls": "off",
}
YAML_NATIVES = {
    "allowedCidrs": ["198.51.100.0/24", "0.0.0.0/0"],
    "sshCidrs": ["192.0.2.0/28"],
    "sshKeyName": "ops",
    "dbAllocatedStorageGb": 100,
    "dbEngineVersion": 16,
    "dbMultiAz": True,
    "protectData": True,
    "clientAccess": False,
    "tls": "off",
}


def test_pulumi_strings_and_yaml_natives_mean_the_same_config() -> None:
    from_strings = load(PULUMI_STRINGS)
    assert from_strings == load(YAML_NATIVES)
    assert from_strings.allowed_cidrs == ("198.51.100.0/24", "0.0.0.0/0")
    assert from_strings.ssh_cidrs == ("192.0.2.0/28",)
    assert from_strings.db_allocated_storage_gb == 100
    assert from_strings.db_engine_version == "16"
    assert (from_strings.db_multi_az, from_strings.protect_data, from_strings.client_access) == (True, True, False)
    assert from_strings.tls == "off"


def test_domain_trailing_dot_and_upper_case_are_normalised() -> None:
    assert load({"domain": "MLflow.Example.COM."}).domain == "mlflow.example.com"
    assert load({"domain": "  mlflow.example.com  "}).domain == "mlflow.example.com"


def test_values_are_trimmed() -> None:
    cfg = load({"instanceType": " t3.medium ", "allowedCidrs": '[" 0.0.0.0/0 "]'})
    assert cfg.instance_type.name == "t3.medium"
    assert cfg.allowed_cidrs == ("0.0.0.0/0",)


# --- CIDRs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["allowedCidrs", "sshCidrs"])


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "10.0.0.256/24", "not-a-cidr", "10.0.0/8"])


def test_malformed_cidr_in_a_list_is_named_with_the_accepted_form(key: str, bad: str) -> None:
    raw: dict[str, Any] = {key: [bad]}
    if key == "sshCidrs":
        raw["sshKeyName"] = "ops"
    assert_names(the_problem(raw), key, repr(bad), "is not an IPv4 CIDR like 203.0.113.0/24")


def test_cidr_with_host_bits_set_suggests_the_network() -> None:
    problem = the_problem({"allowedCidrs": '["198.51.100.7/24"]'})
    assert_names(problem, "allowedCidrs", "'198.51.100.7/24'", "did you mean 198.51.100.0/24?")


def test_a_cidr_listed_twice_counts_once() -> None:
    cfg = load({"allowedCidrs": ["198.51.100.0/24", "203.0.113.7/32", "198.51.100.0/24"],
                "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABC"})
    assert cfg.allowed_cidrs == ("198.51.100.0/24", "203.0.113.7/32")


def test_malformed_ssh_cidr_does_not_also_blame_the_key_name() -> None:
    # sshCidrs was given (just wrong): "sshKeyName set without sshCidrs" would send the user astray.
    problems = problems_for({"sshCidrs": ["192.0.2.0/33"], "sshKeyName": "ops"})
    assert [problem.split(":")[0] for problem in problems] == ["sshCidrs"]


@pytest.mark.parametrize("bad", ["10.20.0.0/33", "10.20.0/16", "vpc", "10.20.0.1/16"])


def test_malformed_vpc_cidr(bad: str) -> None:
    assert_names(the_problem({"vpcCidr": bad}), "vpcCidr", repr(bad), "is not an IPv4 CIDR like 203.0.113.0/24")


@pytest.mark.parametrize("cidr", ["10.20.0.0/25", "10.20.0.0/28"])


def test_vpc_too_small_for_the_subnets(cidr: str) -> None:
    prefix = cidr.split("/")[1]
    assert_names(
        the_problem({"vpcCidr": cidr}), "vpcCidr", f"{cidr} is a /{prefix}", "must be /16 to /24",
        "one public and two private subnets",
    )


def test_vpc_larger_than_aws_allows() -> None:
    assert_names(the_problem({"vpcCidr": "10.0.0.0/12"}), "vpcCidr", "10.0.0.0/12 is a /12", "must be /16 to /24")


def test_vpc_outside_the_private_ranges() -> None:
    assert_names(
        the_problem({"vpcCidr": "8.8.0.0/16"}), "vpcCidr", "8.8.0.0/16", "not a private range",
        "10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
    )


@pytest.mark.parametrize("key", ["allowedCidrs", "sshCidrs"])


def test_ipv6_cidr_is_refused_because_the_host_has_only_ipv4(key: str) -> None:
    raw: dict[str, Any] = {key: ["2001:db8::/32"]}
    if key == "sshCidrs":
        raw["sshKeyName"] = "ops"
    assert_names(the_problem(raw), key, "'2001:db8::/32'", "is IPv6", "use IPv4 CIDRs")


def test_empty_allowed_cidrs_would_lock_everyone_out() -> None:
    assert_names(the_problem({"allowedCidrs": "[]"}), "allowedCidrs", "empty", "give at least one CIDR")


def test_ssh_open_to_the_world_is_refused() -> None:
    problem = the_problem({"sshCidrs": ["0.0.0.0/0"], "sshKeyName": "ops"})
    assert_names(problem, "sshCidrs", "0.0.0.0/0", "whole internet", "give your own range, or use SSM")


def test_restricted_allowed_cidrs_need_dns01_when_tls_is_letsencrypt() -> None:
    problem = the_problem({"allowedCidrs": ["198.51.100.0/24"]})
    assert_names(
        problem, "allowedCidrs", "198.51.100.0/24 is restricted", "HTTP-01",
        "set domain and hostedZoneId", "or allow 0.0.0.0/0, or set tls off",
    )


def test_restricted_allowed_cidrs_are_fine_with_dns01_or_without_tls() -> None:
    with_dns01 = load(
        {"allowedCidrs": ["198.51.100.0/24"], "domain": "mlflow.example.com", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
    )
    assert with_dns01.allowed_cidrs == ("198.51.100.0/24",)
    assert load({"allowedCidrs": ["198.51.100.0/24"], "tls": "off"}).tls == "off"


# --- instance, versions, database ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["t3.huge", "x1e.32xlarge", "small", "T3.SMALL"])


def test_unknown_instance_type(bad: str) -> None:
    assert_names(
        the_problem({"instanceType": bad}), "instanceType", repr(bad), "not a known instance type",
        "such as t3.small",
    )


@pytest.mark.parametrize("too_small", ["t3.nano", "t4g.nano", "t3a.nano"])


def test_instance_type_with_less_than_1_gib_is_refused(too_small: str) -> None:
    assert_names(
        the_problem({"instanceType": too_small}), "instanceType", f"{too_small} has 512 MiB",
        "needs at least 1024 MiB", "t3.micro or larger",
    )


@pytest.mark.parametrize("bad", ["3.17", "latest", ">=3.10", "3.17.*", "v3.17.2", "3.17.2,<4"])


def test_mlflow_version_must_be_exact(bad: str) -> None:
    assert_names(
        the_problem({"mlflowVersion": bad}), "mlflowVersion", repr(bad), "not an exact version",
        "one release like 3.17.2",
    )


def test_mlflow_version_older_than_the_security_middleware_is_refused() -> None:
    assert_names(the_problem({"mlflowVersion": "3.4.0"}), "mlflowVersion", "3.4.0", "older than 3.5.0")


@pytest.mark.parametrize("version", ["3.5.0", "3.17.2", "3.18.0rc1", "4.0.0"])


def test_exact_mlflow_versions_are_accepted(version: str) -> None:
    assert load({"mlflowVersion": version}).mlflow_version == version


@pytest.mark.parametrize("storage", ["19", 19, "0", 65537, "70000"])


def test_db_storage_outside_20_to_65536(storage: object) -> None:
    assert_names(
        the_problem({"dbAllocatedStorageGb": storage}), "dbAllocatedStorageGb", f"{int(str(storage))} is outside",
        "20 to 65536",
    )


@pytest.mark.parametrize("storage", ["20", 20, 65536, "65536"])


def test_db_storage_bounds_are_inclusive(storage: object) -> None:
    assert load({"dbAllocatedStorageGb": storage}).db_allocated_storage_gb == int(str(storage))


@pytest.mark.parametrize("bad", ["12", "13", "17.6.1", "postgres17", "latest"])


def test_unsupported_db_engine_version(bad: str) -> None:
    assert_names(
        the_problem({"dbEngineVersion": bad}), "dbEngineVersion", repr(bad), "not a supported PostgreSQL version",
        "accepted majors are 14, 15, 16, 17, 18",
    )


@pytest.mark.parametrize("version", ["14", "17", "17.6", "18"])


def test_supported_db_engine_versions(version: str) -> None:
    assert load({"dbEngineVersion": version}).db_engine_version == version


def test_db_instance_class_must_look_like_an_rds_class() -> None:
    assert_names(
        the_problem({"dbInstanceClass": "t4g.micro"}), "dbInstanceClass", "'t4g.micro'",
        "RDS class like db.t4g.micro",
    )


# --- domain, TLS, DNS, email -------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["https://mlflow.example.com", "http://mlflow.example.com/", "mlflow.example.com/path"])


def test_domain_given_as_a_url(url: str) -> None:
    assert_names(the_problem({"domain": url}), "domain", repr(url), "looks like a URL", "bare hostname")


def test_domain_with_a_port() -> None:
    assert_names(
        the_problem({"domain": "mlflow.example.com:8443"}), "domain", "'mlflow.example.com:8443'", "has a port",
        "bare hostname",
    )


@pytest.mark.parametrize(
    "bad", ["mlflow example.com", "localhost", "mlflow_server.example.com", "-mlflow.example.com", "203.0.113.10"]
)


def test_domain_that_is_not_a_hostname(bad: str) -> None:
    assert_names(
        the_problem({"domain": bad}), "domain", repr(bad), "is not a hostname", "no spaces", "e.g. mlflow.example.com"
    )


@pytest.mark.parametrize("bad", ["on", "LetsEncrypt", "https", "true"])


def test_tls_must_be_one_of_the_modes(bad: str) -> None:
    assert_names(the_problem({"tls": bad}), "tls", repr(bad), "use one of letsencrypt, off")


def test_hosted_zone_without_domain() -> None:
    assert_names(
        the_problem({"hostedZoneId": "Z0123456789ABCDEFGHIJ"}), "hostedZoneId", "'Z0123456789ABCDEFGHIJ'",
        "set without domain", "set domain",
    )


def test_hosted_zone_id_must_look_like_a_route53_id() -> None:
    problem = the_problem({"hostedZoneId": "example.com", "domain": "mlflow.example.com"})
    assert_names(problem, "hostedZoneId", "'example.com'", "Route 53 zone id like Z0123456789ABCDEFGHIJ")


@pytest.mark.parametrize("bad", ["ops@example", "ops example.com", "@example.com", "mailto:ops@example.com"])


def test_acme_email_malformed(bad: str) -> None:
    assert_names(the_problem({"acmeEmail": bad}), "acmeEmail", repr(bad), "email address like ops@example.com")


# --- SSH ------------------------------------------------------------------------------------------


def test_ssh_key_without_ssh_cidrs() -> None:
    assert_names(
        the_problem({"sshKeyName": "ops-key"}), "sshKeyName", "'ops-key'", "set without sshCidrs",
        "set sshCidrs too, or unset it",
    )


def test_ssh_cidrs_without_ssh_key() -> None:
    assert_names(
        the_problem({"sshCidrs": '["192.0.2.0/28"]'}), "sshCidrs", "192.0.2.0/28", "set without sshKeyName",
        "set sshKeyName to an existing EC2 key pair",
    )


def test_ssh_with_both_key_and_cidrs_is_enabled() -> None:
    cfg = load({"sshCidrs": ["192.0.2.0/28"], "sshKeyName": "ops-key"})
    assert cfg.ssh_enabled and cfg.ssh_cidrs == ("192.0.2.0/28",) and cfg.ssh_key_name == "ops-key"


# --- types, unknown keys, region ------------------------------------------------------------------


@pytest.mark.parametrize("key", ["allowedCidrs", "sshCidrs"])


def test_plain_string_where_a_list_belongs_shows_the_path_syntax(key: str) -> None:
    assert_names(
        the_problem({key: "192.0.2.0/28", "sshKeyName": "ops"} if key == "sshCidrs" else {key: "192.0.2.0/28"}),
        key, "plain string '192.0.2.0/28'", "expected a list of strings", f"pulumi config set --path '{key}[0]'",
    )


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (True, "got bool True"),
        (5, "got int 5"),
        ({"cidr": "192.0.2.0/28"}, "got dict {'cidr': '192.0.2.0/28'}"),
        ('{"cidr": "192.0.2.0/28"}', "got dict {'cidr': '192.0.2.0/28'}"),  # JSON, but not a list
        ("[1, 2]", "got list [1, 2]"),
    ],
)


def test_wrong_type_for_a_list(bad: object, shown: str) -> None:
    assert_names(
        the_problem({"allowedCidrs": bad}), "allowedCidrs", shown, "expected a list of strings",
        "pulumi config set --path 'allowedCidrs[0]'",
    )


@pytest.mark.parametrize("key", ["dbMultiAz", "protectData", "clientAccess"])


@pytest.mark.parametrize("bad", ["yes", "1", 1, ["true"]])


def test_wrong_type_for_a_bool(key: str, bad: object) -> None:
    problem = the_problem({key: bad})
    assert_names(problem, key, f"got {bad!r}", "expected true or false", f"pulumi config set {key} true")


@pytest.mark.parametrize("key", ["instanceType", "domain", "tls", "mlflowVersion"])


@pytest.mark.parametrize("bad", [["t3.small"], {"name": "x"}, True])


def test_wrong_type_for_a_string(key: str, bad: object) -> None:
    assert_names(the_problem({key: bad}), key, repr(bad), "expected a string")


@pytest.mark.parametrize("bad", ["twenty", "20.5", 20.5, True, "-20"])


def test_wrong_type_for_a_whole_number(bad: object) -> None:
    problem = the_problem({"dbAllocatedStorageGb": bad})
    assert_names(problem, "dbAllocatedStorageGb", repr(bad), "expected a whole number")


def test_unknown_key_lists_the_accepted_keys() -> None:
    problem = the_problem({"instanceTyp": "t3.small"})
    accepted = f"accepted keys are {', '.join(CONFIG_KEY_NAMES)}"
    assert_names(problem, "instanceTyp", "'t3.small'", "unknown key", accepted)


def test_region_not_set() -> None:
    assert_names(the_problem({}, region=None), "aws:region", "not set", "pulumi config set aws:region eu-west-1")


@pytest.mark.parametrize("bad", ["Europe", "eu-west", "EU-WEST-1"])


def test_region_malformed(bad: str) -> None:
    assert_names(the_problem({}, region=bad), "aws:region", repr(bad), "AWS region name like eu-west-1")


def test_admin_username_rules() -> None:
    assert_names(
        the_problem({"adminUsername": "1x"}), "adminUsername", "'1x'", "3 to 64 characters", "start with a letter"
    )


# --- all problems at once ----------------------------------------------------------------------------


def test_every_problem_is_reported_in_one_error() -> None:
    raw = {
        "instanceType": "t3.nano",
        "mlflowVersion": "latest",
        "allowedCidrs": "10.0.0.0/8",
        "vpcCidr": "10.0.0.0/25",
        "dbAllocatedStorageGb": 10,
        "tls": "on",
        "domain": "https://mlflow.example.com",
        "protectData": "yes",
    }
    with pytest.raises(ConfigError) as caught:
        load(raw)
    error = caught.value
    keys = [problem.split(":")[0] for problem in error.problems]
    assert sorted(keys) == sorted(raw)
    message = str(error)
    assert "stack 'test' has 8 configuration problem(s); nothing was created:" in message
    for problem in error.problems:
        assert f"\n  - {problem}" in message


# --- reading the config where Pulumi keeps it -------------------------------------------------------


def write_stack_file(directory: Path, stack: str, body: str) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(textwrap.dedent(body))


def test_from_stack_files_reads_yaml_natives_and_the_region(tmp_path: Path) -> None:
    write_stack_file(
        tmp_path,
        "dev",
        """\
        config:
          aws:region: us-east-2
          aws:profile: team
          mlflow-aws:allowedCidrs:
            - 198.51.100.0/24
            - 0.0.0.0/0
          mlflow-aws:protectData: true
          mlflow-aws:dbAllocatedStorageGb: 50
          mlflow-aws:tls: off
          mlflow-aws:domain: MLflow.Example.com.
        """,
    )
    cfg = from_stack_files(str(tmp_path), "dev")
    assert (cfg.project, cfg.stack, cfg.region) == ("mlflow-aws", "dev", "us-east-2")
    assert cfg.allowed_cidrs == ("198.51.100.0/24", "0.0.0.0/0")
    assert cfg.protect_data is True
    assert cfg.db_allocated_storage_gb == 50
    # Unquoted `off` is a string to the Pulumi CLI (YAML 1.2), not YAML 1.1's false.
    assert cfg.tls == "off"
    assert cfg.domain == "mlflow.example.com"


def test_from_stack_files_reports_every_problem_in_the_file(tmp_path: Path) -> None:
    write_stack_file(
        tmp_path,
        "prod",
        """\
        config:
          aws:region: eu-west-1
          mlflow-aws:instanceType: t3.nano
          mlflow-aws:sshKeyName: ops
          mlflow-aws:colour: blue
        """,
    )
    with pytest.raises(ConfigError) as caught:
        from_stack_files(str(tmp_path), "prod")
    keys = sorted(problem.split(":")[0] for problem in caught.value.problems)
    assert keys == ["colour", "instanceType", "sshKeyName"]
    assert "stack 'prod'" in str(caught.value)


def test_from_stack_files_without_the_file_says_how_to_create_the_stack(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        from_stack_files(str(tmp_path), "qa")
    assert caught.value.problems == ["Pulumi.qa.yaml: no such file; create the stack with: pulumi stack init qa"]


def test_from_stack_files_refuses_a_secret_value(tmp_path: Path) -> None:
    write_stack_file(
        tmp_path,
        "dev",
        """\
        config:
          aws:region: eu-west-1
          mlflow-aws:acmeEmail:
            secure: AAABAKx0c2VjcmV0
        """,
    )
    with pytest.raises(ConfigError) as caught:
        from_stack_files(str(tmp_path), "dev")
    assert caught.value.problems == [
        "acmeEmail: is a secret in Pulumi.dev.yaml, but only oidcClientSecret is one; set it in clear text"]


@pytest.fixture
def pulumi_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pulumi's ambient project, stack and config, as a running program sees them; restored after."""
    monkeypatch.setattr(settings.SETTINGS, "project", config.PROJECT)
    monkeypatch.setattr(settings.SETTINGS, "stack", "dev")
    monkeypatch.delenv("PULUMI_CONFIG", raising=False)
    try:
        yield
    finally:
        pulumi.runtime.set_all_config({}, secret_keys=[])


def test_from_pulumi_reads_cli_strings(pulumi_stack: None) -> None:
    pulumi.runtime.set_all_config(
        {
            "aws:region": "eu-central-1",
            "mlflow-aws:allowedCidrs": '["0.0.0.0/0"]',
            "mlflow-aws:protectData": "true",
            "mlflow-aws:instanceType": "t3.medium",
        }
    )
    cfg = from_pulumi()
    assert (cfg.project, cfg.stack, cfg.region) == ("mlflow-aws", "dev", "eu-central-1")
    assert cfg.protect_data is True and cfg.instance_type.name == "t3.medium"


def test_from_pulumi_reports_a_misspelt_key_instead_of_ignoring_it(pulumi_stack: None) -> None:
    pulumi.runtime.set_all_config(
        {"aws:region": "eu-west-1", "mlflow-aws:protectdata": "true", "other-project:anything": "x"}
    )
    with pytest.raises(ConfigError) as caught:
        from_pulumi()
    assert len(caught.value.problems) == 1
    assert_names(caught.value.problems[0], "protectdata", "'true'", "unknown key", "protectData")


# --- team features: the job runner, the default permission, extra origins ------------------------


@pytest.mark.parametrize(("too_small", "smallest"), [("t3.small", "t3.medium"), ("t4g.micro", "t4g.medium"),
                                                     ("m7g.large", None)])


def test_job_runner_on_an_instance_too_small_names_both_keys_and_the_smallest_type(
        too_small: str, smallest: str | None) -> None:
    if smallest is None:  # m7g.large has 8 GiB: it fits
        assert load({"jobRunner": "true", "instanceType": too_small}).job_runner
        return
    problem = the_problem({"jobRunner": "true", "instanceType": too_small})
    assert_names(problem, "jobRunner", too_small, "instanceType", f"pulumi config set instanceType {smallest}",
                 f"{config.JOB_RUNNER_MIN_MEMORY_MIB} MiB", "or set jobRunner false")


def test_job_runner_fits_the_smallest_type_the_error_names() -> None:
    smallest = instance_types.smallest_with(config.JOB_RUNNER_MIN_MEMORY_MIB)
    assert smallest.name == "t3.medium"
    assert load({"jobRunner": True, "instanceType": smallest.name}).job_runner


def test_job_runner_and_private_default_are_off_by_default_and_reach_the_host_settings() -> None:
    import host_settings

    cfg = load({})
    assert (cfg.job_runner, cfg.default_permission, cfg.extra_allowed_origins) == (False, "READ", ())
    cfg = load({"jobRunner": "true", "instanceType": "t3.medium", "defaultPermission": "NO_PERMISSIONS",
                "extraAllowedOrigins": '["https://MLflow.corp.example/", "http://10.0.0.5:8080"]'})
    settings_ = host_settings.host_settings_for(cfg, artifact_bucket="b", host_files_bucket="h",
                                                public_ip="203.0.113.7")
    assert settings_.job_runner and settings_.default_permission == "NO_PERMISSIONS"
    assert settings_.extra_allowed_origins == ("https://mlflow.corp.example", "http://10.0.0.5:8080")


@pytest.mark.parametrize("bad", ["EDIT", "MANAGE", "read", "private"])


def test_default_permission_is_read_or_no_permissions(bad: str) -> None:
    assert_names(the_problem({"defaultPermission": bad}), "defaultPermission", bad, "READ", "NO_PERMISSIONS")


@pytest.mark.parametrize("bad", ["mlflow.corp.example", "https://mlflow.corp.example/ui", "ftp://host",
                                 "https://host:99999", "https://*.corp.example", "https://host name"])


def test_extra_allowed_origins_must_be_origins(bad: str) -> None:
    assert_names(the_problem({"extraAllowedOrigins": [bad]}), "extraAllowedOrigins", bad,
                 "scheme://host[:port]", "https://mlflow.corp.example:8443")


# --- monitoring ----------------------------------------------------------------------------------


def test_monitoring_is_on_and_alerts_off_by_default() -> None:
    cfg = load({})
    assert cfg.monitoring and cfg.alert_email == "" and cfg.log_retention_days == 30


def test_alert_email_must_be_an_address() -> None:
    assert_names(the_problem({"alertEmail": "oncall"}), "alertEmail", "'oncall'", "oncall@example.com")


def test_alert_email_without_monitoring_names_both_ways_out() -> None:
    problem = the_problem({"alertEmail": "oncall@example.com", "monitoring": "false"})
    assert_names(problem, "alertEmail", "'oncall@example.com'", "set monitoring true", "unset alertEmail")


@pytest.mark.parametrize(("given", "nearest"), [(10, 7), (0, 1), (100, 90), (4000, 3653)])


def test_log_retention_must_be_a_period_cloudwatch_keeps_logs_for(given: int, nearest: int) -> None:
    assert_names(the_problem({"logRetentionDays": given}), "logRetentionDays", str(given),
                 "30, 60, 90", f"pulumi config set logRetentionDays {nearest}")


def test_every_period_cloudwatch_offers_is_accepted() -> None:
    assert all(load({"logRetentionDays": str(days)}).log_retention_days == days for days in config.LOG_RETENTION_DAYS)


# --- changing a running stack: the host's health wait and the recorded image ------------------------


def test_the_wait_for_a_new_host_is_20_minutes_by_default_and_the_image_recorded() -> None:
    cfg = load({})
    assert cfg.host_ready_timeout_minutes == 20
    assert cfg.image_refresh == ""
    assert load({"hostReadyTimeoutMinutes": "45", "imageRefresh": "2027-01-15"}).host_ready_timeout_minutes == 45


@pytest.mark.parametrize("bad", ["4", "181", "0"])


def test_the_wait_for_a_new_host_is_bounded(bad: str) -> None:
    assert_names(the_problem({"hostReadyTimeoutMinutes": bad}), "hostReadyTimeoutMinutes", bad, "5 to 180",
                 "pulumi config set hostReadyTimeoutMinutes 20")


@pytest.mark.parametrize("bad", ["next week", "2027/01/15", "x" * 65])


def test_image_refresh_is_a_plain_label(bad: str) -> None:
    assert_names(the_problem({"imageRefresh": bad}), "imageRefresh", bad[:20],
                 "letters, digits", "pulumi config set imageRefresh 2027-01-15")


# --- auth: basic or oidc ----------------------------------------------------------------------------

OIDC = {
    "auth": "oidc",
    "oidcIssuer": "https://login.example.com/tenant/v2.0",
    "oidcClientId": "0oa1b2c3d4",
    "oidcClientSecret": "(secret)",
    "oidcAdminGroup": "mlflow-admins",
    "oidcAllowedGroups": ["mlflow-users", "data-science"],
}


def load_oidc(**changes: object) -> StackConfig:
    return load_config({**OIDC, **changes}, project=config.PROJECT, stack="test", region=REGION,
                       secret_keys=["oidcClientSecret"])


def oidc_problem(**changes: object) -> str:
    with pytest.raises(ConfigError) as caught:
        load_oidc(**changes)
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def test_auth_is_basic_by_default_and_ignores_the_oidc_keys() -> None:
    cfg = load({"oidcIssuer": "https://login.example.com", "oidcAdminGroup": "x"})
    assert cfg.auth == "basic" and cfg.oidc is None


def test_auth_oidc_reaches_the_host_settings_without_the_client_secret() -> None:
    import host_settings

    cfg = load_oidc()
    assert cfg.auth == "oidc" and cfg.oidc is not None
    assert (cfg.oidc.issuer, cfg.oidc.client_id, cfg.oidc.admin_group) == (
        "https://login.example.com/tenant/v2.0", "0oa1b2c3d4", "mlflow-admins")
    assert cfg.oidc.allowed_groups == ("mlflow-users", "data-science")
    assert (cfg.oidc.groups_claim, cfg.oidc.scopes) == ("groups", "openid email profile")
    assert cfg.oidc.discovery_url == "https://login.example.com/tenant/v2.0/.well-known/openid-configuration"
    host = host_settings.host_settings_for(cfg, artifact_bucket="b", host_files_bucket="h", public_ip="203.0.113.7")
    assert host.auth == "oidc" and host.oidc == cfg.oidc
    assert "(secret)" not in repr(host)


@pytest.mark.parametrize("bad", ["ldap", "OIDC", "saml", ""])


def test_auth_is_basic_or_oidc(bad: str) -> None:
    assert_names(the_problem({"auth": bad}), "auth", repr(bad), "basic", "oidc")


@pytest.mark.parametrize(("key", "example"), [("oidcIssuer", "pulumi config set oidcIssuer https://"),
                                              ("oidcClientId", "pulumi config set oidcClientId"),
                                              ("oidcAdminGroup", "pulumi config set oidcAdminGroup")])


def test_auth_oidc_requires_the_issuer_client_id_and_admin_group(key: str, example: str) -> None:
    problem = oidc_problem(**{key: ""})
    assert problem.startswith(f"{key}: required with auth oidc"), problem
    assert example in problem


def test_auth_oidc_requires_the_client_secret() -> None:
    problem = oidc_problem(oidcClientSecret="")
    assert problem.startswith("oidcClientSecret: required with auth oidc, as a secret"), problem
    assert "pulumi config set --secret oidcClientSecret" in problem


def test_a_client_secret_stored_in_clear_text_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config({**OIDC, "oidcClientSecret": "s3cr3t-in-clear"}, project=config.PROJECT, stack="test",
                    region=REGION, secret_keys=[])
    problems = caught.value.problems
    assert problems[0].startswith("oidcClientSecret: set in clear text"), problems
    assert "pulumi config set --secret oidcClientSecret" in problems[0]
    assert all("s3cr3t-in-clear" not in problem for problem in problems)


def test_auth_oidc_requires_an_allowed_group() -> None:
    assert_names(oidc_problem(oidcAllowedGroups=[]), "oidcAllowedGroups", "empty",
                 "pulumi config set --path 'oidcAllowedGroups[0]'")


@pytest.mark.parametrize("bad", ["http://login.example.com", "login.example.com", "https://login.example.com?x=1",
                                 "https://user@login.example.com", "https:///tenant"])


def test_the_issuer_is_an_https_url(bad: str) -> None:
    assert_names(oidc_problem(oidcIssuer=bad), "oidcIssuer", repr(bad), "https")


def test_the_issuer_is_not_its_discovery_document() -> None:
    problem = oidc_problem(oidcIssuer="https://login.example.com/t/.well-known/openid-configuration")
    assert_names(problem, "oidcIssuer", "discovery document", "https://login.example.com/t")


@pytest.mark.parametrize(("key", "bad"), [("oidcAdminGroup", "admins,ops"), ("oidcAllowedGroups", ["a,b"])])


def test_a_group_name_with_a_comma_is_refused(key: str, bad: object) -> None:
    assert_names(oidc_problem(**{key: bad}), key, "comma")


def test_a_client_id_with_a_space_is_refused() -> None:
    assert_names(oidc_problem(oidcClientId="my client"), "oidcClientId", "'my client'", "space")


@pytest.mark.parametrize("bad", ["email profile", 'openid "groups"', "openid,email"])


def test_scopes_include_openid(bad: str) -> None:
    assert_names(oidc_problem(oidcScopes=bad), "oidcScopes", "openid email profile")


def test_the_groups_claim_is_a_claim_name() -> None:
    assert_names(oidc_problem(oidcGroupsClaim="my groups"), "oidcGroupsClaim", "cognito:groups")
    assert load_oidc(oidcGroupsClaim="cognito:groups").oidc.groups_claim == "cognito:groups"  # type: ignore[union-attr]


def test_auth_oidc_refuses_plain_http_on_a_single_host() -> None:
    assert_names(oidc_problem(tls="off"), "auth", "tls off", "redirect URI", "unset tls")


def test_auth_oidc_behind_the_load_balancer_needs_no_host_tls() -> None:
    cfg = load_oidc(hosts=2, domain="mlflow.example.com", hostedZoneId="Z0123456789ABCDEFGHIJ")
    assert cfg.fleet and cfg.auth == "oidc"


def test_from_stack_files_accepts_the_client_secret_encrypted(tmp_path: Path) -> None:
    write_stack_file(
        tmp_path,
        "dev",
        """\
        config:
          aws:region: eu-west-1
          mlflow-aws:auth: oidc
          mlflow-aws:oidcIssuer: https://login.example.com
          mlflow-aws:oidcClientId: mlflow
          mlflow-aws:oidcAdminGroup: mlflow-admins
          mlflow-aws:oidcAllowedGroups:
            - mlflow-users
          mlflow-aws:oidcClientSecret:
            secure: AAABAKx0c2VjcmV0
        """,
    )
    cfg = from_stack_files(str(tmp_path), "dev")
    assert cfg.auth == "oidc" and cfg.oidc is not None and cfg.oidc.client_id == "mlflow"


def test_from_pulumi_knows_the_client_secret_is_a_secret_and_keeps_its_value_out(pulumi_stack: None) -> None:
    pulumi.runtime.set_all_config(
        {"aws:region": "eu-west-1", "mlflow-aws:auth": "oidc", "mlflow-aws:oidcIssuer": "https://login.example.com",
         "mlflow-aws:oidcClientId": "mlflow", "mlflow-aws:oidcAdminGroup": "mlflow-admins",
         "mlflow-aws:oidcAllowedGroups": '["mlflow-users"]', "mlflow-aws:oidcClientSecret": "s3cr3t-value"},
        secret_keys=["mlflow-aws:oidcClientSecret"],
    )
    cfg = from_pulumi()
    assert cfg.auth == "oidc" and "s3cr3t-value" not in repr(cfg)


def test_from_pulumi_refuses_the_client_secret_set_in_clear(pulumi_stack: None) -> None:
    pulumi.runtime.set_all_config(
        {"aws:region": "eu-west-1", "mlflow-aws:auth": "oidc", "mlflow-aws:oidcIssuer": "https://login.example.com",
         "mlflow-aws:oidcClientId": "mlflow", "mlflow-aws:oidcAdminGroup": "mlflow-admins",
         "mlflow-aws:oidcAllowedGroups": '["mlflow-users"]', "mlflow-aws:oidcClientSecret": "s3cr3t-value"},
        secret_keys=[],
    )
    with pytest.raises(ConfigError) as caught:
        from_pulumi()
    assert [problem.split(":")[0] for problem in caught.value.problems] == ["oidcClientSecret"]


@pytest.mark.parametrize("version", ["3.15.1", "4.0.0"])


def test_auth_oidc_needs_an_mlflow_release_the_plugin_supports(version: str) -> None:
    assert_names(oidc_problem(mlflowVersion=version), "auth", version, "3.16.0", "auth basic")


def test_auth_oidc_refuses_the_job_runner_whose_calls_only_basic_auth_accepts() -> None:
    problem = oidc_problem(jobRunner="true", instanceType="t3.medium")
    assert_names(problem, "jobRunner", "auth oidc", "basic-auth", "set jobRunner false")
