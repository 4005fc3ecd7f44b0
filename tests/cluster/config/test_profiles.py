"""Config schema: loading, overrides and the validation rules of pools."""

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from cluster.config import ClusterConfig, apply_override, load_config, profile_path

BASE = {
    "device": "gpu",
    "models": {
        "m": {"path": "/nonexistent/m", "native_context": 4096,
              "rope_scaling": {"type": "dynamic", "factor": 2.5}},
    },
    "pools": [
        {"name": "short", "model": "m", "band": [0, 2048], "engine": {"max_model_len": 2048}},
        {"name": "long", "model": "m", "band": [2049, 10240],
         "engine": {"max_model_len": 10240, "tensor_parallel_size": 4}},
    ],
}


def raw(**changes):
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        apply_override(data, f"{key}={value}")
    return data


def test_valid_profile_loads():
    cluster = ClusterConfig.model_validate(raw())
    assert [p.name for p in cluster.pools_of("m")] == ["short", "long"]
    assert cluster.models["m"].max_context == 10240


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pools.long.band": "[2000, 10240]"}, "overlap"),
        ({"pools.long.band": "[3000, 10240]"}, "gap"),
        ({"pools.short.band": "[100, 2048]"}, "must start at 0 or 1"),
        ({"pools.long.band": "[2049, 20000]"}, "exceeds engine.max_model_len"),
        ({"pools.long.band": "[5000, 2049]"}, "min_tokens <= max_tokens"),
        ({"pools.long.engine.max_model_len": "20000", "pools.long.band": "[2049, 20000]"},
         "exceeds what m supports"),
        ({"pools.long.model": "other"}, "unknown model"),
        ({"pools.long.name": "short"}, "unique"),
        ({"pools.long.engine.tensor_parallel_size": "0"}, "greater than or equal to 1"),
        ({"pools.short.replicas.min": "3", "pools.short.replicas.max": "2"}, "exceeds replicas.max"),
        ({"pools.short.engine.gpu_memory_utilization": "1.5"}, "less than or equal to 1"),
        ({"pools.short.engine.kv_cache_dtype": "int3"}, "kv_cache_dtype"),
        ({"pools.short.engine.unknown_knob": "1"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_profiles_are_refused_with_a_reason(changes, message):
    with pytest.raises(ValidationError, match=message):
        ClusterConfig.model_validate(raw(**changes))


def test_native_context_required_when_weights_absent():
    data = raw()
    del data["models"]["m"]["native_context"]
    with pytest.raises(ValidationError, match="native_context is not set"):
        ClusterConfig.model_validate(data)


def test_native_context_read_from_config_json(tmp_path):
    (tmp_path / "config.json").write_text(
        '{"max_position_embeddings": 2048, "rope_scaling": {"rope_type": "dynamic", "factor": 6.0}}'
    )
    data = raw()
    data["models"]["m"] = {"path": str(tmp_path)}
    data["pools"][1]["band"] = [2049, 12288]
    data["pools"][1]["engine"]["max_model_len"] = 12288
    cluster = ClusterConfig.model_validate(data)
    assert cluster.models["m"].native_context == 2048
    assert cluster.models["m"].max_context == 12288


def test_env_expansion_and_overrides(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text(
        "models:\n  m:\n    path: ${WEIGHTS:-/default}/m\n    native_context: 4096\n"
        "pools:\n  - {name: only, model: m, band: [0, 4096], engine: {max_model_len: 4096}}\n"
    )
    cluster = load_config(profile, ["pools.only.replicas.max=3"],
                          env={"WEIGHTS": "/w", "LONGCTX_SET": "pools.only.replicas.min=2"})
    assert cluster.models["m"].path == "/w/m"
    assert (cluster.pools[0].replicas.min, cluster.pools[0].replicas.max) == (2, 3)
    assert load_config(profile, env={}).models["m"].path == "/default/m"


def test_bad_override_is_reported():
    with pytest.raises(ValueError, match="no entry named"):
        apply_override(raw(), "pools.nope.replicas.max=1")
    with pytest.raises(ValueError, match="key.path=value"):
        apply_override(raw(), "pools")


@pytest.mark.parametrize("name", ["cpu-demo", "a100-80g"])
def test_bundled_profiles_validate(name):
    cluster = load_config(profile_path(name), env={})
    for model in cluster.models:
        pools = cluster.pools_of(model)
        assert pools[0].min_tokens == 0
    assert len(cluster.pools_of("internlm2_5-7b-chat-1m")) >= 2


def test_a100_profile_reaches_one_million_tokens_on_tp4():
    cluster = load_config(profile_path("a100-80g"), env={})
    long_pool = cluster.pools_of("internlm2_5-7b-chat-1m")[-1]
    assert long_pool.max_tokens == 1_048_576
    assert long_pool.engine.tensor_parallel_size == 4


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[3] / "deployments").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_shipped_profile_states_trust_remote_code_for_each_model(path):
    # Running a repository's code is a choice the profile makes per model, in writing.
    raw = yaml.safe_load(path.read_text())
    assert {name: "trust_remote_code" in model for name, model in raw["models"].items()} == \
        {name: True for name in raw["models"]}
    cluster = load_config(path, env={})
    assert all(model.trust_remote_code for model in cluster.models.values())
