"""The key directory, with real files, real modes and real concurrent processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from wasm_sandbox import keys
from wasm_sandbox.errors import KeyStoreError
from wasm_sandbox.keys import KeyStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def pem(key, password: bytes | None = None) -> bytes:
    enc = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def plant(home: Path, name: str, data: bytes, file_mode: int = 0o600) -> Path:
    """Write a key file as a user (or an attacker) might have left it."""
    (home / "keys").mkdir(mode=0o700, parents=True, exist_ok=True)
    path = home / "keys" / name
    path.write_bytes(data)
    path.chmod(file_mode)
    return path


def p256() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def test_first_use_creates_private_directory_and_files(tmp_path):
    ks = KeyStore(tmp_path / "home")
    ks.recipient_private_key()
    ks.signing_key()
    d = tmp_path / "home" / "keys"
    assert mode(d) == 0o700
    assert sorted(os.listdir(d)) == ["recipient.pem", "signing.pem"]
    for name in ("recipient.pem", "signing.pem"):
        assert mode(d / name) == 0o600
        assert (d / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")


def test_keys_have_the_right_kind(tmp_path):
    ks = KeyStore(tmp_path)
    assert isinstance(ks.recipient_private_key().curve, ec.SECP256R1)
    assert isinstance(ks.signing_key(), ed25519.Ed25519PrivateKey)


def test_keys_persist_and_are_never_overwritten(tmp_path):
    first = KeyStore(tmp_path)
    kid = first.recipient_key_id
    signing = first.signing_key().public_key().public_bytes_raw()
    files = {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()}
    second = KeyStore(tmp_path)
    assert second.recipient_key_id == kid
    assert second.signing_key().public_key().public_bytes_raw() == signing
    assert {p.name: p.read_bytes() for p in (tmp_path / "keys").iterdir()} == files


def test_key_id_is_sha256_of_der_spki(tmp_path):
    ks = KeyStore(tmp_path)
    der = ks.recipient_public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert ks.recipient_key_id == hashlib.sha256(der).hexdigest()


def test_public_pem_round_trips(tmp_path):
    ks = KeyStore(tmp_path)
    text = ks.public_pem()
    assert text.startswith("-----BEGIN PUBLIC KEY-----\n")
    assert KeyStore.load_public_pem(text) == ks.recipient_public_key()
    assert KeyStore.load_public_pem(text.encode()) == ks.recipient_public_key()


def test_existing_keys_are_loaded(tmp_path):
    key = p256()
    plant(tmp_path, "recipient.pem", pem(key))
    assert KeyStore(tmp_path).recipient_public_key() == key.public_key()


def test_open_key_directory_is_refused(tmp_path):
    (tmp_path / "keys").mkdir(mode=0o755)
    (tmp_path / "keys").chmod(0o755)
    with pytest.raises(KeyStoreError, match=r"key directory .*keys has mode 0755; run chmod 700"):
        KeyStore(tmp_path).recipient_private_key()
    assert os.listdir(tmp_path / "keys") == []


@pytest.mark.parametrize("name", ["recipient.pem", "signing.pem"])
@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660])
def test_private_key_readable_by_others_is_refused(tmp_path, name, file_mode):
    key = p256() if name == "recipient.pem" else ed25519.Ed25519PrivateKey.generate()
    data = pem(key)
    path = plant(tmp_path, name, data, file_mode)
    ks = KeyStore(tmp_path)
    load = ks.recipient_private_key if name == "recipient.pem" else ks.signing_key
    with pytest.raises(KeyStoreError, match=f"{name} has mode {file_mode:04o}; run chmod 600"):
        load()
    assert path.read_bytes() == data
    assert mode(path) == file_mode


@pytest.mark.parametrize("name", ["recipient.pem", "signing.pem"])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_private_key_is_refused_and_kept(tmp_path, name, damage):
    key = p256() if name == "recipient.pem" else ed25519.Ed25519PrivateKey.generate()
    data = {"truncated": pem(key)[:60], "garbage": b"not a key\n", "empty": b""}[damage]
    path = plant(tmp_path, name, data)
    ks = KeyStore(tmp_path)
    load = ks.recipient_private_key if name == "recipient.pem" else ks.signing_key
    with pytest.raises(KeyStoreError, match=f"{name}: not a valid PEM private key"):
        load()
    assert path.read_bytes() == data


@pytest.mark.parametrize(
    ("make", "found"),
    [
        (lambda: ec.generate_private_key(ec.SECP384R1()), "EC secp384r1 key"),
        (lambda: rsa.generate_private_key(65537, 2048), "RSA key"),
        (ed25519.Ed25519PrivateKey.generate, "Ed25519 key"),
    ],
)
def test_wrong_kind_of_recipient_key_is_refused(tmp_path, make, found):
    path = plant(tmp_path, "recipient.pem", pem(make()))
    before = path.read_bytes()
    with pytest.raises(KeyStoreError, match=f"expected a P-256 private key, found {found}"):
        KeyStore(tmp_path).recipient_public_key()
    assert path.read_bytes() == before


def test_ec_key_in_signing_file_is_refused(tmp_path):
    plant(tmp_path, "signing.pem", pem(p256()))
    with pytest.raises(
        KeyStoreError, match=r"signing.pem: expected an Ed25519 private key, found EC secp256r1"
    ):
        KeyStore(tmp_path).signing_key()


def test_an_encrypted_key_opens_only_with_its_passphrase(tmp_path, monkeypatch):
    key = p256()
    plant(tmp_path, "recipient.pem", pem(key, password=b"hunter2"))
    monkeypatch.delenv(keys.PASSPHRASE_ENV, raising=False)
    with pytest.raises(KeyStoreError, match=r"recipient.pem: the key is protected by a pass"):
        KeyStore(tmp_path).recipient_private_key()  # no variable, no terminal: no prompt
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "hunter3")
    with pytest.raises(KeyStoreError, match=r"recipient.pem: wrong passphrase"):
        KeyStore(tmp_path).recipient_private_key()
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "hunter2")
    opened = KeyStore(tmp_path).recipient_private_key()
    assert opened.private_numbers() == key.private_numbers()


def test_protect_encrypts_both_keys_in_place(tmp_path, monkeypatch):
    store = KeyStore(tmp_path)
    signing, recipient = store.signing_key(), store.recipient_private_key()
    assert not store.protected
    assert sorted(store.protect(b"correct horse")) == ["recipient.pem", "signing.pem"]
    for name in ("recipient.pem", "signing.pem"):
        data = (tmp_path / "keys" / name).read_bytes()
        assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert mode(tmp_path / "keys" / name) == 0o600
        with pytest.raises(TypeError):  # no longer readable without the passphrase
            serialization.load_pem_private_key(data, password=None)
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse")
    again = KeyStore(tmp_path)
    assert again.protected
    assert again.signing_key().public_key() == signing.public_key()
    assert again.recipient_private_key().private_numbers() == recipient.private_numbers()
    with pytest.raises(KeyStoreError, match="empty passphrase"):
        again.protect(b"")


def test_errors_are_one_line(tmp_path):
    plant(tmp_path, "recipient.pem", b"garbage")
    with pytest.raises(KeyStoreError) as info:
        KeyStore(tmp_path).recipient_key_id  # noqa: B018
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (public_pem(ec.generate_private_key(ec.SECP384R1())), "found EC secp384r1 key"),
        (public_pem(rsa.generate_private_key(65537, 2048)), "found RSA key"),
        (public_pem(ed25519.Ed25519PrivateKey.generate()), "found Ed25519 key"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a valid PEM"),
        ("hello", "not a valid PEM public key"),
    ],
)
def test_load_public_pem_accepts_only_p256(text, problem):
    with pytest.raises(KeyStoreError, match=problem):
        KeyStore.load_public_pem(text)


def test_import_recipient_seals_to_the_imported_key(tmp_path):
    foreign = p256()
    ks = KeyStore(tmp_path)
    kid = ks.import_recipient(public_pem(foreign).decode())
    assert ks.recipient_public_key() == foreign.public_key()
    assert ks.recipient_key_id == kid
    assert not ks.has_private_key
    assert KeyStore(tmp_path).recipient_public_key() == foreign.public_key()
    assert (tmp_path / "keys" / "recipient.pub.pem").read_bytes() == public_pem(foreign)
    with pytest.raises(KeyStoreError, match=r"recipient.pem: no private key"):
        ks.recipient_private_key()
    assert not (tmp_path / "keys" / "recipient.pem").exists()


def test_import_keeps_own_private_key_for_old_records(tmp_path):
    ks = KeyStore(tmp_path)
    own = ks.recipient_private_key()
    assert ks.has_private_key
    ks.import_recipient(public_pem(p256()))
    assert not ks.has_private_key
    assert ks.recipient_private_key() == own
    assert ks.recipient_public_key() != own.public_key()


def test_importing_own_public_key_keeps_has_private_key(tmp_path):
    ks = KeyStore(tmp_path)
    ks.import_recipient(ks.public_pem())
    assert KeyStore(tmp_path).has_private_key


def test_import_never_overwrites(tmp_path):
    ks = KeyStore(tmp_path)
    first = p256()
    ks.import_recipient(public_pem(first))
    assert ks.import_recipient(public_pem(first)) == ks.recipient_key_id
    with pytest.raises(KeyStoreError, match=r"already holds another recipient key"):
        ks.import_recipient(public_pem(p256()))
    assert KeyStore(tmp_path).recipient_public_key() == first.public_key()


def test_import_of_wrong_curve_is_refused(tmp_path):
    with pytest.raises(KeyStoreError, match=r"expected a P-256 public key"):
        KeyStore(tmp_path).import_recipient(public_pem(ec.generate_private_key(ec.SECP521R1())))
    assert not (tmp_path / "keys" / "recipient.pub.pem").exists()


def test_imported_key_writable_by_others_is_refused(tmp_path):
    plant(tmp_path, "recipient.pub.pem", public_pem(p256()), 0o666)
    with pytest.raises(KeyStoreError, match=r"recipient.pub.pem has mode 0666; run chmod 644"):
        KeyStore(tmp_path).recipient_public_key()


def test_losing_the_creation_race_adopts_the_winners_key(tmp_path, monkeypatch):
    """Another process links its key in between our existence check and our link."""
    winner = p256()

    def generate_while_another_process_wins() -> ec.EllipticCurvePrivateKey:
        plant(tmp_path, "recipient.pem", pem(winner))
        return p256()

    monkeypatch.setattr(keys, "_new_recipient", generate_while_another_process_wins)
    assert KeyStore(tmp_path).recipient_public_key() == winner.public_key()
    assert os.listdir(tmp_path / "keys") == ["recipient.pem"]


def _race(home: str, barrier, results) -> None:
    barrier.wait()
    ks = KeyStore(home)
    results.put((ks.recipient_key_id, ks.signing_key().public_key().public_bytes_raw()))


def test_concurrent_processes_end_with_one_key(tmp_path):
    ctx = multiprocessing.get_context("fork")
    n = 8
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(str(tmp_path), barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    seen = {results.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(seen) == 1
    assert seen == {
        (
            KeyStore(tmp_path).recipient_key_id,
            KeyStore(tmp_path).signing_key().public_key().public_bytes_raw(),
        )
    }
    assert sorted(os.listdir(tmp_path / "keys")) == ["recipient.pem", "signing.pem"]


def test_key_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "keys").write_text("not a directory")
    with pytest.raises(KeyStoreError, match=r"key directory .*keys is not a directory"):
        KeyStore(tmp_path).recipient_key_id  # noqa: B018


def test_key_file_that_is_a_directory_is_refused(tmp_path):
    (tmp_path / "keys" / "signing.pem").mkdir(parents=True)
    (tmp_path / "keys").chmod(0o700)
    with pytest.raises(KeyStoreError, match=r"signing.pem is not a regular file"):
        KeyStore(tmp_path).signing_key()


def test_the_content_secret_is_created_once_like_the_other_keys(tmp_path):
    secret = KeyStore(tmp_path).content_secret()
    path = tmp_path / "keys" / keys.CONTENT
    assert len(secret) == 32 and mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert KeyStore(tmp_path).content_secret() == secret
    assert KeyStore(tmp_path / "other").content_secret() != secret


def test_the_content_secret_is_protected_with_the_other_keys(tmp_path, monkeypatch):
    store = KeyStore(tmp_path)
    secret = store.content_secret()
    assert keys.CONTENT in store.protect(b"correct horse")
    path = tmp_path / "keys" / keys.CONTENT
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    with pytest.raises(KeyStoreError, match=r"content.pem: the key is protected"):
        KeyStore(tmp_path).content_secret()
    monkeypatch.setenv(keys.PASSPHRASE_ENV, "correct horse")
    assert KeyStore(tmp_path).content_secret() == secret


def test_a_content_secret_of_another_kind_is_refused(tmp_path):
    plant(tmp_path, keys.CONTENT, pem(p256()))
    with pytest.raises(KeyStoreError, match=r"content.pem: expected an X25519 private key"):
        KeyStore(tmp_path).content_secret()
