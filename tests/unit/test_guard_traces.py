"""A trace stays in its experiment (server_guard.traces): the decision, and the trace ids and experiment read
from StartTraceV3 and OTLP bodies exactly as MLflow's own handlers read them."""

from __future__ import annotations

import gzip
import json
import secrets

import pytest

from server_guard import traces
from server_guard.authority import Authority

OWNER_EXPERIMENT, MALLORY_EXPERIMENT = "1", "2"


def authority(*, may_edit: set[tuple[str, str]]) -> Authority:
    return Authority(login=lambda scope: None, needs_login=lambda scope: True, is_admin=lambda user: False,
                     may_edit_experiment=lambda user, experiment: (user, experiment) in may_edit)


def test_a_new_trace_or_a_retry_into_its_own_experiment_passes():
    rules = authority(may_edit=set())
    assert traces.moved_trace_refusal("mallory", MALLORY_EXPERIMENT, {}, rules) is None
    assert traces.moved_trace_refusal("owner", OWNER_EXPERIMENT, {"tr-1": OWNER_EXPERIMENT}, rules) is None
    assert traces.moved_trace_refusal("owner", "001", {"tr-1": OWNER_EXPERIMENT}, rules) is None


def test_moving_a_trace_one_may_not_edit_is_denied_without_saying_where_it_is():
    refusal = traces.moved_trace_refusal("mallory", MALLORY_EXPERIMENT, {"tr-1": OWNER_EXPERIMENT},
                                         authority(may_edit={("mallory", MALLORY_EXPERIMENT)}))
    assert refusal == traces.Refusal(403, "PERMISSION_DENIED", "Permission denied")


def test_moving_a_trace_one_may_edit_is_refused_with_the_reason():
    refusal = traces.moved_trace_refusal("owner", MALLORY_EXPERIMENT, {"tr-1": OWNER_EXPERIMENT},
                                         authority(may_edit={("owner", OWNER_EXPERIMENT)}))
    assert refusal is not None and (refusal.status, refusal.error_code) == (400, "INVALID_PARAMETER_VALUE")
    assert "tr-1" in refusal.message


def test_one_trace_of_a_batch_living_elsewhere_refuses_the_batch():
    homes = {"tr-own": MALLORY_EXPERIMENT, "tr-victim": OWNER_EXPERIMENT}
    refusal = traces.moved_trace_refusal("mallory", MALLORY_EXPERIMENT, homes, authority(may_edit=set()))
    assert refusal is not None and refusal.status == 403


def otlp_export(*trace_hexes: str):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    export = ExportTraceServiceRequest()
    spans = export.resource_spans.add().scope_spans.add().spans
    for trace_hex in trace_hexes:
        span = spans.add()
        span.trace_id, span.span_id, span.name = bytes.fromhex(trace_hex), secrets.token_bytes(8), "span"
    return export


def otlp_json(*trace_hexes: str) -> bytes:
    """OTLP/JSON, whose ids are hex (the protobuf JSON mapping would want base64)."""
    spans = [{"traceId": trace_hex, "spanId": secrets.token_hex(8), "name": "span"} for trace_hex in trace_hexes]
    return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).encode()


def test_otlp_trace_ids_are_mlflows_from_protobuf_json_and_gzip():
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    protobuf = otlp_export(first, second, first).SerializeToString()
    wanted = {f"tr-{first}", f"tr-{second}"}
    assert traces.otlp_trace_ids(protobuf, "application/x-protobuf", "") == wanted
    assert traces.otlp_trace_ids(gzip.compress(protobuf), "application/x-protobuf", "gzip") == wanted
    assert traces.otlp_trace_ids(otlp_json(first, second), "application/json; charset=utf-8", "") == wanted


@pytest.mark.parametrize("body, encoding", [(b"\x00not protobuf\xff", "gzip"), (b"{not json", "")])
def test_an_otlp_body_mlflow_would_refuse_is_refused(body, encoding):
    with pytest.raises(ValueError):
        traces.otlp_trace_ids(body, "application/json", encoding)


@pytest.mark.parametrize("spelling", ["snake", "camel"])
def test_start_trace_is_read_in_both_spellings_mlflow_accepts(spelling):
    location = {"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": "7"}}
    body = {"trace": {"trace_info": {"trace_id": "tr-abc", "trace_location": location}}}
    if spelling == "camel":
        body = {"trace": {"traceInfo": {"traceId": "tr-abc", "traceLocation": {
            "type": "MLFLOW_EXPERIMENT", "mlflowExperiment": {"experimentId": "7"}}}}}
    assert traces.start_trace_write({}, json.dumps(body).encode()) == ("7", {"tr-abc"})


def test_an_otlp_write_names_the_experiment_of_its_header():
    trace_hex = secrets.token_hex(16)
    headers = {"x-mlflow-experiment-id": "9", "content-type": "application/x-protobuf"}
    assert traces.otlp_write(headers, otlp_export(trace_hex).SerializeToString()) == ("9", {f"tr-{trace_hex}"})


def test_start_trace_paths_are_mlflows_rest_and_ajax_routes():
    assert sorted(traces.start_trace_paths()) == ["/ajax-api/3.0/mlflow/traces", "/api/3.0/mlflow/traces"]
