"""Request bodies the ingress accepts (the OpenAI subset it serves).

Own models rather than vLLM's: they reject unknown fields and out-of-range
sampling values at the door with a 4xx naming the field and the limit, and
they carry the cluster's own extension (``thinking``). Fields that are
valid alone but not together (vLLM's request model refuses them, and would
do so inside the ingress as a 500) are answered 400 with
``combination_error``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deployments.errors import APIError, ErrorCode, combination_error, encoding_error
from deployments.rope import ROPE_SEQ_LEN_XARG

# vLLM samples greedily below this temperature (vllm.sampling_params._SAMPLING_EPS).
GREEDY_BELOW = 1e-5
# vLLM refuses an empty stop string.
StopString = Annotated[str, Field(min_length=1)]


class RequestBody(BaseModel):
    """A request body: unknown fields refused, every string encodable.

    JSON may escape a lone UTF-16 surrogate (``"\\ud800"``), which Python's
    parser accepts but no UTF-8 text holds: the tokenizer (or vLLM's
    serializer) would fail on it as a 500. Refused here as 415
    ``invalid_encoding``, as a body that is not UTF-8 is.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data):
        found = _lone_surrogate(data, ())
        if found is not None:
            where, position = found
            raise encoding_error(where, position)
        return data


def _lone_surrogate(value, path: tuple) -> tuple[str, int] | None:
    """The field path and position of the first string with a lone surrogate, or None."""
    if isinstance(value, str):
        if value.isascii():
            return None
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return ".".join(map(str, path)), exc.start
        return None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _lone_surrogate(item, (*path, key))
        if found is not None:
            return found
    return None


class ContentPart(RequestBody):
    type: Literal["text"]
    text: str


class ChatMessage(RequestBody):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class StreamOptions(RequestBody):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class SamplingFields(RequestBody):
    """Fields shared by chat and completions, with OpenAI's ranges."""

    model: str = Field(description="Served model name (see GET /v1/models).")
    max_tokens: int | None = Field(default=None, ge=1, description="Completion tokens at most.")
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=-1)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=16)
    stop: StopString | list[StopString] | None = Field(default=None, description="Up to 8 non-empty strings.")
    stream: bool = False
    stream_options: StreamOptions | None = Field(default=None, description="Only with `stream: true`.")
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    repetition_penalty: float | None = Field(default=None, gt=0.0, le=2.0)
    ignore_eos: bool = False
    min_tokens: int = Field(default=0, ge=0)
    prompt_logprobs: int | None = Field(default=None, ge=0, le=20, description="Not with `stream: true`.")
    return_tokens_as_token_ids: bool | None = Field(
        default=None,
        description="vLLM extension: logprobs name tokens as 'token_id:<id>', so evaluations "
        "compare by id rather than by (possibly ambiguous) token text.",
    )
    user: str | None = None
    cache_salt: str | None = Field(
        default=None, min_length=1, max_length=1000,
        description="vLLM extension: salts the prefix cache, so only requests with the same salt share "
        "cached KV (multi-tenant isolation). The ingress adds the request's rotary length before it.",
    )
    vllm_xargs: dict[str, str | int | float | list[str | int | float]] | None = Field(
        default=None,
        description=f"vLLM extension: extra arguments for engine extensions. `{ROPE_SEQ_LEN_XARG}` is the "
        "ingress's own (the rotary base) and is refused.",
    )

    @field_validator("vllm_xargs")
    @classmethod
    def _no_rope_override(cls, xargs):
        # The ingress alone picks a request's rotary base (deployments/routing/rope_base.py):
        # a client's choice would read, and poison, KV computed under another base.
        if xargs and ROPE_SEQ_LEN_XARG in xargs:
            raise ValueError(f"{ROPE_SEQ_LEN_XARG} is set by the server from the prompt's length; leave it out")
        return xargs

    @field_validator("stop")
    @classmethod
    def _few_stops(cls, stop):
        if isinstance(stop, list) and len(stop) > 8:
            raise ValueError("at most 8 stop sequences")
        return stop

    @model_validator(mode="after")
    def _combinations(self):
        if self.stream_options is not None and not self.stream:
            raise combination_error("stream_options", "only allowed with stream: true")
        if self.prompt_logprobs is not None and self.stream:
            raise combination_error("prompt_logprobs", "not available with stream: true")
        if self.n > 1 and self.temperature is not None and self.temperature < GREEDY_BELOW:
            raise combination_error("n", "must be 1 with temperature 0 (greedy sampling has one answer)")
        return self

    def check_min_tokens(self, max_tokens: int) -> None:
        """Refuse ``min_tokens`` over the completion budget the request gets
        (its own ``max_tokens``, or the model's default when it sets none)."""
        if self.min_tokens > max_tokens:
            raise APIError(ErrorCode.INVALID_PARAMETER_COMBINATION,
                           f"invalid request: min_tokens: {self.min_tokens} is more than the request's "
                           f"max_tokens of {max_tokens}", param="min_tokens")

    def engine_sampling(self) -> dict[str, Any]:
        """The sampling fields vLLM's CompletionRequest takes as they are."""
        keys = (
            "temperature", "top_p", "top_k", "min_p", "n", "stop", "seed", "presence_penalty",
            "frequency_penalty", "repetition_penalty", "ignore_eos", "min_tokens",
            "prompt_logprobs", "return_tokens_as_token_ids", "user", "cache_salt",
        )
        out = {k: getattr(self, k) for k in keys if getattr(self, k) is not None}
        out["stream"] = self.stream
        if self.stream_options is not None:
            out["stream_options"] = self.stream_options.model_dump()
        if self.vllm_xargs:
            out["vllm_xargs"] = dict(self.vllm_xargs)
        return out


class ChatCompletionBody(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    thinking: bool = Field(
        default=False,
        description="Switch on the model's deep-thinking mode (InternLM3) by its system prompt.",
    )

    @model_validator(mode="after")
    def _max_tokens_alias(self):
        if self.max_tokens is None and self.max_completion_tokens is not None:
            self.max_tokens = self.max_completion_tokens
        if self.top_logprobs and not self.logprobs:
            raise combination_error("top_logprobs", "requires logprobs: true")
        return self

    def message_dicts(self) -> list[dict[str, str]]:
        return [{"role": m.role, "content": m.text()} for m in self.messages]


class CompletionBody(SamplingFields):
    prompt: str | list[str] | list[int] = Field(
        description="Text, a one-element list of text, or token ids (each from 0 to the vocabulary size - 1)."
    )
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=20)
    suffix: None = Field(default=None, description="Not supported.")

    @field_validator("prompt")
    @classmethod
    def _single_prompt(cls, prompt):
        if isinstance(prompt, list) and not prompt:
            raise ValueError("prompt must not be empty")
        if isinstance(prompt, list) and isinstance(prompt[0], str):
            if len(prompt) != 1:
                raise ValueError("batched prompts are not supported; send one prompt per request")
            return prompt[0]
        if isinstance(prompt, str) and not prompt:
            raise ValueError("prompt must not be empty")
        return prompt
