"""Fixtures for the engine-level RoPE tests (issues 3 and 28).

Engines are real vLLM CPU engines over the tiny demo checkpoints; one engine
is alive at a time (module-scoped, parametrised by model) so the suite fits
two cores and a few GB of RAM.
"""

from __future__ import annotations

import gc
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import lanes

# vLLM reads these in the engine processes it spawns; set before any engine.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class DemoModel:
    key: str
    path: Path
    native: int
    rope_scaling: dict
    max_model_len: int
    # The CPU demo profile's bands for this model, in order (deployments/cpu-demo.yaml).
    bands: tuple[tuple[int, int], ...]


@pytest.fixture(scope="session")
def demo_models() -> dict[str, DemoModel]:
    import yaml

    from cluster.demo import TINY_INTERNLM2, TINY_INTERNLM3, build_all

    root = REPO / "build" / "models"
    build_all(root)
    profile = yaml.safe_load((REPO / "deployments" / "cpu-demo.yaml").read_text())
    out = {}
    for key, spec in (("internlm2", TINY_INTERNLM2), ("internlm3", TINY_INTERNLM3)):
        path = root / spec.name
        cfg = json.loads((path / "config.json").read_text())
        native = int(cfg["max_position_embeddings"])
        factor = float(cfg["rope_scaling"]["factor"])
        served = [name for name, m in profile["models"].items() if Path(m["path"]).name == spec.name]
        bands = sorted(tuple(p["band"]) for p in profile["pools"] if p["model"] in served)
        assert bands, f"no pool of {spec.name} in the CPU demo profile"
        out[key] = DemoModel(
            key=key,
            path=path,
            native=native,
            rope_scaling=dict(cfg["rope_scaling"]),
            max_model_len=int(native * factor),
            bands=tuple(bands),
        )
    return out


class CachedReference:
    """ReferenceModel with results memoised: several checks compare against
    the same (tokens, base) and a 10k-token reference pass costs seconds."""

    def __init__(self, path: Path):
        from tests.support.rope.reference import ReferenceModel

        self.model = ReferenceModel(path)
        self.rope = self.model.rope
        self._memo: dict = {}

    def last_distributions(self, token_ids: list[int], count: int, *, ntk_seq_len: int):
        key = (tuple(token_ids), count, ntk_seq_len)
        if key not in self._memo:
            self._memo[key] = self.model.last_distributions(token_ids, count, ntk_seq_len=ntk_seq_len)
        return self._memo[key]


@pytest.fixture(scope="session")
def references(demo_models):
    return {key: CachedReference(m.path) for key, m in demo_models.items()}


@dataclass(frozen=True)
class Ask:
    """One request: its prompt and the rotary length it carries (None: no key)."""

    token_ids: list[int]
    seq_len: int | None


@dataclass(frozen=True)
class Answer:
    tokens: list[int]
    # Per generated token, the engine's top-k {token: logprob}.
    top: list[dict[int, float]]
    # Prompt tokens served from the prefix cache.
    cached: int


class Engine:
    """One vLLM engine configured the way the serving core configures a pool
    whose band reaches ``band_max_tokens`` (the pool base for requests
    without a length of their own)."""

    def __init__(self, model: DemoModel, *, max_model_len: int, band_max_tokens: int):
        from vllm import LLM

        from deployments.rope import engine_kwargs_for_pool

        self.model = model
        self.band_max_tokens = band_max_tokens
        self.llm = LLM(
            model=str(model.path),
            trust_remote_code=True,
            max_model_len=max_model_len,
            max_num_batched_tokens=4096,  # chunked prefill, as in the demo long pool
            # Several requests per step, so one batch mixes rotary bases.
            max_num_seqs=4,
            dtype="float32",
            enforce_eager=True,
            seed=0,
            # The worker runs inside the engine-core process: one process
            # spawn less per engine, still a fresh process per engine.
            distributed_executor_backend="uni",
            num_gpu_blocks_override=lanes.kv_blocks(65_536),
            **engine_kwargs_for_pool(
                native_context=model.native,
                rope_scaling=model.rope_scaling,
                max_model_len=max_model_len,
                band_max_tokens=band_max_tokens,
            ),
        )

    def generate(self, asks: list[Ask], *, max_tokens: int, top_k: int) -> list[Answer]:
        """All asks in one call, so the scheduler batches them together.

        Each carries vLLM's cache_salt for its length, as the ingress sets it:
        KV computed under one base must not serve another."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from deployments.rope import ROPE_SEQ_LEN_XARG

        prompts, params = [], []
        for ask in asks:
            extra = None if ask.seq_len is None else {ROPE_SEQ_LEN_XARG: ask.seq_len}
            prompt = TokensPrompt(prompt_token_ids=ask.token_ids)
            if ask.seq_len is not None:
                prompt["cache_salt"] = f"rope-{ask.seq_len}"
            prompts.append(prompt)
            params.append(SamplingParams(max_tokens=max_tokens, temperature=0.0, logprobs=top_k,
                                         ignore_eos=True, extra_args=extra))
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [
            Answer(
                tokens=list(out.outputs[0].token_ids),
                top=[{t: lp.logprob for t, lp in step.items()} for step in out.outputs[0].logprobs],
                cached=int(out.num_cached_tokens or 0),
            )
            for out in outputs
        ]

    def close(self) -> None:
        engine_core = getattr(self.llm.llm_engine, "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        del self.llm
        gc.collect()
