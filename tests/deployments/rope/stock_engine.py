"""Run stock vLLM (the internlm_rope plugin disabled) and dump prompt logprobs.

Used by test_stock.py in a subprocess so that the plugin registered in the
pytest process cannot leak in. Usage::

    VLLM_PLUGINS="" python stock_engine.py OUT.json MODEL_DIR:MAX_MODEL_LEN:LEN,LEN ...
"""

from __future__ import annotations

import json
import math
import os
import sys


def main() -> None:
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.model_executor.custom_op import op_registry_oot

    from tests.support.rope.compare import prompt_logprobs_from_output, random_prompt

    out_path, *jobs = sys.argv[1:]
    results: dict[str, dict[str, list[float | None]]] = {}
    for job in jobs:
        model_dir, max_model_len, lengths = job.split(":")
        llm = LLM(
            model=model_dir,
            trust_remote_code=True,
            max_model_len=int(max_model_len),
            max_num_batched_tokens=4096,
            dtype="float32",
            enforce_eager=True,
            enable_prefix_caching=False,
            seed=0,
        )
        # The plugin must really be off, or this would not be "stock".
        assert "DynamicNTKScalingRotaryEmbedding" not in op_registry_oot
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0)
        per_len = {}
        for n in (int(x) for x in lengths.split(",")):
            ids = random_prompt(n)
            [out] = llm.generate([TokensPrompt(prompt_token_ids=ids)], params, use_tqdm=False)
            # JSON has no NaN; None marks a non-finite logprob.
            per_len[str(n)] = [
                v if math.isfinite(v) else None for v in prompt_logprobs_from_output(out, ids)
            ]
        results[model_dir] = per_len
        llm.llm_engine.engine_core.shutdown()
        del llm
    with open(out_path, "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    if os.environ.get("VLLM_PLUGINS") != "":
        sys.exit("run with VLLM_PLUGINS='' so no general plugin is loaded")
    main()
