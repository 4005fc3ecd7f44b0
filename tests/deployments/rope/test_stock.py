"""Stock vLLM fails the reference comparison past the native window.

This is what makes the agreement tests meaningful: the same comparison that
passes for the fixed engine fails for the engine without the fix, while
stock still agrees inside the window (so the reference itself is right).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.rope.compare import TOLERANCE, max_abs_diff, random_prompt

INSIDE = 1500


@pytest.fixture(scope="module")
def stock_logprobs(demo_models, tmp_path_factory):
    out = tmp_path_factory.mktemp("stock") / "stock.json"
    jobs = [
        f"{m.path}:{m.max_model_len}:{INSIDE},{m.long_len}" for m in demo_models.values()
    ]
    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, VLLM_PLUGINS="", PYTHONPATH=str(repo))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("stock_engine.py")), str(out), *jobs],
        cwd=repo, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    data = json.loads(out.read_text())
    return {
        key: {int(n): [math.nan if v is None else v for v in vals]
              for n, vals in data[str(m.path)].items()}
        for key, m in demo_models.items()
    }


@pytest.mark.parametrize("key", ["internlm2", "internlm3"])
def test_stock_agrees_inside_native_window(key, stock_logprobs, references):
    ids = random_prompt(INSIDE)
    diff = max_abs_diff(stock_logprobs[key][INSIDE], references[key].prompt_logprobs(ids))
    print(f"stock {key} len={INSIDE} max|diff|={diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("key", ["internlm2", "internlm3"])
def test_stock_fails_past_native_window(key, stock_logprobs, references, demo_models):
    n = demo_models[key].long_len
    engine = stock_logprobs[key][n]
    nonfinite = sum(1 for v in engine if not math.isfinite(v))
    diff = max_abs_diff(engine, references[key].prompt_logprobs(random_prompt(n)))
    print(f"stock {key} len={n} non-finite={nonfinite} max|diff|={diff:.3g}")
    assert diff > 100 * TOLERANCE
