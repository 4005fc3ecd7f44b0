"""A one-pool InternLM2.5 GPU profile without weights on disk, and its plan: the planner's arithmetic in isolation."""

from cluster.config import ClusterConfig
from cluster.planner import plan_pool


def gpu_profile(**pool_changes) -> dict:
    """A one-pool InternLM2.5 profile without weights on disk."""
    engine = {"tensor_parallel_size": 1, "max_model_len": 131072, "max_num_seqs": 1,
              "max_num_batched_tokens": 16384}
    engine.update(pool_changes.pop("engine", {}))
    pool = {"name": "p", "model": "m", "band": [0, engine["max_model_len"]], "engine": engine,
            "accelerator_type": "A100-80G", **pool_changes}
    return {
        "device": "gpu",
        "models": {"m": {"path": "/nonexistent", "architecture": "InternLM2ForCausalLM",
                         "native_context": 262144, "context_limit": 1048576,
                         "rope_scaling": {"type": "dynamic", "factor": 2.5}}},
        "pools": [pool],
    }


def plan_of(raw: dict, **kwargs):
    """The plan of the profile's only pool."""
    cluster = ClusterConfig.model_validate(raw)
    return plan_pool(cluster, cluster.pools[0], **kwargs)
