"""The rejection reason each refused answer is counted under."""

import pytest

from deployments.metrics import REJECTION_REASONS, rejection_reason


@pytest.mark.parametrize(
    "status, code, reason",
    [
        (200, None, None),
        (413, "context_length_exceeded", "over_length"),
        (413, "document_too_large", "bad_request"),
        (404, "model_not_found", "unknown_model"),
        (404, "document_not_found", "bad_request"),
        (429, "pool_overloaded", "overload"),
        (503, "pool_unavailable", "unavailable"),
        (504, "timeout", "unavailable"),
        (401, "invalid_api_key", "bad_request"),
        (422, None, "bad_request"),
        (500, None, None),
    ],
)
def test_rejection_reason(status, code, reason):
    assert rejection_reason(status, code) == reason


def test_every_reason_is_a_declared_series():
    seen = {rejection_reason(s, c) for s in range(400, 600) for c in (None, "context_length_exceeded",
                                                                       "model_not_found")}
    assert seen - {None} == set(REJECTION_REASONS)
