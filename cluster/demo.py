"""Build the tiny demo checkpoints the CPU profile serves.

No machine here can download real weights, so the demo runs the real
architectures (InternLM2ForCausalLM for InternLM2.5-7B-Chat-1M,
InternLM3ForCausalLM for InternLM3-8B-Instruct) shrunk to a few layers, with:

* random weights of realistic scale written as safetensors, so vLLM's real
  weight loader runs and attention depends on position (vLLM's dummy loader
  draws from +-1e-3, which makes attention nearly uniform and hides RoPE bugs);
* a byte-level BPE tokenizer trained offline on local text, carrying the
  ChatML special tokens and InternLM's chat template;
* the originals' GQA ratio, rope scaling type and factor, and a native window
  small enough that the long pools reach past it.

The build is deterministic (fixed seeds, sorted corpus) and idempotent: a
directory whose stamp matches the spec is left alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ASSETS = Path(__file__).parent / "demo_assets"

SPECIAL_TOKENS = [
    "<unk>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "<|action_start|>",
    "<|action_end|>",
    "<|interpreter|>",
    "<|plugin|>",
]
IM_END = SPECIAL_TOKENS.index("<|im_end|>")
EOS = SPECIAL_TOKENS.index("</s>")

# InternLM2.5-Chat's ChatML template, as published in its tokenizer_config.json.
CHATML_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class TinyModelSpec:
    """Shape of one tiny checkpoint; the fields mirror config.json."""

    name: str
    architecture: str
    model_type: str
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int
    rope_theta: float
    rope_scaling: dict
    vocab_size: int = 8192
    # Std of the q/k projections: large enough that attention is sharp and
    # therefore sensitive to positions (see module docstring).
    qk_init_std: float = 0.08
    init_std: float = 0.02
    seed: int = 0
    extra_config: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def fingerprint(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        payload += (ASSETS / f"configuration_{self.model_type}.py").read_bytes()
        return hashlib.sha256(payload + BUILDER_VERSION.encode()).hexdigest()[:16]


BUILDER_VERSION = "1"

# InternLM2.5-7B-Chat-1M: 32 heads / 8 KV heads (GQA 4), dynamic NTK x2.5.
TINY_INTERNLM2 = TinyModelSpec(
    name="tiny-internlm2_5-chat-1m",
    architecture="InternLM2ForCausalLM",
    model_type="internlm2",
    hidden_size=512,
    intermediate_size=1792,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    rope_theta=50_000_000.0,
    rope_scaling={"type": "dynamic", "factor": 2.5},
    seed=25,
    extra_config={"bias": False},
)

# InternLM3-8B-Instruct: llama layout, 32 heads / 2 KV heads (GQA 16), dynamic x6.
TINY_INTERNLM3 = TinyModelSpec(
    name="tiny-internlm3-8b-instruct",
    architecture="InternLM3ForCausalLM",
    model_type="internlm3",
    hidden_size=512,
    intermediate_size=1280,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=1,
    max_position_embeddings=2048,
    rope_theta=50_000_000.0,
    rope_scaling={"rope_type": "dynamic", "factor": 6.0},
    seed=3,
    extra_config={"bias": False, "qkv_bias": False},
)

DEMO_MODELS = (TINY_INTERNLM2, TINY_INTERNLM3)


def _corpus_files() -> list[Path]:
    """Local English-ish text: the Python standard library's sources and docs."""
    stdlib = Path(shutil.__file__).parent
    files = sorted(p for p in stdlib.glob("*.py") if p.is_file())
    return files[:400]


def build_tokenizer(vocab_size: int):
    """Train a byte-level BPE on local text, with ChatML special tokens first."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def lines():
        for path in _corpus_files():
            yield path.read_text(encoding="utf-8", errors="ignore")

    tokenizer.train_from_iterator(lines(), trainer=trainer)
    # Plain completions get a BOS like the SentencePiece originals; the chat
    # template writes its own BOS and is tokenized without special tokens.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", 1)]
    )
    return tokenizer


def _tokenizer_files(out: Path, tokenizer, spec: TinyModelSpec) -> None:
    tokenizer.save(str(out / "tokenizer.json"))
    added = {
        str(i): {"content": tok, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": True}
        for i, tok in enumerate(SPECIAL_TOKENS)
    }
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": spec.max_position_embeddings
        * int(spec.rope_scaling.get("factor", 1)),
        "added_tokens_decoder": added,
        "additional_special_tokens": SPECIAL_TOKENS[3:],
        "chat_template": CHATML_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=2))
    (out / "chat_template.jinja").write_text(CHATML_TEMPLATE)
    (out / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
                    "pad_token": "</s>"}, indent=2)
    )


def _config_json(spec: TinyModelSpec, vocab_size: int) -> dict:
    module = f"configuration_{spec.model_type}"
    cls = "InternLM2Config" if spec.model_type == "internlm2" else "InternLM3Config"
    return {
        "architectures": [spec.architecture],
        "auto_map": {"AutoConfig": f"{module}.{cls}"},
        "model_type": spec.model_type,
        "hidden_size": spec.hidden_size,
        "intermediate_size": spec.intermediate_size,
        "num_hidden_layers": spec.num_hidden_layers,
        "num_attention_heads": spec.num_attention_heads,
        "num_key_value_heads": spec.num_key_value_heads,
        "head_dim": spec.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": spec.max_position_embeddings,
        "rope_theta": spec.rope_theta,
        "rope_scaling": spec.rope_scaling,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab_size,
        "bos_token_id": 1,
        "eos_token_id": EOS,
        "pad_token_id": EOS,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
        **spec.extra_config,
    }


def iter_weights(spec: TinyModelSpec, vocab_size: int, normal, ones):
    """(name, tensor) of every weight, in a fixed draw order.

    ``normal(*shape, std=...)`` and ``ones(n)`` make the tensors, so the demo
    (float32 on the CPU) and the real-size builder (bf16, drawn on a GPU,
    cluster/real_size.py) share the layout: InternLM2's fused ``wqkv`` grouped
    per KV head, or InternLM3's llama layout.
    """
    import torch

    h, i, d = spec.hidden_size, spec.intermediate_size, spec.head_dim
    nq, nkv = spec.num_attention_heads, spec.num_key_value_heads
    if spec.model_type == "internlm2":
        yield "model.tok_embeddings.weight", normal(vocab_size, h)
        yield "model.norm.weight", ones(h)
        yield "output.weight", normal(vocab_size, h)
        group = nq // nkv
        for layer in range(spec.num_hidden_layers):
            p = f"model.layers.{layer}"
            # wqkv is grouped per KV head: [q x group, k, v] for each KV head.
            wq = normal(nkv, group, d, h, std=spec.qk_init_std)
            wk = normal(nkv, 1, d, h, std=spec.qk_init_std)
            wv = normal(nkv, 1, d, h)
            yield f"{p}.attention.wqkv.weight", torch.cat([wq, wk, wv], dim=1).reshape(-1, h).contiguous()
            yield f"{p}.attention.wo.weight", normal(h, nq * d)
            yield f"{p}.feed_forward.w1.weight", normal(i, h)
            yield f"{p}.feed_forward.w3.weight", normal(i, h)
            yield f"{p}.feed_forward.w2.weight", normal(h, i)
            yield f"{p}.attention_norm.weight", ones(h)
            yield f"{p}.ffn_norm.weight", ones(h)
    else:
        yield "model.embed_tokens.weight", normal(vocab_size, h)
        yield "model.norm.weight", ones(h)
        yield "lm_head.weight", normal(vocab_size, h)
        for layer in range(spec.num_hidden_layers):
            p = f"model.layers.{layer}"
            yield f"{p}.self_attn.q_proj.weight", normal(nq * d, h, std=spec.qk_init_std)
            yield f"{p}.self_attn.k_proj.weight", normal(nkv * d, h, std=spec.qk_init_std)
            yield f"{p}.self_attn.v_proj.weight", normal(nkv * d, h)
            yield f"{p}.self_attn.o_proj.weight", normal(h, nq * d)
            yield f"{p}.mlp.gate_proj.weight", normal(i, h)
            yield f"{p}.mlp.up_proj.weight", normal(i, h)
            yield f"{p}.mlp.down_proj.weight", normal(h, i)
            yield f"{p}.input_layernorm.weight", ones(h)
            yield f"{p}.post_attention_layernorm.weight", ones(h)


def _weights(spec: TinyModelSpec, vocab_size: int) -> dict:
    import torch

    gen = torch.Generator().manual_seed(spec.seed)

    def normal(*shape, std=spec.init_std):
        return (torch.randn(*shape, generator=gen) * std).contiguous()

    return dict(iter_weights(spec, vocab_size, normal, torch.ones))


def build_model(spec: TinyModelSpec, root: Path, *, force: bool = False) -> Path:
    """Write one tiny checkpoint under ``root/spec.name``; return its path."""
    from safetensors.torch import save_file

    out = root / spec.name
    stamp = out / ".demo-build"
    if not force and stamp.exists() and stamp.read_text() == spec.fingerprint():
        return out
    tmp = root / f".{spec.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tokenizer = build_tokenizer(spec.vocab_size)
    vocab_size = tokenizer.get_vocab_size()
    _tokenizer_files(tmp, tokenizer, spec)
    shutil.copy(ASSETS / f"configuration_{spec.model_type}.py", tmp)
    (tmp / "config.json").write_text(json.dumps(_config_json(spec, vocab_size), indent=2))
    (tmp / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 1, "eos_token_id": [EOS, IM_END]}, indent=2)
    )
    save_file(_weights(spec, vocab_size), str(tmp / "model.safetensors"),
              metadata={"format": "pt"})
    (tmp / ".demo-build").write_text(spec.fingerprint())
    # Swap in atomically so a half-written model is never served.
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def build_all(root: Path, *, force: bool = False) -> list[Path]:
    paths = []
    for spec in DEMO_MODELS:
        print(f"demo model {spec.name} -> {root / spec.name}", file=sys.stderr)
        paths.append(build_model(spec, root, force=force))
    return paths
