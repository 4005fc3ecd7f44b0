"""benchmarks/gpu/tp4_1m.py (issue 12) without a GPU: what it reads, sends and sums up."""

import argparse
import json

import pytest

from benchmarks.gpu import tp4_1m
from cluster.config import load_config, profile_path


def test_kv_capacity_is_read_from_the_long_engines_log_line(tmp_path):
    (tmp_path / "serve").mkdir()
    (tmp_path / "worker-1.err").write_text(
        "INFO kv_cache_utils.py] GPU KV cache size: 317,440 tokens, Maximum concurrency for 262,144 "
        "tokens per request: 1.21x\n")
    (tmp_path / "serve" / "replica_pool-il25-long.log").write_text(
        "(EngineCore pid=7) INFO GPU KV cache size: 2,441,216 tokens, Maximum concurrency for 1,048,576 "
        "tokens per request: 2.33x\n")
    assert tp4_1m.kv_tokens_from_logs(tmp_path, 1048576) == [2441216]
    assert tp4_1m.kv_tokens_from_logs(tmp_path, 262144) == [317440]


def test_kv_capacity_from_rays_export_of_the_cache_config_gauge():
    text = "\n".join([
        "# HELP ray_vllm_cache_config_info Information of the LLMEngine CacheConfig",
        'ray_vllm_cache_config_info{block_size="16",gpu_memory_utilization="0.55",num_gpu_blocks="152576"} 1.0',
        'ray_vllm_cache_config_info{block_size="16",gpu_memory_utilization="0.4",num_gpu_blocks="None"} 1.0',
        'ray_vllm_num_requests_running{engine="0"} 0.0',
    ])
    assert tp4_1m.kv_tokens_from_metrics(text) == [
        {"num_gpu_blocks": 152576, "block_size": 16, "tokens": 2441216, "gpu_memory_utilization": "0.55"}]


def test_stock_gets_the_long_pools_engine_arguments_with_the_length_override(monkeypatch):
    monkeypatch.delenv("LONGCTX_SET", raising=False)
    config = load_config(profile_path("h200x4-1m"))
    kwargs = tp4_1m.stock_engine_kwargs(config, config.pool("il25-long"))
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["max_model_len"] == 1048576
    assert kwargs["gpu_memory_utilization"] == 0.55 and kwargs["trust_remote_code"] is True
    assert kwargs["hf_overrides"]["model_max_length"] == 1048576


def test_ours_and_stock_send_the_same_prompt():
    assert tp4_1m.prompt_ids(1000) == tp4_1m.prompt_ids(1000)
    assert tp4_1m.prompt_ids(1000) != tp4_1m.prompt_ids(1001)[:1000]


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
    tp4_1m.stage_summary(argparse.Namespace(results=tmp_path, out=out))
    s = json.loads(out.read_text())
    assert {"gpus", "tp", "prompt_tokens", "ttft_s", "stock_ttft_s", "decode_ms_per_token", "kv_tokens_vllm",
            "kv_tokens_planner", "logprob_max_abs_diff"} <= set(s)
    assert (s["gpus"], s["tp"], s["prompt_tokens"], s["ttft_s"], s["stock_ttft_s"]) == (4, 4, 1048000, 126.0, 120.0)
    assert s["ttft_over_stock"] == pytest.approx(1.05)
    assert s["logprob_max_abs_diff"] == 0.08 and s["logprob_tolerance"] == 0.08
    assert s["decode_ms_per_token"] == 21.5 and s["kv_tokens_vllm"] == 2441216
