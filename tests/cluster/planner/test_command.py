"""`python -m cluster plan` (cluster/planner/command.py): its messages and formats."""

import json

import pytest

from cluster.cli import main
from cluster.config import load_config, profile_path


def test_cli_fails_with_a_clear_message(profile_env, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "a100-80g", "--set", "pools.il25-long.engine.tensor_parallel_size=2"])
    assert "il25-long cannot fit" in str(exc.value.code)
    assert "needs tensor_parallel_size >= 4 on A100-80G" in str(exc.value.code)
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_cli_json_and_strict(profile_env, capsys):
    assert main(["plan", "h200-141g", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["pool"] for r in rows} == {p.name for p in load_config(profile_path("h200-141g")).pools}
    with pytest.raises(SystemExit, match="max_num_seqs"):
        main(["plan", "a100-80g", "--strict"])
