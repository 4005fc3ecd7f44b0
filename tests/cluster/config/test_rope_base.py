"""A pool's rope_base setting: modes, the bucket ratio, and the rotary dimension it needs."""

import pytest
from pydantic import ValidationError

from cluster.config import ClusterConfig, load_config, profile_path

MODEL = {"path": "/nonexistent", "native_context": 32768, "rope_scaling": {"rope_type": "dynamic", "factor": 6.0}}


def cluster_with(rope_base: dict | None, **model) -> ClusterConfig:
    pool = {"name": "p", "model": "m", "band": [0, 196608], "engine": {"max_model_len": 196608}}
    if rope_base is not None:
        pool["rope_base"] = rope_base
    return ClusterConfig.model_validate({"models": {"m": {**MODEL, **model}}, "pools": [pool]})


def test_default_is_one_base_per_pool():
    rope = cluster_with(None).pools[0].rope_base
    assert (rope.mode, rope.bucket_ratio) == ("pool", 1.25)


@pytest.mark.parametrize("rope_base, field", [
    ({"mode": "token"}, "mode"),
    ({"mode": "bucket", "bucket_ratio": 1.0}, "bucket_ratio"),
    ({"mode": "bucket", "bucket_ratio": 5}, "bucket_ratio"),
    ({"mode": "bucket", "ratio": 1.5}, "ratio"),
])
def test_bad_settings_are_refused_naming_the_field(rope_base, field):
    with pytest.raises(ValidationError, match=field):
        cluster_with(rope_base, rotary_dim=128)


@pytest.mark.parametrize("mode", ["request", "bucket"])
def test_per_request_modes_need_the_rotary_dimension(mode):
    with pytest.raises(ValidationError, match=f"rope_base.mode {mode} needs the rotary dimension.*rotary_dim"):
        cluster_with({"mode": mode})
    assert cluster_with({"mode": mode}, rotary_dim=128).pools[0].rope_base.mode == mode


def test_rotary_dimension_is_read_from_the_checkpoint(demo_models):
    config = load_config(profile_path("cpu-demo"), env={})
    assert {m.rotary_dim for m in config.models.values()} == {64}


def test_the_cpu_demo_serves_its_long_pools_with_each_prompts_own_base(demo_models):
    config = load_config(profile_path("cpu-demo"), env={})
    modes = {p.name: p.rope_base.mode for p in config.pools}
    assert modes == {"il25-short": "pool", "il25-long": "request", "il3-short": "pool", "il3-long": "request"}
