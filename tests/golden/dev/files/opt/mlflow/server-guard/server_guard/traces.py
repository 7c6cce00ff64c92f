from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from server_guard.authority import Authority

MOVED = ("Trace {trace_id} already exists in another experiment; a trace stays in the experiment it was "
         "created in. Start a new trace instead.")


@dataclass(frozen=True)
class Refusal:
    status: int
    error_code: str
    message: str


def experiment_key(experiment_id: str) -> str:
    text = experiment_id.strip()
    return str(int(text)) if text.isdigit() else text


def moved_trace_refusal(username: str, experiment_id: str, homes: Mapping[str, str],
                        authority: Authority) -> Refusal | None:
    target = experiment_key(experiment_id)
    for trace_id, home in sorted(homes.items()):
        if experiment_key(home) == target:
            continue
        if authority.may_edit_experiment(username, home):
            return Refusal(400, "INVALID_PARAMETER_VALUE", MOVED.format(trace_id=trace_id))
        return Refusal(403, "PERMISSION_DENIED", "Permission denied")
    return None


def otlp_trace_ids(body: bytes, content_type: str, content_encoding: str) -> set[str]:
    from mlflow.server.otel_api import _convert_otlp_json_ids_to_base64
    from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id
    from mlflow.tracing.utils.otlp import _otel_proto_bytes_to_id, decompress_otlp_body
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        if content_encoding:
            body = decompress_otlp_body(body, content_encoding.lower())
        export = ExportTraceServiceRequest()
        if content_type.split(";")[0].strip() == "application/json":
            from google.protobuf.json_format import Parse

            Parse(_convert_otlp_json_ids_to_base64(body), export, ignore_unknown_fields=True)
        else:
            export.ParseFromString(body)
    except Exception as error:
        raise ValueError("not an OTLP export MLflow accepts") from error
    return {generate_mlflow_trace_id_from_otel_trace_id(_otel_proto_bytes_to_id(span.trace_id))
            for resource in export.resource_spans for scope in resource.scope_spans for span in scope.spans
            if span.trace_id}


def otlp_write(headers: Mapping[str, str], body: bytes) -> tuple[str, set[str]]:
    return headers.get("x-mlflow-experiment-id", ""), otlp_trace_ids(
        body, headers.get("content-type", ""), headers.get("content-encoding", ""))


def start_trace_write(headers: Mapping[str, str], body: bytes) -> tuple[str, set[str]]:
    from mlflow.protos.service_pb2 import StartTraceV3
    from mlflow.utils.proto_json_utils import parse_dict

    message = StartTraceV3()
    try:
        parse_dict(json.loads(body), message)
    except Exception as error:
        raise ValueError("not a StartTraceV3 request MLflow accepts") from error
    info = message.trace.trace_info
    return info.trace_location.mlflow_experiment.experiment_id, {info.trace_id} if info.trace_id else set()


def start_trace_paths() -> list[str]:
    from mlflow.protos.service_pb2 import StartTraceV3
    from mlflow.server.handlers import get_endpoints

    return [path for path, request_class, methods in get_endpoints(lambda cls: cls)
            if request_class is StartTraceV3 and "POST" in methods]
