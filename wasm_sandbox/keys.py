"""The key directory ``<home>/keys/`` (mode 0700).

- ``recipient.pem``: the P-256 key pair runs are sealed to (PKCS8 PEM, 0600).
- ``recipient.pub.pem``: an imported P-256 public key; when present, runs are sealed to it and
  the local private key (if any) is used only to open older records.
- ``signing.pem``: the Ed25519 key that signs log checkpoints (PKCS8 PEM, 0600).
- ``module-signing.pem``: the Ed25519 key ``wasm-sandbox sign`` signs modules with (0600);
  its verifier key (`KeyStore.signer_verifier_key`) is what ``--require-signed-by`` takes.
- ``content.pem``: the 32-byte secret this home derives the content keys of programs sealed by
  content from (`KeyStore.content_secret`, docs/records.md), kept as the raw bytes of an
  X25519 private key so that it is stored, and protected, like the other keys (0600); it is
  never used for X25519.

The private keys can be protected with a passphrase (`KeyStore.protect`, ``wasm-sandbox keys
--protect``): they are then PKCS8 PEMs encrypted with cryptography's
``BestAvailableEncryption``, opened with the passphrase from ``$WASM_SANDBOX_PASSPHRASE`` or,
on a terminal, asked once per process. A missing or wrong passphrase is a ``KeyStoreError``.

Keys are created on first use and never overwritten: a new key is written to a 0600 temporary
file, fsynced and hard-linked into place, which fails if another process got there first; the
loser then reads the winner's key. The directory and every key file must belong to this user and
be closed to others (`wasm_sandbox.home`). Every problem is a one-line ``KeyStoreError`` naming
the file.

Example::

    ks = KeyStore(Path("~/.wasm-sandbox").expanduser())
    ks.recipient_key_id   # hex SHA-256 of the public key's DER SubjectPublicKeyInfo
"""

from __future__ import annotations

import getpass
import hashlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from wasm_sandbox.checkpoint import verifier_key
from wasm_sandbox.envelope import key_id
from wasm_sandbox.errors import KeyStoreError
from wasm_sandbox.home import private_dir, read_private, replace_file, write_new

RECIPIENT = "recipient.pem"
IMPORTED = "recipient.pub.pem"
SIGNING = "signing.pem"
MODULE_SIGNING = "module-signing.pem"
CONTENT = "content.pem"
PASSPHRASE_ENV = "WASM_SANDBOX_PASSPHRASE"
#: The name in module signer verifier keys, before ``/`` and a digest of the key.
SIGNER_NAME = "module-signer.wasm-sandbox.local"
_ENCRYPTED = b"-----BEGIN ENCRYPTED PRIVATE KEY-----"

_K = TypeVar("_K")


class KeyStore:
    """The recipient and signing keys of one sandbox home."""

    def __init__(self, home: Path | str) -> None:
        self.dir = Path(home) / "keys"
        self._recipient: ec.EllipticCurvePrivateKey | None = None
        self._public: ec.EllipticCurvePublicKey | None = None
        self._signing: ed25519.Ed25519PrivateKey | None = None
        self._module_signing: ed25519.Ed25519PrivateKey | None = None
        self._content: x25519.X25519PrivateKey | None = None
        self._passphrase: bytes | None = None

    def recipient_private_key(self) -> ec.EllipticCurvePrivateKey:
        """The local P-256 private key; created on first use unless a public key was imported."""
        if self._recipient is None:
            self._check_dir()
            path = self.dir / RECIPIENT
            if not path.exists() and (self.dir / IMPORTED).exists():
                raise KeyStoreError(f"{path}: no private key; this home seals to {IMPORTED}")
            self._recipient = self._load_or_create(RECIPIENT, _new_recipient, _as_recipient)
        return self._recipient

    def recipient_public_key(self) -> ec.EllipticCurvePublicKey:
        """The key runs are sealed to: the imported one if any, else the local key pair's."""
        if self._public is None:
            self._check_dir()
            imported = self.dir / IMPORTED
            if imported.exists():
                self._public = _parse_public(_read(imported, 0o022), str(imported))
            else:
                self._public = self.recipient_private_key().public_key()
        return self._public

    @property
    def recipient_key_id(self) -> str:
        """Hex SHA-256 of the sealing key's DER SubjectPublicKeyInfo."""
        return key_id(self.recipient_public_key())

    @property
    def has_private_key(self) -> bool:
        """Whether this home can open what it seals (False after importing a foreign key)."""
        if not (self.dir / IMPORTED).exists():
            return True
        if not (self.dir / RECIPIENT).exists():
            return False
        return key_id(self.recipient_private_key().public_key()) == self.recipient_key_id

    def import_recipient(self, pem: str | bytes) -> str:
        """Seal future runs to ``pem`` (a P-256 public key); returns its key id.

        Importing the key already imported is a no-op; a different one is refused.
        """
        key = self.load_public_pem(pem)
        self._check_dir()
        path = self.dir / IMPORTED
        self._create(path, _public_pem(key))
        stored = _parse_public(_read(path, 0o022), str(path))
        if key_id(stored) != key_id(key):
            raise KeyStoreError(f"{path} already holds another recipient key; remove it first")
        self._public = stored
        return key_id(stored)

    def signing_key(self) -> ed25519.Ed25519PrivateKey:
        """The Ed25519 log signing key, created on first use."""
        if self._signing is None:
            self._signing = self._load_or_create(
                SIGNING, ed25519.Ed25519PrivateKey.generate, _as_signing
            )
        return self._signing

    def module_signing_key(self) -> ed25519.Ed25519PrivateKey:
        """The Ed25519 key that signs modules, created on first use."""
        if self._module_signing is None:
            self._module_signing = self._load_or_create(
                MODULE_SIGNING, ed25519.Ed25519PrivateKey.generate, _as_signing
            )
        return self._module_signing

    def content_secret(self) -> bytes:
        """The 32-byte secret content keys are derived from (`wasm_sandbox.record.seal_run`),
        created on first use."""
        return self._content_key().private_bytes_raw()

    def _content_key(self) -> x25519.X25519PrivateKey:
        if self._content is None:
            self._content = self._load_or_create(
                CONTENT, x25519.X25519PrivateKey.generate, _as_content
            )
        return self._content

    @property
    def signer_verifier_key(self) -> str:
        """The verifier key of `module_signing_key` (``name+keyid+base64(0x01 || key)``: the
        base64 part is the key as ``wasmsign2`` stores it)."""
        public = self.module_signing_key().public_key()
        digest = hashlib.sha256(public.public_bytes_raw()).hexdigest()[:16]
        return verifier_key(f"{SIGNER_NAME}/{digest}", public)

    @property
    def has_module_signing_key(self) -> bool:
        return self._module_signing is not None or os.path.exists(
            os.path.join(self.dir, MODULE_SIGNING)  # os.path: asked on every run
        )

    def protect(self, passphrase: bytes) -> list[str]:
        """Encrypt the private keys with ``passphrase`` (created first if missing); returns
        the files rewritten. A home that seals to an imported key keeps no recipient key."""
        if not passphrase:
            raise KeyStoreError("an empty passphrase protects nothing")
        keys: list[tuple[str, PrivateKeyTypes]] = [(SIGNING, self.signing_key())]
        if self.has_module_signing_key:
            keys.append((MODULE_SIGNING, self.module_signing_key()))
        if (self.dir / CONTENT).exists():
            keys.append((CONTENT, self._content_key()))
        if (self.dir / RECIPIENT).exists() or not (self.dir / IMPORTED).exists():
            keys.append((RECIPIENT, self.recipient_private_key()))
        encryption = serialization.BestAvailableEncryption(passphrase)
        for name, key in keys:
            try:
                replace_file(self.dir / name, _private_pem(key, encryption))
            except OSError as exc:
                raise KeyStoreError(f"{self.dir / name}: cannot write ({exc.strerror})") from exc
        self._passphrase = passphrase
        return [name for name, _ in keys]

    @property
    def protected(self) -> bool:
        """Whether every private key file of this home is encrypted (False when there is none)."""
        names = (SIGNING, RECIPIENT, MODULE_SIGNING, CONTENT)
        paths = [self.dir / n for n in names if (self.dir / n).exists()]
        return bool(paths) and all(_read(p, 0o077).startswith(_ENCRYPTED) for p in paths)

    def public_pem(self) -> str:
        """The sealing key as a SubjectPublicKeyInfo PEM string."""
        return _public_pem(self.recipient_public_key()).decode()

    @staticmethod
    def load_public_pem(pem: str | bytes) -> ec.EllipticCurvePublicKey:
        """Parse a PEM public key; raises ``KeyStoreError`` unless it is a P-256 key."""
        return _parse_public(pem.encode() if isinstance(pem, str) else pem, "recipient key")

    def _load_or_create(
        self,
        name: str,
        generate: Callable[[], PrivateKeyTypes],
        check: Callable[[Path, PrivateKeyTypes], _K],
    ) -> _K:
        self._check_dir()
        path = self.dir / name
        if not path.exists():
            self._create(path, _private_pem(generate(), self._new_key_encryption(path)))
        return check(path, self._parse_private(path, _read(path, 0o077)))

    def _new_key_encryption(self, path: Path) -> serialization.KeySerializationEncryption:
        """How a new key is written: under the passphrase when the home's keys are protected
        (a key made later, such as the module signing key, is then protected too)."""
        if not self.protected:
            return serialization.NoEncryption()
        passphrase = self._passphrase or ask_passphrase(f"passphrase of {self.dir}: ")
        if passphrase is None:
            raise KeyStoreError(
                f"{path}: this home's keys are protected; set ${PASSPHRASE_ENV} to create it"
            )
        self._passphrase = passphrase
        return serialization.BestAvailableEncryption(passphrase)

    def _parse_private(self, path: Path, data: bytes) -> PrivateKeyTypes:
        try:
            return serialization.load_pem_private_key(data, password=None)
        except TypeError:  # encrypted: needs the passphrase
            return self._decrypt(path, data)
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise KeyStoreError(
                f"{path}: not a valid PEM private key (truncated or corrupt)"
            ) from exc

    def _decrypt(self, path: Path, data: bytes) -> PrivateKeyTypes:
        passphrase = self._passphrase or ask_passphrase(f"passphrase of {self.dir}: ")
        if passphrase is None:
            raise KeyStoreError(
                f"{path}: the key is protected by a passphrase; set ${PASSPHRASE_ENV}"
            )
        try:
            key = serialization.load_pem_private_key(data, password=passphrase)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise KeyStoreError(f"{path}: wrong passphrase (or a corrupt key file)") from None
        self._passphrase = passphrase
        return key

    def _check_dir(self) -> None:
        private_dir(self.dir, "key directory", forbidden=0o077)

    def _create(self, path: Path, data: bytes) -> None:
        """Write ``data`` to ``path`` atomically unless ``path`` exists (then leave it)."""
        try:
            write_new(path, data)
        except OSError as exc:
            raise KeyStoreError(f"{path}: cannot write ({exc.strerror})") from exc


def _read(path: Path, forbidden: int) -> bytes:
    """Read a key file, refusing it when its mode has any of the ``forbidden`` bits."""
    return read_private(path, "key file", forbidden=forbidden)


def ask_passphrase(prompt: str, *, confirm: bool = False) -> bytes | None:
    """The passphrase from ``$WASM_SANDBOX_PASSPHRASE``, else asked on the terminal (twice
    with ``confirm``), else None (no terminal: a kernel, a server, a pipe)."""
    from_env = os.environ.get(PASSPHRASE_ENV)
    if from_env:
        return from_env.encode()
    if not (sys.stdin is not None and sys.stdin.isatty()):
        return None
    try:
        text = getpass.getpass(prompt)
        if confirm and getpass.getpass("again: ") != text:
            raise KeyStoreError("the two passphrases differ")
    except EOFError:
        return None
    return text.encode() or None


def _parse_public(data: bytes, where: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyStoreError(f"{where}: not a valid PEM public key (truncated or corrupt)") from exc
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise KeyStoreError(f"{where}: expected a P-256 public key, found {_kind(key)}")
    return key


def _as_recipient(path: Path, key: PrivateKeyTypes) -> ec.EllipticCurvePrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise KeyStoreError(f"{path}: expected a P-256 private key, found {_kind(key)}")


def _as_signing(path: Path, key: PrivateKeyTypes) -> ed25519.Ed25519PrivateKey:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise KeyStoreError(f"{path}: expected an Ed25519 private key, found {_kind(key)}")


def _as_content(path: Path, key: PrivateKeyTypes) -> x25519.X25519PrivateKey:
    if isinstance(key, x25519.X25519PrivateKey):
        return key
    raise KeyStoreError(f"{path}: expected an X25519 private key, found {_kind(key)}")


def _kind(key: object) -> str:
    """A short description of a key: ``EC secp384r1 key``, ``RSA key``, ``Ed25519 key``."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"EC {key.curve.name} key"
    name = type(key).__name__.removesuffix("PrivateKey").removesuffix("PublicKey")
    return f"{name} key"


def _new_recipient() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


_PLAIN = serialization.NoEncryption()


def _private_pem(
    key: PrivateKeyTypes, encryption: serialization.KeySerializationEncryption = _PLAIN
) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _public_pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
