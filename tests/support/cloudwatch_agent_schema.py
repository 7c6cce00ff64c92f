"""The Amazon CloudWatch agent's configuration schema, for the parts of it this stack uses.

Transcribed by hand from aws/amazon-cloudwatch-agent at tag v1.300071.0 (the release pinned in
userdata/pins.py), file translator/config/schema.json (JSON Schema draft-04; the agent validates every
configuration against it before translating it): the top level, `agentDefinition`, `metricsDefinition`
with the `mem`, `disk` and `cpu` plugins, and `logsDefinition` with `files` and `journald` (added in
v1.300070.0). Every keyword below is the source's, for these definitions; descriptions are left out.

Where this differs, it is stricter: `metrics_collected` lists only the three plugins transcribed and
refuses any other, where the source accepts its other fourteen; `metrics_destinations`, and `logs`'
`windows_events`, `application_signals` and `metrics_collected` are refused for the same reason. A
configuration that starts using one must transcribe it here first. (Checked once against the fetched
file: every transcribed keyword equals the source's.)
"""

from __future__ import annotations

from typing import Any

import jsonschema

SOURCE = "aws/amazon-cloudwatch-agent v1.300071.0 translator/config/schema.json"

_TIME_INTERVAL = {"type": "integer", "minimum": 1, "maximum": 172800}
_NAME_512 = {"type": "string", "minLength": 1, "maxLength": 512}
_RETENTION = {"type": "integer", "enum": [-1, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                                          1827, 2192, 2557, 2922, 3288, 3653]}
_FILTER = {
    "type": "object", "additionalProperties": False,
    "properties": {"type": {"type": "string", "enum": ["include", "exclude"]}, "expression": {"type": "string"}},
}
_CREDENTIALS = {
    "type": "object", "additionalProperties": False,
    "properties": {"role_arn": {"type": "string", "anyOf": [{"minLength": 20}, {"pattern": r"^\$\{.+\}$"}],
                                "maxLength": 2048}},
}
_ENDPOINT_OVERRIDE = {"type": "string", "minLength": 4, "maxLength": 2048}
_SERVICE_NAME = {"type": "string", "minLength": 1, "maxLength": 255}
_ENVIRONMENT = {"type": "string", "minLength": 1, "maxLength": 259}
_APPEND_DIMENSIONS = {"type": "object", "maxProperties": 30,
                      "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 1024}}
_MEASUREMENT = {
    "type": "array", "uniqueItems": True,
    "items": {"oneOf": [
        {"type": "string", "minLength": 1, "maxLength": 255},
        {"type": "object", "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 255},
                                          "rename": {"type": "string", "minLength": 1, "maxLength": 255},
                                          "unit": {"type": "string", "minLength": 1, "maxLength": 256}}},
    ]},
}
_BASIC_METRIC = {
    "type": "object", "required": ["measurement"],
    "properties": {"metrics_collection_interval": _TIME_INTERVAL, "append_dimensions": _APPEND_DIMENSIONS,
                   "measurement": _MEASUREMENT},
}
_BASIC_RESOURCES = {"type": "object", "properties": {
    "resources": {"type": "array", "maxItems": 256, "items": {"type": "string", "minLength": 1, "maxLength": 4096}}}}

AGENT = {
    "type": "object", "additionalProperties": True,
    "properties": {
        "metrics_collection_interval": _TIME_INTERVAL,
        "logfile": {"type": "string", "maxLength": 4096},
        "region": {"type": "string", "minLength": 1, "maxLength": 64},
        "debug": {"type": "boolean"},
        "aws_sdk_log_level": {"type": "string"},
        "credentials": _CREDENTIALS,
        "omit_hostname": {"type": "boolean"},
        "service.name": _SERVICE_NAME,
        "deployment.environment": _ENVIRONMENT,
    },
}

METRICS = {
    "type": "object", "additionalProperties": False, "required": ["metrics_collected"],
    "properties": {
        "namespace": {"type": "string", "minLength": 1, "maxLength": 255},
        "aggregation_dimensions": {
            "type": "array", "uniqueItems": True, "minItems": 1, "maxItems": 1024,
            "items": {"type": "array", "uniqueItems": True, "maxItems": 30,
                      "items": {"type": "string", "minLength": 1, "maxLength": 1024}},
        },
        "append_dimensions": _APPEND_DIMENSIONS,
        "force_flush_interval": _TIME_INTERVAL,
        "credentials": _CREDENTIALS,
        "endpoint_override": _ENDPOINT_OVERRIDE,
        "service.name": {"type": "string", "minLength": 1, "maxLength": 4096},
        "deployment.environment": {"type": "string", "minLength": 1, "maxLength": 4096},
        "metrics_collected": {
            "type": "object",
            "additionalProperties": False,  # the source: other plugins (see the module's docstring)
            "properties": {
                "mem": _BASIC_METRIC,
                "disk": {"type": "object", "allOf": [
                    _BASIC_METRIC, _BASIC_RESOURCES,
                    {"type": "object", "properties": {
                        "ignore_file_system_types": {"type": "array", "maxItems": 256,
                                                     "items": {"type": "string", "minLength": 1, "maxLength": 4096}},
                        "drop_device": {"type": "boolean"}}},
                ]},
                "cpu": {"type": "object", "allOf": [
                    _BASIC_METRIC,
                    {"type": "object", "properties": {
                        "resources": {"type": "array", "maxItems": 1, "items": {"type": "string", "enum": ["*"]}},
                        "totalcpu": {"type": "boolean"}}},
                ]},
            },
        },
    },
}

_COLLECT_LIST = {"minItems": 1, "maxItems": 16384, "uniqueItems": True}
_FILES = {
    "type": "object", "additionalProperties": False, "required": ["collect_list"],
    "properties": {"collect_list": {"type": "array", **_COLLECT_LIST, "items": {
        "type": "object", "additionalProperties": False, "required": ["file_path"],
        "properties": {
            "file_path": {"type": "string", "maxLength": 4096},
            "log_group_name": _NAME_512,
            "log_stream_name": _NAME_512,
            "log_group_class": _NAME_512,
            "multi_line_start_pattern": {"type": "string", "minLength": 1, "maxLength": 4096},
            "timestamp_format": {"type": "string", "minLength": 1, "maxLength": 4096},
            "timezone": {"type": "string", "enum": ["Local", "LOCAL", "UTC"]},
            "trim_timestamp": {"type": "boolean"},
            "encoding": {"type": "string", "minLength": 1, "maxLength": 4096},
            "auto_removal": {"type": "boolean"},
            "backpressure_mode": {"type": "string", "enum": ["fd_release"]},
            "blacklist": {"type": "string", "minLength": 1, "maxLength": 4096},
            "publish_multi_logs": {"type": "boolean"},
            "retention_in_days": _RETENTION,
            "filters": {"type": "array", "items": _FILTER},
            "service.name": _SERVICE_NAME,
            "deployment.environment": _ENVIRONMENT,
        },
    }}},
}
_JOURNALD = {
    "type": "object", "additionalProperties": False, "required": ["collect_list"],
    "properties": {"collect_list": {"type": "array", **_COLLECT_LIST, "items": {
        "type": "object", "additionalProperties": False, "required": ["log_group_name"],
        "properties": {
            "log_group_name": _NAME_512,
            "log_stream_name": _NAME_512,
            "log_group_class": _NAME_512,
            "retention_in_days": _RETENTION,
            "filters": {"type": "array", "items": _FILTER},
            "units": {"type": "array", "minItems": 1, "uniqueItems": True,
                      "items": {"type": "string", "maxLength": 256}},
            "priority": {"type": "string", "enum": ["emerg", "alert", "crit", "err", "warning", "notice", "info",
                                                    "debug", "0", "1", "2", "3", "4", "5", "6", "7"]},
            "matches": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"type": "object", "additionalProperties": {"type": "string"}}},
        },
    }}},
}
LOGS = {
    "type": "object", "additionalProperties": False,
    "anyOf": [{"required": ["logs_collected"]}, {"required": ["metrics_collected"]}],
    "properties": {
        # The source also has windows_events and application_signals here, and a metrics_collected of its
        # own (EMF, Prometheus, OTLP): not transcribed, so refused.
        "logs_collected": {"type": "object", "minProperties": 1, "additionalProperties": False,
                           "properties": {"files": _FILES, "journald": _JOURNALD}},
        "log_stream_name": _NAME_512,
        "force_flush_interval": _TIME_INTERVAL,
        "credentials": _CREDENTIALS,
        "endpoint_override": _ENDPOINT_OVERRIDE,
        "service.name": _SERVICE_NAME,
        "deployment.environment": _ENVIRONMENT,
        "concurrency": {"type": "integer", "minimum": 1},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "type": "object",
    # The source's top level accepts other keys (its own `traces` and `opentelemetry` among them).
    "additionalProperties": True,
    "properties": {"agent": AGENT, "metrics": METRICS, "logs": LOGS},
}


def problems(config: dict[str, Any]) -> list[str]:
    """Every way `config` breaks the schema, as 'path: message', or [] when the agent would accept it."""
    validator = jsonschema.Draft4Validator(SCHEMA)
    return sorted(
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(config)
    )
