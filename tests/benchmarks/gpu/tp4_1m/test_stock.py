"""benchmarks/gpu/tp4_1m/stock.py without a GPU: stock vLLM gets the long pool's engine arguments."""

from benchmarks.gpu.tp4_1m import stock
from cluster.config import load_config, profile_path


def test_stock_gets_the_long_pools_engine_arguments_with_the_length_override(monkeypatch):
    monkeypatch.delenv("LONGCTX_SET", raising=False)
    config = load_config(profile_path("h200x4-1m"))
    kwargs = stock.stock_engine_kwargs(config, config.pool("il25-long"))
    assert kwargs["tensor_parallel_size"] == 4 and kwargs["max_model_len"] == 1048576
    assert kwargs["gpu_memory_utilization"] == 0.55 and kwargs["trust_remote_code"] is True
    assert kwargs["hf_overrides"]["model_max_length"] == 1048576
