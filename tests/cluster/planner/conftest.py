import pytest


@pytest.fixture
def profile_env(demo_models, monkeypatch):
    """The shipped profiles load here: demo models built, no LONGCTX_SET overrides from the caller."""
    monkeypatch.setenv("LONGCTX_DEMO_MODELS", str(demo_models))
    monkeypatch.delenv("LONGCTX_SET", raising=False)
