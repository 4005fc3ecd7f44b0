"""Token counting: the model's own tokenizer and chat template, applied once.

The ingress turns every prompt into token ids here; the ids are what the
router counts and what the engine receives, so the count is exact and a
1M-token document is tokenized once, not again in the engine.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from cluster.config import ModelConfig


class ThinkingUnsupported(ValueError):
    """The model has no thinking system prompt configured (``thinking_system_prompt_file``)."""


class PromptTokenizer:
    """Renders chat messages and plain prompts of one model into token ids."""

    def __init__(self, model_name: str, model: ModelConfig):
        from transformers import AutoTokenizer

        self.model_name = model_name
        self._model = model
        self._tokenizer = AutoTokenizer.from_pretrained(
            model.tokenizer_path, trust_remote_code=model.trust_remote_code
        )
        # Counting a prompt longer than the tokenizer's nominal limit is the
        # point of the ingress (it then answers 413); silence its warning.
        self._tokenizer.model_max_length = max(model.max_context, 1 << 30)
        self._chat_template = model.chat_template
        # Read once per ingress replica; the config's validation checked the file.
        self._thinking_prompt = model.thinking_system_prompt()
        self.vocab_size = len(self._tokenizer)

    def with_thinking(self, messages: Sequence[Mapping[str, Any]]) -> list[dict]:
        """Prepend the model's thinking system prompt (InternLM3 deep thinking).

        A caller's own system message is kept after it, since the thinking
        prompt only switches the mode and says nothing about the task.
        """
        prompt = self._thinking_prompt
        if prompt is None:
            raise ThinkingUnsupported(
                f"model {self.model_name} has no thinking mode configured: the operator sets "
                f"models.{self.model_name}.thinking_system_prompt_file to a file holding the "
                "model's published thinking system prompt"
            )
        rest = [dict(m) for m in messages]
        if rest and rest[0].get("role") == "system":
            first = rest.pop(0)
            prompt = f"{prompt}\n\n{first.get('content') or ''}"
        return [{"role": "system", "content": prompt}, *rest]

    def render(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True) -> str:
        return self._tokenizer.apply_chat_template(
            list(messages),
            chat_template=self._chat_template,
            add_generation_prompt=add_generation_prompt,
            tokenize=False,
        )

    def chat_ids(self, messages: Sequence[Mapping[str, Any]], *, add_generation_prompt: bool = True) -> list[int]:
        ids = self._tokenizer.apply_chat_template(
            list(messages),
            chat_template=self._chat_template,
            add_generation_prompt=add_generation_prompt,
            tokenize=True,
            return_dict=False,
        )
        return list(ids)

    def text_ids(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids)
