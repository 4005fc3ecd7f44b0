"""Smoke test of a running cluster: `python -m cluster smoke --base-url URL [--api-key-file FILE]`.

What the chart's `helm test` pod runs, and tests/e2e/test_smoke.py runs against the CPU demo, so
both check the same things:

* every pool of ``GET /v1/pools`` answers one completion. A request goes to the smallest band that
  holds prompt + max_tokens, so a short prompt with ``max_tokens`` set to the band's lower bound
  lands in that band without a long prompt (whose prefill would take minutes on a 1M pool). The
  completion streams; the check reads the first generated token and hangs up, and the cluster
  cancels the rest (a random demo model would otherwise generate up to the band's bound). The
  answer's ``x-pool`` must name the pool.
* a document goes through its life: upload, one question, delete, then 404 for it.

Each step prints one line. Every pool is tried even when one fails; the exit status is 1 when any
step failed, and the last lines name each failed pool or step with the cluster's error message.
A pool that is full (429) or has no healthy replica yet (503) is retried after its Retry-After
until ``--timeout-s`` runs out.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx

PROMPT = "Say hello."
DOCUMENT_TEXT = (
    "Smoke test document. The lease runs for twelve months from the first of March. "
    "Either party may end it with sixty days' written notice."
)
QUESTION = "How long does the lease run?"
RETRY_STATUSES = (429, 503)


class SmokeFailure(Exception):
    """One failed step; the message says what the cluster answered."""


@dataclass(frozen=True)
class Smoke:
    """A smoke run against one base URL; `deadline` (time.monotonic) bounds every retry."""

    client: httpx.Client
    deadline: float
    say: Callable[[str], None] = print

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One call, retried on 429 / 503 (after Retry-After) until the deadline."""
        while True:
            response = self.client.request(method, path, **kwargs)
            if response.status_code not in RETRY_STATUSES:
                return response
            wait = _retry_after(response)
            if time.monotonic() + wait > self.deadline:
                return response
            time.sleep(wait)

    # --- the steps -----------------------------------------------------------------

    def pools(self) -> list[dict]:
        response = self.request("GET", "/v1/pools")
        _expect(response, 200, "GET /v1/pools")
        pools = response.json()["data"]
        if not pools:
            raise SmokeFailure("GET /v1/pools lists no pool")
        return pools

    def completion(self, pool: dict) -> str:
        """One streamed completion steered into `pool`'s band; returns what was seen."""
        body = {"model": pool["model"], "prompt": PROMPT, "max_tokens": steering_max_tokens(pool),
                "temperature": 0, "stream": True}
        started = time.monotonic()
        while True:
            with self.client.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code in RETRY_STATUSES and time.monotonic() + _retry_after(response) < self.deadline:
                    response.read()
                    time.sleep(_retry_after(response))
                    continue
                if response.status_code != 200:
                    response.read()
                _expect(response, 200, "POST /v1/completions")
                served_by = response.headers.get("x-pool")
                if served_by != pool["name"]:
                    raise SmokeFailure(f"routed to pool {served_by!r} (x-pool), not {pool['name']}: "
                                       f"{response.headers.get('x-prompt-tokens')} prompt tokens + "
                                       f"max_tokens {body['max_tokens']} should land in its band")
                # Stop reading at the first token: leaving the block closes the connection.
                text = _first_token(response)
                return (f"first token after {time.monotonic() - started:.2f} s ({text!r}, "
                        f"replica {response.headers.get('x-replica', '?')})")

    def document_round_trip(self) -> str:
        response = self.request("POST", "/v1/documents", json={"text": DOCUMENT_TEXT})
        _expect(response, 201, "upload (POST /v1/documents)")
        document = response.json()
        doc_id = document["id"]
        try:
            asked = self.request("POST", f"/v1/documents/{doc_id}/ask",
                                 json={"question": QUESTION, "max_tokens": 4, "temperature": 0})
            _expect(asked, 200, f"ask (POST /v1/documents/{doc_id}/ask)")
            answer = asked.json()["choices"][0]
            if answer.get("message") is None:
                raise SmokeFailure(f"ask: the answer has no message: {answer}")
            pool = asked.headers.get("x-pool", "?")
        finally:
            deleted = self.request("DELETE", f"/v1/documents/{doc_id}")
        _expect(deleted, 200, f"delete (DELETE /v1/documents/{doc_id})")
        gone = self.request("GET", f"/v1/documents/{doc_id}")
        if gone.status_code != 404:
            raise SmokeFailure(f"GET /v1/documents/{doc_id} after its delete answered {gone.status_code}, not 404")
        tokens = ", ".join(f"{model} {count}" for model, count in document["tokens"].items())
        return f"uploaded {doc_id} (tokens: {tokens}), asked (pool {pool}), deleted"

    def run(self) -> list[str]:
        """Every step; returns the failures, one line each."""
        failures = []
        try:
            pools = self.pools()
        except (SmokeFailure, httpx.HTTPError) as exc:
            return [f"pools: {_describe(exc)}"]
        for pool in pools:
            label = f"pool {pool['name']} ({pool['model']}, band [{pool['min_tokens']}, {pool['max_tokens']}])"
            try:
                self.say(f"{label}: ok, {self.completion(pool)}")
            except (SmokeFailure, httpx.HTTPError) as exc:
                failures.append(f"{label}: {_describe(exc)}")
                self.say(f"{label}: FAILED")
        try:
            self.say(f"document: ok, {self.document_round_trip()}")
        except (SmokeFailure, httpx.HTTPError) as exc:
            failures.append(f"document: {_describe(exc)}")
            self.say("document: FAILED")
        return failures


def steering_max_tokens(pool: dict) -> int:
    """max_tokens that routes a short prompt into `pool`: its band's lower bound (the prompt's few
    tokens on top stay inside any band wider than the prompt), at least 1."""
    return max(1, int(pool["min_tokens"]))


def api_key_from_file(path: Path) -> str:
    """The first key of a keys file in the cluster's format (deployments/api_key_file.py): one
    `principal:key` or bare key per line (or comma), `#` comments and blank lines skipped."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        # The chart mounts the Secret as optional: the file is missing until the Secret exists.
        raise SystemExit(f"no API keys file at {path}: does the API keys' Secret exist?") from None
    for line in text.replace(",", "\n").splitlines():
        entry = line.strip()
        if entry and not entry.startswith("#"):
            # A key has no ':' (RFC 6750's alphabet), so a bare key has nothing after one.
            return entry.partition(":")[2].strip() or entry
    raise SystemExit(f"{path} holds no API key")


def run_smoke(base_url: str, api_key: str | None = None, timeout_s: float = 300.0,
              say: Callable[[str], None] = print) -> list[str]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=httpx.Timeout(timeout_s, connect=10)) as client:
        failures = Smoke(client, time.monotonic() + timeout_s, say).run()
    for line in failures:
        say(f"FAILED {line}")
    say("smoke: passed" if not failures else f"smoke: {len(failures)} step(s) failed")
    return failures


# --- helpers -------------------------------------------------------------------------


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.5, float(response.headers.get("retry-after", 1)))
    except ValueError:
        return 1.0


def _expect(response: httpx.Response, status: int, step: str) -> None:
    if response.status_code == status:
        return
    try:
        error = response.json()["error"]
        detail = f"{error.get('code')}: {error.get('message')}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:300]
    raise SmokeFailure(f"{step} answered {response.status_code} ({detail})")


def _first_token(response: httpx.Response) -> str:
    """The text of the first data event of a completion stream (heartbeat comments skipped)."""
    for line in response.iter_lines():
        if not line.startswith("data: "):
            continue
        data = line[len("data: "):]
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if "error" in chunk:
            raise SmokeFailure(f"the stream failed: {chunk['error'].get('code')}: {chunk['error'].get('message')}")
        if chunk.get("choices"):
            return chunk["choices"][0].get("text", "")
    raise SmokeFailure("the stream ended without a token")


def _describe(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPError):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)
