"""API keys: held as digests, never echoed; principals are stable hashes."""

import pytest

from cluster.config import AuthConfig
from deployments.auth import KeyRing, principal_of


def test_keys_from_env_and_file(tmp_path):
    secret = tmp_path / "keys"
    secret.write_text("file-key\n\n")
    ring = KeyRing.from_config(AuthConfig(enabled=True, keys_file=str(secret)), env={"LONGCTX_API_KEYS": "a,b"})
    assert ring.principal("Bearer a") == principal_of("a")
    assert ring.principal("bearer file-key") == principal_of("file-key")
    assert ring.principal("Bearer c") is None
    assert ring.principal(None) is None
    assert "sk-secret" not in principal_of("sk-secret")


def test_disabled_means_no_ring_and_enabled_needs_keys():
    assert KeyRing.from_config(AuthConfig(enabled=False), env={}) is None
    with pytest.raises(ValueError, match="no keys"):
        KeyRing.from_config(AuthConfig(enabled=True), env={})
