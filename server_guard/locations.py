"""Experiment artifact locations: the server's own, never the caller's choice.

`experiments/create` accepts any `artifact_location` (`file:///etc`, `/var/lib/mlflow`,
`s3://<bucket>/<another experiment's id>`), and the server's upload and proxy routes then write
there with the server's own rights. Without one, MLflow gives every experiment
`mlflow-artifacts:/<its id>` under the proxied destination, which basic-auth guards per experiment.
MLflow has no setting that refuses the field, so the guard refuses a non-empty value, admins
included: an admin of MLflow is not an administrator of the host's disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from flask import Request, Response

from server_guard.errors import mlflow_error

REFUSAL = (
    "This server keeps every experiment's artifacts in its own proxied artifact store and chooses "
    "the location itself: create the experiment without artifact_location."
)


def create_experiment_paths(validators: Iterable[tuple[tuple[str, str], Callable[[], bool]]],
                            validator: Callable[[], bool]) -> frozenset[str]:
    """The POST paths basic-auth checks with `validator` (CreateExperiment's, on every API prefix)."""
    return frozenset(path for (path, method), check in validators if check is validator and method == "POST")


def artifact_location_refusal(request: Request, paths: frozenset[str],
                              artifact_location: Callable[[], str]) -> Response | None:
    """A 400 for a create-experiment request that names an artifact location; None for any other.
    `artifact_location` parses the body the way MLflow's handler will (called only on those paths)."""
    if request.method != "POST" or request.path not in paths:
        return None
    if artifact_location():
        return mlflow_error(400, "INVALID_PARAMETER_VALUE", REFUSAL)
    return None
