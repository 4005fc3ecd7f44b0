"""The document store's settings in the config schema."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from cluster.config import ClusterConfig, load_config, profile_path
from cluster.config.documents import DocumentStoreConfig, StoreLimits

REPO = Path(__file__).resolve().parents[3]


def test_redis_needs_a_redis_url():
    with pytest.raises(ValidationError, match="url is required"):
        DocumentStoreConfig(backend="redis")
    with pytest.raises(ValidationError, match="must start with"):
        DocumentStoreConfig(backend="redis", url="http://x")
    DocumentStoreConfig(backend="redis", url="redis://127.0.0.1:6379/0")


@pytest.mark.parametrize(
    "bad",
    [
        {"backend": "postgres"},
        {"extra": 1},
        {"limits": {"max_documents": 0}},
        {"limits": {"max_document_bytes": 2**30}},  # over Redis's 512 MiB string cap
        {"limits": {"max_documents": 5, "max_documents_per_owner": 6}},
        {"limits": {"max_document_bytes": 100, "max_total_bytes": 99}},
        {"limits": {"unknown": 1}},
    ],
)
def test_invalid_config(bad):
    with pytest.raises(ValidationError):
        DocumentStoreConfig.model_validate(bad)


def test_fields_are_documented():
    for model in (DocumentStoreConfig, StoreLimits):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


def test_token_id_limit_must_hold_a_full_document():
    StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576)
    with pytest.raises(ValidationError, match="max_token_id_bytes"):
        StoreLimits(max_document_tokens=1_048_576, max_token_id_bytes=4 * 1_048_576 - 1)
    assert StoreLimits().max_token_id_bytes >= 4 * StoreLimits().max_document_tokens


def test_password_env_is_a_variable_name_for_redis_only():
    DocumentStoreConfig(backend="redis", url="redis://r:6379/1", password_env="LONGCTX_REDIS_PASSWORD")
    with pytest.raises(ValidationError, match="password_env"):
        DocumentStoreConfig(backend="redis", url="redis://r:6379/1", password_env="NOT A NAME")
    with pytest.raises(ValidationError, match="for backend redis only"):
        DocumentStoreConfig(password_env="LONGCTX_REDIS_PASSWORD")


# --- SQLite with several ingress replicas ---------------------------------------

ONE_POOL = {
    "device": "cpu",
    "models": {"m": {"path": "/nonexistent/m", "native_context": 4096}},
    "pools": [{"name": "p", "model": "m", "band": [0, 4096], "engine": {"max_model_len": 4096}}],
}
SHARED = {"backend": "redis", "url": "redis://redis:6379/1"}


def profile(replicas: int, store: dict | None = None) -> dict:
    return {**ONE_POOL, "ingress": {"replicas": replicas}, "documents": {"store": store or {}}}


def test_sqlite_with_several_ingress_replicas_is_refused_with_the_fix():
    with pytest.raises(ValidationError) as refused:
        ClusterConfig.model_validate(profile(2))
    message = str(refused.value)
    assert "ingress.replicas is 2" in message
    assert "documents.store.backend: redis" in message and "ingress.replicas: 1" in message
    with pytest.raises(ValidationError, match="documents.store.backend: redis"):
        ClusterConfig.model_validate(profile(3, {"backend": "sqlite", "data_dir": "/shared/docs"}))


def test_one_replica_may_keep_sqlite_and_several_share_redis():
    assert ClusterConfig.model_validate(profile(1)).documents.store.backend == "sqlite"
    assert ClusterConfig.model_validate(profile(2, SHARED)).ingress.replicas == 2


def test_an_override_to_several_replicas_is_refused_too():
    with pytest.raises(ValidationError, match="documents.store.backend: redis"):
        load_config(profile_path("cpu-demo"), ["ingress.replicas=2"], env={})
    # The fix the message names, applied the same way, loads.
    fixed = load_config(profile_path("cpu-demo"), ["ingress.replicas=2", "documents.store.backend=redis",
                                                   "documents.store.url=redis://127.0.0.1:6379/1"], env={})
    assert fixed.documents.store.url == "redis://127.0.0.1:6379/1"


SHIPPED = sorted((REPO / "deployments").glob("*.yaml")) + sorted((REPO / "benchmarks" / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_profile_validates_and_shares_documents_across_replicas(path):
    cluster = load_config(path, env={})
    if cluster.ingress.replicas > 1:
        assert cluster.documents.store.backend == "redis"
