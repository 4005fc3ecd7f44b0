"""API keys: held as digests, each with its principal; the keys file reloads on change
(as the kubelet swaps a mounted Secret) and a broken one keeps the keys in force."""

import logging

import pytest

from cluster.config import AuthConfig
from deployments.auth import KeyRing, principal_of
from tests.support.secret_volume import SecretVolume

OLD, NEW, BOB, BARE = "lc-alice-old-0123", "lc-alice-new-0123", "lc-bob-0123456789", "lc-bare-key-0123"


class Recorder:
    """The ring's observer (the ingress passes its metrics): what it was told."""

    def __init__(self):
        self.loaded, self.failures = [], 0

    def api_keys_loaded(self, generation, keys, principals):
        self.loaded.append((generation, keys, principals))

    def api_keys_reload_failed(self):
        self.failures += 1


def bearer(key):
    return f"Bearer {key}"


@pytest.fixture
def volume(tmp_path):
    return SecretVolume(tmp_path / "api-keys")


def ring_on(volume, recorder=None, env=None, interval=1e-9):
    auth = AuthConfig(enabled=True, keys_file=str(volume.path("keys")), reload_interval_s=interval)
    return KeyRing.from_config(auth, env=env or {}, observer=recorder)


def test_keys_from_env_and_file(volume):
    volume.write({"keys": f"alice:{OLD}\n{BARE}\n"})
    ring = ring_on(volume, env={"LONGCTX_API_KEYS": f"bob:{BOB}, lc-env-bare-0123"})
    assert ring.principal(bearer(OLD)) == "alice"
    assert ring.principal(f"bearer {BARE}") == principal_of(BARE)
    assert ring.principal(bearer(BOB)) == "bob"
    assert ring.principal(bearer("lc-env-bare-0123")) == principal_of("lc-env-bare-0123")
    for header in (bearer("lc-unknown-0123"), None, "", "Basic " + OLD, "Bearer  "):
        assert ring.principal(header) is None
    assert "sk-secret" not in principal_of("sk-secret")


def test_disabled_means_no_ring_and_enabled_needs_a_source():
    assert KeyRing.from_config(AuthConfig(enabled=False), env={}) is None
    with pytest.raises(ValueError, match="no keys"):
        KeyRing.from_config(AuthConfig(enabled=True), env={})


def test_a_bad_env_value_fails_at_start_naming_the_entry():
    with pytest.raises(ValueError, match=r"LONGCTX_API_KEYS: entry 2: principal 'a b'") as raised:
        KeyRing.from_config(AuthConfig(enabled=True), env={"LONGCTX_API_KEYS": f"{BOB},a b:{OLD}"})
    assert OLD not in str(raised.value)


def test_rotation_overlaps_and_keeps_the_principal_without_a_restart(volume, caplog):
    caplog.set_level(logging.INFO, logger="longctx.auth")
    recorder = Recorder()
    volume.write({"keys": f"alice:{OLD}\nbob:{BOB}\n"})
    ring = ring_on(volume, recorder)
    assert (ring.generation, recorder.loaded) == (1, [(1, 2, 2)])
    # Step 1: the new key is added beside the old one; both name alice.
    volume.write({"keys": f"alice:{OLD}\nalice:{NEW}\nbob:{BOB}\n"})
    assert ring.principal(bearer(NEW)) == "alice" and ring.principal(bearer(OLD)) == "alice"
    assert ring.generation == 2 and recorder.loaded[-1] == (2, 3, 2)
    # Step 2: the old key is removed; the next request with it is refused.
    volume.write({"keys": f"alice:{NEW}\nbob:{BOB}\n"})
    assert ring.principal(bearer(OLD)) is None
    assert ring.principal(bearer(NEW)) == "alice" and ring.generation == 3
    # Unchanged file: no reload, no new generation.
    assert ring.principal(bearer(BOB)) == "bob" and ring.generation == 3
    log = caplog.text
    assert "API keys generation 3 in force" in log and "1 principal" not in log and "alice, bob" in log
    assert all(key not in log for key in (OLD, NEW, BOB))


def test_a_broken_file_keeps_the_keys_in_force_until_fixed(volume, caplog):
    recorder = Recorder()
    volume.write({"keys": f"alice:{OLD}\n"})
    ring = ring_on(volume, recorder)
    volume.write({"keys": f"alice:{OLD}\nalice:{NEW}\nnot a name:{BOB}\n"})
    assert ring.principal(bearer(OLD)) == "alice"
    assert ring.principal(bearer(NEW)) is None  # nothing of the broken version applies
    assert (ring.generation, recorder.failures) == (1, 1)
    assert "line 3: principal 'not a name'" in caplog.text and "keys generation 1 stays in force" in caplog.text
    assert BOB not in caplog.text and NEW not in caplog.text
    # The same broken version is not reported again; the fix applies.
    ring.principal(bearer(OLD))
    assert recorder.failures == 1
    volume.write({"keys": f"alice:{NEW}\n"})
    assert ring.principal(bearer(NEW)) == "alice" and ring.principal(bearer(OLD)) is None
    assert ring.generation == 2


def test_a_file_edited_in_place_reloads_too(tmp_path):
    keys = tmp_path / "keys"
    keys.write_text(f"alice:{OLD}\n")
    ring = KeyRing.from_config(AuthConfig(enabled=True, keys_file=str(keys), reload_interval_s=1e-9), env={})
    keys.write_text(f"alice:{OLD}\nbob:{BOB}\n")
    assert ring.principal(bearer(BOB)) == "bob"


def test_a_missing_file_refuses_everyone_until_it_appears(tmp_path, caplog):
    """A pod may start before its Secret exists (the chart mounts it optional): the
    replica starts, every key is refused, and the keys apply once the file appears."""
    volume = SecretVolume(tmp_path / "api-keys")
    recorder = Recorder()
    ring = ring_on(volume, recorder)
    assert ring.principal(bearer(OLD)) is None and recorder.failures == 1
    assert "no such file; no key from the file is accepted until it is fixed" in caplog.text
    volume.write({"keys": f"alice:{OLD}\n"})
    assert ring.principal(bearer(OLD)) == "alice" and ring.generation == 2


def test_reloading_waits_for_the_interval_and_zero_turns_it_off(volume):
    volume.write({"keys": f"alice:{OLD}\n"})
    patient, once = ring_on(volume, interval=3600), ring_on(volume, interval=0)
    volume.write({"keys": f"alice:{NEW}\n"})
    for ring in (patient, once):
        assert ring.principal(bearer(NEW)) is None and ring.principal(bearer(OLD)) == "alice"


def test_a_key_in_both_the_env_and_the_file_is_refused(volume, caplog):
    volume.write({"keys": f"alice:{OLD}\n"})
    ring = ring_on(volume, env={"LONGCTX_API_KEYS": f"bob:{BOB}"})
    volume.write({"keys": f"alice:{OLD}\ncarol:{BOB}\n"})
    assert ring.principal(bearer(BOB)) == "bob" and ring.generation == 1
    assert "1 key(s) also in LONGCTX_API_KEYS" in caplog.text
