"""A served model: weights, tokenizer, chat format and the RoPE facts its context depends on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from cluster.config.base import StrictModel
from deployments.rope import max_supported_len


class ModelConfig(StrictModel):
    """One served model: weights, tokenizer, chat format and RoPE facts."""

    path: str = Field(
        description="Directory with weights, config.json and tokenizer (or a hub id "
        "where the engine may download).",
    )
    tokenizer: str | None = Field(
        default=None, description="Tokenizer directory; defaults to `path`."
    )
    chat_template: str | None = Field(
        default=None,
        description="Jinja chat template overriding the tokenizer's own. Must render "
        "the same prompt the engine would see.",
    )
    native_context: int | None = Field(
        default=None,
        gt=0,
        description="Native RoPE window (config.json `max_position_embeddings`); read "
        "from config.json when omitted.",
    )
    rope_scaling: dict[str, Any] | None = Field(
        default=None,
        description="RoPE scaling from config.json (e.g. {type: dynamic, factor: 2.5}); "
        "read from config.json when omitted.",
    )
    rotary_dim: int | None = Field(
        default=None,
        gt=2,
        description="Rotary dimension of the attention heads (InternLM: head_dim, 128 for both "
        "published models); read from config.json when omitted. The ingress needs it to place the "
        "buckets of rope_base.mode bucket and to report each request's distance from its own-length "
        "base.",
    )
    context_limit: int | None = Field(
        default=None,
        gt=0,
        description="Length the model was validated for past native x rope factor (dynamic "
        "NTK has no hard limit; InternLM2.5-7B-Chat-1M: 1048576). Without it: native x factor, "
        "or the publisher's figure for known models.",
    )
    stop_token_ids: list[int] = Field(
        default_factory=list,
        description="Token ids that end a turn (e.g. `</s>` and `<|im_end|>`), added to "
        "every request.",
    )
    thinking_system_prompt_file: Path | None = Field(
        default=None,
        description="File holding the system prompt that switches on the model's deep-thinking "
        "mode; requests opt in with `\"thinking\": true`. For InternLM3, the prompt published on "
        "its model card (huggingface.co/internlm/internlm3-8b-instruct), which the operator "
        "installs (docs/api.md, Thinking mode): the project ships no copy. Checked at start: the "
        "file must exist, be readable UTF-8 and not be empty. Unset (or empty): thinking requests "
        "are refused with 400 `thinking_not_configured`.",
    )
    default_max_tokens: int = Field(
        default=1024,
        gt=0,
        description="Completion budget assumed for routing when a request sets no "
        "`max_tokens`; it is then passed to the engine explicitly.",
    )
    trust_remote_code: bool = Field(
        default=True,
        description="Run the Python files shipped in the model's repository (transformers' "
        "trust_remote_code), in the engines and in the ingress's tokenizer. The InternLM checkpoints "
        "need it: vLLM has their model code, but InternLM2.5's config class (model_type internlm2, unknown "
        "to transformers) and both repositories' tokenizer classes (tokenization_internlm*.py) are the "
        "repository's own code. Set it explicitly "
        "per model; false for a checkpoint that transformers knows. Pin the weights to a commit "
        "(the Helm chart's weights.download.models.<name>.revision) so the code that runs cannot change.",
    )
    architecture: str | None = Field(
        default=None,
        description="Architecture name as in config.json `architectures[0]` (e.g. "
        "InternLM2ForCausalLM). Only the capacity planner reads it, and only when the "
        "weights are not on this machine; config.json wins when present.",
    )

    @field_validator("thinking_system_prompt_file", mode="before")
    @classmethod
    def _unset_when_empty(cls, value):
        # `${INTERNLM3_THINKING_PROMPT_FILE:-}` in a profile: no variable, no thinking mode.
        return None if value == "" else value

    @field_validator("thinking_system_prompt_file")
    @classmethod
    def _prompt_file_is_usable(cls, path: Path | None) -> Path | None:
        if path is not None:
            read_prompt_file(path)
        return path

    def thinking_system_prompt(self) -> str | None:
        """The deep-thinking system prompt, read from its file; None when none is configured."""
        if self.thinking_system_prompt_file is None:
            return None
        return read_prompt_file(self.thinking_system_prompt_file)

    @property
    def tokenizer_path(self) -> str:
        return self.tokenizer or self.path

    @property
    def max_context(self) -> int:
        """Longest context the model serves correctly (deployments/rope)."""
        return max_supported_len(self.native_context, self.rope_scaling, self.context_limit)

    @model_validator(mode="after")
    def _read_checkpoint_facts(self) -> "ModelConfig":
        if self.native_context is not None and self.rope_scaling is not None and self.rotary_dim is not None:
            return self
        config_json = Path(self.path) / "config.json"
        if not config_json.is_file():
            if self.native_context is None:
                raise ValueError(
                    f"native_context is not set and {config_json} does not exist; set "
                    "native_context (and rope_scaling) in the profile for weights that "
                    "are not present on this machine"
                )
            return self
        hf = json.loads(config_json.read_text())
        if self.native_context is None:
            self.native_context = int(hf["max_position_embeddings"])
        if self.rope_scaling is None and hf.get("rope_scaling"):
            self.rope_scaling = dict(hf["rope_scaling"])
        # Assigned only when found: each assignment validates the model again.
        if self.rotary_dim is None and _rotary_dim(hf) is not None:
            self.rotary_dim = _rotary_dim(hf)
        return self


def _rotary_dim(hf: dict) -> int | None:
    """The rotary dimension config.json implies (head_dim x partial_rotary_factor), if it says."""
    head_dim = hf.get("head_dim")
    if head_dim is None and hf.get("hidden_size") and hf.get("num_attention_heads"):
        head_dim = int(hf["hidden_size"]) // int(hf["num_attention_heads"])
    if head_dim is None:
        return None
    return int(int(head_dim) * float(hf.get("partial_rotary_factor", 1.0)))


def read_prompt_file(path: Path) -> str:
    """A prompt file's text; ValueError naming the file and the setting when it is
    missing, unreadable, not UTF-8 or blank."""
    where = f"thinking_system_prompt_file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"{where} does not exist") from None
    except IsADirectoryError:
        raise ValueError(f"{where} is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"{where} is not readable by this process") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{where} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror}") from None
    if not text.strip():
        raise ValueError(f"{where} is empty")
    return text.strip("\n")
