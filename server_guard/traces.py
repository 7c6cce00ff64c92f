"""A trace stays in the experiment it was created in (issue 23, holes 1 and 2).

MLflow's validators check only the experiment a request names: StartTraceV3 (`POST /api/3.0/mlflow/traces`
and its `/ajax-api/` twin) and OTLP (`POST /v1/traces`, the experiment in `x-mlflow-experiment-id`).
Given the id of a trace that exists elsewhere, the store then moves that trace into the named experiment
(`SqlAlchemyStore._start_trace_once`: on the IntegrityError it rewrites the trace's experiment_id) or
appends the spans to it and rewrites its summary (`_log_spans_once`). So a trace id that already exists
may be written only into the experiment it lives in. Whoever may not edit that experiment learns
nothing from the refusal (403, as for any trace they cannot see); whoever may (an admin, the owner) is
told why (400). A retry of one's own trace, same id and same experiment, passes.
"""

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
    """The experiment id as the store compares it (the header and the JSON may carry '007')."""
    text = experiment_id.strip()
    return str(int(text)) if text.isdigit() else text


def moved_trace_refusal(username: str, experiment_id: str, homes: Mapping[str, str],
                        authority: Authority) -> Refusal | None:
    """`homes`: trace id -> experiment of every trace of the request that already exists."""
    target = experiment_key(experiment_id)
    for trace_id, home in sorted(homes.items()):
        if experiment_key(home) == target:
            continue
        if authority.may_edit_experiment(username, home):
            return Refusal(400, "INVALID_PARAMETER_VALUE", MOVED.format(trace_id=trace_id))
        return Refusal(403, "PERMISSION_DENIED", "Permission denied")
    return None


def otlp_trace_ids(body: bytes, content_type: str, content_encoding: str) -> set[str]:
    """MLflow's trace id of every span of an OTLP export, parsed as MLflow's OTLP route parses it
    (mlflow/server/otel_api.py); ValueError for a body that route would refuse."""
    from mlflow.server.otel_api import _convert_otlp_json_ids_to_base64
    from mlflow.tracing.utils import generate_mlflow_trace_id_from_otel_trace_id
    from mlflow.tracing.utils.otlp import _otel_proto_bytes_to_id, decompress_otlp_body
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        if content_encoding:
            body = decompress_otlp_body(body, content_encoding.lower())
        export = ExportTraceServiceRequest()
        if content_type.split(";")[0].strip() == "application/json":
            from google.protobuf.json_format import Parse  # type: ignore[import-untyped]

            Parse(_convert_otlp_json_ids_to_base64(body), export, ignore_unknown_fields=True)
        else:
            export.ParseFromString(body)
    except Exception as error:  # each of the route's own refusals: HTTPException, DecodeError, ...
        raise ValueError("not an OTLP export MLflow accepts") from error
    return {generate_mlflow_trace_id_from_otel_trace_id(_otel_proto_bytes_to_id(span.trace_id))
            for resource in export.resource_spans for scope in resource.scope_spans for span in scope.spans
            if span.trace_id}


def otlp_write(headers: Mapping[str, str], body: bytes) -> tuple[str, set[str]]:
    return headers.get("x-mlflow-experiment-id", ""), otlp_trace_ids(
        body, headers.get("content-type", ""), headers.get("content-encoding", ""))


def start_trace_write(headers: Mapping[str, str], body: bytes) -> tuple[str, set[str]]:
    """StartTraceV3's experiment and trace id, parsed as MLflow's handler parses the body."""
    from mlflow.protos.service_pb2 import StartTraceV3
    from mlflow.utils.proto_json_utils import parse_dict

    message = StartTraceV3()
    try:
        parse_dict(json.loads(body), message)  # type: ignore[no-untyped-call]
    except Exception as error:
        raise ValueError("not a StartTraceV3 request MLflow accepts") from error
    info = message.trace.trace_info
    return info.trace_location.mlflow_experiment.experiment_id, {info.trace_id} if info.trace_id else set()


def start_trace_paths() -> list[str]:
    """The POST paths of StartTraceV3, from MLflow's own endpoint table."""
    from mlflow.protos.service_pb2 import StartTraceV3
    from mlflow.server.handlers import get_endpoints

    return [path for path, request_class, methods in get_endpoints(lambda cls: cls)  # type: ignore[no-untyped-call]
            if request_class is StartTraceV3 and "POST" in methods]
