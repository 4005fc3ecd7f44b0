"""benchmarks/gpu/tp4_1m/ours.py without a GPU: the KV capacity vLLM reports, from its log line and its gauge."""

from benchmarks.gpu.tp4_1m import ours


def test_kv_capacity_is_read_from_the_long_engines_log_line(tmp_path):
    (tmp_path / "serve").mkdir()
    (tmp_path / "worker-1.err").write_text(
        "INFO kv_cache_utils.py] GPU KV cache size: 317,440 tokens, Maximum concurrency for 262,144 "
        "tokens per request: 1.21x\n")
    (tmp_path / "serve" / "replica_pool-il25-long.log").write_text(
        "(EngineCore pid=7) INFO GPU KV cache size: 2,441,216 tokens, Maximum concurrency for 1,048,576 "
        "tokens per request: 2.33x\n")
    assert ours.kv_tokens_from_logs(tmp_path, 1048576) == [2441216]
    assert ours.kv_tokens_from_logs(tmp_path, 262144) == [317440]


def test_kv_capacity_from_rays_export_of_the_cache_config_gauge():
    text = "\n".join([
        "# HELP ray_vllm_cache_config_info Information of the LLMEngine CacheConfig",
        'ray_vllm_cache_config_info{block_size="16",gpu_memory_utilization="0.55",num_gpu_blocks="152576"} 1.0',
        'ray_vllm_cache_config_info{block_size="16",gpu_memory_utilization="0.4",num_gpu_blocks="None"} 1.0',
        'ray_vllm_num_requests_running{engine="0"} 0.0',
    ])
    assert ours.kv_tokens_from_metrics(text) == [
        {"num_gpu_blocks": 152576, "block_size": 16, "tokens": 2441216, "gpu_memory_utilization": "0.55"}]
