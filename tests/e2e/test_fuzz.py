"""Fuzzing the live API from its own OpenAPI document (Schemathesis), bounded.

On the real cluster, for every operation of ``/openapi.json``:
* schema-valid requests (Schemathesis' positive mode; the served models and
  a stored document are substituted often, so bodies get past the model and
  document lookups and reach the engines) and schema-invalid ones (negative
  mode: wrong types, missing fields, out-of-range values);
* checked with Schemathesis' own checks: no 5xx (``not_a_server_error``),
  every status, content type and body as the document says
  (``status_code_conformance``, ``content_type_conformance``,
  ``response_schema_conformance``), invalid input refused with a 4xx
  (``negative_data_rejection``);
* and against the API's error vocabulary: every error's ``code`` is an
  ``ErrorCode`` whose status is the answer's, and never ``engine_rejected``
  (the engine refusing what the ingress admitted is a gap in
  deployments/schemas.py).

Bounded: ``EXAMPLES`` cases per operation and mode, a few tokens per
generation, so the whole file takes about a minute on two cores. The cases
are derandomized: a failure reproduces on the next run. Schemathesis'
strategies are driven with Hypothesis directly (its pytest plugin does not
load under pytest 9 here).
"""

from __future__ import annotations

import json
import time

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance, negative_data_rejection, not_a_server_error, response_schema_conformance,
    status_code_conformance,
)

from deployments.errors import ErrorCode

pytestmark = pytest.mark.e2e

EXAMPLES = 20
# Completion tokens at most per generated request (n choices each): enough to
# exercise the engines, few enough to keep the run short on CPU engines.
MAX_TOKENS = 4
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          negative_data_rejection]


@pytest.fixture(scope="module")
def schema(cluster):
    return schemathesis.openapi.from_url(f"{cluster.base_url}/openapi.json")


@pytest.fixture(scope="module")
def document(http, cluster):
    response = http.post("/v1/documents", json={"text": "The tenant may end the lease with a month's notice."})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def error_codes(response) -> list[dict]:
    """The error bodies of an answer: its JSON body's, or each SSE error event's."""
    media = response.headers.get("content-type") or ""
    media = media[0] if isinstance(media, list) else media  # Schemathesis' headers hold lists
    if media.startswith("text/event-stream"):
        events = [line.removeprefix("data: ") for line in response.text.split("\n") if line.startswith("data: {")]
        return [e["error"] for e in map(json.loads, events) if "error" in e]
    if media.startswith("application/json") and response.status_code >= 400:
        return [response.json()["error"]]
    return []


def check_vocabulary(response) -> None:
    for error in error_codes(response):
        assert error["code"] in set(ErrorCode), f"code {error['code']!r} is not an ErrorCode: {error}"
        code = ErrorCode(error["code"])
        if response.status_code >= 400:
            assert code.status == response.status_code, f"{code} is {code.status}, answered {response.status_code}"
        assert code != ErrorCode.ENGINE_REJECTED, f"the engine refused what the ingress admitted: {error}"


def steer(case, model: str | None, document: str | None) -> None:
    """Point a valid case at a served model and a stored document, and keep its generation short.

    Random model names and document ids would only ever meet a 404; the
    substitutes leave the rest of the case as Schemathesis generated it.
    """
    if document is not None and "doc_id" in (case.path_parameters or {}) and case.method.upper() != "DELETE":
        case.path_parameters["doc_id"] = document
    body = case.body
    if not isinstance(body, dict):
        return
    if model is not None and ("model" in body or case.path in ("/v1/chat/completions", "/v1/completions")):
        body["model"] = model
    for field in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(field), int) and body[field] > MAX_TOKENS:
            body[field] = MAX_TOKENS
    if case.path.endswith("/ask") or case.path.endswith("completions"):
        body.setdefault("max_completion_tokens" if "max_completion_tokens" in body else "max_tokens", MAX_TOKENS)


def fuzz(operation, mode: GenerationMode, models: list[str], document: str) -> int:
    """Run up to EXAMPLES cases; returns how many ran (0 when the mode has none
    for this operation, e.g. no invalid input exists for a parameterless GET)."""
    ran = 0

    # No shrinking: a failure is reported as found, so a failing run stays bounded too.
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode),
           model=st.sampled_from([*models, None]), use_document=st.booleans())
    def run(case, model, use_document):
        nonlocal ran
        if mode == GenerationMode.POSITIVE:
            steer(case, model, document if use_document else None)
        response = case.call_and_validate(checks=CHECKS, timeout=120)
        check_vocabulary(response)
        ran += 1

    try:
        run()
    except Unsatisfiable:
        return 0
    return ran


def test_every_operation_answers_as_documented(schema, cluster, document):
    started = time.monotonic()
    models = list(cluster.config.models)
    operations = [result.ok() for result in schema.get_all_operations()]
    runs = {(op.method.upper(), op.path, mode.value): fuzz(op, mode, models, document)
            for op in operations for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)}
    # Every operation had valid cases, and every one with a body or parameters invalid ones.
    assert all(runs[(op.method.upper(), op.path, "positive")] for op in operations), runs
    negative = {path for (method, path, mode), n in runs.items() if mode == "negative" and n}
    assert {"/v1/chat/completions", "/v1/completions", "/v1/documents", "/v1/documents/{doc_id}/ask"} <= negative
    print(f"fuzzed {sum(runs.values())} cases over {len(operations)} operations in "
          f"{time.monotonic() - started:.0f} s")

