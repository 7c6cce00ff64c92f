"""Error answers without SQL or password hashes (server_guard.errors), on MLflow's own messages."""

from __future__ import annotations

import json
import logging

from server_guard import errors

# What MLflow 3.17.2's SqlAlchemyStore answered for a taken experiment name on PostgreSQL (abridged).
TAKEN_EXPERIMENT = json.dumps({
    "error_code": "RESOURCE_ALREADY_EXISTS",
    "message": "Experiment(name=private-1) already exists. Error: (psycopg2.errors.UniqueViolation) duplicate key "
               "value violates unique constraint \"experiments_name_key\"\nDETAIL:  Key (name)=(private-1) already "
               "exists.\n[SQL: INSERT INTO experiments (name, artifact_location) VALUES (%(name)s, "
               "%(artifact_location)s) RETURNING experiments.experiment_id]\n[parameters: {'name': 'private-1'}]\n"
               "(Background on this error at: https://sqlalche.me/e/20/gkpj)"}).encode()
TAKEN_USER = json.dumps({
    "error_code": "RESOURCE_ALREADY_EXISTS",
    "message": "User (username=alice) already exists. Error: (psycopg2.errors.UniqueViolation) ...\n[SQL: INSERT "
               "INTO users (username, password_hash, is_admin) VALUES (%(username)s, %(password_hash)s, "
               "%(is_admin)s)]\n[parameters: {'password_hash': 'scrypt:32768:8:1$salt$0123abcd'}]"}).encode()


def replaced(body: bytes) -> dict[str, str]:
    result = errors.scrubbed(400, body)
    assert result is not None
    document: dict[str, str] = json.loads(result)
    return document


def test_mlflows_sentence_stays_and_the_databases_words_go():
    document = replaced(TAKEN_EXPERIMENT)
    assert document["error_code"] == "RESOURCE_ALREADY_EXISTS"
    assert document["message"].startswith("Experiment(name=private-1) already exists. Details are in the server's log")
    assert not errors.leaks(document["message"]) and "INSERT" not in document["message"]


def test_a_password_hash_never_leaves():
    document = replaced(TAKEN_USER)
    assert "scrypt" not in document["message"] and "password_hash" not in document["message"]
    assert document["message"].startswith("User (username=alice) already exists.")


def test_the_whole_original_is_logged_under_the_reference_it_names(caplog):
    with caplog.at_level(logging.WARNING, logger="mlflow.server_guard"):
        document = replaced(TAKEN_USER)
    reference = document["message"].rsplit(" ", 1)[-1].rstrip(".")
    (record,) = caplog.records
    assert reference in record.getMessage() and "password_hash" in record.getMessage()


def test_an_answer_without_the_databases_words_is_left_alone():
    body = json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "Run 'abc' not found"}).encode()
    assert errors.scrubbed(404, body) is None


def test_a_plain_text_answer_with_sql_becomes_mlflows_internal_error():
    document = replaced(b"Internal error: (psycopg2.OperationalError) ... [SQL: SELECT 1]")
    assert document["error_code"] == "INTERNAL_ERROR"
    assert document["message"].startswith(errors.GENERIC)


def test_an_answer_not_read_whole_is_replaced_whatever_it_says():
    document = json.loads(errors.scrubbed(500, b'{"error_code": "X", "message": "fine"}', whole=False) or b"{}")
    assert document["error_code"] == "X" and document["message"].startswith("fine Details")
