from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from flask import Request, Response

REFUSAL = ("This server chooses every experiment's artifact location in its own artifact store: "
           "create the experiment without artifact_location.")


def create_experiment_paths(validators: Iterable[tuple[tuple[str, str], Callable[[], bool]]],
                            validator: Callable[[], bool]) -> frozenset[str]:
    return frozenset(path for (path, method), check in validators if check is validator and method == "POST")


def artifact_location_refusal(request: Request, paths: frozenset[str],
                              artifact_location: Callable[[], str]) -> Response | None:
    if request.method != "POST" or request.path not in paths or not artifact_location():
        return None
    body = {"error_code": "INVALID_PARAMETER_VALUE", "message": REFUSAL}
    return Response(json.dumps(body), status=400, mimetype="application/json")
