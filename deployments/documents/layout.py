"""Prompt layout of document QA: [system][document][question].

The document sits in a stable prefix, so every question about it shares the
prefix's KV in vLLM's cache, and its token ids are computed once at upload:
a question costs only the tokens of its own suffix. The split is exact
because the prefix ends right after a special token (`<|im_end|>\\n`), where
the tokenizer cannot merge across.
"""

from __future__ import annotations

import hashlib
from array import array

from deployments.tokens import PromptTokenizer


class DocumentLayout:
    def __init__(self, system_prompt: str):
        self.system_prompt = system_prompt
        # Per model: the template's rendering of an empty document's prefix
        # (constant; rendered once rather than per question).
        self._short_prefix: dict[str, str] = {}

    def prefix_messages(self, text: str) -> list[dict[str, str]]:
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": text},
        ]

    def key(self, tokenizer: PromptTokenizer) -> str:
        """Names model + layout, so cached ids go stale when either changes."""
        probe = tokenizer.render(self.prefix_messages("\x00"), add_generation_prompt=False)
        digest = hashlib.blake2b(probe.encode(), digest_size=6).hexdigest()
        return f"{tokenizer.model_name}@{digest}"

    def prefix_ids(self, tokenizer: PromptTokenizer, text: str) -> list[int]:
        return tokenizer.chat_ids(self.prefix_messages(text), add_generation_prompt=False)

    def question_ids(self, tokenizer: PromptTokenizer, prefix_ids: list[int], question: str) -> list[int]:
        """prefix ids + the tokens of what the template adds for the question.

        Renders with an empty document (rendering is cheap, tokenizing a 1M
        document is not) and takes the text after the prefix.
        """
        short_prefix = self._short_prefix.get(tokenizer.model_name)
        if short_prefix is None:
            short_prefix = tokenizer.render(self.prefix_messages(""), add_generation_prompt=False)
            self._short_prefix[tokenizer.model_name] = short_prefix
        full = tokenizer.render(
            [*self.prefix_messages(""), {"role": "user", "content": question}], add_generation_prompt=True
        )
        if not full.startswith(short_prefix):
            raise ValueError("the chat template does not keep the document prefix stable")
        suffix = full[len(short_prefix):]
        return prefix_ids + tokenizer.text_ids(suffix, add_special_tokens=False)


def encode_ids(ids: list[int]) -> bytes:
    return array("I", ids).tobytes()


def decode_ids(blob: bytes) -> list[int]:
    return array("I", blob).tolist()
