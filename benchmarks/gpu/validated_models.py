"""The models the GPU validation covers: each one's profiles, pools, checkpoint and sizes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The first model validated: its stage files have no prefix, and the
# overhead, doc_qa, kv_tier and tp4_1m runs serve it whatever --model says.
DEFAULT_MODEL = "internlm2_5-7b-chat-1m"


@dataclass(frozen=True)
class ValidatedModel:
    """One model's run of the serve, stock and correctness stages of benchmarks/gpu/validate/."""

    model: str
    # The variable the serve profile reads for the full checkpoint's path.
    checkpoint_env: str
    serve_profile: Path
    correctness_profile: Path
    short_pool: str
    long_pool: str
    # (c) cold prefill sizes; the long pool's largest prompt is added to them.
    prefill_sizes: tuple[int, ...]
    # (b) one inside the native window (the bf16 floor), the rest past it.
    correctness_sizes: tuple[int, ...]
    # Stage files: RESULTS/<prefix><stage>.json ("" keeps the first model's names).
    results_prefix: str


VALIDATED_MODELS = {
    "internlm2_5-7b-chat-1m": ValidatedModel(
        model="internlm2_5-7b-chat-1m", checkpoint_env="INTERNLM25_1M_PATH",
        serve_profile=REPO / "deployments" / "h200-1gpu.yaml",
        correctness_profile=REPO / "benchmarks" / "profiles" / "gpu-correctness-h200.yaml",
        short_pool="il25-short", long_pool="il25-long",
        prefill_sizes=(32768, 131072), correctness_sizes=(8192, 300_000, 500_000), results_prefix=""),
    # Native window 32,768, dynamic x6 to 196,608: 32,000 stays in the short
    # pool (prompt + 1 generated token), 100k and 196k are past the window.
    "internlm3-8b-instruct": ValidatedModel(
        model="internlm3-8b-instruct", checkpoint_env="INTERNLM3_PATH",
        serve_profile=REPO / "deployments" / "h200-1gpu-internlm3.yaml",
        correctness_profile=REPO / "benchmarks" / "profiles" / "gpu-correctness-internlm3-h200.yaml",
        short_pool="il3-short", long_pool="il3-long",
        prefill_sizes=(32000, 131072), correctness_sizes=(8192, 100_000, 196_000), results_prefix="internlm3-"),
}
