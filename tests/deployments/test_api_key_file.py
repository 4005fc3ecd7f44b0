"""The keys format: named principals with several keys, bare keys, and errors that name the
line but never the key."""

import pytest

from deployments.api_key_file import KeyEntryError, hash_principal, parse_env_value, parse_file_text

KEY_A1, KEY_A2, KEY_B, BARE = "lc-alice-old-0123456789", "lc-alice-new-0123456789", "lc-bob-0123456789", "lc-bare-0123"


def owners(entries):
    return {e.key.get_secret_value(): e.principal for e in entries}


def test_named_principals_hold_several_keys_and_bare_keys_get_a_hash_principal():
    text = f"# team keys\nalice:{KEY_A1}\n\n  alice : {KEY_A2}  \nbob:{KEY_B}\n{BARE}\n"
    assert owners(parse_file_text(text, "keys")) == {
        KEY_A1: "alice", KEY_A2: "alice", KEY_B: "bob", BARE: hash_principal(BARE),
    }
    assert hash_principal(BARE).startswith("key-") and len(hash_principal(BARE)) == 20


def test_a_new_key_can_take_over_a_bare_keys_principal():
    # A bare key's rotation that keeps its documents: the new key names the old one's principal.
    assert owners(parse_file_text(f"{BARE}\n{hash_principal(BARE)}:{KEY_B}\n", "keys")) == {
        BARE: hash_principal(BARE), KEY_B: hash_principal(BARE)}


def test_env_value_is_comma_or_newline_separated():
    assert owners(parse_env_value(f"alice:{KEY_A1}, {BARE}\nbob:{KEY_B},", "LONGCTX_API_KEYS")) == {
        KEY_A1: "alice", BARE: hash_principal(BARE), KEY_B: "bob"}


@pytest.mark.parametrize("line, message", [
    ("Alice Smith:lc-0123456789abcdef", "principal 'Alice Smith' is not a name"),
    ("key-0123:lc-0123456789abcdef", "starts with 'key-'"),
    (":lc-0123456789abcdef", "principal '' is not a name"),
    ("alice:", "not a bearer token"),
    ("alice:lc-secret with-space", "not a bearer token"),
    ("alice:lc-secret:more", "not a bearer token"),
    ("lc-secret!bare", "not a bearer token"),
])
def test_mistakes_name_the_line_and_never_the_key(line, message):
    with pytest.raises(KeyEntryError) as raised:
        parse_file_text(f"bob:{KEY_B}\n{line}\n", "/etc/keys")
    text = str(raised.value)
    assert text.startswith("/etc/keys: line 2: ") and message in text
    assert "secret" not in text and KEY_B not in text


def test_every_mistake_is_reported_at_once_and_a_key_belongs_to_one_principal():
    with pytest.raises(KeyEntryError) as raised:
        parse_file_text(f"alice:{KEY_A1}\nbob:{KEY_A1}\nbad name:{KEY_B}\n", "keys")
    text = str(raised.value)
    assert "line 2: the same key as line 1" in text and "line 3: principal 'bad name'" in text
    assert KEY_A1 not in text and KEY_B not in text


def test_an_entry_never_shows_its_key():
    (entry,) = parse_file_text(f"alice:{KEY_A1}", "keys")
    assert KEY_A1 not in repr(entry) and KEY_A1 not in str(entry.model_dump())
