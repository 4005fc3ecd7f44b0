"""Fixtures for the engine-level RoPE tests (issue 3).

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

# vLLM reads these in the engine processes it spawns; set before any engine.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

REPO = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class DemoModel:
    key: str
    path: Path
    native: int
    rope_scaling: dict
    # Past-window test length: >= 2x native for InternLM2, >= 4x for InternLM3.
    long_len: int
    max_model_len: int


@pytest.fixture(scope="session")
def demo_models() -> dict[str, DemoModel]:
    from cluster.demo import TINY_INTERNLM2, TINY_INTERNLM3, build_all

    root = REPO / "build" / "models"
    build_all(root)
    out = {}
    for key, spec, long_len in (
        ("internlm2", TINY_INTERNLM2, 9000),  # 2.2x native 4096
        ("internlm3", TINY_INTERNLM3, 9000),  # 4.4x native 2048
    ):
        path = root / spec.name
        cfg = json.loads((path / "config.json").read_text())
        native = int(cfg["max_position_embeddings"])
        factor = float(cfg["rope_scaling"]["factor"])
        out[key] = DemoModel(
            key=key,
            path=path,
            native=native,
            rope_scaling=dict(cfg["rope_scaling"]),
            long_len=long_len,
            max_model_len=int(native * factor),
        )
    return out


class CachedReference:
    """ReferenceModel with results memoised: several tests compare against
    the same (prompt, base) and a 9k-token reference pass costs seconds."""

    def __init__(self, path: Path):
        from tests.support.rope.reference import ReferenceModel

        self.model = ReferenceModel(path)
        self.rope = self.model.rope
        self._memo: dict = {}

    def logprobs(self, token_ids: list[int], **kwargs):
        key = (tuple(token_ids), tuple(sorted(kwargs.items())))
        if key not in self._memo:
            self._memo[key] = self.model.logprobs(token_ids, **kwargs)
        return self._memo[key]

    def prompt_logprobs(self, token_ids: list[int], **kwargs):
        return self.logprobs(token_ids, **kwargs)[0]


@pytest.fixture(scope="session")
def references(demo_models):
    return {key: CachedReference(m.path) for key, m in demo_models.items()}


class Engine:
    """One vLLM engine configured the way the serving core configures a pool."""

    def __init__(self, model: DemoModel, *, max_model_len: int, band_max_tokens: int):
        from vllm import LLM

        from deployments.rope import engine_kwargs_for_pool

        self.model = model
        self.band_max_tokens = band_max_tokens
        self.extra = engine_kwargs_for_pool(
            native_context=model.native,
            rope_scaling=model.rope_scaling,
            max_model_len=max_model_len,
            band_max_tokens=band_max_tokens,
        )
        self.llm = LLM(
            model=str(model.path),
            trust_remote_code=True,
            max_model_len=max_model_len,
            max_num_batched_tokens=4096,  # chunked prefill, as in the demo long pool
            max_num_seqs=2,
            dtype="float32",
            enforce_eager=True,
            seed=0,
            # The worker runs inside the engine-core process: one process
            # spawn less per engine, still a fresh process per engine.
            distributed_executor_backend="uni",
            **self.extra,
        )
        self._cache: dict[int, list[float]] = {}

    def prompt_logprobs(self, token_ids: list[int]) -> list[float]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from tests.support.rope.compare import prompt_logprobs_from_output

        key = hash(tuple(token_ids))
        if key not in self._cache:
            params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
            [out] = self.llm.generate(
                [TokensPrompt(prompt_token_ids=token_ids)], params, use_tqdm=False
            )
            self._cache[key] = prompt_logprobs_from_output(out, token_ids)
        return self._cache[key]

    def next_token(self, token_ids: list[int]) -> tuple[int, float, int]:
        """(greedy token, its logprob, prompt tokens served from the prefix cache)."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=0)
        [out] = self.llm.generate(
            [TokensPrompt(prompt_token_ids=token_ids)], params, use_tqdm=False
        )
        completion = out.outputs[0]
        token = completion.token_ids[0]
        return token, completion.logprobs[0][token].logprob, int(out.num_cached_tokens or 0)

    def close(self) -> None:
        engine_core = getattr(self.llm.llm_engine, "engine_core", None)
        if engine_core is not None:
            engine_core.shutdown()
        del self.llm
        gc.collect()


def _engine(request, demo_models, pool: str):
    model = demo_models[request.param]
    if pool == "short":
        # Band inside the native window, room to generate past it: the
        # plugin extends the cos/sin cache and keeps the unscaled base.
        engine = Engine(model, max_model_len=model.native + 1024, band_max_tokens=model.native)
    else:
        # Band up to long_len past the window, max_model_len = native x factor.
        engine = Engine(model, max_model_len=model.max_model_len, band_max_tokens=model.long_len)
    return engine


@pytest.fixture(scope="module", params=["internlm2", "internlm3"])
def short_pool(request, demo_models):
    engine = _engine(request, demo_models, "short")
    yield engine
    engine.close()


@pytest.fixture(scope="module", params=["internlm2", "internlm3"])
def long_pool(request, demo_models):
    engine = _engine(request, demo_models, "long")
    yield engine
    engine.close()
