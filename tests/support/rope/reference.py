"""Plain-PyTorch reference forward pass for the tiny demo architectures.

Independent of vLLM on purpose (no vLLM import): it reads config.json and
model.safetensors from a demo checkpoint and runs InternLM2ForCausalLM (fused
``wqkv`` grouped per KV head) or InternLM3ForCausalLM (llama layout) with
full-sequence causal attention, the way HF evaluates a prompt. The rotary
base defaults to the model's dynamic NTK base for the prompt's own length
(HF ``_compute_dynamic_ntk_parameters``; TurboMind fixes the same value at
the start of a request); tests override it to show a wrong base is detected.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from deployments.rope.ntk import dynamic_ntk_base, is_dynamic_ntk


@dataclass(frozen=True)
class RopeSpec:
    theta: float
    native: int
    rope_scaling: dict | None
    rotary_dim: int

    def base_for(self, seq_len: int) -> float:
        """The model's own base for a sequence of ``seq_len`` tokens."""
        if not is_dynamic_ntk(self.rope_scaling):
            return self.theta
        factor = float(self.rope_scaling["factor"])
        return dynamic_ntk_base(self.theta, factor, self.native, seq_len, self.rotary_dim)


class ReferenceModel:
    """One tiny checkpoint, evaluated in float32 on CPU."""

    def __init__(self, model_dir: str | Path):
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        self.config = json.loads((model_dir / "config.json").read_text())
        self.weights = load_file(str(model_dir / "model.safetensors"))
        cfg = self.config
        self.kind = cfg["model_type"]
        if self.kind not in ("internlm2", "internlm3"):
            raise ValueError(f"reference supports internlm2/internlm3, not {self.kind}")
        self.hidden = cfg["hidden_size"]
        self.n_heads = cfg["num_attention_heads"]
        self.n_kv = cfg["num_key_value_heads"]
        self.head_dim = cfg.get("head_dim") or self.hidden // self.n_heads
        self.n_layers = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.rope = RopeSpec(
            theta=float(cfg.get("rope_theta", 10000.0)),
            native=int(cfg["max_position_embeddings"]),
            rope_scaling=cfg.get("rope_scaling"),
            rotary_dim=self.head_dim,
        )

    # -- pieces --------------------------------------------------------------
    def _w(self, name: str) -> torch.Tensor:
        return self.weights[name]

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        var = x.pow(2).mean(-1, keepdim=True)
        return x * torch.rsqrt(var + self.eps) * weight

    def _cos_sin(self, n: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
        d = self.rope.rotary_dim
        inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        freqs = torch.outer(torch.arange(n, dtype=torch.float), inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)  # neox layout: halves, not pairs
        return emb.cos(), emb.sin()

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return x * cos + rotated * sin

    def _qkv(self, layer: int, h: torch.Tensor):
        n, d = h.shape[0], self.head_dim
        if self.kind == "internlm2":
            qkv = h @ self._w(f"model.layers.{layer}.attention.wqkv.weight").T
            group = self.n_heads // self.n_kv
            qkv = qkv.view(n, self.n_kv, group + 2, d)
            q = qkv[:, :, :group].reshape(n, self.n_heads, d)
            k = qkv[:, :, group]
            v = qkv[:, :, group + 1]
        else:
            p = f"model.layers.{layer}.self_attn"
            q = (h @ self._w(f"{p}.q_proj.weight").T).view(n, self.n_heads, d)
            k = (h @ self._w(f"{p}.k_proj.weight").T).view(n, self.n_kv, d)
            v = (h @ self._w(f"{p}.v_proj.weight").T).view(n, self.n_kv, d)
        return q, k, v

    def _names(self, layer: int) -> dict[str, str]:
        p = f"model.layers.{layer}"
        if self.kind == "internlm2":
            return {
                "attn_norm": f"{p}.attention_norm.weight",
                "o": f"{p}.attention.wo.weight",
                "ffn_norm": f"{p}.ffn_norm.weight",
                "gate": f"{p}.feed_forward.w1.weight",
                "up": f"{p}.feed_forward.w3.weight",
                "down": f"{p}.feed_forward.w2.weight",
            }
        return {
            "attn_norm": f"{p}.input_layernorm.weight",
            "o": f"{p}.self_attn.o_proj.weight",
            "ffn_norm": f"{p}.post_attention_layernorm.weight",
            "gate": f"{p}.mlp.gate_proj.weight",
            "up": f"{p}.mlp.up_proj.weight",
            "down": f"{p}.mlp.down_proj.weight",
        }

    # -- forward -------------------------------------------------------------
    def _base(self, n: int, rope_base: float | None, ntk_seq_len: int | None) -> float:
        if rope_base is not None:
            return rope_base
        return self.rope.base_for(ntk_seq_len if ntk_seq_len is not None else n)

    def _hidden(self, ids: torch.Tensor, base: float) -> torch.Tensor:
        """Final-norm hidden states for every position."""
        n = ids.shape[0]
        embed = "model.tok_embeddings.weight" if self.kind == "internlm2" else "model.embed_tokens.weight"
        h = F.embedding(ids, self._w(embed))
        cos, sin = self._cos_sin(n, base)
        cos, sin = cos[:, None, :], sin[:, None, :]
        group = self.n_heads // self.n_kv
        for layer in range(self.n_layers):
            names = self._names(layer)
            x = self._rms(h, self._w(names["attn_norm"]))
            q, k, v = self._qkv(layer, x)
            q, k = self._rotate(q, cos, sin), self._rotate(k, cos, sin)
            # 4-D inputs with expanded KV heads take PyTorch's CPU flash
            # kernel; 3-D or enable_gqa fall back to the O(n^2)-memory path.
            attn = F.scaled_dot_product_attention(
                q.transpose(0, 1)[None],
                k.repeat_interleave(group, dim=1).transpose(0, 1)[None],
                v.repeat_interleave(group, dim=1).transpose(0, 1)[None],
                is_causal=True,
            )[0]
            h = h + attn.transpose(0, 1).reshape(n, -1) @ self._w(names["o"]).T
            x = self._rms(h, self._w(names["ffn_norm"]))
            gate = F.silu(x @ self._w(names["gate"]).T)
            h = h + (gate * (x @ self._w(names["up"]).T)) @ self._w(names["down"]).T
        return self._rms(h, self._w("model.norm.weight"))

    def _head(self) -> torch.Tensor:
        return self._w("output.weight" if self.kind == "internlm2" else "lm_head.weight")

    @torch.inference_mode()
    def logprobs(
        self,
        token_ids: list[int],
        *,
        rope_base: float | None = None,
        ntk_seq_len: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt logprobs, next-token distribution), both float64.

        The first is log p(token_i | tokens_<i) for i = 1..n-1; the second the
        full log-distribution after the last token. ``rope_base`` forces a
        base; ``ntk_seq_len`` computes the model's base for that length
        instead of the prompt's own (a pool's band maximum, or a deliberately
        wrong length).
        """
        n = len(token_ids)
        ids = torch.tensor(token_ids, dtype=torch.long)
        h = self._hidden(ids, self._base(n, rope_base, ntk_seq_len))
        head = self._head()
        targets = ids[1:]
        out = torch.empty(n - 1, dtype=torch.float64)
        # Chunked so a 12k-token prompt never materialises all logits at once.
        for start in range(0, n - 1, 2048):
            stop = min(start + 2048, n - 1)
            logp = torch.log_softmax((h[start:stop] @ head.T).double(), dim=-1)
            out[start:stop] = logp.gather(-1, targets[start:stop, None])[:, 0]
        last = torch.log_softmax((h[-1] @ head.T).double(), dim=-1)
        return out, last

    @torch.inference_mode()
    def last_distributions(
        self, token_ids: list[int], count: int, *, ntk_seq_len: int | None = None
    ) -> torch.Tensor:
        """Next-token log-distributions after each of the last ``count`` tokens,
        ``[count, vocab]`` float64, all from one forward pass: a prompt plus
        the tokens generated after it, rotated with one base throughout (as
        an engine that fixes a request's base at its start decodes).
        ``ntk_seq_len`` as in ``logprobs``; default the whole sequence's length."""
        n = len(token_ids)
        h = self._hidden(torch.tensor(token_ids, dtype=torch.long), self._base(n, None, ntk_seq_len))
        return torch.log_softmax((h[n - count :] @ self._head().T).double(), dim=-1)

    def prompt_logprobs(self, token_ids: list[int], **kwargs) -> torch.Tensor:
        """log p(token_i | tokens_<i) for i = 1..n-1 (see ``logprobs``)."""
        return self.logprobs(token_ids, **kwargs)[0]
