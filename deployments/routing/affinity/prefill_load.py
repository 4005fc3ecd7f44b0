"""Outstanding prefill work per replica: what a new document should not queue behind.

Queue lengths (Serve's probe cache) count requests, not work: a replica
running one 128k-token cold prefill and one running a warm question both
read as 1, yet the first will not start another prefill for tens of seconds.
A document no replica holds is placed on the replica with the fewest prompt
tokens still to prefill, so two new documents do not share one engine's steps
while another engine idles (the GPU doc_qa run: 25.3 s cold median by hash
placement, 15.8 s for Ray's load-placing prefix-cache router).

The router records each request's new tokens when Serve routes it
(``on_request_routed``, which sees the prompt's ids and so its exact length)
and drops them when Serve reports the request finished
(``on_request_completed``, fired once per dispatched request, whatever its
outcome). Serve's router hears of no earlier point: the first token reaches
only the caller. A document question's answer is short next to its prefill
(QA answers: tens of tokens, against 16k-1M of document), so "not finished"
is "still prefilling" but for the last few decode steps. The count is this
router's (one per ingress replica and pool): each ingress replica weighs the
work it sent itself.
"""

from __future__ import annotations

from typing import Hashable, Iterable


class PrefillLoad:
    """Tokens of prefill routed to each replica and not finished, per request id."""

    def __init__(self) -> None:
        self._requests: dict[str, tuple[Hashable, int]] = {}
        self._tokens: dict[Hashable, int] = {}

    def add(self, request_id: str, replica: Hashable, tokens: int) -> None:
        """``request_id`` went to ``replica`` with ``tokens`` tokens to prefill."""
        self.finish(request_id)  # a retried id counts once, on its latest replica
        tokens = max(0, tokens)
        self._requests[request_id] = (replica, tokens)
        self._tokens[replica] = self._tokens.get(replica, 0) + tokens

    def finish(self, request_id: str) -> None:
        """The request ended (answered, failed or cancelled); unknown ids are ignored."""
        entry = self._requests.pop(request_id, None)
        if entry is None:
            return
        replica, tokens = entry
        left = self._tokens.get(replica, 0) - tokens
        if left > 0:
            self._tokens[replica] = left
        else:
            self._tokens.pop(replica, None)

    def tokens(self, replica: Hashable) -> int:
        """Outstanding prefill tokens on ``replica``."""
        return self._tokens.get(replica, 0)

    def retain(self, replicas: Iterable[Hashable]) -> None:
        """Forget replicas that left the pool (their requests died with them)."""
        alive = set(replicas)
        for request_id, (replica, _) in list(self._requests.items()):
            if replica not in alive:
                self.finish(request_id)
