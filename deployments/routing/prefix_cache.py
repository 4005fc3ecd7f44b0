"""Ray Serve LLM's PrefixCacheAffinityRouter, fed token ids.

Ray's router matches prompt *text* in a prefix tree; the pools here receive
token ids (the ingress tokenizes once), which it would read as an empty
prompt (and divide by its length). This adapter spells each token id as one
character, so the tree matches token prefixes: the same decision Ray makes on
text, made on what the engine's cache is actually keyed by.
"""

from __future__ import annotations

from ray.serve.llm.request_router import PrefixCacheAffinityRouter

# Past the surrogate range, so every id maps to a valid, distinct code point.
_CODE_POINT_BASE = 0xE000


class TokenPrefixCacheAffinityRouter(PrefixCacheAffinityRouter):
    def _extract_text_from_request(self, pending_request) -> str:
        for arg in pending_request.args:
            prompt = getattr(arg, "prompt", None)
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
                return "".join(chr(_CODE_POINT_BASE + token) for token in prompt)
        return super()._extract_text_from_request(pending_request)
