"""Optional bearer-token API keys, reloaded when their file changes.

Keys come from an environment variable (read once, at start) and/or a keys
file (a mounted Kubernetes Secret), in the format of
deployments/api_key_file.py: each key belongs to a named *principal*, which
is what document ownership and logs use. A key is never stored, logged or
exported: the ring holds SHA-256 digests only.

The file is re-read when it changes, without a restart: at most every
``reload_interval_s`` the ring stats it (following the symlink Kubernetes
swaps atomically when a mounted Secret changes) and reloads on a new inode,
size or mtime. A file that cannot be read or parsed keeps the keys in force
and logs an error, so a broken edit never locks every client out. Each load
that takes effect is a new *generation*, logged with its principals and
reported to the ingress's metrics.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Protocol

from cluster.config import AuthConfig
from deployments.api_key_file import KeyEntry, KeyEntryError, hash_principal, parse_env_value, parse_file_text

# Where the ring logs unless told otherwise; the ingress passes Serve's replica
# logger ("ray.serve"), the one Ray writes to the replica's log and stderr
# (a logger of our own would lose INFO lines: Ray leaves the root at WARNING).
DEFAULT_LOGGER = logging.getLogger("longctx.auth")

# Kept for callers that name a bare key's principal (tests, the chart's tests).
principal_of = hash_principal


class KeysObserver(Protocol):
    """Where the ring reports what it loaded (the ingress's metrics)."""

    def api_keys_loaded(self, generation: int, keys: int, principals: int) -> None: ...

    def api_keys_reload_failed(self) -> None: ...


@dataclass(frozen=True)
class _Generation:
    number: int
    digests: tuple[tuple[bytes, str], ...]  # (SHA-256 of the key, principal)

    @classmethod
    def of(cls, number: int, digests: list[tuple[bytes, str]]) -> "_Generation":
        return cls(number, tuple(digests))

    @property
    def principals(self) -> list[str]:
        return sorted({principal for _, principal in self.digests})


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def _digested(entries: list[KeyEntry]) -> list[tuple[bytes, str]]:
    """(digest, principal) of each entry: all the ring keeps of a key."""
    return [(_digest(e.key.get_secret_value()), e.principal) for e in entries]


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    """What changes when the file is replaced or rewritten; None when absent.
    os.stat follows Kubernetes' `..data` symlink to the file of the current
    Secret version, whose inode is new after each swap."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class KeyRing:
    """The accepted keys, held only as digests, each with its principal."""

    def __init__(
        self,
        fixed: list[KeyEntry],
        keys_file: Path | None = None,
        *,
        reload_interval_s: float = 0.0,
        observer: KeysObserver | None = None,
        fixed_source: str = "the environment",
        logger: logging.Logger = DEFAULT_LOGGER,
    ):
        """``fixed``: keys that never change (the environment's). ``keys_file``:
        re-read every ``reload_interval_s`` when it changed (0: read once)."""
        if not fixed and keys_file is None:
            raise ValueError("API-key auth is enabled but no keys were configured")
        self._fixed = _digested(fixed)
        self._fixed_source = fixed_source
        self._file = keys_file
        self._interval = reload_interval_s
        self._observer = observer
        self._log = logger
        self._seen: tuple[int, int, int, int] | None = None
        self._generation = _Generation.of(0, [])
        from_file = self._read_file() if keys_file is not None else []
        self._install(self._fixed + (from_file or []), "start")
        self._next_check = time.monotonic() + reload_interval_s

    @classmethod
    def from_config(
        cls,
        auth: AuthConfig,
        env: Mapping[str, str] | None = None,
        observer: KeysObserver | None = None,
        logger: logging.Logger = DEFAULT_LOGGER,
    ) -> "KeyRing | None":
        if not auth.enabled:
            return None
        env = os.environ if env is None else env
        fixed = parse_env_value(env.get(auth.keys_env, ""), auth.keys_env)
        return cls(
            fixed,
            Path(auth.keys_file) if auth.keys_file else None,
            reload_interval_s=auth.reload_interval_s,
            observer=observer,
            fixed_source=auth.keys_env,
            logger=logger,
        )

    @property
    def generation(self) -> int:
        """The number of the keys in force: 1 for the first load, +1 for each reload that took effect."""
        return self._generation.number

    def principal(self, authorization: str | None) -> str | None:
        """The caller's principal, or None when the header carries no valid key."""
        self.refresh_if_due()
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        digest = _digest(token.strip())
        found = None
        # Compare with every digest, in constant time, so timing reveals nothing.
        for known, principal in self._generation.digests:
            if hmac.compare_digest(digest, known):
                found = principal
        return found

    def refresh_if_due(self) -> None:
        """Reload the keys file if it changed and the interval has passed."""
        if self._file is None or self._interval <= 0:
            return
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + self._interval
        self._check_file()

    # --- loading ----------------------------------------------------------

    def _check_file(self) -> None:
        if _signature(self._file) == self._seen:
            return
        from_file = self._read_file()
        if from_file is not None:
            self._install(self._fixed + from_file, f"reloaded {self._file}")

    def _read_file(self) -> list[tuple[bytes, str]] | None:
        """The file's (digest, principal) pairs, or None (logged, counted) when it cannot be used."""
        assert self._file is not None
        self._seen = _signature(self._file)
        try:
            if self._seen is None:
                raise KeyEntryError(f"{self._file}: no such file")
            entries = parse_file_text(self._file.read_text(encoding="utf-8"), str(self._file))
            digests = _digested(entries)
            fixed = {digest for digest, _ in self._fixed}
            if shared := sum(digest in fixed for digest, _ in digests):
                raise KeyEntryError(f"{self._file}: {shared} key(s) also in {self._fixed_source}")
        except (OSError, UnicodeDecodeError, KeyEntryError) as exc:
            if self._observer is not None:
                self._observer.api_keys_reload_failed()
            if self._generation.number == 0:
                self._log.error("API keys: %s; no key from the file is accepted until it is fixed "
                                "(it is read again when it changes)", exc)
            else:
                self._log.error("API keys: %s; keys generation %d stays in force", exc, self._generation.number)
            return None
        return digests

    def _install(self, digests: list[tuple[bytes, str]], reason: str) -> None:
        generation = _Generation.of(self._generation.number + 1, digests)
        self._generation = generation
        principals = generation.principals
        self._log.info("API keys generation %d in force (%s): %d key(s) of %d principal(s): %s",
                       generation.number, reason, len(generation.digests), len(principals),
                       ", ".join(principals) or "none")
        if self._observer is not None:
            self._observer.api_keys_loaded(generation.number, len(generation.digests), len(principals))
