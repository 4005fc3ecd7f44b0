"""The rejection reason each refused answer is counted under, by its error code."""

import pytest

from deployments.errors import ErrorCode
from deployments.metrics import REJECTION_REASONS, rejection_reason


@pytest.mark.parametrize(
    "code, reason",
    [
        (ErrorCode.CONTEXT_LENGTH_EXCEEDED, "over_length"),
        (ErrorCode.DOCUMENT_TOO_LARGE, "bad_request"),
        (ErrorCode.MODEL_NOT_FOUND, "unknown_model"),
        (ErrorCode.DOCUMENT_NOT_FOUND, "bad_request"),
        (ErrorCode.POOL_OVERLOADED, "overload"),
        (ErrorCode.POOL_UNAVAILABLE, "unavailable"),
        (ErrorCode.ENGINE_FAILED, "unavailable"),
        (ErrorCode.TIMEOUT, "unavailable"),
        (ErrorCode.INVALID_API_KEY, "bad_request"),
        (ErrorCode.INVALID_REQUEST, "bad_request"),
        (ErrorCode.INTERNAL_ERROR, None),
    ],
)
def test_rejection_reason(code, reason):
    assert rejection_reason(code.status, code) == reason


def test_answers_without_a_code():
    assert rejection_reason(200, None) is None
    assert rejection_reason(422, None) == "bad_request"
    assert rejection_reason(500, None) is None


def test_every_code_has_a_declared_reason_or_none():
    reasons = {rejection_reason(code.status, code) for code in ErrorCode}
    assert reasons - {None} == set(REJECTION_REASONS)
    # Only the ingress's own fault is no refusal.
    assert [code for code in ErrorCode if rejection_reason(code.status, code) is None] == [ErrorCode.INTERNAL_ERROR]
