"""tests/support/iam_policy.py, the evaluator the host policy test relies on, against AWS's evaluation logic."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.iam_policy import Outcome, evaluate

BUCKET = "arn:aws:s3:::team-artifacts"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: str | list[str], resource: str, **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def test_an_allow_for_the_action_and_resource_allows():
    assert evaluate(policy(allow("s3:GetObject", f"{BUCKET}/*")), "s3:GetObject", f"{BUCKET}/a/b") is Outcome.ALLOWED


def test_nothing_allowing_the_request_is_an_implicit_deny():
    document = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    assert evaluate(document, "s3:PutObject", f"{BUCKET}/a") is Outcome.IMPLICITLY_DENIED
    assert evaluate(document, "s3:GetObject", "arn:aws:s3:::other-bucket/a") is Outcome.IMPLICITLY_DENIED
    assert evaluate(document, "s3:GetObject", BUCKET) is Outcome.IMPLICITLY_DENIED  # the bucket is not an object


def test_an_explicit_deny_wins_over_any_allow():
    document = policy(allow("s3:*", "*"), {"Effect": "Deny", "Action": "s3:DeleteObject", "Resource": f"{BUCKET}/*"})
    assert evaluate(document, "s3:DeleteObject", f"{BUCKET}/a") is Outcome.EXPLICITLY_DENIED
    assert evaluate(document, "s3:GetObject", f"{BUCKET}/a") is Outcome.ALLOWED


def test_actions_match_without_case_and_resources_with_it():
    document = policy(allow(["ssm:getparameters"], "arn:aws:ssm:eu-west-1:1:parameter/Stack/*"))
    assert evaluate(document, "ssm:GetParameters", "arn:aws:ssm:eu-west-1:1:parameter/Stack/x") is Outcome.ALLOWED
    assert evaluate(document, "ssm:GetParameters", "arn:aws:ssm:eu-west-1:1:parameter/stack/x") is (
        Outcome.IMPLICITLY_DENIED)


def test_wildcards_star_and_question_mark():
    document = policy(allow("ssm:Get*", "arn:aws:ssm:*:1:parameter/app/?/key"))
    assert evaluate(document, "ssm:GetParameterHistory", "arn:aws:ssm:us-east-1:1:parameter/app/a/key") is (
        Outcome.ALLOWED)
    assert evaluate(document, "ssm:GetParameter", "arn:aws:ssm:us-east-1:1:parameter/app/ab/key") is (
        Outcome.IMPLICITLY_DENIED)
    assert evaluate(policy(allow("s3:GetObject", "arn:aws:s3:::a.b/*")), "s3:GetObject", "arn:aws:s3:::aXb/k") is (
        Outcome.IMPLICITLY_DENIED)  # a dot is a dot


def test_not_action_and_not_resource_cover_everything_else():
    document = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": f"{BUCKET}/secret/*"})
    assert evaluate(document, "s3:GetObject", f"{BUCKET}/public/a") is Outcome.ALLOWED
    assert evaluate(document, "iam:CreateUser", "*") is Outcome.IMPLICITLY_DENIED
    assert evaluate(document, "s3:GetObject", f"{BUCKET}/secret/a") is Outcome.IMPLICITLY_DENIED


def test_a_condition_must_hold_for_the_requests_context():
    document = policy(allow("cloudwatch:PutMetricData", "*",
                            Condition={"StringEquals": {"cloudwatch:namespace": "MLflowAws"}}))
    assert evaluate(document, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "MLflowAws"}) is (
        Outcome.ALLOWED)
    assert evaluate(document, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "Other"}) is (
        Outcome.IMPLICITLY_DENIED)
    assert evaluate(document, "cloudwatch:PutMetricData", "*") is Outcome.IMPLICITLY_DENIED


def test_a_negated_condition_holds_when_its_key_is_absent():
    document = policy(allow("s3:PutObject", "*", Condition={"StringNotEquals": {"s3:x-amz-acl": "public-read"}}))
    assert evaluate(document, "s3:PutObject", f"{BUCKET}/a") is Outcome.ALLOWED
    assert evaluate(document, "s3:PutObject", f"{BUCKET}/a", {"s3:x-amz-acl": "public-read"}) is (
        Outcome.IMPLICITLY_DENIED)


@pytest.mark.parametrize("statement", [
    allow("s3:GetObject", "*", Condition={"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}),
    allow("s3:GetObject", "arn:aws:s3:::${aws:username}/*"),
    allow("s3:GetObject", "*", Principal="*"),
    {"Effect": "Allow", "Action": "s3:GetObject"},
])
def test_what_it_does_not_evaluate_is_refused_rather_than_guessed(statement):
    with pytest.raises(ValueError):
        evaluate(policy(statement), "s3:GetObject", f"{BUCKET}/a")


def test_a_single_statement_object_is_a_policy_too():
    assert evaluate({"Statement": allow("sts:GetCallerIdentity", "*")}, "sts:GetCallerIdentity", "*") is (
        Outcome.ALLOWED)
