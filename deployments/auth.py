"""Optional bearer-token API keys.

Keys come from an environment variable or a mounted file (a Kubernetes
Secret). A key is never stored, logged or exported: requests are attributed
to a *principal*, a short hash of the key, which is what document ownership
and logs use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Iterable, Mapping

from cluster.config import AuthConfig


def principal_of(key: str) -> str:
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyRing:
    """The accepted keys, held only as digests."""

    def __init__(self, keys: Iterable[str]):
        self._digests = [hashlib.sha256(k.encode()).digest() for k in keys if k]
        if not self._digests:
            raise ValueError("API-key auth is enabled but no keys were configured")

    @classmethod
    def from_config(cls, auth: AuthConfig, env: Mapping[str, str] | None = None) -> "KeyRing | None":
        if not auth.enabled:
            return None
        env = os.environ if env is None else env
        raw = env.get(auth.keys_env, "")
        if auth.keys_file:
            raw += "\n" + Path(auth.keys_file).read_text()
        keys = [k.strip() for k in raw.replace(",", "\n").splitlines() if k.strip()]
        return cls(keys)

    def principal(self, authorization: str | None) -> str | None:
        """The caller's principal, or None when the header carries no valid key."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = hashlib.sha256(token.strip().encode()).digest()
        # Compare every digest in constant time so timing reveals nothing.
        if any(hmac.compare_digest(digest, d) for d in self._digests):
            return principal_of(token.strip())
        return None
