"""Plain-PyTorch next-token log-probabilities of a real-width InternLM checkpoint on a GPU.

Independent of vLLM on purpose: it reads config.json and the safetensors
shards, and evaluates InternLM2ForCausalLM (fused ``wqkv`` grouped per KV
head) or InternLM3ForCausalLM (llama layout: separate q/k/v projections) in
bf16 with float32 norms and rotary angles, full causal attention through
PyTorch's SDPA, one layer at a time. Only the last position's logits
are computed. The rotary base is an argument: the pool's base (what the
served model must match) or a wrong one (to show the comparison can fail).

Memory at 1M tokens, 4096 wide: ~60 GiB of activations; the MLP is chunked.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

MLP_CHUNK = 65536

# Weight names per architecture: (embedding, final norm, output head) and,
# per layer, (attention norm, attention output, MLP norm, gate, up, down).
_NAMES = {
    "internlm2": (("model.tok_embeddings", "model.norm", "output"),
                  ("attention_norm", "attention.wo", "ffn_norm", "feed_forward.w1", "feed_forward.w3",
                   "feed_forward.w2")),
    "internlm3": (("model.embed_tokens", "model.norm", "lm_head"),
                  ("input_layernorm", "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj",
                   "mlp.up_proj", "mlp.down_proj")),
}


class InternLMReference:
    """``dtype`` is bf16 as served on the GPU; float32 checks this code against the CPU test reference."""

    def __init__(self, path: str | Path, device: str = "cuda", dtype: torch.dtype = torch.bfloat16):
        from safetensors import safe_open

        self.path = Path(path)
        self.config = json.loads((self.path / "config.json").read_text())
        self.kind = self.config["model_type"]
        if self.kind not in _NAMES:
            raise ValueError(f"reference supports {sorted(_NAMES)}, not {self.kind}")
        c = self.config
        self.heads, self.kv_heads, self.layers = c["num_attention_heads"], c["num_key_value_heads"], c["num_hidden_layers"]
        self.head_dim = c.get("head_dim", c["hidden_size"] // self.heads)
        self.device = device
        self.weights: dict[str, torch.Tensor] = {}
        for shard in sorted(self.path.glob("*.safetensors")):
            with safe_open(str(shard), framework="pt", device=device) as f:
                for name in f.keys():
                    self.weights[name] = f.get_tensor(name).to(dtype)

    def _qkv(self, p: str, hidden: torch.Tensor):
        """Query [N, heads, d], key and value [N, kv heads, d] of layer prefix ``p``."""
        w, n = self.weights, hidden.shape[0]
        nq, nkv, d = self.heads, self.kv_heads, self.head_dim
        group = nq // nkv
        if self.kind == "internlm2":
            qkv = (hidden @ w[f"{p}.attention.wqkv.weight"].T).view(n, nkv, group + 2, d)
            return (qkv[:, :, :group].reshape(n, nq, d), qkv[:, :, group].contiguous(),
                    qkv[:, :, group + 1].contiguous())
        return tuple((hidden @ w[f"{p}.self_attn.{name}_proj.weight"].T).view(n, heads, d)
                     for name, heads in (("q", nq), ("k", nkv), ("v", nkv)))

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        eps = self.config.get("rms_norm_eps", 1e-5)
        out = torch.empty_like(x)
        for start in range(0, x.shape[0], MLP_CHUNK):
            chunk = x[start:start + MLP_CHUNK].float()
            chunk = chunk * torch.rsqrt(chunk.pow(2).mean(-1, keepdim=True) + eps)
            out[start:start + MLP_CHUNK] = (chunk * weight.float()).to(x.dtype)
        return out

    def _rotate(self, x: torch.Tensor, base: float) -> torch.Tensor:
        """Neox-style rotary on [N, heads, d], angles in float64 then float32."""
        n, _, d = x.shape
        inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float64) / d))
        out = torch.empty_like(x)
        for start in range(0, n, MLP_CHUNK):
            pos = torch.arange(start, min(n, start + MLP_CHUNK), device=x.device, dtype=torch.float64)
            angles = (pos[:, None] * inv_freq[None, :]).float()
            cos, sin = angles.cos()[:, None, :], angles.sin()[:, None, :]
            chunk = x[start:start + MLP_CHUNK].float()
            x1, x2 = chunk[..., : d // 2], chunk[..., d // 2:]
            out[start:start + MLP_CHUNK] = torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).to(x.dtype)
        return out

    @torch.inference_mode()
    def next_token_logprobs(self, ids: list[int], base: float) -> torch.Tensor:
        w = self.weights
        (embed, final_norm, head), (attn_norm, attn_out, mlp_norm, gate_w, up_w, down_w) = _NAMES[self.kind]
        nq, d, layers = self.heads, self.head_dim, self.layers
        group = nq // self.kv_heads
        tokens = torch.tensor(ids, device=self.device)
        x = w[f"{embed}.weight"][tokens]
        for layer in range(layers):
            p = f"model.layers.{layer}"
            last = layer == layers - 1
            hidden = self._norm(x, w[f"{p}.{attn_norm}.weight"])
            q, k, v = self._qkv(p, hidden)
            del hidden
            q, k = self._rotate(q, base), self._rotate(k, base)
            k = k.repeat_interleave(group, dim=1).transpose(0, 1)[None]
            v = v.repeat_interleave(group, dim=1).transpose(0, 1)[None]
            if last:
                # Only the last position feeds the logits: one query, all keys.
                attn = F.scaled_dot_product_attention(q[-1:].transpose(0, 1)[None], k, v)
                attn = attn[0].transpose(0, 1).reshape(1, nq * d)
                x = x[-1:] + attn @ w[f"{p}.{attn_out}.weight"].T
            else:
                attn = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k, v, is_causal=True)
                del q
                attn = attn[0].transpose(0, 1).reshape(x.shape[0], nq * d)
                x = x + attn @ w[f"{p}.{attn_out}.weight"].T
            del k, v, attn
            hidden = self._norm(x, w[f"{p}.{mlp_norm}.weight"])
            for start in range(0, x.shape[0], MLP_CHUNK):
                chunk = hidden[start:start + MLP_CHUNK]
                gate = F.silu(chunk @ w[f"{p}.{gate_w}.weight"].T) * (chunk @ w[f"{p}.{up_w}.weight"].T)
                x[start:start + MLP_CHUNK] += gate @ w[f"{p}.{down_w}.weight"].T
            del hidden
        final = self._norm(x[-1:], w[f"{final_norm}.weight"])
        logits = (final @ w[f"{head}.weight"].T).float()[0]
        return torch.log_softmax(logits, dim=-1)
