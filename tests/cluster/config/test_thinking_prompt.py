"""The deep-thinking system prompt: a file the operator installs, checked when the config loads."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.config import load_config, profile_path

REPO = Path(__file__).resolve().parents[3]
IL3 = "internlm3-8b-instruct"
# Every file that holds a profile: the bundled ones, the benchmarks' and the chart's copies.
PROFILES = sorted([*(REPO / "deployments").glob("*.yaml"), *(REPO / "benchmarks" / "profiles").glob("*.yaml"),
                   REPO / "helm" / "values.yaml", *(REPO / "helm" / "ci").glob("*.yaml")])


def _with_prompt(path: str, env: dict | None = None):
    return load_config(profile_path("cpu-demo"), [f"models.{IL3}.thinking_system_prompt_file={path}"],
                       env=env or {})


def test_a_prompt_file_is_read(tmp_path):
    prompt = tmp_path / "thinking.txt"
    prompt.write_text("Think first.\n\n", encoding="utf-8")
    model = _with_prompt(str(prompt)).models[IL3]
    assert model.thinking_system_prompt_file == prompt
    assert model.thinking_system_prompt() == "Think first."


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: d / "missing.txt", "does not exist"),
        (lambda d: d, "is a directory"),
        (lambda d: _write(d / "blank.txt", b" \n\t\n"), "is empty"),
        (lambda d: _write(d / "latin1.txt", "Überlege".encode("latin-1")), "is not UTF-8"),
    ],
)
def test_an_unusable_prompt_file_fails_at_load(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(ValidationError, match=f"thinking_system_prompt_file {path} {reason}"):
        _with_prompt(str(path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_prompt_file_fails_at_load(tmp_path):
    path = _write(tmp_path / "secret.txt", b"Think first.")
    path.chmod(0)
    with pytest.raises(ValidationError, match="is not readable"):
        _with_prompt(str(path))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_gpu_profiles_read_the_prompt_file_from_the_environment(tmp_path):
    assert load_config(profile_path("a100-80g"), env={}).models[IL3].thinking_system_prompt_file is None
    prompt = _write(tmp_path / "internlm3.txt", b"Think first.")
    config = load_config(profile_path("a100-80g"), env={"INTERNLM3_THINKING_PROMPT_FILE": str(prompt)})
    assert config.models[IL3].thinking_system_prompt() == "Think first."


def test_relative_paths_are_relative_to_the_profile(tmp_path):
    _write(tmp_path / "prompts-thinking.txt", b"Think first.")
    profile = tmp_path / "mine.yaml"
    text = profile_path("cpu-demo").read_text().replace(
        "../cluster/demo_assets/demo-thinking-prompt.txt", "./prompts-thinking.txt")
    profile.write_text(text.replace("../build/models", str(REPO / "build" / "models")))
    assert load_config(profile, env={}).models[IL3].thinking_system_prompt_file == tmp_path / "prompts-thinking.txt"


def test_the_demo_ships_its_own_labelled_prompt():
    model = load_config(profile_path("cpu-demo"), env={}).models[IL3]
    assert model.thinking_system_prompt_file == REPO / "cluster" / "demo_assets" / "demo-thinking-prompt.txt"
    prompt = model.thinking_system_prompt()
    assert prompt.startswith("[longctx CPU demo: this project's own short thinking prompt")
    assert "not InternLM3's published thinking system prompt" in prompt


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_profile_carries_a_prompt_text(profile):
    # The published prompt is third-party text: profiles point to a file, they hold no prompt.
    text = profile.read_text()
    assert "thinking_system_prompt:" not in text
    assert "mathematician" not in text.lower()


def test_an_inline_prompt_is_refused():
    with pytest.raises(ValidationError, match="thinking_system_prompt\n  Extra inputs"):
        load_config(profile_path("cpu-demo"), [f"models.{IL3}.thinking_system_prompt=Think."], env={})
