"""Pool -> Ray Serve LLM config: placement bundles, engine args, autoscaling."""

from cluster.config import load_config, profile_path
from deployments.engines import llm_config_for_pool, placement_bundles, pool_deployment_name


def test_gpu_long_pool_gets_one_gpu_bundle_per_tp_worker():
    cluster = load_config(profile_path("a100-80g"), env={})
    pool = cluster.pool("il25-long")
    config = llm_config_for_pool(cluster, pool)
    assert config.placement_group_config["bundles"] == [{"GPU": 1.0}] * 4
    assert config.placement_group_config["strategy"] == "STRICT_PACK"
    assert config.accelerator_type == "A100-80G"
    assert config.engine_kwargs["tensor_parallel_size"] == 4
    assert config.engine_kwargs["max_model_len"] == 1_048_576
    assert config.engine_kwargs["max_num_seqs"] == 1
    assert config.engine_kwargs["gpu_memory_utilization"] == 0.9
    autoscaling = config.deployment_config["autoscaling_config"]
    assert (autoscaling["min_replicas"], autoscaling["max_replicas"]) == (1, 2)
    assert config.model_id == "internlm2_5-7b-chat-1m"


def test_cpu_demo_tp2_pool_uses_cpu_bundles_and_pool_env(demo_models):
    cluster = load_config(profile_path("cpu-demo"), env={})
    pool = cluster.pool("il25-long")
    assert placement_bundles(pool, "cpu") == [{"CPU": 1.0}, {"CPU": 1.0}]
    config = llm_config_for_pool(cluster, pool)
    env = config.runtime_env["env_vars"]
    assert env["VLLM_CPU_OMP_THREADS_BIND"] == "0|1"
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    # The GPU memory knob means nothing to the CPU backend.
    assert "gpu_memory_utilization" not in config.engine_kwargs
    assert config.engine_kwargs["trust_remote_code"] is True


def test_deployment_names_are_per_pool():
    assert pool_deployment_name("il25-short") == "pool-il25-short"


def test_fractional_gpu_bundles_reach_vllm_workers():
    cluster = load_config(profile_path("h200-1gpu"), env={})
    for pool in cluster.pools:
        share = pool.worker_resources["GPU"]
        env = llm_config_for_pool(cluster, pool).runtime_env["env_vars"]
        assert float(env["VLLM_RAY_PER_WORKER_GPUS"]) == share < 1
        assert placement_bundles(pool, "gpu") == [{"GPU": share}] * pool.engine.tensor_parallel_size


def test_whole_gpus_leave_vllm_default():
    cluster = load_config(profile_path("a100-80g"), env={})
    config = llm_config_for_pool(cluster, cluster.pool("il25-long"))
    assert "VLLM_RAY_PER_WORKER_GPUS" not in (config.runtime_env or {}).get("env_vars", {})


def test_stream_batching_interval_reaches_ray_serve_llm():
    cluster = load_config(profile_path("a100-80g"), ["pools.il25-long.stream_batching_interval_ms=0"], env={})
    # Ray Serve LLM reads its stream batching interval from experimental_configs.
    assert llm_config_for_pool(cluster, cluster.pool("il25-short")).experimental_configs == {
        "stream_batching_interval_ms": 10.0}
    assert llm_config_for_pool(cluster, cluster.pool("il25-long")).experimental_configs == {
        "stream_batching_interval_ms": 0.0}


def test_gpu_engines_run_the_v1_runner_where_the_rope_hook_cannot_follow_v2(monkeypatch):
    """vLLM 0.26's V2 runner is not one the per-request rotary hook follows: its GPU engines are
    told to use the V1 runner; a vLLM whose V2 runner it follows, and CPU engines, get nothing."""
    from deployments.rope import runner_hook

    cluster = load_config(profile_path("a100-80g"), env={})
    pool = cluster.pool("il25-long")

    def env_of(config):
        return (config.runtime_env or {}).get("env_vars", {})

    monkeypatch.setattr(runner_hook, "v2_runner_problem", lambda: None)
    assert "VLLM_USE_V2_MODEL_RUNNER" not in env_of(llm_config_for_pool(cluster, pool))
    monkeypatch.setattr(runner_hook, "v2_runner_problem", lambda: "prepare_inputs(batch_desc)")
    assert env_of(llm_config_for_pool(cluster, pool))["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    # A pool's own env wins.
    mine = load_config(profile_path("a100-80g"), ["pools.il25-long.env.VLLM_USE_V2_MODEL_RUNNER='1'"], env={})
    assert env_of(llm_config_for_pool(mine, mine.pool("il25-long")))["VLLM_USE_V2_MODEL_RUNNER"] == "1"
    # CPU engines run vLLM's CPU runner, a V1 runner.
    from deployments.engines import model_runner_env

    assert model_runner_env("cpu") == {}


def test_an_app_built_where_vllms_gpu_runner_cannot_import_leaves_the_runner_to_the_engines(monkeypatch):
    """A GPU-less head pod may build the app; the engines' hook still refuses a runner it cannot follow."""
    from deployments import engines
    from deployments.rope import runner_hook

    def cannot_import():
        raise ImportError("libcuda.so.1: cannot open shared object file")

    monkeypatch.setattr(runner_hook, "v2_runner_problem", cannot_import)
    assert engines.model_runner_env("gpu") == {}
