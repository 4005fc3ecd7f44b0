"""benchmarks/gpu/tp4_1m/summary.py: the stage files fold into tp4_1m.json with the issue's keys."""

import argparse
import json

import pytest

from benchmarks.gpu.tp4_1m import summary


def write(path, data):
    path.write_text(json.dumps(data))


def test_summary_has_the_issues_keys(tmp_path):
    versions = {"gpu": "NVIDIA H200", "gpu_count": 4, "vllm": "0.26.0", "ray": "2.58.1"}
    write(tmp_path / "tp4_ours.json", {
        "versions": versions, "command": "ours", "pools": {"il25-long": {"tp": 4}},
        "prefill": [{"tokens": 524288, "status": 200, "ttft_s": 40.0, "pool": "il25-long"},
                    {"tokens": 1048000, "status": 200, "ttft_s": 126.0, "pool": "il25-long"}],
        "decode": {"ms_per_token": 21.5},
        "kv": {"kv_tokens_vllm": 2441216, "kv_tokens_planner": 2442000}})
    write(tmp_path / "tp4_stock.json", {"prefill": [{"tokens": 1048000, "stock_s": 120.0}]})
    write(tmp_path / "tp4_correctness.json", {"agreement": [
        {"tokens": 8192, "pool": "il25-short", "max_abs_diff": 0.02, "wrong_base_diff": 5.0},
        {"tokens": 1048000, "pool": "il25-long", "max_abs_diff": 0.08, "wrong_base_diff": 7.0}]})
    out = tmp_path / "tp4_1m.json"
    summary.stage_summary(argparse.Namespace(results=tmp_path, out=out))
    s = json.loads(out.read_text())
    assert {"gpus", "tp", "prompt_tokens", "ttft_s", "stock_ttft_s", "decode_ms_per_token", "kv_tokens_vllm",
            "kv_tokens_planner", "logprob_max_abs_diff"} <= set(s)
    assert (s["gpus"], s["tp"], s["prompt_tokens"], s["ttft_s"], s["stock_ttft_s"]) == (4, 4, 1048000, 126.0, 120.0)
    assert s["ttft_over_stock"] == pytest.approx(1.05)
    assert s["logprob_max_abs_diff"] == 0.08 and s["logprob_tolerance"] == 0.08
    assert s["decode_ms_per_token"] == 21.5 and s["kv_tokens_vllm"] == 2441216
