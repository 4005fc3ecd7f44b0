"""benchmarks/common/vllm_serve.py: `vllm serve` gets exactly the engine arguments of the pool it stands beside."""

from pathlib import Path

import pytest

from benchmarks.common.vllm_serve import pool_engine_kwargs, serve_flags
from cluster.config import load_config

PROFILES = Path(__file__).resolve().parents[3] / "benchmarks" / "profiles"


@pytest.fixture
def profile_env(demo_models, monkeypatch):
    """The profiles load here: the CPU one's demo checkpoint is built."""
    monkeypatch.setenv("LONGCTX_DEMO_MODELS", str(demo_models))
    monkeypatch.delenv("LONGCTX_SET", raising=False)


def parsed_engine_args(flags: list[str]):
    """The engine arguments vLLM's own `vllm serve` parser makes of ``flags``."""
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")
    ServeSubcommand().subparser_init(parser.add_subparsers(dest="subparser"))
    args = parser.parse_args(["serve", "/models/m", *flags])
    args.model = args.model_tag
    return AsyncEngineArgs.from_cli_args(args)


@pytest.mark.parametrize("profile", ["warm-path-h100.yaml", "warm-path-shared-h100.yaml", "warm-path-cpu.yaml"])
def test_serve_flags_parse_back_to_the_pools_engine_arguments(profile, profile_env):
    cluster = load_config(PROFILES / profile)
    kwargs = pool_engine_kwargs(cluster, cluster.pools[0])
    engine = parsed_engine_args(serve_flags(kwargs))
    assert {key: getattr(engine, key) for key in kwargs} == kwargs


def test_the_long_pools_rope_override_reaches_vllm_serve(profile_env):
    """Past the native window the pool's engine gets hf_overrides; vllm serve must get the same JSON."""
    cluster = load_config(PROFILES / "warm-path-h100.yaml")
    kwargs = pool_engine_kwargs(cluster, cluster.pools[0])
    assert kwargs["hf_overrides"] == {"dynamic_ntk_seq_len": 409600}
    assert {"max_model_len": 409600, "gpu_memory_utilization": 0.9, "enforce_eager": True,
            "enable_prefix_caching": True}.items() <= kwargs.items()
    assert parsed_engine_args(serve_flags(kwargs)).hf_overrides == {"dynamic_ntk_seq_len": 409600}


def test_false_booleans_become_no_flags():
    assert serve_flags({"enforce_eager": False, "max_num_seqs": 4, "tokenizer": None}) == [
        "--no-enforce-eager", "--max-num-seqs", "4"]
