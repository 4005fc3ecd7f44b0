"""The API-key list format: which key belongs to which principal.

One entry per line of the keys file (or per comma or line of the keys
environment variable)::

    # comment lines start with '#'; blank lines are skipped
    alice:lc-3Jf9...        # principal 'alice'
    alice:lc-Q81x...        # a second key of alice, e.g. during a rotation
    ci-bot:lc-7hP2...
    lc-legacy-key           # a bare key: principal key-<16 hex of its SHA-256>

A *principal* owns documents and names the caller in logs; several keys may
belong to one, so an old and a new key overlap while clients move over. A bare
key (the earlier format) is its own principal, named after its hash; a new key
takes over its documents as ``key-<those 16 hex>:<new key>``.

Keys follow RFC 6750's bearer-token alphabet (letters, digits and ``-._~+/``,
then ``=`` padding), which has no ``:``, so ``name:key`` never reads as a bare
key. A key's value never appears in an error, a log line or a repr.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

# RFC 6750 section 2.1, b64token.
_BEARER_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_PRINCIPAL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Bare keys' principals are `key-` + hash; a named principal may not look like one.
HASH_PRINCIPAL_PREFIX = "key-"
_HASH_PRINCIPAL = re.compile(r"key-[0-9a-f]{16}")


def hash_principal(key: str) -> str:
    """The principal of a bare key: `key-` and 16 hex digits of its SHA-256."""
    return HASH_PRINCIPAL_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:16]


class KeyEntryError(ValueError):
    """An entry that cannot be read; the message names the line and never the key."""


class KeyEntry(BaseModel):
    """One accepted key and the principal it belongs to."""

    # The input (a key) must never be echoed in a validation error.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    principal: str = Field(
        description="Who the key belongs to: owns documents and names the caller in logs. Letters, "
        "digits and `._@-`, at most 64; `key-` only as a bare key's hash principal (`key-` + 16 hex)."
    )
    key: SecretStr = Field(description="The bearer token (RFC 6750 alphabet).")

    @field_validator("principal")
    @classmethod
    def _principal_name(cls, value: str) -> str:
        if not _PRINCIPAL.fullmatch(value):
            raise ValueError(
                f"principal {value!r} is not a name: letters, digits and . _ @ -, starting with a "
                "letter or digit, at most 64 characters"
            )
        return value

    @field_validator("key", mode="before")
    @classmethod
    def _bearer_token(cls, value: object) -> object:
        if isinstance(value, str) and not _BEARER_TOKEN.fullmatch(value):
            raise ValueError(
                "the key is not a bearer token: only letters, digits and - . _ ~ + / (then = padding) "
                "are allowed, no spaces or ':'"
            )
        return value

    @classmethod
    def bare(cls, key: str) -> "KeyEntry":
        entry = cls(principal="bare", key=key)  # validates the key; the name is replaced below
        return entry.model_copy(update={"principal": hash_principal(key)})

    @classmethod
    def named(cls, principal: str, key: str) -> "KeyEntry":
        # A bare key's own principal may be named whole, so a new key can take
        # over its documents; any other `key-` name would only confuse the two.
        if principal.startswith(HASH_PRINCIPAL_PREFIX) and not _HASH_PRINCIPAL.fullmatch(principal):
            raise ValueError(f"principal {principal!r} starts with {HASH_PRINCIPAL_PREFIX!r}, which only a bare "
                             "key's principal (key- and 16 hex digits) may")
        return cls(principal=principal, key=key)


def _entry(text: str) -> KeyEntry:
    principal, colon, key = text.partition(":")
    try:
        if not colon:
            return KeyEntry.bare(text)
        return KeyEntry.named(principal.strip(), key.strip())
    except ValidationError as exc:
        raise ValueError("; ".join(error["msg"].removeprefix("Value error, ") for error in exc.errors())) from None


def parse_entries(lines: Iterable[tuple[str, str]], source: str) -> list[KeyEntry]:
    """Entries from (where, text) pairs, e.g. ("line 3", "alice:lc-..."); every
    mistake is reported, each naming its place, in one KeyEntryError."""
    entries: list[KeyEntry] = []
    places: dict[str, str] = {}
    problems: list[str] = []
    for where, raw in lines:
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        try:
            entry = _entry(text)
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        secret = entry.key.get_secret_value()
        if secret in places:
            problems.append(f"{where}: the same key as {places[secret]} (a key belongs to one principal, once)")
            continue
        places[secret] = where
        entries.append(entry)
    if problems:
        raise KeyEntryError(f"{source}: " + "; ".join(problems))
    return entries


def parse_file_text(text: str, source: str) -> list[KeyEntry]:
    """The entries of a keys file, one per line."""
    return parse_entries(((f"line {n}", line) for n, line in enumerate(text.splitlines(), 1)), source)


def parse_env_value(value: str, source: str) -> list[KeyEntry]:
    """The entries of the keys environment variable: comma or newline separated."""
    items = value.replace(",", "\n").splitlines()
    return parse_entries(((f"entry {n}", item) for n, item in enumerate(items, 1)), source)
