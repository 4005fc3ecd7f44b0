"""The planner's memory arithmetic (cluster/planner/memory.py): what fits a GPU or a CPU worker."""

import copy
import json
import struct
from pathlib import Path

import pytest

from cluster.config import ClusterConfig, load_config, profile_path
from cluster.planner import GIB, PlanError, failures, plan_cluster
from tests.cluster.planner.synthetic import gpu_profile, plan_of


def test_capacity_reproduces_the_rough_single_request_figures():
    a100_tp1 = plan_of(gpu_profile())
    assert a100_tp1.max_tokens == pytest.approx(445_000, rel=0.03)
    h200 = gpu_profile(accelerator_type="H200")
    assert plan_of(h200).max_tokens == pytest.approx(890_000, rel=0.03)
    tp4 = gpu_profile(engine={"tensor_parallel_size": 4})
    assert plan_of(tp4).max_tokens == pytest.approx(2_100_000, rel=0.03)


def test_fp8_kv_doubles_the_tokens_that_fit():
    bf16 = plan_of(gpu_profile())
    fp8 = plan_of(gpu_profile(engine={"kv_cache_dtype": "fp8"}))
    assert fp8.kv_bytes_per_token_device * 2 == bf16.kv_bytes_per_token_device
    assert fp8.max_tokens == pytest.approx(2 * bf16.max_tokens, rel=0.001)


def test_a_million_tokens_on_80g_needs_tp4():
    raw = gpu_profile(engine={"tensor_parallel_size": 2, "max_model_len": 1048576,
                              "max_num_batched_tokens": 32768})
    plan = plan_of(raw)
    assert not plan.fits
    assert plan.min_tensor_parallel_size == 4
    assert any("needs tensor_parallel_size >= 4 on A100-80G" in p for p in plan.problems)
    raw["pools"][0]["engine"]["tensor_parallel_size"] = 4
    assert plan_of(raw).fits


def test_kv_heads_are_replicated_past_the_kv_head_count():
    raw = gpu_profile(engine={"tensor_parallel_size": 4})
    raw["models"]["m"]["architecture"] = "InternLM3ForCausalLM"
    raw["models"]["m"].update(native_context=32768, context_limit=196608,
                              rope_scaling={"rope_type": "dynamic", "factor": 6.0})
    tp4 = plan_of(raw)
    assert tp4.kv_heads_per_device == 1 and tp4.kv_heads_replicated
    # Per GPU as at TP2 (one head each), so the group stores each head twice.
    assert tp4.kv_bytes_per_token_device == 24 * 1024
    assert tp4.kv_bytes_per_token_total == 96 * 1024
    assert any("stored on 2 GPUs" in n for n in tp4.notes)
    raw["pools"][0]["engine"]["tensor_parallel_size"] = 2
    tp2 = plan_of(raw)
    assert not tp2.kv_heads_replicated and tp2.kv_bytes_per_token_total == 48 * 1024
    # TP4 gains only the memory freed by sharding the weights further.
    assert tp4.max_tokens / tp2.max_tokens < 1.1


def test_weights_that_do_not_fit_are_reported():
    plan = plan_of(gpu_profile(accelerator_type="A100-40G",
                               engine={"gpu_memory_utilization": 0.3}))
    assert not plan.fits and plan.max_tokens == 0
    assert any("exceed" in p for p in plan.problems)


def test_unknown_accelerator_needs_explicit_memory():
    raw = gpu_profile(accelerator_type="B200")
    with pytest.raises(PlanError, match="B200"):
        plan_of(raw)
    assert plan_of(raw, device_memory_gib=178.0).max_tokens > 1_000_000


def _safetensors_params(path: Path) -> int:
    with path.open("rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    total = 0
    for name, meta in header.items():
        if name != "__metadata__":
            count = 1
            for dim in meta["shape"]:
                count *= dim
            total += count
    return total


def test_cpu_demo_reads_config_json_and_plans_against_kvcache_space(demo_models):
    cluster = load_config(profile_path("cpu-demo"), env={"LONGCTX_DEMO_MODELS": str(demo_models)})
    plans = {p.pool: p for p in plan_cluster(cluster)}
    space = float(cluster.engine_env["VLLM_CPU_KVCACHE_SPACE"])
    for plan in plans.values():
        assert plan.kv_budget_gib_per_device == space
        # Tiny models are float32 (engine dtype), so KV elements are 4 bytes.
        assert plan.kv_dtype_bytes == 4
    hf = json.loads((demo_models / "tiny-internlm2_5-chat-1m" / "config.json").read_text())
    kv = 2 * hf["num_hidden_layers"] * hf["num_key_value_heads"] * hf["head_dim"] * 4
    assert plans["il25-short"].kv_bytes_per_token_device == kv
    assert plans["il25-short"].max_tokens == int(space * GIB // kv) // 16 * 16
    # The params formula agrees with what the checkpoint actually stores.
    from cluster.planner import resolve_architecture

    arch = resolve_architecture("m", cluster.models["internlm2_5-7b-chat-1m"])
    assert arch.name == "InternLM2ForCausalLM" and arch.hidden_size == hf["hidden_size"]
    stored = _safetensors_params(demo_models / "tiny-internlm2_5-chat-1m" / "model.safetensors")
    norms = 2 * arch.num_layers * arch.hidden_size + arch.hidden_size
    assert abs(arch.params - stored) <= norms


def test_cpu_profile_without_kvcache_space_fails(demo_models):
    cluster = load_config(profile_path("cpu-demo"), env={"LONGCTX_DEMO_MODELS": str(demo_models)})
    raw = cluster.model_dump(mode="json")
    raw["engine_env"] = {}
    plans = plan_cluster(ClusterConfig.model_validate(raw))
    assert all(not p.fits for p in plans)
    assert "VLLM_CPU_KVCACHE_SPACE" in failures(plans)[0]


def test_planner_does_not_mutate_the_config(profile_env):
    cluster = load_config(profile_path("a100-80g"))
    before = copy.deepcopy(cluster.model_dump())
    plan_cluster(cluster)
    assert cluster.model_dump() == before


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_tp_group_on_half_gpus_or_less_is_refused(share):
    raw = gpu_profile(engine={"tensor_parallel_size": 4, "max_model_len": 262144,
                              "gpu_memory_utilization": share},
                      worker_resources={"GPU": share})
    plan = plan_of(raw)
    assert not plan.fits
    assert any("two ranks of the group can land on the same GPU" in p for p in plan.problems)
    # A whole-GPU or TP=1 share is fine.
    raw["pools"][0]["worker_resources"] = {"GPU": 1.0}
    assert plan_of(raw).fits
    raw["pools"][0]["worker_resources"] = {"GPU": share}
    raw["pools"][0]["engine"]["tensor_parallel_size"] = 1
    raw["pools"][0]["engine"]["max_model_len"] = 65536
    raw["pools"][0]["band"] = [0, 65536]
    assert not any("same GPU" in p for p in plan_of(raw).problems)


def test_pools_sharing_one_gpu_are_told_what_their_shares_leave(profile_env):
    il25 = {p.pool: p for p in plan_cluster(load_config(profile_path("h200-1gpu")))}
    # 0.40 + 0.56 of 140.4 GiB: 5.6 GiB left, under the headroom the H200 runs showed is needed.
    note = next(n for n in il25["il25-short"].notes if n.startswith("shares one GPU with il25-long"))
    assert "sum to 0.96" in note and "leaving 5.6 GiB" in note and "out of memory" in note
    il3 = {p.pool: p for p in plan_cluster(load_config(profile_path("h200-1gpu-internlm3")))}
    note = next(n for n in il3["il3-long"].notes if n.startswith("shares one GPU with il3-short"))
    assert "sum to 0.90" in note and "leaving 14.0 GiB" in note and "out of memory" not in note


def test_pools_on_separate_gpus_get_no_shared_gpu_note(profile_env):
    # h200x4-1m: the TP=4 pool's ranks take 0.55 of four GPUs, so the shares never fit one GPU.
    plans = plan_cluster(load_config(profile_path("h200x4-1m")))
    assert not [n for p in plans for n in p.notes if n.startswith("shares one GPU")]
